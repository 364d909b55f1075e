"""HRAML Explorer: the live dashboard.

    streamlit run dashboard/app.py            (or: hraml dashboard [--port N] [--data-dir DIR])

A background trainer (hraml_core.trainer.Trainer, one per browser session) trains the encoder
while the page shows what it does. This file only composes: data preparation is in
``prepare.py``, figures in ``figures.py``, projections in ``projection.py``, the per-session
threads and what the downloads serve in ``state.py``, the download formats in ``export.py``.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

# One OpenBLAS thread, from OpenBLAS's start (numpy loads it on the next import; Streamlit has not):
# on a small machine shared with the training threads its second thread only spins. Lowering it
# later (threadpoolctl) is no substitute: such an OpenBLAS, called from several threads at once
# (trainers, projection workers, the page), slowed three trainers of one process to a crawl.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import streamlit as st  # noqa: E402

from hraml_core import params
from hraml_core.data import DatasetError, load_dataset, load_file
from hraml_core.data.formats import EXTENSIONS, detect_format
from hraml_core.data.tabular import LEAVE_OUT, column_names_of_bytes
from hraml_core.evaluate import METRIC_DIRECTIONS
from hraml_core.relations import RELATIONS
from hraml_core.trainer import CRASHED, FAILED, FINISHED, IDLE, PAUSED, RUNNING, STOPPED
from hraml_dashboard import (budget, exact_eval, figures, pages, run_view, server, settings_form, share,
                             sources, train_runs)
from hraml_dashboard.prepare import DEFAULT_TEST_SIZE, MAX_SPARSE_DIMS, prepare_dataset
from hraml_dashboard.projection import PCA, UMAP
from hraml_dashboard.state import Session, Settings, open_sessions
from hraml_dashboard.umap_process import umap_enabled, umap_service

UPLOAD = "Upload a file…"
NO_FILE = "Choose a file to upload (CSV / TSV, Parquet, ARFF, MAT or svmlight), or pick a dataset."
#: How this page leaves a column out (the data layer's message names ignore_columns).
PAGE_LEAVE_OUT = "leave it out with Ignore columns in the sidebar"
TASK_CHOICES = params.TASK_CHOICES
#: File name endings the uploader takes: every format's extensions, and gzipped text.
UPLOAD_TYPES = sorted({ext.lstrip(".") for ext in EXTENSIONS} | {"gz"})
#: Upload formats whose label (and ignored) columns the sidebar picks.
TABLES = ("csv", "parquet")
#: Widget values a session keeps for a browser that reattaches (a reload): restored before drawing.
UI_KEYS = ("dataset", "task", "label_columns", "ignore_columns", "n_labels", "probe_size", "display_size", "projection",
           "baseline")

st.set_page_config(page_title="HRAML Explorer", page_icon="🧭", layout="wide")


# --------------------------------------------------------------------------------------------------
# cached resources
# --------------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _process_setup() -> bool:
    """Once per server: one OpenMP thread for what runs outside the trainers (which set torch's
    own). BLAS is left as it started (see the top of this file): lowered at run time, OpenBLAS
    collapses under calls from several threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")
    return True


@st.cache_resource(show_spinner=False)
def _umap_warm_up():
    """Start the UMAP process (import + numba compile) in the background, once per server."""
    return umap_service() if umap_enabled() else None


def _streamlit_stopping() -> bool:
    """Whether Streamlit's runtime is stopping (SIGTERM, Ctrl-C): it then releases every session."""
    try:
        from streamlit import runtime
        from streamlit.runtime.runtime import RuntimeState

        return runtime.exists() and runtime.get_instance().state in (RuntimeState.STOPPING, RuntimeState.STOPPED)
    except Exception:  # another Streamlit version: the exit hook still stops everything
        return False


def _release(attachment: server.Attachment) -> None:
    """The browser session ended: detach (the grace period starts), or, when the server is
    stopping, stop everything now (the first released session does it for all)."""
    if server.stopping() or _streamlit_stopping():
        server.shutdown()
    else:
        server.registry().detach(attachment.token)


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def _attachment() -> server.Attachment:
    """This browser session's hold on its Session: the one named in the address (a reload, a
    reconnect) if the server still keeps it, else a new one."""
    return server.registry().attach(st.query_params.get(server.QUERY_KEY))


