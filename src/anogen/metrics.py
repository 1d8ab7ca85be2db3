"""Evaluation metrics: thin wrappers over scikit-learn with anogen's conventions and loud input checks.

Conventions (the same as :class:`anogen.Detector`): labels are 1 = anomaly, 0 = normal; scores are higher = more
anomalous; a sample is predicted anomalous where ``score > threshold`` (strictly greater, as ``Detector.predict``).

>>> from anogen import metrics
>>> metrics.summarize([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], threshold=0.5)["auroc"]
0.75
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


def _check(y: Any, s: Any, what: str = "scores", need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores as flat numpy arrays, or a clear error (length, NaN, labels outside {0, 1}, one class)."""
    y = np.asarray(y)
    s = np.asarray(s, dtype=np.float64)
    y, s = y.ravel(), s.ravel()
    if len(y) != len(s):
        raise ValueError(f"got {len(y)} labels but {len(s)} {what}; they must be of the same length")
    if len(y) == 0:
        raise ValueError(f"got no labels and no {what}")
    if not np.isfinite(s).all():
        bad = int((~np.isfinite(s)).sum())
        raise ValueError(f"{what} contain {bad} NaN or infinite value(s); metrics need finite {what}")
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"labels must be 0 (normal) or 1 (anomaly), got dtype {y.dtype}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (normal) or 1 (anomaly), got values {sorted(np.unique(y).tolist())}")
    y = y.astype(np.int64)
    if need_both and len(np.unique(y)) < 2:
        only = "normal (0)" if y[0] == 0 else "anomalous (1)"
        raise ValueError(
            f"all {len(y)} labels are {only}; this metric needs both normal (0) and anomalous (1) samples"
        )
    return y, s


def auroc(y: Any, s: Any) -> float:
    """Area under the ROC curve of scores ``s`` for labels ``y`` (1 = anomaly); ties count one half."""
    y, s = _check(y, s)
    return float(roc_auc_score(y, s))


def aupr(y: Any, s: Any) -> float:
    """Area under the precision-recall curve, as scikit-learn's average precision (anomalies are positives)."""
    y, s = _check(y, s)
    return float(average_precision_score(y, s))


def at_threshold(y: Any, s: Any, thr: float) -> dict[str, float]:
    """F1, precision and recall of predicting "anomaly" where ``s > thr`` (as ``Detector.predict``).

    Precision is 0 when nothing is predicted anomalous (scikit-learn's ``zero_division=0``).
    """
    y, s = _check(y, s)
    thr = float(thr)
    if math.isnan(thr):
        raise ValueError("threshold is NaN")
    pred = (s > thr).astype(np.int64)
    return {
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
    }


def best_f1(y: Any, s: Any) -> dict[str, float]:
    """The best F1 over every threshold of the precision-recall curve, with its precision, recall and threshold.

    The returned ``threshold`` follows anogen's ``s > threshold`` rule, so ``at_threshold(y, s, r["threshold"])``
    gives the same F1: scikit-learn's curve predicts ``s >= t``, which is ``s > t'`` for ``t'`` the largest score
    below ``t`` (or just below ``t`` when ``t`` is the smallest score). On a tie in F1 the higher threshold wins.
    """
    y, s = _check(y, s)
    precision, recall, thresholds = precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]  # the last point (P=1, R=0) has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = max(range(len(f1)), key=lambda i: (f1[i], thresholds[i]))
    t = float(thresholds[best])
    below = s[s < t]
    thr = float(below.max()) if len(below) else float(np.nextafter(t, -np.inf))
    return {"f1": float(f1[best]), "precision": float(precision[best]), "recall": float(recall[best]), "threshold": thr}


def pixel_auroc(masks: Any, maps: Any) -> float:
    """AUROC over all pixels: ground-truth ``masks`` (nonzero = anomalous pixel) against anomaly ``maps``.

    Args:
        masks: (N, H, W) array, or a list of N (H, W) arrays or None (None = an all-normal mask).
        maps: (N, H, W) anomaly maps of the same size as the masks (higher = more anomalous). Nothing is resized
            here: resize masks or maps first (e.g. masks to the model's ``image_size`` with nearest neighbours).
    """
    maps = [np.asarray(m, dtype=np.float64) for m in maps] if isinstance(maps, (list, tuple)) else np.asarray(
        maps, dtype=np.float64
    )
    if len(masks) != len(maps):
        raise ValueError(f"got {len(masks)} masks but {len(maps)} anomaly maps")
    ys, ss = [], []
    for i, (mask, amap) in enumerate(zip(masks, maps)):
        amap = np.asarray(amap, dtype=np.float64)
        mask = np.zeros(amap.shape, dtype=bool) if mask is None else np.asarray(mask)
        if mask.ndim == 3 and mask.shape[-1] == 1:
            mask = mask[..., 0]
        if mask.shape != amap.shape:
            raise ValueError(
                f"mask {i} has shape {mask.shape} but its anomaly map has shape {amap.shape}; resize one to the other"
            )
        if not np.isfinite(amap).all():
            raise ValueError(f"anomaly map {i} contains NaN or infinite values")
        ys.append((mask > 0).ravel())
        ss.append(amap.ravel())
    y, s = np.concatenate(ys).astype(np.int64), np.concatenate(ss)
    y, s = _check(y, s, what="anomaly map values")
    return float(roc_auc_score(y, s))


def summarize(y: Any, s: Any, threshold: float | None = None) -> dict[str, float]:
    """Every image-level metric in one flat dict (JSON-ready).

    Keys: ``n``, ``n_anomalous``, ``auroc``, ``aupr``, ``best_f1``, ``best_f1_precision``, ``best_f1_recall``,
    ``best_f1_threshold``; with a ``threshold`` (e.g. ``det.threshold_``) also ``threshold``, ``f1``,
    ``precision``, ``recall`` at it.
    """
    y, s = _check(y, s)
    b = best_f1(y, s)
    out: dict[str, float] = {
        "n": int(len(y)),
        "n_anomalous": int(y.sum()),
        "auroc": auroc(y, s),
        "aupr": aupr(y, s),
        "best_f1": b["f1"],
        "best_f1_precision": b["precision"],
        "best_f1_recall": b["recall"],
        "best_f1_threshold": b["threshold"],
    }
    if threshold is not None:
        out["threshold"] = float(threshold)
        out.update(at_threshold(y, s, threshold))
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as papers report over seeds); std is 0.0 for one value."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise ValueError("mean_std needs at least one value")
    if not np.isfinite(v).all():
        raise ValueError(f"mean_std got NaN or infinite values: {v.tolist()}")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def time_scoring(det: Any, x: Any, repeats: int = 3) -> float:
    """Milliseconds per image of ``det.decision_function(x)`` (preprocessing included): the median of ``repeats``
    timed runs after one untimed warm-up run."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    n = len(det.decision_function(x))  # warm-up (lazy init, caches) and the image count
    if n == 0:
        raise ValueError("time_scoring got no images")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        det.decision_function(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000.0 / n
