"""Convolutional VAE with a Gaussian decoder, scored by the unregularized score M(x) (or by D, A or the full ELBO).

Paper: Matsubara, Hama, Tachibana, Uehara, "Deep Generative Model using Unregularized Score for Anomaly Detection with
Heterogeneous Complexity", IEEE Trans. Cybernetics 2020, arXiv:1807.05800 (``papers/004_41020bdc449fbf6e.txt``):
eqs. (3)-(6), section III-A (the score parts D, A, M), III-C (why M), V-A (architecture, optimizer).
Reference code: none public (``research/reference-implementations.md`` section 8); every choice below is ours.

The encoder gives the mean mu_z and log-variance log sigma_z^2 of q(z|x) = N(mu_z, diag sigma_z^2); the decoder gives a
per-pixel mean mu_x and log-variance log sigma_x^2 of p(x|z) = N(mu_x, diag sigma_x^2). Training minimises the
negative ELBO with one reparameterised sample z = mu_z + sigma_z * eps per image (eq. 4). At test time z = mu_z (the
MAP estimate) and the negative ELBO splits into L(x) = D(x) + A(x) + M(x) (eqs. 5-6):

- D (``score="kl"``): KL(q(z|x) || N(0, I)), the regularization term;
- A (``score="lognorm"``): sum_i 1/2 log(2 pi sigma_x_i^2), the log-normalizing constant;
- M (``score="unregularized"``, the default): sum_i 1/2 (mu_x_i - x_i)^2 / sigma_x_i^2, the unregularized score;
- L (``score="elbo"``): their sum, the ordinary anomaly score.

Deviations / choices (the paper is silent on each):

- Decoder (V-A: "a structure paired up with the encoder"): a fully connected layer to the encoder's last feature map
  (N_c 2^(N_conv-1) channels, side / 2^N_conv), BatchNorm + ReLU, then N_conv 4x4 stride-2 transposed convolutions
  halving the channels, each but the last followed by BatchNorm + ReLU; the last gives 2C channels: mu_x (first C)
  and the raw log-variance (last C). Layers followed by BatchNorm have no bias (it would be cancelled). PyTorch's
  default initialisation (the paper used PyTorch 0.4.1 and names no other).
- mu_x is linear (no tanh / sigmoid): the paper's p(x|z) is a Gaussian on the real line, and a linear mean fits every
  ``normalize`` setting (the default is the library's [-1, 1] scaling).
- log sigma_x^2 is soft-clamped to [``logvar_min``, ``logvar_max``] = [-6, 4] (sigma_x in [0.05, 7.4], for data in
  [-1, 1] a floor of about 6 grey levels of 255): ``lo + softplus(raw - lo)``, then ``hi - softplus(hi - .)``, the
  identity well inside the range, smooth at the edges. Without a floor the likelihood of pixels that are constant in
  the training data (image borders, a black background) is unbounded: sigma_x -> 0 drives A to -inf, and M then
  punishes the tiniest deviation there without limit. On an erased-patch toy with sklearn digits (16 px, one seed)
  M's AUROC went 0.79 / 0.88 / 0.90 for floors -12 / -6 / -4; -6 keeps fine precision for natural images. The floor
  can undershoot by log(1 + e^-(hi - lo)). log sigma_z^2 is the plain linear output, as V-A says ("followed by the
  identity function"); the KL term keeps it bounded.
- Negative ELBO per image: sums over pixels and latent units (eqs. 5-6, constant 1/2 log 2 pi included in A), mean
  over the batch. One sample of z per image and step (as Kingma & Welling with L = 1).
- Adam with lr 1e-3, betas (0.9, 0.999) and weight decay 1e-4 (V-A), the L2 penalty coupled to the gradient as in
  PyTorch's ``Adam(weight_decay=...)`` (what the paper's PyTorch 0.4.1 did), on every parameter.
- Batch size 100 (V-A: "all the other conditions followed the original study [9]", whose minibatch is M = 100).
  Epochs: paper silent; the library default.
- Defaults are the toy (SVHN, 32 x 32) setting of V-A / V-C: N_conv = 4, N_c = 32 and N_z = 500 (the best N_z of
  Fig. 9). The manufacturing setting (96 x 96 crops, N_conv = 5, N_c = 32, N_z = 50: Table I, screw) is
  ``n_conv=5, n_channels=32, latent_dim=50`` with the base patch mode (``patch_size=96, patch_stride=16``: random
  crops for training, the maximum over sliding windows for scoring, IV-B). Any side divisible by 2^N_conv works
  (96 / 2^5 = 3); others are refused.
- Scores, ``score_parts`` and ``map_batch`` use the MAP latent z = mu_z in eval mode (BatchNorm running
  statistics). ``map_batch`` is the per-pixel M term summed over channels (Fig. 11 shows such maps per patch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anogen._registry import register
from anogen.detector import Detector
from anogen.params import integer, non_negative, one_of, positive, real, tuple_of

SCORES = {"unregularized": "M", "elbo": "L", "kl": "D", "lognorm": "A"}
"""``score`` field value -> the letter of the paper's eqs. (5)-(6) (and the key in ``score_parts``)."""

LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------------- modules
def _conv_block(c_in: int, c_out: int, transpose: bool) -> list[nn.Module]:
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return [conv(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class VAEEncoder(nn.Module):
    """(B, C, H, W) -> mu_z, log sigma_z^2, each (B, N_z): N_conv 4x4 stride-2 convs + BN + ReLU, one linear layer."""

    def __init__(self, in_channels: int, height: int, width: int, n_conv: int, n_channels: int,
                 latent_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for n in range(n_conv):  # layer n + 1 has N_c * 2^n channels (V-A)
            layers += _conv_block(c, n_channels * 2**n, transpose=False)
            c = n_channels * 2**n
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(c * (height >> n_conv) * (width >> n_conv), 2 * latent_dim)  # identity activation
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.fc(self.body(x).flatten(1))  # (B, 2 N_z)
        return h[:, : self.latent_dim], h[:, self.latent_dim :]  # mu_z, log sigma_z^2


class VAEDecoder(nn.Module):
    """z (B, N_z) -> mu_x, raw log-variance, each (B, C, H, W): the encoder mirrored (linear, transposed convs)."""

    def __init__(self, out_channels: int, height: int, width: int, n_conv: int, n_channels: int,
                 latent_dim: int) -> None:
        super().__init__()
        c = n_channels * 2 ** (n_conv - 1)
        self.shape = (c, height >> n_conv, width >> n_conv)
        self.fc = nn.Linear(latent_dim, c * self.shape[1] * self.shape[2], bias=False)
        self.fc_act = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for n in reversed(range(1, n_conv)):  # N_c 2^n -> N_c 2^(n-1)
            layers += _conv_block(n_channels * 2**n, n_channels * 2 ** (n - 1), transpose=True)
        layers.append(nn.ConvTranspose2d(n_channels, 2 * out_channels, 4, 2, 1))  # mu_x and log sigma_x^2
        self.body = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.fc_act(self.fc(z).view(-1, *self.shape))  # (B, N_c 2^(N_conv-1), H / 2^N_conv, W / 2^N_conv)
        out = self.body(h)  # (B, 2C, H, W)
        return out[:, : self.out_channels], out[:, self.out_channels :]


def soft_clamp(x: Tensor, lo: float, hi: float) -> Tensor:
    """Smooth clamp to [lo, hi]: the identity well inside, softplus-rounded at both edges."""
    return hi - F.softplus(hi - (lo + F.softplus(x - lo)))


# ---------------------------------------------------------------------------------------------------- the score parts
def pixel_m(x: Tensor, mu_x: Tensor, logvar_x: Tensor) -> Tensor:
    """Per-element summand of M in eq. (6): 1/2 (mu_x_i - x_i)^2 / sigma_x_i^2, shape of ``x``."""
    return 0.5 * (mu_x - x).pow(2) * torch.exp(-logvar_x)


def vae_terms(x: Tensor, mu_x: Tensor, logvar_x: Tensor, mu_z: Tensor, logvar_z: Tensor) -> dict[str, Tensor]:
    """The parts of the negative ELBO per sample, eqs. (5)-(6), each (B,).

    Args:
        x: inputs (B, ...); mu_x, logvar_x: decoder mean and log sigma_x^2, same shape, at the chosen z.
        mu_z, logvar_z: encoder mean and log sigma_z^2, (B, N_z).
    Returns:
        ``{"D": KL(q(z|x) || N(0, I)), "A": log-normalizing constant, "M": unregularized score, "L": D + A + M}``.
    """
    # eq. (6): D(x) = sum_j 1/2 (-log sigma_zj^2 - 1 + sigma_zj^2 + mu_zj^2)
    d = 0.5 * (-logvar_z - 1.0 + torch.exp(logvar_z) + mu_z.pow(2)).sum(1)
    # eq. (6): A(x) = sum_i 1/2 log(2 pi sigma_xi^2)
    a = 0.5 * (LOG_2PI + logvar_x).flatten(1).sum(1)
    # eq. (6): M(x) = sum_i 1/2 (mu_xi - x_i)^2 / sigma_xi^2
    m = pixel_m(x, mu_x, logvar_x).flatten(1).sum(1)
    return {"D": d, "A": a, "M": m, "L": d + a + m}  # eq. (5): L(x) = D(x) + A(x) + M(x)


# ---------------------------------------------------------------------------------------------------- the detector
@register("vae")
@dataclass(kw_only=True)
class VAE(Detector):
    """Convolutional VAE with a Gaussian decoder; score = M(x), the unregularized score (eq. 6), by default."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "n_conv": integer(1), "n_channels": integer(1), "latent_dim": integer(1), "score": one_of(tuple(SCORES)),
        "lr": positive(), "betas": tuple_of(2, real(0.0, 1.0, hi_open=True)), "weight_decay": non_negative(),
        "logvar_min": real(), "logvar_max": real(),
    }

    image_size: int = 32
    """image side (the toy SVHN setting: 32 x 32); must be divisible by 2^n_conv"""
    batch_size: int = 100
    """training mini-batch size (paper: as Kingma & Welling, M = 100)"""
    n_conv: int = 4
    """N_conv, convolution layers of the encoder (and transposed ones of the decoder): 4 toy, 5 manufacturing (V-A)"""
    n_channels: int = 32
    """N_c, channels of the first conv layer; layer n has N_c * 2^(n-1) (V-A)"""
    latent_dim: int = 500
    """N_z, dimension of the latent z (V-C: best 500 on the toy data; Table I: 50 screw, 10 gear)"""
    score: Literal["unregularized", "elbo", "kl", "lognorm"] = "unregularized"
    """anomaly score: unregularized (M), elbo (L = D + A + M), kl (D) or lognorm (A), eqs. (5)-(6)"""
    lr: float = 1e-3
    """Adam learning rate alpha (V-A)"""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam beta_1, beta_2 (V-A)"""
    weight_decay: float = 1e-4
    """Adam weight decay (V-A)"""
    logvar_min: float = -6.0
    """soft lower bound of the decoder's log sigma_x^2 (paper silent; keeps the likelihood bounded)"""
    logvar_max: float = 4.0
    """soft upper bound of the decoder's log sigma_x^2 (paper silent)"""

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}; got {self.score!r}")
        if self.n_conv < 1 or self.n_channels < 1 or self.latent_dim < 1:
            raise ValueError(f"need n_conv, n_channels, latent_dim >= 1; got n_conv={self.n_conv}, "
                             f"n_channels={self.n_channels}, latent_dim={self.latent_dim}")
        if not self.logvar_min < self.logvar_max:
            raise ValueError(f"need logvar_min < logvar_max; got {self.logvar_min} and {self.logvar_max}")
        step, patch = 2**self.n_conv, getattr(self, "patch_size", 0)
        side, what = (patch, "patch_size") if patch > 0 else (self.image_size, "image_size")
        if side % step:
            raise ValueError(f"{what} must be divisible by 2^n_conv = {step} (each of the n_conv={self.n_conv} "
                             f"stride-2 layers halves it); got {what}={side}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, h, w = input_shape
        step = 2**self.n_conv
        if h % step or w % step:
            raise ValueError(f"vae needs height and width divisible by 2^n_conv = {step}; got {h} x {w}")
        args = (h, w, self.n_conv, self.n_channels, self.latent_dim)
        self.nets_ = nn.ModuleDict({"enc": VAEEncoder(c, *args), "dec": VAEDecoder(c, *args)})
        self.opt_ = torch.optim.Adam(self.nets_.parameters(), lr=self.lr, betas=self.betas,
                                     weight_decay=self.weight_decay)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z (B, N_z) -> mu_x and the bounded log sigma_x^2, each (B, C, H, W)."""
        mu_x, raw = self.nets_["dec"](z)
        return mu_x, soft_clamp(raw, self.logvar_min, self.logvar_max)

    def terms(self, x: Tensor, sample: bool = False) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """D, A, M, L per image (eqs. 5-6) at z = mu_z (``sample=False``, test) or a reparameterised draw (training).

        Also returns mu_x and log sigma_x^2 (B, C, H, W)."""
        mu_z, logvar_z = self.nets_["enc"](x)  # (B, N_z) each
        z = mu_z + torch.exp(0.5 * logvar_z) * torch.randn_like(mu_z) if sample else mu_z
        mu_x, logvar_x = self.decode(z)
        return vae_terms(x, mu_x, logvar_x, mu_z, logvar_z), mu_x, logvar_x

    def train_step(self, x: Tensor) -> dict[str, float]:
        parts, _, _ = self.terms(x, sample=True)  # one sample of z per image (eq. 4, L = 1)
        loss = parts["L"].mean()  # negative ELBO, mean over the batch
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_.step()
        return {"neg_elbo": loss.item(), "kl": parts["D"].mean().item(), "m": parts["M"].mean().item()}

    def score_batch(self, x: Tensor) -> Tensor:
        return self.terms(x)[0][SCORES[self.score]]  # (B,)

    def map_batch(self, x: Tensor) -> Tensor:
        _, mu_x, logvar_x = self.terms(x)
        return pixel_m(x, mu_x, logvar_x).sum(1)  # (B, H, W): M per pixel, summed over channels

    def score_parts(self, x: Any) -> dict[str, np.ndarray]:
        """All score parts per image for any accepted input: ``{"D", "A", "M", "L"}`` -> (N,) float64 (Fig. 5).

        ``score_parts(x)[SCORES[s]]`` equals ``decision_function(x)`` of the same model with ``score=s``; in patch mode
        each part is its own maximum over the sliding windows, as the image score is."""
        self._check_fitted()
        xt = self._prepare(x)
        self.nets_.eval()
        keys = ("D", "A", "M", "L")

        def parts(xb: Tensor) -> Tensor:
            p = self.terms(xb)[0]
            return torch.stack([p[k] for k in keys], 1)  # (B, 4)

        with torch.no_grad():
            if getattr(self, "patch_size", 0) > 0:  # (k, n_windows, 4) per chunk -> max over windows
                chunks = [out.amax(1) for _, out in self._over_windows(xt, parts)]
            else:
                dev, bs = self._device(), self.eval_batch_size
                chunks = [parts(xt[i : i + bs].to(dev)).cpu() for i in range(0, len(xt), bs)]
        arr = torch.cat(chunks).double().numpy()  # (N, 4)
        return {k: arr[:, j].copy() for j, k in enumerate(keys)}


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, n_conv=3, n_channels=16, latent_dim=16, batch_size=16, epochs=30),
    # defect data with small defects (issue 12): random 32 px patches of 256 px images, stride-16 sliding-window
    # scoring, an image anomalous if any patch is (the paper's IV-B protocol at a CPU-sized patch)
    "industrial": dict(image_size=256, patch_size=32, patch_stride=16, n_conv=3, n_channels=32, latent_dim=64,
                       batch_size=16, epochs=24),
}
"""Explicit overrides for small runs: ``anogen.create("vae", **PRESETS["cpu"])`` (one-class digits in seconds)."""
