"""A dashboard server run as a subprocess, its process tree, and Chromium pages on it.

Shared by the browser tests (tests/test_browser.py) and the benchmarks that drive a real page
(bench/bench_dashboard.py, bench/bench_load.py; they put this folder on sys.path). The server is
started exactly as `hraml dashboard` starts it (the same Streamlit flags), on loopback, in a new
session so that a test can end whatever is left of it.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from hraml_dashboard.run_view import LIVE_IMAGE_ALT
from support import free_port

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("HRAML_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def browser_missing() -> str | None:
    """Why a browser test cannot run here (None when it can)."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (python) is not installed"
    return None


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# processes, from /proc
# --------------------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    f = _stat(pid)
    return f is not None and f[0] != "Z"


def descendants(pid: int) -> list[int]:
    """Live processes below ``pid`` (children, their children, ...)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            for k in kids:
                if k not in out and alive(k):
                    out.append(k)
                    todo.append(k)
    return out


def cpu_seconds(pids) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        f = _stat(pid)
        if f is not None:
            total += (int(f[11]) + int(f[12])) / tick
    return total


def rss_bytes(pids) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


# --------------------------------------------------------------------------------------------------
class LiveServer:
    """``streamlit run`` of the dashboard with `hraml dashboard`'s flags, on a free loopback port.

    ``env`` adds environment variables (e.g. ``HRAML_DASHBOARD_MAX_TRAINING``); the log goes to
    ``log_path`` (else nowhere).
    """

    def __init__(self, env: dict | None = None, log_path: Path | None = None):
        from hraml_core.commands.dashboard import streamlit_command

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if healthy(self.url):
            raise RuntimeError(f"something already answers on port {self.port}")
        self.log_path = log_path
        self._log = open(log_path, "w") if log_path else subprocess.DEVNULL
        self.t0 = time.perf_counter()
        self.wall0 = time.time()  # the same moment on the clock a page's Date.now() reads
        self.proc = subprocess.Popen(
            streamlit_command(self.port, "127.0.0.1"), cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, env=dict(os.environ, **(env or {})),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_text()[-tail:] if self.log_path and self.log_path.exists() else ""

    def wait_healthy(self, timeout: float = 90.0) -> float:
        """Seconds from the start to the first healthy answer; RuntimeError if it never comes."""
        end = time.perf_counter() + timeout
        while not healthy(self.url, 1.0):
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}: {self.log()}")
            if time.perf_counter() > end:
                raise RuntimeError(f"streamlit did not answer /_stcore/health within {timeout} s")
            time.sleep(0.05)
        return time.perf_counter() - self.t0

    def tree(self) -> list[int]:
        """The server and every process below it."""
        return ([self.pid] if alive(self.pid) else []) + descendants(self.pid)

    def terminate(self, timeout: float = 30.0) -> float | None:
        """SIGTERM to the server alone (as a container runtime sends it); seconds until it exited,
        None if it did not within ``timeout`` (it is then killed)."""
        t = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            return time.perf_counter() - t
        except subprocess.TimeoutExpired:
            self.close()
            return None

    def close(self) -> None:
        """End the server's process group (and whatever it left), then close the log."""
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._log is not subprocess.DEVNULL:
            self._log.close()
            self._log = subprocess.DEVNULL


# --------------------------------------------------------------------------------------------------
# reading the page
# --------------------------------------------------------------------------------------------------
def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def first_seen_script(selectors: dict[str, str]) -> str:
    """JavaScript for ``context.add_init_script``: ``window._firstSeen[name]`` becomes the time
    (``Date.now()``, ms since the epoch) at which ``selectors[name]`` first matched in the page, as
    the page's own DOM changes say, whenever the test gets round to looking."""
    import json

    return """window._firstSeen = {};
(() => { const wanted = %s;
  const look = () => { for (const [name, sel] of Object.entries(wanted)) {
    if (!(name in window._firstSeen) && document.querySelector(sel)) window._firstSeen[name] = Date.now(); } };
  new MutationObserver(look).observe(document, {subtree: true, childList: true}); })();""" % json.dumps(selectors)


def step(page) -> int:
    return int(re.sub(r"[^0-9]", "", metric(page, "Step")) or 0)


def address(page) -> str:
    """The page's address as the browser has it now. Not ``page.url``: Playwright's sync API updates
    that from the browser's events, which it reads only during its own calls, so a wait that polls
    ``page.url`` between sleeps can miss a ``history.replaceState`` forever."""
    return page.evaluate("() => location.href")


#: Selectors of the charts, one per way they are drawn: an ECharts chart (a refreshing view) and the
#: live heatmaps image (found by its alt text, declared in run_view).
ECHARTS = '[data-testid="stEChartsChart"]'
LIVE_IMAGE = f'img[alt="{LIVE_IMAGE_ALT}"]'
#: Every chart of a page, whichever way it is drawn: a plotly figure, an ECharts chart, the live
#: heatmaps image.
CHARTS = f".js-plotly-plot, {ECHARTS}, {LIVE_IMAGE}"
#: The heatmaps drawn: plotly's heatmap or image layers, or the live heatmaps image.
HEATMAPS = f".js-plotly-plot .heatmaplayer image, .js-plotly-plot .imagelayer image, {LIVE_IMAGE}"
_CHART_TEXT = """(has) => {
  for (const c of document.querySelectorAll('.js-plotly-plot, %s')) {
    const text = c.classList.contains('js-plotly-plot') ? c.innerText : (c.getAttribute('aria-label') || '');
    if (text.includes(has)) return text; }
  return null; }""" % ECHARTS


def chart_text(page, has: str) -> str | None:
    """The text of the first chart that shows ``has``: a plotly figure's text, or an ECharts chart's
    title (its aria-label: ECharts draws on a canvas); None when no chart shows it."""
    return page.evaluate(_CHART_TEXT, has)


#: Counts page refreshes in the browser: a new heatmap drawn, either a new live heatmaps image (its
#: ``src`` changes, the ``alt`` of run_view.LIVE_IMAGE_ALT) or a plotly heatmap figure mounted (Streamlit
#: remounts a plotly chart whose data changed). Read with ``page.evaluate("() => window._redraws")``.
COUNT_REDRAWS = """() => { window._redraws = 0; window._seen = new WeakSet(); window._srcs = new WeakMap();
  const mark = () => {
    for (const p of document.querySelectorAll('.js-plotly-plot')) {
      if (!window._seen.has(p) && p.querySelector('.main-svg') && p.textContent.includes('A: embedding')) { window._seen.add(p); window._redraws++; } }
    for (const img of document.querySelectorAll('%s')) {
      if (img.src && window._srcs.get(img) !== img.src) { window._srcs.set(img, img.src); window._redraws++; } } };
  new MutationObserver(mark).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']}); mark(); }""" % LIVE_IMAGE
#: Counts every chart built anew (a plotly figure mounted, or an ECharts instance created): ``window._mounts``.
COUNT_MOUNTS = """() => { window._mounts = 0; window._seenAll = new WeakSet();
  const mark = () => { for (const p of document.querySelectorAll('.js-plotly-plot, [_echarts_instance_]')) {
      if (!window._seenAll.has(p) && (p.querySelector('.main-svg') || p.hasAttribute('_echarts_instance_'))) { window._seenAll.add(p); window._mounts++; } } };
  new MutationObserver(mark).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['_echarts_instance_']}); mark(); }"""
