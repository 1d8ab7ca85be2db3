"""Skip-GANomaly: GANomaly with a U-Net generator (skip connections) and D's features in place of the second encoder.

Paper: Akcay, Atapour-Abarghouei & Breckon, "Skip-GANomaly: Skip Connected and Adversarially Trained Encoder-Decoder
Anomaly Detection", IJCNN 2019 (arXiv:1901.08954), as specified in the thesis ``papers/003_5d7919a1dbf94176.txt``,
section 2.3.4, eqs. (2.94), (2.96), (2.97), and Appendix A.5 (Table A5).
Reference code: ``samet-akcay/skip-ganomaly`` (PyTorch; ``research/reference-implementations.md`` section 5.2).
Built on :mod:`anogen.detectors.ganomaly` (its training step, D handling and shared fields).

The generator G is an encoder-decoder whose every encoder feature map is concatenated to the decoder layer of the
same size. D is a DCGAN encoder ending in a feature vector f(x) and a logit. G is trained on

    L = w_adv L_adv + w_con L_con + w_lat L_lat                            (2.94 with 2.96 as the latent term)
    L_adv = BCE(D(G(x)), 1)                   adversarial loss (the reference's; GANomaly matches features instead)
    L_con = || x - G(x) ||_1                  contextual loss
    L_lat = || f(x) - f(G(x)) ||_2            latent loss from D's features                 (2.96)

with w_adv = 1, w_con = 50, w_lat = 1; D on BCE, real x vs. the detached G(x). The score is (2.97)

    A(x) = lam R(x) + (1 - lam) L(x),   R = reconstruction (contextual) error, L = latent error, lam = 0.9.

Deviations / choices:

- Generator: the reference's pix2pix U-Net, for any power-of-two size: log2(image_size) stride-2 4x4 conv levels down
  to a 1x1 bottleneck, widths ``width`` = 64 doubling up to ``max_width`` = 512 (64, 128, 256, 512, 512 at 32 px);
  down blocks LeakyReLU(0.2), up blocks ReLU + 4x4 stride-2 transposed convs; BatchNorm everywhere except the
  outermost down conv and the innermost (bottleneck) down conv; tanh output; no dropout; conv biases only on the
  output layer. The skips carry each down level's activated output (LeakyReLU(BN(conv))): that is what the reference
  concatenates, because its in-place LeakyReLU rewrites the skip tensor before the concatenation. The thesis' Table
  A5 describes its own port (5x5 kernels, no output activation listed); we follow the reference.
- D: the reference's: DCGAN encoder down to 4x4, then a 4x4 valid conv to a ``latent_dim`` = 100 vector f(x) (no
  activation; the "feature layer" of 2.96), then one linear logit (the reference's 3x3 padded conv on the 1x1 map uses
  only its centre tap, i.e. a linear map; bias-free as there).
- w_con = 50: the thesis gives no value for Skip-GANomaly (nor for GANomaly); the reference uses 50 and the paper
  reportedly 40 (unverified, the reference's issue #12). We take the reference's 50 (``w_con=40`` for the paper's).
- Norms: L_con is the mean absolute error, L_lat the mean of squares (the reference's ``L1Loss`` / l2_loss).
- Score (2.97): R is "the contextual loss" (thesis), so by default R = mean |x - G(x)| per image (``rec_p=1``);
  the reference uses the mean squared error for R (``rec_p=2``). L = mean (f(x) - f(G(x)))^2 per image (2.96, as
  the reference). lam = 0.9 weights R (thesis and reference). No min-max normalisation over the test set (reference;
  needs the whole test set, AUROC unchanged). Eval mode (BatchNorm running statistics), not the reference's
  training-mode scoring; no best-epoch choice on the test set.
- D's loss: BCE(D(x), 1) + BCE(D(G(x)), 0) (the reference's sum) through the tricks mixin, plus the reference's
  w_lat L_lat (``d_latent=True``, default): D is also trained to keep f(x) and f(G(x)) close. The thesis and paper
  are silent on D's objective; the reference adds the term by back-propagating a graph already used for G's step (an
  in-place error on current PyTorch): here f(x) and f(G(x)) are recomputed for the D step (on D's IN inputs). Kept
  because it decides whether the method works: without it (``d_latent=False``) D's features grow without bound
  (L_lat ~ 15 after 15 epochs vs ~0.02 with it), L dominates the score and ranks anomalies as MORE normal: one-class
  digits (``PRESETS["cpu"]``, 0 normal) AUROC 0.78 / 0.03 for seeds 0 / 1 without it, 0.999 with it.
- Update order, D re-initialisation below 1e-5, Adam lr 2e-4 / betas (0.5, 0.999), 15 epochs, batch 64, 32 px, the
  tricks on D's step only: as GANomaly (see ``ganomaly.py``). The CIFAR script of the reference trains 25 epochs;
  its learning-rate scheduler is never stepped, so the rate stays constant, as here. The reference's input noise is
  an uninitialised tensor (a bug) and is left out.
- ``map_batch`` (an extra): per-pixel |x - G(x)|, the map of R.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.detectors.ganomaly import GANomalyBase
from anogen.losses import adversarial_loss, feature_matching
from anogen.nets import ConvEncoder
from anogen.params import flag, non_negative, one_of, unit_interval


# ---------------------------------------------------------------------------------------------------- modules
class UNet(nn.Module):
    """(B, C, S, S) -> (B, C, S, S): pix2pix U-Net with log2(S) levels down to 1x1 and a skip at every level."""

    def __init__(self, image_size: int, channels: int, *, width: int = 64, max_width: int = 512,
                 slope: float = 0.2) -> None:
        super().__init__()
        levels = int(round(math.log2(image_size)))
        if 2**levels != image_size or levels < 2:
            raise ValueError(f"the U-Net needs a power-of-two image size >= 4, got {image_size}")
        widths = [min(width * 2**i, max_width) for i in range(levels)]  # 64, 128, 256, 512, 512 at 32 px
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        for i, w in enumerate(widths):
            c_in = channels if i == 0 else widths[i - 1]
            layers: list[nn.Module] = [nn.Conv2d(c_in, w, 4, 2, 1, bias=False)]  # side / 2
            if 0 < i < levels - 1:  # no BN on the outermost and the innermost down conv
                layers.append(nn.BatchNorm2d(w))
            if i < levels - 1:  # the bottleneck's activation is the up block's ReLU
                layers.append(nn.LeakyReLU(slope))
            self.down.append(nn.Sequential(*layers))
        for i, w in enumerate(widths):  # up[i] undoes down[i]
            c_in = w if i == levels - 1 else 2 * w  # the innermost gets no skip; the others [skip, from below]
            if i == 0:
                layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, widths[i - 1], 4, 2, 1, bias=False),
                          nn.BatchNorm2d(widths[i - 1])]
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for down in self.down:
            h = down(h)
            skips.append(h)  # level i: (B, widths[i], S / 2^(i+1), S / 2^(i+1))
        h = self.up[-1](skips[-1])  # bottleneck (B, widths[-1], 1, 1) -> (B, widths[-2], 2, 2)
        for i in range(len(self.up) - 2, -1, -1):
            h = self.up[i](torch.cat([skips[i], h], 1))  # skip connection by channel concatenation
        return h  # (B, C, S, S) in [-1, 1]


class FeatureDiscriminator(nn.Module):
    """(B, C, S, S) -> (B, 1) logit; ``features`` gives the (B, latent_dim) vector f(x) the logit is read from."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, *, width: int = 64,
                 max_width: int = 512) -> None:
        super().__init__()
        self.body = ConvEncoder(image_size, channels, latent_dim, width=width, max_width=max_width, norm="batch")
        self.head = nn.Linear(latent_dim, 1, bias=False)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # (B, latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))  # (B, 1)


