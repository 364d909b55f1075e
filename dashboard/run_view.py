"""What the Runs, Watch and Compare pages draw of recorded runs (Streamlit parts; the figures are
:mod:`hraml_dashboard.figures`, the frames :mod:`hraml_dashboard.replay`, the readers
:mod:`hraml_dashboard.run_store`).

A run's view refreshes itself (a fragment) while the run is being written or played, and reads
the run through the server's one shared reader; the figures of a step are built once for every
viewer (:meth:`~hraml_dashboard.run_store.SharedRun.figures`). Only drawing is per viewer.
"""
from __future__ import annotations

import math
import os
import time
import uuid

import numpy as np
import streamlit as st

from hraml_core.evaluate import METRIC_DIRECTIONS
from hraml_core.runs.format import LOST, RUNNING

from . import budget, echarts, figures, replay, run_store
from .projection import PCA, UMAP
from .umap_process import umap_enabled

#: While playing, one frame per tick; a long run skips snapshots so that a play takes about
#: PLAY_FRAMES ticks.
PLAY_S = 0.3
PLAY_FRAMES = 150
METHOD_LABELS = {"UMAP": UMAP, "PCA": PCA}

#: Streamlit fades elements a run has not re-rendered yet; in a view refreshed twice a second
#: that only flickers (the live page does the same).
NO_FADE_CSS = """<style>
[class*="st-key-view_"] [data-stale="true"] { opacity: 1 !important; transition: none !important; }
</style>"""


# --------------------------------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------------------------------
def chart_config(filename: str, ticking: bool) -> dict:
    """plotly's config: the mode bar (with its PNG download, named ``filename``) when the view is still;
    while it refreshes the mode bar is off, as on the live page (every refresh remounts the charts)."""
    return {"displayModeBar": False if ticking else "hover", "displaylogo": False,
            "toImageButtonOptions": {"format": "png", "filename": figures.safe_filename(filename), "scale": 2}}


#: ``$HRAML_DASHBOARD_LIVE_CHARTS=plotly`` draws refreshing views with plotly, as before the ECharts
#: path (the baseline bench/bench_page_cost.py measures against; also a way out for a browser where
#: ECharts misbehaves).
LIVE_CHARTS_VARIABLE = "HRAML_DASHBOARD_LIVE_CHARTS"


def live_charts() -> str:
    """How a refreshing view draws its charts: "echarts" (default) or "plotly"."""
    value = os.environ.get(LIVE_CHARTS_VARIABLE, "echarts").strip().lower() or "echarts"
    if value not in ("echarts", "plotly"):
        raise ValueError(f"${LIVE_CHARTS_VARIABLE} must be echarts or plotly, got {value!r}")
    return value


#: The alt text of the live heatmaps image (how a test or a benchmark finds it in the page).
LIVE_IMAGE_ALT = "A, E and A − E heatmaps"


def show_chart(where, fig, key: str, ticking: bool, config: dict, alt: str = LIVE_IMAGE_ALT) -> None:
    """One chart of a view. While the view refreshes: an ECharts chart that each refresh updates in
    place (:mod:`echarts`), or an image with the text ``alt`` when ``fig`` is an SVG string (the
    heatmaps, the Compare page's matrices). When it is still: the plotly figure, with hover, zoom
    and its mode bar."""
    if isinstance(fig, str):
        where.image(fig, width="stretch", alt=alt)
    elif ticking and live_charts() == "echarts":
        option, height = echarts.option_of(fig)
        where.echarts_chart(option, key=f"{key}_live", height=height, alt=echarts.title_of(option))
    else:
        where.plotly_chart(fig, key=key, config=config)


def method_radio(key: str) -> str:
    """The projection method of a view ("umap" or "pca")."""
    options = ["UMAP", "PCA"] if umap_enabled() else ["PCA"]
    choice = st.radio("Projection", options, horizontal=True, key=key,
                      help="UMAP frames are computed once per run for the whole server (warm-started from the "
                           "previous snapshot, aligned onto it); PCA is instant. Both are aligned frame to frame.")
    return METHOD_LABELS[choice]


