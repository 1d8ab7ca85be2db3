"""Isolation Forest baseline (optionally on PCA features), scored from the trees' arrays without pickle.

Paper: the Isolation Forest baseline [23] (Liu et al., "Isolation-Based Anomaly Detection", TKDD 2012) of
``papers/004_41020bdc449fbf6e.txt``, section V-B and Table I (scikit-learn, N_e base estimators, each built from 256
samples; an estimated contamination ratio r). The forest is scikit-learn's ``IsolationForest``.

Score: the isolation score s(x) = 2^(-E[h(x)] / c(psi)) (Liu et al.), with h(x) the path length of x in a tree
(edges from the root to its leaf plus c(n_leaf), the average path length of an unbuilt subtree of n_leaf training
samples), E the mean over the trees, psi the samples per tree (``max_samples_``) and
c(n) = 2 (ln(n - 1) + 0.5772...) - 2 (n - 1) / n (c(2) = 1, c(1) = 0). Higher = more anomalous; it is minus
scikit-learn's ``score_samples``.

The model file holds tensors only (no pickle): per tree, its nodes' children_left / children_right / feature /
threshold / n_node_samples padded to the largest tree (children -1 mark leaves and padding), the tree's feature subset
(``estimators_features_``) and ``max_samples_``. Scoring walks all trees at once in torch (float64), comparing
x[feature] <= threshold exactly as scikit-learn's trees do (inputs rounded to float32, thresholds float64).

Deviations / choices:
- ``n_estimators`` = 100: Table I's selected N_e on both datasets (the text says N_e = 1000); ``max_samples`` = 256
  (the text; scikit-learn's "auto"), clipped to the training-set size as scikit-learn does; ``max_features`` = 1.0
  (every tree sees every feature; scikit-learn's default).
- The paper's contamination ratio r only places scikit-learn's decision threshold (its ``offset_``), never the
  score; here that role is the base field ``contamination`` (threshold_ = the 1 - contamination quantile of the
  normal calibration scores). scikit-learn's own ``contamination`` is left at "auto" and unused.
- Inputs are images (flattened to C H W values, ``normalize="unit"``) or (N, D) vectors. Optional PCA
  (``pca_components``, 0 = off, the default: the paper uses PCA for its GMM only), fitted on the training set, with the
  component count clipped to min(pca_components, n_samples - 1, D) with a warning, as for the GMM.
- The paper's patch extraction (256 random patches per tree) belongs to the data protocol, not to this detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.detector import Detector
from anogen.features import pca_fit, pca_project
from anogen.params import integer, real

TREE_ARRAYS = ("children_left", "children_right", "feature", "threshold", "n_node_samples")


# ---------------------------------------------------------------------------------------------------- helpers
def average_path_length(n: Tensor) -> Tensor:
    """c(n): average path length of an unsuccessful BST search in n samples (0 for n <= 1, 1 for n = 2)."""
    n = n.double()
    c = 2.0 * (torch.log((n - 1.0).clamp_min(1.0)) + np.euler_gamma) - 2.0 * (n - 1.0) / n.clamp_min(1.0)
    return torch.where(n <= 1, torch.zeros_like(n), torch.where(n == 2, torch.ones_like(n), c))


def forest_arrays(forest) -> dict[str, Tensor]:
    """A fitted scikit-learn IsolationForest -> padded tensors (T, max_nodes) per tree array, (T, F) feature subsets,
    and max_samples_."""
    trees = [e.tree_ for e in forest.estimators_]
    width = max(t.node_count for t in trees)
    out: dict[str, Tensor] = {}
    for name in TREE_ARRAYS:
        fill, dtype = (-1, np.int64) if name != "threshold" else (0.0, np.float64)
        a = np.full((len(trees), width), fill, dtype=dtype)
        for i, t in enumerate(trees):
            a[i, : t.node_count] = getattr(t, name)
        out[name] = torch.from_numpy(a)
    out["features"] = torch.from_numpy(np.stack([np.asarray(f, np.int64) for f in forest.estimators_features_]))
    out["max_samples"] = torch.tensor([forest.max_samples_], dtype=torch.int64)
    return out


def isolation_scores(x: Tensor, f: dict[str, Tensor]) -> Tensor:
    """(B,) isolation scores 2^(-E[h(x)] / c(psi)) of (B, D) inputs from :func:`forest_arrays`' tensors."""
    dev = x.device
    left, right = f["children_left"].to(dev), f["children_right"].to(dev)  # (T, nodes)
    thr, n_node = f["threshold"].to(dev), f["n_node_samples"].to(dev)
    feat = f["features"].to(dev).gather(1, f["feature"].to(dev).clamp_min(0))  # (T, nodes) tree -> input feature
    x = x.float().double()  # scikit-learn's trees compare float32 inputs with float64 thresholds
    b, t = x.shape[0], left.shape[0]
    tree = torch.arange(t, device=dev).expand(b, t)  # (B, T)
    node = torch.zeros(b, t, dtype=torch.long, device=dev)  # (B, T) every walk starts at the root
    depth = torch.zeros(b, t, dtype=torch.float64, device=dev)
    rows = torch.arange(b, device=dev).unsqueeze(1)  # (B, 1)
    while True:
        inner = left[tree, node] >= 0  # (B, T) not yet at a leaf
        if not bool(inner.any()):
            break
        go_left = x[rows, feat[tree, node]] <= thr[tree, node]
        nxt = torch.where(go_left, left[tree, node], right[tree, node])
        node = torch.where(inner, nxt, node)
        depth += inner.double()
    h = depth + average_path_length(n_node[tree, node])  # (B, T) path length per tree
    c = average_path_length(f["max_samples"].to(dev).double())  # (1,) c(psi)
    if float(c) == 0.0:  # one training sample: scikit-learn's score is then 1 (-1 for score_samples)
        return torch.ones(b, dtype=torch.float64, device=dev)
    return torch.pow(2.0, -h.sum(1) / (t * c))  # (B,)


