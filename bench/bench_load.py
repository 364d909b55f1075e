"""The dashboard server under a class's load (issue 11): numbers for docs/BENCHMARKS.md.

    python bench/bench_load.py [--parts share,first,load,remote] [--trainers 6] [--watchers 30]
                               [--seconds 20] [--first-starts 3] [--write]

Four parts, each a section of docs/BENCHMARKS.md with --write:

``share``   real Trainers in one process (no server, no browser): one alone, then N at once without
            a CPU share, with CpuShare(slots=1) and with slots=2; steps per trainer over a window,
            slowest / fastest, and all together against the one alone.
``first``   a fresh server's first minute: the Trainer's headless rate in this process, then a new
            `hraml dashboard` server and one Chromium page that presses Start as soon as it can;
            the page's step counter between 20 and 40 s after Start against that headless rate;
            when the Start button and the first chart (the heatmaps) were drawn after the server
            started, by the page's own clock; when the UMAP process was warm. Done
            for ``--first-starts`` fresh servers one after the other (the median and each start are
            written): on a shared 2-vCPU machine one start's numbers move by more than the margins.
``load``    one server, real Chromium pages on the same machine: one trainer alone (its page's
            step rate), then N trainers at once (each page's step rate and refresh rate, the
            slowest against the fastest, all together against the one alone), then the class's
            case: the other sessions closed, the first one's run watched live by up to M tabs
            (``?watch=<run>``, opened one at a time until one does not draw within a minute: how
            many drew, their refresh rates, what each adds to the server's memory), then every tab
            closed (seconds until the server's process tree uses < 5% of a core), then SIGTERM
            (seconds to exit, processes left behind).
``remote``  a class whose browsers are elsewhere: ``--trainers`` Train-page sessions as clients of
            Streamlit's websocket protocol press Start (one alone, then all: as in ``load``, with
            no renderer on this machine); then one Chromium page trains (the teacher's), and
            ``--watchers`` protocol clients (:mod:`stream_watchers`: what
            the server sees of a browser, drawing nothing) follow its run through a watch link,
            added in two steps (a third, then all): each watcher's rate of new steps shown, the
            teacher's page (steps/s, refreshes/s) against itself without watchers, the server's
            CPU, memory and bytes sent per watcher. Thirty local Chromium tabs measure the two
            vCPUs' renderers instead (part ``load``).

Every rate is read off the page (its step counter) or counted in the browser (refreshes that showed a new step);
every ratio compares numbers of the same run. Run it on a quiet machine: other jobs on the same
cores change every number (the load average at the start is printed with the results).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the app does, before numpy loads OpenBLAS
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import machine, write_section  # noqa: E402
from live_server import (  # noqa: E402
    CHARTS, CHROMIUM, CHROMIUM_ARGS, HEATMAPS, LiveServer, alive, browser_missing, cpu_seconds,
    first_seen_script, rss_bytes, step,
)
from stream_watchers import WatcherPool  # noqa: E402
from support import count_metric_changes_js  # noqa: E402

WATCH_TITLE = "watching a run"  # the title of a watch page (?watch=<run name>)
#: A page's refreshes, counted in the page: each change of the step it shows (train and watch pages
#: alike; a page can redraw without new data, and a trainer short of CPU keeps its heatmaps longer).
REFRESHES = count_metric_changes_js("Step")
#: Seconds a watch tab may take to draw before the bench stops opening more.
WATCH_OPEN_S = 60
START = ".st-key-start button"


def _load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def _digits():
    from hraml_core.data import load_dataset
    from hraml_dashboard.prepare import prepare_dataset

    return prepare_dataset(load_dataset("digits"))


def _trainer(p, scheduler=None):
    from hraml_core.trainer import Trainer

    # the app's defaults: TrainConfig(), 300 heatmap points, 2000 projection points
    return Trainer(np.array(p.X_train), np.array(p.Y_train), X_val=np.array(p.X_val), Y_val=np.array(p.Y_val),
                   probe_size=300, display_size=2000, scheduler=scheduler)


def _rates(trainers, seconds: float, warm: float = 3.0, cpu: list | None = None) -> list[float]:
    """Steps/s of each trainer over a window; with ``cpu``, appends the steps made per CPU-second
    of this process (all threads) in it: a measure of overhead that other jobs on the machine
    disturb less than a wall-clock rate."""
    for t in trainers:
        t.start()
    time.sleep(warm)
    s0, t0, c0 = [t.snapshot().step for t in trainers], time.perf_counter(), time.process_time()
    time.sleep(seconds)
    s1, t1, c1 = [t.snapshot().step for t in trainers], time.perf_counter(), time.process_time()
    for t in trainers:
        t.stop()
    if cpu is not None:
        cpu.append((sum(s1) - sum(s0)) / max(c1 - c0, 1e-9))
    return [(b - a) / (t1 - t0) for a, b in zip(s0, s1)]


# --------------------------------------------------------------------------------------------------
# share: trainers in one process
# --------------------------------------------------------------------------------------------------
def bench_share(p, n: int, seconds: float) -> dict:
    from hraml_core.scheduler import CpuShare

    _rates([_trainer(p)], 1.0, warm=0.5)  # the first optimiser's one-off imports, out of the way
    per_cpu = []
    alone = _rates([_trainer(p)], seconds, cpu=per_cpu)[0]
    out = {"alone": alone, "n": n, "modes": {}, "per_cpu": {}, "alone_per_cpu": per_cpu[0]}
    for label, make in (("no share", lambda: None), ("CpuShare(slots=1)", lambda: CpuShare(1, 0.05)),
                        ("CpuShare(slots=2)", lambda: CpuShare(2, 0.05))):
        share = make()
        per_cpu = []
        rates = _rates([_trainer(p, share) for _ in range(n)], seconds, cpu=per_cpu)
        out["modes"][label] = rates
        out["per_cpu"][label] = per_cpu[0]
        print(f"  {label}: {[round(r) for r in rates]} (alone {alone:.0f})", flush=True)
    out["alone_after"] = _rates([_trainer(p)], seconds)[0]
    return out


def share_markdown(r: dict, argv: str, load: str) -> str:
    base = (r["alone"] + r["alone_after"]) / 2
    lines = [
        f"`python bench/bench_load.py {argv}`; {machine()}; load average at start {load}.",
        f"{r['n']} Trainers on digits (the app's defaults) in one process, no server and no browser; one trainer",
        f"alone before and after: {r['alone']:.0f} and {r['alone_after']:.0f} steps/s, "
        f"{r['alone_per_cpu']:.0f} steps per CPU-second of the process.",
        "",
        "| trainers | steps/s each | slowest / fastest | all together / one alone | steps per CPU-second |",
        "|---|---|---|---|---|",
    ]
    for label, rates in r["modes"].items():
        lines.append(f"| {r['n']}, {label} | {', '.join(f'{x:.0f}' for x in rates)} | "
                     f"{min(rates) / max(rates):.2f} | {sum(rates) / base:.2f} | {r['per_cpu'][label]:.0f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# first: a fresh server's first minute
# --------------------------------------------------------------------------------------------------
def _umap_ready(page) -> bool:
    return any("UMAP process: ready" in c for c in page.locator('[data-testid="stCaptionContainer"]').all_inner_texts())


def bench_first(p, browser) -> dict:
    _rates([_trainer(p)], 1.0, warm=0.5)
    headless = _rates([_trainer(p)], 10.0)[0]
    srv = LiveServer()
    try:
        health = srv.wait_healthy()
        ctx = browser.new_context(viewport={"width": 1600, "height": 1400})
        # when the page drew them, by the page's clock (not when this loop looked)
        ctx.add_init_script(first_seen_script({"chart": HEATMAPS, "start": START}))
        page = ctx.new_page()
        page.goto(srv.url, timeout=90_000)
        page.wait_for_selector(START, timeout=90_000)
        page.click(START)
        started = time.perf_counter()
        samples, ready_at = [], None
        while time.perf_counter() - started < 45:
            try:
                samples.append((time.perf_counter() - started, step(page)))
                if ready_at is None and _umap_ready(page):
                    ready_at = time.perf_counter() - srv.t0
            except Exception:  # an element replaced while read
                pass
            time.sleep(0.5)
        window = [(t, s) for t, s in samples if 20 <= t <= 40]
        rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) if len(window) > 1 else float("nan")
        early = [(t, s) for t, s in samples if t <= 20]
        rate_0_20 = (early[-1][1] - early[0][1]) / (early[-1][0] - early[0][0]) if len(early) > 1 else float("nan")
        seen = page.evaluate("() => window._firstSeen")
        chart = seen["chart"] / 1000 - srv.wall0 if "chart" in seen else None
        drawn = seen["start"] / 1000 - srv.wall0 if "start" in seen else None
        ctx.close()
    finally:
        srv.close()
    return {"headless": headless, "page_20_40": rate, "page_0_20": rate_0_20, "health_s": health, "chart_s": chart,
            "umap_ready_s": ready_at, "start_drawn_s": drawn, "start_s": started - srv.t0}


def fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def first_markdown(starts: list[dict], argv: str, load: str) -> str:
    """The median over fresh servers (``starts``, one dict of :func:`bench_first` each), then each."""
    def share(r, key):
        return r[key] / r["headless"]

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    late, early = med([share(r, "page_20_40") for r in starts]), med([share(r, "page_0_20") for r in starts])
    chart, ready = med([r["chart_s"] for r in starts]), med([r["umap_ready_s"] for r in starts])
    n = len(starts)
    rows = [
        f"`python bench/bench_load.py {argv}`; {machine()}; load average at start {load}.",
        f"{n} new `hraml dashboard` server(s), one after the other, each with one Chromium page on the same machine "
        "pressing Start as soon as it is drawn; headless = the same Trainer alone in the benchmark's process, "
        "measured just before each server started. Medians over the starts, then each start.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| page steps/s 20-40 s after Start / headless steps/s, median of {n} | **{100 * late:.0f}%** | >= 50% |",
        f"| the same, 0-20 s after Start | {100 * early:.0f}% | |",
        f"| first chart (the heatmaps drawn, by the page's clock) after the server started, median of {n} | "
        f"**{'not within 45 s of Start' if chart is None else f'{chart:.1f} s'}** | <= 10 s |",
        f"| Start drawn after the server started, median of {n} | {fmt_s(med([r['start_drawn_s'] for r in starts]))} | |",
        f"| UMAP process ready after the server started | {'not within the window' if ready is None else f'{ready:.0f} s'} | |",
        "",
        "| start | health | Start drawn | Start pressed | first chart | page / headless steps/s, 20-40 s | 0-20 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(starts, 1):
        rows.append(f"| {i} | {r['health_s']:.1f} s | {fmt_s(r.get('start_drawn_s'))} | {r['start_s']:.1f} s | "
                    f"{fmt_s(r['chart_s'])} | {r['page_20_40']:.0f} / "
                    f"{r['headless']:.0f} ({100 * share(r, 'page_20_40'):.0f}%) | {100 * share(r, 'page_0_20'):.0f}% |")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------------
# load: N trainers, M watchers, tabs closed, SIGTERM
# --------------------------------------------------------------------------------------------------
def _page_rates(pages, seconds: float, counter: str = "_changes") -> tuple[list[float], list[float]]:
    """Step rate and refresh rate (refreshes that showed a new step: ``REFRESHES``) of each page over
    the same window."""
    def read(pg) -> int | None:
        for _ in range(5):  # the metric row can be replaced by a rerun while it is read
            try:
                return step(pg)
            except Exception:
                time.sleep(0.1)
        return None

    def steps():
        return [read(pg) for pg in pages]

    s0, r0, t0 = steps(), [pg.evaluate(f"() => window.{counter}") for pg in pages], time.perf_counter()
    time.sleep(seconds)
    s1, r1, t1 = steps(), [pg.evaluate(f"() => window.{counter}") for pg in pages], time.perf_counter()
    dt = t1 - t0
    return ([(b - a) / dt if a is not None and b is not None else float("nan") for a, b in zip(s0, s1)],
            [(b - a) / dt for a, b in zip(r0, r1)])


def _wait_all_moving(pages, limit_s: float) -> None:
    """Until every page's step counter has moved past 0 (or ``limit_s`` passed)."""
    t0 = time.perf_counter()
    pending = list(pages)
    while pending and time.perf_counter() - t0 < limit_s:
        still = []
        for pg in pending:
            try:
                if not step(pg) > 0:
                    still.append(pg)
            except Exception:  # an element replaced while read
                still.append(pg)
        pending = still
        time.sleep(0.5)


