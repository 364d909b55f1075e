import dataclasses
import random
import threading

import numpy as np
import pytest
import torch

from hraml_core.trainer import Trainer
from support import wait_for
from hraml_core.training import TrainConfig

SMALL = TrainConfig(hidden=(16,), dim=8, batch_size=32, lr=1e-2, seed=0)


def blobs(n=150, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.normal(size=(n, d)) + 3 * np.eye(classes, d)[y], y


def train_threads():
    return [t for t in threading.enumerate() if "train" in t.name and t.is_alive()]


@pytest.fixture
def trainer():
    X, y = blobs()
    t = Trainer(X[:100], y[:100], SMALL, X_val=X[100:], Y_val=y[100:], publish_every_s=0.02, eval_every_s=0.05)
    yield t
    t.stop()
    assert not t.is_alive()


def test_lifecycle_start_pause_resume_stop_reset(trainer):
    snap = trainer.snapshot()
    assert snap.status == "idle" and snap.step == 0
    assert trainer.start() is True
    assert trainer.start() is False  # already running: no second thread
    assert len([t for t in train_threads() if t.name == trainer.name]) == 1
    assert wait_for(lambda: trainer.snapshot().step > 20)

    assert trainer.pause() is True  # returns once the thread has stopped stepping
    frozen = trainer.run.state.step
    snap = trainer.snapshot()
    assert snap.status == "paused" and snap.step == frozen  # the step it stopped at is published
    assert trainer.pause() is False  # already paused: nothing to do

    trainer.resume()
    assert wait_for(lambda: trainer.snapshot().step > frozen + 10)
    trainer.stop()
    snap = trainer.snapshot()
    assert snap.status == "stopped" and not trainer.is_alive()
    assert snap.step == trainer.run.state.step
    assert len(snap.metric_values) >= 1 and snap.raw_metric is not None

    # start after stop continues from the current weights
    step = snap.step
    trainer.start()
    assert wait_for(lambda: trainer.snapshot().step > step + 5)
    trainer.reset()
    snap = trainer.snapshot()
    assert snap.status == "idle" and snap.step == 0 and len(snap.loss_values) == 0
    assert not trainer.is_alive()


def test_snapshot_is_immutable_and_ordered_by_label(trainer):
    trainer.start()
    assert wait_for(lambda: trainer.snapshot().step > 5)
    snap = trainer.snapshot()
    assert snap.A.shape == snap.E.shape == (100, 100)  # probe capped at the training size
    for arr in (snap.A, snap.E, snap.embeddings, snap.loss_values, snap.probe_labels):
        assert not arr.flags.writeable
    assert list(snap.probe_labels) == sorted(snap.probe_labels)
    assert set(np.unique(snap.E)) == {0.0, 2.0}
    assert np.allclose(np.diag(snap.A), 0) and (snap.A >= 0).all()
    assert snap.embeddings.shape == (100, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.step = 3
    assert "train" in trainer.name


def test_probe_is_at_most_300_samples():
    X, y = blobs(n=500)
    t = Trainer(X, y, SMALL)
    assert t.snapshot().A.shape == (300, 300)
    assert t.snapshot().embeddings.shape[0] == 500


def test_concurrent_controls_never_make_a_second_thread(trainer):
    peak = []
    errors = []

    def hammer(seed):
        rng = random.Random(seed)
        actions = [trainer.start, trainer.pause, trainer.resume, trainer.stop, trainer.start]
        try:
            for _ in range(150):
                rng.choice(actions)()
                peak.append(len([t for t in train_threads() if t.name == trainer.name]))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    assert max(peak) == 1
    trainer.stop()
    assert train_threads() == [] or all(t.name != trainer.name for t in train_threads())


def test_finished_after_max_epochs_and_reproducible():
    X, y = blobs()
    runs = []
    for _ in range(2):
        t = Trainer(X, y, SMALL, max_epochs=4, publish_every_s=0.01)
        t.start()
        t.join(20)
        snap = t.snapshot()
        assert snap.status == "finished"
        assert snap.step == 4 * 5  # 150 samples / batch 32 -> 5 steps per epoch
        assert t.start() is False
        runs.append((snap.loss_values.copy(), t.run.state_dict()))
    assert np.array_equal(runs[0][0], runs[1][0])
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k])


