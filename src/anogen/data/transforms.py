"""The one place where inputs become model tensors: decoding, channel mapping, resizing, normalisation, augmentation.

Every detector declares its preprocessing in config fields (``image_size``, ``channels``, ``channel_mode``,
``resize``, ``normalize``, ``intensity``); :class:`Preprocess` applies them identically at fit and at scoring, and is
saved with the model. Anything the configuration does not declare is an error naming what was expected and what came.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from anogen.data.io import InputError, list_images, pil_to_array, read_image

# ITU-R 601-2 luma weights, the same PIL uses for RGB -> L.
_LUMA = (0.299, 0.587, 0.114)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

CHANNEL_MODES = ("convert", "strict")
RESIZE_MODES = ("bilinear", "bicubic", "nearest", "area", "none")
NORMALIZATIONS = ("tanh", "unit", "imagenet")
AUGMENTATIONS = ("hflip", "vflip", "rotate", "rot90")
INTENSITIES = ("none", "standardize")
STANDARD_MEAN, STANDARD_STD = 0.5, 0.125
"""``intensity="standardize"``: every image is brought to this mean and standard deviation (unit scale)"""


@dataclass(frozen=True)
class Preprocess:
    """Declared image preprocessing.

    Attributes:
        image_size: side of the square the model sees; every image is resized to it (unless ``resize="none"``).
        channels: channel count the model sees; 0 takes the input's own (1 for gray, 3 for colour; an alpha channel
            is dropped), which is how a detector infers it from its training data.
        channel_mode: ``convert`` maps gray <-> RGB (repeat / ITU-R 601 luma) and drops an alpha channel;
            ``strict`` refuses any other channel count.
        resize: interpolation used to reach ``image_size``, or ``none`` to refuse other sizes.
        normalize: ``tanh`` maps [0, 1] to [-1, 1] (generators with tanh output), ``unit`` keeps [0, 1],
            ``imagenet`` standardises with the ImageNet mean / std (pretrained backbones, 3 channels).
        intensity: ``none``, or ``standardize``: each image's global intensity removed before ``normalize`` -- its
            mean and standard deviation over all channels and pixels set to :data:`STANDARD_MEAN` /
            :data:`STANDARD_STD` (a std below 1/255 is taken as 1/255, so a flat image stays flat), then clamped to
            [0, 1] (beyond 4 standard deviations). A brightness gain or offset, and to first order a gamma change,
            of the whole image then leaves the model's input unchanged (lighting drift between training and
            inspection); colour ratios between channels are kept.
    """

    image_size: int
    channels: int
    channel_mode: str = "convert"
    resize: str = "bilinear"
    normalize: str = "tanh"
    intensity: str = "none"

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.channels < 0:
            raise ValueError(f"need image_size >= 1 and channels >= 0, got {self.image_size}, {self.channels}")
        _check_choice("channel_mode", self.channel_mode, CHANNEL_MODES)
        _check_choice("resize", self.resize, RESIZE_MODES)
        _check_choice("normalize", self.normalize, NORMALIZATIONS)
        _check_choice("intensity", self.intensity, INTENSITIES)
        if self.normalize == "imagenet" and self.channels not in (0, 3):
            raise ValueError(f"normalize='imagenet' needs channels=3, got channels={self.channels}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, data: Any) -> Tensor:
        """Images in any accepted form -> float32 tensor (N, channels, image_size, image_size), normalised."""
        items = _as_unit_images(data)  # list of (C, H, W) in [0, 1] or one (N, C, H, W) tensor
        pre = self
        if self.channels == 0:  # the input's own colour channels (alpha not counted; a list holds one count)
            c = int((items if isinstance(items, Tensor) else items[0]).shape[-3])
            pre = replace(self, channels=c - (c in (2, 4)))
        if isinstance(items, Tensor):
            x = pre._resize(pre._map_channels(items))
        else:
            x = torch.cat([pre._resize(pre._map_channels(t[None])) for t in items])
        return pre._normalize(x)

    def denormalize(self, x: Tensor) -> Tensor:
        """Model-space tensor back to [0, 1] images (for plots)."""
        if self.normalize == "tanh":
            x = (x + 1) / 2
        elif self.normalize == "imagenet":
            mean = torch.tensor(_IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(_IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = x * std + mean
        return x.clamp(0, 1)

    def _map_channels(self, x: Tensor) -> Tensor:  # (N, c, H, W) -> (N, channels, H, W)
        c = x.shape[1]
        if c == self.channels:
            return x
        if self.channel_mode == "strict":
            raise InputError(f"expected {self.channels}-channel images, got {c} channels (channel_mode='strict')")
        if c == 4:  # RGBA: the alpha channel carries no appearance
            x, c = x[:, :3], 3
        if c == 2:  # gray + alpha
            x, c = x[:, :1], 1
        if c == self.channels:
            return x
        if c == 1 and self.channels == 3:
            return x.expand(-1, 3, -1, -1).contiguous()
        if c == 3 and self.channels == 1:
            w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            return (x * w).sum(1, keepdim=True)
        raise InputError(f"cannot map {c}-channel images to the model's {self.channels} channels")

    def _resize(self, x: Tensor) -> Tensor:
        s = self.image_size
        if x.shape[-2:] == (s, s):
            return x
        if self.resize == "none":
            raise InputError(
                f"expected images of {s}x{s} pixels, got {x.shape[-2]}x{x.shape[-1]} (resize='none'; "
                f"set resize='bilinear' to resize inputs)"
            )
        if self.resize in ("bilinear", "bicubic"):
            y = F.interpolate(x, size=(s, s), mode=self.resize, align_corners=False, antialias=True)
            return y.clamp(0, 1)
        return F.interpolate(x, size=(s, s), mode=self.resize)

    def _normalize(self, x: Tensor) -> Tensor:
        """Unit images -> model space: the declared ``intensity`` step, then ``normalize`` (ONNX export uses this)."""
        if self.intensity == "standardize":
            x = standardize_intensity(x)
        if self.normalize == "tanh":
            return x * 2 - 1
        if self.normalize == "imagenet":
            mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
            return (x - mean) / std
        return x


def standardize_intensity(x: Tensor) -> Tensor:
    """(N, C, H, W) unit images -> each with mean :data:`STANDARD_MEAN` and std :data:`STANDARD_STD` over (C, H, W),
    clamped to [0, 1] (``intensity="standardize"``)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1.0 / 255)
    return ((x - mean) / std * STANDARD_STD + STANDARD_MEAN).clamp(0, 1)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _unit_from_array(a: np.ndarray, what: str) -> np.ndarray:
    """An integer or float array of pixel values -> float32 in [0, 1], refusing what it cannot interpret."""
    if a.size == 0:
        raise InputError(f"{what} is empty")
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32, copy=False)
        if not np.isfinite(a).all():
            raise InputError(f"{what} contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(
                f"float images must hold values in [0, 1]; {what} ranges over [{lo:.4g}, {hi:.4g}] "
                f"(pass uint8 0-255 or scale to [0, 1])"
            )
        return a
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise InputError(f"integer images must hold values in [0, 255]; {what} ranges over [{lo}, {hi}]")
        return a.astype(np.float32) / 255.0
    raise InputError(f"{what} has dtype {a.dtype}; expected uint8, uint16 or float in [0, 1]")


