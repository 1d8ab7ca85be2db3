"""Losses shared by three or more methods, and the GAN training tricks of the thesis (IN / SL / LF).

- :func:`adversarial_loss`: one discriminator / generator loss per sample target, for every loss kind the methods use
  (``bce`` on logits, ``wasserstein`` critic values, ``hinge``, EBGAN's ``energy`` with a margin). Writing every kind
  against a per-sample target in [0, 1] is what lets soft labels and label flipping reach every GAN through one code
  path: target 1 = "real" (x from the data), 0 = "fake".
- :class:`GANTricks`: the fields and helpers of the three stabilisation tricks of the thesis, section 4.2.1
  (``papers/003_5d7919a1dbf94176.txt``, after Salimans et al. 2016 [48]): input noise with a decay over time (IN),
  soft labels (SL), label flipping (LF). Every GAN detector inherits it and routes D's inputs through
  :meth:`GANTricks.d_input` and D's targets through :meth:`GANTricks.d_targets`; none is on by default.
- :func:`feature_matching`, :func:`residual_score` (the AnoGAN / EGBAD / CE-BiGAN score A = (1 - lambda) L_R +
  lambda L_D), :func:`gradient_penalty` (WGAN-GP).

Deviations / choices for the tricks (section 4.2.1 names them without constants; Tables 51-55 are empty):
- IN, one rule for every GAN (thesis: "noise with a decay over time"; the scale is in normalised input units, [-1, 1]
  for tanh images; ``TRICKS["IN"]`` uses 0.1):
  1. where: Gaussian noise N(0, s^2) is added to every input of every discriminator in that discriminator's own
     update step -- images and latents, real and generated alike. The generator / encoder steps evaluate D on clean
     inputs (the tricks regularise D only, as SL and LF, which touch D's targets only).
  2. pairs: an input that a D call takes twice (D_xx's real pair (x, x), D_zz's (z, z)) is noised once and the same
     noisy copy fills both places, so a real pair stays a pair of equal inputs; the fake pair's first half is that
     same copy, its second half (the reconstruction) its own draw.
  3. decay: s = ``input_noise`` * (1 - (e - e0) / n) at 0-based epoch e, linear to 0 over the n epochs from e0 in
     which the noised discriminator trains (:meth:`GANTricks.noise_epochs`): the whole fit for a one-stage GAN,
     f-AnoGAN's GAN stage (its critic stops after it), each stage of the EBGAN family (D in the GAN stage, D_xx /
     D_zz in the encoder stages).
- SL: real targets drawn from U(1 - w, 1) and fake targets from U(0, w) per sample, w = ``soft_label_width`` = 0.3
  (the ranges of the "GAN hacks" list that [48]'s label smoothing led to, clipped to [0, 1] so a BCE target stays a
  probability).
- LF: each D target is replaced by 1 - target with probability ``label_flip`` (``TRICKS["LF"]`` uses 0.05), after
  soft labelling. Only D's targets are touched; the generator / encoder losses keep their hard targets.
- For the non-probabilistic losses a target t in [0, 1] interpolates the two hard cases: Wasserstein t * (-D) +
  (1 - t) * D, EBGAN t * E + (1 - t) * max(0, m - E), hinge t * max(0, 1 - D) + (1 - t) * max(0, 1 + D). Hard
  targets give back each loss exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from anogen.params import flag, non_negative, real, unit_interval

LOSS_KINDS = ("bce", "wasserstein", "hinge", "energy")

TRICKS: dict[str, dict[str, Any]] = {
    "IN": {"input_noise": 0.1},
    "SL": {"soft_labels": True},
    "LF": {"label_flip": 0.05},
}
"""Field overrides that switch each trick on (the settings of the ablation harness, Tables 51-55)."""

TRICK_COMBINATIONS: list[tuple[str, ...]] = [
    (), ("IN",), ("SL",), ("LF",), ("IN", "SL"), ("IN", "LF"), ("SL", "LF"), ("IN", "SL", "LF"),
]
"""The eight rows of Tables 51-55: none, IN, SL, LF, IN+SL, IN+LF, SL+LF, all."""


def trick_overrides(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Field overrides for a combination of trick names, e.g. ``("IN", "LF")``."""
    out: dict[str, Any] = {}
    for n in names:
        if n not in TRICKS:
            raise ValueError(f"unknown training trick {n!r}; known: {', '.join(TRICKS)}")
        out.update(TRICKS[n])
    return out


