"""Convolutional autoencoder trained with or without loss amplification (LAMP); score = per-image L2 error.

Paper: Park et al., "Neural Network Training Strategy to Enhance Anomaly Detection Performance: A Perspective on
Reconstruction Loss Amplification", ICASSP 2024 (``papers/001_062f5a639b3079e6.txt``): eqs. (1)-(2) (LAMP and its
scaling trick), section 3.1 (architecture, tuned hyperparameters, L2 anomaly score). The same detector with
``lamp=False, base_loss="l2"`` is the plain AE baseline of ``papers/004_41020bdc449fbf6e.txt`` (section V-A: trained
and scored by the mean squared error).
Reference code: none public (``research/reference-implementations.md`` section 2); every choice below is ours.

The AE (``arch="lamp"``, section 3.1, after Collin & De Vleeschouwer [15] without skip connections): an encoder of
blocks conv (stride 2) -> BatchNorm -> LeakyReLU and a decoder of blocks upsample (x2) -> conv -> BatchNorm ->
LeakyReLU, then one output conv to the channel count. Training minimises the base loss (L2, L1 or 1 - SSIM), or
with ``lamp=True`` its amplified form: eq. (2) L' = L / max(L) (1 - eps), eq. (1) -log(1 - L') per element.
Whatever the training loss, the anomaly score is the per-image L2 reconstruction error (3.1).

Deviations / choices (the paper is silent on each):

- Block count: 6 encoder and 6 decoder blocks, 4 for inputs (patches) of at most 32 px (3.1: "four-layered" for
  MNIST); ``n_blocks`` overrides. It is then capped at the number of halvings the input side allows (a 16 px input
  gets 4 blocks down to 1x1; 8 px gets 3; 28 px gets 2, down to 7x7: resize to 32 for the paper's 4).
- Widths: block i of the encoder has ``width`` * 2^i channels (32 doubling, capped at ``max_width`` = 512); its last
  block outputs ``latent_dim`` channels, so the code is a latent_dim x (S / 2^n)^2 map (1x1 at 16 px with 4 blocks,
  4x4 at 256 px with 6). No fully connected layer (the paper describes conv blocks only). The decoder mirrors the
  widths and ends at ``width`` channels at full size.
- Convolutions: ``kernel_size`` (tuned in the paper; 3 here) with padding kernel_size // 2, no bias before
  BatchNorm; nearest-neighbour x2 upsampling; LeakyReLU slope 0.2; PyTorch's default initialisation. The output
  layer is a conv (same kernel, with bias) to the channel count followed by tanh for ``normalize="tanh"`` (the
  default) or a sigmoid for ``normalize="unit"``; other normalisations are refused.
- LAMP (losses.lamp_loss): the max of eq. (2) is over the whole mini-batch (every sample, channel, pixel) and is
  detached (a constant in backprop: not detaching would push the largest error up, since d L' / d max < 0).
  eps = 0.01 (the paper gives no value, only "slightly less than 1"): with a detached max, the element holding the
  max gets 1 / eps times the gradient of an element with a small error, so eps sets the amplification; with 1e-6
  one pixel per batch dominates every update and the AE hardly learns (one-class digits, 16 px, 15 epochs, classes
  0-9: mean AUROC 0.62 at eps 1e-6, 0.98 at 1e-3, 0.995 at 1e-2, 0.997 at 0.1; plain L2 0.995). Eq. (1)'s sum over
  h, w, c is divided by H W C and averaged over the batch, the same reduction as the plain base loss (a mean), so
  switching LAMP on changes the loss shape, not the learning-rate scale (immaterial for Adam / RMSprop).
- SSIM base loss: 1 - SSIM map from pytorch_msssim's Gaussian window (11 taps, sigma 1.5, K = 0.01 / 0.03) with
  reflect padding, one value per pixel and channel (losses.ssim_map), on images mapped to [0, 1] (data range 1):
  on [-1, 1] images an inverted reconstruction scores SSIM ~ +1, and an AE trained that way learns the negative.
  With ``patch_grid`` > 1 the loss is computed on the reassembled image.
- Patch-wise reconstruction (``patch_grid`` = g, after [16]): the S x S image is cut into g x g non-overlapping
  patches of S / g px, each reconstructed by the same AE (the nets are built for S / g px inputs, block count from
  S / g), and the reconstructions are put back in place; loss, score and map are computed on the reassembled image.
  S must be divisible by g. BatchNorm statistics are over the B g^2 patches of a batch. This is not the base
  ``patch_size`` mode (random crops for training, sliding windows scored separately, image score = max over
  windows, after Matsubara et al.); the two compose: with ``patch_size`` set, S is the crop side.
- Optimisers: Adam (default, betas 0.9 / 0.999), RMSprop (PyTorch defaults, alpha 0.99) or SGD, learning rate
  ``lr`` = 1e-3 and ``momentum`` = 0 (SGD / RMSprop; the paper tunes the learning rate and gives no values).
- Epochs and batch size: the library defaults (10, 16; the paper tunes the batch size and fixes 16 on MVTec AD).
- ``arch="dcgan"`` keeps this library's earlier plain AE: the shared DCGAN stacks of ``nets.py`` (4x4 stride-2
  convs, BatchNorm, LeakyReLU / ReLU, a ``latent_dim`` vector bottleneck, DCGAN init); ``kernel_size`` and
  ``n_blocks`` do not apply there. Scores use eval mode (BatchNorm running statistics) in both architectures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.detector import Detector
from anogen.losses import lamp_loss, reconstruction_loss
from anogen.nets import ConvDecoder, ConvEncoder, check_image_size, dcgan_init
from anogen.params import flag, integer, non_negative, one_of, positive, real

BASE_LOSSES = ("l2", "l1", "ssim")
OPTIMIZERS = ("sgd", "rmsprop", "adam")
ARCHS = ("lamp", "dcgan")
OUT_ACTS = {"tanh": "tanh", "unit": "sigmoid"}  # output activation matching the declared pixel scale
VALUE_RANGES = {"tanh": (-1.0, 1.0), "unit": (0.0, 1.0)}  # the pixel scale; SSIM maps it to [0, 1]


# ---------------------------------------------------------------------------------------------------- modules
def halvings(side: int) -> int:
    """How many times ``side`` can be halved exactly (stride-2 blocks that the decoder can undo by x2 upsampling)."""
    n = 0
    while side > 1 and side % 2 == 0:
        side, n = side // 2, n + 1
    return n


def block_count(side: int, n_blocks: int = 0) -> int:
    """Encoder / decoder blocks for inputs of ``side`` px: ``n_blocks`` if set, else 4 up to 32 px and 6 above
    (section 3.1), capped at the number of exact halvings of ``side``."""
    most = halvings(side)
    if n_blocks:
        if n_blocks > most:
            raise ValueError(f"{n_blocks} stride-2 blocks need an input side divisible by {2**n_blocks}; "
                             f"the AE's input (image or patch) is {side} px")
        return n_blocks
    if most < 1:
        raise ValueError(f"the AE's input side must be even, got {side} px (resize to a power of two)")
    return min(4 if side <= 32 else 6, most)


def _down(c_in: int, c_out: int, k: int, slope: float) -> list[nn.Module]:
    """conv (stride 2) -> BatchNorm -> LeakyReLU: (B, c_in, S, S) -> (B, c_out, S/2, S/2)."""
    return [nn.Conv2d(c_in, c_out, k, 2, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(slope, True)]


def _up(c_in: int, c_out: int, k: int, slope: float) -> list[nn.Module]:
    """upsample (x2) -> conv -> BatchNorm -> LeakyReLU: (B, c_in, S, S) -> (B, c_out, 2S, 2S)."""
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, k, 1, k // 2, bias=False),
            nn.BatchNorm2d(c_out), nn.LeakyReLU(slope, True)]


def lamp_autoencoder(side: int, channels: int, *, n_blocks: int, width: int, max_width: int, latent_dim: int,
                     kernel_size: int, out_act: str, slope: float = 0.2) -> tuple[nn.Sequential, nn.Sequential]:
    """The paper's AE (section 3.1) for (B, channels, side, side) inputs: (encoder, decoder)."""
    n = block_count(side, n_blocks)
    widths = [min(width * 2**i, max_width) for i in range(n - 1)] + [latent_dim]  # encoder block outputs
    enc: list[nn.Module] = []
    c = channels
    for w in widths:
        enc += _down(c, w, kernel_size, slope)
        c = w
    dec: list[nn.Module] = []
    for w in widths[-2::-1] + [width]:  # mirror; the last block works at full size with `width` channels
        dec += _up(c, w, kernel_size, slope)
        c = w
    dec.append(nn.Conv2d(c, channels, kernel_size, 1, kernel_size // 2))  # output layer
    dec.append(nn.Tanh() if out_act == "tanh" else nn.Sigmoid())
    return nn.Sequential(*enc), nn.Sequential(*dec)


def to_patches(x: Tensor, g: int) -> Tensor:
    """(B, C, S, S) -> (B g^2, C, S/g, S/g): the g x g grid of non-overlapping patches, row-major per image."""
    if g == 1:
        return x
    b, c, s, _ = x.shape
    p = s // g
    return x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b * g * g, c, p, p)


def from_patches(x: Tensor, g: int) -> Tensor:
    """Inverse of :func:`to_patches`: (B g^2, C, P, P) -> (B, C, g P, g P)."""
    if g == 1:
        return x
    n, c, p, _ = x.shape
    b = n // (g * g)
    return x.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * p, g * p)


