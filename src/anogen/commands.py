"""What each ``anogen`` subcommand does: one thin call into the library per command, and what it prints.

The parser (flags, help, ``main``) is :mod:`anogen.cli`; a command gets the parsed namespace. Every number comes from
:mod:`anogen.metrics`, every figure from :mod:`anogen.plots`, every fitted model from :mod:`anogen.run` /
:func:`anogen.load`: nothing here trains or evaluates on its own.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from anogen._util import UserError
from anogen.flags import fmt_overrides as _fmt_overrides
from anogen.flags import doc_summary, parse_assignments, parse_csv as _csv
from anogen.run import presets as _presets
from anogen.run import train_and_report

DEMO_SPEC = "digits:normal=0"


# ---------------------------------------------------------------------------------------------- output helpers
def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


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
    if record.get("channels"):
        console.print(f"channels: {record['channels']}")
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
        t.add_row(name, cls.input_kind, doc_summary(cls))
    _console().print(t)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from anogen.detectors.algan import PRESETS

    overrides = dict(PRESETS["cpu"], channels=1, seed=args.seed)  # digits are grayscale
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.device is not None:
        overrides["device"] = args.device
    console = _console()
    preset = _fmt_overrides(PRESETS["cpu"])
    console.print(f"[bold]anogen demo[/]: ALGAN (preset cpu: {preset}, channels=1) on one-class digits")
    t0 = time.perf_counter()
    _print_summary(console, train_and_report("algan", overrides, DEMO_SPEC, Path(args.out), seed=args.seed,
                                             console=console))
    console.print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


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
        record = train_and_report(args.model, overrides, args.data, Path(args.out), seed=seed, console=console,
                                  checkpoint_every=args.checkpoint_every, resume=args.resume,
                                  log_dir=args.log_dir, mlflow=args.mlflow)
        if distributed.is_main():  # the other ranks write nothing and print nothing
            _print_summary(console, record)
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


def cmd_bench(args: argparse.Namespace) -> int:
    from anogen import bench

    if args.suite not in bench.SUITES and args.suite != "speed":
        raise UserError(f"unknown suite {args.suite!r}; suites: {', '.join(bench.SUITES)}, speed")
    extra = parse_assignments(args.set)
    if args.device is not None:
        extra["device"] = args.device
    if args.suite == "speed" and args.ray:
        raise UserError("the speed suite measures this machine; run it without --ray")
    if not args.dry_run:
        try:
            bench.require_clean(args.allow_dirty)
        except RuntimeError as e:
            raise UserError(str(e)) from None
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

    page = report.build(args.records, args.out, data_root=args.data_root)
    _console().print(f"report: {page} and {Path(args.out) / 'results.md'}")
    return 0