# ---------------------------------------------------------------------------------------------------- adversarial
def adversarial_loss(out: Tensor, target: Tensor | float, kind: str = "bce", margin: float | None = None) -> Tensor:
    """Mean loss of D's outputs ``out`` (B,) against per-sample targets in [0, 1] (1 = real / data, 0 = fake).

    Args:
        out: logits (``bce``, ``hinge``), critic values (``wasserstein``) or energies (``energy``, >= 0).
        target: (B,) targets or one number for all.
        kind: bce, wasserstein, hinge or energy.
        margin: EBGAN's margin m (``energy`` only).
    """
    out = out.reshape(-1)
    t = torch.as_tensor(target, dtype=out.dtype, device=out.device).expand_as(out)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(out, t)
    if kind == "wasserstein":
        return (t * -out + (1 - t) * out).mean()
    if kind == "hinge":
        return (t * F.relu(1 - out) + (1 - t) * F.relu(1 + out)).mean()
    if kind == "energy":
        if margin is None:
            raise ValueError("the energy loss needs EBGAN's margin m")
        return (t * out + (1 - t) * F.relu(margin - out)).mean()  # eq. (3.7): D(x) + [m - D(G(z))]^+
    raise ValueError(f"loss kind must be one of {', '.join(LOSS_KINDS)}; got {kind!r}")


def feature_matching(f_a: Tensor, f_b: Tensor, p: int = 2, reduction: str = "mean") -> Tensor:
    """Feature-matching distance between two feature batches (B, ...).

    ``reduction="mean"``: one number, the mean of |f_a - f_b|^p over all elements (GANomaly's eq. 2.91 with p = 2).
    ``reduction="none"``: (B,) per-sample p-norms ||f_a - f_b||_p (AnoGAN / EGBAD / ALAD scores with p = 1).
    """
    d = (f_a - f_b).flatten(1)
    if reduction == "mean":
        return d.abs().pow(p).mean()
    if reduction == "none":
        return d.norm(p=p, dim=1)
    raise ValueError(f"reduction must be mean or none, got {reduction!r}")


def residual_score(x: Tensor, x_rec: Tensor, f_x: Tensor, f_rec: Tensor, lam: float = 0.1, p: int = 1) -> Tensor:
    """(B,) A(x) = (1 - lambda) L_R + lambda L_D: AnoGAN (thesis 2.3.1), EGBAD / CE-BiGAN (consistency paper eq. 14).

    L_R = ||x - x_rec||_p and L_D = ||f(x) - f(x_rec)||_p, per sample (L1 norms with p = 1, the papers' default).
    """
    return (1 - lam) * feature_matching(x, x_rec, p, "none") + lam * feature_matching(f_x, f_rec, p, "none")


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] on straight-line interpolates x_hat (Gulrajani et al. 2017).

    One uniform epsilon per sample; the weight (10 in the paper) is the caller's.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x_hat).reshape(-1)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


# ---------------------------------------------------------------------------------------------------- tricks
def add_input_noise(x: Tensor, std: float) -> Tensor:
    """IN: x + N(0, std^2) noise (identity when std is 0)."""
    if std <= 0:
        return x
    return x + std * torch.randn_like(x)


def soft_targets(n: int, real: bool, width: float, device: torch.device) -> Tensor:
    """SL: (n,) targets ~ U(1 - width, 1) for real, U(0, width) for fake."""
    u = torch.rand(n, device=device) * width
    return 1.0 - u if real else u


def flip_targets(t: Tensor, p: float) -> Tensor:
    """LF: each target replaced by 1 - target with probability ``p``."""
    if p <= 0:
        return t
    flip = torch.rand(t.shape, device=t.device) < p
    return torch.where(flip, 1.0 - t, t)


