"""Where a live page's CPU goes (issues 9 and 11): numbers for docs/BENCHMARKS.md.

    python bench/bench_page_cost.py [--seconds 15] [--rounds 2] [--write]

One `hraml dashboard` server, one Chromium page on the same machine, training digits with the
app's defaults. The page's refreshing charts are drawn both ways in one run, each on its own server,
alternating: ECharts updated in place with the heatmaps as one SVG image (the default), and plotly
figures remounted at each refresh (``$HRAML_DASHBOARD_LIVE_CHARTS=plotly``, the previous path).
Over one window while it trains:

- the browser's renderer main thread: its busy seconds (Chrome DevTools Protocol
  ``Performance.getMetrics``: TaskDuration) per page refresh, and a JavaScript CPU profile
  (``Profiler``) split by bundle: Plotly, ECharts, React, the rest of the page's scripts, and the
  browser's own work outside JavaScript (style, layout, paint: the profile's "(program)"), plus
  garbage collection;
- how many charts are built anew per refresh (a plotly figure mounted or an ECharts instance made);
- the CPU of the Chromium processes and of the server's process tree, in cores;
- the trainer's steps/s on the page.

The ratios that matter are within the run (the renderer's seconds per refresh, one path against
the other); the machine is printed with them.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from _common import machine, write_section  # noqa: E402
from bench_dashboard import _cpu_by_group  # noqa: E402
from live_server import CHROMIUM, CHROMIUM_ARGS, COUNT_MOUNTS, COUNT_REDRAWS, LiveServer, browser_missing, step  # noqa: E402

#: Script bundles by the start of their file name (Streamlit's frontend names them so).
BUNDLES = (("PlotlyChart", "Plotly (chart library and Streamlit's wrapper)"),
           ("EChartsChart", "ECharts (chart library and Streamlit's wrapper)"), ("react-dom", "React"))
METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


def _profile_split(profile: dict) -> dict[str, float]:
    """Seconds of a CDP CPU profile by bundle (self time of each sampled frame)."""
    nodes = {n["id"]: n["callFrame"] for n in profile["nodes"]}
    out: collections.Counter = collections.Counter()
    for node_id, dt in zip(profile["samples"], profile["timeDeltas"]):
        frame = nodes[node_id]
        name, url = frame["functionName"], frame["url"].rsplit("/", 1)[-1]
        if name in ("(idle)", "(root)"):
            continue
        if name == "(program)":
            key = "browser work outside JavaScript (style, layout, paint)"
        elif name == "(garbage collector)":
            key = "garbage collection"
        elif not url:
            key = "built-in calls (DOM, JSON)"
        else:
            key = next((label for prefix, label in BUNDLES if url.startswith(prefix)), "other page scripts")
        out[key] += dt / 1e6
    return dict(out)


#: The two ways a refreshing view draws its charts (dashboard/run_view.py, LIVE_CHARTS_VARIABLE).
PATHS = ("echarts", "plotly")


def measure(seconds: float, charts: str, warm: float = 15.0) -> dict:
    from playwright.sync_api import sync_playwright

    srv = LiveServer(env={"HRAML_DASHBOARD_LIVE_CHARTS": charts})
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                srv.wait_healthy()
                page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
                page.goto(srv.url, timeout=120_000)
                page.wait_for_selector(".st-key-start button", timeout=120_000)
                page.evaluate(COUNT_REDRAWS)
                page.evaluate(COUNT_MOUNTS)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                page.click(".st-key-start button")
                time.sleep(warm)  # past the first optimiser's imports and the UMAP warm-up

                def sample():
                    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                    return dict(metrics=metrics, step=step(page), redraws=page.evaluate("() => window._redraws"),
                                mounts=page.evaluate("() => window._mounts"), cpu=_cpu_by_group(srv.pid),
                                t=time.perf_counter())

                cdp.send("Profiler.enable")
                cdp.send("Profiler.setSamplingInterval", {"interval": 1000})
                a = sample()
                cdp.send("Profiler.start")
                time.sleep(seconds)
                profile = cdp.send("Profiler.stop")["profile"]
                b = sample()
            finally:
                browser.close()
    finally:
        srv.close()
    dt = b["t"] - a["t"]
    refreshes = b["redraws"] - a["redraws"]
    return {
        "seconds": dt,
        "refreshes": refreshes,
        "mounts": b["mounts"] - a["mounts"],
        "steps_per_s": (b["step"] - a["step"]) / dt,
        "metrics": {k: b["metrics"][k] - a["metrics"][k] for k in METRICS},
        "profile": _profile_split(profile),
        "chromium_cores": (b["cpu"]["chromium"] - a["cpu"]["chromium"]) / dt,
        "server_cores": (b["cpu"]["server"] - a["cpu"]["server"]) / dt,
    }


def _per_refresh(r: dict) -> dict:
    """A window's measures per refresh (ms) and per second."""
    n = max(r["refreshes"], 1)
    out = {"refreshes/s": r["refreshes"] / r["seconds"], "mounts": r["mounts"] / n, "steps/s": r["steps_per_s"],
           "chromium": r["chromium_cores"], "server": r["server_cores"]}
    out.update({k: 1000 * v / n for k, v in r["metrics"].items()})
    out.update({f"profile:{k}": 1000 * v / n for k, v in r["profile"].items()})
    return out


