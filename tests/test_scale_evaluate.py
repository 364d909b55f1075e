"""Held-out evaluation at any size: chunked and cancellable searches, the live metric's fixed sample
and time budget, the exact evaluation on demand, and pause / stop during an evaluation."""
import threading

import numpy as np
import pytest

import hraml_core.trainer as trainer_module
from hraml_core.evaluate import EvaluationCancelled, evaluate_embedding
from hraml_core.heldout import EvalBudget, full_evaluation, sample_rows
from hraml_core.trainer import Trainer, _stop_live_trainers
from hraml_core.training import TrainConfig

from support import wait_for

SMALL = TrainConfig(hidden=(16,), dim=8, batch_size=32, lr=1e-2, seed=0)


def blobs(n=150, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.normal(size=(n, d)) + 3 * np.eye(classes, d)[y], y


def task_data(task, n, seed=0):
    rng = np.random.default_rng(seed)
    if task == "classification":
        return rng.integers(0, 4, n)
    if task == "multilabel":
        return (rng.random((n, 5)) < 0.4).astype(int)
    D = rng.random((n, 4))
    return D / D.sum(1, keepdims=True)


# -- chunked, cancellable neighbour searches --------------------------------------------------------

@pytest.mark.parametrize("task", ["classification", "multilabel", "distribution"])
def test_chunked_evaluation_equals_one_search_and_reports_progress(task):
    rng = np.random.default_rng(0)
    Zr, Zv = rng.normal(size=(700, 5)).astype(np.float32), rng.normal(size=(300, 5)).astype(np.float32)
    Zr[10] = Zr[11] = Zr[12]  # duplicates: the row itself is left out by index, as scikit-learn does
    Yr, Yv = task_data(task, 700), task_data(task, 300, seed=1)
    seen = []
    chunked = evaluate_embedding(task, Zr, Yr, Zv, Yv, chunk_rows=64, progress=lambda d, t: seen.append((d, t)))
    assert chunked == evaluate_embedding(task, Zr, Yr, Zv, Yv)
    total = 300 + (700 if task == "multilabel" else 0)  # MLkNN also searches each training row's neighbours
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == -(-300 // 64) + (
        -(-700 // 64) if task == "multilabel" else 0)


def test_should_stop_cancels_between_chunks():
    rng = np.random.default_rng(0)
    Zr, Zv = rng.normal(size=(500, 4)), rng.normal(size=(400, 4))
    done = []
    with pytest.raises(EvaluationCancelled, match="after 200 of 400 rows"):
        evaluate_embedding("classification", Zr, task_data("classification", 500), Zv, task_data("classification", 400),
                           chunk_rows=100, progress=lambda d, t: done.append(d), should_stop=lambda: len(done) >= 2)
    assert done == [100, 200]


# -- the live metric's sample ----------------------------------------------------------------------

def test_sample_rows_is_seeded_stratified_and_whole_when_small():
    y = np.repeat([0, 1, 2], [600, 300, 100])
    rows = sample_rows(y, "classification", 100, seed=3)
    assert len(rows) == 100 and np.all(np.diff(rows) > 0)
    assert np.bincount(y[rows]).tolist() == [60, 30, 10]  # each class keeps its share
    assert np.array_equal(rows, sample_rows(y, "classification", 100, seed=3))
    assert not np.array_equal(rows, sample_rows(y, "classification", 100, seed=4))
    assert np.array_equal(sample_rows(y, "classification", 5000, seed=0), np.arange(1000))
    # a class of one row cannot be stratified: a plain seeded draw instead
    lonely = np.r_[np.zeros(99, int), 1]
    assert len(sample_rows(lonely, "classification", 10, seed=0)) == 10
    Y = task_data("multilabel", 50)
    assert len(set(sample_rows(Y, "multilabel", 20, seed=0))) == 20
    with pytest.raises(ValueError, match="at least one row"):
        sample_rows(y, "classification", 0, seed=0)


# -- the time budget ----------------------------------------------------------------------------------

def test_eval_budget_rule_keeps_evaluations_within_their_share():
    budget = EvalBudget(share=0.1, min_interval=1.0)
    assert budget.due(0.0)  # never evaluated: at once
    budget.record(0.0, 0.5)  # 0.5 s: the next after 0.5 * 0.9 / 0.1 = 4.5 s more
    assert budget.wait == pytest.approx(4.5)
    assert not budget.due(4.99) and budget.due(5.0)
    budget.record(5.0, 5.05)  # a fast one: min_interval rules
    assert budget.wait == pytest.approx(1.0) and not budget.due(6.0) and budget.due(6.05)
    with pytest.raises(ValueError, match="share must lie in"):
        EvalBudget(share=0)


def test_eval_budget_in_a_simulated_loop_with_a_fake_clock():
    # A thread whose steps take 10 ms and whose evaluations take 0.8 s, for 200 simulated seconds:
    # the evaluations take 10% of the time (within one step), however slow they are.
    clock = [0.0]
    budget = EvalBudget(share=0.1, min_interval=1.0, clock=lambda: clock[0])
    evaluating = 0.0
    while clock[0] < 200:
        clock[0] += 0.01  # a step
        if budget.due():
            start = clock[0]
            clock[0] += 0.8
            budget.record(start, clock[0])
            evaluating += 0.8
    assert budget.count > 20
    assert evaluating / clock[0] == pytest.approx(0.1, abs=0.01)
    assert evaluating / clock[0] <= 0.1 + 0.01 / 0.8 * 0.1


# -- the trainer -------------------------------------------------------------------------------------

def test_trainer_samples_the_live_metric_and_shows_the_sizes():
    X, y = blobs(n=600)
    t = Trainer(X[:400], y[:400], SMALL, X_val=X[400:], Y_val=y[400:], metric_val_rows=60, metric_ref_rows=90,
                publish_every_s=0.01, eval_every_s=0.01)
    snap = t.snapshot()
    assert snap.metric_sample == (60, 90) and snap.metric_rows == (200, 400)
    assert np.bincount(y[400:][t._val_rows]).tolist() == [20, 20, 20]  # stratified: 1/3 each
    t.start()
    try:
        assert wait_for(lambda: len(t.snapshot().metric_values) >= 2)
    finally:
        t.stop()
    snap = t.snapshot()
    # the raw-feature reference is the same metric on the same sampled rows
    raw = evaluate_embedding("classification", X[:400][t._ref_rows], y[:400][t._ref_rows],
                             X[400:][t._val_rows], y[400:][t._val_rows])["accuracy"]
    assert snap.raw_metric == pytest.approx(raw)
    assert snap.eval_seconds > 0 and 0 < snap.eval_share < 1
    # a small set is used whole, without a copy
    whole = Trainer(X[:100], y[:100], SMALL, X_val=X[100:150], Y_val=y[100:150])
    assert whole.snapshot().metric_sample == (50, 100) and whole._X_ref is whole.X


def test_evaluate_full_is_exact_reports_progress_and_can_be_cancelled():
    X, y = blobs(n=500)
    t = Trainer(X[:350], y[:350], SMALL, X_val=X[350:], Y_val=y[350:], metric_val_rows=20, metric_ref_rows=30)
    seen = []
    got = t.evaluate_full(progress=lambda d, n: seen.append((d, n)))
    model = t.to_estimator()
    expected = evaluate_embedding("classification", model.transform(X[:350]), y[:350], model.transform(X[350:]), y[350:])
    assert got == pytest.approx(expected)
    assert seen[-1] == (350 + 150 + 150, 650)  # rows embedded, then held-out rows searched
    with pytest.raises(EvaluationCancelled):
        t.evaluate_full(should_stop=lambda: True)
    with pytest.raises(ValueError, match="no held-out data"):
        Trainer(X[:50], y[:50], SMALL).evaluate_full()


def test_full_evaluation_of_raw_features_and_multilabel_progress():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(300, 4)), task_data("multilabel", 300)
    seen = []
    got = full_evaluation("multilabel", None, X[:200], Y[:200], X[200:], Y[200:], chunk_rows=64,
                          progress=lambda d, n: seen.append((d, n)))
    assert got == evaluate_embedding("multilabel", X[:200], Y[:200], X[200:], Y[200:])
    assert seen[-1] == (300, 300)


def _endless_evaluation(task, Z_train, Y_train, Z_test, Y_test, k=None, *, should_stop=None, **kw):
    """Stands in for a search on a million rows: it only ends when asked to stop."""
    _endless_evaluation.running = True
    _endless_evaluation.entered.set()
    try:
        while not should_stop():
            threading.Event().wait(0.01)
        raise EvaluationCancelled("stopped")
    finally:
        _endless_evaluation.running = False


@pytest.mark.parametrize("action", ["stop", "pause"])
def test_pause_and_stop_do_not_wait_for_an_evaluation(monkeypatch, action):
    _endless_evaluation.entered = threading.Event()
    monkeypatch.setattr(trainer_module, "evaluate_embedding", _endless_evaluation)
    X, y = blobs()
    t = Trainer(X[:100], y[:100], SMALL, X_val=X[100:], Y_val=y[100:])
    t.start()
    try:
        assert _endless_evaluation.entered.wait(20)  # the thread is inside the (raw-feature) evaluation
        if action == "pause":
            t.pause()
            assert t.snapshot().status == "paused"
            assert wait_for(lambda: not _endless_evaluation.running)  # it gave up at once
            _endless_evaluation.entered.clear()
            t.resume()
            assert _endless_evaluation.entered.wait(20)  # resumed, and evaluating again
        t.stop(timeout=10)  # raises if the thread did not end
    finally:
        if t.is_alive():
            t.stop()
    assert not t.is_alive() and t.snapshot().status == "stopped"


def test_live_trainers_are_stopped_at_exit():
    X, y = blobs()
    t = Trainer(X, y, SMALL)
    t.start()
    assert wait_for(lambda: t.snapshot().step > 0)
    _stop_live_trainers()  # what runs at interpreter exit
    assert not t.is_alive() and t.snapshot().status == "stopped"


def test_cli_evaluate_shows_progress_bars_and_the_exact_metrics(tmp_path, capsys):
    import json

    from hraml_core.cli import main

    out = tmp_path / "wine"
    assert main(["train", "--dataset", "wine", "--epochs", "5", "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out), "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "evaluating HRAML" in captured.err and "evaluating raw features" in captured.err  # tqdm, on stderr
    line = next(l for l in captured.out.splitlines() if l.startswith("accuracy"))
    results = run["results"]  # the run directory keeps the held-out metrics under "results"
    assert float(line.split()[2]) == pytest.approx(results["metrics"]["accuracy"], abs=1e-9)
    assert float(line.split()[3]) == pytest.approx(results["raw_metrics"]["accuracy"], abs=1e-9)
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    assert "evaluating" not in capsys.readouterr().err
    assert main(["evaluate", str(out), "--threads", "0"]) == 2
    assert "--threads must be positive" in capsys.readouterr().err
