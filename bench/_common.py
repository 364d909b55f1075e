"""Shared helpers for the benchmarks: timing and writing one section of docs/BENCHMARKS.md."""
from __future__ import annotations

import os
import platform
import re
import signal
import threading
import time
from pathlib import Path


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


# A benchmark stopped by SIGTERM (`timeout`, a CI limit) unwinds as on Ctrl-C: its `finally` blocks
# end the servers and browsers it started instead of leaving them running.
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Measured numbers, rewritten by the scripts in `bench/` (`python bench/<script>.py --write`).\n"
    "Every ratio compares runs measured side by side in the same session on the same machine\n(in one process where the comparison allows). Machine and load: see each section.\n"
)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} vCPU {cpu}, Python {platform.python_version()}, torch {torch.__version__}"


def best_of(fn, repeat: int = 3) -> float:
    """Smallest wall time of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def write_section(title: str, body: str) -> None:
    """Replace (or append) the section ``## title`` of docs/BENCHMARKS.md."""
    text = DOC.read_text() if DOC.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)


def refresh_bytes(figs: dict, refreshing: bool) -> int:
    """The bytes one refresh sends for ``figs``, made as the app makes them (the server's work of a
    refresh): a refreshing view's charts as ECharts options with their Arrow datasets (as
    ``st.echarts_chart`` serialises them) and the heatmaps as an SVG image (``st.image``); a still
    view's as validated plotly JSON (as ``st.plotly_chart`` does)."""
    import base64
    import json

    import plotly.io as pio
    import plotly.tools
    from streamlit import dataframe_util

    from hraml_dashboard.echarts import echarts_option

    n = 0
    for fig in figs.values():
        if isinstance(fig, str):  # an SVG image, sent base64-encoded in its data URL
            n += len(base64.b64encode(fig.encode()))
        elif refreshing:
            option, _ = echarts_option(fig)
            for dataset in option.get("dataset", ()):
                n += len(dataframe_util.convert_anything_to_arrow_bytes(dataset.pop("source")))
            n += len(json.dumps(option))
        else:
            n += len(pio.to_json(plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True), validate=False))
    return n
