"""anogen.metrics against scikit-learn and hand computations on small arrays (ties, the `>` rule, errors)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from anogen import metrics

Y = np.array([0, 0, 1, 1, 0, 1])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])  # three scores tied at 0.4, one normal-anomalous tie across classes


def test_auroc_by_hand_with_ties():
    # anomalies 0.35, 0.8, 0.4 vs normals 0.1, 0.4, 0.4: pairs won 1+0+0, 1+1+1, 1+.5+.5 -> 6 / 9
    assert metrics.auroc(Y, S) == pytest.approx(6 / 9)
    assert metrics.auroc(Y, S) == pytest.approx(roc_auc_score(Y, S))
    assert metrics.auroc([0, 1], [0.5, 0.5]) == 0.5  # a full tie counts one half
    assert metrics.auroc([0, 0, 1], [1, 2, 3]) == 1.0
    assert metrics.auroc([0, 0, 1], [3, 2, 1]) == 0.0


def test_aupr_by_hand_and_sklearn():
    # cut-offs s >= 0.8: P 1, R 1/3; s >= 0.4 (a tie group of 3): P 2/4, R 2/3; s >= 0.35: P 3/5, R 1
    ap = (1 / 3) * 1.0 + (1 / 3) * (2 / 4) + (1 / 3) * (3 / 5)
    assert metrics.aupr(Y, S) == pytest.approx(ap)
    assert metrics.aupr(Y, S) == pytest.approx(average_precision_score(Y, S))
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 200), rng.normal(size=200)
    assert metrics.aupr(y, s) == pytest.approx(average_precision_score(y, s))


def test_at_threshold_uses_strictly_greater():
    # s > 0.4: only 0.8 -> TP 1, FP 0, FN 2
    r = metrics.at_threshold(Y, S, 0.4)
    assert r == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5})
    # s > 0.35: 0.4, 0.8, 0.4, 0.4 -> TP 2 (0.8, 0.4), FP 2 -> P 1/2, R 2/3
    r = metrics.at_threshold(Y, S, 0.35)
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(f1_score(Y, (S > 0.35).astype(int)))
    # nothing above the threshold: precision 0 (zero_division=0), recall 0
    assert metrics.at_threshold(Y, S, 1.0) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_at_threshold_matches_detector_predict_rule():
    rng = np.random.default_rng(1)
    y, s = rng.integers(0, 2, 100), rng.integers(0, 5, 100).astype(float)  # many ties
    for thr in (0.0, 1.0, 2.5, 4.0):
        pred = (s > thr).astype(int)
        assert metrics.at_threshold(y, s, thr)["f1"] == pytest.approx(f1_score(y, pred, zero_division=0))


def test_best_f1_by_hand_and_consistent_threshold():
    b = metrics.best_f1(Y, S)
    # cut-offs s >= 0.8: F1 .5; s >= 0.4: P 2/4 R 2/3 F1 4/7; s >= 0.35: P 3/5 R 1 F1 .75; s >= 0.1: P .5 R 1 F1 2/3
    assert b["f1"] == pytest.approx(0.75)
    assert b["precision"] == pytest.approx(0.6) and b["recall"] == pytest.approx(1.0)
    assert b["threshold"] == pytest.approx(0.1)  # s > 0.1 is s >= 0.35 on these scores
    again = metrics.at_threshold(Y, S, b["threshold"])
    assert again["f1"] == pytest.approx(b["f1"])


def test_best_f1_is_the_max_over_all_thresholds():
    rng = np.random.default_rng(2)
    for _ in range(5):
        y, s = rng.integers(0, 2, 60), np.round(rng.normal(size=60), 1)  # rounded: ties
        if len(np.unique(y)) < 2:
            continue
        brute = max(f1_score(y, (s > t).astype(int), zero_division=0) for t in np.r_[s, s.min() - 1])
        b = metrics.best_f1(y, s)
        assert b["f1"] == pytest.approx(brute)
        assert metrics.at_threshold(y, s, b["threshold"])["f1"] == pytest.approx(b["f1"])


def test_best_f1_when_the_lowest_score_is_the_cut():
    y, s = np.array([1, 1, 0]), np.array([1.0, 2.0, 3.0])  # best is to flag everything
    b = metrics.best_f1(y, s)
    assert b["f1"] == pytest.approx(0.8)
    assert b["threshold"] < 1.0
    assert metrics.at_threshold(y, s, b["threshold"])["f1"] == pytest.approx(0.8)


def test_pixel_auroc():
    masks = np.zeros((2, 4, 4), dtype=np.uint8)
    masks[0, :2, :2] = 255  # nonzero = anomalous
    maps = np.zeros((2, 4, 4))
    maps[0, :2, :2] = 1.0
    assert metrics.pixel_auroc(masks, maps) == 1.0
    rng = np.random.default_rng(3)
    maps = rng.random((2, 4, 4))
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(roc_auc_score((masks > 0).ravel(), maps.ravel()))
    # a list with None for an all-normal image
    assert metrics.pixel_auroc([masks[0], None], list(maps)) == pytest.approx(
        roc_auc_score((masks > 0).ravel(), maps.ravel())
    )


def test_pixel_auroc_errors():
    with pytest.raises(ValueError, match="shape"):
        metrics.pixel_auroc(np.zeros((1, 8, 8)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="2 masks but 1"):
        metrics.pixel_auroc(np.zeros((2, 4, 4)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="both normal"):
        metrics.pixel_auroc(np.zeros((1, 4, 4)), np.random.rand(1, 4, 4))


def test_summarize_keys_and_values():
    out = metrics.summarize(Y, S, threshold=0.4)
    assert out["n"] == 6 and out["n_anomalous"] == 3
    assert out["auroc"] == pytest.approx(roc_auc_score(Y, S))
    assert out["aupr"] == pytest.approx(average_precision_score(Y, S))
    assert out["best_f1"] == pytest.approx(0.75) and out["best_f1_threshold"] == pytest.approx(0.1)
    assert out["threshold"] == 0.4 and out["f1"] == pytest.approx(0.5)
    assert "f1" not in metrics.summarize(Y, S)
    assert all(isinstance(v, (int, float)) for v in out.values())


@pytest.mark.parametrize("fn", [metrics.auroc, metrics.aupr, metrics.best_f1, metrics.summarize])
def test_errors(fn):
    with pytest.raises(ValueError, match="all 3 labels are normal"):
        fn([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="anomalous"):
        fn([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="3 labels but 2"):
        fn([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        fn([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="labels must be 0"):
        fn([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="no labels"):
        fn([], [])


def test_at_threshold_errors():
    with pytest.raises(ValueError, match="NaN"):
        metrics.at_threshold([0, 1], [0.1, 0.2], float("nan"))
    with pytest.raises(ValueError, match="both normal"):
        metrics.at_threshold([1, 1], [0.1, 0.2], 0.15)


def test_boolean_labels_accepted():
    assert metrics.auroc(np.array([False, True]), [0.1, 0.9]) == 1.0


def test_mean_std():
    assert metrics.mean_std([0.9, 0.8, 0.7]) == pytest.approx((0.8, 0.1))  # sample std (ddof=1)
    assert metrics.mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        metrics.mean_std([])
    with pytest.raises(ValueError, match="NaN"):
        metrics.mean_std([0.5, float("nan")])


def test_time_scoring_ms_per_image():
    class Slow:
        calls = 0

        def decision_function(self, x):
            Slow.calls += 1
            time.sleep(0.01)
            return np.zeros(len(x))

    ms = metrics.time_scoring(Slow(), np.zeros((10, 4)), repeats=2)
    assert Slow.calls == 3  # one warm-up + two timed runs
    assert 0.9 <= ms <= 10.0  # about 10 ms / 10 images
    with pytest.raises(ValueError, match="repeats"):
        metrics.time_scoring(Slow(), np.zeros((2, 4)), repeats=0)
