"""BiGAN / EGBAD: a GAN with an encoder, trained on joint (image, latent) pairs; score = residual + discriminator loss.

Papers: the BiGAN objective and the EGBAD score as the consistency paper writes them (Komoto, Aizawa, Kato,
"Consistency Ensured Bi-directional GAN for Anomaly Detection", IW-FCV 2020, ``papers/002_28b0c4576d08a753.txt``:
eq. (6) objective, eqs. (7)-(10) EGBAD score, eqs. (14)-(16) score; EGBAD is its Table 1 / Fig. 5 baseline), and the
thesis ``papers/003_5d7919a1dbf94176.txt`` section 2.3.2 (eq. 2.35, the same objective) and Appendix A.2.
Reference code: ``houssamzenati/Efficient-GAN-Anomaly-Detection`` (EGBAD, TF1; ``bigan/run_mnist.py``,
``bigan/mnist_utilities.py``), as summarised in ``research/reference-implementations.md`` section 4.2. EGBAD = this
detector; there is one registry name, ``bigan``.

An encoder E (image -> z), a generator G (z -> image) and a discriminator D(x, z) over joint pairs. Eq. (6):
D learns (x, E(x)) -> real and (G(z), z) -> fake, z ~ N(0, I); E and G are trained with the opposite (hard) targets.
The anomaly score is eq. (10) / (16): A(x) = (1 - lambda) L_R(x) + lambda L_D(x) with L_R = ||x - G(E(x))||_1
(eq. 7 / 14) and L_D the feature-matching distance ||f_D(x, E(x)) - f_D(G(E(x)), E(x))||_1 (eq. 8 / 15) or a
cross-entropy of D (eq. 9).

Deviations / choices:

- Networks: power-of-two DCGAN stacks from ``nets.py`` instead of the reference's 28 px MNIST nets (MNIST is resized
  to ``image_size`` = 32): E = ``ConvEncoder`` (BatchNorm except on the first layer, LeakyReLU 0.2, linear 4x4 head
  to z), G = ``ConvDecoder`` (BatchNorm + ReLU, tanh). Widths (papers silent): ``width`` = 64 doubling per stage,
  capped at ``max_width`` = 512. LeakyReLU slope 0.2 everywhere (the thesis' A.2; the reference uses 0.1).
  DCGAN init N(0, 0.02), as the reference. BatchNorm momentum 0.8 in TensorFlow's convention (Table A2) = 0.2 in
  PyTorch's (``bn_momentum``) on every BatchNorm of E, G and D.
- D (concatenating, the reference's layout): image path = the same stride-2 conv stages down to 4x4 (BatchNorm
  except on the first, LeakyReLU, dropout after each), flattened; latent path = one linear layer of ``hidden`` / 2
  units (reference: 512) + LeakyReLU + dropout; concatenated; a linear layer of ``hidden`` units (reference: 1024) +
  LeakyReLU + dropout, which is the feature layer f_D; a linear logit. Dropout 0.5 as the reference (off at scoring).
  ``d_norm`` switches D between BatchNorm (reference), spectral norm, both, or none.
- Training order: one D step (E(x) and G(z) detached), then one joint E + G step against the updated D, on the same
  batch and the same z (the reference draws an independently shuffled second batch for the E / G step; the fit loop
  here gives one batch per step). Separate Adam optimisers for E, G, D as the reference.
- E / G losses: the reference's non-saturating form with hard targets: G: D(G(z), z) -> 1, E: D(x, E(x)) -> 0.
  E and G each only reach their own term, so the sum is minimised jointly.
- Defaults = the EGBAD reference on MNIST: Adam lr 1e-5 for all three nets, betas (0.5, 0.999), batch 100, latent
  200, lambda (``lam``) = 0.1, L1 norms. Epochs (reference: must be given; its authors use 100 in an issue reply):
  100. The thesis' A.2 settings (latent 256, batch 64, lr 5e-5 / 1e-6 / 1e-6 for G / D / E, 50 epochs) are reachable
  through the fields. The CPU preset raises the learning rates: at 1e-5 nothing is learned in a few hundred steps.
- EMA: the reference scores with an exponential moving average (decay 0.999) of every network's weights, so it is part
  of the method here: ``ema_decay`` = 0.999, the averaged copies ``E_ema``, ``G_ema``, ``D_ema`` live in ``nets_``
  (saved with the model), start from the initial weights (as TF's ExponentialMovingAverage), are updated after every
  step of their network with the warm-up decay min(0.999, (1 + n) / (10 + n)) after n updates (``nets.ema_decay_at``,
  TF's ``num_updates``, as the EBGAN family; without it ~350 updates leave 70 % of the average at the
  initialisation), and copy BatchNorm running statistics (TF keeps one set of them too). ``ema_decay=0`` scores
  with the raw networks.
- Score ``score_disc``: ``"fm"`` (default, reference ``--m=fm``): L_D = ||f_D(x, E(x)) - f_D(G(E(x)), E(x))||_1, the
  same latent E(x) paired with both images (eq. 8). ``"ce"``: eq. (9) as the paper writes it, the cross-entropy of
  D(x, E(x)) against label 1 (real). ``"ce_rec"``: what the reference code computes for ``cross-e``, the cross-entropy
  of D(G(E(x)), E(x)) against label 1 (the reconstructed pair). All in eval mode (BatchNorm running statistics,
  dropout off), with the EMA weights when they are kept.
- ``map_batch``: the per-pixel L1 residual |x - G(E(x))| summed over channels (the pixel part of L_R).
- The thesis' training tricks (IN / SL / LF, :class:`anogen.losses.GANTricks`) are fields, off by default: IN noise is
  added to every input of D in its update step, images and latents (``losses.py``'s rule; the E / G step sees D on
  clean inputs), SL / LF change D's targets only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from anogen._registry import register
from anogen.detector import Detector
from anogen.losses import GANTricks, adversarial_loss, feature_matching, residual_score
from anogen.nets import (ConvDecoder, ConvEncoder, check_image_size, dcgan_init, ema_decay_at, ema_update,
                         stage_widths)
from anogen.params import integer, one_of, positive, power_of_two, real, tuple_of, unit_interval

D_NORMS = ("batch", "spectral", "spectral_batch", "none")
SCORE_DISC = ("fm", "ce", "ce_rec")


# ---------------------------------------------------------------------------------------------------- modules
def _linear(a: int, b: int, spectral: bool) -> nn.Module:
    layer = nn.Linear(a, b)
    return spectral_norm(layer) if spectral else layer


def conv_trunk(image_size: int, in_channels: int, *, width: int, max_width: int, norm: str, dropout: float,
               slope: float = 0.2) -> nn.Sequential:
    """phi(x), D's image path: (B, C, S, S) -> (B, W, 4, 4) with 4x4 stride-2 convs (DCGAN stages).

    ``norm``: ``batch`` (BatchNorm after every conv but the first, DCGAN / the EGBAD reference), ``spectral`` (spectral
    norm on every conv), ``spectral_batch`` (both) or ``none``. Dropout after every activation when > 0.
    """
    if norm not in D_NORMS:
        raise ValueError(f"d_norm must be one of {', '.join(D_NORMS)}; got {norm!r}")
    layers: list[nn.Module] = []
    c = in_channels
    for i, w in enumerate(stage_widths(image_size, width, max_width)):
        conv = nn.Conv2d(c, w, 4, 2, 1)
        layers.append(spectral_norm(conv) if norm.startswith("spectral") else conv)
        if norm.endswith("batch") and i > 0:
            layers.append(nn.BatchNorm2d(w))
        layers.append(nn.LeakyReLU(slope))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        c = w
    return nn.Sequential(*layers)


class ConcatDiscriminator(nn.Module):
    """EGBAD's D(x, z): conv features of x (flattened) concatenated with an embedding of z, then FC layers.

    ``forward`` returns the logit (B,) and the feature layer f_D (B, hidden) used by the feature-matching score.
    """

    def __init__(self, image_size: int, in_channels: int, latent_dim: int, *, width: int, max_width: int,
                 hidden: int, norm: str, dropout: float) -> None:
        super().__init__()
        sn = norm.startswith("spectral")
        self.phi = conv_trunk(image_size, in_channels, width=width, max_width=max_width, norm=norm, dropout=dropout)
        x_features = stage_widths(image_size, width, max_width)[-1] * 16  # (W, 4, 4) flattened
        z_features = max(hidden // 2, 1)
        self.z_path = nn.Sequential(_linear(latent_dim, z_features, sn), nn.LeakyReLU(0.2), nn.Dropout(dropout))
        self.joint = nn.Sequential(_linear(x_features + z_features, hidden, sn), nn.LeakyReLU(0.2),
                                   nn.Dropout(dropout))
        self.out = _linear(hidden, 1, sn)

    def forward(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        hx = self.phi(x).flatten(1)  # (B, W * 16)
        hz = self.z_path(z)  # (B, hidden / 2)
        f = self.joint(torch.cat([hx, hz], dim=1))  # (B, hidden): f_D
        return self.out(f).squeeze(1), f  # (B,), (B, hidden)


# ---------------------------------------------------------------------------------------------------- losses
def bigan_d_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """Minus eq. (6) with hard labels: -E[log D(x, E(x))] - E[log(1 - D(G(z), z))], from D's logits (each (B,))."""
    return adversarial_loss(real_logit, 1.0, "bce") + adversarial_loss(fake_logit, 0.0, "bce")


