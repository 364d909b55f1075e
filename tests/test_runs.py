"""Run directories (hraml_core.runs): the format, reading runs that are being written, and a run
written by each of the four writers (Trainer, HRAML(log_dir=), `hraml train --out`, torchrun)."""
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist

from hraml_core import HRAML
from hraml_core.runs import RunWriter, list_runs, open_run, prepare_run
from hraml_core.runs.format import (
    FORMAT, PROBE_FILE, RUN_FILE, SCALARS_FILE, SNAPSHOT_DIR, VERSION, step_file, step_of, write_json_atomic,
)
from hraml_core.runs.recorder import choose_probe, square_distances
from hraml_core.tasks import encode_targets
from hraml_core.trainer import Trainer
from hraml_core.training import TrainConfig
from support import free_port, wait_for

SMALL = TrainConfig(hidden=(16,), dim=8, batch_size=32, lr=1e-2, seed=0)


def blobs(n=150, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return (rng.normal(size=(n, d)) + 3 * np.eye(classes, d)[y]).astype(np.float32), y


def hand_written_run(path, steps=3, **kwargs):
    """A finished run of 3 probe rows and 4 display rows, with snapshots at steps 0 and ``steps``."""
    w = RunWriter(path, config={"relation": "l1", "lr": 0.5}, task="classification", metric="accuracy",
                  dataset={"name": "toy"}, source="test", **kwargs)
    w.write_probe(np.array([[0, 2, 2], [2, 0, 0], [2, 0, 0]]), [5, 1, 7], [0, 1, 1], [1, 2, 5, 7], [1, 0, 0, 1],
                  classes=["cat", "dog"], relation_scale=1.0)
    for s in range(1, steps + 1):
        w.log(s, time=100.0 + s, loss=1.0 / s, epoch=s / 2)
    w.log(steps, time=200.0, accuracy=0.75)
    w.snapshot(0, np.full((3, 3), 1.0), np.zeros((4, 2)), time=100.0, epoch=0.0)
    w.snapshot(steps, np.eye(3) * 0 + 0.5, np.arange(8).reshape(4, 2), time=150.0, epoch=steps / 2, loss=1.0 / steps,
               metric=0.75)
    return w


# -- the format ------------------------------------------------------------------------------------
def test_step_file_names_sort_as_steps_and_other_names_are_not_steps():
    names = [step_file(s) for s in (10, 9, 123456789, 0)]
    assert sorted(names) == [step_file(s) for s in (0, 9, 10, 123456789)]
    assert [step_of(n) for n in names] == [10, 9, 123456789, 0]
    assert step_of(".step-000000010.safetensors.1a2b.tmp") is None
    assert step_of(PROBE_FILE) is None and step_of("step-12.safetensors") is None
    with pytest.raises(ValueError, match="step is >= 0"):
        step_file(-1)


def test_a_hand_written_run_reads_back_exactly(tmp_path):
    path = tmp_path / "toy"
    hand_written_run(path).finish("finished", "done")
    run = open_run(path)
    assert (run.name, run.status, run.state, run.message, run.task, run.metric) == (
        "toy", "finished", "finished", "done", "classification", "accuracy")
    assert run.config == {"relation": "l1", "lr": 0.5} and run.dataset == {"name": "toy"}
    assert not run.is_live()
    df = run.scalars
    assert df["step"].tolist() == [1, 2, 3, 3] and df["step"].dtype == np.int64
    assert df["loss"].tolist()[:3] == [1.0, 0.5, 1 / 3] and np.isnan(df["loss"].iloc[3])
    assert df["accuracy"].iloc[3] == 0.75 and df["time"].tolist() == [101.0, 102.0, 103.0, 200.0]
    # The notebook's two lines read the same table.
    pd.testing.assert_frame_equal(pd.read_json(path / "scalars.jsonl", lines=True), df, check_like=True, check_dtype=False)
    assert run.snapshot_steps == (0, 3)
    snap = run.snapshot(3)
    assert (snap.step, snap.time, snap.epoch, snap.loss, snap.metric) == (3, 150.0, 1.5, 1 / 3, 0.75)
    np.testing.assert_array_equal(snap.E, [[0, 2, 2], [2, 0, 0], [2, 0, 0]])
    np.testing.assert_array_equal(snap.A, np.full((3, 3), 0.5))
    np.testing.assert_array_equal(snap.embeddings, np.arange(8).reshape(4, 2))
    assert snap.A.dtype == snap.E.dtype == snap.embeddings.dtype == np.float32 and not snap.A.flags.writeable
    assert snap.probe_labels.tolist() == ["cat", "dog", "dog"] and snap.embedding_labels.tolist() == ["dog", "cat", "cat", "dog"]
    assert snap.probe_index.tolist() == [5, 1, 7] and snap.embedding_index.tolist() == [1, 2, 5, 7]
    assert run.snapshot(0).loss is None and run.snapshot(3) is snap  # decoded once
    assert run.nearest_snapshot_step(2) == 0 and run.nearest_snapshot_step(99) == 3
    with pytest.raises(KeyError, match="no snapshot at step 2"):
        run.snapshot(2)
    p = run.progress
    assert (p["step"], p["loss"], p["best_metric"], p["best_step"], p["snapshots"]) == (3, 1 / 3, 0.75, 3, 2)


def test_list_runs_summarises_the_runs_under_a_folder(tmp_path):
    hand_written_run(tmp_path / "a").finish()
    hand_written_run(tmp_path / "group" / "b", steps=5).finish("stopped")
    (tmp_path / "group" / "not_a_run").mkdir()
    (tmp_path / "old_model").mkdir()
    (tmp_path / "old_model" / RUN_FILE).write_text('{"dataset": "iris", "metrics": {}}')  # an earlier version's folder
    (tmp_path / ".hidden").mkdir()
    hand_written_run(tmp_path / ".hidden" / "c").finish()
    runs = list_runs(tmp_path)
    assert [r.name for r in runs] == ["a", "group/b"]
    a, b = runs
    assert (a.status, a.dataset, a.relation, a.metric, a.best_metric, a.step, a.snapshots) == (
        "finished", "toy", "l1", "accuracy", 0.75, 3, 2)
    assert (b.status, b.step, b.loss) == ("stopped", 5, 0.2)
    assert list_runs(tmp_path / "a")[0].name == "a"  # the root itself is a run
    with pytest.raises(ValueError, match="not a folder"):
        list_runs(tmp_path / "missing")


def test_open_run_refuses_what_is_not_a_run_it_can_read(tmp_path):
    with pytest.raises(ValueError, match="not a run directory"):
        open_run(tmp_path)
    (tmp_path / RUN_FILE).write_text('{"dataset": "iris"}')
    with pytest.raises(ValueError, match="not an HRAML run"):
        open_run(tmp_path)
    (tmp_path / RUN_FILE).write_text(json.dumps({"format": FORMAT, "version": VERSION + 1}))
    with pytest.raises(ValueError, match=f"version {VERSION + 1}; this hraml reads up to {VERSION}"):
        open_run(tmp_path)


def test_writer_refuses_bad_records(tmp_path):
    w = RunWriter(tmp_path, config={})
    with pytest.raises(ValueError, match="write_probe"):
        w.snapshot(0, np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="E must be 2 x 2"):
        w.write_probe(np.zeros((3, 3)), [0, 1], [0, 0], [0], [0])
    w.write_probe(np.zeros((2, 2)), [0, 1], [0, 0], [0], [0])
    with pytest.raises(ValueError, match="A of 2 x 2 and 1 embedding rows"):
        w.snapshot(0, np.zeros((3, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="cannot be updated"):
        w.update(run_id="mine")
    with pytest.raises(ValueError, match="status must be one of"):
        w.set_status("paused")
    w.log(1, loss=float("nan"), other=np.float32(2.5), flag=True)  # not finite: null
    w.finish()
    row = open_run(tmp_path).scalars.iloc[0]
    assert np.isnan(row["loss"]) and (row["other"], row["flag"]) == (2.5, 1)
    assert '"loss": null' in (tmp_path / SCALARS_FILE).read_text()
    with pytest.raises(ValueError, match="closed"):
        w.log(2, loss=1.0)


def test_scalars_always_have_step_time_and_loss(tmp_path):
    with RunWriter(tmp_path / "empty", config={}) as w:
        assert list(open_run(w.path).scalars.columns) == ["step", "time", "loss"]
    with RunWriter(tmp_path / "metric", config={}) as w:
        w.log(5, time=1.5, accuracy=0.5)
    df = open_run(tmp_path / "metric").scalars
    assert df["step"].tolist() == [5] and df["accuracy"].tolist() == [0.5] and np.isnan(df["loss"].iloc[0])


# -- reading while a run is written ------------------------------------------------------------------
def test_a_half_written_line_is_read_once_it_is_complete(tmp_path):
    hand_written_run(tmp_path).finish()
    run = open_run(tmp_path)
    assert len(run.scalars) == 4
    with open(tmp_path / SCALARS_FILE, "ab") as f:
        f.write(b'{"step": 4, "time": 300.0, "lo')
        f.flush()
        assert run.refresh() is False and len(run.scalars) == 4
        f.write(b'ss": 0.125}\n{"step": 5, "time"')
        f.flush()
        assert run.refresh() is True
        assert run.scalars["step"].tolist() == [1, 2, 3, 3, 4] and run.scalars["loss"].iloc[-1] == 0.125
        f.write(b': 301.0, "loss": 0.0625}\n')
    run.refresh()
    assert run.scalars["loss"].tolist()[-2:] == [0.125, 0.0625] and run.skipped_lines == 0


def test_files_truncated_mid_record_never_make_reading_fail(tmp_path):
    hand_written_run(tmp_path).finish()
    run = open_run(tmp_path)
    scalars = (tmp_path / SCALARS_FILE).read_bytes()
    cut = scalars.index(b"\n", scalars.index(b'"step": 2')) - 5  # inside the second row
    (tmp_path / SCALARS_FILE).write_bytes(scalars[:cut])  # same file, truncated: read again from the start
    run.refresh()
    assert run.scalars["step"].tolist() == [1]
    assert open_run(tmp_path).scalars["step"].tolist() == [1]
    # A complete line that is not JSON (a disk error, a foreign writer) is skipped and counted.
    (tmp_path / SCALARS_FILE).write_bytes(scalars[:cut] + b'garbage\n{"step": 9, "time": 1.0}\n')
    fresh = open_run(tmp_path)
    assert fresh.scalars["step"].tolist() == [1, 9] and fresh.skipped_lines == 1
    # run.json half overwritten in place (the writer never does: it renames whole files into place).
    info = (tmp_path / RUN_FILE).read_bytes()
    (tmp_path / RUN_FILE).write_bytes(info[: len(info) // 2])
    assert run.refresh() in (True, False) and run.status == "finished"
    (tmp_path / RUN_FILE).write_bytes(info)
    # A snapshot file cut short is listed (its name is whole) but reading it says which file is bad.
    snap = tmp_path / SNAPSHOT_DIR / step_file(3)
    snap.write_bytes(snap.read_bytes()[:40])
    (tmp_path / SNAPSHOT_DIR / f".{step_file(4)}.abc.tmp").write_bytes(b"partial")  # a write in progress
    run.refresh()
    assert run.snapshot_steps == (0, 3)
    with pytest.raises(ValueError, match=f"{step_file(3)}: not a readable snapshot"):
        open_run(tmp_path).snapshot(3)


def test_reading_while_a_writer_thread_appends_half_lines(tmp_path):
    hand_written_run(tmp_path).finish()
    run = open_run(tmp_path)
    half, go, done = threading.Event(), threading.Event(), threading.Event()

    def write():
        with open(tmp_path / SCALARS_FILE, "ab") as f:
            for step in range(4, 14):
                line = json.dumps({"step": step, "time": 1.0, "loss": step / 100}).encode() + b"\n"
                f.write(line[:7])
                f.flush()
                half.set()
                go.wait()
                go.clear()
                f.write(line[7:])
                f.flush()
                done.set()
                go.wait()
                go.clear()

    thread = threading.Thread(target=write)
    thread.start()
    for step in range(4, 14):
        assert half.wait(10)
        half.clear()
        run.refresh()
        assert run.scalars["step"].tolist()[-1] == step - 1  # the half line is not there yet
        go.set()
        assert done.wait(10)
        done.clear()
        run.refresh()
        assert run.scalars["step"].tolist()[-1] == step and run.scalars["loss"].iloc[-1] == step / 100
        go.set()
    thread.join(10)
    assert run.skipped_lines == 0


def test_reading_while_a_run_writer_logs_from_another_thread(tmp_path):
    w = RunWriter(tmp_path, config={}, flush_every_s=0.001)
    n = 3000
    wrote = threading.Event()

    def write():
        for step in range(1, n + 1):
            w.log(step, loss=1.0 / step)
        wrote.set()

    thread = threading.Thread(target=write)
    run = open_run(tmp_path)
    seen = []

    def caught_up():
        run.refresh()
        steps = run.scalars["step"].to_numpy()
        np.testing.assert_array_equal(steps, np.arange(1, len(steps) + 1))  # a prefix, in order, no row twice
        seen.append(len(steps))
        return len(steps) == n

    thread.start()
    assert wait_for(caught_up, timeout=60, every=0.001)
    assert wrote.is_set() and run.is_live() and run.state == "running"
    thread.join()
    w.finish()
    run.refresh()
    assert run.status == "finished" and not run.is_live()
    assert run.scalars["loss"].iloc[-1] == 1.0 / n


def test_a_new_run_in_the_same_folder_is_read_from_the_start(tmp_path):
    hand_written_run(tmp_path, steps=5).finish()
    run = open_run(tmp_path)
    old_id = run.run_id
    assert len(run.scalars) == 6 and run.snapshot_steps == (0, 5)
    hand_written_run(tmp_path, steps=2).finish()
    assert run.refresh()
    assert run.run_id != old_id and run.scalars["step"].tolist() == [1, 2, 2] and run.snapshot_steps == (0, 2)
    assert run.snapshot(2).step == 2


def test_a_live_run_is_refused_and_a_silent_one_is_lost(tmp_path):
    w = RunWriter(tmp_path / "r", config={})
    with pytest.raises(ValueError, match="still being written"):
        RunWriter(tmp_path / "r", config={})
    with pytest.raises(ValueError, match="still being written"):
        prepare_run(tmp_path / "r")
    run = open_run(tmp_path / "r")
    assert run.state == "running" and list_runs(tmp_path)[0].status == "running"
    w.finish()
    # A writer that died leaves status running with an old time: the reader calls it lost.
    info = json.loads((tmp_path / "r" / RUN_FILE).read_text())
    write_json_atomic(tmp_path / "r" / RUN_FILE, {**info, "status": "running", "updated": time.time() - 3600})
    run.refresh()
    assert run.status == "running" and run.state == "lost" and not run.is_live()
    assert list_runs(tmp_path)[0].status == "lost"
    RunWriter(tmp_path / "r", config={}).finish()  # a lost run may be replaced


def test_prepared_run_keeps_its_dataset_and_split_for_the_writer_that_starts_it(tmp_path):
    prepare_run(tmp_path, name="mine", source="script", dataset={"name": "iris"}, info={"note": 1},
                split={"test_size": 0.5, "train_rows": [0, 2], "test_rows": [1, 3]})
    assert open_run(tmp_path).status == "created"
    with RunWriter(tmp_path, config={"lr": 1}, task="classification", info={"more": 2}) as w:
        w.log(1, loss=0.5)
    run = open_run(tmp_path)
    assert (run.name, run.info["source"], run.dataset, run.status) == ("mine", "script", {"name": "iris"}, "finished")
    assert run.info["info"]["note"] == 1 and run.info["info"]["more"] == 2
    assert run.split == {"test_size": 0.5, "train_rows": [0, 2], "test_rows": [1, 3]}
    with pytest.raises(RuntimeError):
        with RunWriter(tmp_path, config={}):
            raise RuntimeError("boom")
    run = open_run(tmp_path)
    assert (run.status, run.message) == ("failed", "RuntimeError: boom") and run.split is None  # replaced


def test_probe_choice_and_square_distances():
    Y = encode_targets(np.arange(40) % 4).Y
    p = choose_probe(Y, seed=3, probe_size=10, display_size=25)
    assert len(set(p.index.tolist())) == 10 and np.all(np.diff(p.codes) >= 0)  # ordered by label
    assert np.all(np.diff(p.display_index) > 0) and len(p.display_index) == 25
    np.testing.assert_array_equal(p.codes, Y[p.index].argmax(1))
    Z = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(square_distances(Z), [[0, 25, 1], [25, 0, 20], [1, 20, 0]])


def test_snapshots_keep_within_their_share_of_the_training_time(tmp_path):
    from hraml_core.runs.recorder import RunRecorder
    from hraml_core.training import TrainingRun

    X, y = blobs()
    Y = encode_targets(y).Y
    counts = {}
    for budget in (0.0, None):
        run = TrainingRun(X, Y, "classification", SMALL)
        writer = RunWriter(tmp_path / str(budget), config={})
        rec = RunRecorder(writer, run, X, Y, total_steps=20, n_snapshots=20, max_overhead=budget)
        rec.begin()
        for _ in range(20):
            run.step()
            rec.after_step()
        rec.end()
        writer.finish()
        counts[budget] = open_run(tmp_path / str(budget)).snapshot_steps
    assert counts[0.0] == (0, 20)  # no time for any but the first and the last
    assert counts[None] == tuple(range(21))


# -- writer 1: the background Trainer ----------------------------------------------------------------
def test_trainer_writes_a_run_that_can_be_read_while_it_trains(tmp_path):
    X, y = blobs()
    trainer = Trainer(X[:100], y[:100], SMALL, X_val=X[100:], Y_val=y[100:], publish_every_s=0.02,
                      eval_every_s=0.05, run_dir=tmp_path / "t", run_meta={"dataset": {"name": "blobs"}},
                      snapshot_every_s=0.0)
    assert not (tmp_path / "t").exists()  # nothing is written before the first start
    trainer.start()
    run = open_run(tmp_path / "t")
    try:
        assert wait_for(lambda: run.refresh() is not None and len(run.scalars) >= 30 and len(run.snapshot_steps) >= 3)
        assert run.status == "running" and run.is_live() and trainer.status == "running"
        assert run.snapshot_steps[0] == 0  # the geometry before training
    finally:
        trainer.stop()
    run.refresh()
    state = trainer.run.state
    assert (run.status, run.message, run.dataset, run.metric) == ("stopped", f"stopped at step {state.step}", {"name": "blobs"}, "accuracy")
    df = run.scalars.dropna(subset=["loss"])
    assert df["step"].tolist() == list(range(1, state.step + 1))
    assert df["loss"].tolist() == state.losses  # every checked step, exactly (JSON keeps a float's digits)
    snap, last = trainer.snapshot(), run.snapshot(run.snapshot_steps[-1])
    assert last.step == snap.step == state.step
    np.testing.assert_array_equal(last.A, snap.A)
    np.testing.assert_array_equal(last.E, snap.E)
    np.testing.assert_array_equal(last.embeddings, snap.embeddings)
    np.testing.assert_array_equal(last.probe_labels, snap.probe_labels)
    np.testing.assert_array_equal(last.embedding_index, snap.embedding_index)
    metric = run.scalars.dropna(subset=["accuracy"])
    assert metric["step"].tolist() == snap.metric_steps.tolist() and metric["accuracy"].tolist() == snap.metric_values.tolist()
    assert run.info["raw_metric"] == snap.raw_metric
    assert run.checkpoint_steps == (state.step,)
    np.testing.assert_allclose(run.load_model().transform(X[:10]), trainer.embed(X[:10]), atol=1e-6)

    # Training on continues the same run; a reset closes it and records the new run elsewhere.
    stopped_at = state.step
    trainer.start()
    assert wait_for(lambda: trainer.run.state.step > stopped_at + 5)
    trainer.reset(run_dir=tmp_path / "u")
    run.refresh()
    assert run.status == "stopped" and len(run.checkpoint_steps) == 2
    trainer.start()
    assert wait_for(lambda: trainer.run.state.step > 3)
    trainer.close()
    assert [r.name for r in list_runs(tmp_path)] == ["t", "u"] and open_run(tmp_path / "u").status == "stopped"
    assert not [t for t in threading.enumerate() if t.name.startswith("hraml-run-writer")]  # closed, not leaked


def test_trainer_records_the_end_of_a_finished_run(tmp_path):
    X, y = blobs()
    trainer = Trainer(X, y, SMALL, max_epochs=3, run_dir=tmp_path, snapshot_every_s=1e9)
    trainer.start()
    trainer.join(30)
    assert trainer.status == "finished"
    run = open_run(tmp_path)
    steps = trainer.run.state.step
    assert run.status == "finished" and run.snapshot_steps == (0, steps) and run.checkpoint_steps == (steps,)
    assert run.metric is None and "accuracy" not in run.scalars  # no held-out data, no metric
    assert trainer.start() is False  # finished: nothing more to record


# -- writer 2: the estimator and `hraml train` -------------------------------------------------------
@pytest.fixture
def unbounded_snapshots(monkeypatch):
    """Snapshots on schedule whatever they cost (their time budget would make steps machine-dependent)."""
    import hraml_core.runs.recorder as recorder

    monkeypatch.setattr(recorder, "MAX_OVERHEAD", None)


def test_estimator_log_dir_records_the_fit(tmp_path, unbounded_snapshots):
    X, y = blobs()
    model = HRAML(hidden=(16,), dim=8, batch_size=32, max_epochs=6, random_state=0, log_dir=tmp_path / "fit").fit(X, y)
    run = open_run(tmp_path / "fit")
    assert (run.status, run.message, run.info["source"]) == ("finished", f"6 epochs, {model.n_steps_} steps", "HRAML.fit")
    assert run.config["max_epochs"] == 6 and run.config["hidden"] == [16]
    df = run.scalars
    per_epoch = model.n_steps_ // 6
    assert df["step"].tolist() == list(range(1, model.n_steps_ + 1))
    np.testing.assert_allclose(df["loss"].to_numpy().reshape(6, per_epoch).mean(1), model.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(df["epoch"], df["step"] / per_epoch)
    # Fewer steps than 200: every step has its snapshot, and step 0 the starting point.
    assert run.snapshot_steps == tuple(range(model.n_steps_ + 1))
    last = run.snapshot(model.n_steps_)
    Xf = X.astype(np.float64)
    np.testing.assert_allclose(last.embeddings, model.transform(Xf[last.embedding_index]), atol=1e-5)
    np.testing.assert_allclose(last.A, square_distances(model.transform(Xf[last.probe_index])), atol=1e-5)
    # l1 between one-hot classes is 2 across classes, 0 within; "auto" keeps g (its maximum is 2).
    np.testing.assert_array_equal(last.E, 2.0 * (last.probe_labels[:, None] != last.probe_labels[None, :]))
    assert last.probe_labels.tolist() == sorted(last.probe_labels.tolist()) and len(last.probe_labels) == 150
    np.testing.assert_array_equal(run.load_model().transform(Xf), model.transform(Xf))
    assert run.checkpoint_steps == (model.n_steps_,)


def test_estimator_spreads_200_snapshots_and_logs_the_validation_score(tmp_path, unbounded_snapshots):
    X, y = blobs(n=300)
    model = HRAML(hidden=(16,), dim=8, batch_size=16, max_epochs=30, early_stopping=True, n_iter_no_change=100,
                  random_state=0, log_dir=tmp_path).fit(X, y)
    run = open_run(tmp_path)
    total = 30 * 17  # 270 training rows in batches of 16
    every = -(-total // 200)
    assert model.n_steps_ == total and run.snapshot_steps == tuple(range(0, total + 1, every)) + (total,) * (total % every != 0)
    val = run.scalars.dropna(subset=["val_accuracy"])
    assert val["step"].tolist() == [17 * (e + 1) for e in range(30)]
    assert val["val_accuracy"].tolist() == model.validation_scores_
    assert HRAML(log_dir=tmp_path).get_params()["log_dir"] == tmp_path  # a plain parameter
    assert HRAML.load(model.save(tmp_path / "m.safetensors")).log_dir == str(tmp_path)


def test_estimator_marks_a_failed_fit(tmp_path, monkeypatch):
    import hraml_core.estimator as estimator

    X, y = blobs()

    def explode(*args, **kwargs):
        raise RuntimeError("evaluation exploded")

    monkeypatch.setattr(estimator, "evaluate_embedding", explode)
    with pytest.raises(RuntimeError, match="exploded"):
        HRAML(max_epochs=2, early_stopping=True, log_dir=tmp_path).fit(X, y)
    run = open_run(tmp_path)
    assert (run.status, run.message) == ("failed", "RuntimeError: evaluation exploded")
    assert not [t for t in threading.enumerate() if t.name.startswith("hraml-run-writer")]
    monkeypatch.undo()
    with pytest.warns(Warning, match="stopped early"):
        HRAML(max_epochs=2, lr=1e30, optimizer="sgd", log_dir=tmp_path).fit(X, y)
    run = open_run(tmp_path)
    assert run.status == "finished" and "stopped early" in run.message


def test_hraml_train_out_writes_a_run_that_hraml_evaluate_reads(tmp_path, capsys):
    from hraml_core.cli import main

    out = tmp_path / "iris"
    assert main(["train", "--dataset", "iris", "--epochs", "20", "--out", str(out)]) == 0
    capsys.readouterr()
    run = open_run(out)
    assert (run.status, run.info["source"], run.dataset["name"], run.task) == ("finished", "hraml train", "iris", "classification")
    accuracy = run.info["results"]["metrics"]["accuracy"]
    assert run.scalars["accuracy"].dropna().tolist() == [accuracy] and run.progress["best_metric"] == accuracy
    assert len(run.split["train_rows"]) == 105 and len(run.split["test_rows"]) == 45
    assert run.snapshot_steps[0] == 0 and run.snapshot_steps[-1] == run.scalars["step"].max() == 20
    assert main(["evaluate", str(out)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("accuracy"))
    assert float(line.split()[2]) == pytest.approx(accuracy, abs=5e-5)  # printed to 4 decimals


def test_hraml_evaluate_still_reads_a_model_folder_of_an_earlier_version(tmp_path, capsys):
    from hraml_core.cli import main
    from hraml_core.commands.train import model_folder_info

    out = tmp_path / "iris"
    assert main(["train", "--dataset", "iris", "--epochs", "5", "--out", str(out)]) == 0
    capsys.readouterr()
    flat = model_folder_info(out)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("model.safetensors", "preprocess.safetensors"):
        (legacy / name).write_bytes((out / name).read_bytes())
    (legacy / RUN_FILE).write_text(json.dumps({**flat, "task": "classification", "metrics": {}}))
    assert main(["evaluate", str(out)]) == 0
    new = capsys.readouterr().out.splitlines()[-1]
    assert main(["evaluate", str(legacy)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == new


# -- writer 3: torchrun ---------------------------------------------------------------------------------
def _record_distributed(rank, world, port, out, X, Y):
    from hraml_core.distributed import close_process_group, fit_distributed, run_recorder, shard_rows

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        rows = shard_rows(len(X), rank, world)
        writer = RunWriter(os.path.join(out, "run"), config={}, task="classification") if rank == 0 else None
        recorder = run_recorder(writer, X[rows], Y[rows], row_ids=rows, sync_every=4, max_overhead=None)
        run = fit_distributed(X[rows], Y[rows], "classification", SMALL.replace(optimizer="sgd"), max_epochs=5,
                              recorder=recorder)
        if writer is not None:
            writer.finish()
        torch.save({"losses": run.state.losses, "rows": torch.as_tensor(rows), "steps": run.state.step},
                   os.path.join(out, f"rank{rank}.pt"))
        del run
    finally:
        close_process_group()


@pytest.mark.slow
def test_distributed_rank_0_records_the_loss_averaged_over_the_ranks(tmp_path, gloo):
    X, y = blobs(n=130)
    gloo.spawn(_record_distributed, args=(2, free_port(), str(tmp_path), X, encode_targets(y).Y))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.pt", "rank1.pt", "run"]
    run = open_run(tmp_path / "run")
    steps = ranks[0]["steps"]
    assert steps == 5 * 3  # 65 rows per shard, batch 32
    assert run.scalars["step"].tolist() == list(range(1, steps + 1))  # one writer: no step twice
    np.testing.assert_allclose(run.scalars["loss"], np.mean([ranks[0]["losses"], ranks[1]["losses"]], axis=0), rtol=1e-12)
    np.testing.assert_allclose(run.scalars["epoch"], run.scalars["step"] / 3)
    assert run.snapshot_steps == tuple(range(steps + 1))
    snap = run.snapshot(steps)
    assert set(snap.probe_index.tolist()) <= set(ranks[0]["rows"].tolist())  # rank 0's own rows, as dataset rows
    np.testing.assert_array_equal(snap.probe_labels, y[snap.probe_index])


def _entry_point(rank, world, port, argv):
    """``main`` as torchrun would start it; its exit code and what it wrote to stderr, by rank."""
    from hraml_core.distributed import main

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), CUDA_VISIBLE_DEVICES="")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.mark.slow
def test_torchrun_refuses_a_folder_whose_run_is_being_written_on_every_rank(tmp_path, gloo):
    live = RunWriter(tmp_path / "busy", config={})
    try:
        ranks = gloo.spawn(_entry_point, args=(2, free_port(), ["--dataset", "iris", "--epochs", "1", "--out",
                                                                str(tmp_path / "busy")]))
    finally:
        live.finish()
    assert [code for code, _ in ranks] == [2, 2]
    assert "still being written" in ranks[0][1] and ranks[1][1] == ""  # rank 0 says it, once


@pytest.mark.slow
def test_torchrun_out_dir_is_readable_while_it_trains_then_evaluable(tmp_path):
    out = tmp_path / "digits"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "-m", "hraml_core.distributed", "--dataset", "digits", "--epochs", "60", "--test-size", "0.3",
           "--hidden", "64", "--dim", "16", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen_live = {}

    def live_with_data():
        try:
            run = open_run(out)
        except ValueError:
            return False  # not created yet
        if run.is_live() and len(run.scalars) and run.snapshot_steps:
            seen_live.update(rows=len(run.scalars), snapshots=len(run.snapshot_steps))
            return True
        return proc.poll() is not None  # ended before it was seen live: fails below

    try:
        assert wait_for(live_with_data, timeout=240, every=0.05)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert seen_live, "the run was never seen running with scalars and snapshots"
    run = open_run(out)
    assert run.status == "finished" and run.info["info"]["world_size"] == 2 and run.info["source"] == "torchrun"
    total = run.progress["step"]
    assert run.scalars["step"].dropna().tolist()[: total] == list(range(1, total + 1))
    # From before the first step to after the last, at most the recorder's 200 between; how many
    # depends on the load (snapshots wait while they would take over MAX_OVERHEAD of the training).
    assert run.snapshot_steps[0] == 0 and run.snapshot_steps[-1] == total == 180  # 60 epochs of 3 steps
    assert 2 < len(run.snapshot_steps) <= 202 and seen_live["rows"] < len(run.scalars)
    from hraml_core.cli import main

    assert main(["evaluate", str(out)]) == 0
    assert run.info["results"]["metrics"]["accuracy"] > 0.9