def _hwc_to_chw(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3 and a.shape[-1] in (1, 2, 3, 4):
        return np.moveaxis(a, -1, 0)
    raise InputError(f"{what}: expected an image of shape (H, W) or (H, W, C) with C in 1-4, got {a.shape}")


def _as_unit_images(data: Any) -> Tensor | list[Tensor]:
    """Accepted image inputs -> one (N, C, H, W) tensor, or a list of (C, H, W) tensors of varying size."""
    if isinstance(data, (str, Path)):
        p = Path(data)
        data = list_images(p) if p.is_dir() else [p]
    if isinstance(data, Tensor):
        t = data.detach().cpu()
        if t.ndim == 3:
            t = t[:, None]
        if t.ndim != 4:
            raise InputError(f"expected a tensor of shape (N, C, H, W) or (N, H, W), got {tuple(t.shape)}")
        if t.shape[1] not in (1, 2, 3, 4):
            raise InputError(f"expected channels-first tensors (N, C, H, W) with C in 1-4, got {tuple(t.shape)}")
        return torch.from_numpy(_unit_from_array(t.numpy(), "the input tensor"))
    if isinstance(data, np.ndarray):
        if data.ndim == 3:
            data = data[..., None]
        if data.ndim != 4 or data.shape[-1] not in (1, 2, 3, 4):
            raise InputError(
                f"expected a numpy batch of shape (N, H, W) or (N, H, W, C) with C in 1-4, got {data.shape}"
            )
        a = _unit_from_array(data, "the input array")
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1)))
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise InputError("got an empty list of images")
        out = []
        for i, item in enumerate(data):
            what = f"item {i} ({item})" if isinstance(item, (str, Path)) else f"item {i}"
            if isinstance(item, (str, Path)):
                arr = read_image(item)
            elif hasattr(item, "mode") and hasattr(item, "size"):  # a PIL image: the conversions of image files
                arr = pil_to_array(item, what)
            elif isinstance(item, np.ndarray):
                arr = item
            elif isinstance(item, Tensor):
                arr = item.detach().cpu().numpy()
                arr = arr if arr.ndim == 2 else np.moveaxis(arr, 0, -1)
            else:
                raise InputError(f"{what}: expected a path, PIL image or array, got {type(item).__name__}")
            out.append(torch.from_numpy(np.ascontiguousarray(_hwc_to_chw(_unit_from_array(arr, what), what))))
        counts = sorted({t.shape[0] - (t.shape[0] in (2, 4)) for t in out})  # colour channels: alpha not counted
        if len(counts) > 1:
            raise InputError(f"images with mixed channel counts {counts} in one input; convert them to one format")
        return out
    raise InputError(
        "expected images as a numpy array (N, H, W[, C]), a torch tensor (N, C, H, W), a list of paths / "
        f"arrays / PIL images, or a folder path; got {type(data).__name__}"
    )