@dataclass(kw_only=True)
class GANTricks:
    """Mixin of every GAN detector: the IN / SL / LF fields (thesis 4.2.1) and the helpers that apply them.

    A GAN's ``train_step`` passes every input of its discriminator(s) in the discriminator's update through
    :meth:`d_input` (the IN rule in the module docstring) and takes every discriminator target from :meth:`d_targets`
    (or uses :meth:`d_loss`); the generator side never sees the tricks.
    """

    input_noise: float = 0.0
    """IN: initial std of Gaussian noise added to D's real and generated inputs, decaying linearly to 0 (0 = off)"""
    soft_labels: bool = False
    """SL: D's targets drawn from U(1 - w, 1) for real and U(0, w) for fake data, w = soft_label_width"""
    soft_label_width: float = 0.3
    """SL: width w of the soft-label intervals"""
    label_flip: float = 0.0
    """LF: probability that each of D's targets is flipped (0 = off)"""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "input_noise": non_negative(), "soft_labels": flag(), "soft_label_width": real(0.0, 0.5),
        "label_flip": unit_interval(),
    }

    def _check_tricks(self) -> None:
        if self.input_noise < 0 or not 0 <= self.label_flip <= 1 or not 0 <= self.soft_label_width <= 0.5:
            raise ValueError(f"need input_noise >= 0, 0 <= label_flip <= 1, 0 <= soft_label_width <= 0.5; got "
                             f"{self.input_noise}, {self.label_flip}, {self.soft_label_width}")

    @property
    def tricks_on(self) -> tuple[str, ...]:
        """Names of the tricks switched on."""
        on = [("IN", self.input_noise > 0), ("SL", self.soft_labels), ("LF", self.label_flip > 0)]
        return tuple(n for n, v in on if v)

    def noise_epochs(self) -> tuple[int, int]:
        """(first epoch, number of epochs) of the stage whose discriminator trains now: IN decays to 0 over it (rule 3
        above). One stage by default: the whole fit."""
        return 0, max(int(getattr(self, "epochs", 1)), 1)

    def input_noise_std(self) -> float:
        """IN scale at the current epoch: input_noise * (1 - (epoch - e0) / n) over :meth:`noise_epochs`."""
        epoch = getattr(self, "epoch_", 0)
        start, n = self.noise_epochs()
        return self.input_noise * max(0.0, 1.0 - (epoch - start) / max(n, 1))

    def d_input(self, x: Tensor) -> Tensor:
        """What D sees of ``x`` (real or generated) during training: x plus the decaying IN noise."""
        return add_input_noise(x, self.input_noise_std()) if self.input_noise > 0 else x

    def d_targets(self, n: int, real: bool, device: torch.device) -> Tensor:
        """(n,) discriminator targets for real (True) or fake (False) samples, with SL and LF applied."""
        if self.soft_labels:
            t = soft_targets(n, real, self.soft_label_width, device)
        else:
            t = torch.full((n,), 1.0 if real else 0.0, device=device)
        return flip_targets(t, self.label_flip)

    def d_loss(self, out: Tensor, real: bool, kind: str = "bce", margin: float | None = None) -> Tensor:
        """Discriminator loss of outputs ``out`` (B,) that should be judged real (True) or fake (False)."""
        out = out.reshape(-1)
        return adversarial_loss(out, self.d_targets(len(out), real, out.device), kind, margin)


def is_gan(cls: type) -> bool:
    """True for detector classes trained adversarially (they inherit :class:`GANTricks`)."""
    return isinstance(cls, type) and issubclass(cls, GANTricks)


# ---- reconstruction losses (LAMP, SSIM)
# LAMP: Park et al., "Neural network training strategy to enhance anomaly detection performance: a perspective on
# reconstruction loss amplification", ICASSP 2024 (papers/001_062f5a639b3079e6.txt), eqs. (1)-(2). SSIM from the
# pytorch_msssim library (its Gaussian window and filter; only the per-pixel map is assembled here).
LAMP_REDUCTIONS = ("mean", "sum", "none")


def lamp_loss(base_elementwise: Tensor, eps: float = 1e-2, detach_max: bool = True,
              reduction: str = "mean") -> Tensor:
    """Loss amplification (LAMP) of an element-wise base loss (B, ...) >= 0, eqs. (1)-(2).

    eq. (2): L' = L / max(L) * (1 - eps), the max taken over the whole batch (every sample, channel and pixel), so
    0 <= L' <= 1 - eps < 1; eq. (1): -log(1 - L') per element, summed over h, w, c per sample.

    Args:
        base_elementwise: the base loss per element, e.g. (x - x_rec)^2, |x - x_rec| or 1 - SSIM map; (B, C, H, W).
        eps: eq. (2)'s epsilon in (0, 1); keeps the largest element's log finite (-log(eps) there). The paper gives
            no value; with a detached max the largest element's gradient is 1 / eps times that of a small error,
            so a tiny eps lets one pixel drive every update (1e-2 here; see detectors/ae.py for measurements).
        detach_max: treat max(L) as a constant in backprop (default). Not detaching makes the element holding the
            max constant (L' = 1 - eps, no gradient) and gives every other element a gradient through the max that
            pushes the max error *up* (d L' / d max < 0), which is not what eq. (1) asks for.
        reduction: ``none`` -> (B,) eq. (1) per sample (sum over h, w, c); ``sum`` -> their sum over the batch;
            ``mean`` -> the mean over every element (eq. (1) / (H W C), averaged over the batch): the same reduction
            as a mean base loss, so LAMP changes the shape of the loss and not the learning-rate scale.
    """
    if not 0.0 < eps < 1.0:
        raise ValueError(f"LAMP's eps must be in (0, 1), got {eps}")
    if reduction not in LAMP_REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(LAMP_REDUCTIONS)}; got {reduction!r}")
    if base_elementwise.dim() < 2:
        raise ValueError(f"expected an element-wise loss (B, ...), got shape {tuple(base_elementwise.shape)}")
    m = base_elementwise.max()  # over the batch, eq. (2)
    if detach_max:
        m = m.detach()
    scaled = base_elementwise / m.clamp_min(torch.finfo(base_elementwise.dtype).tiny) * (1.0 - eps)  # eq. (2)
    amplified = -torch.log1p(-scaled)  # -log(1 - L'), eq. (1)
    if reduction == "mean":
        return amplified.mean()
    per_sample = amplified.flatten(1).sum(1)  # (B,) sum over h, w, c
    return per_sample if reduction == "none" else per_sample.sum()


