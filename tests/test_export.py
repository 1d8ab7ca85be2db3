"""ONNX export (anogen.export): onnxruntime gives decision_function's scores and maps within EXPORT_RTOL for every
exportable registered detector; the others get an error naming why; the graph runs without anogen or torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import anogen
from anogen.data.transforms import Preprocess
from anogen.export import EXPORT_RTOL, ExportError, export_onnx, run_onnx, unsupported
from test_contract import _data, _tiny

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

NAMES = anogen.available()
NOT_EXPORTABLE = {"anogan": "optimisation run at scoring time", "iforest": "loop whose length depends on the input"}


def _unit_inputs(det, raw) -> np.ndarray:
    """What a user feeds the graph: images decoded, channel-mapped and resized as the model's config says, in [0, 1]
    (the graph does the normalisation); vectors as they are."""
    if det.input_kind_ == "vector":
        return np.asarray(raw, np.float32)
    p = det.preprocess
    unit = Preprocess(p.image_size, p.channels, p.channel_mode, p.resize, "unit")
    return unit(raw).numpy()


def _assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(float(np.abs(want).max()), float(want.std()), 1e-12)
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= EXPORT_RTOL * scale, f"{what}: max |onnx - anogen| = {err:.3g} > {EXPORT_RTOL} x {scale:.3g}"


def _check(det, raw, path) -> dict:
    x = _unit_inputs(det, raw)
    out = run_onnx(path, x)
    _assert_close(out["score"], det.decision_function(raw), "score")
    if det.has_anomaly_maps():
        _assert_close(out["anomaly_map"], det.anomaly_maps(raw), "anomaly_map")
    else:
        assert set(out) == {"score"}
    return out


@pytest.mark.parametrize("name", NAMES)
def test_export_matches_decision_function(name, digits, tmp_path):
    kw = _tiny(name, 16, 1)
    det = anogen.create(name, **kw).fit(_data(name, digits, 1, 24))
    raw = _data(name, digits, 1, 7, offset=300)
    path = tmp_path / f"{name}.onnx"
    if name in NOT_EXPORTABLE:
        assert NOT_EXPORTABLE[name] in unsupported(det)
        with pytest.raises(ExportError, match=NOT_EXPORTABLE[name]):
            export_onnx(det, path)
        assert not path.exists()
        return
    export_onnx(det, path, check=False)
    _check(det, raw, path)


@pytest.mark.parametrize("name,extra", [
    ("ganomaly", {"image_size": 32, "channels": 3}),
    ("algan", {"patch_size": 8, "patch_stride": 4}),  # window scores -> image score (max) and maps (mean)
    ("ae", {"patch_size": 8, "patch_stride": 8}),  # per-pixel patch maps
])
def test_export_variants(name, extra, digits, tmp_path):
    ch = extra.get("channels", 1)
    det = anogen.create(name, **{**_tiny(name, extra.get("image_size", 16), ch), **extra})
    det.fit(_data(name, digits, ch, 24))
    path = export_onnx(det, tmp_path / "m.onnx")  # with its own onnxruntime check
    _check(det, _data(name, digits, ch, 5, offset=400), path)


def test_metadata_labels_and_no_anogen_needed(digits, tmp_path):
    """The exported file carries threshold and input contract; onnxruntime alone (anogen and torch unimportable)
    reproduces decision_function and predict."""
    det = anogen.create("algan", **_tiny("algan", 16, 1)).fit(_data("algan", digits, 1, 24))
    raw = _data("algan", digits, 1, 9, offset=500)
    path = export_onnx(det, tmp_path / "algan.onnx")
    x_path = tmp_path / "x.npy"
    np.save(x_path, _unit_inputs(det, raw))
    code = textwrap.dedent(f"""
        import json, sys
        sys.modules["anogen"] = None; sys.modules["torch"] = None  # importing either now fails
        import numpy as np, onnxruntime as ort
        sess = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        (score,) = sess.run(["score"], {{"images": np.load({str(x_path)!r})}})
        t = float(meta["anogen.threshold"])
        print(json.dumps({{"score": score.tolist(), "label": (score > t).astype(int).tolist(), "meta": meta}}))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    _assert_close(np.array(out["score"]), det.decision_function(raw), "score")
    np.testing.assert_array_equal(out["label"], det.predict(raw))
    meta = out["meta"]
    assert meta["anogen.detector"] == "algan" and float(meta["anogen.threshold"]) == det.threshold_
    assert "(N, 1, 16, 16)" in meta["anogen.input"] and json.loads(meta["anogen.preprocess"])["image_size"] == 16


def test_export_errors(digits, tmp_path):
    det = anogen.create("algan", **_tiny("algan", 16, 1))
    with pytest.raises(anogen.NotFittedError):
        export_onnx(det, tmp_path / "a.onnx")
    det.fit(_data("algan", digits, 1, 16))
    with pytest.raises(ExportError, match="no anomaly maps"):
        export_onnx(det, tmp_path / "a.onnx", maps=True)


def test_cli_export(digits, tmp_path, capsys):
    from anogen.cli import main

    det = anogen.create("ae", **_tiny("ae", 16, 1)).fit(_data("ae", digits, 1, 16))
    model = det.save(tmp_path / "ae.anogen")
    out = tmp_path / "ae.onnx"
    assert main(["export", str(model), "--format", "onnx", "--out", str(out), "--no-maps"]) == 0
    assert out.is_file() and "ae.onnx" in capsys.readouterr().err
    x = np.random.default_rng(0).random((3, 1, 16, 16), dtype=np.float32)
    got = run_onnx(out, x)
    assert set(got) == {"score"}  # --no-maps (the maps output is checked for every detector above)
    _assert_close(got["score"], det.decision_function(torch.from_numpy(x)), "score")  # (N, C, H, W) as a tensor

    bad = anogen.create("anogan", **_tiny("anogan", 16, 1)).fit(_data("anogan", digits, 1, 16))
    bad_model = bad.save(tmp_path / "anogan.anogen")
    assert main(["export", str(bad_model), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "latent code" in capsys.readouterr().err
