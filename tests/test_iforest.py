"""The Isolation Forest baseline: scores computed from the stored tree arrays equal scikit-learn's, c(n), and
learning one-class digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import anogen
from anogen.detectors.iforest import average_path_length, forest_arrays, isolation_scores
from anogen.metrics import auroc
from conftest import one_class_digits


def test_average_path_length_by_hand():
    n = torch.tensor([0, 1, 2, 3, 256])
    c3 = 2 * (math.log(2) + 0.5772156649015329) - 2 * 2 / 3
    c256 = 2 * (math.log(255) + 0.5772156649015329) - 2 * 255 / 256
    np.testing.assert_allclose(average_path_length(n).numpy(), [0, 0, 1, c3, c256], rtol=1e-12)


@pytest.mark.parametrize("max_features", [1.0, 0.5])
def test_scores_from_tree_arrays_equal_sklearn_on_the_same_forest(max_features):
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 6))
    test = np.concatenate([rng.normal(size=(40, 6)), 3 * rng.normal(size=(40, 6))])
    forest = IsolationForest(n_estimators=60, max_samples=128, max_features=max_features, random_state=0).fit(train)
    ours = isolation_scores(torch.from_numpy(test), forest_arrays(forest)).numpy()
    np.testing.assert_allclose(ours, -forest.score_samples(test), rtol=0, atol=1e-9)


def test_detector_equals_sklearn_pipeline_with_the_same_seed(digits):
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    images, _ = digits
    train = images[:300].reshape(300, -1).astype(np.float32) / 255.0  # (300, 64) vectors
    test = images[300:360].reshape(60, -1).astype(np.float32) / 255.0
    det = anogen.create("iforest", n_estimators=50, pca_components=12, verbose=False, seed=4).fit(train)
    pca = PCA(n_components=12, random_state=4).fit(train.astype(np.float64))
    forest = IsolationForest(n_estimators=50, max_samples=256, random_state=4).fit(pca.transform(train))
    expected = -forest.score_samples(pca.transform(test.astype(np.float64)))
    np.testing.assert_allclose(det.decision_function(test), expected, rtol=0, atol=1e-9)
    assert det.max_samples_ == 256 and det.pca_components_ == 12
    # fewer samples than max_samples: each tree takes them all, as scikit-learn does
    assert anogen.create("iforest", n_estimators=5, verbose=False).fit(train[:40]).max_samples_ == 40


def test_bad_settings_are_loud():
    with pytest.raises(ValueError, match="max_features"):
        anogen.create("iforest", max_features=0.0)
    with pytest.raises(ValueError, match="n_estimators"):
        anogen.create("iforest", n_estimators=0)


@pytest.mark.slow
def test_iforest_learns_one_class_digits(digits):
    from anogen.detectors.iforest import PRESETS

    train, test, y = one_class_digits(*digits, normal=0, n_train=120, seed=0)
    det = anogen.create("iforest", **PRESETS["cpu"], channels=1, verbose=False, seed=0)
    auc = auroc(y, det.fit(train).decision_function(test))
    print(f"Isolation Forest one-class digits (0 normal) AUROC = {auc:.3f}")
    assert auc >= 0.9  # ~0.99 measured; chance is 0.5
