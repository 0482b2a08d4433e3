"""The page in a real headless browser (Debian's chromium + chromedriver, driven by selenium):
upload a sample, continue it, and check that audio elements with playable wavs come back.

Skips with its reason when chromium, its driver, selenium or the serve extra is missing; nothing
is downloaded. ``SPEECHLM_SERVE_SCREENSHOT=docs/figures/serve.png`` also saves the README's
screenshot (with the judges on, where the eval extra is installed).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                "(pip install -e '.[dev]')")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from speechlm.serve.app import ServeConfig, build_engine, create_app, serve_in_thread  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "flite_slt_arctic_a0004.wav"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SCREENSHOT = os.environ.get("SPEECHLM_SERVE_SCREENSHOT")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; scripts/setup.sh installs them when it can)")


@pytest.fixture(scope="module")
def base_url():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = ServeConfig()
    app = create_app(build_engine("default", judges=bool(SCREENSHOT), config=cfg), cfg)
    with serve_in_thread(app) as url:
        yield url
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--mute-audio", "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--window-size=1200,900", "--hide-scrollbars", "--force-device-scale-factor=1",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


PLAYABLE = """
const [audio, done] = arguments;
const check = async () => {
  const res = await fetch(audio.src);
  const buf = new Uint8Array(await res.arrayBuffer());
  const head = String.fromCharCode(...buf.slice(0, 4)) + String.fromCharCode(...buf.slice(8, 12));
  if (audio.readyState < 1) {
    await new Promise((ok, fail) => {
      audio.addEventListener('loadedmetadata', ok, {once: true});
      audio.addEventListener('error', () => fail(new Error('media error')), {once: true});
      audio.load();
    });
  }
  return {type: res.headers.get('content-type'), head, bytes: buf.length,
          duration: audio.duration, error: audio.error && audio.error.code,
          canPlay: audio.canPlayType('audio/wav')};
};
check().then(done, (e) => done({error: String(e)}));
"""


def test_upload_continue_and_play_in_a_real_browser(browser, base_url):
    t0 = time.monotonic()
    wait = WebDriverWait(browser, 45)
    browser.get(base_url + "/")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model .chip"))
    assert "wphone-" in browser.find_element(By.ID, "model").text
    assert browser.find_element(By.ID, "continue").get_attribute("disabled")

    file_input = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].hidden = false;", file_input)
    file_input.send_keys(str(SAMPLE))
    browser.execute_script("arguments[0].hidden = true;", file_input)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt-clip canvas"))
    meta = browser.find_element(By.CSS_SELECTOR, "#prompt-clip .clip-meta").text
    assert "3.35 s" in meta and "units" in meta

    for name, value in (("seconds", "3"), ("num_samples", "2"), ("seed", "1")):
        box = browser.find_element(By.CSS_SELECTOR, f"#controls [name={name}]")
        box.clear()
        box.send_keys(value)
    wait.until(lambda d: d.find_element(By.ID, "continue").is_enabled())
    browser.find_element(By.ID, "continue").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result audio")) == 2)
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None

    audios = browser.find_elements(By.CSS_SELECTOR, "#results .result audio")
    for audio in audios:
        info = browser.execute_async_script(PLAYABLE, audio)
        assert info.get("error") is None, info
        assert info["type"] == "audio/wav" and info["head"] == "RIFFWAVE", info
        assert info["canPlay"] in ("maybe", "probably")
        assert 4.0 < info["duration"] < 10.0, info  # 3.35 s prompt + about 3 s continuation
    titles = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .clip-title")]
    assert titles == ["flite_slt_arctic_a0004 · continuation 1",
                      "flite_slt_arctic_a0004 · continuation 2"]
    links = browser.find_elements(By.CSS_SELECTOR, "#results .result a[download]")
    assert {a.get_attribute("download").rsplit(".", 1)[-1] for a in links} == {"wav", "jsonl"}

    if SCREENSHOT:
        _screenshot(browser, Path(SCREENSHOT))
    assert time.monotonic() - t0 < 60


def test_record_from_the_microphone(browser, base_url):
    """Chromium's fake microphone (a beeping tone): record, stop, and the page sends it as a
    wav that the server analyses."""
    wait = WebDriverWait(browser, 30)
    browser.get(base_url + "/")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model .chip"))
    button = browser.find_element(By.ID, "record")
    button.click()
    wait.until(lambda d: "Stop" in d.find_element(By.ID, "record").text)
    time.sleep(1.5)
    button.click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prompt-clip .clip-title"))
    assert browser.find_element(By.CSS_SELECTOR, "#prompt-clip .clip-title").text == \
        "recording.wav"
    meta = browser.find_element(By.CSS_SELECTOR, "#prompt-clip .clip-meta").text
    seconds = float(meta.split(" s ")[0])
    assert 1.0 < seconds < 3.0, meta
    assert browser.find_element(By.ID, "continue").is_enabled()


def _screenshot(browser, path: Path) -> None:
    """The whole page at 1200 px wide (the viewport stretched to the page's height)."""
    import base64

    width = 1200
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    time.sleep(0.3)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    time.sleep(0.5)
    png = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(png))