def ssim_map(x: Tensor, y: Tensor, data_range: float, win_size: int = 11, win_sigma: float = 1.5,
             k: tuple[float, float] = (0.01, 0.03), padding: str = "reflect") -> Tensor:
    """Per-pixel SSIM map (B, C, H', W') of two image batches (B, C, H, W), from pytorch_msssim's Gaussian window.

    pytorch_msssim's ``ssim`` returns only means; this assembles the map from its window (``_fspecial_gauss_1d``)
    and separable filter (``gaussian_filter``) with the same formula and constants (K1, K2 = 0.01, 0.03, an 11-tap
    Gaussian of sigma 1.5). ``padding="reflect"`` reflect-pads both images by win_size // 2 so that the map has one
    value per input pixel (H' = H); ``"valid"`` is the library's own granularity (H' = H - win_size + 1), whose
    per-channel mean is exactly ``pytorch_msssim.ssim(..., size_average=False)``.
    """
    from pytorch_msssim.ssim import _fspecial_gauss_1d, gaussian_filter

    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim_map needs two (B, C, H, W) batches of one shape; got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    if win_size % 2 != 1:
        raise ValueError(f"the SSIM window size must be odd, got {win_size}")
    side = min(x.shape[-2:])
    if padding == "reflect":
        if side <= win_size // 2:
            raise ValueError(f"an SSIM window of {win_size} needs images of at least {win_size // 2 + 1} px, "
                             f"got {side}")
        pad = [win_size // 2] * 4
        x, y = F.pad(x, pad, mode="reflect"), F.pad(y, pad, mode="reflect")
    elif padding == "valid":
        if side < win_size:
            raise ValueError(f"an SSIM window of {win_size} needs images of at least {win_size} px, got {side}")
    else:
        raise ValueError(f"padding must be reflect or valid, got {padding!r}")
    c = x.shape[1]
    win = _fspecial_gauss_1d(win_size, win_sigma).repeat(c, 1, 1, 1).to(x.device, x.dtype)  # (C, 1, 1, win)
    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
    mu_x, mu_y = gaussian_filter(x, win), gaussian_filter(y, win)
    var_x = gaussian_filter(x * x, win) - mu_x.pow(2)
    var_y = gaussian_filter(y * y, win) - mu_y.pow(2)
    cov = gaussian_filter(x * y, win) - mu_x * mu_y
    return (2 * mu_x * mu_y + c1) / (mu_x.pow(2) + mu_y.pow(2) + c1) * (2 * cov + c2) / (var_x + var_y + c2)


def reconstruction_loss(x: Tensor, x_rec: Tensor, kind: str = "l2",
                        value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Element-wise base reconstruction loss (B, C, H, W): ``l2`` (x - x_rec)^2, ``l1`` |x - x_rec|, or
    ``ssim`` 1 - SSIM map (reflect-padded, one value per pixel).

    For SSIM both images are first mapped from ``value_range`` (the pixel scale, (-1, 1) for tanh images) to [0, 1]:
    SSIM's luminance term assumes non-negative intensities; on [-1, 1] data an inverted image scores SSIM ~ +1
    (luminance and structure terms both ~ -1), a degenerate optimum an AE falls into.
    """
    if kind == "l2":
        return (x_rec - x).pow(2)
    if kind == "l1":
        return (x_rec - x).abs()
    if kind == "ssim":
        lo, hi = value_range
        if not hi > lo:
            raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
        return 1.0 - ssim_map((x_rec - lo) / (hi - lo), (x - lo) / (hi - lo), data_range=1.0)
    raise ValueError(f"base loss must be l2, l1 or ssim; got {kind!r}")