def _open_trainer(browser, url):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = ctx.new_page()
    page.goto(url, timeout=120_000)
    page.wait_for_selector(START, timeout=120_000)
    page.evaluate(REFRESHES)
    return page


def _quiet_after(srv: LiveServer, limit_s: float = 120.0, threshold: float = 0.05) -> float | None:
    """Seconds until the server's tree used < ``threshold`` of a core over a 1 s window (None: never)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        tree = srv.tree()
        c0, w0 = cpu_seconds(tree), time.perf_counter()
        time.sleep(1.0)
        if (cpu_seconds(tree) - c0) / (time.perf_counter() - w0) < threshold:
            return time.perf_counter() - t0 - 1.0  # the quiet window began a second ago
    return None


def _watched_run(folder: Path) -> str:
    subprocess.run([sys.executable, "-m", "hraml_core", "train", "--dataset", "digits", "--epochs", "5",
                    "--out", str(folder / "watched")], check=True, capture_output=True, timeout=600)
    return "watched"


def bench_load(browser, n: int, m: int, seconds: float) -> dict:
    runs = Path(tempfile.mkdtemp(prefix="hraml-load-runs-"))
    run = _watched_run(runs) if m else None
    srv = LiveServer(env={"HRAML_DASHBOARD_MAX_TRAINING": str(max(n, 1)), "HRAML_RUNS_DIR": str(runs)})
    out: dict = {"n": n, "m": m}
    try:
        srv.wait_healthy()
        first = _open_trainer(browser, srv.url)
        first.click(START)
        time.sleep(10)  # past the first optimiser's imports and the first frames
        steps, refresh = _page_rates([first], seconds)
        out["alone"] = {"steps": steps[0], "refresh": refresh[0]}
        print(f"  one trainer alone: {steps[0]:.1f} steps/s, {refresh[0]:.2f} refreshes/s", flush=True)

        pages = [first] + [_open_trainer(browser, srv.url) for _ in range(n - 1)]
        for pg in pages[1:]:
            pg.click(START)
        # Measured once every session trains: each page's step counter has moved, then a settling
        # window as long as the first trainer's (its first evaluation and frames are behind it).
        _wait_all_moving(pages[1:], limit_s=300)
        time.sleep(10)
        steps, refresh = _page_rates(pages, seconds)
        out["trainers"] = {"steps": steps, "refresh": refresh, "rss": rss_bytes(srv.tree())}
        print(f"  {n} trainers: steps/s {[round(x, 1) for x in steps]}, refreshes/s {[round(x, 2) for x in refresh]}",
              flush=True)

        watchers = []
        if m:
            # The class's case: the teacher's run (the first session's, recorded by the server while
            # it trains) watched live, the other sessions gone; the finished run is the fallback
            # where no recording is found. Tabs open one at a time; opening stops at the first tab
            # that does not draw within WATCH_OPEN_S (the number opened is reported).
            for pg in pages[1:]:
                pg.context.close()
            pages = pages[:1]
            live = sorted(d.name for d in runs.iterdir() if d.is_dir() and d.name != run)
            watched = live[0] if live else run
            out["watched_live"] = bool(live)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
            probe = ctx.new_page()
            probe.goto(f"{srv.url}/?watch={watched}", timeout=120_000)
            probe.wait_for_selector("h1", timeout=120_000)
            if WATCH_TITLE not in probe.locator("h1").first.inner_text():
                out["watchers_skipped"] = "?watch=<run> is not a watch page in this build"
                print(f"  watchers left out: {out['watchers_skipped']}", flush=True)
                ctx.close()
            else:
                probe.wait_for_selector(CHARTS, timeout=120_000)
                time.sleep(3)
                rss0 = rss_bytes(srv.tree())
                watchers = [probe]
                while len(watchers) < m:
                    pg = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
                    try:
                        pg.goto(f"{srv.url}/?watch={watched}", timeout=WATCH_OPEN_S * 1000)
                        pg.wait_for_selector(CHARTS, timeout=WATCH_OPEN_S * 1000)
                    except Exception:
                        pg.context.close()
                        print(f"  watcher {len(watchers) + 1} did not draw within {WATCH_OPEN_S} s: "
                              f"{len(watchers)} opened", flush=True)
                        break
                    watchers.append(pg)
                for pg in watchers:
                    pg.evaluate(REFRESHES)
                time.sleep(10)
                _, wrefresh = _page_rates(watchers, seconds)
                opened = len(watchers)
                out["watchers"] = {"opened": opened, "refresh": wrefresh,
                                   "rss_per_watcher": (rss_bytes(srv.tree()) - rss0) / max(opened - 1, 1)}
                print(f"  {opened} watchers: refreshes/s min {min(wrefresh):.2f}", flush=True)

        tree_open = srv.tree()
        for pg in pages + watchers:
            pg.context.close()
        out["quiet_s"] = _quiet_after(srv)
        print(f"  quiet {out['quiet_s']} s after the last tab closed", flush=True)

        # SIGTERM with trainers running: a fresh tab trains first
        last = _open_trainer(browser, srv.url)
        last.click(START)
        time.sleep(5)
        tree = srv.tree()
        out["sigterm_s"] = srv.terminate(timeout=60)
        time.sleep(1)
        out["orphans"] = [pid for pid in set(tree + tree_open) if alive(pid)]
        last.context.close()
        print(f"  SIGTERM: exit after {out['sigterm_s']} s, left behind {out['orphans']}", flush=True)
    finally:
        srv.close()
    return out


def load_markdown(r: dict, argv: str, load: str) -> str:
    a, t = r["alone"], r["trainers"]
    steps, refresh = t["steps"], t["refresh"]
    lines = [
        f"`python bench/bench_load.py {argv}`; {machine()}; load average at start {load}.",
        "One `hraml dashboard` server (limit set to the number of trainers), Chromium on the same machine, one",
        "tab per session; rates read off each page's step counter, refreshes counted in the page (a new step shown).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| one trainer alone: page steps/s, refreshes/s | {a['steps']:.1f}, {a['refresh']:.2f} | |",
        f"| {r['n']} trainers: page steps/s each | {', '.join(f'{x:.1f}' for x in steps)} | |",
        f"| {r['n']} trainers: all together / one alone | **{sum(steps) / a['steps']:.2f}** | >= 0.70 |",
        f"| {r['n']} trainers: slowest / fastest | **{min(steps) / max(steps):.2f}** | >= 0.5 |",
        f"| {r['n']} trainers: slowest page's refreshes/s | **{min(refresh):.2f}** | >= 0.5 |",
        f"| server process tree memory with {r['n']} trainers | {t['rss'] / 2**20:.0f} MB | |",
    ]
    if "watchers" in r:
        w = r["watchers"]
        lines += [
            f"| watchers of {'the first session' + chr(39) + 's run, live' if r.get('watched_live') else 'a finished run'}"
            f" (that session training alone; the others closed): tabs that drew, of {r['m']} asked | {w['opened']} | |",
            f"| the same: slowest page's refreshes/s | **{min(w['refresh']):.2f}** | >= 1 |",
            f"| the same: median page's refreshes/s | {float(np.median(w['refresh'])):.2f} | |",
            f"| memory the server added per watcher after the first | **{w['rss_per_watcher'] / 2**20:.1f} MB** | <= 20 MB |",
        ]
    elif r.get("watchers_skipped"):
        lines.append(f"| watchers | left out: {r['watchers_skipped']} | |")
    quiet = "not within 120 s" if r["quiet_s"] is None else f"{r['quiet_s']:.1f} s"
    term = "did not exit within 60 s" if r["sigterm_s"] is None else f"{r['sigterm_s']:.1f} s"
    lines += [
        f"| after the last tab closed: the process tree under 5% of a core | **{quiet}** | <= 5 s |",
        f"| SIGTERM with a session training: exit | **{term}** | <= 5 s |",
        f"| processes left behind | **{len(r['orphans'])}** | 0 |",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# remote: the teacher's page in Chromium, the class's watchers as protocol clients
# --------------------------------------------------------------------------------------------------
def _remote_trainers(n: int, seconds: float) -> dict:
    """``n`` Train-page sessions as protocol clients: one presses Start alone, then all."""
    from support import wait_for

    srv = LiveServer(env={"HRAML_DASHBOARD_MAX_TRAINING": str(n)})
    pool = None
    try:
        srv.wait_healthy()
        pool = WatcherPool(srv.url)
        pool.add(n)
        if not wait_for(lambda: all("start" in w.buttons for w in pool.watchers), 180, every=0.2):
            raise RuntimeError("not every session drew its Start button within 180 s: script runs "
                               f"{[w.runs for w in pool.watchers]}, errors {pool.errors()}")

        def window() -> dict:
            c0, t0 = cpu_seconds(srv.tree()), time.perf_counter()
            time.sleep(seconds)
            t1 = time.perf_counter()
            return {"steps": pool.steps_per_s(t0, t1), "refresh": pool.rates(t0, t1),
                    "cores": (cpu_seconds(srv.tree()) - c0) / (t1 - t0), "rss": rss_bytes(srv.tree())}

        first = pool.watchers[0]
        pool.click("start", [first])
        wait_for(lambda: (first.step() or 0) > 0, 120, every=0.2)
        time.sleep(10)  # past the first optimiser's imports and the first frames
        alone = window()
        print(f"  one session elsewhere alone: {alone['steps'][0]:.0f} steps/s, {alone['refresh'][0]:.2f} new steps/s",
              flush=True)
        pool.click("start", pool.watchers[1:])
        wait_for(lambda: all((w.step() or 0) > 0 for w in pool.watchers), 300, every=0.2)
        time.sleep(10)
        together = window()
        print(f"  {n} sessions elsewhere: {[round(x) for x in together['steps']]} steps/s, "
              f"{[round(x, 2) for x in together['refresh']]} new steps/s", flush=True)
        return {"n": n, "alone": alone, "together": together, "errors": pool.errors()}
    finally:
        if pool is not None:
            pool.close()
        srv.close()


def _remote_watchers(browser, m: int, seconds: float) -> dict:
    """The teacher's page in Chromium; ``m`` watchers of its run as protocol clients."""
    runs = Path(tempfile.mkdtemp(prefix="hraml-remote-runs-"))
    srv = LiveServer(env={"HRAML_RUNS_DIR": str(runs)})
    pool = None
    out: dict = {"m": m, "steps": []}
    try:
        srv.wait_healthy()
        teacher = _open_trainer(browser, srv.url)
        teacher.click(START)
        time.sleep(10)  # past the first optimiser's imports and the first frames

        def window(label: str, watchers: int) -> None:
            tree = srv.tree()
            c0, b0, r0, t0 = cpu_seconds(tree), pool.bytes_in() if pool else 0, pool.runs() if pool else 0, time.perf_counter()
            steps, refresh = _page_rates([teacher], seconds)
            t1 = time.perf_counter()
            row = {"label": label, "watchers": watchers, "teacher_steps": steps[0], "teacher_refresh": refresh[0],
                   "cores": (cpu_seconds(srv.tree()) - c0) / (t1 - t0), "rss": rss_bytes(srv.tree())}
            if pool is not None:
                rates = pool.rates(t0, t1)
                row.update(rates=rates, runs_per_s=(pool.runs() - r0) / (t1 - t0),
                           kb_per_watcher=(pool.bytes_in() - b0) / (t1 - t0) / 1024 / watchers)
            out["steps"].append(row)
            print(f"  {label}: teacher {steps[0]:.0f} steps/s, {refresh[0]:.2f} refreshes/s"
                  + (f"; watchers min {min(row['rates']):.2f}, median {float(np.median(row['rates'])):.2f} new steps/s"
                     if pool is not None else ""), flush=True)

        window("no watchers", 0)
        live = sorted(d.name for d in runs.iterdir() if d.is_dir())
        if not live:
            raise RuntimeError(f"the teacher's session wrote no run under {runs}")
        pool = WatcherPool(srv.url, f"watch={live[0]}")
        for count in sorted({max(1, m // 3), m}):
            pool.add(count - len(pool.watchers))
            time.sleep(10)  # every watcher past its first full run
            window(f"{count} watchers", count)
        out["errors"] = pool.errors()
    finally:
        if pool is not None:
            pool.close()
        srv.close()
    return out


def bench_remote(browser, n: int, m: int, seconds: float) -> dict:
    out = {"seconds": seconds, "trainers": _remote_trainers(n, seconds) if n > 1 else None}
    out.update(_remote_watchers(browser, m, seconds))
    return out


def remote_markdown(r: dict, argv: str, load: str) -> str:
    base = r["steps"][0]
    lines = [f"`python bench/bench_load.py {argv}`; {machine()}; load average at start {load}.", ""]
    t = r.get("trainers")
    if t:
        alone, together = t["alone"], t["together"]
        steps, refresh = together["steps"], together["refresh"]
        lines += [
            f"**Training sessions whose browsers are elsewhere.** One server (limit {t['n']}); {t['n']} sessions of the",
            "Train page as protocol clients (`bench/stream_watchers.py`) on digits with the app's defaults, pressing",
            "Start through the protocol: one alone, then all. Rates read off each session's step metric.",
            "",
            "| measure | value | target |",
            "|---|---|---|",
            f"| one session alone: steps/s, new steps shown/s | {alone['steps'][0]:.0f}, {alone['refresh'][0]:.2f} | |",
            f"| {t['n']} sessions: steps/s each | {', '.join(f'{x:.0f}' for x in steps)} | |",
            f"| {t['n']} sessions: all together / one alone | **{sum(steps) / alone['steps'][0]:.2f}** | >= 0.70 |",
            f"| {t['n']} sessions: slowest / fastest | **{min(steps) / max(steps):.2f}** | >= 0.5 |",
            f"| {t['n']} sessions: slowest session's new steps shown/s | **{min(refresh):.2f}** | >= 0.5 |",
            f"| server tree: cores alone / with {t['n']} | {alone['cores']:.2f} / {together['cores']:.2f} | |",
            "",
        ]
    lines += [
        "**Watchers whose browsers are elsewhere.** One `hraml dashboard` server; the teacher's session trains digits in a Chromium page on the same",
        "machine; the watchers follow its run through a watch link (`?watch=<run>`) as clients of",
        "Streamlit's websocket protocol (`bench/stream_watchers.py`: the script runs, messages and bytes",
        "of a remote browser, with no renderer on this machine). A watcher's rate: new steps shown per",
        f"second. Windows of {r['seconds']:g} s; the teacher's rows read its page's step counter.",
        "",
        "| watchers | teacher's page: steps/s (/ without watchers) | teacher's refreshes/s | watchers' new steps/s: slowest / median | script runs/s of the watchers | server tree, cores | server memory | kB/s sent per watcher |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["steps"]:
        if row["watchers"]:
            rates = row["rates"]
            w = (f"**{min(rates):.2f}** / {float(np.median(rates)):.2f}", f"{row['runs_per_s']:.1f}",
                 f"{row['kb_per_watcher']:.0f}")
        else:
            w = ("–", "–", "–")
        lines.append(f"| {row['watchers']} | {row['teacher_steps']:.0f} ({row['teacher_steps'] / base['teacher_steps']:.2f}) | "
                     f"{row['teacher_refresh']:.2f} | {w[0]} | {w[1]} | {row['cores']:.2f} | {row['rss'] / 2**20:.0f} MB | {w[2]} |")
    last = r["steps"][-1]
    per = (last["rss"] - base["rss"]) / max(last["watchers"], 1) / 2**20
    lines += ["", f"Memory the server added per watcher: **{per:.1f} MB** (target <= 20 MB); every watcher's rate "
              f"at {last['watchers']} watchers >= 1 new step a second: **{'yes' if min(last['rates']) >= 1 else 'no'}** "
              f"(target: every page >= 1 Hz)."]
    if r.get("errors"):
        lines.append(f"Watcher errors: {'; '.join(sorted(set(r['errors'])))[:500]}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="share,first,load,remote", help="comma-separated: share, first, load, remote")
    ap.add_argument("--trainers", type=int, default=6, help="training sessions at once")
    ap.add_argument("--watchers", type=int, default=30, help="watch pages of one run (0: none)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each measuring window")
    ap.add_argument("--first-starts", type=int, default=3, help="fresh servers measured one after the other (part 'first')")
    ap.add_argument("--write", action="store_true", help="write the sections of docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    if args.trainers < 1 or args.watchers < 0 or args.seconds <= 0 or args.first_starts < 1:
        ap.error("--trainers >= 1, --watchers >= 0, --seconds > 0 and --first-starts >= 1")
    parts = {s.strip() for s in args.parts.split(",") if s.strip()}
    known = {"share", "first", "load", "remote"}
    if parts - known:
        ap.error(f"unknown parts: {sorted(parts - known)}")
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")  # as the app does
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    load = _load()
    p = _digits()
    sections = {}
    if "share" in parts:
        print("trainers in one process ...", flush=True)
        sections["Server: trainers sharing the CPU"] = share_markdown(bench_share(p, args.trainers, args.seconds), shown, load)
    if parts & {"first", "load", "remote"}:
        why = browser_missing()
        if why:
            print(f"browser parts left out: {why}")
        else:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    if "first" in parts:
                        print("a fresh server's first minute ...", flush=True)
                        starts = [bench_first(p, browser) for _ in range(args.first_starts)]
                        sections["Server: the first minute"] = first_markdown(starts, shown, load)
                    if "load" in parts:
                        print(f"{args.trainers} trainers and {args.watchers} watchers ...", flush=True)
                        r = bench_load(browser, args.trainers, args.watchers, args.seconds)
                        sections["Server under load"] = load_markdown(r, shown, load)
                    if "remote" in parts:
                        print(f"the teacher's page and {args.watchers} watchers elsewhere ...", flush=True)
                        r = bench_remote(browser, args.trainers, max(args.watchers, 1), args.seconds)
                        sections["Server: watchers elsewhere"] = remote_markdown(r, shown, load)
                finally:
                    browser.close()
    for title, body in sections.items():
        print(f"\n## {title}\n\n{body}")
        if args.write:
            write_section(title, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
