"""One run: build a detector from a name + overrides, fit it on a data spec's train split (with its validation split
for model selection or threshold calibration), evaluate it on the test split (image metrics, pixel AUROC where the
test set has masks and the detector has anomaly maps), write the model, ``metrics.json`` and the figures, and return
the record.

``anogen train`` and ``anogen demo`` call :func:`train_and_report`; ``anogen bench`` (:mod:`anogen.bench`) fits each
grid run with :func:`fit_kwargs` and scores it with :func:`evaluate`, so a change to how a run is validated or
evaluated is made here once. Every number comes from :mod:`anogen.metrics`, every figure from :mod:`anogen.plots`.
Nothing here parses arguments (:mod:`anogen.cli`) or loops over a grid (:mod:`anogen.bench`).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from anogen._util import UserError, jsonable

MODEL_FILE = "model.anogen"
CHECKPOINT_FILE = "checkpoint.anogen-ckpt"  # training checkpoint in OUT (--checkpoint-every / --resume)
TIMING_IMAGES = 256  # scoring speed is measured on at most this many test images
HEATMAP_IMAGES = 6  # the heat-map figure shows this many of the most anomalous test images


def presets(cls: type) -> dict[str, dict[str, Any]]:
    """The method file's ``PRESETS`` that fit ``cls`` (a file registering variants may hold presets for one)."""
    found = getattr(sys.modules.get(cls.__module__), "PRESETS", None) or {}
    fields = set(cls.field_names())  # type: ignore[attr-defined]
    return {k: dict(v) for k, v in found.items() if set(v) <= fields}


