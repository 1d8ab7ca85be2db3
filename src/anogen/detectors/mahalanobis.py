"""Mahalanobis AD: a Gaussian per pooled backbone layer of normal images; the score sums the Mahalanobis distances.

Paper: Rippel, Mertens, Merhof, "Modeling the Distribution of Normal Data in Pre-Trained Deep Features for Anomaly
Detection", ICPR 2020 (arXiv 2005.14140); "Mah.AD" in the ALGAN paper's Table 2 (``papers/000_346db876b8fe0885.txt``:
0.958 mean AUROC on MVTec AD), which also names it in its related work ("extracts the hierarchical features of normal
data from a pre-trained EfficientNet, fits them with a multivariate normal distribution, and uses the Mahalanobis
distance as the anomaly score"). Reference code: the authors' ORippler/gaussian-ad-mvtec (read, not copied).

For each layer l (a block's feature map averaged over space, :class:`anogen.features.PooledFeatures`) a
multivariate Gaussian N(mu_l, Sigma_l) is fitted to the training features f_l(x):
    mu_l = mean of f_l over the training set,  Sigma_l = Ledoit-Wolf shrinkage of the empirical covariance
    (Sigma_LW = (1 - rho) S + rho tr(S) / D_l I, rho estimated in closed form; S the maximum-likelihood covariance),
and the anomaly score is the sum over layers of the Mahalanobis distances
    s(x) = sum_l M_l(x),  M_l(x) = sqrt((f_l(x) - mu_l)^T Sigma_l^{-1} (f_l(x) - mu_l)).
(N, D) feature vectors are one "layer" (one Gaussian over D dimensions).

Deviations / choices:
- Backbone: the paper uses EfficientNet-B4 (all 9 levels: stem, 7 stages, head); the closest offline network here is
  EfficientNet-Lite0, whose taps are the last block at each output stride (``s2`` ... ``s32``) plus the head
  (``last``): 6 levels (stages ending at the same stride are one level). ``layers`` chooses them.
- ``shrinkage="ledoit_wolf"`` (the paper) is scikit-learn's ``LedoitWolf``; ``"empirical"`` uses the
  maximum-likelihood covariance S plus ``reg`` I (no shrinkage). The precision Sigma_l^{-1} is computed once at fit
  (float64, ``numpy.linalg.pinv`` of the symmetric matrix) and saved.
- The paper scores with the plain (not squared) distance and sums over levels; so do we.
- Rotations (ALGAN IV-B5, Rudolph et al.) are the shared ``train_rotations`` / ``test_rotations`` fields (off).
- ``pool_grid`` = g > 1 (ours): each layer pooled over a g x g grid of cells, one Gaussian over its C g^2 values;
  keeps coarse position, which aligned industrial images (MTD tiles) reward. 1 (global pooling) is the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.data.transforms import InputError
from anogen.detector import Detector
from anogen.features import PooledFeatures, pool_maps
from anogen.params import non_negative, one_of

SHRINKAGES = ("ledoit_wolf", "empirical")


def fit_gaussian(x: np.ndarray, shrinkage: str, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) samples -> mean (D,) and precision (D, D) of the fitted Gaussian (float64)."""
    from sklearn.covariance import EmpiricalCovariance, LedoitWolf

    x = np.asarray(x, dtype=np.float64)
    if shrinkage == "ledoit_wolf":
        est = LedoitWolf(assume_centered=False).fit(x)
        cov = est.covariance_
    else:
        cov = EmpiricalCovariance(assume_centered=False).fit(x).covariance_ + reg * np.eye(x.shape[1])
    return x.mean(0), np.linalg.pinv(cov, hermitian=True)


def mahalanobis(x: Tensor, mean: Tensor, precision: Tensor) -> Tensor:
    """(B, D) -> (B,) sqrt((x - mu)^T P (x - mu)), float64 (clamped at 0 against rounding)."""
    d = x.double() - mean  # (B, D)
    return torch.einsum("bi,ij,bj->b", d, precision, d).clamp_min(0).sqrt()


