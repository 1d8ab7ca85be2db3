"""``benchmarks/run_gpu.sh --smoke``: the paper-scale GPU script's every step at toy scale on the CPU (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_data import _make_splits_file

ROOT = Path(__file__).resolve().parents[1]


def _textured_mtd(root: Path) -> Path:
    """An MTD-layout tree of 16 x 20 px noise textures; defects carry a bright square."""
    rng = np.random.default_rng(0)
    counts = {"Free": 24, "Blowhole": 6, "Crack": 6}
    for c, n in counts.items():
        for i in range(n):
            img = root / f"MT_{c}" / "Imgs" / f"exp{i % 3}_num_{100 + 7 * i}.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            x = rng.integers(60, 120, size=(16, 20)).astype(np.uint8)
            mask = np.zeros_like(x)
            if c != "Free":
                x[4:9, 5:10], mask[4:9, 5:10] = 250, 255
            Image.fromarray(x).save(img)
            Image.fromarray(mask).save(img.with_suffix(".png"))
    return root


@pytest.mark.slow
def test_run_gpu_smoke(tmp_path):
    data = tmp_path / "data"
    _make_splits_file(_textured_mtd(data / "mtd"), data / "mtd_splits.json", seeds=(0, 1))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_gpu.sh"), "--smoke", "--data-root", str(data),
                          "--out", str(out), "--budget", "400"], env=env, capture_output=True, text=True,
                         timeout=500)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    mtd = [json.loads(line) for line in (out / "gpu-mtd.jsonl").read_text().splitlines()]
    ok = {(r["detector"], r["seed"]) for r in mtd if r["status"] == "ok"}
    assert ok == {(d, s) for d in ("algan", "ganomaly", "skip_ganomaly") for s in (0, 1)}, \
        [r.get("error") for r in mtd]
    algan = [r for r in mtd if r["detector"] == "algan"]
    assert all(r["config"]["precision"] == "bf16" and r["config"]["epochs"] == 2 for r in algan)
    assert all(0.0 <= r["metrics"]["auroc"] <= 1.0 for r in mtd)
    speed = [json.loads(line) for line in (out / "gpu-speed.jsonl").read_text().splitlines()]
    assert {(r["detector"], r["precision"]) for r in speed if r["status"] == "ok"} == \
        {(d, p) for d in ("algan", "ganomaly", "skip_ganomaly") for p in ("bf16", "fp32")}
    assert all(r["matmul_dtype"] == r["precision"] for r in speed)
    assert "probe:" in res.stderr and "epochs per seed" in res.stderr
