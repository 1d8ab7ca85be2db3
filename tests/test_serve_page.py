"""The web page of ``anogen serve`` (GET /), driven in a real headless Chromium through Playwright: the token prompt,
an upload, the score the page shows against ``decision_function``, the heat map, and the model's settings.

Needs Chromium from the system packages (``apt-get install chromium`` on Debian) and Playwright (the dev extra);
``playwright install`` is not needed. Set ANOGEN_PAGE_SCREENSHOT=path.png to save a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

import anogen  # noqa: E402
from anogen.serve import create_app  # noqa: E402

CHROMIUM = next((p for p in (os.environ.get("ANOGEN_CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), "/usr/bin/chromium") if p and Path(p).exists()), None)
if CHROMIUM is None:
    pytest.skip("no Chromium found (apt-get install chromium, or set ANOGEN_CHROMIUM): the page test needs a real "
                "browser", allow_module_level=True)

TOKEN = "s3cret-token"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-extensions", "--disable-sync", "--no-first-run", "--mute-audio"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_and_images(digits, tmp_path_factory):
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    images, labels = digits
    normal = images[labels == 0]
    det = anogen.create("ae", image_size=16, epochs=60, width=8, latent_dim=16, contamination=0.05, verbose=False,
                        seed=0, device="cpu").fit(normal[:100], val_x=normal[100:140])  # threshold: held-out zeros
    folder = tmp_path_factory.mktemp("page")
    held_out = normal[140:]
    good = held_out[np.argsort(det.decision_function(held_out))[len(held_out) // 2]]  # a typical (median) zero
    bad = good.copy()
    bad[3:5, 3:5] = 255  # a bright blotch in the hole of a normal zero
    paths = []
    for name, img in (("normal-0.png", good), ("blotch-0.png", bad), ("digit-7.png", images[labels == 7][0])):
        p = folder / name
        Image.fromarray(img).resize((128, 128), Image.NEAREST).save(p)
        paths.append(p)
    return det, paths


@pytest.fixture(scope="module")
def server(model_and_images):
    det, _ = model_and_images
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(det, token=TOKEN), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    t0 = time.time()
    while not srv.started:
        if time.time() - t0 > 30:
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_page_scores_uploads_like_decision_function(model_and_images, server):
    det, paths = model_and_images
    expected = dict(zip((p.name for p in paths), det.decision_function([str(p) for p in paths])))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1180, "height": 760})
            page.goto(server + "/")
            page.wait_for_selector("#token-box", state="visible")  # the server has a token: the page asks for it
            page.fill("#token", TOKEN)
            page.click("#token-save")
            page.wait_for_function("document.getElementById('title').textContent.includes('ae')")
            page.set_input_files("#files", [str(p) for p in paths])
            page.wait_for_selector(f"body[data-scored='{len(paths)}']", timeout=30000)
            cards = page.query_selector_all(".card")
            assert len(cards) == len(paths)
            shown = {}
            for card in cards:
                name = card.query_selector(".name").inner_text()
                shown[name] = (float(card.query_selector(".score").get_attribute("data-score")),
                               card.query_selector(".label").inner_text(), card.query_selector(".legend").inner_text())
            for name, (score, label, legend) in shown.items():
                assert score == pytest.approx(expected[name], rel=1e-5, abs=1e-7), name
                assert label == ("anomalous" if expected[name] > det.threshold_ else "normal")
                assert legend.startswith("heat map")  # the AE has anomaly maps, drawn over the image
            assert shown["blotch-0.png"][0] > shown["normal-0.png"][0]
            settings = page.inner_text("#config-table")
            assert "latent_dim" in settings and "16" in settings
            assert f"{det.threshold_:.6g}"[:5] in page.inner_text("#model-table")
            shot = os.environ.get("ANOGEN_PAGE_SCREENSHOT")
            if shot:
                page.screenshot(path=shot, full_page=True)
        finally:
            browser.close()


def test_page_is_served_without_token_and_model_reports_health(model_and_images):
    from fastapi.testclient import TestClient

    det, _ = model_and_images
    with TestClient(create_app(det, token=TOKEN)) as c:
        r = c.get("/")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"] and "/score" in r.text
        assert c.get("/model").status_code == 401
        health = c.get("/model", headers={"Authorization": f"Bearer {TOKEN}"}).json()["health"]
        assert health == det.health_ and health["checked"] is True  # every fit runs the health check
    det.health_ = {"status": "ok", "checked": 3}  # as a model carrying a health check would
    try:
        with TestClient(create_app(det)) as c:
            assert c.get("/model").json()["health"] == {"status": "ok", "checked": 3}
    finally:
        del det.health_