# ---------------------------------------------------------------------------------------------------- losses
def skip_ganomaly_g_terms(x: Tensor, x_rec: Tensor, logit_rec: Tensor, f_x: Tensor,
                          f_rec: Tensor) -> dict[str, Tensor]:
    """The three generator terms, unweighted: x, x_rec (B, C, H, W); D's logits of x_rec (B,); f (B, F)."""
    return {
        "adv": adversarial_loss(logit_rec, 1.0, "bce"),  # BCE(D(G(x)), 1), hard target (G's side)
        "con": (x - x_rec).abs().mean(),  # mean |x - G(x)|
        "lat": feature_matching(f_x, f_rec, p=2, reduction="mean"),  # (2.96): mean (f(x) - f(G(x)))^2
    }


def skip_ganomaly_score(x: Tensor, x_rec: Tensor, f_x: Tensor, f_rec: Tensor, lam: float = 0.9,
                        rec_p: int = 1) -> Tensor:
    """(B,) (2.97): lam R + (1 - lam) L, R = mean |x - G(x)|^rec_p, L = mean (f(x) - f(G(x)))^2 per sample."""
    r = (x - x_rec).abs().pow(rec_p).flatten(1).mean(1)  # (B,)
    lat = (f_x - f_rec).pow(2).flatten(1).mean(1)  # (B,)
    return lam * r + (1 - lam) * lat


