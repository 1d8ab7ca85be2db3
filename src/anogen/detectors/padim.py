"""PaDiM: a Gaussian per feature-map location over mid-level backbone features; pixel maps from Mahalanobis distances.

Paper: Defard, Setkov, Loesch, Audigier, "PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and
Localization", ICPR workshops 2021 (arXiv 2011.08785); "PaDiM" in the ALGAN paper's Table 2
(``papers/000_346db876b8fe0885.txt``: 0.979 mean AUROC on MVTec AD; related work: "separates hierarchical features
into patches and stores the mean and covariance ... to measure the Mahalanobis distance"). Reference code: the
paper's section 3 and the public re-implementations (xiahaifeng1995/PaDiM-Anomaly-Detection-Localization-master,
anomalib), read, not copied.

Embedding (section 3.1): the maps of the chosen layers (the paper: the first three blocks of a ResNet, strides 4, 8,
16) are upsampled to the first layer's resolution h x w and concatenated; ``n_features`` channels of the
concatenation, chosen at random once (seeded), are kept: x_ij in R^d for each location (i, j).
Learning (3.2): per location, mu_ij = mean of x_ij over the N training images and
    Sigma_ij = 1 / (N - 1) sum_k (x^k_ij - mu_ij)(x^k_ij - mu_ij)^T + eps I   (eps = 0.01).
Inference (3.3): M(x_ij) = sqrt((x_ij - mu_ij)^T Sigma_ij^{-1} (x_ij - mu_ij)), the patch anomaly map (h, w); it is
upsampled (bilinear) to the side the backbone saw and smoothed by a Gaussian (sigma = 4), and the image score is the
map's maximum.

Deviations / choices:
- Backbone: the paper uses ResNet18 (d = 100) and WideResNet-50 (d = 550); here the offline MobileNetV2 (default) or
  EfficientNet-Lite0 (``s4``, ``s8``, ``s16``: 24 + 32 + 96 = 152 channels for MobileNetV2), or WideResNet-101 where
  its weights are cached. ``n_features`` = 100 (the paper's ResNet18 value; clipped to the channels there are).
- Deeper maps are upsampled with nearest neighbours (what the paper's concatenation of shifted blocks amounts to).
- Published code rescales the maps by the min / max over the whole test set before reporting; that needs the test
  set at scoring time and does not change AUROC, so it is left out: scores are the raw distances.
- Gaussian smoothing: radius round(4 sigma) (scipy's truncation), edge values repeated at the borders (scipy's
  default reflects); ``blur_sigma = 0`` switches it off.
- With a centre crop (``crop``) the pixel map covers the crop; the border outside it gets each map's minimum.
- ``backbone="none"`` takes the preprocessed image itself as the feature map (C channels at every pixel): a
  per-pixel Gaussian over colour values, used by the tests to check the formulas by hand.
- Precisions are computed once at fit (``torch.linalg.inv``, float64) and saved as float32 with the means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.data.transforms import InputError
from anogen.detector import Detector
from anogen.features import BackboneFeatures, concat_maps, image_map
from anogen.params import integer, non_negative, positive


@register("padim")
@dataclass(kw_only=True)
class PaDiM(BackboneFeatures, Detector):
    """Per-location Gaussians over concatenated mid-level features (random channel subset); pixel anomaly maps."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "n_features": integer(1), "eps": positive(), "blur_sigma": non_negative(),
    }

    layers: tuple[str, ...] = ("s4", "s8", "s16")
    """backbone layers, concatenated at the first one's resolution (the paper: ResNet blocks 1-3)"""
    n_features: int = 100
    """channels kept, chosen at random once (the paper: 100 for ResNet18, 550 for WideResNet-50)"""
    eps: float = 0.01
    """added to the diagonal of every covariance (the paper: 0.01)"""
    blur_sigma: float = 4.0
    """std in pixels of the Gaussian smoothing of the upsampled map (the paper: 4; 0 = none)"""

    iterative: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self._check_backbone_fields()
        if self.n_features < 1 or self.eps < 0 or self.blur_sigma < 0:
            raise ValueError(f"padim: need n_features >= 1, eps >= 0, blur_sigma >= 0; got {self.n_features}, "
                             f"{self.eps}, {self.blur_sigma}")

    # ---------------------------------------------------------------------------------------------- embedding
    def channel_subset(self, c: int) -> Tensor:
        """The ``min(n_features, c)`` channels kept of ``c`` (a seeded random choice, sorted)."""
        if self.n_features >= c:
            return torch.arange(c)
        g = torch.Generator().manual_seed(self.seed)
        return torch.randperm(c, generator=g)[: self.n_features].sort().values

    def embed(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) images -> (B, d, h, w): concatenated layer maps at the first layer's resolution, d channels."""
        maps = [x] if self.backbone == "none" else self.feature_maps(x)
        f = concat_maps(maps, mode="nearest")  # (B, C, h, w)
        return f[:, self.channel_subset(f.shape[1]).to(f.device)]

    # ---------------------------------------------------------------------------------------------- fit / score
    def build(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3:
            raise InputError(f"padim models feature maps (N, d, h, w); got inputs of shape {input_shape}")
        self.nets_ = nn.ModuleDict()  # everything learned lives in extra_state()

    def fit_once(self, x: Tensor) -> None:
        n, d, h, w = x.shape
        if n < 2:
            raise InputError(f"padim: a covariance needs at least 2 training images, got {n}")
        v = x.double().flatten(2).permute(2, 0, 1)  # (L, N, d), L = h w locations
        mean = v.mean(1)  # (L, d)
        c = v - mean[:, None]
        cov = torch.einsum("lnd,lne->lde", c, c) / (n - 1) + self.eps * torch.eye(d, dtype=torch.float64)
        self.load_extra_state({"mean": mean.float(), "precision": torch.linalg.inv(cov).float()})

    def patch_scores(self, x: Tensor) -> Tensor:
        """(B, d, h, w) embedded images -> (B, h, w) Mahalanobis distances M(x_ij) (section 3.3)."""
        h, w = x.shape[-2:]
        diff = x.flatten(2).permute(0, 2, 1) - self.mean_.to(x.device)  # (B, L, d)
        m = torch.einsum("bld,lde,ble->bl", diff, self.precision_.to(x.device), diff)
        return m.clamp_min(0).sqrt().reshape(-1, h, w)  # (no batch size in the graph: ONNX export keeps it dynamic)

    def map_batch(self, x: Tensor) -> Tensor:
        side = self.crop or self.image_size
        return image_map(self.patch_scores(x), side, self.image_size, self.blur_sigma)  # (B, S, S)

    def score_batch(self, x: Tensor) -> Tensor:
        return self.map_batch(x).flatten(1).amax(1)  # (B,) the map's maximum

    def extra_state(self) -> dict[str, Tensor]:
        return {"mean": self.mean_, "precision": self.precision_}

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        if set(state) != {"mean", "precision"}:
            raise ValueError(f"a padim model needs mean and precision, got {sorted(state)}")
        mean, prec = state["mean"], state["precision"]
        if mean.ndim != 2 or tuple(prec.shape) != (*mean.shape, mean.shape[1]):
            raise ValueError(f"padim: mean (L, d) and precision (L, d, d) expected, got {tuple(mean.shape)}, "
                             f"{tuple(prec.shape)}")
        self.mean_, self.precision_ = mean.float().cpu().clone(), prec.float().cpu().clone()  # (L, d), (L, d, d)


PRESETS: dict[str, dict] = {
    "cpu": dict(layers=("s8", "s16")),
    "industrial": dict(layers=("s8", "s16")),
}
"""Explicit overrides: MobileNetV2's stride-8 and stride-16 blocks (28 x 28 locations at 224 px instead of 56 x 56)."""
