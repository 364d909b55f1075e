"""The dashboard app driven headless by Streamlit's AppTest (no browser).

``run_every`` does not tick in AppTest, so the tests rerun the script (``at.run()``) until the page
shows what they wait for. The ``app`` fixture (tests/conftest.py)
closes each test's session threads and checks that no training thread is left running.
"""
import re
import threading

import pytest

from support import baseline_children, chart_kinds, charts, metrics, status, step, wait_until


def _threads(part):
    return [t for t in threading.enumerate() if part in t.name and t.is_alive()]


def test_first_screen_is_useful_without_any_data(app):
    app.run()
    assert not app.exception
    assert app.selectbox(key="dataset").value == "digits"
    assert any("Task: classification" in m.value for m in app.markdown)
    assert status(app) == "idle" and step(app) == 0
    # loss, metric, heatmaps, scatter, projection: before the first Start as while training
    assert chart_kinds(app) == ["echarts_chart", "echarts_chart", "image", "echarts_chart", "echarts_chart"]
    assert app.button(key="start").disabled is False
    assert any("Start training: the embeddings" in c.value for c in app.caption)  # no download of nothing


def test_train_pause_resume_stop_reset(app):
    app.run()
    app.selectbox(key="dataset").set_value("wine").run()
    app.selectbox(key="relation").set_value("l2").run()
    assert not app.exception
    assert any("Task: classification" in m.value and "wine" in m.value for m in app.markdown)
    assert any("√" in m.value for m in app.sidebar.markdown)  # the relation's formula is shown
    app.button(key="start").click().run()
    assert wait_until(app, lambda: step(app) > 0 and status(app) == "running")
    # while training: ECharts updated in place, the heatmaps one image
    assert chart_kinds(app) == ["echarts_chart", "echarts_chart", "image", "echarts_chart", "echarts_chart"]
    first, before = step(app), charts(app)
    assert wait_until(app, lambda: step(app) > first)
    assert wait_until(app, lambda: metrics(app)["Held-out accuracy"] != "–")

    def advanced() -> bool:
        now = charts(app)
        return len(now) == 5 and now[0] != before[0] and now[2] != before[2] and now[3] != before[3]

    assert wait_until(app, advanced), "loss, heatmaps and D²-vs-g charts advance"
    assert len(_threads("train")) == 1

    app.button(key="pause").click().run()  # returns once the trainer has stopped stepping
    assert status(app) == "paused"
    assert chart_kinds(app) == ["plotly_chart"] * 5  # still: plotly, with hover, zoom and PNG download
    paused_at = step(app)
    app.run()
    assert step(app) == paused_at
    # one button goes on (the primary one), the other is for pausing only
    assert app.button(key="start").label == "Resume" and app.button(key="pause").disabled
    app.button(key="start").click().run()  # resume
    assert status(app) == "running"
    assert wait_until(app, lambda: step(app) > paused_at)

    app.button(key="stop").click().run()
    assert status(app) == "stopped" and not _threads("train")
    stopped_at = step(app)
    assert app.button(key="start").label == "Continue"
    downloads = [e for e in app.get("download_button")]
    assert len(downloads) == 3 and not any("Start training: the embeddings" in c.value for c in app.caption)

    app.button(key="reset").click().run()
    assert status(app) == "idle" and step(app) == 0 and stopped_at > 0
    assert not app.exception


def test_repeated_start_never_makes_a_second_thread(app):
    app.run()
    app.selectbox(key="dataset").set_value("iris").run()
    for _ in range(5):
        app.button(key="start").click().run()
        assert len(_threads("train")) == 1
    app.button(key="pause").click().run()
    for _ in range(3):  # Start on a paused run resumes it
        app.button(key="start").click().run()
        assert len(_threads("train")) == 1 and status(app) == "running"
    app.button(key="stop").click().run()
    assert not _threads("train")


def test_setting_change_while_training_asks_for_reset(app):
    app.run()
    app.selectbox(key="dataset").set_value("iris").run()
    app.button(key="start").click().run()
    assert wait_until(app, lambda: step(app) > 0)
    app.number_input(key="lr").set_value(0.01).run()
    notes = [w.value for w in app.warning]
    assert any("learning rate" in n and "Reset" in n for n in notes), notes
    app.button(key="reset").click().run()
    assert not [w for w in app.warning if "Reset" in w.value]
    from hraml_dashboard.state import open_sessions

    assert any(s.trainer.config.lr == 0.01 for s in open_sessions() if s.trainer is not None)


