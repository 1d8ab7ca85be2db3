"""Consistency-ensured BiGAN: BiGAN plus image / latent consistency losses and a projection discriminator.

Paper: Komoto, Aizawa, Kato, "Consistency Ensured Bi-directional GAN for Anomaly Detection", IW-FCV 2020
(``papers/002_28b0c4576d08a753.txt``): eqs. (11)-(12) consistency losses, eq. (13) projection discriminator,
Algorithm 1 (training), eqs. (14)-(16) score, section 4 settings, Table 1 / Fig. 5 variants.
Reference code: none public (``research/reference-implementations.md`` section 3a); CBiGAN
(``fabiocarrara/cbigan-ad``, section 3b) is a different method (WGAN-GP, concatenation) and was not followed.

A change of BiGAN (``bigan.py``, imported below): the encoder E and generator G also minimise
L_consistency = E_x ||x - G(E(x))||_1 + E_z ||z - E(G(z))||_1 (eqs. 11-12), weighted against the adversarial loss as
Algorithm 1 writes it, L_E = L_G = alpha L_consistency + (1 - alpha) L_adversarial with alpha = 0.9; and the
discriminator is a projection discriminator (eq. 13): h = f_zdim(GSP(phi(x))), D(x, z) = f_1(h) + <h, z>.
``discriminator`` ("projection" / "concat") and ``consistency`` (True / False) reach all four BiGAN rows of Table 1.

Deviations / choices:

- Labels: Algorithm 1 writes D's loss with the generated pair (G(z), z) as "real" and the encoded pair (x, E(x)) as
  "fake", and E / G's adversarial loss the other way round; eq. (6) has the opposite labelling. The two are the same
  game with D's logit negated. We keep eq. (6)'s labels (D: (x, E(x)) -> 1, (G(z), z) -> 0; E / G: the flipped hard
  targets, which is Algorithm 1's L_adversarial in eq. (6)'s labels), so the ``ce`` score of eq. (9) keeps its
  meaning. L_adversarial is the sum of the two mean cross-entropies, as Algorithm 1 writes it.
- Consistency: per-sample L1 norms (sums over pixels / latent dimensions) averaged over the batch, the image and
  latent terms added with equal weight: Algorithm 1 writes (1/M) sum_i ||x_i - x^_i||_1, a norm per sample, not a
  mean per pixel. Both terms reach both E and G. z ~ N(0, I), the same z as the adversarial term. With alpha = 0.9
  that makes the consistency term dominate: measured on the CPU preset (one-class digits 0, 16 px, latent 32, seed
  0, 20 epochs; epoch means): adversarial L_E + L_G 8.5 -> 11.1, image consistency 155 -> 99, latent consistency
  26.1 -> 23.0 (its value for E(G(z)) = 0 is 32 sqrt(2/pi) = 25.5), so alpha L_cons is ~100x (1 - alpha) L_adv.
  We keep the paper's literal loss (the paper's 32 px MNIST with latent 200 gives the same order of ratio); Adam
  normalises each parameter's step, not the ratio of the two terms, so the adversarial term is a small correction.
  Per-element means instead (both terms ~0.6-0.8, the same order as L_adv) did worse in the same runs: test AUROC
  0.932 / 0.03 (normal 0 / 1) against 0.991 / 0.546 with the paper's sums, and neither consistency term moved.
- BatchNorm statistics: E's running statistics come from real images only -- the consistency pass E(G(z)) runs in
  training mode with batch statistics but does not update them (``running_stats_frozen``), as scoring encodes real
  images. G's running statistics are updated by G(z) (prior latents) and G(E(x)) (encoded latents, the last pass of
  each step, what scoring feeds G).
- Update order: Algorithm 1 computes every gradient and then updates E, G, D; we update D first and then E and G
  against the updated D (as BiGAN here and the BiGAN / EGBAD training the paper builds on).
- Projection D (eq. 13): phi = DCGAN stride-2 conv stages down to 4x4 (widths from ``width`` / ``max_width``,
  LeakyReLU 0.2), GSP = global *sum* pooling over the 4x4 map, f_zdim and f_1 linear layers with no activation
  between them (eq. 13 has none); no embedding layer (z is continuous, as the paper says).
- Normalisation (section 4: BatchNorm on all conv layers, spectral norm on D's conv layers): ``d_norm`` =
  ``spectral_batch``: spectral norm on every conv and linear layer of D (the linear ones too, as in Miyato & Koyama's
  projection discriminator) and BatchNorm after every D conv but the first (the DCGAN convention, also for E);
  G and E use BatchNorm.
- f of the feature-matching score (eq. 15, which the paper writes as f(x) - f(G(x, E(x))); we read it as eq. (8)'s
  f(x, E(x)) - f(G(E(x)), E(x))): for the projection D, h = f_zdim(GSP(phi(x))), the layer before the output (it
  depends on the image only); for the concatenating D, its joint feature layer, as BiGAN.
- Defaults (section 4): Adam lr 1e-4, betas (0.9, 0.999) for E, G and D; alpha = 0.9; lambda = 0.1 (the BiGAN /
  EGBAD score weight the paper inherits). Silent in the paper, taken from BiGAN / EGBAD: latent 200, batch 100,
  100 epochs, 32 px MNIST, DCGAN widths (``hidden`` only sizes the concatenating D). D dropout 0 (the paper
  names none). No weight EMA (the paper names none; ``ema_decay`` turns it on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from anogen._registry import register
from anogen.detectors.bigan import BiGAN, conv_trunk
from anogen.losses import feature_matching
from anogen.nets import running_stats_frozen, stage_widths
from anogen.params import flag, one_of, unit_interval

DISCRIMINATORS = ("projection", "concat")


# ---------------------------------------------------------------------------------------------------- modules
class ProjectionDiscriminator(nn.Module):
    """Eq. (13): D(x, z) = f_1(h) + <h, z> with h = f_zdim(GSP(phi(x))); returns (logit (B,), h (B, L))."""

    def __init__(self, image_size: int, in_channels: int, latent_dim: int, *, width: int, max_width: int,
                 norm: str, dropout: float) -> None:
        super().__init__()
        self.phi = conv_trunk(image_size, in_channels, width=width, max_width=max_width, norm=norm, dropout=dropout)
        c = stage_widths(image_size, width, max_width)[-1]
        sn = spectral_norm if norm.startswith("spectral") else (lambda m: m)
        self.f_zdim = sn(nn.Linear(c, latent_dim))  # GSP(phi(x)) (B, W) -> h (B, L)
        self.f_1 = sn(nn.Linear(latent_dim, 1))  # h -> (B, 1)

    def forward(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.f_zdim(self.phi(x).sum(dim=(2, 3)))  # GSP: sum over the (4, 4) map -> (B, W) -> (B, L)
        return self.f_1(h).squeeze(1) + (h * z).sum(1), h  # (B,) eq. (13), (B, L)


# ---------------------------------------------------------------------------------------------------- losses
def consistency_losses(x: Tensor, x_rec: Tensor, z: Tensor, z_rec: Tensor) -> tuple[Tensor, Tensor]:
    """Eqs. (11)-(12): (mean over the batch of ||x - G(E(x))||_1, mean of ||z - E(G(z))||_1)."""
    return feature_matching(x, x_rec, 1, "none").mean(), feature_matching(z, z_rec, 1, "none").mean()


# ---------------------------------------------------------------------------------------------------- detector
@register("ce_bigan")
@dataclass(kw_only=True)
class CEBiGAN(BiGAN):
    """Consistency-ensured BiGAN (Komoto et al. 2020): BiGAN + consistency losses + projection discriminator."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "discriminator": one_of(DISCRIMINATORS), "consistency": flag(), "alpha": unit_interval(),
    }

    discriminator: str = "projection"
    """joint discriminator: projection (eq. 13) or concat (BiGAN / EGBAD's concatenation)"""
    consistency: bool = True
    """add the image and latent consistency losses (eqs. 11-12) to the E and G losses"""
    alpha: float = 0.9
    """weight of the consistency loss against the adversarial loss: alpha L_cons + (1 - alpha) L_adv (Algorithm 1)"""
    d_norm: str = "spectral_batch"
    """normalisation of D's layers: spectral norm + BatchNorm (section 4), spectral, batch or none"""
    dropout: float = 0.0
    """dropout rate after every activation of D during training (paper: none)"""
    lr_e: float = 1e-4
    """Adam learning rate of E (section 4)"""
    lr_g: float = 1e-4
    """Adam learning rate of G (section 4)"""
    lr_d: float = 1e-4
    """Adam learning rate of D (section 4)"""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas of the three optimisers (section 4)"""
    ema_decay: float = 0.0
    """decay of a weight EMA used for scoring (paper: none, 0 = off)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"discriminator must be one of {', '.join(DISCRIMINATORS)}; got {self.discriminator!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha is a weight in [0, 1]; got {self.alpha}")

    def make_discriminator(self, channels: int, size: int) -> nn.Module:
        if self.discriminator == "concat":
            return super().make_discriminator(channels, size)
        return ProjectionDiscriminator(size, channels, self.latent_dim, width=self.width, max_width=self.max_width,
                                       norm=self.d_norm, dropout=self.dropout)

    def encoder_generator_loss(self, x: Tensor, z: Tensor, z_enc: Tensor,
                               x_gen: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Algorithm 1: L_E = L_G = alpha L_consistency + (1 - alpha) L_adversarial (one loss, both nets)."""
        adv, logs = super().encoder_generator_loss(x, z, z_enc, x_gen)
        if not self.consistency:
            return adv, logs
        x_rec = self.nets_["G"](z_enc)  # (B, C, S, S) x^ = G(E(x))
        with running_stats_frozen(self.nets_["E"]):  # E's BatchNorm statistics come from real images only
            z_rec = self.nets_["E"](x_gen)  # (B, L) z^ = E(G(z)); normalised with this batch's statistics
        cons_x, cons_z = consistency_losses(x, x_rec, z, z_rec)  # eqs. (11), (12)
        loss = self.alpha * (cons_x + cons_z) + (1 - self.alpha) * adv
        return loss, {**logs, "cons_x": cons_x.item(), "cons_z": cons_z.item()}


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, width=16, max_width=64, latent_dim=32, hidden=128, batch_size=16, epochs=20),
}
"""Explicit overrides for small runs: ``anogen.create("ce_bigan", **PRESETS["cpu"])`` (one-class digits in seconds)."""