def _mean(rows: list[dict]) -> dict:
    keys = {k for r in rows for k in r}
    return {k: float(np.mean([r.get(k, 0.0) for r in rows])) for k in keys}


def markdown(results: dict[str, list[dict]], seconds: float, argv: str) -> str:
    rows = {path: _mean([_per_refresh(r) for r in runs]) for path, runs in results.items()}
    e, p = rows["echarts"], rows["plotly"]
    rounds = len(results["echarts"])
    lines = [
        f"`{argv}`; {machine()}.",
        "One `hraml dashboard` server training digits (the app's defaults), one Chromium page on the same "
        f"machine; {rounds} round(s) of two servers, one per way of drawing the refreshing charts, windows of "
        f"{seconds:.0f} s while it trains, means over the rounds. Refreshes are counted in the browser (a new "
        "heatmap drawn). *ECharts*: charts updated in place, the heatmaps one SVG image (the default); "
        "*plotly*: figures remounted at each refresh (`HRAML_DASHBOARD_LIVE_CHARTS=plotly`, the previous path).", "",
        "| measure | ECharts | plotly | ECharts / plotly |", "|---|---:|---:|---:|",
    ]

    def row(label: str, key: str, fmt: str, bold: bool = False) -> None:
        a, b = e.get(key, 0.0), p.get(key, 0.0)
        ratio = f"{a / b:.2f}" if b else "–"
        cell = (lambda v: f"**{v:{fmt}}**") if bold else (lambda v: f"{v:{fmt}}")
        lines.append(f"| {label} | {cell(a)} | {cell(b)} | {ratio} |")

    row("renderer main thread busy, ms per refresh (TaskDuration)", "TaskDuration", ".0f", bold=True)
    row("of which style recalculation, ms per refresh", "RecalcStyleDuration", ".0f")
    row("of which layout, ms per refresh", "LayoutDuration", ".0f")
    row("page refreshes/s", "refreshes/s", ".2f")
    row("charts built anew per refresh", "mounts", ".1f")
    row("trainer steps/s on the page", "steps/s", ".0f")
    row("Chromium processes, cores", "chromium", ".2f")
    row("server process tree (trainer, script runs, UMAP process), cores", "server", ".2f")
    lines += ["", "The renderer's JavaScript CPU profile (sampled every 1 ms), ms per refresh:", "",
              "| part | ECharts | plotly |", "|---|---:|---:|"]
    parts = sorted({k for k in (*e, *p) if k.startswith("profile:")}, key=lambda k: -(e.get(k, 0) + p.get(k, 0)))
    for key in parts:
        lines.append(f"| {key.split(':', 1)[1]} | {e.get(key, 0.0):.0f} | {p.get(key, 0.0):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the measuring window")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of both paths, alternating")
    ap.add_argument("--write", action="store_true", help="write the section of docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"needs a browser: {missing}")
        return 1
    results: dict[str, list[dict]] = {path: [] for path in PATHS}
    for k in range(args.rounds):
        for path in PATHS:
            results[path].append(measure(args.seconds, path))
            print(f"round {k + 1}, {path}: {_per_refresh(results[path][-1])['TaskDuration']:.0f} ms per refresh", flush=True)
    argv = f"python bench/bench_page_cost.py --rounds {args.rounds}" + (" --write" if args.write else "")
    text = markdown(results, args.seconds, argv)
    print(text)
    if args.write:
        write_section("Dashboard: where a refresh's CPU goes", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
