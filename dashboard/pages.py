"""The dashboard's pages (Streamlit's multipage API): Train (the live session), Runs, Compare.

app.py calls :func:`navigation` with its Train page. The Runs and Compare pages are the scripts
``runs_page.py`` and ``compare_page.py`` (files, so that AppTest can switch to them). A watch link
(``?watch=<run name>``) gets one page only, the run read-only: no trainer, no navigation.

Query keys of the pages: ``run`` (Runs: the open run), ``runs`` (Compare: the runs compared,
repeated), ``watch`` (a watch link). ``session`` belongs to the reconnection of a reloaded page.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS_SCRIPT = HERE / "runs_page.py"
COMPARE_SCRIPT = HERE / "compare_page.py"
TRAIN, RUNS, COMPARE = "train", "runs", "compare"
#: Query keys: the run open on the Runs page, the runs compared (repeated), a watch link's run.
RUN_KEY, RUNS_KEY, WATCH = "run", "runs", "watch"
_pages: dict = {}


def watching(query) -> str | None:
    """The run a watch link names (None for other links)."""
    name = query.get(WATCH)
    return name or None


def navigation(train_page) -> None:
    """Register the pages and run the one the address asks for (``train_page``: a callable)."""
    import streamlit as st

    if watching(st.query_params):
        page = st.Page(RUNS_SCRIPT, title="Watch", icon=":material/visibility:", default=True)
        st.navigation([page], position="hidden").run()
        return
    _pages[TRAIN] = st.Page(train_page, title="Train", icon=":material/model_training:", default=True)
    _pages[RUNS] = st.Page(RUNS_SCRIPT, title="Runs", icon=":material/history:", url_path="runs")
    _pages[COMPARE] = st.Page(COMPARE_SCRIPT, title="Compare", icon=":material/compare:", url_path="compare")
    st.navigation(list(_pages.values()), position="top").run()


def page(name: str):
    """The registered page ``name`` (train, runs or compare), for ``st.switch_page``."""
    return _pages[name]


def app_url(url: str | None) -> str | None:
    """The app's root address from a page's address (``st.context.url``: without its query)."""
    if not url:
        return None
    url = url.rstrip("/")
    for name in (RUNS, COMPARE):
        if url.endswith("/" + name):
            return url[: -len(name) - 1] + "/"
    return url + "/"
