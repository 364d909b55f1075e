"""Helpers the tests share: waiting for a condition, a free loopback port, child processes."""
import os
import signal
import subprocess
import socket
import time
from pathlib import Path


def wait_for(cond, timeout: float = 20.0, every: float = 0.02, ignore: tuple = ()) -> bool:
    """Poll ``cond()`` until it is true (True) or ``timeout`` seconds pass (False); exceptions of the
    types in ``ignore`` count as not yet (a page element replaced while it was read, say)."""
    end = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return True
        except ignore:
            pass
        if time.monotonic() >= end:
            return False
        time.sleep(every)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(marker: str) -> list[int]:
    """Pids of this process's live children whose command line contains ``marker``, read from /proc
    (the dashboard starts plain ``python -c`` children, which multiprocessing does not know)."""
    pids = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
    found = []
    for pid in sorted(pids):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile
            continue
        if marker in cmd and state != "Z":
            found.append(pid)
    return found


def baseline_children() -> list[int]:
    return children("dashboard.baseline_process")


def count_metric_changes_js(label: str) -> str:
    """JavaScript for Playwright's ``page.evaluate``: from now on, count in ``window._changes`` each
    change of the value shown by the Streamlit metric ``label`` (counted in the page itself, so the
    count does not depend on how fast the test can poll)."""
    return """() => { window._changes = 0; window._last = null;
  const read = () => { const m = Array.from(document.querySelectorAll('[data-testid="stMetric"]'))
      .find(e => e.querySelector('[data-testid="stMetricLabel"]')?.textContent.trim() === %s);
    if (!m) return; const v = m.querySelector('[data-testid="stMetricValue"]').textContent;
    if (window._last !== null && v !== window._last) window._changes++; window._last = v; };
  new MutationObserver(read).observe(document.body, {subtree: true, childList: true, characterData: true}); read(); }""" % (
        repr(label).replace("'", '"'))


def metric_changes(page) -> int:
    """How many changes the counter of :func:`count_metric_changes_js` has seen in ``page`` so far."""
    return int(page.evaluate("() => window._changes"))


def stop_group(proc, timeout: float = 15.0) -> None:
    """End ``proc`` and its process group (started with ``start_new_session=True``: a server and its
    children): SIGTERM, then SIGKILL if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


# --------------------------------------------------------------------------------------------------
# reading an AppTest page (the ``app`` fixture is in conftest.py)
# --------------------------------------------------------------------------------------------------
def metrics(at) -> dict:
    """The page's metric boxes, label -> shown value."""
    return {m.label: m.value for m in at.metric}


def step(at) -> int:
    return int(metrics(at)["Step"].replace(",", ""))


def status(at) -> str:
    return metrics(at)["Status"]


def wait_until(at, cond, timeout=30.0):
    """Rerun the page until ``cond()`` holds (True) or ``timeout`` seconds pass (False)."""
    def shows() -> bool:
        at.run()
        assert not at.exception, at.exception
        return cond()

    return wait_for(shows, timeout, every=0.3)


def charts(at) -> list[str]:
    """The page's charts in page order, each as what it draws: a plotly or ECharts spec (JSON), or an
    image's URL (the live heatmaps)."""
    out: list[str] = []

    def walk(node) -> None:
        kind = getattr(node, "type", None)
        if kind in ("plotly_chart", "echarts_chart"):
            out.append(node.proto.spec)
        elif kind == "image":
            out.extend(img.url for img in node.proto.imgs)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    return out


def chart_kinds(at) -> list[str]:
    """The element type of each chart, in page order ("plotly_chart", "echarts_chart", "image")."""
    out: list[str] = []

    def walk(node) -> None:
        kind = getattr(node, "type", None)
        if kind in ("plotly_chart", "echarts_chart", "image"):
            out.append(kind)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    return out
