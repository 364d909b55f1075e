"""The Runs, Compare and watch pages and the sidebar's link, driven headless by Streamlit's AppTest.

``run_every`` does not tick in AppTest: a test calls ``at.run()`` again to refresh (see
tests/test_dashboard_app.py). Runs are written by tests/run_factory.py into a temporary runs folder
(``HRAML_RUNS_DIR``), except where the Train page records its own.
"""
import base64
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest

from hraml_dashboard import run_store, settings_form, share
from run_factory import make_run
from support import chart_kinds, charts

APP = str(ROOT / "dashboard" / "app.py")
RUNS, COMPARE = "runs_page.py", "compare_page.py"


def _threads(part):
    return [t for t in threading.enumerate() if part in t.name and t.is_alive()]


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("HRAML_DASHBOARD_UMAP", "0")
    monkeypatch.setenv("HRAML_RUNS_DIR", str(tmp_path / "runs"))
    from hraml_dashboard.state import close_all_sessions

    before = set(_threads("train"))
    yield tmp_path / "runs"
    close_all_sessions()
    run_store.close_shared_runs()
    left = [t.name for t in set(_threads("train")) - before] + [t.name for t in _threads("replay")]
    assert not left, f"threads left running: {left}"


def app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query or {})
    return at


def page(script: str, query: dict | None = None) -> AppTest:
    """An AppTest on the page ``script`` (AppTest finds a page of st.navigation once the app has run)."""
    at = app()
    ok(at.run())
    at.query_params.clear()
    at.query_params.update(query or {})
    at.switch_page(script)
    return ok(at.run())


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def number(text: str) -> int:
    return int(text.replace(",", ""))


def ok(at) -> AppTest:
    assert not at.exception, at.exception
    return at


def step_slider(at):
    """The step slider of a run view (its key changes when the page moves it)."""
    return next(s for s in at.slider if s.label == "Step")


def frames_ready(root, *names: str) -> None:
    """Every snapshot of these runs has its projection frame (the page's PCA, computed in the
    background): until then a view of them refreshes and draws live charts, not plotly figures."""
    for name in names:
        assert run_store.shared_run(root / name).chain("pca").wait(30)


def wait_until(at, cond, timeout=30.0, every=0.3) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        ok(at.run())
        if cond():
            return True
        time.sleep(every)
    return False


# -- Runs -------------------------------------------------------------------------------------------
def test_runs_page_lists_the_runs_and_opens_the_one_a_link_names(root):
    make_run(root / "digits-l1", relation="l1", dataset="digits", snapshots=6)
    make_run(root / "group" / "iris-jaccard", relation="jaccard", dataset="iris", snapshots=4, seed=1)
    frames_ready(root, "digits-l1", "group/iris-jaccard")
    at = page(RUNS, {"run": "group/iris-jaccard"})
    table = at.dataframe[0].value
    assert sorted(table["run"]) == ["digits-l1", "group/iris-jaccard"]
    row = table[table["run"] == "digits-l1"].iloc[0]
    assert (row["dataset"], row["relation"], row["status"], row["best"]) == ("digits", "l1", "finished", 1.0)
    assert at.selectbox(key="open_run").value == "group/iris-jaccard"
    m = metrics(at)
    assert m["Status"] == "finished" and m["Step"] == "30" and m["Snapshot"] == "30" and m["Snapshots"] == "4"
    assert len(at.get("plotly_chart")) == 5  # loss, metric, A / E / A - E, D² vs g, projection
    at.selectbox(key="open_run").set_value("digits-l1")
    ok(at.run())
    assert at.query_params["run"] == "digits-l1" and metrics(at)["Step"] == "50"
    assert any("dataset **digits**" in c.value and "relation **l1**" in c.value for c in at.caption)


def test_runs_page_names_a_run_whose_run_json_cannot_be_read(root):
    make_run(root / "good", snapshots=2, every=5)
    (root / "cut").mkdir()
    (root / "cut" / "run.json").write_text('{"format": ')  # a copy cut short
    at = page(RUNS)
    assert list(at.dataframe[0].value["run"]) == ["good"]
    assert [w.value for w in at.warning] == [
        "Not listed, their run.json could not be read (damaged, or cut short): `cut` (Expecting value: line 1 "
        "column 12 (char 11))"]


