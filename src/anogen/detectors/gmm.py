"""Gaussian mixture model baseline (optionally on PCA features): the negative log-likelihood or the unregularized score.

Paper: Matsubara, Hama, Tachibana, Uehara, "Deep Generative Model using Unregularized Score for Anomaly Detection with
Heterogeneous Complexity", IEEE Trans. Cybernetics 2020, arXiv:1807.05800 (``papers/004_41020bdc449fbf6e.txt``): eqs. (1)-(2) (GMM and its NLL score),
(7)-(8) (the unregularized score of a GMM), section V-B (full covariances fitted by EM with scikit-learn, N_z hidden
classes, N_h PCA components). Reference code: none public (section 8 of ``research/reference-implementations.md``);
the GMM, PCA and EM are scikit-learn's.

Scores, with x the (PCA-projected) flattened input and k = argmax_z p(z | x) = argmax_z w_z N(x; mu_z, Sigma_z)
(the MAP hidden class):
- ``score="nll"``: L(x) = -log p(x) = -log sum_z w_z N(x; mu_z, Sigma_z), eq. (2) (the ordinary score; equal to
  minus scikit-learn's ``score_samples``).
- ``score="unregularized"``: M(x) = 1/2 (x - mu_k)^T Sigma_k^{-1} (x - mu_k), eq. (8), i.e. eq. (7)'s
  -log p(x, z = k) = D(x) + A(x) + M(x) without the regularising terms D(x) = -log w_k and
  A(x) = 1/2 log((2 pi)^N |Sigma_k|). With one hidden class it is half the squared Mahalanobis distance.

The model file holds tensors only (no pickle): PCA mean and components, and the mixture's weights, means and
precision Cholesky factors (P_z with P_z P_z^T = Sigma_z^{-1}, scikit-learn's ``precisions_cholesky_``), in float64;
scores are computed from them in torch: log N(x; mu_z, Sigma_z) = -N/2 log(2 pi) + log|P_z| - 1/2 ||(x - mu_z) P_z||^2.

Deviations / choices:
- Inputs are images (flattened to C H W values, ``normalize="unit"`` so pixels are in [0, 1]) or (N, D) vectors
  (taken as they are).
- ``pca_components`` = N_h = 100 (the paper selects N_h from {20, 50, 100, 200, 500}; 100 was best on its gear
  data) and ``n_components`` = N_z = 10 (selected from {2, 5, 10, 20, ...}; 10 was best on its screw data). The
  paper's toy experiment used no PCA: ``pca_components=0``. PCA is scikit-learn's (centred, not whitened, fitted on
  the training set, randomised SVD seeded by ``seed`` where scikit-learn picks it).
- Small training sets: a PCA cannot have more informative components than n_samples - 1 (the rank of centred data)
  nor than the input dimension, so the component count is clipped to min(pca_components, n_samples - 1, D), with a
  warning, and recorded in ``pca_components_``. The covariances of components holding few samples are singular;
  ``reg_covar`` (scikit-learn's 1e-6, the paper's v0.19.1 default) is added to their diagonals. A training set
  smaller than ``n_components`` is an error.
- EM: scikit-learn's (k-means initialisation, ``max_iter`` = 100, tolerance 1e-3, one initialisation), seeded by
  ``seed``.
- The paper extracts ten random patches per training image for its real-world data; patch extraction belongs to the
  data protocol (``data/protocols.py``), not to this detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from anogen._registry import register
from anogen.data.transforms import InputError
from anogen.detector import Detector
from anogen.features import pca_fit, pca_project
from anogen.params import integer, non_negative, one_of

SCORES = ("nll", "unregularized")


# ---------------------------------------------------------------------------------------------------- scores
def gaussian_log_probs(x: Tensor, means: Tensor, prec_chol: Tensor) -> tuple[Tensor, Tensor]:
    """log N(x; mu_z, Sigma_z) (B, Z) and M_z(x) = 1/2 (x - mu_z)^T Sigma_z^{-1} (x - mu_z) (B, Z).

    Args:
        x: (B, N) inputs; means: (Z, N); prec_chol: (Z, N, N) with P_z P_z^T = Sigma_z^{-1}.
    """
    y = torch.einsum("bn,znm->bzm", x, prec_chol) - torch.einsum("zn,znm->zm", means, prec_chol)  # (B, Z, N)
    m = 0.5 * y.pow(2).sum(-1)  # (B, Z) eq. (8) M(x) for every class
    log_det = torch.diagonal(prec_chol, dim1=-2, dim2=-1).log().sum(-1)  # (Z,) log|P_z| = -1/2 log|Sigma_z|
    return -0.5 * x.shape[1] * math.log(2 * math.pi) + log_det - m, m


def gmm_scores(x: Tensor, weights: Tensor, means: Tensor, prec_chol: Tensor, score: str) -> Tensor:
    """(B,) anomaly scores of (B, N) inputs: ``nll`` eq. (2) -log p(x), or ``unregularized`` eq. (8) M(x) of the MAP
    class k = argmax_z [log w_z + log N(x; mu_z, Sigma_z)] (eq. (7))."""
    log_p, m = gaussian_log_probs(x, means, prec_chol)
    joint = log_p + weights.log()  # (B, Z) log w_z + log N = -(D + A + M), eq. (7)
    if score == "nll":
        return -torch.logsumexp(joint, dim=1)  # eq. (2)
    k = joint.argmax(dim=1, keepdim=True)  # (B, 1) MAP hidden class
    return m.gather(1, k).squeeze(1)  # eq. (8)


# ---------------------------------------------------------------------------------------------------- detector
@register("gmm")
@dataclass(kw_only=True)
class GMM(Detector):
    """Gaussian mixture model (full covariances, EM) on flattened images or vectors, optionally after PCA."""

    param_domains: ClassVar[dict] = {  # the domain of each field this class declares (anogen.params)
        "n_components": integer(1), "pca_components": integer(0), "score": one_of(SCORES),
        "reg_covar": non_negative(), "max_iter": integer(1),
    }

    n_components: int = 10
    """hidden classes N_z of the mixture"""
    pca_components: int = 100
    """PCA components N_h fitted on the training set (0 = no PCA; clipped to n_samples - 1)"""
    score: str = "nll"
    """anomaly score: nll (eq. 2, -log p(x)) or unregularized (eq. 8, M(x) of the MAP class)"""
    reg_covar: float = 1e-6
    """added to the diagonal of every covariance"""
    max_iter: int = 100
    """EM iterations at most"""
    normalize: str = "unit"
    """pixel scaling: tanh ([-1, 1]), unit ([0, 1]) or imagenet (mean / std)"""

    input_kind: ClassVar[str] = "any"
    iterative: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"gmm: score must be one of {', '.join(SCORES)}; got {self.score!r}")
        if self.n_components < 1 or self.pca_components < 0 or self.max_iter < 1 or self.reg_covar < 0:
            raise ValueError(f"gmm: need n_components >= 1, pca_components >= 0, max_iter >= 1, reg_covar >= 0; got "
                             f"{self.n_components}, {self.pca_components}, {self.max_iter}, {self.reg_covar}")

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.nets_ = nn.ModuleDict()  # everything learned lives in extra_state()

    def fit_once(self, x: Tensor) -> None:
        from sklearn.mixture import GaussianMixture

        v = x.flatten(1).double().cpu().numpy()  # (N, D)
        if len(v) < self.n_components:
            raise InputError(f"gmm: {len(v)} training samples cannot fit n_components={self.n_components}")
        state = pca_fit(v, self.pca_components, self.seed, "gmm") if self.pca_components else {}
        feats = pca_project(torch.from_numpy(v), state).numpy()  # (N, K)
        gm = GaussianMixture(self.n_components, covariance_type="full", reg_covar=self.reg_covar,
                             max_iter=self.max_iter, random_state=self.seed).fit(feats)
        state.update(weights=torch.from_numpy(gm.weights_.copy()), means=torch.from_numpy(gm.means_.copy()),
                     precisions_cholesky=torch.from_numpy(gm.precisions_cholesky_.copy()))
        self.load_extra_state(state)
        self.converged_ = bool(gm.converged_)
        self.n_iter_ = int(gm.n_iter_)  # EM iterations run (scikit-learn's name)

    def features(self, x: Tensor) -> Tensor:
        """(B, ...) inputs -> (B, K) float64 features the mixture models (flattened, PCA-projected)."""
        return pca_project(x.flatten(1), self.state_)

    def score_batch(self, x: Tensor) -> Tensor:
        s = self.state_
        dev = x.device
        return gmm_scores(self.features(x), s["weights"].to(dev), s["means"].to(dev),
                          s["precisions_cholesky"].to(dev), self.score)  # (B,)

    def extra_state(self) -> dict[str, Tensor]:
        return dict(self.state_)

    def load_extra_state(self, state: dict[str, Tensor]) -> None:
        need = {"weights", "means", "precisions_cholesky"}
        if not need <= set(state) or ("pca_mean" in state) != ("pca_components" in state):
            raise ValueError(f"a gmm model needs {sorted(need)} (+ pca_mean / pca_components), got {sorted(state)}")
        self.state_ = {k: v.double().cpu().clone() for k, v in state.items()}  # fresh, aligned memory
        self.pca_components_ = int(state["pca_components"].shape[0]) if "pca_components" in state else 0


PRESETS: dict[str, dict] = {
    "cpu": dict(image_size=16, pca_components=20, n_components=2),
}
"""Explicit overrides for small runs: ``anogen.create("gmm", **PRESETS["cpu"])`` (one-class digits in a second)."""
