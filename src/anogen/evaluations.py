"""Extra measurements of a benchmark run beyond the test metrics: model selection modes and lighting drift.

- ``selection`` (suites ``selection-*``): one training run measures the three ways of choosing the kept state. The
  run fits with ``selection="synthetic"`` and labelled validation data, so every validation epoch records both the
  labelled validation AUROC (``val_auroc``) and the AUROC of held-out normals vs their synthetic defects
  (``synthetic_auroc``) in ``history_``. A hook (``Detector._on_validate``) scores the test set at each validation
  epoch; after the fit each mode picks its epoch from the history alone -- ``labels``: the first epoch of highest
  ``val_auroc``, ``synthetic``: ``Detector.fit``'s rule (best ``synthetic_auroc`` unless the last epoch is within
  one standard error), ``synthetic_best``: the plain best ``synthetic_auroc``, ``last``: the final epoch -- and only
  the test AUROC of the picked states is reported. Test scores never choose anything.
  All three modes train on the same images (the hold-out of ``holdout`` is taken in all three), so they differ only
  in the rule that picks the state.
- ``drift``: the test images at the model's resolution as unit images (N, C, S, S) in [0, 1], each brightness-scaled
  (``x * f``, clipped to [0, 1]) or gamma-changed (``x ** g``) as a whole, normal and defective images alike, scored
  again; training untouched. Applied after resizing: a brightness gain commutes with the (linear) resize up to the
  clipping, a gamma change to within interpolation error.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

SHIFTS: dict[str, tuple[str, float]] = {
    "brightness x0.9": ("brightness", 0.9), "brightness x1.1": ("brightness", 1.1),
    "gamma 0.8": ("gamma", 0.8), "gamma 1.25": ("gamma", 1.25),
}
"""The drift suite's lighting shifts (issue 14): two brightness gains and two gammas."""


def shift_images(u: torch.Tensor, kind: str, value: float) -> torch.Tensor:
    """Unit images (N, C, H, W) under a global lighting change: ``brightness`` gain or ``gamma``."""
    if kind == "brightness":
        return (u * value).clamp(0, 1)
    if kind == "gamma":
        return u.clamp(0, 1) ** value
    raise ValueError(f"unknown shift {kind!r}; expected brightness or gamma")


def drift_metrics(det: Any, test_x: Any, test_y: np.ndarray) -> dict[str, float]:
    """Test AUROC unshifted and under each of :data:`SHIFTS` (keys as there, plus ``none``)."""
    from sklearn.metrics import roc_auc_score

    u = det._unit_images(test_x)
    out = {"none": float(roc_auc_score(test_y, det.decision_function(u)))}
    for name, (kind, value) in SHIFTS.items():
        out[name] = float(roc_auc_score(test_y, det.decision_function(shift_images(u, kind, value))))
    return out


def selection_tracker(det: Any, test_x: Any, test_y: np.ndarray) -> tuple[Callable[..., None], dict[int, float]]:
    """A ``_on_validate`` hook recording the test AUROC of each validated state (by epoch), and its dict.

    The hook leaves every random stream as it found it, so the training run is the one it would be without it."""
    from sklearn.metrics import roc_auc_score

    prepared: dict[str, Any] = {}
    aucs: dict[int, float] = {}

    def hook(d: Any, rec: dict[str, float]) -> None:
        if "x" not in prepared:
            prepared["x"] = d._prepare(test_x)
        cpu, npst = torch.random.get_rng_state(), np.random.get_state()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        try:
            aucs[int(rec["epoch"])] = float(roc_auc_score(test_y, d._score_prepared(prepared["x"])))
        finally:
            torch.random.set_rng_state(cpu)
            np.random.set_state(npst)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)

    return hook, aucs


def pick_epochs(history: list[dict[str, float]], n_normal: int | None = None,
                n_anomalous: int | None = None) -> dict[str, int | None]:
    """The epoch each selection mode keeps, from a fit's history: first epoch of highest ``val_auroc`` (labels);
    ``Detector.fit``'s synthetic rule (:func:`anogen.health.synthetic_choice`: the first epoch of highest
    ``synthetic_auroc`` unless the last is within one standard error, given the synthetic set's sizes; without sizes,
    the plain first best); the first epoch of highest ``synthetic_auroc`` (synthetic_best); the final epoch (last)."""
    from anogen.health import synthetic_choice

    def first_best(key: str) -> int | None:
        best, epoch = -np.inf, None
        for rec in history:
            if key in rec and rec[key] > best:
                best, epoch = rec[key], int(rec["epoch"])
        return epoch

    best = first_best("synthetic_auroc")
    synthetic = best if n_normal is None or n_anomalous is None else synthetic_choice(history, n_normal, n_anomalous)
    return {"labels": first_best("val_auroc"), "synthetic": synthetic, "synthetic_best": best,
            "last": int(history[-1]["epoch"]) if history else None}


def selection_metrics(history: list[dict[str, float]], test_aucs: dict[int, float], n_normal: int | None = None,
                      n_anomalous: int | None = None) -> dict[str, Any]:
    """Per mode: the picked epoch, the AUROC it was picked on, and the test AUROC of that state."""
    out: dict[str, Any] = {}
    for mode, epoch in pick_epochs(history, n_normal, n_anomalous).items():
        rec = next((r for r in history if int(r["epoch"]) == epoch), {})
        key = {"labels": "val_auroc", "synthetic": "synthetic_auroc", "synthetic_best": "synthetic_auroc"}.get(mode)
        out[mode] = {"epoch": epoch, "picked_on": rec.get(key) if key else None,
                     "test_auroc": test_aucs.get(epoch) if epoch is not None else None}
    return out