# ---------------------------------------------------------------------------------------------------- Skip-GANomaly
@register("skip_ganomaly")
@dataclass(kw_only=True)
class SkipGANomaly(GANomalyBase):
    """Skip-GANomaly (Akcay et al., IJCNN 2019): U-Net G; score = lam R + (1 - lam) L (2.97)."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "w_lat": non_negative(), "lam": unit_interval(), "rec_p": one_of((1, 2)), "d_latent": flag(),
    }

    w_lat: float = 1.0
    """weight of the latent loss on D's features (2.96; reference: 1)"""
    lam: float = 0.9
    """weight lambda of the reconstruction error R in the score (2.97); 1 - lambda weights the latent error L"""
    rec_p: int = 1
    """R in the score: 1 = mean |x - G(x)| (thesis: the contextual loss), 2 = mean squared error (reference)"""
    d_latent: bool = True
    """also train D to minimise w_lat L_lat (the reference's D loss; False = plain GAN discriminator loss)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.lam <= 1.0 or self.rec_p not in (1, 2):
            raise ValueError(f"need 0 <= lam <= 1 and rec_p in (1, 2); got lam={self.lam}, rec_p={self.rec_p}")

    def loss_weights(self) -> dict[str, float]:
        return {"adv": self.w_adv, "con": self.w_con, "lat": self.w_lat}

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        kw = dict(width=self.width, max_width=self.max_width)
        self.nets_ = nn.ModuleDict({
            "G": UNet(s, c, **kw),  # (B, C, S, S) -> (B, C, S, S)
            "D": FeatureDiscriminator(s, c, self.latent_dim, **kw),  # -> (B, 1); .features -> (B, latent_dim)
        })
        self._make_optimizers()

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.nets_["G"](x)

    def g_terms(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        D = self.nets_["D"]
        x_rec = self.reconstruct(x)  # (B, C, H, W)
        f_rec = D.features(x_rec)  # (B, F)
        return skip_ganomaly_g_terms(x, x_rec, D.head(f_rec), D.features(x), f_rec), x_rec

    def d_objective(self, x: Tensor, fake: Tensor) -> Tensor:
        D = self.nets_["D"]
        f_real, f_fake = D.features(self.d_input(x)), D.features(self.d_input(fake))  # (B, F) each
        loss = self.d_loss(D.head(f_real), real=True) + self.d_loss(D.head(f_fake), real=False)  # reference: sum
        if self.d_latent:  # the reference's extra term, recomputed here rather than reusing G's graph
            loss = loss + self.w_lat * feature_matching(f_real, f_fake, p=2, reduction="mean")
        return loss

    def score_batch(self, x: Tensor) -> Tensor:
        D = self.nets_["D"]
        x_rec = self.reconstruct(x)
        return skip_ganomaly_score(x, x_rec, D.features(x), D.features(x_rec), self.lam, self.rec_p)  # (B,) (2.97)


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, width=16, max_width=64, latent_dim=16, batch_size=16, epochs=15),
}
"""Explicit overrides for small runs: ``anogen.create("skip_ganomaly", **PRESETS["cpu"])`` (one-class digits)."""