def _session() -> Session:
    s = _attachment().session
    if s.closed:  # closed from outside (tests, shutdown): start a fresh one
        _attachment.clear()
        s = _attachment().session
    return s


def _data_dir() -> str | None:
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        if a == "--data-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--data-dir="):
            return a.split("=", 1)[1]
    return os.environ.get("HRAML_DATA_DIR") or None


@st.cache_data(ttl=30, show_spinner=False)
def _dataset_names(data_dir: str | None) -> list[str]:
    return sources.dataset_options(data_dir)  # named sets, then the data directory's CSV / Parquet files


@st.cache_resource(show_spinner="Loading and preparing the data…", max_entries=16)
def _prepared_named(name: str, data_dir: str | None):
    return prepare_dataset(load_dataset(name, data_dir), test_size=DEFAULT_TEST_SIZE, seed=0)


@st.cache_resource(show_spinner="Reading the uploaded file…", max_entries=8)
def _prepared_upload(path: str, digest: str, label_columns: tuple | None, ignore_columns: tuple | None, task: str,
                     n_labels: int | None):
    ds = load_file(path, task=task, label_columns=list(label_columns) if label_columns else None,
                   ignore_columns=list(ignore_columns) if ignore_columns else None, n_labels=n_labels)
    return prepare_dataset(ds, test_size=DEFAULT_TEST_SIZE, seed=0)


def _prepared_file(f: sources.DataFile, label_columns: tuple | None, ignore_columns: tuple | None, task: str):
    """A data-directory file, read in blocks with a progress bar on the page (once per server)."""
    if sources.PREPARED.cached(sources.file_key(f, label_columns, task, ignore_columns)):
        return sources.prepare_file(f, label_columns, task, ignore_columns=ignore_columns)
    size = sources.format_bytes(f.size)
    bar = st.progress(0.0, text=f"Reading {f.option} ({size})…")

    def show(fraction: float) -> None:
        bar.progress(fraction, text=f"Reading {f.option} ({size}): {fraction:.0%}" if fraction < 1
                     else f"Splitting and standardising {f.option}…")

    try:
        prepared = sources.prepare_file(f, label_columns, task, ignore_columns=ignore_columns,
                                        progress=sources.Throttle(show))
    except Exception:
        bar.empty()
        raise
    bar.empty()
    return prepared


# --------------------------------------------------------------------------------------------------
# reading the widgets (also from callbacks, through st.session_state)
# --------------------------------------------------------------------------------------------------
def _selection():
    """(settings, prepared, errors) for the current widget values; errors are messages to show."""
    ss = st.session_state
    errors: list[str] = []
    prepared, data_key = None, None
    choice = ss.get("dataset", "digits")
    try:
        data_file = None if choice == UPLOAD else sources.find_data_file(choice, _data_dir())
        too_large = None
        if choice == UPLOAD and ss.get("upload") is not None:
            up = ss["upload"]
            too_large = sources.upload_too_large(up.name, up.size, int(st.get_option("server.maxUploadSize")), _data_dir())
        if data_file is not None:
            cols = (tuple(ss.get("label_columns") or ()) or None) if data_file.is_table else None
            ignored = (tuple(ss.get("ignore_columns") or ()) or None) if data_file.is_table else None
            task = ss.get("task", "auto")
            prepared = _prepared_file(data_file, cols, ignored, task)
            data_key = ("file", data_file.option, data_file.key, cols, ignored, task)
        elif too_large:
            errors.append(too_large)
        elif choice == UPLOAD:
            up = ss.get("upload")
            if up is None:
                errors.append(NO_FILE)
            else:
                content = up.getvalue()
                digest = hashlib.sha1(content).hexdigest()
                path = _session().upload_dir() / digest[:12] / Path(up.name).name
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                fmt = _upload_format(up.name)
                is_table = fmt in TABLES
                cols = tuple(ss.get("label_columns") or ()) if is_table else None
                ignored = tuple(ss.get("ignore_columns") or ()) if is_table else None
                n_labels = (int(ss.get("n_labels") or 0) or None) if fmt == "arff" else None
                task = ss.get("task", "auto")
                prepared = _prepared_upload(str(path), digest, cols or None, ignored or None, task, n_labels)
                data_key = ("upload", digest, cols, ignored, task, n_labels)
        else:
            data_dir = _data_dir()
            prepared = _prepared_named(choice, data_dir)
            data_key = ("named", choice, data_dir)
    except (DatasetError, ValueError, OSError) as exc:
        # the data layer names the library's and the command's options; on this page it is a box
        errors.append(f"Could not use this data: {exc}".replace(LEAVE_OUT, PAGE_LEAVE_OUT))
        prepared = None
    except Exception as exc:  # an unexpected reader failure: a message, never a traceback
        errors.append(f"Could not use this data ({type(exc).__name__}): {exc}")
        prepared = None
    try:
        config = settings_form.config_from_values({k: ss[k] for k in settings_form.widget_keys() if k in ss})
    except (ValueError, TypeError) as exc:
        errors.append(f"Bad setting: {exc}")
        config = None
    settings = None
    if prepared is not None and config is not None:
        settings = Settings(data_key, config, int(ss.get("probe_size", 300)), int(ss.get("display_size", 2000)))
    return settings, prepared, errors