# ---------------------------------------------------------------------------------------------------- detector
@register("ae")
@dataclass(kw_only=True)
class AE(Detector):
    """Convolutional autoencoder (LAMP paper's AE; optional loss amplification); score = per-image L2 error."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "latent_dim": integer(1), "width": integer(1), "max_width": integer(1), "arch": one_of(ARCHS),
        "n_blocks": integer(0), "kernel_size": integer(1), "patch_grid": integer(1), "base_loss": one_of(BASE_LOSSES),
        "lamp": flag(), "lamp_eps": real(0.0, 1.0, lo_open=True, hi_open=True), "optimizer": one_of(OPTIMIZERS),
        "lr": positive(), "momentum": non_negative(),
    }

    latent_dim: int = 100
    """size of the bottleneck"""
    width: int = 32
    """channels of the first conv block (doubling per block)"""
    max_width: int = 512
    """cap on the channel count of any layer"""
    arch: str = "lamp"
    """network: lamp (conv / upsample-conv blocks of the LAMP paper) or dcgan (the shared DCGAN stacks)"""
    n_blocks: int = 0
    """encoder / decoder blocks (0 = auto: 4 for inputs up to 32 px, else 6; lamp arch only)"""
    kernel_size: int = 3
    """conv kernel size, odd (lamp arch only)"""
    patch_grid: int = 1
    """cut each image into a patch_grid x patch_grid grid of patches reconstructed separately by the same AE"""
    base_loss: str = "l2"
    """training reconstruction loss: l2, l1 or ssim (1 - SSIM map)"""
    lamp: bool = True
    """train with loss amplification, eqs. (1)-(2) (False: the plain base loss)"""
    lamp_eps: float = 1e-2
    """epsilon of LAMP's scaling trick, eq. (2)"""
    optimizer: str = "adam"
    """sgd, rmsprop or adam"""
    lr: float = 1e-3
    """learning rate"""
    momentum: float = 0.0
    """momentum of sgd / rmsprop"""

    def __post_init__(self) -> None:
        for name, value, choices in (("arch", self.arch, ARCHS), ("base_loss", self.base_loss, BASE_LOSSES),
                                     ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("normalize", self.normalize, tuple(OUT_ACTS))):
            if value not in choices:
                raise ValueError(f"ae: {name} must be one of {', '.join(choices)}; got {value!r}")
        if not 0.0 < self.lamp_eps < 1.0:
            raise ValueError(f"lamp_eps must be in (0, 1), got {self.lamp_eps}")
        if self.kernel_size < 1 or self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if self.lr <= 0 or self.momentum < 0:
            raise ValueError(f"need lr > 0 and momentum >= 0, got lr={self.lr}, momentum={self.momentum}")
        if min(self.width, self.latent_dim) < 1 or self.max_width < self.width:
            raise ValueError(f"need width, latent_dim >= 1 and max_width >= width; got {self.width}, "
                             f"{self.latent_dim}, {self.max_width}")
        if self.n_blocks < 0 or (self.arch == "dcgan" and self.n_blocks):
            raise ValueError(f"n_blocks must be >= 0 and is for the lamp arch only; got {self.n_blocks}")
        side = self.patch_size or self.image_size  # what the AE is given: whole images, or the base's crops
        if self.patch_grid < 1 or side % self.patch_grid:
            raise ValueError(f"patch_grid must be >= 1 and divide the input side; got {self.patch_grid} for "
                             f"{side} px")
        self._patch_side(side)  # early, clear errors for sizes the nets cannot take

    def _patch_side(self, side: int) -> int:
        p = side // self.patch_grid
        if self.arch == "dcgan":
            check_image_size(p)
        else:
            block_count(p, self.n_blocks)
        return p

    def build(self, input_shape: tuple[int, ...]) -> None:
        c, s, _ = input_shape
        p = self._patch_side(s)  # the nets' input side
        act = OUT_ACTS[self.normalize]
        if self.arch == "lamp":
            enc, dec = lamp_autoencoder(p, c, n_blocks=self.n_blocks, width=self.width, max_width=self.max_width,
                                        latent_dim=self.latent_dim, kernel_size=self.kernel_size, out_act=act)
            self.nets_ = nn.ModuleDict({"enc": enc, "dec": dec})
        else:
            self.nets_ = nn.ModuleDict({
                "enc": ConvEncoder(p, c, self.latent_dim, width=self.width, max_width=self.max_width, norm="batch"),
                "dec": ConvDecoder(self.latent_dim, p, c, width=self.width, max_width=self.max_width, out_act=act),
            })
            dcgan_init(self.nets_)
        params = self.nets_.parameters()
        if self.optimizer == "adam":
            self.opt_ = torch.optim.Adam(params, lr=self.lr)
        elif self.optimizer == "rmsprop":
            self.opt_ = torch.optim.RMSprop(params, lr=self.lr, momentum=self.momentum)
        else:
            self.opt_ = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)

    def reconstruct(self, x: Tensor) -> Tensor:
        """(B, C, S, S) -> (B, C, S, S); with patch_grid g each of the g x g patches is reconstructed separately."""
        g = self.patch_grid
        return from_patches(self.nets_["dec"](self.nets_["enc"](to_patches(x, g))), g)

    def train_step(self, x: Tensor) -> dict[str, float]:
        x_rec = self.reconstruct(x)  # (B, C, S, S)
        base = reconstruction_loss(x, x_rec, self.base_loss, VALUE_RANGES[self.normalize])  # (B, C, S, S)
        if self.lamp:
            loss = lamp_loss(base, self.lamp_eps, detach_max=True)  # eqs. (1)-(2), max over the batch
        else:
            loss = base.mean()
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_.step()
        name = f"{self.base_loss}_lamp" if self.lamp else self.base_loss
        return {name: loss.item()}

    def score_batch(self, x: Tensor) -> Tensor:
        return (self.reconstruct(x) - x).pow(2).flatten(1).mean(1)  # (B,) L2 error whatever the loss (3.1)

    def map_batch(self, x: Tensor) -> Tensor:
        return (self.reconstruct(x) - x).pow(2).mean(1)  # (B, H, W)


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, width=16, max_width=64, latent_dim=16, epochs=15),
    # defect data with small defects (issue 12): LAMP-L2 on random 32 px patches of 256 px images (the LAMP paper's
    # patch-wise training), stride-16 sliding-window scoring, image score = its worst window
    "industrial": dict(image_size=256, patch_size=32, patch_stride=16, width=32, max_width=128, latent_dim=64,
                       epochs=24, lamp=True, base_loss="l2"),
}
"""Explicit overrides for small runs: ``anogen.create("ae", **PRESETS["cpu"])`` (one-class digits in seconds)."""
