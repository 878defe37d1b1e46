"""The HTML report renders in a real headless browser and every picture in it loads."""
import shutil

import pytest

from genlab.apps.bench import BenchEntry, Suite, run_bench

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra: pip install -e .[test]")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


def test_report_html_renders_with_all_images_loaded(tmp_path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    suite = Suite("tiny", [BenchEntry("realnvp", "8gaussians", 6, {"num_layers": 2, "hidden": (16,)}),
                           BenchEntry("vae", "8gaussians", 6)],
                  metrics=["nll", "mmd"], n_samples=200, test_n=200)
    path = run_bench(suite, tmp_path, progress=False, log=lambda m: None)
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.get(path.resolve().as_uri())
        assert "genlab bench" in driver.title.lower() or "genlab bench" in driver.page_source.lower()
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
        # two sample grids and the training curves, each decoded by the browser to a real picture
        assert len(images) >= 3, images
        assert all(done and w > 50 and h > 50 for done, w, h in images), images
        cells = driver.execute_script("return Array.from(document.querySelectorAll('table td')).map(c => c.textContent);")
        assert "realnvp" in cells and "vae" in cells
    finally:
        driver.quit()