def _apply(settings, prepared) -> None:
    """Build the trainer for these settings if that loses nothing (errors go to session_state)."""
    session = _session()
    try:
        session.sync(settings, prepared)
        st.session_state.pop("_build_error", None)
    except Exception as exc:  # e.g. a relation that gives NaN on these labels
        st.session_state["_build_error"] = f"Cannot train with these settings: {exc}"


# --------------------------------------------------------------------------------------------------
# button callbacks
# --------------------------------------------------------------------------------------------------
def _on_start() -> None:
    st.session_state.pop("_expired_note", None)
    settings, prepared, _ = _selection()
    if settings is not None:
        _apply(settings, prepared)
    train_runs.start(_session())  # recorded under the runs folder (trains unrecorded if it cannot be)


def _on_pause() -> None:
    _session().pause()


def _on_stop() -> None:
    _session().stop()


def _on_reset() -> None:
    settings, prepared, errors = _selection()
    session = _session()
    if settings is None:
        st.session_state["_build_error"] = "Reset needs valid settings: " + " ".join(errors)
        return
    try:
        session.reset(settings, prepared)
        st.session_state.pop("_build_error", None)
    except Exception as exc:
        st.session_state["_build_error"] = f"Cannot train with these settings: {exc}"


def _on_fit_baseline() -> None:
    session = _session()
    name = st.session_state.get("baseline")
    if name and session.prepared is not None and session.settings is not None:
        session.baselines.fit(name, session.prepared, session.settings.data_key)


def _on_cancel_baseline() -> None:
    _session().baselines.cancel()


def _exact_key(session: Session):
    return (id(session.trainer), session.generation)  # an evaluation belongs to one trainer


def _on_exact_eval() -> None:
    session = _session()
    if session.trainer is not None:
        session.exact.start(session.trainer, _exact_key(session))


def _on_exact_cancel() -> None:
    _session().exact.cancel(timeout=None)


# --------------------------------------------------------------------------------------------------
# the sidebar
# --------------------------------------------------------------------------------------------------
def _upload_format(name: str) -> str | None:
    """The loader's format of an upload called ``name`` (None for an extension it does not know:
    the loader then says so in the page)."""
    try:
        return detect_format(Path(name))
    except DatasetError:
        return None


