"""The health check run after every fit: can the model tell normal images from synthetic defects, and do held-out
normal images score like the training images?

Inputs are scores only (higher = more anomalous), so this module knows nothing of detectors:

- ``synthetic_auroc``: AUROC of held-out normal images (label 0) against one synthetic defective copy of each
  (label 1, :mod:`anogen.data.synthetic`). Below :data:`MIN_AUROC` (0.6) the model hardly separates a gray square,
  a pasted patch, noise, blur or a blotch from a normal image, and real defects are unlikely to fare better.
- ``ks`` / ``ks_pvalue``: the two-sample Kolmogorov-Smirnov statistic (and its p-value) between the scores of the
  training images and of the held-out normal images. We chose KS over a ratio of medians because it is scale- and
  sign-free (scores of different detectors are energies, logits, squared errors) and has a null distribution: a
  model that memorised its training images (overfitting) scores unseen normal images higher, which moves their whole
  distribution. "Strong difference" = ``ks >= KS_LIMIT`` (0.5: the two empirical distributions are at least half
  apart somewhere) and ``ks_pvalue < KS_ALPHA`` (0.01), so small hold-outs, whose statistic is noisy, do not warn by
  chance alone. ``shift`` = (median held-out - median training) / IQR of the training scores tells the direction.

The held-out normals are the fit's hold-out (``selection="synthetic"``) or, with validation data and no hold-out, the
normal validation images (which the model never trained on either). Sentences in ``warnings`` are plain English,
meant for the person at the line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_AUROC = 0.6
KS_LIMIT = 0.5
KS_ALPHA = 0.01


def health_report(name: str, train_scores: np.ndarray, normal_scores: np.ndarray | None,
                  anomaly_scores: np.ndarray | None, normals: str) -> dict[str, Any]:
    """The health dict of a fitted model named ``name`` (see the module docstring).

    Args:
        name: the detector's name (for the sentences).
        train_scores: scores of the images the model trained on.
        normal_scores: scores of held-out normal images, or None when there are none.
        anomaly_scores: scores of their synthetic defective copies, or None (feature vectors: no defects to make).
        normals: where the held-out normals came from ("holdout" or "validation").
    """
    if normal_scores is None or len(normal_scores) < 2:
        return {"checked": False, "ok": None, "warnings": [],
                "reason": "no held-out normal images: fit kept none (selection='last' or 'labels' without normal "
                          "validation images, or feature vectors without validation)"}
    from scipy.stats import ks_2samp
    from sklearn.metrics import roc_auc_score

    tr, ho = np.asarray(train_scores, dtype=np.float64), np.asarray(normal_scores, dtype=np.float64)
    out: dict[str, Any] = {"checked": True, "normals": normals, "n_heldout": int(len(ho)), "n_train": int(len(tr))}
    warnings: list[str] = []
    if anomaly_scores is not None and len(anomaly_scores):
        an = np.asarray(anomaly_scores, dtype=np.float64)
        auc = float(roc_auc_score(np.r_[np.zeros(len(ho)), np.ones(len(an))], np.r_[ho, an]))
        out["synthetic_auroc"] = auc
        if auc < MIN_AUROC:
            inverted = " (below 0.5: it finds the defective copies more normal than the originals)" if auc < 0.5 else ""
            warnings.append(
                f"this {name} model does not separate normal images from synthetic defects (AUROC {auc:.2f} on "
                f"{len(ho)} held-out normal images and their copies with a gray square, pasted patch, noise, blur or "
                f"blotch){inverted}; results on real defects are unlikely to be useful; try more epochs or another "
                f"learning rate, intensity='standardize' if lighting varies, or another detector (e.g. vae, ae)")
    else:
        out["synthetic_auroc"] = None
    ks = ks_2samp(tr, ho)
    q25, q50, q75 = np.quantile(tr, [0.25, 0.5, 0.75])
    iqr = float(q75 - q25)
    out.update(ks=float(ks.statistic), ks_pvalue=float(ks.pvalue),
               shift=float((np.median(ho) - q50) / iqr) if iqr > 0 else None)
    if ks.statistic >= KS_LIMIT and ks.pvalue < KS_ALPHA:
        higher = "higher" if np.median(ho) > q50 else "lower"
        warnings.append(
            f"held-out normal images score {higher} than the training images (Kolmogorov-Smirnov statistic "
            f"{ks.statistic:.2f}, p = {ks.pvalue:.1g}): the model behaves differently on normal images it has not "
            f"seen (overfitting), so its threshold may flag good parts; try fewer epochs, more normal images or "
            f"augmentation")
    out["ok"] = not warnings
    out["warnings"] = warnings
    return out


def auroc_se(auc: float, n_anomalous: int, n_normal: int) -> float:
    """Standard error of an AUROC from ``n_anomalous`` and ``n_normal`` samples (Hanley & McNeil 1982, eq. 2)."""
    a = min(max(float(auc), 1e-6), 1 - 1e-6)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_anomalous - 1) * (q1 - a * a) + (n_normal - 1) * (q2 - a * a)) / (n_anomalous * n_normal)
    return float(np.sqrt(max(var, 0.0)))


def synthetic_choice(history: list[dict[str, float]], n_normal: int, n_anomalous: int) -> int | None:
    """The epoch ``selection="synthetic"`` keeps: the first epoch of highest ``synthetic_auroc``, unless the last
    validated epoch's is within one standard error of it (:func:`auroc_se`), then the last one.

    The one-standard-error rule (Breiman et al., *Classification and Regression Trees*, 1984, 3.4.3) with the later,
    more trained state as the simpler choice: a hold-out of a few dozen normals gives AUROC differences of a few
    hundredths by chance, and an early state that wins by chance is worse on real defects than the final one."""
    rows = [r for r in history if "synthetic_auroc" in r]
    if not rows:
        return None
    best = max(rows, key=lambda r: r["synthetic_auroc"])  # the first of the highest
    last = rows[-1]
    if best["synthetic_auroc"] - last["synthetic_auroc"] <= auroc_se(best["synthetic_auroc"], n_anomalous, n_normal):
        return int(last["epoch"])
    return int(best["epoch"])