@pytest.mark.slow
def test_bad_upload_shows_an_error_and_the_app_keeps_working(app):
    app.run()
    app.button(key="start").click().run()
    assert wait_until(app, lambda: step(app) > 0)
    app.button(key="stop").click().run()
    kept = step(app)

    app.selectbox(key="dataset").set_value("Upload a file…").run()
    assert any("Choose a file" in i.value for i in app.info)
    app.file_uploader(key="upload").set_value(("broken.mat", b"this is not a MATLAB file", "application/octet-stream")).run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert errors and any("broken.mat" in e for e in errors), errors
    # the earlier run is still there, nothing lost
    assert step(app) == kept and status(app) == "stopped"

    app.file_uploader(key="upload").set_value(("bad.csv", b"a,b,label\n1,x,0\n2,3,1\n", "text/csv")).run()
    assert not app.exception and app.error

    app.selectbox(key="dataset").set_value("digits").run()
    assert not app.error
    app.button(key="start").click().run()
    assert wait_until(app, lambda: step(app) > kept)
    app.button(key="stop").click().run()


def test_csv_upload_with_label_columns_detects_the_task(app):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    Y = (X[:, :2] > 0).astype(int)
    lines = ["f1,f2,f3,f4,tag_a,tag_b"] + [",".join(f"{v:.4f}" for v in x) + f",{y[0]},{y[1]}" for x, y in zip(X, Y)]
    app.run()
    app.selectbox(key="dataset").set_value("Upload a file…").run()
    app.file_uploader(key="upload").set_value(("tags.csv", "\n".join(lines).encode(), "text/csv")).run()
    assert app.multiselect(key="label_columns").value == ["tag_b"]
    app.multiselect(key="label_columns").set_value(["tag_a", "tag_b"]).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Task: multilabel" in m.value and "tags" in m.value for m in app.markdown)
    assert metrics(app)["Held-out average precision"] == "–"
    app.button(key="start").click().run()
    assert wait_until(app, lambda: metrics(app)["Held-out average precision"] != "–")
    app.button(key="stop").click().run()


def test_a_semicolon_csv_upload_offers_its_columns_and_loads(app):
    """The label picker and the loader read the upload with the same separator and header."""
    lines = ["x;y;kind"] + [f"{(i * 3) % 11};{(i * 7) % 5};{'a' if i % 3 else 'b'}" for i in range(60)]
    app.run()
    app.selectbox(key="dataset").set_value("Upload a file…").run()
    app.file_uploader(key="upload").set_value(("semi.csv", "\n".join(lines).encode(), "text/csv")).run()
    picker = app.multiselect(key="label_columns")
    assert picker.options == ["x", "y", "kind"] and picker.value == ["kind"]
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Task: classification" in m.value and "2 classes" in m.value for m in app.markdown)
    assert not app.warning  # classes that repeat: nothing to warn about
    ids = ["x;y;id"] + [f"{(i * 3) % 11};{(i * 7) % 5};{i}" for i in range(60)]
    app.file_uploader(key="upload").set_value(("ids.csv", "\n".join(ids).encode(), "text/csv")).run()
    assert [w.value[:43] for w in app.warning] == ["60 of 60 rows are the only row of their cla"]
    indexed = ["row;x;kind"] + [f"{i};{(i * 7) % 5};{'ab'[i % 2]}" for i in range(60)]
    app.file_uploader(key="upload").set_value(("indexed.csv", "\n".join(indexed).encode(), "text/csv")).run()
    assert [w.value for w in app.warning] == [
        "feature column 'row' counts the rows (0, 1, 2, ...): a row index read as a feature gives the rows' order "
        "away; leave it out with Ignore columns in the sidebar"]


def test_a_text_column_of_an_upload_can_be_left_out(app):
    lines = ["name,x,y,kind"] + [f"row {i},{i % 7},{(i * 3) % 5},{'ab'[i % 2]}" for i in range(60)]
    app.run()
    app.selectbox(key="dataset").set_value("Upload a file…").run()
    app.file_uploader(key="upload").set_value(("named.csv", "\n".join(lines).encode(), "text/csv")).run()
    assert any("non-numeric feature column 'name'" in e.value and e.value.endswith(
        "leave it out with Ignore columns in the sidebar") for e in app.error)
    assert app.multiselect(key="ignore_columns").options == ["name", "x", "y"]  # not the label column
    app.multiselect(key="ignore_columns").set_value(["name"]).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Task: classification" in m.value and "60 samples, 2 features" in m.value for m in app.markdown)
    app.multiselect(key="label_columns").set_value(["name"]).run()  # a column ignored becomes the label
    assert app.multiselect(key="ignore_columns").value == []