def _label_picker(sb, cols: list[str]) -> None:
    """Label columns of an uploaded or data-directory table (default: the last column), and the
    columns left out (neither features nor labels)."""
    ss = st.session_state
    if ss.get("label_columns") and not set(ss["label_columns"]) <= set(cols):
        del ss["label_columns"]
    labels = sb.multiselect("Label columns", cols, default=[cols[-1]], key="label_columns",
                            help="One column: classes. Several 0/1 columns: multi-label. Several columns summing to 1: "
                                 "distributions.")
    others = [c for c in cols if c not in labels]
    if ss.get("ignore_columns") and not set(ss["ignore_columns"]) <= set(others):
        ss["ignore_columns"] = [c for c in ss["ignore_columns"] if c in others]
    sb.multiselect("Ignore columns", others, key="ignore_columns",
                   help="Columns that are neither features nor labels: an identifier, a text note. Every other "
                        "column is a feature and must be numeric.")


def sidebar(data_dir: str | None) -> tuple[list[str], dict]:
    """Draw the sidebar; (messages about link values not used, the settings' part of the link).
    Its state lives in the address (share.py): a copied link opens the same settings."""
    sb = st.sidebar
    names = _dataset_names(data_dir)
    specs = settings_form.widget_specs(options={"relation": list(RELATIONS)})
    # what new widgets start from: the link, the values before a visit to another page, a duplicate's
    initial, link_problems = share.initial_values(st.session_state, st.query_params, specs, names)
    sb.header("Data")
    choices = names + [UPLOAD]
    sb.selectbox("Dataset", choices, index=choices.index(initial["dataset"]) if initial.get("dataset") in choices else 0,
                 key="dataset",
                 help="Embedded sets need no files; others come from the data directory "
                      f"({data_dir or 'HRAML_DATA_DIR or datasets/files'}).")
    data_file = sources.find_data_file(st.session_state.get("dataset", ""), data_dir)
    if data_file is not None and data_file.is_table:  # a CSV / Parquet file of the data directory
        sb.caption(f"{sources.format_bytes(data_file.size)} {data_file.format.upper()} file, read in blocks into "
                   "float32 with a progress bar; every row is trained on.")
        sb.selectbox("Task", TASK_CHOICES, key="task", help="auto: detected from the label columns")
        try:
            _label_picker(sb, sources.columns(data_file))
        except DatasetError as exc:  # the loader reports it again, in the page
            sb.warning(f"Could not read the columns of {data_file.option}: {exc}")
    elif data_file is not None:  # an svmlight file of the data directory
        sb.caption(f"{sources.format_bytes(data_file.size)} svmlight file: sparse features, reduced to "
                   f"{MAX_SPARSE_DIMS} dimensions (TruncatedSVD) for the live page; every row is trained on.")
        sb.selectbox("Task", TASK_CHOICES, key="task", help="auto: classes, or label sets where a line lists several")
    if st.session_state.get("dataset") == UPLOAD:
        up = sb.file_uploader("Data file", type=UPLOAD_TYPES, key="upload",
                              help="CSV/TSV or Parquet (pick the label columns), ARFF (Mulan: labels at the end), "
                                   "MATLAB .mat, svmlight / LIBSVM (.svm: sparse, reduced to 100 dimensions)")
        sb.caption(sources.upload_limit_note(int(st.get_option("server.maxUploadSize")), data_dir))
        sb.selectbox("Task", TASK_CHOICES, key="task", help="auto: detected from the label columns")
        if up is not None:
            fmt = _upload_format(up.name)
            if fmt in TABLES:
                try:
                    cols = column_names_of_bytes(up.getvalue(), up.name)
                except DatasetError as exc:  # shown; the loader reports it again, in the page
                    cols = []
                    sb.warning(f"Could not read the columns: {exc}")
                if cols:
                    _label_picker(sb, cols)
            elif fmt == "arff":
                sb.number_input("Label attributes at the end (0: auto)", 0, 10_000, 0, key="n_labels")

    shown = share.with_defaults(specs, initial)
    for group in params.GROUPS:
        basic = [w for w in shown if w.group == group and not w.advanced]
        if basic:
            sb.header(settings_form.GROUP_TITLES[group])
        for w in basic:
            settings_form.render(sb, w)
            if w.key == "relation":  # the chosen relation's formula, under its box
                rel = RELATIONS.get(st.session_state.get("relation", w.default))
                if rel is not None:
                    sb.markdown(f"`{rel.formula}`")
                    sb.caption(rel.description)
    advanced = sb.expander("Advanced settings", expanded=False)
    for w in shown:
        if w.advanced:
            settings_form.render(advanced, w)

    sb.header("Display")
    probe, display, projection = share.DISPLAY
    sb.slider(probe.label, probe.low, probe.high, initial.get(probe.key, probe.default), step=probe.step, key=probe.key,
              help="Samples in the A / E heatmaps (probe subset of the training part)")
    sb.slider(display.label, display.low, display.high, initial.get(display.key, display.default), step=display.step,
              key=display.key, help="Training samples whose embeddings are projected to 2-D")
    sb.radio(projection.label, list(projection.options), horizontal=True, key=projection.key,
             index=projection.options.index(initial.get(projection.key, projection.default)),
             help="UMAP warm-started from the previous frame and aligned onto it (Procrustes); PCA is instant.")
    sb.caption("Changes to data, relation, encoder, optimiser, pairs, seed and point counts need a Reset once "
               "training has started; the projection method applies at once.")
    share.remember(st.session_state, share.sidebar_keys(specs))
    query = share.sync_query(st.query_params, st.session_state, specs, names[0] if names else None, names)
    return link_problems, query


