"""ALGAN: a GAN whose generator also makes pseudo-anomalies from wide latents; the discriminator is the detector.

Paper: Murase & Fukumizu, "ALGAN: Anomaly Detection by Generating Pseudo Anomalous Data via Latent Variables",
IEEE Access 10, 2022 (``papers/000_346db876b8fe0885.txt``): Algorithm 1, eqs. (4)-(8), sections III-C/D (the two
kinds of pseudo-anomalous data), IV-A (architecture, hyperparameters), IV-B5 (preprocessing).
Reference code: none public (``research/reference-implementations.md`` section 1); every choice below is ours.

The discriminator D sees real normal data x (label 1) against three kinds of "other" data (label 0): fake-normal
x'_n = G(z_n), z_n ~ N(0, I); fake-anomalous x'_a = G(z_a), z_a ~ N(0, sigma^2 I); and buffered fakes x^ stored
from earlier steps. The generator G is trained on normal latents only, as in a standard GAN. The anomaly score is
minus D's logit (eq. 8: normal iff D(x) > threshold).

Two detectors are registered: ``algan`` (ALGAN-image: DCGAN-style convolutional G and D on images) and
``algan_feature`` (ALGAN-feature: three fully connected layers each, on vectors or on pooled features of a frozen
pretrained backbone from :mod:`anogen.features`).

Deviations / choices (the paper is silent or ambiguous on each):

- Latent schedule (Algorithm 1, lines 1-5), taken literally: z_d (the D latents, B of them) and z_g (the G latents,
  B of them) are drawn at the start of training and redrawn at the start of every epoch i (1-based) with
  i mod n_z == 0, and held fixed in between -- the same B latents for every batch of those epochs. (Line 2 alone
  would leave them undefined in epoch 1, so they are also drawn there.) With n_z = 2: fresh at epochs 1, 2, 4, 6, ...
- z_d holds round(alpha * B) normal latents (first rows) and B - round(alpha * B) anomalous ones (clamped so that both
  groups are non-empty when 0 < alpha < 1); z_a is drawn as sigma * eps with its own eps ~ N(0, I), i.e. an
  independent draw from N(0, sigma^2 I), not a rescaled copy of a normal latent. z_g ~ N(0, I) (lines 4, 19-20).
- x' = G(z_d) is one forward pass of the whole mixed batch with G in training mode, as line 9 writes it. This matters:
  G's first transposed convolution is linear in z and is followed by BatchNorm, so a batch of anomalous latents alone
  would be normalised back to the scale of normal ones; the mixed batch keeps sigma's effect. Because G is not updated
  during the n_dis D steps and z_d is fixed, line 9 gives the same x' at every k: it is computed once per batch.
- D loss = minus eq. (6), written with logits (log D = -softplus(-l), log(1 - D) = -softplus(l)); each expectation is
  the mean over its group, so the weights alpha, xi are exactly eq. (6)'s whatever the group sizes. In epoch 1 (no
  buffered data yet, lines 10-11) the generated terms take the whole weight (xi -> 1). Real, generated and buffered
  inputs go through D in one concatenated forward pass (D has no BatchNorm, so this only saves time; spectral norm's
  power iteration then runs once per D step).
- Buffer (lines 13, 18; IV-A): holds 2 x the batch size of detached fakes, each with its normal / anomalous flag.
  After each batch's D steps, the batch's x' fills the free slots, then replaces randomly chosen old slots (once full:
  half of the buffer, as IV-A says). Section III-A says "twice as large as the training data" and "in each epoch";
  we follow IV-A and Algorithm 1, line 18 (every batch). Line 13 draws B buffered samples without replacement,
  stratified as z_d (round(alpha * B) normal-flagged, the rest anomalous-flagged) so both x^ terms of eq. (6) are
  always present; a new draw at every D step k.
- G loss: ``g_loss="nonsaturating"`` (default) minimises -log D(G(z_g)) instead of eq. (5)'s log(1 - D(G(z_g)))
  (``"minimax"``). Eq. (5) is the minimax form, but Algorithm 1 (line 19) leaves the implementation open and the
  non-saturating loss is what Goodfellow et al. recommend and what DCGAN-style PyTorch code does (BCE with label 1).
  ALGAN makes saturation likelier than a plain GAN: D is also trained to reject all pseudo-anomalies, so it becomes
  confident early, where minimax gradients vanish.
- Table 7 switches: ``use_buffer=False`` drops the buffer (xi -> 1), ``use_anomalous_latent=False`` draws z_d from
  N(0, I) only (alpha -> 1).
- Score: -D(x), the raw logit with its sign reversed (Fig. 5 plots exactly this), computed in eval mode (D has spectral
  norm and no BatchNorm; eval mode freezes the power iteration). AUROC is the same for -sigmoid(logit).
- ALGAN-image: G = ``nets.ConvDecoder`` (transposed convs, BatchNorm + ReLU, no BN on the output, tanh), D =
  ``nets.ConvEncoder(norm="spectral")`` with LeakyReLU(0.2) and one logit: 7 layers each at 256 px (IV-A). Channel
  widths (paper silent): ``width`` = 64 doubling per stage, capped at ``max_width`` = 512, as DCGAN. DCGAN init
  (N(0, 0.02) weights). The tanh output requires ``normalize="tanh"``.
- ``pool_channels`` (default False): the paper's MVTec preprocessing (IV-B5) appends the channel-wise max-pool and
  average-pool images as two extra channels, applied here inside D's forward to real and generated inputs alike.
  Off by default because the paper uses it for MVTec AD only (MTD and COIL-100 get no such step), it is a dataset
  preprocessing listed beside per-category flips, not part of Algorithm 1, and for 1-channel images both extra
  channels equal the image. Turn it on for MVTec AD; no benchmark suite here does yet.
- Augmentations (flips, rotations per category, IV-B5) are the base ``augment`` field, off by default.
- ALGAN-feature: G = 3 linear layers (BatchNorm + ReLU between, linear output), D = 3 spectral-norm linear layers with
  LeakyReLU(0.2); ``hidden`` = 1024 units (paper silent; between the 1280 / 2048 feature sizes and the latent size
  100). Features go to G / D as they are (``standardize=False``, the default, as the paper describes no such step).
  ``standardize=True`` standardises each dimension with the training set's mean and standard deviation (floor 1e-3),
  saved with the model. It was the default until measured: on one-class digits it inverts the detector (AUROC 0.013
  on raw pixel vectors, 0.002 on EfficientNet-Lite0 features, normal class 0; 0.993 / 1.000 without it). A dimension
  that is nearly constant on the normal data gets a tiny std, so an anomaly that moves it lands thousands of units
  out, where the Lipschitz D extrapolates linearly with no trained sign and G never produced anything; centring and
  one global scale did not fix it either (0.05 / 0.10).
- ALGAN-feature backbone (:class:`anogen.features.PooledFeatures`): the paper uses WideResNet-101's last block
  (2048-d, global average pooling) at 224 px (objects: ``image_size=256, crop=224``, a centre crop). Its weights
  cannot be had on these machines, so the default is the offline EfficientNet-Lite0 (1280-d);
  ``backbone="wide_resnet101_2"`` gives the paper's setup where the weights are cached. ``layers`` chooses the pooled
  blocks (default ``("last",)``, the paper; shallow + deep, e.g. ``("s8", "s16", "last")``, concatenated, is the
  paper's own suggestion for MTD in V-A). The features are extracted once per fit (the base class embeds the
  training set before the epochs). ``backbone="none"`` takes (N, D) vectors only.
- Rudolph et al.'s rotation procedure (IV-B5: 24 rotations at training, 64 at prediction, "for both training and
  prediction" on MTD and COIL-100) is ``train_rotations`` / ``test_rotations``: evenly spaced angles, every training
  rotation a training sample, the scores of the test rotations averaged. Default 1 / 1 (off): on a CPU the 64 backbone
  passes per scored image cost minutes per test set; the ``paper`` preset sets 24 / 64.
- Model selection by validation AUROC every 8 epochs (IV-C) is the base ``fit(val_x=, val_y=)`` with ``val_every=8``.
- The thesis' training tricks (IN / SL / LF, :class:`anogen.losses.GANTricks`) are available as fields, off by
  default (the ALGAN paper uses none): IN adds the decaying noise to every input of D, SL / LF replace the hard
  targets of every term of eq. (6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anogen._registry import register
from anogen.data.transforms import InputError, add_pool_channels
from anogen.detector import Detector
from anogen.features import BACKBONES, PooledFeatures
from anogen.losses import GANTricks, adversarial_loss
from anogen.nets import ConvDecoder, ConvEncoder, check_image_size, dcgan_init, mlp, running_stats_frozen
from anogen.params import flag, integer, one_of, positive, power_of_two, real, tuple_of, unit_interval

G_LOSSES = ("nonsaturating", "minimax")


# ---------------------------------------------------------------------------------------------------- losses
def _neg_log_one_minus_d(logit: Tensor | None, weight: float, what: str,
                         target: Tensor | None = None) -> Tensor | float:
    """weight * -E[log(1 - D)] = weight * E[softplus(logit)]; nothing when the weight is 0.

    With a ``target`` (soft / flipped labels, :class:`anogen.losses.GANTricks`) the term is the cross-entropy against
    it, which is the same expression for target 0."""
    if weight == 0:
        return 0.0
    if logit is None or logit.numel() == 0:
        raise ValueError(f"eq. (6): the {what} term has weight {weight:g} but no samples")
    if target is not None:
        return weight * adversarial_loss(logit, target, "bce")
    return weight * F.softplus(logit).mean()


def algan_d_loss(real_logit: Tensor, fake_n_logit: Tensor, fake_a_logit: Tensor, buf_n_logit: Tensor | None = None,
                 buf_a_logit: Tensor | None = None, *, alpha: float, xi: float,
                 targets: list[Tensor] | None = None) -> Tensor:
    """Minus eq. (6), the ALGAN discriminator objective, from D's logits (each (n,)).

    -E_x[log D(x)] - alpha {xi E[log(1 - D(x'_n))] + (1 - xi) E[log(1 - D(x^_n))]}
                   - (1 - alpha) {xi E[log(1 - D(x'_a))] + (1 - xi) E[log(1 - D(x^_a))]}.
    Without buffered logits (both None: epoch 1, Algorithm 1 line 11, or no buffer) xi is taken as 1.
    ``targets``: optional per-group targets in the argument order (the SL / LF tricks); None = hard 1 / 0 labels.
    """
    if (buf_n_logit is None) != (buf_a_logit is None):
        raise ValueError("give both buffered logits (normal and anomalous) or neither")
    if buf_n_logit is None:
        xi = 1.0
    t = list(targets) + [None] * (5 - len(targets)) if targets is not None else [None] * 5
    # -E_x[log D(x)]
    loss = F.softplus(-real_logit).mean() if t[0] is None else adversarial_loss(real_logit, t[0], "bce")
    loss = loss + _neg_log_one_minus_d(fake_n_logit, alpha * xi, "fake-normal x'_n", t[1])
    loss = loss + _neg_log_one_minus_d(buf_n_logit, alpha * (1 - xi), "buffered-normal x^_n", t[3])
    loss = loss + _neg_log_one_minus_d(fake_a_logit, (1 - alpha) * xi, "fake-anomalous x'_a", t[2])
    loss = loss + _neg_log_one_minus_d(buf_a_logit, (1 - alpha) * (1 - xi), "buffered-anomalous x^_a", t[4])
    return loss


def algan_g_loss(fake_logit: Tensor, kind: str = "nonsaturating") -> Tensor:
    """Generator loss on D's logits for G(z_g): eq. (5) ``minimax`` E[log(1 - D)], or ``nonsaturating`` -E[log D]."""
    if kind == "nonsaturating":
        return F.softplus(-fake_logit).mean()  # -E[log D(G(z))]
    if kind == "minimax":
        return -F.softplus(fake_logit).mean()  # E[log(1 - D(G(z)))], eq. (5)
    raise ValueError(f"g_loss must be one of {', '.join(G_LOSSES)}; got {kind!r}")


def n_normal(batch: int, alpha: float) -> int:
    """Number of normal latents in a z_d batch of ``batch`` (Algorithm 1 line 3); both groups non-empty if 0<alpha<1."""
    if alpha >= 1:
        return batch
    if alpha <= 0:
        return 0
    return min(max(int(math.floor(alpha * batch + 0.5)), 1), batch - 1)


class FakeBuffer:
    """Buffered data x^ (Algorithm 1 lines 13 and 18): detached fakes with a normal / anomalous flag each."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.x: Tensor | None = None  # (n, ...) stored fakes
        self.anomalous: Tensor | None = None  # (n,) bool flags

    def __len__(self) -> int:
        return 0 if self.x is None else len(self.x)

    def push(self, x: Tensor, anomalous: Tensor) -> None:
        """Store ``x`` (detached): first into free slots, then over randomly chosen old slots."""
        x, anomalous = x.detach(), anomalous.detach().bool()
        if len(x) != len(anomalous) or len(x) > self.capacity:
            raise ValueError(f"push of {len(x)} items with {len(anomalous)} flags into a buffer of {self.capacity}")
        take = min(self.capacity - len(self), len(x))
        if self.x is None:
            self.x, self.anomalous = x[:take].clone(), anomalous[:take].clone()
        elif take:
            self.x, self.anomalous = torch.cat([self.x, x[:take]]), torch.cat([self.anomalous, anomalous[:take]])
        rest = len(x) - take
        if rest:  # replace randomly chosen slots among those filled before this push
            old = len(self) - take
            slots = torch.randperm(old)[:rest].to(self.x.device)
            self.x[slots], self.anomalous[slots] = x[take:], anomalous[take:]

    def sample(self, n_norm: int, n_anom: int) -> tuple[Tensor, Tensor]:
        """Up to ``n_norm`` normal-flagged and ``n_anom`` anomalous-flagged items, drawn without replacement."""
        if self.x is None:
            raise RuntimeError("sampling from an empty buffer")
        out = []
        for flag, k in ((False, n_norm), (True, n_anom)):
            idx = torch.nonzero(self.anomalous == flag).squeeze(1)
            idx = idx[torch.randperm(len(idx))[:k].to(idx.device)]
            out.append(self.x[idx])
        return out[0], out[1]


class PoolChannels(nn.Module):
    """(B, C, H, W) -> (B, C + 2, H, W): the input with its channel-wise max and mean images (IV-B5)."""

    def forward(self, x: Tensor) -> Tensor:
        return add_pool_channels(x)


# ---------------------------------------------------------------------------------------------------- shared core
@dataclass(kw_only=True)
class _ALGANBase(GANTricks, Detector):
    """Algorithm 1 and eqs. (5)-(8), shared by ALGAN-image and ALGAN-feature (which supply the networks)."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "latent_dim": integer(1), "sigma": positive(), "alpha": unit_interval(), "xi": unit_interval(),
        "n_z": integer(1), "n_dis": integer(1), "lr_g": positive(), "lr_d": positive(),
        "betas": tuple_of(2, real(0.0, 1.0, hi_open=True)), "use_buffer": flag(), "use_anomalous_latent": flag(),
        "g_loss": one_of(G_LOSSES),
    }

    batch_size: int = 16
    """training mini-batch size B (IV-A)"""
    latent_dim: int = 100
    """dimension of the latent z (IV-A)"""
    sigma: float = 4.0
    """standard deviation of the anomalous latents z_a ~ N(0, sigma^2 I) (IV-A, Table 8)"""
    alpha: float = 0.75
    """share of normal latents in z_d and eq. (6)'s weight of fake-normal vs fake-anomalous data (IV-A, Table 9)"""
    xi: float = 0.75
    """eq. (4) / (6)'s weight of generated vs buffered data (IV-A, Table 9)"""
    n_z: int = 2
    """the latents z_d, z_g are redrawn at epochs i with i mod n_z == 0 (Algorithm 1; IV-A, Table 10)"""
    n_dis: int = 2
    """D updates per batch (Algorithm 1 line 8; IV-A, Table 11)"""
    lr_g: float = 2e-4
    """Adam learning rate of G (IV-A)"""
    lr_d: float = 1e-4
    """Adam learning rate of D (IV-A)"""
    betas: tuple[float, float] = (0.0, 0.9)
    """Adam betas of both networks (IV-A)"""
    use_buffer: bool = True
    """train D on buffered fakes x^ too (Table 7 ablation; False means xi -> 1)"""
    use_anomalous_latent: bool = True
    """draw part of z_d from N(0, sigma^2 I) (Table 7 ablation; False means alpha -> 1)"""
    g_loss: str = "nonsaturating"
    """generator loss: nonsaturating (-log D(G(z))) or minimax (eq. 5, log(1 - D(G(z))))"""

    def __post_init__(self) -> None:
        if not (0.0 <= self.alpha <= 1.0 and 0.0 <= self.xi <= 1.0):
            raise ValueError(f"alpha and xi are weights in [0, 1]; got alpha={self.alpha}, xi={self.xi}")
        if self.sigma <= 0 or self.n_z < 1 or self.n_dis < 1 or self.latent_dim < 1:
            raise ValueError(f"need sigma > 0, n_z >= 1, n_dis >= 1, latent_dim >= 1; got sigma={self.sigma}, "
                             f"n_z={self.n_z}, n_dis={self.n_dis}, latent_dim={self.latent_dim}")
        if self.g_loss not in G_LOSSES:
            raise ValueError(f"g_loss must be one of {', '.join(G_LOSSES)}; got {self.g_loss!r}")
        self._check_tricks()

    # -- what a variant supplies: its nets (build), and the map between input / model space
    def to_model(self, x: Tensor) -> Tensor:
        """Prepared input -> what D sees (identity for images; standardisation for features)."""
        return x

    def from_model(self, x: Tensor) -> Tensor:
        """G's output -> the input space (for :meth:`generate`)."""
        return x

    def _make_optimizers(self) -> None:
        dcgan_init(self.nets_)
        self.opt_g_ = torch.optim.Adam(self.nets_["G"].parameters(), lr=self.lr_g, betas=self.betas)
        self.opt_d_ = torch.optim.Adam(self.nets_["D"].parameters(), lr=self.lr_d, betas=self.betas)

    # -- Algorithm 1
    @property
    def alpha_eff(self) -> float:
        return self.alpha if self.use_anomalous_latent else 1.0

    def start_epoch(self, epoch: int) -> None:
        i = epoch + 1  # Algorithm 1 counts epochs from 1
        if epoch == 0 or i % self.n_z == 0:  # lines 2-5 (plus the initial draw)
            self.resample_due_ = True

    def _sample_latents(self, b: int, device: torch.device) -> None:
        """Algorithm 1 lines 3-4: z_d = [round(alpha B) ~ N(0, I); the rest ~ N(0, sigma^2 I)], z_g ~ N(0, I)."""
        n_n = n_normal(b, self.alpha_eff)
        eps = torch.randn(b, self.latent_dim, device=device)  # (B, L)
        self.z_d_anomalous_ = torch.arange(b, device=device) >= n_n  # (B,) rows n_n.. are anomalous
        self.z_d_ = eps * torch.where(self.z_d_anomalous_, self.sigma, 1.0).unsqueeze(1)  # (B, L)
        self.z_g_ = torch.randn(b, self.latent_dim, device=device)  # (B, L)
        self.resample_due_ = False
        if not hasattr(self, "buffer_"):
            self.buffer_ = FakeBuffer(2 * b)  # IV-A: twice the batch size

    def train_state(self) -> dict[str, Tensor]:
        """For checkpoints: the current latents z_d / z_g, whether they are due for a redraw, and the buffer x^."""
        if not hasattr(self, "z_d_"):
            return {}
        state = {"z_d": self.z_d_, "z_d_anomalous": self.z_d_anomalous_, "z_g": self.z_g_,
                 "resample_due": torch.tensor(self.resample_due_),
                 "buffer_capacity": torch.tensor(self.buffer_.capacity)}
        if len(self.buffer_):
            state.update({"buffer_x": self.buffer_.x, "buffer_anomalous": self.buffer_.anomalous})
        return state

    def load_train_state(self, state: dict[str, Tensor]) -> None:
        if not state:
            return
        self.z_d_, self.z_d_anomalous_, self.z_g_ = state["z_d"], state["z_d_anomalous"].bool(), state["z_g"]
        self.resample_due_ = bool(state["resample_due"])
        self.buffer_ = FakeBuffer(int(state["buffer_capacity"]))
        if "buffer_x" in state:
            self.buffer_.x, self.buffer_.anomalous = state["buffer_x"].clone(), state["buffer_anomalous"].bool().clone()

    def train_step(self, x: Tensor) -> dict[str, float]:
        G, D = self.nets_["G"], self.nets_["D"]
        x = self.to_model(x)  # (B, ...) real normal data
        if self.resample_due_:
            self._sample_latents(len(x), x.device)
        is_a = self.z_d_anomalous_  # (B,)
        n_a = int(is_a.sum())
        with torch.no_grad():
            fake = G(self.z_d_)  # line 9: x' = G(z_d), (B, ...); G and z_d fixed over the k loop
        with_buffer = self.use_buffer and self.epoch_ > 0  # lines 10-15: no buffer term in epoch 1
        xi = self.xi if with_buffer else 1.0
        for _ in range(self.n_dis):  # lines 8-17
            parts = [x, fake[~is_a], fake[is_a]]  # real, x'_n, x'_a
            if with_buffer:
                parts += list(self.buffer_.sample(len(x) - n_a, n_a))  # line 13: x^_n, x^_a
            logits = D(self.d_input(torch.cat(parts))).squeeze(1).split([len(p) for p in parts])  # IN trick
            targets = None
            if self.soft_labels or self.label_flip > 0:  # SL / LF tricks (thesis 4.2.1), off by default
                targets = [self.d_targets(len(p), k == 0, x.device) for k, p in enumerate(parts)]
            loss_d = algan_d_loss(*logits, alpha=self.alpha_eff, xi=xi, targets=targets)  # minus eq. (6)
            self.opt_d_.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d_.step()
        if self.use_buffer:
            self.buffer_.push(fake, is_a)  # line 18 (detached, with flags)
        loss_g = algan_g_loss(D(G(self.z_g_)).squeeze(1), self.g_loss)  # line 19: normal latents only, eq. (5)
        self.opt_g_.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g_.step()  # line 20 (D's gradients from this pass are cleared before its next step)
        return {"d": loss_d.item(), "g": loss_g.item()}

    def score_batch(self, x: Tensor) -> Tensor:
        return -self.nets_["D"](self.to_model(x)).squeeze(1)  # (B,) eq. (8): minus D's logit

    def generate(self, n: int, anomalous: bool = False, seed: int | None = None) -> np.ndarray:
        """``n`` fakes from G: fake-normal from N(0, I) or fake-anomalous from N(0, sigma^2 I) latents (Fig. 1).

        G runs as in training, with BatchNorm over the batch (its running statistics are left as they are): those
        mix the sigma = 4 latents of the z_d batches (line 9) with the normal z_g batches (line 19), so eval mode
        would rescale the fakes. Fake-normal samples come from a batch of ``n`` normal latents, as the z_g batch G is
        trained on (line 19); fake-anomalous ones from a z_d-like batch (line 3): the ``n`` anomalous latents after
        round(n alpha / (1 - alpha)) normal ones, which are dropped. A sample depends on its batch; the same seed
        gives the same samples.

        Args:
            n: number of samples (>= 2: batch statistics).
            anomalous: draw the latents from N(0, sigma^2 I) instead of N(0, I).
            seed: seed of the latents (default: the detector's ``seed``).

        Returns:
            For ALGAN-image, images (n, C, H, W) in [0, 1]; for ALGAN-feature, vectors (n, F) in input units.
        """
        if not hasattr(self, "nets_"):  # G exists once training has started (training logs sample from it)
            self._check_fitted()
        if n < 2:
            raise ValueError(f"n must be >= 2 (G's BatchNorm normalises over the generated batch), got {n}")
        gen = torch.Generator().manual_seed(self.seed if seed is None else seed)
        z = torch.randn(n, self.latent_dim, generator=gen) * (self.sigma if anomalous else 1.0)  # (n, L)
        if anomalous and self.alpha_eff < 1:
            n_n = round(n * self.alpha_eff / (1 - self.alpha_eff))
            z = torch.cat([torch.randn(n_n, self.latent_dim, generator=gen), z])  # (n_n + n, L), as z_d
        G = self.nets_["G"]
        was_training = G.training
        G.train()
        try:
            with torch.no_grad(), running_stats_frozen(G):
                out = self.from_model(G(z.to(self._device()))[-n:])
        finally:
            G.train(was_training)
        return out.float().cpu().numpy()


# ---------------------------------------------------------------------------------------------------- ALGAN-image
@register("algan")
@dataclass(kw_only=True)
class ALGAN(_ALGANBase):
    """ALGAN-image: convolutional G and D on images; score = -D(x) (eq. 8). Defaults are the paper's (IV-A)."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "image_size": power_of_two(8, 1024), "width": integer(1), "max_width": integer(1), "pool_channels": flag(),
    }

    epochs: int = 512
    """training epochs (IV-C)"""
    image_size: int = 256
    """image side (IV-A: 256 x 256, 7 layers in G and in D); a power of two"""
    width: int = 64
    """channels of D's first conv layer, doubling per stage (paper silent; DCGAN's 64)"""
    max_width: int = 512
    """cap on any layer's channel count (paper silent; DCGAN's 512)"""
    pool_channels: bool = False
    """append channel-wise max- and average-pool images as 2 extra D input channels (IV-B5, used for MVTec AD)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_image_size(self.image_size)
        if self.normalize != "tanh":
            raise ValueError(f"algan's generator ends in tanh, so images must be normalised to [-1, 1] "
                             f"(normalize='tanh'); got normalize={self.normalize!r}")
        if self.width < 1 or self.max_width < self.width:
            raise ValueError(f"need 1 <= width <= max_width, got width={self.width}, max_width={self.max_width}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        d_in = c + 2 if self.pool_channels else c
        self.nets_ = nn.ModuleDict({
            "G": ConvDecoder(self.latent_dim, s, c, width=self.width, max_width=self.max_width, norm="batch",
                             out_act="tanh"),  # (B, L) -> (B, C, S, S)
            "D": nn.Sequential(
                PoolChannels() if self.pool_channels else nn.Identity(),  # (B, C, S, S) -> (B, d_in, S, S)
                ConvEncoder(s, d_in, 1, width=self.width, max_width=self.max_width, norm="spectral"),  # -> (B, 1)
            ),
        })
        self._make_optimizers()

    def from_model(self, x: Tensor) -> Tensor:
        return self.preprocess.denormalize(x)  # [-1, 1] -> [0, 1]


# ---------------------------------------------------------------------------------------------------- ALGAN-feature
@register("algan_feature")
@dataclass(kw_only=True)
class ALGANFeature(PooledFeatures, _ALGANBase):
    """ALGAN-feature: fully connected G and D on feature vectors ((N, D) inputs, or images via a frozen backbone)."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "backbone": one_of((*BACKBONES, "none")), "hidden": integer(1), "standardize": flag(),
    }

    epochs: int = 192
    """training epochs (IV-C)"""
    backbone: str = "efficientnet_lite0"
    """frozen feature extractor for image inputs: efficientnet_lite0, mobilenet_v2, wide_resnet101_2, or none"""
    hidden: int = 1024
    """units of the hidden layers of G and D (paper silent)"""
    standardize: bool = False
    """standardise each feature with the training set's mean / std before G and D (paper silent; off: see docstring)"""

    input_kind: ClassVar[str] = "any"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_backbone_fields()
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 1:
            raise InputError(f"algan_feature models vectors (N, D); got inputs of shape {input_shape}")
        (f,) = input_shape
        self.nets_ = nn.ModuleDict({
            "G": mlp(self.latent_dim, self.hidden, f, layers=3, norm="batch", act="relu"),  # (B, L) -> (B, F)
            "D": mlp(f, self.hidden, 1, layers=3, norm="spectral", act="leaky_relu"),  # (B, F) -> (B, 1)
        })
        self._make_optimizers()

    def setup_data(self, x: Tensor) -> None:
        """Standardisation statistics of the training features, needed before the first step."""
        if self.standardize:
            self.load_extra_state({"feature_mean": x.mean(0), "feature_std": x.std(0).clamp_min(1e-3)})

    def to_model(self, x: Tensor) -> Tensor:
        return (x - self.feature_mean_) / self.feature_std_ if self.standardize else x  # (B, F)

    def from_model(self, x: Tensor) -> Tensor:
        return x * self.feature_std_ + self.feature_mean_ if self.standardize else x  # (B, F)

    def extra_state(self) -> dict[str, Tensor]:
        return {"feature_mean": self.feature_mean_, "feature_std": self.feature_std_} if self.standardize else {}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        if self.standardize:
            if set(state) != {"feature_mean", "feature_std"}:
                raise ValueError(f"a standardised algan_feature model needs feature_mean and feature_std, "
                                 f"got {sorted(state)}")
            dev = self._device()
            self.feature_mean_ = state["feature_mean"].float().to(dev)  # (F,)
            self.feature_std_ = state["feature_std"].float().to(dev)  # (F,)


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, width=16, max_width=64, epochs=30),
    # ALGAN-image on defect data with small defects (issue 12): G and D on random 32 px patches of 256 px images,
    # stride-16 sliding-window scoring (image score = its worst window); CPU-sized (the paper: whole 256 px images,
    # 512 epochs, on a GPU)
    "industrial": dict(image_size=256, patch_size=32, patch_stride=16, width=32, max_width=128, epochs=24),
    # ALGAN-feature at the backbone's scale (224 px), MobileNetV2, shallow + deep pooled layers (V-A's suggestion)
    "industrial-feature": dict(backbone="mobilenet_v2", layers=("s16", "s32", "last"), epochs=64, hidden=512),
}
"""Explicit overrides for small runs: ``anogen.create("algan", **PRESETS["cpu"])`` (one-class digits in seconds)."""
