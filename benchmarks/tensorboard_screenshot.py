"""Screenshot of TensorBoard's own UI (time-series tab) for docs/img/tensorboard.png, in headless Chromium.

    anogen --threads 1 train algan --data digits:normal=8 --preset cpu --channels 1 --val-every 2 \
        --log-dir runs/algan-digits8 --out runs/out --no-verbose
    tensorboard --logdir runs --port 6123 --host 127.0.0.1 &
    python benchmarks/tensorboard_screenshot.py http://127.0.0.1:6123/ docs/img/tensorboard.png

Needs Playwright and a Chromium (``--chromium PATH``, default /usr/bin/chromium). TensorBoard's charts are WebGL:
SwiftShader (software GL) draws them without a GPU.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--filter", default="val_auroc|loss/|images/", help="tag filter (regex)")
    a = ap.parse_args()
    args = ["--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
            "--disable-dev-shm-usage", "--disable-background-networking"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=a.chromium, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(a.url.rstrip("/") + "/#timeseries", wait_until="networkidle", timeout=60000)
        time.sleep(3)
        page.fill("input[placeholder='Filter tags (regex)']", a.filter)
        page.keyboard.press("Escape")
        page.mouse.click(700, 140)
        time.sleep(1)
        if page.is_visible("text=GENERAL"):  # the settings pane: close it
            page.mouse.click(1363, 134)
        time.sleep(5)
        page.screenshot(path=a.out)
        browser.close()


if __name__ == "__main__":
    main()
