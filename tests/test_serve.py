"""The HTTP scoring service (anogen.serve): endpoints, input forms, limits and errors (4xx, never 500), bearer token,
grouping of concurrent requests, and the loopback load-test script with tiny counts."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import anogen
from test_contract import _tiny

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from anogen.serve import Limits, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def det(digits):
    images, labels = digits
    return anogen.create("ae", **_tiny("ae", 16, 1)).fit(images[labels == 0][:24])


@pytest.fixture(scope="module")
def imgs(digits):
    return digits[0][300:306]  # (6, 8, 8) uint8


def _client(det, **kw):
    return TestClient(create_app(det, **kw))


def test_health_and_model(det):
    with _client(det) as c:
        h = c.get("/health").json()
        assert h["status"] == "ok" and h["detector"] == "ae"
        m = c.get("/model").json()
    assert m["detector"] == "ae" and m["threshold"] == det.threshold_ and m["anomaly_maps"] is True
    assert m["config"]["image_size"] == 16 and m["preprocess"]["normalize"] == det.normalize
    assert m["version"]["anogen"] == anogen.__version__ and m["limits"]["max_batch"] == 64


def test_score_multipart_one_and_many(det, imgs):
    with _client(det) as c:
        one = c.post("/score", files={"files": ("a.png", _png(imgs[0]), "image/png")})
        assert one.status_code == 200, one.text
        many = c.post("/score", files=[("files", (f"{i}.png", _png(a), "image/png")) for i, a in enumerate(imgs)])
    want = det.decision_function(list(imgs))
    np.testing.assert_allclose(one.json()["scores"], want[:1], rtol=1e-6)
    body = many.json()
    assert body["n"] == 6 and body["threshold"] == det.threshold_
    np.testing.assert_allclose(body["scores"], want, rtol=1e-6)
    assert body["labels"] == [int(s > det.threshold_) for s in body["scores"]]
    assert "anomaly_maps" not in body


def test_score_json_arrays_with_maps(det, imgs):
    with _client(det) as c:
        r = c.post("/score?maps=true", json={"images": imgs[:3].tolist()})
        assert r.status_code == 200, r.text
        floats = c.post("/score", json={"images": (imgs[:2] / 255.0).tolist(), "maps": True}).json()
        mixed = c.post("/score", json={"images": [imgs[0].tolist(), np.zeros((12, 10), int).tolist()]}).json()
    body = r.json()
    np.testing.assert_allclose(body["scores"], det.decision_function(imgs[:3]), rtol=1e-6)
    maps = np.array(body["anomaly_maps"])
    assert maps.shape == (3, 16, 16)
    np.testing.assert_allclose(maps, det.anomaly_maps(imgs[:3]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(floats["scores"], det.decision_function(imgs[:2] / 255.0), rtol=1e-6)
    assert np.array(floats["anomaly_maps"]).shape == (2, 16, 16)
    assert mixed["n"] == 2  # images of different sizes in one request are resized one by one


def test_vectors(digits):
    images, _ = digits
    vec = anogen.create("gmm", **_tiny("gmm", 16, 1)).fit(images[:40].reshape(40, -1) / 16.0)
    with _client(vec) as c:
        r = c.post("/score", json={"vectors": (images[50:53].reshape(3, -1) / 16.0).tolist()})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["scores"], vec.decision_function(images[50:53].reshape(3, -1) / 16.0))
        bad = c.post("/score", json={"vectors": [[0.0] * 5]})
        assert bad.status_code == 400 and "length 64" in bad.json()["detail"]
        assert c.post("/score", json={"images": [[[0]]]}).status_code == 400
        assert c.post("/score?maps=true", json={"vectors": [[0.0] * 64]}).status_code == 400


@pytest.mark.parametrize("files,status,match", [
    ([("files", ("x.png", b"not an image at all", "image/png"))], 400, "not an image"),
    ([("files", ("empty.png", b"", "image/png"))], 400, "empty"),
    ([("files", ("cut.png", None, "image/png"))], 400, "corrupt or truncated"),
])
def test_bad_images_are_400_with_the_input_error(det, imgs, files, status, match):
    if files[0][1][1] is None:  # a truncated PNG
        noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
        data = _png(noise)
        files = [("files", ("cut.png", data[: len(data) // 2], "image/png"))]
    with _client(det) as c:
        r = c.post("/score", files=files)
    assert r.status_code == status and match in r.json()["detail"], r.text


@pytest.mark.parametrize("payload,match", [
    ({"images": [[[1.5, 0.2], [0.1, 0.0]]]}, "[0, 1]"),
    ({"images": [[[300, 2], [1, 0]]]}, "[0, 255]"),
    ({"images": [[[float("nan"), 0.0], [0.0, 0.0]]]}, "NaN"),
    ({"images": [[[1, 2], [3]]]}, "rectangular"),
    ({"images": [[["a", "b"], ["c", "d"]]]}, "numbers"),
    ({"images": []}, "non-empty"),
    ({"pictures": []}, "expected a JSON object"),
    ({"images": [[[[1, 2, 3, 4, 5]]]]}, "C in 1-4"),
])
def test_bad_json_inputs_are_400(det, payload, match):
    with _client(det) as c:
        r = c.post("/score", content=json.dumps(payload), headers={"content-type": "application/json"})
    assert r.status_code == 400 and match in r.json()["detail"], r.text


def test_limits_are_413_and_content_type_415(det, imgs):
    big = np.zeros((60, 60), np.uint8)
    with _client(det, limits=Limits(max_batch=3, max_bytes=20000, max_pixels=50 * 50)) as c:
        r = c.post("/score", files=[("files", (f"{i}.png", _png(a), "image/png")) for i, a in enumerate(imgs[:4])])
        assert r.status_code == 413 and "at most 3" in r.json()["detail"]
        r = c.post("/score", json={"images": imgs[:4].tolist()})
        assert r.status_code == 413 and "--max-batch" in r.json()["detail"]
        r = c.post("/score", files={"files": ("big.png", _png(big), "image/png")})
        assert r.status_code == 413 and "--max-pixels" in r.json()["detail"]
        r = c.post("/score", json={"images": [big.tolist()]})
        assert r.status_code == 413 and "--max-pixels" in r.json()["detail"]
        r = c.post("/score", content=b"x" * 20001, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "--max-bytes" in r.json()["detail"]
        r = c.post("/score", content=b"hello", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert c.post("/score", content=b"{", headers={"content-type": "application/json"}).status_code == 400


def test_bearer_token(det, imgs):
    with _client(det, token="s3cret") as c:
        assert c.get("/health").status_code == 200  # liveness stays open
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = c.post("/score", json={"images": imgs[:1].tolist()}, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert c.get("/model", headers=headers).status_code == 401
        ok = c.post("/score", json={"images": imgs[:1].tolist()}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and c.get("/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_concurrent_requests_are_grouped(det, imgs):
    import httpx

    app = create_app(det, limits=Limits(max_batch=64, batch_wait_ms=100.0))

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            rs = await asyncio.gather(*(client.post("/score", json={"images": [imgs[i % 6].tolist()]})
                                        for i in range(12)))
            return rs, (await client.get("/health")).json()

    rs, health = asyncio.run(go())
    assert all(r.status_code == 200 for r in rs)
    want = det.decision_function(imgs)
    for i, r in enumerate(rs):
        np.testing.assert_allclose(r.json()["scores"], want[i % 6 : i % 6 + 1], rtol=1e-5)
    assert health["requests"] == 12 and health["images"] == 12
    assert health["scoring_calls"] < 12 and health["largest_group"] > 1  # grouped into fewer scoring calls


def test_fast_option_and_model_file(det, imgs, tmp_path):
    path = det.save(tmp_path / "ae.anogen")
    with TestClient(create_app(str(path), fast=True)) as c:
        r = c.post("/score", json={"images": imgs.tolist()})
        assert c.get("/model").json()["fast_inference"] == {"fold_batchnorm": True, "channels_last": True}
    want = det.decision_function(imgs)
    np.testing.assert_allclose(r.json()["scores"], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_load_test_script_tiny(det, tmp_path):
    """benchmarks/load_test.py end to end: `anogen serve` in a subprocess on loopback, a few requests, one record."""
    model = det.save(tmp_path / "ae.anogen")
    out = tmp_path / "load.jsonl"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load_test.py"), "--model", str(model), "--requests", "24",
         "--concurrency", "4", "--max-seconds", "60", "--threads", "1", "--token", "t0k", "--out", str(out)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert rec["status"] == "ok" and rec["completed"] == 24 and rec["failed"] == 0 and rec["suite"] == "load"
    assert rec["latency_ms"]["p50"] > 0 and rec["latency_ms"]["p99"] >= rec["latency_ms"]["p50"]
    assert rec["throughput_rps"] > 0 and rec["server"]["images"] == 24 and rec["detector"] == "ae"
    for key in ("git_commit", "versions", "machine"):
        assert key in rec  # bench.provenance()


def test_a_failing_request_does_not_fail_its_group(det, imgs, monkeypatch):
    """A request whose scores come out non-finite gets a JSON 500; the requests grouped with it are still answered."""
    import httpx
    import torch

    orig = type(det).score_batch

    def score_batch(self, x):
        s = orig(self, x)
        return torch.where(x.flatten(1).amin(1) > 0.99, torch.full_like(s, float("nan")), s)  # all-white -> NaN

    monkeypatch.setattr(type(det), "score_batch", score_batch)
    app = create_app(det, limits=Limits(batch_wait_ms=100.0))
    white = np.full((8, 8), 255, np.uint8)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await asyncio.gather(*(client.post("/score", json={"images": [a.tolist()]})
                                          for a in [imgs[0], white, imgs[1], imgs[2]]))

    rs = asyncio.run(go())
    assert [r.status_code for r in rs] == [200, 500, 200, 200]
    assert "non-finite" in rs[1].json()["detail"]
