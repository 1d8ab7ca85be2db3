"""The ``speed`` suite (ALGAN paper Tables 5-6; issues 7, 13): scoring ms / image at batch 1, 32 and 64, achieved
GFLOP/s against the matmul rate of the same dtype (fp32 or bf16, ``--set precision=bf16``) measured in the same run
on the same device, training images / s at batch 32 (the second epoch, after the first one's warm-up) and seconds
per epoch, for 32-256 px.

``anogen bench speed --out F.jsonl [--detectors A,B] [--sizes 32,64]``; records share :mod:`anogen.bench`'s
provenance fields and file handling.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from anogen._util import jsonable as _jsonable
from anogen.bench import SCHEMA, append_record, provenance, read_records


def matmul_gflops(n: int = 2048, repeats: int = 5, *, dtype: str = "fp32", device: str = "cpu") -> float:
    """This machine's measured matmul rate (GFLOP/s) in ``dtype`` (fp32 or bf16) on ``device`` with torch's current
    thread count: the best of ``repeats`` timed (n x n) @ (n x n) products after a warm-up."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _loadavg() -> list[float] | None:
    import os

    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _sync(device: Any) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _flops(det: Any, x: Any) -> float | None:
    """FLOPs of one ``score_batch`` call on the prepared batch ``x`` (torch's flop counter), or None."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as fc, torch.no_grad(), det.amp():
            det.score_batch(x)
        return float(fc.get_total_flops())
    except Exception:
        return None


def speed_one(name: str, size: int, *, overrides: dict[str, Any] | None = None, n_train: int = 64,
              repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Scoring ms / image at batch 1 and 64, images / s, achieved GFLOP/s, and training seconds per epoch of
    ``n_train`` random images, for detector ``name`` at ``size`` px (paper widths unless ``overrides``)."""

    import anogen

    rng = np.random.default_rng(seed)
    from anogen._registry import get

    fields = get(name).field_names()
    ov = {"image_size": size, "epochs": 2, "batch_size": 32, "verbose": False, "seed": seed}
    ov.update({k: 1 for k in ("encoder_epochs",) if k in fields})  # staged methods: a GAN epoch, then the encoder
    ov.update(overrides or {})
    det = anogen.create(name, **ov)
    ch = int(ov.get("channels", det.channels)) or 3  # channels=0 (as the data): colour images
    train = rng.integers(0, 256, size=(n_train, size, size, ch), dtype=np.uint8)
    det.fit(train)
    out: dict[str, Any] = {"train_seconds_per_epoch": det.fit_seconds_ / max(det.epochs, 1), "n_train": n_train,
                           "params": int(sum(p.numel() for p in det.nets_.parameters())),
                           "precision": det.precision, "channels_last": det.channels_last}
    if getattr(det, "epoch_seconds_", None):  # the last epoch: after the first one's warm-up (kernel selection)
        steps = n_train // int(det.batch_size)
        out["train_images_per_second"] = steps * int(det.batch_size) / det.epoch_seconds_[-1]
        out["train_batch_size"] = int(det.batch_size)
    for batch in (1, 32, 64):
        imgs = rng.integers(0, 256, size=(batch, size, size, ch), dtype=np.uint8)
        x = det._prepare(imgs).to(det._device())
        det.nets_.eval()
        flops = _flops(det, x)
        times = _scoring_times(det, x, repeats)  # decision_function's path and Detector.optimize()'s, interleaved
        for key, t in (("", times["default"]), ("_fast", times["fast"])):
            out[f"b{batch}{key}"] = {"ms_per_image": 1000 * t / batch, "images_per_second": batch / t,
                                     "gflop": None if flops is None else flops / 1e9,
                                     "gflops_per_second": None if flops is None else flops / t / 1e9}
        out[f"b{batch}_end_to_end_ms_per_image"] = metrics_time(det, imgs)
    out["config"] = _jsonable({k: getattr(det, k) for k in fields})
    return out