# --------------------------------------------------------------------------------------------------
# the live part
# --------------------------------------------------------------------------------------------------
def _fmt_rate(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.0f}"


def _fmt_time(s: float) -> str:
    m, sec = divmod(int(s), 60)
    return f"{m}:{sec:02d}" if m else f"{s:.1f} s"


def _label_map(prepared) -> dict | None:
    return None if prepared is None else prepared.label_map  # computed once per dataset


def _baseline_values(session: Session) -> dict[str, float]:
    return {r.name: r.value for r in session.baselines.results.values() if r.status == "done" and r.value is not None}


#: Streamlit fades elements that a run has not re-rendered yet (after 0.5 s); in the live panel,
#: refreshed twice a second, that fade only flickers.
LIVE_CSS = """<style>
.st-key-live [data-stale="true"] { opacity: 1 !important; transition: none !important; }
</style>"""


def _refresh_interval() -> float:
    """Seconds between refreshes: longer as more sessions of the server refresh (budget.py)."""
    return budget.refresh_interval(sum(1 for s in open_sessions() if s.needs_refresh()))


def live(ticking: bool, interval: float | None = None, queued: bool = False) -> None:
    with st.container(key="live"):
        _live_body(ticking, interval, queued)


def _live_body(ticking: bool, interval: float | None = None, queued: bool = False) -> None:
    session = _session()
    snap = session.snapshot()
    if snap is None:
        st.info("Choose a dataset to begin.")
        return
    if snap.status == FAILED:
        advice = ("Check the data and the settings, then press Reset to start over" if snap.message.startswith(CRASHED)
                  else "Lower the learning rate and press Reset to start over")  # the loss diverged
        st.error(f"Training stopped: {snap.message}. The model keeps the weights of its last good step "
                 f"(nothing learned is lost). {advice}, or press Start to continue from here.", icon="⚠️")
    elif snap.status == FINISHED:
        st.success(snap.message)

    # widths for the longest values and labels ("running", "Held-out average precision")
    cols = st.columns([1.15, 1, 0.85, 0.95, 1, 1, 1.45])
    place = session.queue_position()
    cols[0].metric("Status", f"queued #{place}" if place else snap.status)
    cols[1].metric("Step", f"{snap.step:,}")
    # values short enough for their boxes (a longer one is cut off with an ellipsis)
    cols[2].metric("Epoch", f"{snap.epoch:.2f}" if snap.epoch < 100 else f"{snap.epoch:,.0f}")
    cols[3].metric("Pairs/s", _fmt_rate(snap.pairs_per_s))
    cols[4].metric("Elapsed", _fmt_time(snap.elapsed_s))
    cols[5].metric("Loss", f"{snap.last_loss:.3g}" if snap.step else "–")
    last = snap.last_metric
    delta = None
    if last is not None and snap.raw_metric is not None:
        delta = f"{last - snap.raw_metric:+.4f} vs raw"
    cols[6].metric(f"Held-out {figures.metric_label(snap.metric_name)}", f"{last:.4f}" if last is not None else "–", delta,
                   delta_color="normal" if METRIC_DIRECTIONS.get(snap.metric_name, "max") == "max" else "inverse")
    exact_panel(session, snap)

    method = UMAP if st.session_state.get("projection", "UMAP") == "UMAP" else PCA
    session.projector.set_method(method)
    frame = session.projector.latest()
    names = _label_map(session.prepared)
    # Before the first Start and while training, the charts are ECharts updated in place and the
    # heatmaps one image (run_view.show_chart): the first screen needs no plotly, and Start changes
    # no chart. When training pauses or stops: the plotly figures with hover, zoom and mode bar.
    fast = snap.status in (IDLE, RUNNING)
    figs = figures.live_figures(snap, frame, names, _baseline_values(session), live=fast,
                                svg=run_view.live_charts() == "echarts")
    cfg = {"displayModeBar": False if fast else "hover", "displaylogo": False}
    c1, c2 = st.columns(2)
    for where, name in ((c1, "loss"), (c2, "metric"), (st, "heatmaps")):
        run_view.show_chart(where, figs[name], f"fig_{name}", fast, cfg)
    if fast:
        st.caption("Until training pauses or stops, the heatmaps are an image and the charts are drawn for a "
                   "fast refresh; pause or stop to hover over values, zoom, or download a chart.")
    c1, c2 = st.columns(2)
    for where, name in ((c1, "scatter"), (c2, "projection")):
        run_view.show_chart(where, figs[name], f"fig_{name}", fast, cfg)
    if frame is not None:
        svc = umap_service(start=False)
        umap_state = svc.state if svc is not None else "off"
        c2.caption(f"Frame {frame.method.upper()} in {frame.seconds:.2f} s · UMAP process: {umap_state}")

    results = list(session.baselines.results.values())
    if results:
        st.subheader("Comparison on the same split")
        metric = figures.metric_label(snap.metric_name)
        rows = [{"method": "HRAML (live)", metric: last, "fit time": _fmt_time(snap.elapsed_s), "status": snap.status}]
        if snap.raw_metric is not None:
            rows.append({"method": "raw features", metric: snap.raw_metric, "fit time": "–", "status": "–"})
        for r in results:
            rows.append({"method": r.name, metric: r.value,
                         "fit time": "–" if r.seconds is None else _fmt_time(r.seconds),
                         "status": r.status if not r.message else f"{r.status}: {r.message}"})
        st.dataframe(rows, hide_index=True, column_config={metric: st.column_config.NumberColumn(format="%.4f")})

    if ticking != session.needs_refresh() or queued != session.queued:
        st.rerun()  # start or stop the periodic refresh; redraw the buttons once a queued run starts
    if ticking and budget.interval_moved(interval, _refresh_interval()):
        st.rerun()  # more or fewer sessions refresh now: a new interval