def ago(t: float | None) -> str:
    if not t:
        return "–"
    s = max(0.0, time.time() - float(t))
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 48 * 3600:
        return f"{s / 3600:.0f} h ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def fmt(v, spec: str = ".4g") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def latest_step(shared: run_store.SharedRun) -> int:
    """The last step the run has recorded anything for (scalars or run.json's progress)."""
    run = shared.run
    last = shared.curves()["last_step"]
    return max(last, int(run.progress.get("step") or 0), run.snapshot_steps[-1] if run.snapshot_steps else 0)


def summary_table(rows) -> list[dict]:
    """The runs list's rows (newest first)."""
    out = []
    for r in rows:
        best = r.best_metric
        out.append({"run": r.name, "status": r.status, "dataset": r.dataset or "–", "relation": r.relation or "–",
                    "metric": r.metric or "–", "best": best, "last": r.last_metric, "step": r.step,
                    "snapshots": r.snapshots, "source": r.source or "–", "updated": ago(r.updated)})
    return out


# --------------------------------------------------------------------------------------------------
# the step: slider, play / pause, follow a live run
# --------------------------------------------------------------------------------------------------
# The shown step, "playing" and "follow" are plain session values that the page owns. The slider and
# the Follow toggle only report the user's changes: their keys carry a version that the page bumps
# whenever it moves them itself, so that they are drawn anew with the page's value. Writing into a
# widget's own state instead races with the browser: a refresh it asks for carries the value it
# still shows, which the server takes for a change by the user (it stopped following a live run).
# A browser far behind the server (a slow machine, many tabs) still reports the values of controls
# the page has since drawn anew, under their old keys: those reports are ignored (_stale).
def _keys(prefix: str) -> dict[str, str]:
    return {k: f"{prefix}_{k}" for k in ("pos", "playing", "follow", "version")}


def _widget_key(prefix: str, what: str) -> str:
    return f"{prefix}_{what}_{st.session_state.get(f'{prefix}_version', 0)}"


def _redraw(prefix: str) -> None:
    ss = st.session_state
    ss[f"{prefix}_version"] = ss.get(f"{prefix}_version", 0) + 1


def _stale(prefix: str, what: str, key: str) -> bool:
    """Whether ``key`` belongs to a control the page has drawn anew since: a browser behind the
    server still reports the value that control showed, which is no choice of the user's."""
    return key != _widget_key(prefix, what)


def _on_slide(prefix: str, key: str) -> None:
    """The user moved the slider: show that step; stop following and playing."""
    ss = st.session_state
    if _stale(prefix, "step", key):
        return
    ss[f"{prefix}_pos"] = ss[key]
    if ss.get(f"{prefix}_follow") or ss.get(f"{prefix}_playing"):
        ss[f"{prefix}_follow"] = ss[f"{prefix}_playing"] = False
        _redraw(prefix)


def _on_follow(prefix: str, key: str) -> None:
    if not _stale(prefix, "follow", key):
        st.session_state[f"{prefix}_follow"] = bool(st.session_state[key])


def _toggle_play(prefix: str, steps: tuple) -> None:
    ss = st.session_state
    playing = not ss.get(f"{prefix}_playing", False)
    ss[f"{prefix}_playing"] = playing
    if playing:
        ss[f"{prefix}_follow"] = False
        if steps and ss.get(f"{prefix}_pos", steps[-1]) >= steps[-1]:
            ss[f"{prefix}_pos"] = steps[0]  # from the start again
    _redraw(prefix)


def next_step(steps, current: int, stride: int) -> int | None:
    """The snapshot step ``stride`` snapshots after ``current`` (None past the last one)."""
    i = int(np.searchsorted(steps, current, side="right")) - 1 + stride
    return steps[i] if i < len(steps) else None


