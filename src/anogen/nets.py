"""Network blocks shared by three or more methods: DCGAN-style conv encoder / decoder for any power-of-two size and
channel count, fully connected stacks, spectral-norm wrapping and the DCGAN weight init.

Layer count follows DCGAN: stride-2 4x4 convolutions halve the side down to 4x4, and one 4x4 valid convolution maps
4x4 to 1x1, so a side of 2^k gets k - 1 layers (7 at 256 px, as in the ALGAN paper; 5 at 64 px as in DCGAN).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

NORMS = ("batch", "spectral", "none")


def check_image_size(size: int, low: int = 8, high: int = 1024) -> int:
    """Number of stride-2 stages for a power-of-two side ``size``; a clear error for any other size."""
    k = int(round(math.log2(size))) if size > 0 else -1
    if size < low or size > high or 2**k != size:
        raise ValueError(f"image_size must be a power of two between {low} and {high}, got {size}")
    return k - 2


def stage_widths(image_size: int, width: int, max_width: int) -> list[int]:
    """Channel widths of the encoder's stride-2 stages (doubling from ``width``, capped at ``max_width``)."""
    return [min(width * 2**i, max_width) for i in range(check_image_size(image_size))]


def _wrap(layer: nn.Module, norm: str) -> nn.Module:
    return spectral_norm(layer) if norm == "spectral" else layer


class ConvEncoder(nn.Module):
    """(B, C, S, S) -> (B, out_features): DCGAN discriminator / encoder body plus a 4x4 valid-conv head.

    ``features(x)`` gives the last 4x4 feature map (B, W, 4, 4), used for feature matching. ``first_norm``: BatchNorm
    on the first conv too (DCGAN has none there; the thesis' AnoGAN table has one).
    """

    def __init__(self, image_size: int, in_channels: int, out_features: int, *, width: int = 64,
                 max_width: int = 512, norm: str = "batch", slope: float = 0.2, first_norm: bool = False) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        widths = stage_widths(image_size, width, max_width)
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            bn = norm == "batch" and (i > 0 or first_norm)  # DCGAN: no BatchNorm on the first layer
            layers.append(_wrap(nn.Conv2d(c, w, 4, 2, 1, bias=not bn), norm))
            if bn:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(slope, inplace=True))
            c = w
        self.body = nn.Sequential(*layers)
        self.head = _wrap(nn.Conv2d(c, out_features, 4, 1, 0), norm)
        self.feature_channels = c

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # (B, W, 4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x)).flatten(1)  # (B, out_features)


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> (B, C, S, S): DCGAN generator (transposed convs, BatchNorm + ReLU, no BN on the output)."""

    def __init__(self, latent_dim: int, image_size: int, out_channels: int, *, width: int = 64,
                 max_width: int = 512, norm: str = "batch", out_act: str = "tanh") -> None:
        super().__init__()
        widths = stage_widths(image_size, width, max_width)[::-1]  # deepest first
        first = nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=norm != "batch")  # (B, L, 1, 1) -> 4x4
        layers: list[nn.Module] = [_wrap(first, norm)]
        if norm == "batch":
            layers.append(nn.BatchNorm2d(widths[0]))
        layers.append(nn.ReLU(inplace=True))
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers.append(_wrap(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=norm != "batch"), norm))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
        layers.append(_wrap(nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1), norm))
        if out_act == "tanh":
            layers.append(nn.Tanh())
        elif out_act == "sigmoid":
            layers.append(nn.Sigmoid())
        elif out_act != "none":
            raise ValueError(f"out_act must be tanh, sigmoid or none, got {out_act!r}")
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))  # (B, C, S, S)


def mlp(in_features: int, hidden: int, out_features: int, *, layers: int = 3, norm: str = "none",
        act: str = "leaky_relu", slope: float = 0.2) -> nn.Sequential:
    """``layers`` fully connected layers; ``norm`` batch (between layers) or spectral (on every linear)."""
    if layers < 1:
        raise ValueError("an MLP needs at least one layer")
    dims = [in_features] + [hidden] * (layers - 1) + [out_features]
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(_wrap(nn.Linear(a, b), norm))
        if i < layers - 1:
            if norm == "batch":
                mods.append(nn.BatchNorm1d(b))
            mods.append(nn.LeakyReLU(slope, inplace=True) if act == "leaky_relu" else nn.ReLU(inplace=True))
    return nn.Sequential(*mods)


@torch.no_grad()
def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): conv weights N(0, 0.02), BatchNorm scale N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def ema_decay_at(decay: float, updates: int) -> float:
    """The EMA decay after ``updates`` updates: min(decay, (1 + n) / (10 + n)), TensorFlow's ``num_updates`` warm-up
    (``tf.train.ExponentialMovingAverage``), so that a short run's average is not mostly the initial weights (with a
    fixed 0.999 and n updates the initialisation keeps 0.999^n of the average: 70 % after 350)."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


@torch.no_grad()
def ema_update(average: nn.Module, current: nn.Module, decay: float) -> None:
    """Exponential moving average of weights: average <- decay * average + (1 - decay) * current.

    Parameters are averaged; buffers (BatchNorm running statistics, spectral-norm vectors) are copied. Used for scoring
    by the methods whose reference code keeps an EMA of every network (ALAD, EGBAD, the thesis' EBGAN family; decay
    0.999 there, with the warm-up of :func:`ema_decay_at`).
    """
    for a, c in zip(average.parameters(), current.parameters()):
        a.lerp_(c, 1.0 - decay)
    for a, c in zip(average.buffers(), current.buffers()):
        a.copy_(c)


@contextmanager
def running_stats_frozen(net: nn.Module) -> Iterator[None]:
    """Forward passes in training mode (batch statistics) that leave BatchNorm's running statistics as they are."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0  # running <- (1 - 0) running + 0 batch
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