def test_nan_loss_fails_clearly_and_keeps_finite_weights():
    X, y = blobs()
    t = Trainer(X, y, SMALL.replace(optimizer="sgd", lr=1e12))
    t.start()
    assert wait_for(lambda: t.snapshot().status == "failed")
    snap = t.snapshot()
    assert "learning rate (1e+12) is too large" in snap.message and "restored" in snap.message
    assert all(torch.isfinite(v).all() for v in t.run.state_dict().values())
    assert np.isfinite(t.embed(X)).all()
    t.stop()


def test_to_estimator_copies_current_weights(trainer):
    trainer.start()
    assert wait_for(lambda: trainer.snapshot().step > 10)
    trainer.stop()
    model = trainer.to_estimator()
    np.testing.assert_allclose(model.transform(trainer.X[:5]), trainer.embed(trainer.X[:5]), atol=1e-6)
    assert model.n_steps_ == trainer.run.state.step
    assert list(model.classes_) == [0, 1, 2]


def test_bad_input_is_rejected():
    X, y = blobs()
    with pytest.raises(ValueError, match="rows"):
        Trainer(X, y[:-1], SMALL)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Trainer(Xn, y, SMALL)
    with pytest.raises(ValueError, match="single class"):
        Trainer(X, np.zeros(len(X)), SMALL)


def test_held_out_targets_are_checked_against_the_training_ones():
    X, y = blobs()
    with pytest.raises(ValueError, match="X_val and Y_val go together: Y_val is missing"):
        Trainer(X, y, SMALL, X_val=X[:10])
    with pytest.raises(ValueError, match="X_val and Y_val go together: X_val is missing"):
        Trainer(X, y, SMALL, Y_val=y[:10])
    # labels of another kind would give a metric of 0 and no error
    with pytest.raises(ValueError, match=r"the held-out class labels are text \('1'\) and the training labels "
                                         r"numbers \(0, 1, 2\): no held-out row"):
        Trainer(X, y, SMALL, X_val=X[:10], Y_val=np.full(10, "1"))
    with pytest.raises(ValueError, match=r"are numbers \(1, 2\) and the training labels text \('a', 'b', 'c'\)"):
        Trainer(X, np.array(list("abc"))[y], SMALL, X_val=X[:4], Y_val=np.array([1, 2, 1, 2], dtype=object))
    with pytest.warns(UserWarning, match=r"^2 held-out rows have classes that the training labels lack \(7\)"):
        Trainer(X, y, SMALL, X_val=X[:4], Y_val=np.array([0, 7, 1, 7]))
    # a held-out part may hold one class (training needs two); a column of labels is 1-D labels
    assert Trainer(X, y, SMALL, X_val=X[:5], Y_val=np.ones((5, 1), dtype=int)).Y_val.tolist() == [1] * 5
    assert Trainer(X, y.reshape(-1, 1), SMALL).y_raw.tolist() == y.tolist()
    Y = np.eye(3)[y]
    Y[::4, 0] = 1  # label sets
    with pytest.raises(ValueError, match="the held-out label matrix has 4 columns, the training one 3"):
        Trainer(X, Y, SMALL, X_val=X[:5], Y_val=np.ones((5, 4)))
    assert Trainer(X, Y, SMALL, X_val=X[:5], Y_val=np.ones((5, 3))).Y_val.shape == (5, 3)  # all alike: fine
    with pytest.raises(ValueError, match="0/1 indicator matrix"):
        Trainer(X, Y, SMALL, X_val=X[:5], Y_val=np.full((5, 3), 0.5))


def test_long_loss_curves_are_binned_by_mean():
    from hraml_core.curves import bin_curve

    x, y = bin_curve(np.arange(1, 11), np.arange(10.0), 4)  # bins of 2, 3, 2, 3 points
    assert x.tolist() == [1.5, 4.0, 6.5, 9.0] and y.tolist() == [0.5, 3.0, 5.5, 8.0]
    same = bin_curve([1, 2], [3, 4], 5)
    assert same[0].tolist() == [1.0, 2.0] and same[1].tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="x has 3 points but y has 2"):
        bin_curve([1, 2, 3], [1, 2], 2)