def exact_panel(session: Session, snap) -> None:
    """The live metric's sample sizes; the exact evaluation on every row (button, progress, result)."""
    session.exact.follow(_exact_key(session))
    view = session.exact.view(_exact_key(session))
    running = view is not None and view.phase == exact_eval.RUNNING
    c1, c2, c3 = st.columns([1.4, 0.9, 7], vertical_alignment="center")
    c1.button("Exact evaluation", key="exact_eval", on_click=_on_exact_eval, icon=":material/rule:",
              disabled=running or snap.metric_rows is None,
              help="The held-out metric on every held-out row against every training row, with the weights of "
                   "the moment (training goes on meanwhile)")
    c2.button("Cancel", key="exact_cancel", on_click=_on_exact_cancel, disabled=not running)
    with c3:
        st.caption(exact_eval.sample_caption(snap))
        if running:
            st.progress(view.fraction, text=exact_eval.progress_text(view))
        elif view is not None:
            st.markdown(exact_eval.result_text(view, snap.metric_name))


def baseline_panel(busy: bool) -> None:
    """Choose, fit and cancel a baseline. While a fit runs (in a child process) this panel refreshes
    itself once a second to show its elapsed time."""
    session = _session()
    fit = session.baselines.running()
    place = session.baselines.queue_position()
    waiting = session.baselines.busy()
    if session.prepared is not None:
        from hraml_core.baselines import BASELINES

        task = session.prepared.task
        names = [n for n, cls in BASELINES.items() if task in getattr(cls, "tasks", ())]
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        c1.selectbox("Baseline", names, index=names.index("raml_krr") if "raml_krr" in names else 0, key="baseline",
                     help="Fitted on the same training part, scored on the same held-out part. "
                          "LMNN and ITML can take one to two minutes on digits.")
        buttons = c2.container(horizontal=True)
        buttons.button("Fit", key="fit_baseline", on_click=_on_fit_baseline, disabled=waiting)
        buttons.button("Cancel", key="cancel_baseline", on_click=_on_cancel_baseline, disabled=not waiting)
        if fit is not None:
            doing = "Fitting" if fit.phase == "fitting" else "Starting the process for"
            st.caption(f"{doing} **{fit.name}**: {fit.elapsed():.0f} s")
        elif place:
            st.caption(f"Waiting for a slot: all {session.admission.limit} training slots of this server are in "
                       f"use (place {place} in line); the fit starts by itself.")
        else:
            st.caption("Results appear beside HRAML's in the table and as lines on the metric chart.")
        if session.prepared.baseline_note():
            st.caption(session.prepared.baseline_note())
    if busy != waiting:
        st.rerun()  # start or stop this panel's refresh; the page shows the result


