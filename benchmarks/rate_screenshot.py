"""Screenshot of the `genlab rate` participant page for docs/rate.md (headless Debian chromium).

    python benchmarks/rate_screenshot.py --out docs/img/rate.png

Builds a small pairwise test from scikit-learn's 8×8 digits (two stand-in "systems": the digits
blurred and the digits with noise), serves it on loopback, consents, and captures the first trial.
"""
import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/img/rate.png")
    ap.add_argument("--width", type=int, default=900)
    ap.add_argument("--height", type=int, default=720)
    args = ap.parse_args()
    from PIL import Image, ImageFilter
    from sklearn.datasets import load_digits
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from genlab.apps.rate import create
    from genlab.apps.rate.testing import free_port, start_server

    tmp = Path(tempfile.mkdtemp(prefix="rate-shot-"))
    digits = load_digits().images[:6] / 16.0
    rng = np.random.default_rng(0)
    for name, f in {"blurred": lambda im: im.filter(ImageFilter.GaussianBlur(6)),
                    "noisy": lambda im: Image.fromarray(np.clip(np.asarray(im, float) + rng.normal(0, 60, (128, 128)),
                                                                0, 255).astype(np.uint8))}.items():
        (tmp / name).mkdir()
        for i, d in enumerate(digits):
            im = Image.fromarray((255 * (1 - d)).astype(np.uint8)).resize((128, 128), Image.NEAREST)
            f(im).save(tmp / name / f"{i}.png")
    design = {"name": "digits-preference", "title": "Which handwritten digit looks better?", "type": "pairwise",
              "systems": [{"name": "blurred", "path": "blurred"}, {"name": "noisy", "path": "noisy"}],
              "min_time_s": 0.5, "attention_checks": 1}
    (tmp / "design.json").write_text(json.dumps(design))
    test = create(tmp / "design.json", tmp / "test")
    port = free_port()
    server = start_server(test, port, fork=True)
    opts = Options()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
              f"--window-size={args.width},{args.height}"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        drv.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(drv, 20)
        wait.until(lambda d: d.find_element(By.ID, "consent").is_displayed())
        drv.find_element(By.ID, "consent-box").click()
        drv.find_element(By.ID, "consent-go").click()
        wait.until(lambda d: d.find_element(By.ID, "start").is_displayed())
        drv.find_element(By.ID, "start").click()
        wait.until(lambda d: d.find_element(By.ID, "trial").is_displayed())
        wait.until(lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                                 for i in d.find_elements(By.CSS_SELECTOR, "#stimuli img")))
        drv.find_element(By.ID, "choose-left").click()
        drv.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        drv.quit()
        server.kill()
        server.wait(10)


if __name__ == "__main__":
    main()