# ---------------------------------------------------------------------------------------------------- detector
@register("iforest")
@dataclass(kw_only=True)
class IForest(Detector):
    """Isolation Forest (scikit-learn) on flattened images or vectors, optionally after PCA; score = isolation score."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "n_estimators": integer(1), "max_samples": integer(1), "max_features": real(0.0, 1.0, lo_open=True),
        "pca_components": integer(0),
    }

    n_estimators: int = 100
    """trees N_e in the forest"""
    max_samples: int = 256
    """training samples drawn for each tree (clipped to the training-set size)"""
    max_features: float = 1.0
    """share of the input features drawn for each tree"""
    pca_components: int = 0
    """PCA components fitted on the training set (0 = no PCA; clipped to n_samples - 1)"""
    normalize: str = "unit"
    """pixel scaling: tanh ([-1, 1]), unit ([0, 1]) or imagenet (mean / std)"""

    input_kind: ClassVar[str] = "any"
    iterative: ClassVar[bool] = False
    onnx_unsupported: ClassVar[str] = ("its score walks every tree down to a leaf in a loop whose length depends on "
                                       "the input (no fixed graph; anogen.export)")

    def __post_init__(self) -> None:
        if self.n_estimators < 1 or self.max_samples < 1 or self.pca_components < 0:
            raise ValueError(f"iforest: need n_estimators >= 1, max_samples >= 1, pca_components >= 0; got "
                             f"{self.n_estimators}, {self.max_samples}, {self.pca_components}")
        if not 0.0 < self.max_features <= 1.0:
            raise ValueError(f"iforest: max_features is a share in (0, 1], got {self.max_features}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.nets_ = nn.ModuleDict()  # everything learned lives in extra_state()

    def fit_once(self, x: Tensor) -> None:
        from sklearn.ensemble import IsolationForest

        v = x.flatten(1).double().cpu().numpy()  # (N, D)
        state = pca_fit(v, self.pca_components, self.seed, "iforest") if self.pca_components else {}
        feats = self.features(torch.from_numpy(v), state).numpy()
        forest = IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(feats)),
                                 max_features=self.max_features, random_state=self.seed).fit(feats)
        state.update(forest_arrays(forest))
        self.load_extra_state(state)

    @staticmethod
    def features(x: Tensor, state: dict[str, Tensor]) -> Tensor:
        """(B, ...) -> (B, K) float64: flattened, then (x - mean) @ components^T where a PCA was fitted."""
        return pca_project(x.flatten(1), state)

    def score_batch(self, x: Tensor) -> Tensor:
        return isolation_scores(self.features(x, self.state_), self.state_)  # (B,) = -score_samples

    def extra_state(self) -> dict[str, Tensor]:
        return dict(self.state_)

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        need = set(TREE_ARRAYS) | {"features", "max_samples"}
        if not need <= set(state) or ("pca_mean" in state) != ("pca_components" in state):
            raise ValueError(f"an iforest model needs {sorted(need)} (+ pca_mean / pca_components), "
                             f"got {sorted(state)}")
        self.state_ = {k: v.cpu().clone() for k, v in state.items()}  # fresh, aligned memory
        self.max_samples_ = int(state["max_samples"][0])
        self.pca_components_ = int(state["pca_components"].shape[0]) if "pca_components" in state else 0


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, n_estimators=100),
}
"""Explicit overrides for small runs: ``anogen.create("iforest", **PRESETS["cpu"])`` (one-class digits in a second)."""
