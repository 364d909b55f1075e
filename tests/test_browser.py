"""The dashboard in a real browser: Debian's chromium driven by Playwright against `streamlit run`.

Skipped (with the reason) where chromium or playwright is missing; CI installs chromium
(`apt-get install -y chromium`), so there it runs. Set HRAML_SCREENSHOT=path to also save the
screenshot there (that is how docs/dashboard.png is made).
"""
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from support import free_port, stop_group, wait_for

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("HRAML_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def server(tmp_path):
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert not _healthy(url), f"something already answers on port {port}"
    log = open(tmp_path / "streamlit.log", "w")
    from hraml_core.commands.dashboard import streamlit_command

    # the flags `hraml dashboard` uses (no post-script GC, no file watcher, headless), on loopback
    proc = subprocess.Popen(
        streamlit_command(port, "127.0.0.1"),
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "HRAML_RUNS_DIR": str(tmp_path / "runs")},  # the sessions' runs: not in the checkout
    )
    try:
        deadline = time.time() + 90
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("streamlit did not answer /_stcore/health within 90 s")
            time.sleep(0.25)
        yield url
    finally:
        stop_group(proc)  # streamlit and its UMAP child (same new session)
        log.close()


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _step(page) -> int:
    return int(re.sub(r"[^0-9]", "", _metric(page, "Step")) or 0)


def _wait(cond, timeout: float, what: str):
    if not wait_for(cond, timeout, every=0.25, ignore=(Exception,)):  # an element replaced mid-read
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _download(page, key: str, tmp_path: Path) -> Path:
    """Click the download button with this key; the file. On failure, say what the page and server said."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        with page.expect_download(timeout=30_000) as dl:
            page.click(f".st-key-{key} button")
        return Path(dl.value.path())
    except PlaywrightTimeout:
        shown = page.locator(f'.st-key-{key} [data-testid="stDownloadButtonError"]').all_inner_texts()
        log = (tmp_path / "streamlit.log").read_text()[-3000:]
        raise AssertionError(f"no download from {key}; the button said {shown!r}; streamlit's log ends:\n{log}") from None


ALL_DRAWN = """() => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  const heat = plots.some(p => p.querySelectorAll(".heatmaplayer image, .imagelayer image").length >= 3);
  const scat = plots.filter(p => p.querySelector('.scatterlayer .trace')).length;
  return plots.length === 5 && heat && scat >= 4;
}"""


def test_dashboard_trains_live_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server, timeout=60_000)
            page.wait_for_selector(".st-key-start button", timeout=60_000)
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            assert "digits" in (page.locator(".st-key-dataset input").first.input_value() + page.locator(".st-key-dataset").inner_text())
            assert _step(page) == 0 and _metric(page, "Status") == "idle"

            page.click(".st-key-start button")
            _wait(lambda: _step(page) > 0, 60, "the step counter to move")
            first = _step(page)
            _wait(lambda: _step(page) > first, 30, "the step counter to keep moving")
            _wait(lambda: _metric(page, "Held-out accuracy") not in ("–", ""), 30, "the held-out metric")
            title = page.locator(".js-plotly-plot", has_text="D² vs g").first.inner_text()
            _wait(lambda: page.locator(".js-plotly-plot", has_text="D² vs g").first.inner_text() != title, 30,
                  "the D² vs g chart to change")
            assert _metric(page, "Status") == "running"

            docs_shot = os.environ.get("HRAML_SCREENSHOT")
            if docs_shot:  # a nicer picture: wait for UMAP frames and a bit of training
                _wait(lambda: "UMAP of" in page.locator(".js-plotly-plot", has_text="training embeddings").first.inner_text(),
                      240, "a UMAP frame")
                time.sleep(2)
            page.set_viewport_size({"width": 1500, "height": 1780})  # the whole page, no scrolling
            time.sleep(1.5)
            _wait(lambda: page.evaluate(ALL_DRAWN), 30, "all five charts drawn")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            if docs_shot:
                Path(docs_shot).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(tmp_path / "dashboard.png", docs_shot)
            assert (tmp_path / "dashboard.png").stat().st_size > 50_000

            page.click(".st-key-stop button")
            _wait(lambda: _metric(page, "Status") == "stopped", 30, "the run to stop")

            # a stopped run serves fixed bytes: the same address on every rerun
            page.get_by_text("Download", exact=True).click()
            head = _download(page, "dl_embeddings", tmp_path).read_text().splitlines()
            assert head[0].startswith("row,split,label,z0") and len(head) == 1 + 1797
            assert _download(page, "dl_model", tmp_path).read_bytes()[:2] == b"PK"  # a zip
            assert not errors, errors
        finally:
            browser.close()
