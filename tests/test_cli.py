"""Smoke tests of the ``anogen`` command line, run as ``python -m anogen.cli`` in subprocesses (about 30 s)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anogen import cli, flags

TINY_AE = ["--epochs", "1", "--image-size", "16", "--width", "8", "--latent-dim", "16", "--channels", "1"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # one thread: the tiny models here are fastest single-threaded, and parallel test runs do not oversubscribe
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="120")
    env.pop("ANOGEN_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "anogen.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train")
    r = run("train", "ae", "--data", "digits:normal=0", "--out", str(out), "--no-verbose", *TINY_AE)
    assert r.returncode == 0, r.stderr
    assert "AUROC" in r.stdout
    return out


def test_list():
    r = run("list")
    assert r.returncode == 0, r.stderr
    assert "ae" in r.stdout and "algan" in r.stdout
    assert "autoencoder" in r.stdout.lower()


def test_python_dash_m_anogen():
    r = subprocess.run([sys.executable, "-m", "anogen", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("anogen ")


def test_train_writes_model_metrics_and_plots(trained):
    for name in ("model.anogen", "metrics.json", "roc.png", "histogram.png", "validation.png"):
        assert (trained / name).is_file(), name
    rec = json.loads((trained / "metrics.json").read_text())
    m = rec["metrics"]
    assert 0.0 <= m["auroc"] <= 1.0 and 0.0 <= m["aupr"] <= 1.0
    assert m["score_ms_per_image"] > 0 and rec["fit_seconds"] > 0
    assert rec["config"]["image_size"] == 16 and rec["config"]["width"] == 8 and rec["config"]["verbose"] is False


def test_score_csv(trained, tmp_path):
    from PIL import Image

    imgs = tmp_path / "imgs"
    (imgs / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(imgs / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(imgs / "sub" / "larger.png")  # resized
    (imgs / "notes.txt").write_text("not an image, skipped in folders")
    out = tmp_path / "scores.csv"
    r = run("score", str(trained / "model.anogen"), str(imgs), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert [list(row) for row in rows][0] == ["path", "score", "label"]
    assert len(rows) == 4
    assert all(np.isfinite(float(row["score"])) and row["label"] in ("0", "1") for row in rows)
    # to stdout, for single files
    r = run("score", str(trained / "model.anogen"), str(imgs / "0.png"), str(imgs / "1.png"))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 2 and rows[0]["path"].endswith("0.png")


def test_score_errors_are_one_line_exit_2(trained, tmp_path):
    r = run("score", str(tmp_path / "missing.anogen"), str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "missing.anogen" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    r = run("score", str(trained / "model.anogen"), str(bad))
    assert r.returncode == 2 and "bad.png" in r.stderr and "Traceback" not in r.stderr
    r = run("score", str(trained / "model.anogen"), str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "nowhere" in r.stderr
    r = run("info", str(bad))
    assert r.returncode == 2 and "not an anogen model" in r.stderr and r.stderr.strip().count("\n") == 0


def test_info(trained):
    r = run("info", str(trained / "model.anogen"))
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    assert meta["detector"] == "ae" and meta["config"]["image_size"] == 16
    assert isinstance(meta["threshold"], float) and meta["train_stats"]["n"] > 0 and meta["anogen_version"]


def test_demo_writes_all_files(tmp_path):
    out = tmp_path / "demo"
    r = run("demo", "--epochs", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    for name in ("model.anogen", "metrics.json", "roc.png", "histogram.png", "samples.png", "validation.png"):
        assert (out / name).is_file(), name
    assert "AUROC" in r.stdout and "model.anogen" in r.stdout
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["detector"] == "algan" and rec["config"]["epochs"] == 1 and rec["val_auroc"] is not None


def test_train_help_lists_generated_flags():
    r = run("train", "ae", "--help")
    assert r.returncode == 0, r.stderr
    for flag in ("--image-size", "--latent-dim", "--max-width", "--augment", "--verbose", "--no-verbose", "--data"):
        assert flag in r.stdout, flag
    assert "size of the bottleneck" in r.stdout  # the field's docstring is the help text
    r = run("train", "algan", "--help")
    assert "--sigma" in r.stdout and "--preset" in r.stdout


def test_train_unknown_model_and_bad_value():
    r = run("train", "nope", "--data", "digits:normal=0", "--out", "x")
    assert r.returncode == 2 and "nope" in r.stderr
    r = run("train", "ae", "--data", "digits:normal=0", "--out", "x", "--epochs", "many")
    assert r.returncode == 2 and "--epochs" in r.stderr


# ---------------------------------------------------------------------------------------------- in-process
def _parser_for(cls: type) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    flags.add_field_flags(p, cls)
    return p


def test_field_flags_parse_bools_tuples_and_keep_defaults_out():
    from anogen._registry import get

    p = _parser_for(get("algan"))
    ns = vars(p.parse_args(["--verbose", "false", "--augment", "hflip,vflip", "--betas", "0.5,0.99",
                            "--image-size", "32", "--sigma", "2.5", "--no-use-buffer"]))
    assert ns == {"verbose": False, "augment": ("hflip", "vflip"), "betas": (0.5, 0.99), "image_size": 32,
                  "sigma": 2.5, "use_buffer": False}
    assert vars(p.parse_args([])) == {}  # untouched fields stay the detector's defaults
    assert vars(p.parse_args(["--verbose"])) == {"verbose": True}
    assert vars(p.parse_args(["--augment", ""])) == {"augment": ()}
    with pytest.raises(SystemExit):
        p.parse_args(["--betas", "0.5"])  # a pair needs two values
    with pytest.raises(SystemExit):
        p.parse_args(["--verbose", "maybe"])


def test_field_docs_from_source():
    from anogen._registry import get

    docs = flags.field_docs(get("ae"))
    assert docs["latent_dim"] == "size of the bottleneck"
    assert docs["epochs"] == "training epochs"  # inherited from Detector


@pytest.mark.parametrize("argv", [
    ["demo"], ["train", "ae", "--data", "digits:normal=0"], ["score", "m.anogen", "a.png"], ["bench", "digits"],
    ["report", "r.jsonl"], ["export", "m.anogen"],
])
def test_every_output_path_is_dash_o_or_out(argv):
    parser = cli.build_parser()
    assert parser.parse_args([*argv, "-o", "X"]).out == "X"
    assert parser.parse_args([*argv, "--out", "Y"]).out == "Y"


@pytest.mark.parametrize("argv", [
    ["demo"], ["train", "ae", "--data", "digits:normal=0", "-o", "d"], ["score", "m.anogen", "a.png"],
    ["bench", "digits", "-o", "r.jsonl"], ["serve", "m.anogen"],
])
def test_device_and_seed_flags_have_one_name(argv):
    parser = cli.build_parser()
    assert parser.parse_args([*argv, "--device", "cpu"]).device == "cpu"
    seed_flag = "--seeds" if argv[0] == "bench" else "--seed"
    if argv[0] in ("demo", "train", "bench"):
        assert getattr(parser.parse_args([*argv, seed_flag, "3"]), seed_flag[2:]) in (3, "3")


def test_bench_device_is_the_set_override(capsys):
    def keys(*extra: str) -> list[str]:
        assert cli.main(["bench", "digits", "--detectors", "ae", "--classes", "0", "--seeds", "0", "-o", "r.jsonl",
                         "--dry-run", *extra]) == 0
        return [line.split()[0] for line in capsys.readouterr().out.splitlines()]

    assert keys("--device", "cpu") == keys("--set", "device=cpu") != keys()


def test_train_with_masks_writes_heatmap_and_pixel_auroc(tmp_path):
    """A tiny MVTec-layout category (bright squares as defects, masks at a different size than the model's)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "cat"
    for d in ("train/good", "test/good", "test/spot", "ground_truth/spot"):
        (root / d).mkdir(parents=True)

    def image(defect: bool) -> tuple[np.ndarray, np.ndarray]:
        a = (120 + rng.integers(0, 20, (32, 32, 3))).astype(np.uint8)
        m = np.zeros((32, 32), np.uint8)
        if defect:
            y, x = rng.integers(4, 20, 2)
            a[y : y + 8, x : x + 8], m[y : y + 8, x : x + 8] = 250, 255
        return a, m

    for i in range(24):
        Image.fromarray(image(False)[0]).save(root / f"train/good/{i:03d}.png")
    for i in range(8):
        Image.fromarray(image(False)[0]).save(root / f"test/good/{i:03d}.png")
        a, m = image(True)
        Image.fromarray(a).save(root / f"test/spot/{i:03d}.png")
        Image.fromarray(m).save(root / f"ground_truth/spot/{i:03d}_mask.png")
    out = tmp_path / "run"
    r = run("train", "ae", "--data", f"mvtec:{root}", "--out", str(out), "--no-verbose", "--epochs", "3",
            "--image-size", "16", "--width", "8", "--latent-dim", "16")
    assert r.returncode == 0, r.stderr
    assert (out / "heatmap.png").is_file()
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert 0.0 <= m["pixel_auroc"] <= 1.0