def to_vectors(data: Any, dim: int | None = None, who: str = "the model") -> Tensor:
    """Feature vectors (N, D) as float32, checking finiteness and, for a fitted model, the length D.

    Accepts a numpy array, a tensor, a list of lists, or anything numpy can read as an array (``__array__``);
    object arrays are converted to numbers (a TypeError names a value that is not one)."""
    reject_unsupported(data)
    if isinstance(data, Tensor):
        a = data.detach().cpu().numpy()
    elif isinstance(data, (np.ndarray, list, tuple)) or hasattr(data, "__array__"):
        a = np.asarray(data)
    else:
        raise InputError(f"expected feature vectors as an (N, D) array or tensor, got {type(data).__name__}")
    if a.ndim != 2:
        hint = ("; Reshape your data with x.reshape(-1, 1) (one feature) or x.reshape(1, -1) (one sample)"
                if a.ndim == 1 else "")
        raise InputError(f"expected feature vectors of shape (N, D), got shape {a.shape}{hint}")
    if a.shape[0] == 0:
        raise InputError(f"got an empty batch of vectors (shape={a.shape}): at least 1 sample is required")
    if a.shape[1] == 0:
        raise InputError(f"got 0 feature(s) (shape={a.shape}) while a minimum of 1 is required.")
    if np.iscomplexobj(a):
        raise InputError("Complex data not supported: feature vectors must be real numbers")
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except TypeError as e:
            raise TypeError(f"feature vectors must be numbers: {e}") from None
        except ValueError as e:
            raise InputError(f"feature vectors must be numbers: {e}") from None
    if not np.issubdtype(a.dtype, np.number) and a.dtype != np.bool_:
        raise InputError(f"feature vectors must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise InputError("feature vectors contain NaN or infinite values")
    if dim is not None and a.shape[1] != dim:
        raise InputError(f"X has {a.shape[1]} features, but {who} is expecting {dim} features as input "
                         f"(vectors of length {dim}, as at fit)")
    return torch.from_numpy(a)


def reject_unsupported(data: Any) -> None:
    """Loud errors for inputs no detector takes: sparse matrices and complex numbers."""
    if hasattr(data, "tocsr") and hasattr(data, "nnz"):  # scipy.sparse
        raise InputError("sparse input is not supported: pass a dense array (X.toarray())")
    if isinstance(data, np.ndarray) and np.iscomplexobj(data):
        raise InputError("Complex data not supported: inputs must be real numbers")


def is_vector_input(data: Any) -> bool:
    """True for feature vectors (N, D): a 2-D array / tensor (or anything numpy reads as one, except a PIL image),
    or a list / tuple whose first item is a list, tuple or 1-D array of numbers (a list of lists)."""
    if isinstance(data, (np.ndarray, Tensor)):
        return data.ndim == 2
    if isinstance(data, (list, tuple)):
        first = data[0] if len(data) else None
        return isinstance(first, (list, tuple)) or (isinstance(first, np.ndarray) and first.ndim == 1)
    if hasattr(data, "__array__") and not (hasattr(data, "mode") and hasattr(data, "size")):
        return np.ndim(np.asarray(data)) == 2
    return False


def add_pool_channels(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C + 2, H, W): the input with its channel-wise max and mean images appended (ALGAN IV-B5)."""
    return torch.cat([x, x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)


def augment(x: Tensor, ops: Sequence[str], generator: torch.Generator) -> Tensor:
    """Random per-sample flips / rotations of a training batch (B, C, H, W); ``ops`` from :data:`AUGMENTATIONS`.

    ``rotate`` turns each image by a uniform random angle in [0, 360) with reflection padding at the corners;
    ``rot90`` by a random multiple of 90 degrees (exact, no interpolation).
    """
    if not ops:
        return x
    b = x.shape[0]
    for op in ops:
        _check_choice("augmentation", op, AUGMENTATIONS)
        if op in ("hflip", "vflip"):
            flip = torch.rand(b, generator=generator) < 0.5
            dim = -1 if op == "hflip" else -2
            x = torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(dim), x)
        elif op == "rot90":
            k = torch.randint(0, 4, (b,), generator=generator)
            x = torch.stack([torch.rot90(x[i], int(k[i]), dims=(-2, -1)) for i in range(b)])
        else:
            ang = torch.rand(b, generator=generator) * 2 * math.pi
            cos, sin = torch.cos(ang), torch.sin(ang)
            zero = torch.zeros_like(ang)
            theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
            grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    return x