def _scoring_times(det: Any, x: Any, repeats: int) -> dict[str, float]:
    """Median seconds of one ``score_batch`` call on the prepared batch ``x`` as ``decision_function`` runs it
    (``default``: inference mode, spectral norm computed once; :mod:`anogen.inference`) and with the opt-in
    :meth:`Detector.optimize` (``fast``: BatchNorm folded, channels-last), the two timed alternately."""
    import copy

    from anogen import inference

    fast = inference.optimize(copy.copy(det))  # a shallow copy: the same nets, its own fast-path option
    paths = {"default": det, "fast": fast}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(repeats + 1):  # the first round warms up (and builds the frozen views)
        for key, d in paths.items():
            t0 = time.perf_counter()
            view = inference.scoring_view(d)
            with inference.scoring_mode(d), d.amp():
                view.score_batch(d._layout(x))
            _sync(x.device)
            if r:
                times[key].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def metrics_time(det: Any, imgs: Any) -> float:
    from anogen.metrics import time_scoring

    return time_scoring(det, imgs, repeats=3)


SPEED_SIZES = (32, 64, 128, 256)


def run_speed(out: str | Path, *, detectors: list[str] | None = None, sizes: tuple[int, ...] = SPEED_SIZES,
              overrides: dict[str, Any] | None = None, budget_s: float = 120.0) -> dict[str, int]:
    """The ``speed`` suite (ALGAN paper Tables 5-6; issue 7's hardware ratio): one record per detector x size.

    Every record carries this run's measured matmul rate, so achieved GFLOP/s / matmul GFLOP/s is the share of the
    hardware limit. A detector whose measurement at one size takes longer than ``budget_s`` is not measured at the
    larger sizes (recorded as ``status: skipped``). Image detectors only; sizes are image sides in pixels.
    """
    import torch

    from anogen._registry import available, get

    names = detectors or [n for n in available() if get(n).input_kind == "image"]
    prov = provenance()
    dev = "cuda" if torch.cuda.is_available() and (overrides or {}).get("device", "auto") in ("auto", "cuda") else "cpu"
    dtype = "bf16" if (overrides or {}).get("precision") == "bf16" else "fp32"
    peak = matmul_gflops(dtype=dtype, device=dev)
    out = Path(out)
    done = {r["run_id"] for r in read_records(out) if r.get("status") == "ok"}
    counts = {"total": 0, "ok": 0, "failed": 0, "skipped": 0}
    for name in names:
        over_budget = False
        for size in sizes:
            counts["total"] += 1
            key = hashlib.sha1(json.dumps(["speed", name, size, _jsonable(overrides or {}), torch.get_num_threads()],
                                          sort_keys=True).encode()).hexdigest()[:16]
            if key in done:
                counts["skipped"] += 1
                continue
            rec: dict[str, Any] = {"schema": SCHEMA, "run_id": key, "suite": "speed", "detector": name,
                                   "image_size": size, "overrides": overrides or {}, "matmul_gflops": peak,
                                   "matmul_dtype": dtype, "matmul_device": dev,
                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **prov}
            if over_budget:
                rec.update({"status": "skipped", "error": f"a smaller size took over {budget_s:.0f} s"})
                counts["skipped"] += 1
                append_record(out, rec)
                continue
            t0 = time.perf_counter()
            rec["loadavg_before"] = _loadavg()  # timings from a busy machine say so
            try:
                rec.update(speed_one(name, size, overrides=overrides))
                rec["loadavg_after"] = _loadavg()
                rec["status"] = "ok"
                counts["ok"] += 1
                g = rec["b64"]["gflops_per_second"]
                print(f"{name:>14} {size:>4} px: b1 {rec['b1']['ms_per_image']:.2f} ms, b64 "
                      f"{rec['b64']['ms_per_image']:.2f} ms/img"
                      + (f", {g:.1f} GFLOP/s = {100 * g / peak:.0f} % of matmul" if g else "")
                      + f"; optimize(): b1 {rec['b1_fast']['ms_per_image']:.2f}, b64 "
                        f"{rec['b64_fast']['ms_per_image']:.2f} ms/img", flush=True)
            except Exception as e:
                rec.update({"status": "failed", "error": f"{type(e).__name__}: {e}"})
                counts["failed"] += 1
            rec["wall_seconds"] = time.perf_counter() - t0
            over_budget = rec["wall_seconds"] > budget_s
            append_record(out, rec)
    return counts