def downloads_panel(session: Session) -> None:
    with st.expander("Download", expanded=False):
        files = session.downloads(_baseline_values(session))
        if files is None:
            st.caption("Start training: the embeddings, the metrics and the model can be downloaded from the first step on.")
            return
        name = session.prepared.name
        c1, c2, c3 = st.columns(3)
        c1.download_button("Embeddings (CSV)", files["embeddings"], file_name=f"{name}-embeddings.csv",
                           mime="text/csv", key="dl_embeddings", on_click="ignore")
        c2.download_button("Metrics (CSV)", files["metrics"], file_name=f"{name}-metrics.csv", mime="text/csv",
                           key="dl_metrics", on_click="ignore")
        c3.download_button("Model (zip)", files["model"], file_name=f"{name}-hraml-model.zip",
                           mime="application/zip", key="dl_model", on_click="ignore")
        if session.prepared.export_note():
            st.caption(session.prepared.export_note())

# --------------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------------
def _follow_address(attachment: server.Attachment) -> None:
    """Keep the session's token in the address, so a reload reopens this session; on a reload,
    put the widgets back as they were."""
    ss = st.session_state
    if st.query_params.get(server.QUERY_KEY) != attachment.token:
        st.query_params[server.QUERY_KEY] = attachment.token
    if not ss.get("_attached"):
        ss["_attached"] = True
        if attachment.reattached:
            for key, value in attachment.session.ui_state.items():
                ss.setdefault(key, value)
        elif attachment.expired:
            ss["_expired_note"] = True


def _remember_widgets(session: Session) -> None:
    ss = st.session_state
    keys = UI_KEYS + tuple(settings_form.widget_keys())
    session.ui_state = {k: ss[k] for k in keys if k in ss}


