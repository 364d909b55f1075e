"""The per-session holder: one trainer thread at most, settings sync, exports (no Streamlit)."""
import io
import os
import signal
import threading
import zipfile

import numpy as np
import pytest


from hraml_dashboard import export
from hraml_dashboard.prepare import prepare_dataset
from hraml_dashboard.settings_form import config_from_values
from hraml_dashboard.state import Session, Settings, changed_settings
from hraml_core.data import load_dataset
from hraml_core.training import TrainConfig
from support import baseline_children, wait_for


def _train_threads():
    return [t for t in threading.enumerate() if "train" in t.name and t.is_alive()]


@pytest.fixture
def wine():
    return prepare_dataset(load_dataset("wine"))


@pytest.fixture
def session(monkeypatch):
    monkeypatch.setenv("HRAML_DASHBOARD_UMAP", "0")
    s = Session(projection_interval_s=0.1)
    yield s
    s.close()
    assert not _train_threads()
    assert not s.projector.is_alive()
    assert not s.baselines.busy() and not baseline_children()


def _settings(**cfg):
    return Settings(("named", "wine", None), TrainConfig(hidden=(32,), dim=8, batch_size=64, **cfg), 60, 100)


def test_config_from_widget_values():
    c = config_from_values({"hidden": "64, 32", "dim": 16.0, "lr": "0.01", "relation": "l2", "seed": 3})
    assert c.hidden == (64, 32) and c.dim == 16 and c.lr == 0.01 and c.relation == "l2" and c.seed == 3
    with pytest.raises(ValueError, match="hidden"):
        config_from_values({"hidden": "64,x"})
    with pytest.raises(ValueError, match="lr"):
        config_from_values({"lr": -1})


def test_changed_settings_names_what_differs():
    a = _settings()
    b = Settings(("named", "iris", None), a.config.replace(lr=0.1, relation="l2"), 60, 200)
    assert changed_settings(a, b) == ["dataset", "relation", "learning rate", "projection points"]
    assert changed_settings(a, a) == []


def test_one_thread_whatever_is_clicked(session, wine):
    s = _settings()
    assert session.sync(s, wine)
    assert session.start() and not session.start() and not session.start(s, wine)
    assert len(_train_threads()) == 1
    assert wait_for(lambda: session.snapshot().step > 5)
    session.pause()
    assert session.snapshot().status == "paused"
    session.start()  # resumes; still one thread
    assert session.snapshot().status == "running" and len(_train_threads()) == 1
    # a settings change while training waits for Reset
    s2 = Settings(s.data_key, s.config.replace(relation="l2"), 60, 100)
    assert not session.sync(s2, wine)
    assert session.pending_changes(s2) == ["relation"]
    step = session.snapshot().step
    session.reset(s2, wine)
    assert session.snapshot().step == 0 and session.snapshot().config.relation == "l2" and step > 0
    assert not _train_threads() and session.pending_changes(s2) == []
    session.start()
    session.stop()
    assert session.snapshot().status == "stopped" and not _train_threads()


def test_pristine_trainer_follows_settings(session, wine):
    session.sync(_settings(), wine)
    t = session.trainer
    assert session.sync(_settings(lr=0.01), wine)  # never started: rebuilt without asking
    assert session.trainer.config.lr == 0.01 and session.trainer is not t
    t = session.trainer
    with pytest.raises(ValueError):  # a trainer that cannot be built leaves the old one in place
        session.sync(Settings(("named", "wine", None), _settings(relation="no_such_relation").config, 60, 100), wine)
    assert session.trainer is t
    iris = prepare_dataset(load_dataset("iris"))
    s3 = Settings(("named", "iris", None), _settings().config, 60, 100)
    assert session.sync(s3, iris) and session.trainer is not t and session.prepared is iris