def step_control(prefix: str, steps: tuple, live: bool) -> int:
    """The step a view shows: a slider over the snapshots' steps, a play / pause button and, for a
    run being written, "follow" (show the newest snapshot). Returns the chosen step (a snapshot's
    step, or between two: the view shows the snapshot at or before it)."""
    ss = st.session_state
    k = _keys(prefix)
    first, last = steps[0], steps[-1]
    if k["follow"] not in ss:
        ss[k["follow"]] = live
    pos = int(ss.get(k["pos"], last))
    if ss.get(k["playing"]):
        nxt = next_step(steps, pos, max(1, math.ceil(len(steps) / PLAY_FRAMES)))
        if nxt is None:
            ss[k["playing"]] = False
            ss[k["follow"]] = live
            _redraw(prefix)
            pos = last
        else:
            pos = nxt
    elif ss[k["follow"]] and live:
        pos = last
    pos = min(max(pos, first), last)
    if pos != ss.get(k["pos"]):
        if k["pos"] in ss:
            _redraw(prefix)  # the page moved the step: the slider is drawn anew at it
        ss[k["pos"]] = pos
    if first == last:
        st.caption(f"One snapshot so far, at step {first:,}.")
        return first
    cols = st.columns([1.1, 8, 1.6] if live else [1.1, 9.6], vertical_alignment="bottom")
    playing = ss.get(k["playing"], False)
    cols[0].button("Pause" if playing else "Play", key=f"{prefix}_play", icon=":material/pause:" if playing else
                   ":material/play_arrow:", on_click=_toggle_play, args=(prefix, steps))
    slider = _widget_key(prefix, "step")
    cols[1].slider("Step", min_value=int(first), max_value=int(last), value=pos, key=slider, on_change=_on_slide,
                   args=(prefix, slider), help=f"{len(steps)} snapshots from step {first:,} to {last:,}; the view "
                                               "shows the snapshot at or before the chosen step")
    if live:
        follow = _widget_key(prefix, "follow")
        cols[2].toggle("Follow", value=bool(ss[k["follow"]]), key=follow, on_change=_on_follow, args=(prefix, follow),
                       help="Show the newest snapshot as the run is written")
    return pos


def forget_steps(prefix: str, what) -> None:
    """Start the step control afresh when the view shows something else (another run)."""
    ss = st.session_state
    if ss.get(f"{prefix}_showing") != what:
        for key in ("pos", "playing", "follow"):
            ss.pop(f"{prefix}_{key}", None)
        _redraw(prefix)
        ss[f"{prefix}_showing"] = what


def view_interval(prefix: str, live: bool, pending: bool = False) -> float | None:
    """How often a view refreshes itself: playing (:data:`PLAY_S`), following a live run or
    projection frames being computed (``pending``: the server's view budget,
    :func:`hraml_dashboard.budget.view_interval`), or not at all."""
    if st.session_state.get(f"{prefix}_playing"):
        return PLAY_S
    return budget.view_interval(budget.views().count()) if live or pending else None


def _view_key(prefix: str) -> tuple:
    """This browser session's view ``prefix``, as :func:`hraml_dashboard.budget.views` counts it."""
    ss = st.session_state
    if "_view_session" not in ss:
        ss["_view_session"] = uuid.uuid4().hex
    return ss["_view_session"], prefix


def count_view(prefix: str, interval: float | None) -> None:
    """Tell the server's view budget whether this view refreshes."""
    if interval is None:
        budget.views().gone(_view_key(prefix))
    else:
        budget.views().seen(_view_key(prefix))


# --------------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------------
def open_shared(root, name: str) -> run_store.SharedRun | None:
    """The shared reader of the run called ``name`` under ``root``, or None after an error message."""
    try:
        return run_store.shared_run(run_store.resolve_run(root, name))
    except ValueError as exc:
        st.error(str(exc), icon="🚫")
        return None


