"""genlab rate end to end in a real headless browser (Debian's chromium + chromedriver via Selenium):
a participant completes a test and the stored rows match what was clicked; a keyboard-only
participant on a phone-sized screen completes a MOS test."""
import json
import shutil
import sqlite3
import time

import pytest

from genlab.apps.rate import create
from genlab.apps.rate.server import RateService
from genlab.apps.rate.testing import free_port, start_server, toy_design

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra: pip install -e .[test]")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                       "chromium-driver; .ci/run installs them)")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def make_driver(width=1100, height=900):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--no-first-run", "--disable-extensions", "--mute-audio",
              "--autoplay-policy=no-user-gesture-required", f"--window-size={width},{height}"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    d.set_page_load_timeout(30)
    return d


@pytest.fixture
def served(tmp_path):
    procs, drivers = [], []

    def go(ttype, modality="image", **kw):
        size = kw.pop("_size", (1100, 900))
        d = toy_design(tmp_path / "src", ttype, modality, **kw)
        test = create(d, tmp_path / "test")
        port = free_port()
        procs.append(start_server(test, port, "admin", fork=True))
        drv = make_driver(*size)
        drivers.append(drv)
        return test, port, drv

    yield go
    for d in drivers:
        d.quit()
    for p in procs:
        p.kill()
        p.wait(10)


def rows(test):
    c = sqlite3.connect(test / "responses.sqlite")
    try:
        return c.execute("SELECT participant_id, trial_index, response, positions, stimuli, rt_ms, client "
                         "FROM responses ORDER BY trial_index").fetchall()
    finally:
        c.close()


def wait(drv, cond, timeout=20):
    return WebDriverWait(drv, timeout, poll_frequency=0.05).until(lambda d: cond(d))


def trial_index(drv):
    t = drv.find_element(By.ID, "progress-text").text      # "Trial i of n"
    return int(t.split()[1]) - 1, int(t.split()[3])


def test_participant_clicks_through_a_pairwise_test_and_rows_match(served):
    test, port, drv = served("pairwise", n_systems=3, n_items=2, min_time_s=0.3)   # 6 trials + 2 traps
    drv.get(f"http://127.0.0.1:{port}/")
    wait(drv, lambda d: d.find_element(By.ID, "consent").is_displayed())
    go = drv.find_element(By.ID, "consent-go")
    assert not go.is_enabled()                                      # consent first
    drv.find_element(By.ID, "consent-box").click()
    go.click()
    wait(drv, lambda d: d.find_element(By.ID, "start").is_displayed())
    drv.find_element(By.ID, "start").click()
    clicked, shown = {}, {}
    choices = ["choose-left", "choose-right", "choose-none"]
    for step in range(20):
        wait(drv, lambda d: d.find_element(By.ID, "done").is_displayed() or
             (d.find_element(By.ID, "trial").is_displayed() and trial_index(d)[0] not in clicked))
        if drv.find_element(By.ID, "done").is_displayed():
            break
        idx, n = trial_index(drv)
        imgs = drv.find_elements(By.CSS_SELECTOR, "#stimuli img")
        assert len(imgs) == 2
        wait(drv, lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                                for i in imgs))
        submit = drv.find_element(By.ID, "submit")
        assert not submit.is_enabled()                              # no answer yet
        choice = choices[step % 3]
        drv.find_element(By.ID, choice).click()
        wait(drv, lambda d: submit.is_enabled())                    # after the minimum time
        shown[idx] = [i.get_attribute("src").rsplit("/", 1)[1] for i in imgs]
        submit.click()
        clicked[idx] = choice.split("-")[1]
    code = drv.find_element(By.ID, "code").text
    assert len(clicked) == n == 8
    stored = rows(test)
    assert len(stored) == 8
    pid = stored[0][0]
    assert all(r[0] == pid for r in stored)
    for _, idx, resp, positions, stimuli, rt_ms, client in stored:
        assert json.loads(resp) == {"choice": clicked[idx]}
        assert json.loads(stimuli)[:2] == shown[idx]              # left/right as displayed
        assert rt_ms >= 300
        c = json.loads(client)
        assert c["input"] == "pointer" and "Chrome" in c["user_agent"] and c["viewport_w"] > 0
    svc = RateService(test)
    assert code == svc.completion_code(pid)
    svc.store.close()