def fit_kwargs(val: Any) -> dict[str, Any]:
    """The split's validation set as labelled validation (both classes) or as normal calibration data."""
    if val is None or len(val) == 0:
        return {}
    classes = set(np.unique(val.y).tolist())
    if classes == {0, 1}:
        return {"val_x": val.x, "val_y": val.y}
    if classes == {0}:
        return {"val_x": val.x}
    raise UserError(f"the validation set holds only anomalies ({len(val)}); it can neither select nor calibrate")


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(det: Any, test: Any, *, heatmap: Path | None = None, extra: dict[str, Any] | None = None,
             timing_images: int | None = None, timing_context: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Scores (N,) of the fitted ``det`` on the labelled ``test`` set and its metrics.

    The metrics are :func:`anogen.metrics.summarize` at ``det.threshold_``, then ``extra`` (e.g. the fit time), the
    scoring time per image, and ``pixel_auroc`` when ``test`` has masks and ``det`` has anomaly maps; with
    ``heatmap`` (a file) the maps of the most anomalous test images are drawn there too. ``timing_images``: how many
    test images the scoring time is measured on (default ``TIMING_IMAGES``); ``timing_context``: a context manager
    factory the timing runs under (e.g. :func:`anogen.features.cache_paused`, so a backbone is timed too).
    """
    from anogen import metrics

    scores = det.decision_function(test.x)
    m = metrics.summarize(test.y, scores, threshold=det.threshold_)
    m.update(extra or {})
    with (timing_context() if timing_context is not None else contextlib.nullcontext()):
        n_timed = min(len(test), timing_images or TIMING_IMAGES)
        m["score_ms_per_image"] = metrics.time_scoring(det, test.subset(np.arange(n_timed)).x)
    if test.masks is not None and det.has_anomaly_maps():  # per-pixel maps, or patch mode (maps from patch scores)
        m["pixel_auroc"] = pixel_auroc(det, test, scores, heatmap)
    return scores, m


def pixel_auroc(det: Any, test: Any, scores: np.ndarray, heatmap: Path | None = None) -> float:
    """Pixel AUROC over the test set (masks brought to the map size); with ``heatmap``, a heat map of the most
    anomalous images (by ``scores``) is drawn there first."""
    from anogen import metrics, plots

    masks = read_masks(test.masks)
    if heatmap is not None:
        order = np.argsort(-scores)[:HEATMAP_IMAGES]
        sub = test.subset(order)
        plots.anomaly_heatmap(det.preprocess.denormalize(det.preprocess(sub.x)).numpy(), det.anomaly_maps(sub.x),
                              [masks[i] for i in order], heatmap, scores=scores[order].tolist(),
                              title=f"{det.name}: most anomalous test images")
    maps = det.anomaly_maps(test.x)  # (N, S, S) at the model's image size
    return metrics.pixel_auroc(masks_like(masks, maps.shape[1:]), maps)


def read_masks(masks: list[Any]) -> list[np.ndarray | None]:
    """A split's masks (arrays, image files or None for an image without one) as arrays."""
    from anogen.data.io import read_image

    return [None if m is None else (read_image(m) if isinstance(m, (str, Path)) else np.asarray(m)) for m in masks]


def masks_like(masks: list[np.ndarray | None], shape: tuple[int, ...]) -> np.ndarray:
    """Ground-truth masks brought to the map size by the library's transforms (nearest neighbour, no blending)."""
    from anogen.data.transforms import Preprocess

    if shape[0] != shape[1]:
        raise ValueError(f"expected square anomaly maps, got {shape}")
    to_map = Preprocess(image_size=shape[0], channels=1, channel_mode="convert", resize="nearest", normalize="unit")
    items = [np.zeros(shape, np.uint8) if m is None else (np.asarray(m) > 0).astype(np.uint8) * 255 for m in masks]
    return to_map(items)[:, 0].numpy() > 0.5  # (N, S, S) bool


# ---------------------------------------------------------------------------------------------- train and report
def train_and_report(
    name: str, overrides: dict[str, Any], spec: str, out: Path, *, seed: int = 0, console: Any = None,
    checkpoint_every: int = 0, resume: bool = False, log_dir: str | Path | None = None, mlflow: bool = False,
) -> dict[str, Any]:
    """Load ``spec``, fit detector ``name`` on its train split, save it, evaluate on its test split, draw the plots.

    With ``checkpoint_every`` > 0 a training checkpoint ``out/checkpoint.anogen-ckpt`` is written every that many
    epochs; ``resume`` continues from it (see :meth:`anogen.Detector.fit`). ``log_dir``: TensorBoard event files
    (:mod:`anogen.logs`); ``mlflow``: also log to an MLflow run (started here when none is active). ``console`` (rich)
    gets one line on the
    split before training.

    Returns the record also written to ``out/metrics.json`` (when the split has a labelled test set). Under torchrun
    every rank trains and only rank 0 writes files; other ranks return a short record (``rank``, ``fit_seconds``).
    """
    from rich.console import Console
    from rich.markup import escape

    import anogen
    from anogen import distributed, plots
    from anogen.data.spec import load_spec

    console = console or Console(soft_wrap=True, highlight=False)
    out = Path(out)
    split = load_spec(spec, seed=seed)
    det = anogen.create(name, **overrides)
    fit_kw = fit_kwargs(split.val)
    n_val = 0 if split.val is None else len(split.val)
    n_test = 0 if split.test is None else len(split.test)
    how = "labelled validation" if "val_y" in fit_kw else ("normal calibration" if fit_kw else "no validation")
    console.print(f"[bold]{name}[/] on [bold]{escape(split.name or spec)}[/]: {len(split.train)} train, "
                  f"{n_val} validation ({how}), {n_test} test")
    if checkpoint_every or resume:
        fit_kw.update(checkpoint=out / CHECKPOINT_FILE, checkpoint_every=checkpoint_every, resume=resume)
    if log_dir is not None:
        fit_kw["log_dir"] = log_dir
    with _mlflow_run(mlflow, name):
        det.fit(split.train.x, **fit_kw)
    if not distributed.is_main():  # under torchrun every rank trains; rank 0 alone writes model, metrics, plots
        return {"detector": name, "data": spec, "rank": distributed.rank_world()[0], "fit_seconds": det.fit_seconds_}
    files: dict[str, Path] = {"model": det.save(out / MODEL_FILE)}
    record: dict[str, Any] = {
        "detector": name, "data": spec, "split": split.name, "seed": seed,
        "n_train": len(split.train), "n_val": n_val, "n_test": n_test,
        "threshold": det.threshold_, "best_epoch": getattr(det, "best_epoch_", None),
        "val_auroc": getattr(det, "val_auroc_", None), "fit_seconds": det.fit_seconds_,
        "channels": channels_note(det),
        "selection": det.selection_, "synthetic_auroc": getattr(det, "synthetic_auroc_", None), "health": det.health_,
    }
    test = split.test
    if test is not None and len(test) and len(np.unique(test.y)) == 2:
        scores, m = evaluate(det, test, heatmap=out / "heatmap.png", extra={"fit_seconds": det.fit_seconds_})
        if "pixel_auroc" in m:
            files["heatmap"] = out / "heatmap.png"
        record["metrics"] = m
        files["roc"] = out / "roc.png"
        plots.roc_curve(test.y, scores, files["roc"], label=name, title=f"ROC: {name} on {split.name or spec}")
        files["histogram"] = out / "histogram.png"
        plots.score_histogram(test.y, scores, det.threshold_, files["histogram"],
                              title=f"Test anomaly scores: {name} on {split.name or spec}")
    elif test is not None and len(test):
        console.print("[yellow]the test set holds one class only: no AUROC / ROC / histogram[/]")
    if det.history_ and det.history_[0].keys() - {"epoch"}:
        files["validation"] = out / "validation.png"
        plots.validation_curve(det.history_, files["validation"], title=f"Training {name}")
    if callable(getattr(det, "generate", None)) and det.input_kind_ == "image":
        files["samples"] = out / "samples.png"
        plots.sample_grid(det.generate(10, seed=seed), det.generate(10, anomalous=True, seed=seed), files["samples"],
                          title=f"{name}: generated samples")
    record["config"] = jsonable(det.get_params())
    record["anogen_version"] = anogen.__version__
    record["files"] = {k: str(v) for k, v in files.items()}
    if "metrics" in record:
        files["metrics"] = out / "metrics.json"
        record["files"]["metrics"] = str(files["metrics"])
        files["metrics"].write_text(json.dumps(jsonable(record), indent=2) + "\n")
    return record


@contextlib.contextmanager
def _mlflow_run(enabled: bool, name: str) -> Iterator[None]:
    """An MLflow run around the fit when asked (and none is active); a clear error without MLflow."""
    if not enabled:
        yield
        return
    try:
        import mlflow
    except ImportError as e:
        raise UserError("--mlflow needs MLflow: pip install mlflow") from e
    if mlflow.active_run() is not None:
        yield
        return
    with mlflow.start_run(run_name=f"anogen-{name}"):
        yield


def channels_note(det: Any) -> str | None:
    """How many channels the model sees and where that came from (None for vector models)."""
    if getattr(det, "input_kind_", None) != "image" or not hasattr(det, "channels_"):
        return None
    how = "inferred from the training data; --channels overrides" if det.channels == 0 else "set by --channels"
    return f"{det.channels_} ({how})"