def test_the_slider_moves_the_step_shown_and_play_walks_the_snapshots(root):
    make_run(root / "r", snapshots=6, every=10)
    at = page(RUNS, {"run": "r"})
    before = [c.proto.spec for c in at.get("plotly_chart")]
    step_slider(at).set_value(20)
    ok(at.run())
    assert metrics(at)["Step"] == "20" and metrics(at)["Snapshot"] == "20" and metrics(at)["Loss"] == "0.0476"
    after = [c.proto.spec for c in at.get("plotly_chart")]
    assert all(a != b for a, b in zip(before, after)), "every figure is redrawn at the new step"
    assert "at step 20" in after[4] and "Training loss at step 20" in after[0]
    step_slider(at).set_value(37)  # between snapshots: the one at or before
    ok(at.run())
    assert metrics(at)["Step"] == "37" and metrics(at)["Snapshot"] == "30"
    at.button(key="run_play").click()
    ok(at.run())
    shown = [number(metrics(at)["Snapshot"])]
    for _ in range(3):  # one frame per refresh (run_every does not tick here)
        ok(at.run())
        shown.append(number(metrics(at)["Snapshot"]))
    assert shown == [40, 50, 50, 50] and at.button(key="run_play").label == "Play"  # stopped at the end


def test_a_run_being_written_updates_while_the_page_is_open(root):
    import numpy as np

    w = make_run(root / "live", snapshots=3, every=10, finish=False)
    at = page(RUNS, {"run": "live"})
    assert metrics(at)["Status"] == "running" and metrics(at)["Step"] == "20"
    assert next(t for t in at.toggle if t.label == "Follow").value is True
    snap = run_store.shared_run(root / "live").run.snapshot(20)
    for s in range(21, 61):
        w.log(s, loss=1.0 / s)
    w.snapshot(60, snap.A * 0.5, np.asarray(snap.embeddings))
    w.flush()
    assert wait_until(at, lambda: metrics(at)["Step"] == "60" and metrics(at)["Snapshot"] == "60")
    assert metrics(at)["Snapshots"] == "4"
    w.finish()
    assert wait_until(at, lambda: metrics(at)["Status"] == "finished")


def test_an_unknown_run_in_a_link_gives_a_message(root):
    make_run(root / "r", snapshots=2)
    at = page(RUNS, {"run": "nope"})
    assert any("nope" in w.value for w in at.warning) and at.selectbox(key="open_run").value is None
    empty = page(COMPARE)
    assert any("two or more runs" in i.value for i in empty.info)


# -- Compare ----------------------------------------------------------------------------------------
def test_compare_two_runs_side_by_side_at_one_step(root):
    make_run(root / "a-l1", relation="l1", snapshots=6, every=10)
    make_run(root / "b-jaccard", relation="jaccard", snapshots=4, every=20, seed=1)
    frames_ready(root, "a-l1", "b-jaccard")
    at = page(COMPARE, {"runs": ["a-l1", "b-jaccard"]})
    assert at.multiselect(key="compare_runs").value == ["a-l1", "b-jaccard"]
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert len(charts) == 5  # loss and metric overlaid, the A matrices, two projections
    assert '"name":"a-l1"' in charts[0] and '"name":"b-jaccard"' in charts[0]
    assert "a-l1 (l1) at 50" in charts[2] and "b-jaccard (jaccard) at 60" in charts[2]
    step_slider(at).set_value(30)
    ok(at.run())
    table = at.dataframe[0].value
    assert list(table["snapshot"]) == [30, 20] and list(table["relation"]) == ["l1", "jaccard"]
    assert "at step 30" in at.get("plotly_chart")[0].proto.spec
    at.multiselect(key="compare_runs").set_value(["a-l1"])
    ok(at.run())
    assert at.query_params["runs"] == "a-l1" and any("two or more" in i.value for i in at.info)