def run_caption(run) -> str:
    """One line about a run: its data, relation, task, writer and when it was last written."""
    record = run.info  # run.json
    ds = run.dataset.get("name") if isinstance(run.dataset, dict) else run.dataset
    extra = record.get("info") or {}
    parts = [f"dataset **{ds or '?'}**", f"relation **{run.config.get('relation', '?')}**", f"task {run.task or '?'}",
             f"written by {record.get('source') or '?'}"]
    if extra.get("world_size"):
        parts.append(f"{extra['world_size']} ranks")
    parts.append(f"updated {ago(run.updated)}")
    if run.message:
        parts.append(run.message)
    return " · ".join(parts)


def frame_for(shared: run_store.SharedRun, method: str, step: int, following: bool):
    chain = shared.chain(method)
    if following:  # the chain's newest frame: no flicker between a fallback and the chain's method
        latest = chain.latest()
        if latest is not None:
            return latest, chain
    return chain.frame_or_fallback(step), chain


def run_figures(shared: run_store.SharedRun, step: int, snap_step: int, method: str, as_images: bool,
                following: bool) -> dict:
    """The five figures of ``shared``'s run: the curves at ``step``, the rest at snapshot ``snap_step``;
    each part built once for every viewer (a live run's curves change with every refresh, its
    snapshot figures only with a new snapshot)."""
    run = shared.run
    frame, _ = frame_for(shared, method, snap_step, following)
    ident = None if frame is None else (frame.method, frame.step, frame.aligned, frame.note)
    curves = shared.curves()
    ckey = ("curves", run.run_id, step, len(curves["loss"][0]), len(curves["metric"][0]), run.raw_metric)
    svg = live_charts() == "echarts"
    skey = ("snapshot", run.run_id, snap_step, ident, as_images, svg)
    return {**shared.figures(ckey, lambda: figures.replay_curves(run, step, curves)),
            **shared.figures(skey, lambda: figures.snapshot_figures(run, run.snapshot(snap_step), frame,
                                                                    as_images=as_images, svg=svg))}


def show_metrics(shared: run_store.SharedRun, step: int, snap_step: int | None, following: bool) -> None:
    run = shared.run
    curves = shared.curves()
    state = run.state
    cols = st.columns([1.1, 1, 1, 1, 1.45, 0.9])  # room for "Held-out average precision"
    cols[0].metric("Status", state)
    shown = latest_step(shared) if following else step
    cols[1].metric("Step", f"{shown:,}")
    cols[2].metric("Snapshot", "–" if snap_step is None else f"{snap_step:,}")
    cols[3].metric("Loss", fmt(figures.value_at(*curves["loss"], shown), ".3g"))
    if run.metric:
        value = figures.value_at(*curves["metric"], shown)
        delta = None
        if value is not None and run.raw_metric is not None:
            delta = f"{value - run.raw_metric:+.4f} vs raw"
        cols[4].metric(f"Held-out {figures.metric_label(run.metric)}", fmt(value, ".4f"), delta,
                       delta_color="normal" if METRIC_DIRECTIONS.get(run.metric, "max") == "max" else "inverse")
    else:
        cols[4].metric("Held-out metric", "–")
    cols[5].metric("Snapshots", f"{len(run.snapshot_steps):,}")


def draw_figures(figs: dict, prefix: str, name: str, step: int, ticking: bool) -> None:
    """The five figures, laid out as on the live page."""
    def cfg(fig: str) -> dict:
        return chart_config(f"{name}-{fig}-step{step}", ticking)

    c1, c2 = st.columns(2)
    for where, fig in ((c1, "loss"), (c2, "metric"), (st, "heatmaps")):
        show_chart(where, figs[fig], f"{prefix}_fig_{fig}", ticking, cfg(fig))
    c1, c2 = st.columns(2)
    for where, fig in ((c1, "scatter"), (c2, "projection")):
        show_chart(where, figs[fig], f"{prefix}_fig_{fig}", ticking, cfg(fig))