def test_a_parquet_upload_has_its_label_and_ignore_pickers(app):
    import io

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(80)], "a": rng.normal(size=80), "b": rng.normal(size=80)})
    frame["tag_x"], frame["tag_y"] = (frame["a"] > 0).astype(int), (frame["b"] > 0).astype(int)
    data = io.BytesIO()
    frame.to_parquet(data, index=False)
    app.run()
    app.selectbox(key="dataset").set_value("Upload a file…").run()
    app.file_uploader(key="upload").set_value(("tags.parquet", data.getvalue(), "application/octet-stream")).run()
    assert app.multiselect(key="label_columns").options == ["id", "a", "b", "tag_x", "tag_y"]
    app.multiselect(key="label_columns").set_value(["tag_x", "tag_y"]).run()
    app.multiselect(key="ignore_columns").set_value(["id"]).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Task: multilabel" in m.value and "2 features" in m.value for m in app.markdown)


def test_a_training_error_is_not_blamed_on_the_learning_rate(app, monkeypatch):
    import hraml_core.trainer

    def broken(*args, **kwargs):
        raise RuntimeError("the evaluator broke")

    monkeypatch.setattr(hraml_core.trainer, "evaluate_embedding", broken)
    app.run()
    app.selectbox(key="dataset").set_value("iris").run()
    app.button(key="start").click().run()
    assert wait_until(app, lambda: status(app) == "failed")
    (error,) = [e.value for e in app.error]
    assert "training failed: RuntimeError: the evaluator broke" in error
    assert "Check the data and the settings" in error and "learning rate" not in error
    assert not _threads("train") and not app.exception


@pytest.mark.slow
def test_huge_learning_rate_gives_a_clear_message(app):
    app.run()
    app.selectbox(key="dataset").set_value("iris").run()
    app.selectbox(key="optimizer").set_value("sgd").run()
    app.number_input(key="lr").set_value(1e9).run()
    app.button(key="start").click().run()
    assert wait_until(app, lambda: status(app) == "failed")
    assert any("learning rate" in e.value and "Reset" in e.value for e in app.error)
    assert not _threads("train") and not app.exception
    # Adam with the same rate: the loss stays finite but explodes; the trainer stops it and says why
    app.selectbox(key="optimizer").set_value("adam").run()
    app.button(key="reset").click().run()
    app.button(key="start").click().run()
    assert wait_until(app, lambda: any("exploded" in e.value for e in app.error))
    assert status(app) == "failed" and not _threads("train")
    # lower the rate, reset: back to normal
    app.number_input(key="lr").set_value(1e-3).run()
    app.button(key="reset").click().run()
    assert not app.error and status(app) == "idle"


@pytest.mark.slow
def test_compare_with_a_baseline(app):
    app.run()
    app.selectbox(key="dataset").set_value("wine").run()
    assert "gmml" in app.selectbox(key="baseline").options
    app.selectbox(key="baseline").set_value("gmml").run()
    app.button(key="fit_baseline").click().run()
    done = lambda: any("gmml" in str(df.value) and "fitting" not in str(df.value) for df in app.dataframe)  # noqa: E731
    assert wait_until(app, done)
    table = app.dataframe[0].value
    assert list(table["method"]) == ["HRAML (live)", "gmml"]  # no raw-feature row before training
    row = table[table["method"] == "gmml"].iloc[0]
    assert row["status"] == "done" and 0.5 < row["accuracy"] <= 1


@pytest.mark.slow
def test_cancel_a_slow_baseline_fit(app):
    app.run()  # digits
    app.selectbox(key="baseline").set_value("lmnn").run()  # about 1.5 min on digits
    app.button(key="fit_baseline").click().run()
    assert app.button(key="fit_baseline").disabled and not app.button(key="cancel_baseline").disabled
    fitting = re.compile(r"Fitting \*\*lmnn\*\*: \d+ s")
    assert wait_until(app, lambda: any(fitting.search(c.value) for c in app.caption))  # what runs, how long
    app.button(key="cancel_baseline").click().run()
    assert not app.exception and not baseline_children()
    table = app.dataframe[0].value
    assert table[table["method"] == "lmnn"].iloc[0]["status"] == "cancelled"
    assert not app.button(key="fit_baseline").disabled and app.button(key="cancel_baseline").disabled