def test_keyboard_only_on_a_phone_screen(served):
    test, port, drv = served("mos", n_systems=2, n_items=2, min_time_s=0.0, attention_checks=1,
                             _size=(390, 844))
    drv.get(f"http://127.0.0.1:{port}/")
    wait(drv, lambda d: d.find_element(By.ID, "consent").is_displayed())
    body = drv.switch_to.active_element
    assert body.get_attribute("id") == "consent-box"               # focus starts on the consent box
    body.send_keys(Keys.SPACE)
    body.send_keys(Keys.TAB)
    drv.switch_to.active_element.send_keys(Keys.ENTER)            # Continue
    wait(drv, lambda d: d.find_element(By.ID, "start").is_displayed())
    drv.switch_to.active_element.send_keys(Keys.ENTER)            # Start the test
    typed = {}
    for step in range(10):
        wait(drv, lambda d: d.find_element(By.ID, "done").is_displayed() or
             (d.find_element(By.ID, "trial").is_displayed() and trial_index(d)[0] not in typed))
        if drv.find_element(By.ID, "done").is_displayed():
            break
        idx, n = trial_index(drv)
        # nothing wider than the phone screen
        assert drv.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        key = str(1 + step % 5)
        drv.switch_to.active_element.send_keys(key)
        wait(drv, lambda d: d.find_element(By.ID, "submit").is_enabled())
        drv.switch_to.active_element.send_keys(Keys.ENTER)
        typed[idx] = int(key)
    assert len(typed) == n == 5
    stored = rows(test)
    assert {r[1]: json.loads(r[2])["rating"] for r in stored} == typed
    assert all(json.loads(r[6])["input"] == "keyboard" for r in stored)
    # reloading the page resumes the same participant (token kept in localStorage) at the end
    drv.refresh()
    wait(drv, lambda d: d.find_element(By.ID, "done").is_displayed())
    time.sleep(0.2)
    assert len(rows(test)) == 5


def test_mushra_audio_needs_every_recording_played_and_sliders_by_keyboard(served):
    test, port, drv = served("mushra", modality="audio", n_systems=2, n_items=1, min_time_s=0.0)
    drv.get(f"http://127.0.0.1:{port}/")
    wait(drv, lambda d: d.find_element(By.ID, "consent").is_displayed())
    drv.find_element(By.ID, "consent-box").click()
    drv.find_element(By.ID, "consent-go").click()
    wait(drv, lambda d: d.find_element(By.ID, "start").is_displayed())
    drv.find_element(By.ID, "start").click()
    wait(drv, lambda d: d.find_element(By.ID, "trial").is_displayed())
    sliders = drv.find_elements(By.CSS_SELECTOR, "#stimuli input[type=range]")
    assert len(sliders) == 5                          # 2 systems + hidden reference + 2 anchors
    assert len(drv.find_elements(By.CSS_SELECTOR, "#reference audio")) == 1
    want = []
    for k, s in enumerate(sliders):                   # keyboard: focus a slider, arrow keys move it
        drv.execute_script("arguments[0].focus()", s)
        s.send_keys(*([Keys.ARROW_RIGHT] * (3 + 2 * k)))
        want.append(3 + 2 * k)
    submit = drv.find_element(By.ID, "submit")
    assert not submit.is_enabled() and "Play every recording" in drv.find_element(By.ID, "status").text
    for a in drv.find_elements(By.CSS_SELECTOR, "#stimuli audio"):
        drv.execute_script("arguments[0].play()", a)
    wait(drv, lambda d: submit.is_enabled())          # only after every 'ended' event
    submit.click()
    wait(drv, lambda d: d.find_element(By.ID, "done").is_displayed())
    (_, idx, resp, positions, stimuli, rt_ms, client), = rows(test)
    assert json.loads(resp) == {"scores": want}
    assert len(json.loads(stimuli)) == 6              # 5 slots + the open reference