@register("mahalanobis")
@dataclass(kw_only=True)
class Mahalanobis(PooledFeatures, Detector):
    """A Gaussian per pooled backbone layer (Ledoit-Wolf covariance); score = summed Mahalanobis distances."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "shrinkage": one_of(SHRINKAGES), "reg": non_negative(),
    }

    backbone: str = "efficientnet_lite0"
    """frozen ImageNet feature extractor (the paper: EfficientNet-B4; here Lite0), or none for (N, D) vectors"""
    layers: tuple[str, ...] = ("s2", "s4", "s8", "s16", "s32", "last")
    """pooled layers, one Gaussian each (the paper: every level of the backbone)"""
    shrinkage: str = "ledoit_wolf"
    """covariance estimate: ledoit_wolf (the paper) or empirical (maximum likelihood + reg I)"""
    reg: float = 1e-6
    """added to the diagonal of the empirical covariance (shrinkage="empirical" only)"""

    input_kind: ClassVar[str] = "any"
    iterative: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self._check_backbone_fields()
        if self.shrinkage not in SHRINKAGES:
            raise ValueError(f"mahalanobis: shrinkage must be one of {', '.join(SHRINKAGES)}; got {self.shrinkage!r}")
        if self.reg < 0:
            raise ValueError(f"mahalanobis: reg must be >= 0, got {self.reg}")

    def embed(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) images -> (B, sum D_l) pooled layers; remembers the per-layer lengths D_l."""
        maps = self.feature_maps(x)
        self._layer_dims = [int(m.shape[1]) * self.pool_grid**2 for m in maps]
        return pool_maps(maps, self.pool_grid)

    def build(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 1:
            raise InputError(f"mahalanobis models vectors (N, D); got inputs of shape {input_shape}")
        self.nets_ = nn.ModuleDict()  # everything learned lives in extra_state()

    def fit_once(self, x: Tensor) -> None:
        dims = list(getattr(self, "_layer_dims", [])) if self.input_kind_ == "image" else [x.shape[1]]
        if sum(dims) != x.shape[1]:
            raise RuntimeError(f"mahalanobis: layer lengths {dims} do not add up to the feature length {x.shape[1]}")
        if len(x) < 2:
            raise InputError(f"mahalanobis: got {len(x)} sample(s) (n_samples = {len(x)}); a covariance needs at least 2")
        state: dict[str, Tensor] = {"layer_dims": torch.tensor(dims, dtype=torch.int64)}
        v = x.double().cpu().numpy()
        start = 0
        for i, d in enumerate(dims):
            mean, prec = fit_gaussian(v[:, start : start + d], self.shrinkage, self.reg)
            state[f"mean{i}"], state[f"precision{i}"] = torch.from_numpy(mean), torch.from_numpy(prec)
            start += d
        self.load_extra_state(state)

    def score_batch(self, x: Tensor) -> Tensor:
        dists = [mahalanobis(xl, mean.to(x.device), prec.to(x.device))  # (B,) M_l(x)
                 for xl, mean, prec in zip(x.split(self.layer_dims_, dim=1), self.means_, self.precisions_)]
        return torch.stack(dists).sum(0)  # (B,) summed over layers

    def extra_state(self) -> dict[str, Tensor]:
        state = {"layer_dims": torch.tensor(self.layer_dims_, dtype=torch.int64)}
        for i, (m, p) in enumerate(zip(self.means_, self.precisions_)):
            state[f"mean{i}"], state[f"precision{i}"] = m, p
        return state

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        if "layer_dims" not in state:
            raise ValueError(f"a mahalanobis model needs layer_dims, mean<i> and precision<i>; got {sorted(state)}")
        dims = [int(d) for d in state["layer_dims"]]
        need = {"layer_dims"} | {f"{k}{i}" for i in range(len(dims)) for k in ("mean", "precision")}
        if set(state) != need:
            raise ValueError(f"a mahalanobis model with {len(dims)} layers needs {sorted(need)}; got {sorted(state)}")
        for i, d in enumerate(dims):
            if tuple(state[f"mean{i}"].shape) != (d,) or tuple(state[f"precision{i}"].shape) != (d, d):
                raise ValueError(f"mahalanobis layer {i}: expected mean ({d},) and precision ({d}, {d})")
        self.layer_dims_ = dims
        self.means_ = [state[f"mean{i}"].double().cpu().clone() for i in range(len(dims))]
        self.precisions_ = [state[f"precision{i}"].double().cpu().clone() for i in range(len(dims))]


PRESETS: dict[str, dict] = {
    "cpu": dict(backbone="mobilenet_v2", layers=("s8", "s16", "s32", "last")),
    "industrial": dict(backbone="mobilenet_v2", layers=("s8", "s16", "s32", "last")),
}
"""Explicit overrides: MobileNetV2 (the faster offline backbone on a CPU), mid-level to last layers."""