def main() -> None:
    _process_setup()
    _umap_warm_up()
    try:
        run_view.live_charts()
        session = _session()
    except (ValueError, RuntimeError) as exc:  # a bad $HRAML_DASHBOARD_* value, or the server stopping
        st.error(f"The dashboard cannot open a session: {exc}", icon="🚫")
        st.stop()
    _follow_address(_attachment())
    data_dir = _data_dir()
    link_problems, settings_query = sidebar(data_dir)
    _remember_widgets(session)

    st.title("HRAML Explorer", anchor=False)
    st.caption("Relation-alignment metric learning, live: an MLP encoder learns embeddings whose squared "
               "distances D² match a relation g between labels.")
    if st.session_state.get("_expired_note"):  # until the first Start
        st.info(f"The session in this link has ended (a session without a browser is kept for "
                f"{server.registry().grace_s:g} s, and none survives a server restart); this is a new one.", icon="🔗")
    settings, prepared, errors = _selection()
    if settings is not None:
        _apply(settings, prepared)
    train_runs.handle_duplicate(session, settings, prepared, errors)
    if link_problems:
        c1, c2 = st.columns([10, 1], vertical_alignment="center")
        c1.warning("Not taken from the link: " + "; ".join(link_problems), icon="🔗")
        c2.button("Dismiss", key="dismiss_link", on_click=share.dismiss, args=(st.session_state,))
    for msg in errors:
        if msg == NO_FILE:
            st.info(msg, icon="📂")
        else:
            st.error(msg, icon="🚫")
    if st.session_state.get("_build_error"):
        st.error(st.session_state["_build_error"], icon="🚫")

    if session.prepared is not None:
        p = session.prepared
        shown = p.summary()
        st.markdown(f"**Task: {p.task}** · {shown}")
        for warning in p.warnings:
            st.warning(warning.replace(LEAVE_OUT, PAGE_LEAVE_OUT), icon="⚠️")
        for note in p.notes + ((sources.timing_note(p),) if sources.timing_note(p) else ()):
            st.caption(note)
        if errors and session.prepared is not prepared:
            st.caption(f"Still showing {p.name}: the selected data could not be used.")

    snap = session.snapshot()
    status = snap.status if snap is not None else "idle"
    started = snap is not None and snap.step > 0
    place = session.queue_position()
    c = st.columns([1.2, 1.2, 1, 1, 5])
    start_label = {PAUSED: "Resume", STOPPED: "Continue", FAILED: "Continue", RUNNING: "Training…"}.get(status, "Start")
    if place:
        start_label = f"Queued #{place}"
    c[0].button(start_label, key="start", type="primary", on_click=_on_start, icon=":material/play_arrow:",
                disabled=session.trainer is None or bool(place))
    # one way to go on, the primary button ("Resume" once paused), and one to pause
    c[1].button("Pause", key="pause", on_click=_on_pause, icon=":material/pause:", disabled=status != RUNNING)
    c[2].button("Stop", key="stop", on_click=_on_stop, icon=":material/stop:",
                disabled=status not in (RUNNING, PAUSED) and not session.queued,
                help="Stop training (keeps the weights); while queued, leave the line")
    if place:
        c[4].info(f"All {session.admission.limit} training slots of this server are in use: your run starts by "
                  f"itself when one frees (place {place} in line). **Stop** leaves the line.", icon="⏳")
    c[3].button("Reset", key="reset", on_click=_on_reset, icon=":material/restart_alt:",
                help="Start over from fresh weights with the current settings")
    pending = session.pending_changes(settings)
    if pending and started:
        run_name = session.prepared.name if session.prepared is not None else "the current run"
        c[4].warning(f"Changed: {', '.join(pending)}. The run on {run_name} keeps its settings; press **Reset** "
                     "to apply the changes (it starts over from fresh weights).", icon="🔁")

    st.html(LIVE_CSS)
    live_slot, compare_slot, download_slot = st.container(), st.container(), st.container()
    # Drawn first, in its place at the bottom: a full rerun revokes the previous run's download ids
    # when it ends, so the new ones reach the browser early in the run, and a click that still
    # carries an old id is served while the rest of the page is drawn.
    with download_slot:
        downloads_panel(session)
        train_runs.panel(session, settings_query)
    ticking = session.needs_refresh()
    interval = _refresh_interval() if ticking else None
    with live_slot:
        st.fragment(run_every=interval)(live)(ticking, interval, session.queued)
    with compare_slot, st.expander("Compare with a baseline", expanded=False):
        busy = session.baselines.busy()
        st.fragment(run_every=1.0 if busy else None)(baseline_panel)(busy)


_process_setup()  # every page: the run pages' projections use BLAS too
pages.navigation(main)  # Train (this page), Runs, Compare; a watch link shows one run read-only