def bigan_ge_losses(real_logit: Tensor, fake_logit: Tensor) -> tuple[Tensor, Tensor]:
    """(E loss, G loss), the reference's non-saturating form: E wants D(x, E(x)) -> 0, G wants D(G(z), z) -> 1."""
    return adversarial_loss(real_logit, 0.0, "bce"), adversarial_loss(fake_logit, 1.0, "bce")


# ---------------------------------------------------------------------------------------------------- detector
@register("bigan")
@dataclass(kw_only=True)
class BiGAN(GANTricks, Detector):
    """BiGAN / EGBAD (Zenati et al. 2018): E, G and a joint D(x, z); score (1 - lam) L_R + lam L_D (eqs. 7-10)."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "image_size": power_of_two(8, 1024), "latent_dim": integer(1), "width": integer(1), "max_width": integer(1),
        "hidden": integer(1), "dropout": real(0.0, 1.0, hi_open=True), "d_norm": one_of(D_NORMS), "lr_e": positive(),
        "lr_g": positive(), "lr_d": positive(), "betas": tuple_of(2, real(0.0, 1.0, hi_open=True)),
        "ema_decay": real(0.0, 1.0, hi_open=True), "lam": unit_interval(), "score_disc": one_of(SCORE_DISC),
        "bn_momentum": real(0.0, 1.0, lo_open=True),
    }

    epochs: int = 100
    """training epochs (reference: given on the command line; 100 in its authors' example)"""
    batch_size: int = 100
    """training mini-batch size (reference: 100)"""
    image_size: int = 32
    """image side, a power of two (reference: 28 px MNIST, here resized to 32)"""
    channels: int = 1
    """channel count the model sees (reference: MNIST, 1)"""
    latent_dim: int = 200
    """dimension of z (reference: 200)"""
    width: int = 64
    """channels of the first conv layer of E and D, doubling per stage (paper silent; DCGAN's 64)"""
    max_width: int = 512
    """cap on the channel count of any conv layer (paper silent; DCGAN's 512)"""
    hidden: int = 1024
    """units of D's joint feature layer f_D (reference: 1024); D's latent path has hidden / 2 (reference: 512)"""
    dropout: float = 0.5
    """dropout rate after every activation of D during training (reference: 0.5)"""
    d_norm: str = "batch"
    """normalisation of D's conv layers: batch (reference), spectral, spectral_batch or none"""
    lr_e: float = 1e-5
    """Adam learning rate of E (reference: 1e-5)"""
    lr_g: float = 1e-5
    """Adam learning rate of G (reference: 1e-5)"""
    lr_d: float = 1e-5
    """Adam learning rate of D (reference: 1e-5)"""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of the three optimisers (reference: 0.5, 0.999)"""
    bn_momentum: float = 0.2
    """PyTorch BatchNorm momentum of E, G and D (thesis Table A2: 0.8 in TensorFlow's convention = 0.2 here)"""
    ema_decay: float = 0.999
    """decay of the weight EMA used for scoring (reference: 0.999); 0 scores with the raw networks"""
    lam: float = 0.1
    """weight lambda of L_D in the score A = (1 - lambda) L_R + lambda L_D (eq. 10 / 16; reference w = 0.1)"""
    score_disc: str = "fm"
    """L_D of the score: fm (eq. 8, feature matching), ce (eq. 9, CE of D(x, E(x)) vs real), ce_rec (reference code)"""

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        if self.normalize != "tanh":
            raise ValueError(f"{self.name}'s generator ends in tanh, so images must be normalised to [-1, 1] "
                             f"(normalize='tanh'); got normalize={self.normalize!r}")
        if self.width < 1 or self.max_width < self.width or self.latent_dim < 1 or self.hidden < 1:
            raise ValueError(f"need 1 <= width <= max_width, latent_dim >= 1, hidden >= 1; got width={self.width}, "
                             f"max_width={self.max_width}, latent_dim={self.latent_dim}, hidden={self.hidden}")
        if self.d_norm not in D_NORMS:
            raise ValueError(f"d_norm must be one of {', '.join(D_NORMS)}; got {self.d_norm!r}")
        if self.score_disc not in SCORE_DISC:
            raise ValueError(f"score_disc must be one of {', '.join(SCORE_DISC)}; got {self.score_disc!r}")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in (0, 1]; got {self.bn_momentum}")
        if not (0.0 <= self.lam <= 1.0 and 0.0 <= self.dropout < 1.0 and 0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"need 0 <= lam <= 1, 0 <= dropout < 1, 0 <= ema_decay < 1; got lam={self.lam}, "
                             f"dropout={self.dropout}, ema_decay={self.ema_decay}")
        self._check_tricks()

    # -- networks
    def make_discriminator(self, channels: int, size: int) -> nn.Module:
        """D(x, z) -> (logit (B,), features f_D (B, F)); the concatenating discriminator of the reference."""
        return ConcatDiscriminator(size, channels, self.latent_dim, width=self.width, max_width=self.max_width,
                                   hidden=self.hidden, norm=self.d_norm, dropout=self.dropout)

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        self.nets_ = nn.ModuleDict({
            "E": ConvEncoder(s, c, self.latent_dim, width=self.width, max_width=self.max_width,
                             norm="batch"),  # (B, C, S, S) -> (B, L)
            "G": ConvDecoder(self.latent_dim, s, c, width=self.width, max_width=self.max_width, norm="batch",
                             out_act="tanh"),  # (B, L) -> (B, C, S, S)
            "D": self.make_discriminator(c, s),  # (B, C, S, S), (B, L) -> (B,), (B, F)
        })
        dcgan_init(self.nets_)
        for m in self.nets_.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.momentum = self.bn_momentum  # Table A2
        if self.ema_decay > 0:  # averaged copies for scoring, starting from the initial weights
            for k in ("E", "G", "D"):
                self.nets_[f"{k}_ema"] = copy.deepcopy(self.nets_[k]).requires_grad_(False)
        self.opt_e_ = torch.optim.Adam(self.nets_["E"].parameters(), lr=self.lr_e, betas=self.betas)
        self.opt_g_ = torch.optim.Adam(self.nets_["G"].parameters(), lr=self.lr_g, betas=self.betas)
        self.opt_d_ = torch.optim.Adam(self.nets_["D"].parameters(), lr=self.lr_d, betas=self.betas)
        self.ema_updates_: dict[str, int] = {}

    def _ema(self, *names: str) -> None:
        if self.ema_decay > 0:  # with the EBGAN family's warm-up (nets.ema_decay_at), counted per network
            for k in names:
                n = self.ema_updates_.get(k, 0)
                ema_update(self.nets_[f"{k}_ema"], self.nets_[k], ema_decay_at(self.ema_decay, n))
                self.ema_updates_[k] = n + 1

    def train_state(self) -> dict[str, Tensor]:
        """For checkpoints: the EMA update counts (the warm-up decay depends on them)."""
        return {f"ema_updates.{k}": torch.tensor(v) for k, v in self.ema_updates_.items()}

    def load_train_state(self, state: dict[str, Tensor]) -> None:
        self.ema_updates_ = {k.split(".", 1)[1]: int(v) for k, v in state.items() if k.startswith("ema_updates.")}

    # -- losses
    def disc_loss(self, real_logit: Tensor, fake_logit: Tensor) -> Tensor:
        """D's loss, minus eq. (6): (x, E(x)) judged real, (G(z), z) fake (targets through the SL / LF tricks)."""
        return self.d_loss(real_logit, real=True) + self.d_loss(fake_logit, real=False)

    def encoder_generator_loss(self, x: Tensor, z: Tensor, z_enc: Tensor,
                               x_gen: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The joint E + G loss for z_enc = E(x), x_gen = G(z) (not detached), and the terms to log."""
        real_logit, _ = self.nets_["D"](x, z_enc)  # (x, E(x)), clean inputs (losses.py IN rule 1)
        fake_logit, _ = self.nets_["D"](x_gen, z)  # (G(z), z)
        loss_e, loss_g = bigan_ge_losses(real_logit, fake_logit)
        return loss_e + loss_g, {"e": loss_e.item(), "g": loss_g.item()}

    # -- training
    def train_step(self, x: Tensor) -> dict[str, float]:
        E, G, D = self.nets_["E"], self.nets_["G"], self.nets_["D"]
        z = torch.randn(len(x), self.latent_dim, device=x.device)  # (B, L), z ~ p_Z = N(0, I)
        z_enc = E(x)  # (B, L)
        x_gen = G(z)  # (B, C, S, S)
        # D step: maximise eq. (6) with E and G fixed
        real_logit, _ = D(self.d_input(x), self.d_input(z_enc.detach()))  # IN on images and latents (rule 1)
        fake_logit, _ = D(self.d_input(x_gen.detach()), self.d_input(z))
        loss_d = self.disc_loss(real_logit, fake_logit)
        self.opt_d_.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d_.step()
        self._ema("D")
        # E + G step against the updated D (the gradients this leaves in D are cleared before D's next step)
        loss_eg, logs = self.encoder_generator_loss(x, z, z_enc, x_gen)
        self.opt_e_.zero_grad(set_to_none=True)
        self.opt_g_.zero_grad(set_to_none=True)
        loss_eg.backward()
        self.opt_e_.step()
        self.opt_g_.step()
        self._ema("E", "G")
        return {"d": loss_d.item(), **logs}

    # -- scoring
    def scoring_nets(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """(E, G, D) used for scoring: the EMA copies when ``ema_decay`` > 0."""
        suffix = "_ema" if self.ema_decay > 0 else ""
        return self.nets_[f"E{suffix}"], self.nets_[f"G{suffix}"], self.nets_[f"D{suffix}"]

    def reconstruct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(G(E(x)) (B, C, S, S), E(x) (B, L)) with the scoring networks."""
        E, G, _ = self.scoring_nets()
        z_enc = E(x)
        return G(z_enc), z_enc

    def score_batch(self, x: Tensor) -> Tensor:
        _, _, D = self.scoring_nets()
        x_rec, z_enc = self.reconstruct(x)
        logit_x, f_x = D(x, z_enc)  # (x, E(x))
        logit_rec, f_rec = D(x_rec, z_enc)  # (G(E(x)), E(x)): the same latent with both images (eq. 8)
        if self.score_disc == "fm":
            return residual_score(x, x_rec, f_x, f_rec, self.lam, p=1)  # (B,) eqs. (7), (8), (10)
        logit = logit_x if self.score_disc == "ce" else logit_rec  # eq. (9) / the reference's cross-e
        l_d = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit), reduction="none")  # (B,)
        return (1 - self.lam) * feature_matching(x, x_rec, 1, "none") + self.lam * l_d  # (B,) eq. (10)

    def map_batch(self, x: Tensor) -> Tensor:
        x_rec, _ = self.reconstruct(x)
        return (x - x_rec).abs().sum(1)  # (B, H, W): the L1 residual per pixel


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, width=16, max_width=64, latent_dim=32, hidden=128, batch_size=16, epochs=20,
                lr_e=2e-4, lr_g=2e-4, lr_d=2e-4, ema_decay=0.0),
}
"""Explicit overrides for small runs: ``anogen.create("bigan", **PRESETS["cpu"])`` (one-class digits in seconds)."""