def test_compare_with_a_live_run_draws_curves_and_projections_in_place(root):
    make_run(root / "done", snapshots=3)
    w = make_run(root / "live", snapshots=3, finish=False, seed=1)
    at = page(COMPARE, {"runs": ["done", "live"]})
    # loss and metric, the A matrices (one SVG image, as the live Train page's heatmaps), two projections
    assert chart_kinds(at) == ["echarts_chart", "echarts_chart", "image", "echarts_chart", "echarts_chart"]
    assert '"name":"done"' in charts(at)[0] and '"name":"live"' in charts(at)[0]  # both runs' loss series
    svg = base64.b64decode(charts(at)[2].split(",", 1)[1]).decode()  # a data URI of the drawing
    assert "done (l1) at" in svg and "live (l1) at" in svg and svg.count("<image") == 2
    w.finish()


# -- watch ------------------------------------------------------------------------------------------
def test_a_watch_link_shows_the_run_read_only_with_no_trainer(root):
    from hraml_dashboard.state import open_sessions

    make_run(root / "teacher", snapshots=5)
    frames_ready(root, "teacher")
    sessions = len(open_sessions())
    at = app({"watch": "teacher"})
    ok(at.run())
    assert [t.value for t in at.title] == ["HRAML Explorer: watching a run"]
    assert metrics(at)["Snapshots"] == "5" and len(at.get("plotly_chart")) == 5
    assert not at.sidebar.selectbox and not [b for b in at.button if b.key in ("start", "reset", "dup_button")]
    assert len(open_sessions()) == sessions, "a watcher gets no trainer"
    bad = app({"watch": "../etc"})
    ok(bad.run())
    assert any("not a run name" in e.value for e in bad.error)


def test_watchers_share_one_reader_and_one_figure_build(root, monkeypatch):
    from hraml_dashboard import figures

    w = make_run(root / "teacher", snapshots=3, finish=False)
    first = app({"watch": "teacher"})
    ok(first.run())
    (shared,) = run_store.open_shared_runs()
    assert shared.chain("pca").wait(30)  # the frames of the snapshots so far
    builds = []
    for name in ("replay_curves", "snapshot_figures"):
        build = getattr(figures, name)
        monkeypatch.setattr(figures, name, lambda *a, _b=build, _n=name, **k: builds.append(_n) or _b(*a, **k))
    watchers = [app({"watch": "teacher"}) for _ in range(5)]
    for at in watchers:
        ok(at.run())
    assert run_store.open_shared_runs() == [shared]  # one reader for all
    assert builds.count("replay_curves") <= 1 and builds.count("snapshot_figures") <= 1  # at most one build for five
    assert len({charts(at)[2] for at in watchers}) == 1
    w.finish()


# -- the sidebar's link ------------------------------------------------------------------------------
def _link_values():
    from hraml_core.relations import RELATIONS

    values = {"dataset": "wine", "relation": "jaccard", "scale": "max", "hidden": "64,32", "dim": 16,
              "out_activation": "none", "init": "torch", "sampler": "hard", "batch_size": 128, "partners": 6,
              "balance": 0.25, "sampling_power": 2.0, "optimizer": "sgd", "lr": 0.01, "momentum": 0.5,
              "weight_decay": 1e-4, "seed": 7, "probe_size": 150, "display_size": 500, "projection": "PCA"}
    keys = share.sidebar_keys(settings_form.widget_specs(options={"relation": list(RELATIONS)}))
    assert set(values) == set(keys), "a setting was declared: give it a value here"
    return values


def test_a_link_reproduces_the_sidebar_exactly(root):
    from hraml_core.relations import RELATIONS

    values = _link_values()
    specs = settings_form.widget_specs(options={"relation": list(RELATIONS)})
    query = share.to_query(values, specs, "digits")
    at = app(query)
    ok(at.run())
    shown = {k: at.session_state[k] for k in values}
    assert shown == values
    assert at.selectbox(key="dataset").value == "wine" and at.text_input(key="hidden").value == "64,32"
    assert at.number_input(key="lr").value == 0.01 and at.slider(key="probe_size").value == 150
    address = dict(at.query_params)
    assert address.pop("session")  # the session's own key (a reload finds the run), beside the link
    assert address == query  # the address keeps the same link
    assert not at.warning
    from hraml_dashboard.state import open_sessions

    trainer = [s for s in open_sessions() if s.trainer is not None][-1].trainer
    assert trainer.config.relation == "jaccard" and trainer.config.hidden == (64, 32) and trainer.probe_size == 150


