"""GANomaly: an adversarially trained autoencoder x -> z -> x' -> z'; the anomaly score is the latent gap ||z - z'||.

Paper: Akcay, Atapour-Abarghouei & Breckon, "GANomaly: Semi-Supervised Anomaly Detection via Adversarial Training",
ACCV 2018, as specified in the thesis ``papers/003_5d7919a1dbf94176.txt``, section 2.3.4, eqs. (2.91)-(2.95), and
Appendix A.4 (Table A4).
Reference code: ``samet-akcay/ganomaly`` (PyTorch; ``research/reference-implementations.md`` section 5.1).

The generator is three networks: an encoder G_E (x -> z), a decoder G_D (z -> x' = G(x)) and a second encoder E
(x' -> z'). A discriminator D (a DCGAN encoder with one logit) tells x from x'. G is trained on

    L = w_adv L_adv + w_con L_con + w_enc L_enc                                               (2.94)
    L_adv = || f(x) - f(G(x)) ||_2     feature matching on D's last feature map f           (2.91)
    L_con = || x - G(x) ||_1           contextual (reconstruction) loss                     (2.92)
    L_enc = || G_E(x) - E(G(x)) ||_2   encoder loss                                         (2.93)

with w_adv = 1, w_con = 50, w_enc = 1, and D on binary cross-entropy, real x vs. the detached x'. A model trained on
normal data only learns to keep z' close to z for normal inputs; the score is the latent gap (2.95).

This file also holds :class:`GANomalyBase`, the training step and discriminator handling shared with Skip-GANomaly
(``skip_ganomaly.py``, a change of this paper that imports it).

Deviations / choices:

- Architecture: the reference's DCGAN networks (``nets.ConvEncoder`` / ``nets.ConvDecoder``: 4x4 stride-2 convs,
  BatchNorm except on the first encoder layer, LeakyReLU(0.2) in the encoders, ReLU in the decoder, tanh output), for
  any power-of-two size and channel count; widths start at ``width`` = 64 and double per stage up to ``max_width`` =
  512 (the reference has no cap; the cap only matters from 128 px up). D is the same encoder with one logit; f(x) is
  its last 4x4 feature map, as in the reference. The thesis' Table A4 describes its own TensorFlow port (5x5 kernels,
  latent 256, LeakyReLU decoder); we follow the reference, so ``latent_dim`` = 100 (the reference's nz).
- DCGAN initialisation (N(0, 0.02) conv weights, BatchNorm scale N(1, 0.02)) of every network, as the reference does
  (the anomalib port leaves it unused).
- Norms as the reference computes them: L_adv and L_enc are means of squares (PyTorch ``MSELoss``), L_con the mean
  absolute error over pixels. The thesis writes E||f(x) - E f(G(x))||_2 (Salimans et al.'s batch-mean matching);
  GANomaly pairs each x with its own reconstruction, so the reference matches per sample, and so do we.
- Score (2.95): the thesis writes ||G_E(x) - E(G(x))||_1; the reference scores the per-sample MEAN SQUARED latent
  gap, and that is the default (``score_p=2``); ``score_p=1`` gives the mean absolute gap (the thesis' L1 norm
  divided by the latent size, the same ranking). The reference min-max normalises scores over the test set; that
  needs the whole test set, does not change AUROC and is left out.
- Scoring in eval mode: BatchNorm uses its running statistics. The reference scores in training mode with test-batch
  statistics (its issue #47); we do not repeat that, nor its choice of the best epoch on the test set (use the base
  ``fit(val_x=, val_y=)`` with a validation split instead).
- Update order per batch as the reference: forward G, G step (L of 2.94), then D step on x and the x' computed before
  the G step (detached). D's loss is 0.5 (BCE(D(x), 1) + BCE(D(x'), 0)) as in the reference.
- D re-initialisation: the reference re-initialises D's weights (DCGAN init; its Adam state is kept) whenever D's loss
  falls below 1e-5, to pull training out of a collapsed adversarial game. Kept, as field ``d_reinit_below`` (1e-5;
  0 turns it off). With soft labels (SL) the BCE cannot fall that low, so it never fires then.
- Training tricks (thesis 4.2.1, :class:`anogen.losses.GANTricks`, off by default): D's inputs in the D step go
  through ``d_input`` (IN) and its targets through ``d_loss`` (SL / LF). The G step's D passes (feature matching,
  Skip-GANomaly's adversarial term) see the clean inputs and hard targets: the tricks regularise D only.
- Hyperparameters: Adam lr 2e-4, betas (0.5, 0.999) for both G and D, 15 epochs, batch 64, 32 px (the reference's
  defaults and the paper's). The thesis' Table A4 lists 50 epochs at lr 5e-5 (G) / 1e-6 (D) for its own port.
- ``map_batch`` (an extra, not the paper's score): per-pixel |x - G(x)| averaged over channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.detector import Detector
from anogen.losses import GANTricks, feature_matching
from anogen.nets import ConvDecoder, ConvEncoder, check_image_size, dcgan_init
from anogen.params import integer, non_negative, one_of, positive, real, tuple_of


# ---------------------------------------------------------------------------------------------------- losses
def ganomaly_g_terms(x: Tensor, x_rec: Tensor, f_x: Tensor, f_rec: Tensor, z: Tensor,
                     z_rec: Tensor) -> dict[str, Tensor]:
    """The three generator terms, unweighted.

    Args:
        x, x_rec: inputs and reconstructions G(x), (B, C, H, W).
        f_x, f_rec: D's last feature maps of x and G(x), (B, ...).
        z, z_rec: G_E(x) and E(G(x)), (B, L).
    """
    return {
        "adv": feature_matching(f_x, f_rec, p=2, reduction="mean"),  # (2.91): mean of (f(x) - f(G(x)))^2
        "con": (x - x_rec).abs().mean(),  # (2.92): mean |x - G(x)|
        "enc": (z - z_rec).pow(2).mean(),  # (2.93): mean (G_E(x) - E(G(x)))^2
    }


def weighted_total(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """(2.94): sum_k w_k L_k over the terms."""
    return sum(weights[k] * v for k, v in terms.items())  # type: ignore[return-value]


def ganomaly_score(z: Tensor, z_rec: Tensor, p: int = 2) -> Tensor:
    """(B,) (2.95): mean over latent dims of |G_E(x) - E(G(x))|^p (p = 2: the reference's score)."""
    return (z - z_rec).abs().pow(p).flatten(1).mean(1)


# ---------------------------------------------------------------------------------------------------- shared core
@dataclass(kw_only=True)
class GANomalyBase(GANTricks, Detector):
    """The training step, D handling and fields shared by GANomaly and Skip-GANomaly (which supply nets and terms)."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "latent_dim": integer(1), "width": integer(1), "max_width": integer(1), "w_adv": non_negative(),
        "w_con": non_negative(), "lr": positive(), "betas": tuple_of(2, real(0.0, 1.0, hi_open=True)),
        "d_reinit_below": non_negative(),
    }

    epochs: int = 15
    """training epochs (reference and paper: 15)"""
    batch_size: int = 64
    """training mini-batch size (reference: 64)"""
    image_size: int = 32
    """image side, a power of two (reference: 32)"""
    latent_dim: int = 100
    """size of the bottleneck z (GANomaly) / of D's feature vector (Skip-GANomaly); the reference's nz = 100"""
    width: int = 64
    """channels of the first conv layer, doubling per stage (reference: ngf = ndf = 64)"""
    max_width: int = 512
    """cap on any layer's channel count"""
    w_adv: float = 1.0
    """weight of the adversarial loss (2.94)"""
    w_con: float = 50.0
    """weight of the contextual L1 reconstruction loss (2.94; reference: 50)"""
    lr: float = 2e-4
    """Adam learning rate of G and D (reference)"""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of G and D (reference)"""
    d_reinit_below: float = 1e-5
    """re-initialise D's weights when its loss falls below this (reference: 1e-5; 0 = never)"""

    def __post_init__(self) -> None:
        patch = getattr(self, "patch_size", 0)  # the base's patch mode builds the nets for patch_size inputs
        check_image_size(patch if patch > 0 else self.image_size)
        if self.normalize != "tanh":
            raise ValueError(f"{self.name}'s generator ends in tanh, so images must be normalised to [-1, 1] "
                             f"(normalize='tanh'); got normalize={self.normalize!r}")
        if self.width < 1 or self.max_width < self.width or self.latent_dim < 1:
            raise ValueError(f"need 1 <= width <= max_width and latent_dim >= 1; got width={self.width}, "
                             f"max_width={self.max_width}, latent_dim={self.latent_dim}")
        if min(self.loss_weights().values()) < 0 or self.lr <= 0 or self.d_reinit_below < 0:
            raise ValueError(f"loss weights and d_reinit_below must be >= 0 and lr > 0; got {self.loss_weights()}, "
                             f"lr={self.lr}, d_reinit_below={self.d_reinit_below}")
        self._check_tricks()

    # -- what a variant supplies
    def loss_weights(self) -> dict[str, float]:
        """Weights of the generator terms in (2.94), keyed as :meth:`g_terms` returns them."""
        raise NotImplementedError

    def g_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Unweighted generator terms on the batch ``x`` and the reconstruction G(x) they were computed from."""
        raise NotImplementedError

    def d_objective(self, x: Tensor, fake: Tensor) -> Tensor:
        """D's loss on real ``x`` and detached reconstructions ``fake``; inputs through IN, targets through SL / LF."""
        D = self.nets_["D"]
        loss_real = self.d_loss(D(self.d_input(x)), real=True)  # BCE(D(x), 1)
        loss_fake = self.d_loss(D(self.d_input(fake)), real=False)  # BCE(D(G(x)), 0)
        return 0.5 * (loss_real + loss_fake)  # reference: the mean of the two

    def _make_optimizers(self) -> None:
        dcgan_init(self.nets_)
        g_params = [p for k, m in self.nets_.items() if k != "D" for p in m.parameters()]
        self.opt_g_ = torch.optim.Adam(g_params, lr=self.lr, betas=self.betas)
        self.opt_d_ = torch.optim.Adam(self.nets_["D"].parameters(), lr=self.lr, betas=self.betas)

    # -- one batch, in the reference's order: G step, then D step on the x' made before it
    def train_step(self, x: Tensor) -> dict[str, float]:
        terms, fake = self.g_terms(x)  # (B, C, H, W) reconstructions and the unweighted terms
        loss_g = weighted_total(terms, self.loss_weights())  # (2.94)
        self.opt_g_.zero_grad(set_to_none=True)
        loss_g.backward()  # also leaves gradients on D (through f / D(G(x))); cleared before D's step
        self.opt_g_.step()

        loss_d = self.d_objective(x, fake.detach())
        self.opt_d_.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d_.step()
        if loss_d.item() < self.d_reinit_below:  # reference: a D that has won is started afresh
            dcgan_init(self.nets_["D"])
        return {"d": loss_d.item(), "g": loss_g.item(), **{k: v.item() for k, v in terms.items()}}

    def reconstruct(self, x: Tensor) -> Tensor:
        """G(x), (B, C, H, W) in the model's [-1, 1] units."""
        raise NotImplementedError

    def map_batch(self, x: Tensor) -> Tensor:
        return (x - self.reconstruct(x)).abs().mean(1)  # (B, H, W): |x - G(x)|, an extra, not the paper's score


# ---------------------------------------------------------------------------------------------------- GANomaly
@register("ganomaly")
@dataclass(kw_only=True)
class GANomaly(GANomalyBase):
    """GANomaly (Akcay et al., ACCV 2018): score = mean (G_E(x) - E(G(x)))^2 (2.95). Defaults: the reference's."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "w_enc": non_negative(), "score_p": one_of((1, 2)),
    }

    w_enc: float = 1.0
    """weight of the encoder (latent) loss (2.94)"""
    score_p: int = 2
    """score exponent: 2 = mean squared latent gap (reference), 1 = mean absolute gap (thesis' L1 norm)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.score_p not in (1, 2):
            raise ValueError(f"score_p must be 1 or 2, got {self.score_p}")

    def loss_weights(self) -> dict[str, float]:
        return {"adv": self.w_adv, "con": self.w_con, "enc": self.w_enc}

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        kw = dict(width=self.width, max_width=self.max_width)
        self.nets_ = nn.ModuleDict({
            "G_E": ConvEncoder(s, c, self.latent_dim, norm="batch", **kw),  # (B, C, S, S) -> (B, L)
            "G_D": ConvDecoder(self.latent_dim, s, c, norm="batch", out_act="tanh", **kw),  # (B, L) -> (B, C, S, S)
            "E": ConvEncoder(s, c, self.latent_dim, norm="batch", **kw),  # (B, C, S, S) -> (B, L)
            "D": ConvEncoder(s, c, 1, norm="batch", **kw),  # (B, C, S, S) -> (B, 1) logit; .features -> (B, W, 4, 4)
        })
        self._make_optimizers()

    def encode_decode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z = G_E(x) (B, L), x' = G_D(z) (B, C, H, W), z' = E(x') (B, L)."""
        z = self.nets_["G_E"](x)
        x_rec = self.nets_["G_D"](z)
        return z, x_rec, self.nets_["E"](x_rec)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.encode_decode(x)[1]

    def g_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        z, x_rec, z_rec = self.encode_decode(x)
        D = self.nets_["D"]
        f_x, f_rec = D.features(x), D.features(x_rec)  # (B, W, 4, 4) each, D in training mode as in the reference
        return ganomaly_g_terms(x, x_rec, f_x, f_rec, z, z_rec), x_rec

    def score_batch(self, x: Tensor) -> Tensor:
        z, _, z_rec = self.encode_decode(x)
        return ganomaly_score(z, z_rec, self.score_p)  # (B,) (2.95)


PRESETS: dict[str, dict] = {
    # 50 epochs: with ~100 training images (6 steps an epoch) 15 epochs leave GANomaly's latent score unformed --
    # one-class digits (0 normal, seeds 0-2) AUROC 0.38 / 0.48 / 0.55 at 15 epochs, 1.00 / 0.997 / 0.995 at 50.
    "cpu": dict(image_size=16, width=16, max_width=64, latent_dim=16, batch_size=16, epochs=50),
}
"""Explicit overrides for small runs: ``anogen.create("ganomaly", **PRESETS["cpu"])`` (one-class digits in seconds)."""
