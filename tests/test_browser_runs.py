"""The Runs and Compare pages in a real browser (Debian's chromium through Playwright), served by
``hraml dashboard --runs DIR``: a torchrun job's run watched while it trains, two runs compared side
by side, a figure's PNG from its mode bar, the evolution's HTML export played in the browser, and
the sidebar kept across pages. Skipped where chromium or playwright is missing (see test_browser.py).
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from live_server import CHARTS, LiveServer, address, browser_missing
from live_server import metric as _metric
from run_factory import make_run
from support import count_metric_changes_js, free_port, metric_changes, stop_group, wait_for

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.browser, pytest.mark.slow]
#: The window over which the page's refresh of a live run is counted, and the rate it must reach.
WINDOW_S, MIN_HZ = 10.0, 1.0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The dashboard with its runs folder at ROOT (``hraml dashboard --runs ROOT``, through the
    variable that flag sets), holding two finished runs."""
    why = browser_missing()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("served") / "runs"
    make_run(root / "digits-l1", relation="l1", dataset="digits", snapshots=30, every=10, probe=60, display=300)
    make_run(root / "digits-jaccard", relation="jaccard", dataset="digits", snapshots=20, every=15, probe=60,
             display=300, seed=1)
    # PCA frames: the UMAP process is tested on its own
    srv = LiveServer(env={"HRAML_RUNS_DIR": str(root), "HRAML_DASHBOARD_UMAP": "0"}, log_path=root.parent / "streamlit.log")
    try:
        srv.wait_healthy(90)
    except RuntimeError as exc:
        srv.close()
        pytest.fail(f"the dashboard did not start: {exc}")
    yield srv.url, root, srv.log_path
    srv.close()


def _wait(cond, timeout: float, what: str, log: Path | None = None):
    if not wait_for(cond, timeout, every=0.25, ignore=(Exception,)):
        tail = f"\nstreamlit's log ends:\n{log.read_text()[-2000:]}" if log else ""
        raise AssertionError(f"timed out after {timeout} s waiting for {what}{tail}")


def _select_value(page, key: str) -> str:
    """What a select box shows (its combobox input, or the text beside it)."""
    box = page.locator(f".st-key-{key}")
    return (box.locator("input").first.input_value() or box.inner_text()).strip()


def _charts(page) -> int:
    return page.locator(CHARTS).count()


def test_a_torchrun_job_is_watched_live_while_it_trains(served, browser):
    url, root, log = served
    out = root / "digits-ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "-m", "hraml_core.distributed", "--dataset", "digits", "--epochs", "100000", "--test-size", "0.3",
           "--hidden", "32", "--dim", "8", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                           start_new_session=True)
    try:
        _wait(lambda: (out / "run.json").is_file() and any((out / "snapshots").glob("step-*")) or job.poll() is not None,
              240, "torchrun to record its first snapshot")
        assert job.poll() is None, job.stderr.read()[-2000:]
        page = browser.new_page(viewport={"width": 1500, "height": 1400})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/runs?run=digits-ddp", timeout=60_000)
        _wait(lambda: _metric(page, "Status") == "running", 60, "the run shown as running", log)
        _wait(lambda: _charts(page) == 5, 60, "the five figures", log)
        assert "2 ranks" in page.inner_text("body") and "written by torchrun" in page.inner_text("body")
        # liveness: how often the shown step changes while the job trains, counted in the page
        page.evaluate(count_metric_changes_js("Step"))
        time.sleep(WINDOW_S)
        changes = metric_changes(page)
        rate = changes / WINDOW_S
        print(f"torchrun run watched: {changes} new steps shown in {WINDOW_S:.0f} s = {rate:.2f} Hz")
        assert rate >= MIN_HZ, (f"the page showed {changes} new steps in {WINDOW_S:.0f} s ({rate:.2f} Hz) while torchrun "
                                f"trained; a live run must update at >= {MIN_HZ} Hz")
        assert job.poll() is None, "torchrun ended during the window"
        assert not errors, errors
    finally:
        stop_group(job, 30)