def test_nan_loss_fails_cleanly_and_keeps_weights(session, wine):
    session.sync(_settings(lr=1e9, optimizer="sgd"), wine)
    session.start()
    assert wait_for(lambda: session.snapshot().status == "failed")
    snap = session.snapshot()
    assert "loss became" in snap.message or "exploded" in snap.message
    assert np.isfinite(snap.embeddings).all()
    assert not _train_threads()


def test_exploding_loss_fails_cleanly_and_keeps_weights(session, wine):
    session.sync(_settings(lr=1e9), wine)  # Adam: the loss stays finite but explodes
    session.start()
    assert wait_for(lambda: session.snapshot().status == "failed")
    snap = session.snapshot()
    assert "exploded" in snap.message and "learning rate" in snap.message
    assert np.isfinite(snap.embeddings).all() and not _train_threads()
    session.reset(_settings(), wine)
    assert session.snapshot().status == "idle"


def test_exports(session, wine, tmp_path, capsys):
    session.sync(_settings(), wine)
    session.start()
    assert wait_for(lambda: len(session.snapshot().metric_values) > 0)
    session.stop()
    t = session.trainer
    csv = export.embeddings_csv(t.embed(np.array(wine.X_train)), t.embed(np.array(wine.X_val)), wine)
    lines = csv.strip().splitlines()
    assert lines[0].startswith("row,split,label,z0") and len(lines) == 1 + 178
    assert lines[0].split(",")[-1] == "z7"
    m = export.metrics_csv(t.snapshot(), {"gmml": 0.9})
    assert "loss" in m and "heldout,accuracy" in m and "baseline,gmml:accuracy" in m
    blob = export.model_zip(t.to_estimator(), wine, {"lr": 0.001}, {"accuracy": 0.9})
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert set(zf.namelist()) == {"model.safetensors", "preprocess.safetensors", "run.json", "split.json", "README.txt"}
        zf.extractall(tmp_path)
    from hraml_core import HRAML
    from hraml_core.cli import main
    from hraml_core.preprocessing import Preprocessor

    model = HRAML.load(tmp_path / "model.safetensors")
    np.testing.assert_allclose(model.transform(np.array(wine.X_val)), t.embed(np.array(wine.X_val)), atol=1e-5)
    pre = Preprocessor.load(tmp_path / "preprocess.safetensors")
    raw = load_dataset("wine").X
    np.testing.assert_allclose(pre.transform(raw[wine.val_index]), wine.X_val, atol=1e-5)
    # the download is a model folder that `hraml evaluate` reads, on the very rows held out here
    assert main(["evaluate", str(tmp_path)]) == 0
    assert f"on {len(wine.val_index)} held-out samples (its own held-out rows)" in capsys.readouterr().out


def test_downloads_follow_the_run(session, wine):
    session.sync(_settings(), wine)
    assert session.downloads({}) is None  # nothing trained yet: nothing to keep
    session.start()
    assert wait_for(lambda: session.snapshot().step > 0)
    live = session.downloads({})
    assert session.training() and all(callable(f) for f in live.values())  # built when clicked
    assert live["embeddings"]().startswith("row,split,label,z0")
    session.stop()
    step = session.snapshot().step
    files = session.downloads({"gmml": 0.9})
    assert set(files) == {"embeddings", "metrics", "model"}
    assert all(isinstance(f, (str, bytes)) for f in files.values())
    # the same bytes on every rerun while nothing changes: Streamlit's file id is a content hash,
    # so a click racing a rerun still finds its file
    again = session.downloads({"gmml": 0.9})
    assert all(again[k] is files[k] for k in files)
    assert f",{step}," in files["metrics"] and "baseline,gmml:accuracy,,0.9" in files["metrics"]
    Z = session.trainer.embed(np.array(wine.X_train, dtype=np.float32))
    first_train_row = next(line for line in files["embeddings"].splitlines()[1:] if ",train," in line)
    assert float(first_train_row.split(",")[3]) == pytest.approx(Z[np.argsort(wine.train_index)[0], 0], abs=1e-5)
    with zipfile.ZipFile(io.BytesIO(files["model"])) as zf:
        assert "model.safetensors" in zf.namelist()
    assert session.downloads({"gmml": 0.95})["metrics"] != files["metrics"]  # a new baseline result
    session.reset()
    assert session.downloads({}) is None


