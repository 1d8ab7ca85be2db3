"""Load test of `anogen serve` on loopback: throughput and p50 / p99 latency, appended as one JSONL benchmark record.

    python benchmarks/load_test.py --out benchmarks/results/load.jsonl                # ALGAN cpu preset, 500 x 16
    python benchmarks/load_test.py --model model.anogen --requests 500 --concurrency 16 --out load.jsonl

Without --model, a small model is trained first (the detector's PRESETS["cpu"] on one-class scikit-learn digits, a
few epochs; seconds). The server runs as a subprocess (`python -m anogen serve MODEL --host 127.0.0.1 --port P`);
an httpx async client sends --requests POST /score requests, each one PNG image (8 x 8 digit, resized by the model),
keeping --concurrency in flight, and stops issuing after --max-seconds (bounded count and time; loopback only).
The record carries the provenance fields of `anogen.bench.provenance()` (git commit, versions, machine, threads) and
`status: ok` only when no request failed; the script exits 1 otherwise. The timing record is not committed: run this
on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _digits_png(n: int, seed: int) -> list[bytes]:
    """``n`` PNG files of scikit-learn digits (8 x 8 gray), drawn with ``seed``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.round(d.images * 255.0 / 16.0).astype(np.uint8)
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.integers(0, len(imgs), size=n):
        buf = io.BytesIO()
        Image.fromarray(imgs[i]).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _train_small(detector: str, epochs: int | None, folder: Path, seed: int) -> Path:
    import anogen
    from anogen._registry import get
    from anogen.run import presets as _presets
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.round(d.images * 255.0 / 16.0).astype(np.uint8)
    overrides = {**_presets(get(detector)).get("cpu", {}), "channels": 1, "verbose": False, "seed": seed}
    if epochs is not None:
        overrides["epochs"] = epochs
    det = anogen.create(detector, **overrides).fit(imgs[d.target == 0][:120])
    return det.save(folder / f"{detector}.anogen")


def _percentile(ms: list[float], q: float) -> float | None:
    return float(np.percentile(ms, q)) if ms else None


async def _drive(url: str, bodies: list[bytes], requests: int, concurrency: int, max_seconds: float,
                 token: str | None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits, headers=headers) as client:

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                body = bodies[issued % len(bodies)]
                issued += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/score", files={"files": ("digit.png", body, "image/png")})
                    if r.status_code != 200 or len(r.json().get("scores", [])) != 1:
                        errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                        continue
                except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                    errors.append(f"{type(e).__name__}: {e}")
                    continue
                latencies.append((time.perf_counter() - t0) * 1000.0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        health = (await client.get("/health")).json()
    return {"latencies": latencies, "errors": errors, "issued": issued, "wall": wall, "health": health}


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import httpx

    t_end = time.perf_counter() + timeout
    while time.perf_counter() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was healthy")
        try:
            if httpx.get(url + "/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not healthy within {timeout:.0f} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from anogen.bench import SCHEMA, provenance

    tmp = tempfile.TemporaryDirectory(prefix="anogen-load-")
    model = Path(args.model) if args.model else _train_small(args.detector, args.epochs, Path(tmp.name), args.seed)
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "anogen"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    cmd += ["serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--max-batch", str(args.max_batch), "--batch-wait-ms", str(args.batch_wait_ms)]
    if args.fast:
        cmd.append("--fast")
    env = dict(os.environ)
    if args.token:
        env["ANOGEN_TOKEN"] = args.token
    log = open(Path(tmp.name) / "server.log", "w+b")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_healthy(url, proc, args.startup_timeout)
        bodies = _digits_png(min(args.requests, 256), args.seed)
        res = asyncio.run(_drive(url, bodies, args.requests, args.concurrency, args.max_seconds, args.token))
    except BaseException:
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    lat, errs = res["latencies"], res["errors"]
    health = res["health"]
    done = len(lat)
    meta: dict[str, Any] = {}
    try:
        import anogen

        det = anogen.load(model)
        meta = {"detector": det.name, "image_size": det.image_size, "config": det.metadata_["config"]}
    except Exception:  # noqa: BLE001 - a record without the model's config is still a record
        pass
    settings = {"requests": args.requests, "concurrency": args.concurrency, "max_seconds": args.max_seconds,
                "max_batch": args.max_batch, "batch_wait_ms": args.batch_wait_ms, "fast": args.fast,
                "server_threads": args.threads, "images_per_request": 1, "image": "8x8 PNG digit"}
    key = hashlib.sha1(json.dumps(["load", str(model), settings, time.time()], default=str).encode()).hexdigest()[:16]
    calls = health.get("scoring_calls") or 0
    record = {
        "schema": SCHEMA, "run_id": key, "suite": "load", "status": "ok" if not errs and done else "failed",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model_file": str(model) if args.model else None,
        **meta, "settings": settings,
        "issued": res["issued"], "completed": done, "failed": len(errs), "errors": errs[:5],
        "wall_seconds": res["wall"], "throughput_rps": done / res["wall"] if res["wall"] > 0 else None,
        "latency_ms": {"p50": _percentile(lat, 50), "p90": _percentile(lat, 90), "p99": _percentile(lat, 99),
                       "mean": float(np.mean(lat)) if lat else None, "max": float(np.max(lat)) if lat else None},
        "server": {"scoring_calls": calls, "images": health.get("images"),
                   "mean_group": (health.get("images") or 0) / calls if calls else None,
                   "largest_group": health.get("largest_group")},
        **provenance(),
    }
    tmp.cleanup()
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSONL records file (appended to)")
    p.add_argument("--model", help="a saved model (default: train a small one)")
    p.add_argument("--detector", default="algan", help="detector trained when no --model is given (default: algan)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of that small model (default: 3)")
    p.add_argument("--requests", type=int, default=500, help="requests to send (default: 500)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight (default: 16)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop issuing requests after this (default: 120)")
    p.add_argument("--max-batch", type=int, default=64, help="the server's --max-batch (default: 64)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0, help="the server's --batch-wait-ms (default: 2)")
    p.add_argument("--threads", type=int, default=None, help="the server's torch threads (default: torch's choice)")
    p.add_argument("--fast", action="store_true", help="serve with --fast (Detector.optimize())")
    p.add_argument("--token", default=None, help="serve with this bearer token and send it")
    p.add_argument("--port", type=int, default=None, help="loopback port (default: a free one)")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for the server (default 120)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        p.error("--requests and --concurrency must be >= 1")
    rec = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    lat = rec["latency_ms"]
    print(f"load: {rec['completed']}/{rec['issued']} ok, {rec['failed']} failed, "
          f"{rec['throughput_rps'] or 0:.1f} req/s, p50 {lat['p50'] or float('nan'):.1f} ms, "
          f"p99 {lat['p99'] or float('nan'):.1f} ms, mean group {rec['server']['mean_group'] or 0:.1f} -> {out}")
    return 0 if rec["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
