"""The Runs page: the runs under the server's runs folder, and one of them opened (replay, live
updates while it is written, export, a watch link, a duplicate with another relation).

Also the watch page: a link ``?watch=<run name>`` shows that run read-only and nothing else (no
trainer, no runs list), for a class watching the teacher's run.

A page script: Streamlit runs it as ``__main__`` (see :mod:`hraml_dashboard.pages`); tests import it
for its functions.
"""
from __future__ import annotations

import streamlit as st

from hraml_dashboard import pages, run_store, run_view, share, train_runs

OPEN = "open_run"


def _on_open() -> None:
    name = st.session_state.get(OPEN)
    if name:
        st.query_params[pages.RUN_KEY] = name
    elif pages.RUN_KEY in st.query_params:
        del st.query_params[pages.RUN_KEY]


def run_list(root) -> str | None:
    """The runs table and the run to open (from the link's ``run`` or the select box)."""
    unreadable: list = []
    rows = run_store.summaries(root, unreadable)
    if unreadable:  # a damaged run is said, not left out in silence
        st.warning("Not listed, their run.json could not be read (damaged, or cut short): " + "; ".join(
            f"`{run_store.run_name(root, folder)}` ({error})" for folder, error in unreadable), icon="⚠️")
    if not rows:
        st.info(f"No runs under `{root}` yet. Train on the **Train** page (each run is recorded there), or write "
                f"one with `hraml train --dataset digits --out {root}/digits`, `HRAML(log_dir=...)` or "
                f"`torchrun --nproc-per-node 2 -m hraml_core.distributed --dataset digits --out {root}/digits-ddp`.",
                icon="📂")
        return None
    names = [r.name for r in rows]
    # The address is the selection (the select box writes it): the box is drawn with it as its
    # value, rather than told through st.session_state, which raced with the browser's first state.
    wanted = st.query_params.get(pages.RUN_KEY)
    if wanted and wanted not in names:
        st.warning(f"The link asks for a run called {wanted!r}, which is not in {root}.", icon="🔗")
    st.dataframe(run_view.summary_table(rows), hide_index=True, height=min(36 * (len(rows) + 1) + 3, 320),
                 column_config={"best": st.column_config.NumberColumn(format="%.4f"),
                                "last": st.column_config.NumberColumn(format="%.4f")})
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    choice = c1.selectbox("Open a run", names, index=names.index(wanted) if wanted in names else None, key=OPEN,
                          on_change=_on_open, placeholder="Choose a run to replay…")
    c2.button("Refresh list", key="refresh_runs", icon=":material/refresh:")
    return choice


def actions(shared, name: str, method: str) -> None:
    """Export, watch link, duplicate with another relation."""
    with st.expander("Share, export, duplicate", expanded=False):
        c1, c2 = st.columns([1, 3])
        with c1:
            run_view.export_button(shared, name, method, key="dl_evolution")
        base = pages.app_url(st.context.url)
        c2.markdown("Watch link (read-only, updates live; no trainer for the viewer):")
        c2.code(share.link(base, {pages.WATCH: name}), language=None)
        train_runs.duplicate_controls(shared.run, name, key="dup")


def watch(root, name: str) -> None:
    st.title("HRAML Explorer: watching a run", anchor=False)
    run_view.show_run(root, name, prefix="watch", read_only=True)


def main() -> None:
    root = run_store.runs_root()
    watched = pages.watching(st.query_params)
    if watched:
        watch(root, watched)
        return
    if train_runs.consume_goto():
        return
    st.title("Runs", anchor=False)
    st.caption(f"Every run under `{root}`: the Train page's sessions, `hraml train --out`, `HRAML(log_dir=...)` and "
               "torchrun `--out`. Open one to replay it; a run still being written updates live.")
    name = run_list(root)
    if name:
        shared = run_view.show_run(root, name, prefix="run")
        if shared is not None:
            actions(shared, name, run_view.METHOD_LABELS[st.session_state.get("run_method") or "PCA"])


if __name__ == "__main__":
    main()