def show_run(root, name: str, prefix: str = "run", read_only: bool = False) -> run_store.SharedRun | None:
    """A recorded run, as the live page shows a session: metrics, loss, metric, A / E / A − E, D² vs g,
    the projection; a step slider with play / pause; updating itself while the run is written."""
    try:
        live_charts()
    except ValueError as exc:  # a bad $HRAML_DASHBOARD_LIVE_CHARTS
        st.error(f"The dashboard cannot show runs: {exc}", icon="🚫")
        return None
    shared = open_shared(root, name)
    if shared is None:
        return None
    forget_steps(prefix, (name, shared.run.run_id))
    shared.refresh()
    run = shared.run
    st.html(NO_FADE_CSS)
    st.subheader(name, anchor=False)
    st.caption(run_caption(run))
    state = run.state
    if state == LOST:
        st.warning(f"The process writing this run stopped answering ({ago(run.updated)}): it probably died. "
                   "What it recorded is shown.", icon="⚠️")
    elif run.status == "failed":
        st.error(f"The run failed: {run.message}", icon="⚠️")
    method = method_radio(f"{prefix}_method")
    live = state == RUNNING
    interval = view_interval(prefix, live, not shared.chain(method).complete())
    with st.container(key=f"view_{prefix}"):
        st.fragment(run_every=interval)(_run_body)(shared, name, prefix, method, interval)
    return shared


def _run_body(shared: run_store.SharedRun, name: str, prefix: str, method: str, interval: float | None) -> None:
    count_view(prefix, interval)
    shared.refresh()
    run = shared.run
    live = run.state == RUNNING
    steps = run.snapshot_steps
    if not steps:
        show_metrics(shared, latest_step(shared), None, True)
        st.info("No snapshot recorded yet: the figures appear with the first one." if live else
                "This run has no snapshots to show.")
        curves = shared.curves()
        if len(curves["loss"][0]):
            st.plotly_chart(figures.curve_figure({"loss": curves["loss"]}, "Training loss", "loss"),
                            key=f"{prefix}_fig_loss", config=chart_config(f"{name}-loss", bool(interval)))
    else:
        step = step_control(prefix, steps, live)
        following = live and bool(st.session_state.get(f"{prefix}_follow"))
        snap_step = run.nearest_snapshot_step(step)
        show_metrics(shared, step, snap_step, following)
        ticking = interval is not None
        try:
            figs = run_figures(shared, latest_step(shared) if following else step, snap_step, method,
                               as_images=ticking, following=following)
        except (KeyError, ValueError) as exc:  # a snapshot replaced or unreadable meanwhile
            st.warning(f"Could not read the snapshot at step {snap_step:,}: {exc}")
        else:
            draw_figures(figs, prefix, name, snap_step, ticking)
            chain = shared.chain(method)
            done, total = chain.progress()
            if done < total or chain.note:
                st.caption(f"{method.upper()} frames: {done} of {total} snapshots" + (f" · {chain.note}" if chain.note else ""))
    if budget.interval_moved(interval, view_interval(prefix, live, not shared.chain(method).complete())):
        st.rerun()  # start or stop the refresh (a run that ends, frames done, play / pause), or a new budget


def export_button(shared: run_store.SharedRun, name: str, method: str, key: str) -> None:
    """A download of the run's evolution as one HTML file (built when clicked)."""
    def build() -> str:
        shared.refresh(0.0)
        return replay.evolution_html(shared.run, shared.chain(method))

    st.download_button("Evolution (HTML)", build, file_name=f"{figures.safe_filename(name)}-evolution.html",
                       mime="text/html", key=key, on_click="ignore", icon=":material/movie:",
                       disabled=not shared.run.snapshot_steps,
                       help="One self-contained HTML file (plotly.js inside, no internet needed) that plays the run: "
                            "loss and metric, A and A − E, the projection, one frame per snapshot (up to "
                            f"{figures.EXPORT_FRAMES}). Each chart's PNG is in its mode bar (camera icon).")
