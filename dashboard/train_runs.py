"""The Train page's runs: where its session records, the links that share it, and "duplicate with
another relation" (from the Train page or from a run on the Runs page).

A duplicate trains in the browser session's own trainer (one per session, as always): its settings
are the run's with another relation, put into the Train page's sidebar; the Train page then starts
a fresh run (the session's current run, if any, stops: it stays recorded) and opens the Compare
page on the two runs.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from hraml_core.relations import RELATIONS

from . import pages, run_store, settings_form, share

#: Session state: the run a duplicate is made of (set by a button, used by the Train page's next run).
DUPLICATE_OF = "_duplicate_of"
#: Session state: the page to switch to at the next script run (``st.switch_page`` cannot be called
#: from a button's callback).
GOTO = "_goto"
DUP_ERROR = "_duplicate_error"


def specs():
    return settings_form.widget_specs(options={"relation": list(RELATIONS)})


def duplicate_values(config: Mapping, dataset: str | None, relation: str,
                     widget_specs: Sequence[settings_form.WidgetSpec]) -> tuple[dict, list[str]]:
    """(sidebar values, problems) to train a run with ``config`` on ``dataset`` again with ``relation``."""
    values, problems = share.values_from_config(config, widget_specs)
    values["relation"] = relation
    if dataset:
        values[share.DATASET] = dataset
    else:
        problems.append("the run does not say which dataset it used")
    return values, problems


def _dataset_name(run) -> str | None:
    ds = run.dataset
    name = ds.get("name") if isinstance(ds, dict) else ds
    return str(name) if name else None


def _on_duplicate_run(run, name: str, key: str) -> None:
    """Runs page: put the run's settings with another relation into the Train page's sidebar, then go there."""
    relation = st.session_state.get(key)
    values, problems = duplicate_values(run.config, _dataset_name(run), relation, specs())
    if isinstance(run.dataset, dict) and run.dataset.get("kind") == "upload":
        problems.append("its data was an uploaded file, which is not kept: upload it again on the Train page")
    if problems:
        st.session_state[DUP_ERROR] = "Cannot duplicate this run: " + "; ".join(problems)
        return
    st.session_state.pop(DUP_ERROR, None)
    share.request(st.session_state, values)
    st.session_state[DUPLICATE_OF] = name
    st.session_state[GOTO] = pages.TRAIN


def duplicate_controls(run, name: str, key: str) -> None:
    """A relation and the button that starts the duplicate (Runs page)."""
    current = run.config.get("relation")
    options = [r for r in RELATIONS if r != current]
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    c1.selectbox("Another relation", options, key=f"{key}_relation",
                 index=options.index("jaccard") if "jaccard" in options else 0)
    c2.button("Duplicate with this relation", key=f"{key}_button", icon=":material/call_split:",
              on_click=_on_duplicate_run, args=(run, name, f"{key}_relation"),
              help="Trains the same data, seed and settings with the chosen relation in your session (the Train "
                   "page's run, if one is going, stops: it stays recorded), then compares the two runs.")
    if st.session_state.get(DUP_ERROR):
        st.error(st.session_state[DUP_ERROR], icon="🚫")


def consume_goto() -> bool:
    """Switch to the page a callback asked for (does not return when there is one); False otherwise."""
    goto = st.session_state.pop(GOTO, None)
    if goto:
        st.switch_page(pages.page(goto))
    return False


# --------------------------------------------------------------------------------------------------
# the Train page's side
# --------------------------------------------------------------------------------------------------
RECORD_ERROR = "_record_error"


def start(session) -> None:
    """Start (or resume) the session's trainer. When its run cannot be recorded (the runs folder is
    not writable, say) it trains anyway, unrecorded, and the page says why."""
    st.session_state.pop(RECORD_ERROR, None)
    try:
        session.start()
    except (OSError, ValueError) as exc:
        trainer = session.trainer
        if trainer is None or trainer.run_dir is None:
            raise
        st.session_state[RECORD_ERROR] = f"This run is not recorded ({trainer.run_dir}: {exc}); it trains anyway."
        trainer.run_dir = None
        session.start()


def _on_duplicate_live(source: str, key: str) -> None:
    st.session_state["relation"] = st.session_state.get(key)
    st.session_state[DUPLICATE_OF] = source


def start_duplicate(session, settings, prepared, source: str, root) -> str:
    """Train ``settings`` in ``session`` from fresh weights (a new run) and return the new run's name.
    ValueError when the trainer cannot be built."""
    session.reset(settings, prepared)
    session.start()
    path = session.run_path()
    if path is None:
        raise ValueError("the new run was not recorded: " + (getattr(session.trainer, "run_error", None) or "unknown reason"))
    return run_store.run_name(root, path)


def handle_duplicate(session, settings, prepared, errors: Sequence[str]) -> None:
    """On the Train page, after its settings are read: a duplicate asked for starts here, then the
    Compare page opens on the two runs."""
    source = st.session_state.pop(DUPLICATE_OF, None)
    if source is None:
        return
    if settings is None:
        st.error("Cannot start the duplicate: " + (" ".join(errors) or "the settings are not valid"), icon="🚫")
        return
    root = session.runs_root or run_store.runs_root()
    try:
        new = start_duplicate(session, settings, prepared, source, root)
    except Exception as exc:  # a relation that gives NaN on these labels, say: a message, never a traceback
        st.error(f"Cannot start the duplicate: {exc}", icon="🚫")
        return
    st.switch_page(pages.page(pages.COMPARE), query_params={pages.RUNS_KEY: [source, new]})


def panel(session, settings_query: Mapping[str, str]) -> None:
    """Where this session records, links to share it, and the duplicate button."""
    root = session.runs_root or run_store.runs_root()
    path = session.run_path()
    base = pages.app_url(st.context.url)
    if st.session_state.get(RECORD_ERROR):
        st.warning(st.session_state[RECORD_ERROR], icon="💾")
    with st.expander("Record, share, duplicate", expanded=False):
        if path is None:
            st.caption(f"Each run is recorded under `{root}` from its first Start (a new folder per Reset); "
                       "the Runs page replays it.")
        else:
            name = run_store.run_name(root, path)
            st.markdown(f"Recording to `{path}`. Watch link (read-only, updates live; viewers get no trainer):")
            st.code(share.link(base, {pages.WATCH: name}), language=None)
        st.markdown("Link to these settings:")
        st.code(share.link(base, settings_query), language=None)
        current = str(session.settings.config.relation) if session.settings is not None else None
        options = [r for r in RELATIONS if r != current]
        c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
        c1.selectbox("Another relation", options, key="dup_live_relation",
                     index=options.index("jaccard") if "jaccard" in options else 0)
        c2.button("Duplicate with this relation", key="dup_live", icon=":material/call_split:",
                  disabled=path is None, on_click=_on_duplicate_live,
                  args=(run_store.run_name(root, path) if path is not None else "", "dup_live_relation"),
                  help="Stops this run (it stays recorded), trains the same data, seed and settings with the chosen "
                       "relation, and compares the two runs side by side.")