WINE = ("named", "wine", None)


@pytest.fixture(scope="module")
def digits():
    return prepare_dataset(load_dataset("digits"))


@pytest.mark.slow
def test_baseline_fit_in_a_child_matches_in_process(session, wine):
    from hraml_core.baselines import get_baseline
    from hraml_core.evaluate import evaluate_embedding

    runner = session.baselines
    assert runner.fit("gmml", wine, WINE)
    assert not runner.fit("raml_krr", wine, WINE)  # one fit at a time
    assert runner.busy() and runner.running().name == "gmml" and runner.results["gmml"].status == "fitting"
    runner.join(30)
    r = runner.results["gmml"]
    Xtr, Xva = np.array(wine.X_train, np.float64), np.array(wine.X_val, np.float64)
    model = get_baseline("gmml").fit(Xtr, np.array(wine.Y_train))
    expected = evaluate_embedding(wine.task, model.transform(Xtr), np.array(wine.Y_train),
                                  model.transform(Xva), np.array(wine.Y_val))["accuracy"]
    assert r.status == "done" and r.metric == "accuracy" and r.value == pytest.approx(expected) and r.seconds > 0
    assert not runner.busy() and not baseline_children()


@pytest.mark.slow
def test_a_failed_fit_says_why(session, wine):
    runner = session.baselines
    assert runner.fit("no_such_method", wine, WINE)
    runner.join(30)
    r = runner.results["no_such_method"]
    assert r.status == "failed" and r.message.startswith("ValueError: unknown baseline 'no_such_method'")
    # a child that dies (here killed during its start) is a failure too, with a message
    assert runner.fit("gmml", wine, WINE)
    assert wait_for(lambda: runner.running().pid is not None)
    os.kill(runner.running().pid, signal.SIGKILL)
    runner.join(10)
    r = runner.results["gmml"]
    assert r.status == "failed" and r.message == "the fitting process ended unexpectedly (exit code -9)"
    assert not baseline_children()


@pytest.mark.slow
def test_cancel_a_long_fit(session, digits):
    runner = session.baselines
    assert runner.fit("lmnn", digits, ("named", "digits", None))  # about 1.5 min
    assert wait_for(lambda: runner.busy() and runner.running().phase == "fitting", 30)
    assert baseline_children() == [runner.running().pid]  # the check below can see a child
    runner.cancel()  # returns once the child is gone (it waits 5 s at most): LMNN would fit on for minutes
    assert not runner.busy() and not baseline_children()
    r = runner.results["lmnn"]
    assert r.status == "cancelled" and r.value is None and r.message == ""


def test_dataset_change_reset_and_close_end_the_fit(session, wine, digits):
    runner = session.baselines
    session.sync(_settings(), wine)
    assert runner.fit("lmnn", digits, session.settings.data_key)
    iris = prepare_dataset(load_dataset("iris"))
    session.sync(Settings(("named", "iris", None), _settings().config, 60, 100), iris)  # another dataset
    assert not runner.busy() and not baseline_children() and runner.results == {}
    assert runner.fit("lmnn", digits, session.settings.data_key)
    session.reset()
    assert not runner.busy() and not baseline_children()
    assert runner.results["lmnn"].status == "cancelled"
    assert runner.fit("lmnn", digits, session.settings.data_key)
    session.close()
    assert not runner.busy() and not baseline_children()
    assert not runner.fit("lmnn", digits, session.settings.data_key)  # a closed session starts nothing


def test_close_removes_the_upload_folder(monkeypatch):
    monkeypatch.setenv("HRAML_DASHBOARD_UMAP", "0")
    s = Session()
    d = s.upload_dir()
    (d / "x.csv").write_text("a,b\n1,2\n")
    s.close()
    assert not d.exists() and s.closed
