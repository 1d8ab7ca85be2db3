"""What the peer scripts share: anogen's splits, preprocessing, metrics and record schema, so that a peer's record
sits beside anogen's own (``anogen.bench.run_one`` / ``run_suite`` / ``anogen.speed.speed_one``) and is read by the same report.

Runs in ``benchmarks/peers/.venv`` (see ``setup.sh``), where anogen is installed editable beside anomalib and PyOD.

- Data: ``anogen.data.spec.load_spec(spec, seed)`` gives exactly the train / validation / test sets of anogen's
  suites (the MTD split file, the digits one-class protocol); images become tensors with anogen's own
  ``Preprocess`` (same decoding, channel mapping and antialiased bilinear resize as every anogen detector).
- Model selection and threshold: as ``anogen.Detector.fit``: labelled validation only (never test), and
  ``threshold = quantile(validation normal scores, 1 - 0.01)``.
- Metrics: ``anogen.metrics.summarize(test_y, test_scores, threshold)``; ``score_ms_per_image`` is
  ``anogen.metrics.time_scoring`` on the first 256 test inputs, from the raw input (file paths or arrays) as for
  anogen's detectors, so decoding and resizing are timed too.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import time
import traceback
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results" / "peers"
SHARED_DATA = os.environ.get("ANOGEN_DATA", str(REPO.parent / "shared" / "data"))
data_root = SHARED_DATA
"""the data root of this run (the scripts' ``--data-root``); records write it as ``DATA``"""
CONTAMINATION = 0.01
"""anogen's default: the threshold leaves this share of normal validation scores above it"""
TIMING_IMAGES = 256
"""as ``anogen.bench.run_one``: scoring time is measured on the first 256 test inputs"""


def mtd_spec(root: str = SHARED_DATA) -> str:
    return f"mtd:{root}/mtd,splits={root}/mtd_splits.json"


def shown(spec: str) -> str:
    """The spec as a record writes it: the data root as ``DATA`` (as ``anogen.bench`` does), no machine path."""
    from anogen.bench import relative_spec

    return relative_spec(spec, data_root)


def peer_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in ("anomalib", "lightning", "pyod", "torchmetrics"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def provenance() -> dict[str, Any]:
    """anogen's provenance (git commit, versions, machine) plus the peers' versions."""
    from anogen.bench import provenance as _prov

    p = _prov()
    p["versions"].update({k: v for k, v in peer_versions().items() if v})
    return p


def run_key(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def done_ids(path: Path) -> set[str]:
    from anogen.bench import read_records

    return {r["run_id"] for r in read_records(path) if r.get("status") == "ok"}


def append(path: Path, rec: dict[str, Any]) -> None:
    from anogen.bench import append_record

    append_record(path, rec)


def load(spec: str, seed: int) -> Any:
    from anogen.data.spec import load_spec

    return load_spec(spec, seed=seed)


def preprocess(x: Any, size: int, channels: int) -> torch.Tensor:
    """anogen's preprocessing to (N, channels, size, size) in [0, 1]."""
    from anogen.data.transforms import Preprocess

    return Preprocess(image_size=size, channels=channels, normalize="unit")(x)


class Scorer:
    """``decision_function(raw inputs) -> scores``, the interface ``anogen.metrics.time_scoring`` times."""

    def __init__(self, fn: Callable[[Any], np.ndarray]) -> None:
        self.fn = fn

    def decision_function(self, x: Any) -> np.ndarray:
        return np.asarray(self.fn(x), dtype=np.float64).ravel()


def threshold_from_val(val_scores: np.ndarray, val_y: np.ndarray) -> float:
    return float(np.quantile(np.asarray(val_scores)[np.asarray(val_y) == 0], 1.0 - CONTAMINATION))


def val_auroc(val_y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(val_y, scores))


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak() -> dict[str, float]:
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def evaluate(scorer: Scorer, test: Any, threshold: float) -> tuple[dict[str, Any], np.ndarray]:
    """anogen's metrics on the test set and the scoring time per image (raw inputs, first 256)."""
    from anogen import metrics

    scores = scorer.decision_function(test.x)
    m = metrics.summarize(test.y, scores, threshold=threshold)
    m["score_ms_per_image"] = metrics.time_scoring(scorer, test.subset(np.arange(min(len(test), TIMING_IMAGES))).x)
    return m, scores


def record(*, suite: str, detector: str, peer: str, spec: str, normal: Any, seed: int, variant: str,
           config: dict[str, Any], split: Any, train: Any, val: Any, test: Any, metrics: dict[str, Any],
           scores: np.ndarray, fit_seconds: float, val_auroc_: float | None, best_epoch: int | None,
           history: list[dict[str, Any]], started: str, wall_seconds: float, prov: dict[str, Any],
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One record in ``anogen.bench``'s schema (the keys ``run_suite`` and ``run_one`` write) plus the peer's."""
    from anogen._util import jsonable as _jsonable
    from anogen.bench import MAX_STORED_SCORES, SCHEMA

    rec = {
        "schema": SCHEMA, "run_id": run_key(suite, detector, shown(spec), seed, variant, "cpu", config),
        "suite": suite, "detector": detector, "peer": peer, "peer_version": peer_versions().get(peer),
        "data": shown(spec), "normal": normal, "seed": seed, "variant": variant, "scale": "cpu",
        "overrides": config, "max_train": None, "max_test": None,
        "started": started, **prov,
        "metrics": metrics, "fit_seconds": fit_seconds, "val_auroc": val_auroc_, "best_epoch": best_epoch,
        "history": history, "n_train": len(train), "n_val": len(val), "n_test": len(test), "split": split.name,
        "config": config, "memory": peak(),
        "test_labels": test.y.astype(int).tolist() if len(test) <= MAX_STORED_SCORES else None,
        "test_scores": [float(f"{v:.6g}") for v in scores] if len(test) <= MAX_STORED_SCORES else None,
        "wall_seconds": wall_seconds,
        "device": "cuda" if torch.cuda.is_available() else "cpu", "status": "ok",
        **(extra or {}),
    }
    return _jsonable(rec)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def failed(base: dict[str, Any], e: BaseException) -> dict[str, Any]:
    return {**base, "status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8)}


def seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
