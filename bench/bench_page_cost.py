"""Where a live page's CPU goes (issues 9 and 11): numbers for docs/BENCHMARKS.md.

    python bench/bench_page_cost.py [--seconds 15] [--write]

One `hraml dashboard` server, one Chromium page on the same machine, training digits with the
app's defaults. Over one window while it trains:

- the browser's renderer main thread: its busy seconds (Chrome DevTools Protocol
  ``Performance.getMetrics``: TaskDuration) per page refresh, and a JavaScript CPU profile
  (``Profiler``) split by bundle: Plotly, React, the rest of the page's scripts, and the browser's
  own work outside JavaScript (style, layout, paint: the profile's "(program)"), plus garbage
  collection;
- how many charts are mounted anew per refresh (every ``.js-plotly-plot`` element that appears);
- the CPU of the Chromium processes and of the server's process tree, in cores;
- the trainer's steps/s on the page.

The ratios that matter are within the run (the renderer's seconds per refresh, its share of a
core); the machine is printed with them.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from _common import machine, write_section  # noqa: E402
from bench_dashboard import _cpu_by_group  # noqa: E402
from live_server import CHROMIUM, CHROMIUM_ARGS, COUNT_MOUNTS, COUNT_REDRAWS, LiveServer, browser_missing, step  # noqa: E402

#: Script bundles by the start of their file name (Streamlit's frontend names them so).
BUNDLES = (("PlotlyChart", "Plotly (chart library and Streamlit's wrapper)"), ("react-dom", "React"))
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
            key = "built-in calls (DOM, JSON; their callers are mostly Plotly's)"
        else:
            key = next((label for prefix, label in BUNDLES if url.startswith(prefix)), "other page scripts")
        out[key] += dt / 1e6
    return dict(out)


def measure(seconds: float, warm: float = 15.0) -> dict:
    from playwright.sync_api import sync_playwright

    srv = LiveServer()
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


def markdown(r: dict, argv: str) -> str:
    n = max(r["refreshes"], 1)
    ms = lambda s: f"{1000 * s / n:.0f}"  # noqa: E731  seconds over the window -> ms per refresh
    m = r["metrics"]
    lines = [
        f"`{argv}`; {machine()}.",
        "One `hraml dashboard` server training digits (the app's defaults), one Chromium page on the same "
        f"machine; a window of {r['seconds']:.0f} s while it trains. Refreshes are counted in the browser "
        "(heatmap remounts).", "",
        "| measure | value |", "|---|---|",
        f"| page refreshes/s | {r['refreshes'] / r['seconds']:.2f} |",
        f"| charts mounted anew per refresh | {r['mounts'] / n:.1f} |",
        f"| trainer steps/s on the page | {r['steps_per_s']:.0f} |",
        f"| Chromium processes, cores | {r['chromium_cores']:.2f} |",
        f"| server process tree (trainer, script runs, UMAP process), cores | {r['server_cores']:.2f} |",
        f"| renderer main thread busy, ms per refresh (TaskDuration) | **{ms(m['TaskDuration'])}** |",
        f"| of which style recalculation / layout, ms per refresh | {ms(m['RecalcStyleDuration'])} / {ms(m['LayoutDuration'])} |",
        "", "The renderer's JavaScript CPU profile (sampled every 1 ms), ms per refresh:", "",
        "| part | ms per refresh |", "|---|---:|",
    ]
    for key, value in sorted(r["profile"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {key} | {ms(value)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the measuring window")
    ap.add_argument("--write", action="store_true", help="write the section of docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"needs a browser: {missing}")
        return 1
    r = measure(args.seconds)
    text = markdown(r, "python bench/bench_page_cost.py" + (" --write" if args.write else ""))
    print(text)
    if args.write:
        write_section("Dashboard: where a refresh's CPU goes", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
