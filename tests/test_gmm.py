"""The GMM baseline: M(x) of eq. (8) by hand, the NLL of eq. (2) equal to scikit-learn's, the MAP class of eq. (7),
PCA clipping, and learning one-class digits."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import anogen
from anogen.detectors.gmm import gmm_scores
from anogen.metrics import auroc
from conftest import one_class_digits


def _vectors(digits, n: int, offset: int = 0) -> np.ndarray:
    images, _ = digits
    return images[offset : offset + n].reshape(n, -1).astype(np.float64) / 255.0  # (n, 64)


def test_unregularized_score_is_half_the_squared_mahalanobis_distance_by_hand():
    # one component: mu = (1, -1), Sigma = [[2, 0.5], [0.5, 1]], x = (2, 0): d = (1, 1),
    # Sigma^-1 = [[1, -0.5], [-0.5, 2]] / 1.75, d^T Sigma^-1 d = (1 - 0.5 - 0.5 + 2) / 1.75 = 2 / 1.75
    sigma = np.array([[2.0, 0.5], [0.5, 1.0]])
    prec_chol = np.linalg.inv(np.linalg.cholesky(sigma)).T  # P P^T = Sigma^-1
    args = (torch.tensor([1.0], dtype=torch.float64), torch.tensor([[1.0, -1.0]], dtype=torch.float64),
            torch.from_numpy(prec_chol)[None])
    x = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    assert gmm_scores(x, *args, "unregularized").item() == pytest.approx(0.5 * 2 / 1.75, rel=1e-12)
    # eq. (7) with w = 1: -log p(x) = A(x) + M(x), A = 1/2 log((2 pi)^2 |Sigma|), |Sigma| = 1.75
    a = 0.5 * math.log((2 * math.pi) ** 2 * 1.75)
    assert gmm_scores(x, *args, "nll").item() == pytest.approx(a + 0.5 * 2 / 1.75, rel=1e-12)


def test_detector_with_one_component_scores_half_the_squared_mahalanobis_distance(digits):
    train, test = _vectors(digits, 200), _vectors(digits, 20, offset=300)
    reg = 1e-3
    det = anogen.create("gmm", n_components=1, pca_components=0, score="unregularized", reg_covar=reg,
                        verbose=False).fit(train)
    mu = train.mean(0)
    cov = np.cov(train, rowvar=False, bias=True) + reg * np.eye(train.shape[1])  # EM's one-component solution
    d = test - mu
    expected = 0.5 * np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    np.testing.assert_allclose(det.decision_function(test.astype(np.float32)), expected, rtol=1e-6)


def _sklearn_model(train: np.ndarray, k: int, z: int, seed: int = 0):
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    pca = PCA(n_components=k, random_state=seed).fit(train)
    gm = GaussianMixture(z, covariance_type="full", reg_covar=1e-6, random_state=seed).fit(pca.transform(train))
    return pca, gm


def test_nll_equals_sklearn_and_unregularized_uses_the_map_class(digits):
    train, test = _vectors(digits, 300).astype(np.float32), _vectors(digits, 40, offset=400).astype(np.float32)
    det = anogen.create("gmm", n_components=3, pca_components=10, verbose=False).fit(train)
    pca, gm = _sklearn_model(train.astype(np.float64), 10, 3)
    f = pca.transform(test.astype(np.float64))
    np.testing.assert_allclose(det.decision_function(test), -gm.score_samples(f), rtol=1e-9)

    det_m = anogen.create("gmm", n_components=3, pca_components=10, score="unregularized", verbose=False).fit(train)
    k = gm.predict(f)  # argmax_z p(z | x), the MAP class of eq. (7)
    d = f - gm.means_[k]  # (N, 10)
    y = np.einsum("ni,nij->nj", d, gm.precisions_cholesky_[k])
    np.testing.assert_allclose(det_m.decision_function(test), 0.5 * (y**2).sum(1), rtol=1e-9)  # eq. (8)
    assert det_m.pca_components_ == 10


def test_pca_is_clipped_to_the_training_set_with_a_warning(digits):
    train = _vectors(digits, 12).astype(np.float32)
    det = anogen.create("gmm", n_components=2, pca_components=100, verbose=False)
    with pytest.warns(UserWarning, match="clipped to 11"):
        det.fit(train)
    assert det.pca_components_ == 11
    with pytest.raises(ValueError, match="n_components"):
        anogen.create("gmm", n_components=20, verbose=False).fit(train)
    with pytest.raises(ValueError, match="score"):
        anogen.create("gmm", score="elbo")


@pytest.mark.slow
@pytest.mark.parametrize("score", ["nll", "unregularized"])
def test_gmm_learns_one_class_digits(digits, score):
    from anogen.detectors.gmm import PRESETS

    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    det = anogen.create("gmm", **PRESETS["cpu"], channels=1, score=score, verbose=False, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 20 components from 120 images: no clipping here
        warnings.simplefilter("ignore", anogen.detector.HealthWarning)  # its likelihood does memorise the 108 kept
        auc = auroc(y, det.fit(train).decision_function(test))
    print(f"GMM ({score}) one-class digits (0 normal) AUROC = {auc:.3f}")
    assert auc >= 0.9  # ~1.0 measured; chance is 0.5