def test_a_bad_value_in_a_link_gives_a_message_not_a_traceback(root):
    at = app({"lr": "fast", "relation": "l7", "dataset": "nope", "dim": "32"})
    ok(at.run())
    text = " ".join(w.value for w in at.warning)
    assert "lr must be a number" in text and "relation must be one of" in text and "dataset 'nope'" in text
    assert at.number_input(key="dim").value == 32 and at.selectbox(key="dataset").value == "digits"
    at.button(key="dismiss_link").click()
    ok(at.run())
    assert not at.warning


# -- the Train page's runs ---------------------------------------------------------------------------
@pytest.mark.slow
def test_the_train_page_records_its_run_and_duplicates_it_with_another_relation(root):
    at = app({"dataset": "iris"})
    ok(at.run())
    at.button(key="start").click()
    assert wait_until(at, lambda: number(metrics(at)["Step"]) > 0)
    at.button(key="stop").click()
    ok(at.run())
    runs = run_store.summaries(root)
    assert len(runs) == 1 and runs[0].name.startswith("iris-l1-") and runs[0].source == "dashboard"
    assert runs[0].status == "stopped" and runs[0].dataset == "iris" and runs[0].snapshots >= 1
    assert any(f"?watch={runs[0].name}" in c.value for c in at.code)  # the watch link
    first = runs[0].name

    at.switch_page(RUNS)
    at.query_params["run"] = first
    ok(at.run())
    assert at.selectbox(key="open_run").value == first
    at.selectbox(key="dup_relation").set_value("jaccard")
    at.button(key="dup_button").click()
    ok(at.run())  # Runs -> Train (starts the duplicate) -> Compare
    compared = at.multiselect(key="compare_runs").value
    assert compared[0] == first and compared[1].startswith("iris-jaccard-")
    at.switch_page(COMPARE)  # AppTest's later runs go back to the page it last switched to itself
    assert wait_until(at, lambda: len(at.dataframe[0].value) == 2 if at.dataframe else False)
    from hraml_dashboard.state import open_sessions

    trainer = [s for s in open_sessions() if s.trainer is not None][-1].trainer
    assert trainer.config.relation == "jaccard" and trainer.config.seed == 0
    table = at.dataframe[0].value
    assert list(table["relation"]) == ["l1", "jaccard"], (table, at.multiselect(key="compare_runs").value)


def test_a_run_of_the_estimator_opens_like_any_other(root):
    from sklearn.datasets import load_iris

    from hraml_core import HRAML

    X, y = load_iris(return_X_y=True)
    HRAML(max_epochs=3, random_state=0, log_dir=root / "fits" / "iris").fit(X, y)
    at = page(RUNS, {"run": "fits/iris"})
    row = at.dataframe[0].value.iloc[0]
    assert (row["run"], row["source"], row["status"]) == ("fits/iris", "HRAML.fit", "finished")
    assert metrics(at)["Status"] == "finished" and len(charts(at)) == 5
    assert number(metrics(at)["Snapshots"]) >= 2


def test_a_runs_folder_that_cannot_be_written_does_not_stop_training(tmp_path, monkeypatch, root):
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("HRAML_RUNS_DIR", str(tmp_path / "not-a-folder"))
    at = app({"dataset": "iris"})
    ok(at.run())
    at.button(key="start").click()
    assert wait_until(at, lambda: number(metrics(at)["Step"]) > 0)
    assert any("not recorded" in w.value for w in at.warning)
    at.button(key="stop").click()
    ok(at.run())


def test_a_bad_live_charts_setting_is_named_on_the_page(monkeypatch, root):
    make_run(root / "r", snapshots=2)
    monkeypatch.setenv("HRAML_DASHBOARD_LIVE_CHARTS", "vega")
    train = app()
    ok(train.run())
    assert any("HRAML_DASHBOARD_LIVE_CHARTS must be echarts or plotly, got 'vega'" in e.value for e in train.error)
    runs = page(RUNS, {"run": "r"})
    assert any("cannot show runs" in e.value and "'vega'" in e.value for e in runs.error)
