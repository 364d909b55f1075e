"""The Compare page: two or more runs side by side at the same step (``?runs=a&runs=b``).

The loss and the held-out metric of every run on one chart each, their A matrices on one colour
scale, their projections next to each other; one step slider (with play / pause) for all, each run
showing its snapshot at or before that step. Runs still being written update live.

A page script: Streamlit runs it as ``__main__`` (see :mod:`hraml_dashboard.pages`).
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from hraml_core.runs.format import RUNNING
from hraml_dashboard import budget, figures, pages, run_store, run_view

PICK = "compare_runs"
PREFIX = "compare"
MAX_RUNS = 6
#: The alt text of the live matrices image (how a test finds it in the page).
MATRICES_ALT = "A of each run, on one colour scale"


def _on_pick() -> None:
    st.query_params[pages.RUNS_KEY] = list(st.session_state.get(PICK) or [])


def choose_runs(root) -> list[str]:
    rows = run_store.summaries(root)
    names = [r.name for r in rows]
    # The address is the selection (the box writes it), drawn as the box's default (see runs_page).
    wanted = [n for n in st.query_params.get_all(pages.RUNS_KEY) if n]
    missing = [n for n in wanted if n not in names]
    if missing:
        st.warning(f"The link names runs that are not in {root}: {', '.join(map(repr, missing))}.", icon="🔗")
    chosen = st.multiselect("Runs to compare", names, default=[n for n in wanted if n in names][:MAX_RUNS], key=PICK,
                            on_change=_on_pick, max_selections=MAX_RUNS, placeholder="Choose two or more runs…",
                            help="For example the same data and seed with two relations: the Runs page's "
                                 "\"Duplicate with this relation\" makes such a pair.")
    return list(chosen)


def compare_figures(shared_runs: list, names: list[str], step: int, method: str, as_images: bool) -> dict:
    """The Compare page's figures at ``step``: ``loss`` and ``metric`` overlays, ``matrices`` (the A of
    each run; with ``as_images``, one SVG image as the live Train page's heatmaps, or with plotly
    live charts a plotly figure of images), ``projections`` (one per run) and ``table`` (one row per
    run)."""
    runs = [s.run for s in shared_runs]
    curves = [s.curves() for s in shared_runs]
    snap_steps = [r.nearest_snapshot_step(step) for r in runs]
    loss = {n: c["loss"] for n, c in zip(names, curves) if len(c["loss"][0])}
    metric_name = next((r.metric for r in runs if r.metric), None)
    metric = {n: c["metric"] for n, r, c in zip(names, runs, curves) if r.metric == metric_name and len(c["metric"][0])}
    out = {
        "loss": figures.curve_figure(loss, f"Training loss at step {step:,}", "loss", step=step, uirevision="cmp-loss")
        if loss else figures.empty_figure("No loss recorded yet"),
        "metric": figures.curve_figure(metric, f"Held-out {figures.metric_label(metric_name)} at step {step:,}",
                                       figures.metric_label(metric_name), step=step,
                                       log=False, uirevision="cmp-metric")
        if metric else figures.empty_figure("No held-out metric in these runs yet"),
    }
    mats, labels, projections, table = [], [], [], []
    for shared, name, run, c, s in zip(shared_runs, names, runs, curves, snap_steps):
        relation = run.config.get("relation", "?")
        row = {"run": name, "relation": relation, "status": run.state, "snapshot": s,
               "loss": figures.value_at(*c["loss"], step),
               (metric_name or "metric"): figures.value_at(*c["metric"], step) if run.metric == metric_name else None}
        table.append(row)
        if s is None:
            projections.append(figures.empty_figure(f"{name}: no snapshot yet", 380))
            continue
        snap = run.snapshot(s)
        mats.append((f"{name} ({relation}) at {s:,}", snap.A))
        labels.append(snap.probe_labels)
        frame, _ = run_view.frame_for(shared, method, s, following=False)
        key = ("projection", run.run_id, s, None if frame is None else (frame.method, frame.step, frame.aligned, frame.note))
        projections.append(shared.figures(key, lambda f=frame, n=name, r=relation: figures.projection_figure(
            f.xy, f.labels, title=f"{n} ({r}): {figures.frame_title(f)}") if f is not None
            else figures.empty_figure("projection: computing…", 380)))
    if not mats:
        out["matrices"] = figures.empty_figure("No snapshots yet", 380)
    elif as_images and run_view.live_charts() == "echarts":
        out["matrices"] = figures.matrices_svg(mats, labels)
    else:
        out["matrices"] = figures.matrices_figure(mats, labels, as_images=as_images)
    out["projections"] = projections
    out["table"] = table
    return out


def _body(shared_runs: list, names: list[str], method: str, interval: float | None) -> None:
    run_view.count_view(PREFIX, interval)
    for s in shared_runs:
        s.refresh()
    runs = [s.run for s in shared_runs]
    live = any(r.state == RUNNING for r in runs)
    steps = tuple(sorted(set().union(*(r.snapshot_steps for r in runs))))
    if not steps:
        st.info("None of these runs has a snapshot yet.")
    else:
        step = run_view.step_control(PREFIX, steps, live)
        figs = compare_figures(shared_runs, names, step, method, as_images=interval is not None)
        st.dataframe(figs["table"], hide_index=True)
        ticking = interval is not None
        cfg = lambda what: run_view.chart_config(f"compare-{what}-step{step}", ticking)  # noqa: E731
        c1, c2 = st.columns(2)
        run_view.show_chart(c1, figs["loss"], "cmp_fig_loss", ticking, cfg("loss"))
        run_view.show_chart(c2, figs["metric"], "cmp_fig_metric", ticking, cfg("metric"))
        run_view.show_chart(st, figs["matrices"], "cmp_fig_matrices", ticking, cfg("A"), alt=MATRICES_ALT)
        cols = st.columns(min(len(names), 3))
        for i, fig in enumerate(figs["projections"]):
            run_view.show_chart(cols[i % len(cols)], fig, f"cmp_fig_projection_{i}", ticking, cfg(f"projection-{i}"))
    if budget.interval_moved(interval, run_view.view_interval(PREFIX, live, _pending(shared_runs, method))):
        st.rerun()


def _pending(shared_runs: list, method: str) -> bool:
    """Whether projection frames are still being computed for one of the runs."""
    return not all(s.chain(method).complete() for s in shared_runs)


def main() -> None:
    root = run_store.runs_root()
    st.title("Compare runs", anchor=False)
    names = choose_runs(root)
    if len(names) < 2:
        st.info("Choose two or more runs to see them side by side at the same step.", icon="🔀")
        return
    shared_runs = []
    for name in names:
        shared = run_view.open_shared(root, name)
        if shared is None:
            return
        shared.refresh()
        shared_runs.append(shared)
    for name, shared in zip(names, shared_runs):
        st.caption(f"**{name}**: " + run_view.run_caption(shared.run))
    run_view.forget_steps(PREFIX, tuple((n, s.run.run_id) for n, s in zip(names, shared_runs)))
    method = run_view.method_radio("compare_method")
    live = any(s.run.state == RUNNING for s in shared_runs)
    interval = run_view.view_interval(PREFIX, live, _pending(shared_runs, method))
    st.html(run_view.NO_FADE_CSS)
    with st.container(key=f"view_{PREFIX}"):
        st.fragment(run_every=interval)(_body)(shared_runs, names, method, interval)
    if any(np.isfinite(s.run.relation_scale or np.nan) and (s.run.relation_scale or 1) != 1 for s in shared_runs):
        st.caption("E was scaled into the range D² can reach (the relation's `scale` setting); each run's A is "
                   "trained towards its own scaled E.")


if __name__ == "__main__":
    main()