def test_two_runs_side_by_side_with_png_and_html_downloads(served, browser, tmp_path):
    url, root, log = served
    page = browser.new_page(viewport={"width": 1500, "height": 1600}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/compare?runs=digits-l1&runs=digits-jaccard", timeout=60_000)
    _wait(lambda: _charts(page) == 5, 60, "loss, metric, the A matrices and two projections", log)
    loss = page.locator(".js-plotly-plot", has_text="Training loss").first
    assert "digits-l1" in loss.inner_text() and "digits-jaccard" in loss.inner_text()
    matrices = page.locator(".js-plotly-plot", has_text="(jaccard) at").first
    _wait(lambda: matrices.locator(".heatmaplayer image, .imagelayer image").count() >= 2, 30,
          "the two A matrices drawn")
    assert "digits-l1 (l1) at 290" in matrices.inner_text()
    table = page.locator('[data-testid="stDataFrame"]').first
    # the step slider moves both runs: Home jumps to the first snapshot
    thumb = page.get_by_role("slider").first
    thumb.focus()
    page.keyboard.press("Home")
    _wait(lambda: "(l1) at 0" in page.locator(".js-plotly-plot", has_text="(jaccard) at").first.inner_text(), 30,
          "both runs at step 0")
    assert table.is_visible()

    # a figure's PNG: the camera button of its mode bar (plotly's toImage, in the browser)
    chart = page.locator(".js-plotly-plot", has_text="Training loss").first
    chart.hover()
    with page.expect_download(timeout=30_000) as dl:
        chart.locator('.modebar-btn[data-title="Download plot as a PNG"]').click()
    png = Path(dl.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and dl.value.suggested_filename == "compare-loss-step0.png"

    # the evolution of one run as an HTML file, then played in the browser
    page.goto(f"{url}/runs?run=digits-l1", timeout=60_000)
    _wait(lambda: _charts(page) == 5, 60, "the run's five figures", log)
    page.get_by_text("Share, export, duplicate").click()
    with page.expect_download(timeout=60_000) as dl:
        page.click(".st-key-dl_evolution button")
    html_file = tmp_path / "evolution.html"
    Path(dl.value.path()).replace(html_file)
    player = browser.new_page(viewport={"width": 1200, "height": 900})
    player.route("**/*", lambda r: r.abort() if not r.request.url.startswith("file:") else r.continue_())  # offline
    player.goto(html_file.as_uri())
    _wait(lambda: player.evaluate("() => document.getElementById('plot')._transitionData._frames.length") == 30, 30,
          "the exported page to load its 30 frames")
    assert player.locator(".gtitle").first.text_content() == "digits-l1: step 0"
    player.locator(".updatemenu-button", has_text="Play").click()
    _wait(lambda: player.locator(".gtitle").first.text_content() != "digits-l1: step 0", 30, "the animation to play")
    assert not errors, errors


def test_the_sidebar_is_kept_across_pages_and_lives_in_the_link(served, browser):
    url, root, log = served
    page = browser.new_page(viewport={"width": 1500, "height": 1200})
    page.goto(f"{url}/?dataset=iris&relation=jaccard&lr=0.01", timeout=60_000)
    _wait(lambda: page.locator(".st-key-relation").count() == 1, 60, "the Train page", log)
    assert _select_value(page, "relation") == "jaccard" and _select_value(page, "dataset") == "iris"
    assert float(page.locator(".st-key-lr input").input_value()) == 0.01
    page.get_by_role("link", name="Runs").click()
    _wait(lambda: page.locator("h1", has_text="Runs").count() == 1 and page.locator(".st-key-relation").count() == 0,
          30, "the Runs page")
    page.get_by_role("link", name="Train").click()
    _wait(lambda: page.locator(".st-key-relation").count() == 1, 30, "the Train page again")
    try:
        _wait(lambda: "relation=jaccard" in address(page) and "dataset=iris" in address(page), 60,
              "the settings back in the address", log)
    except AssertionError as exc:  # the state a rare failure leaves, for whoever meets it next
        shown = {k: _select_value(page, k) for k in ("dataset", "relation")}
        raise AssertionError(f"{exc}\naddress: {address(page)}\nsidebar shows: {shown}") from None
    assert _select_value(page, "relation") == "jaccard" and _select_value(page, "dataset") == "iris"
