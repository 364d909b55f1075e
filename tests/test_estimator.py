import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from hraml_core import HRAML
from hraml_core.evaluate import knn_accuracy

# Small and quick: the checks fit dozens of times.
CHECKED = HRAML(max_epochs=3, hidden=(16,), dim=8, random_state=0)
#: scikit-learn checks skipped, with the reason. None at present: every check passes.
SKIPPED_CHECKS: dict[str, str] = {}


@parametrize_with_checks([CHECKED], expected_failed_checks=lambda est: SKIPPED_CHECKS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=120, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.normal(size=(n, d)) + 3 * np.eye(classes, d)[y], y


@pytest.mark.slow
def test_default_hraml_keeps_its_level_on_digits():
    """A regression guard, not an acceptance test: the defaults were tuned on digits, so this only
    says they still give >= 98.3% 1-NN accuracy there over seeds 0-4 (StandardScaler fit on train,
    stratified 70/30; Euclidean 1-NN gets about 97.1%). The acceptance test is the next one."""
    X, y = load_digits(return_X_y=True)
    accs, raw = [], []
    for seed in range(5):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
        model = HRAML(random_state=seed).fit(Xtr, ytr)
        accs.append(KNeighborsClassifier(1).fit(model.transform(Xtr), ytr).score(model.transform(Xte), yte))
        raw.append(KNeighborsClassifier(1).fit(Xtr, ytr).score(Xte, yte))
    assert np.mean(raw) == pytest.approx(0.971, abs=0.005)
    assert np.mean(accs) >= 0.983, accs


@pytest.mark.slow
@pytest.mark.data
def test_defaults_beat_raw_features_on_data_they_were_never_tuned_on(shared_data):
    """Acceptance: MnistData_05 (the paper's 3495-sample MNIST, added after the defaults were
    chosen) was never used to tune anything. On three stratified 70/30 splits the default HRAML
    beats Euclidean 1-NN on the standardised pixels on every split, by 0.06 on average when this
    test was written (standard error 0.003 over five splits); the bar is half of that."""
    from hraml_core.data import load_dataset

    ds = load_dataset("MnistData_05", data_dir=shared_data)
    X, y = np.asarray(ds.X, dtype=np.float64), ds.Y
    gains = []
    for seed in range(3):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
        model = HRAML(random_state=seed).fit(Xtr, ytr)
        learned = KNeighborsClassifier(1).fit(model.transform(Xtr), ytr).score(model.transform(Xte), yte)
        raw = KNeighborsClassifier(1).fit(Xtr, ytr).score(Xte, yte)
        gains.append(learned - raw)
    assert min(gains) > 0 and np.mean(gains) >= 0.03, gains


def test_fitted_attributes_and_pair_count():
    X, y = blobs(n=100)
    model = HRAML(hidden=(8,), dim=4, batch_size=50, max_epochs=3, random_state=0).fit(X, y)
    assert model.task_ == "classification"
    assert list(model.classes_) == [0, 1, 2]
    assert model.n_iter_ == 3 and model.n_steps_ == 6  # 100 / 50 = 2 steps per epoch
    assert model.n_pairs_seen_ == 6 * (50 * 49 // 2)
    assert len(model.loss_curve_) == 3
    assert model.relation_scale_ == 1.0
    Z = model.transform(X)
    assert Z.shape == (100, 4)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-6)


def test_string_labels_multilabel_and_distribution_targets():
    X, y = blobs(n=90)
    names = np.array(["cat", "dog", "eel"])[y]
    assert list(HRAML(max_epochs=2, random_state=0).fit(X, names).classes_) == ["cat", "dog", "eel"]
    Y_ml = np.eye(3)[y].astype(int)
    Y_ml[::4, 0] = 1
    assert HRAML(max_epochs=2, random_state=0).fit(X, Y_ml).task_ == "multilabel"
    D = np.full((90, 3), 0.1) + 0.7 * np.eye(3)[y]
    model = HRAML(max_epochs=2, random_state=0).fit(X, D)
    assert model.task_ == "distribution" and not hasattr(model, "classes_")


@pytest.mark.parametrize(
    "X_change, Y, message",
    [
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), None, "NaN"),
        (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), None, "infinity"),
        (lambda X: X[:-1], None, "inconsistent numbers of samples"),
        (lambda X: X, np.zeros(120), "single class"),
        (lambda X: X[:0], None, "0 sample"),
        # label sets as lists (scikit-learn's own message for them is numpy's about shapes)
        (lambda X: X, [["a", "b"], ["c"], ["a"]] * 40, r"one sequence per row \(row 0: \['a', 'b'\]\)"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_problem(X_change, Y, message):
    X, y = blobs()
    with pytest.raises(ValueError, match=message):
        HRAML(max_epochs=1).fit(X_change(X), y if Y is None else Y)


def test_a_device_this_machine_lacks_is_refused_before_anything_is_written(tmp_path, capsys):
    from hraml_core.cli import main

    # On a machine without CUDA, "cuda"; with it, a GPU index past its last one.
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    X, y = blobs()
    with pytest.raises(ValueError, match=rf"device '{missing}' is not available here: torch finds"):
        HRAML(max_epochs=1, device=missing).fit(X, y)  # torch's own error is an AssertionError
    assert main(["train", "--device", missing, "--epochs", "1", "--out", str(tmp_path / "m")]) == 2
    assert f"device '{missing}' is not available here" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_rows_that_are_not_distributions_are_rejected_for_the_distribution_task():
    X, y = blobs()
    D = np.full((120, 3), 0.5)
    with pytest.raises(ValueError, match="sum to 1; 120 rows do not"):
        HRAML(max_epochs=1, task="distribution").fit(X, D)
    with pytest.raises(ValueError, match="non-negative"):
        HRAML(max_epochs=1, task="distribution").fit(X, np.tile([1.5, -0.5, 0.0], (120, 1)))
    with pytest.raises(ValueError, match="task must be one of"):
        HRAML(max_epochs=1, task="ranking").fit(X, y)
    with pytest.raises(ValueError, match="max_epochs"):
        HRAML(max_epochs=0).fit(X, y)


def test_save_and_load_round_trip_without_pickle(tmp_path):
    X, y = blobs()
    names = np.array(["a", "b", "c"])[y]
    model = HRAML(hidden=(16, 8), dim=4, max_epochs=3, relation="hamming", random_state=1).fit(X, names)
    path = model.save(tmp_path / "m.safetensors")
    loaded = HRAML.load(path)
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    assert loaded.get_params() == {**model.get_params(), "hidden": (16, 8)}
    assert list(loaded.classes_) == ["a", "b", "c"]
    assert loaded.loss_curve_ == pytest.approx(model.loss_curve_)
    assert loaded.n_pairs_seen_ == model.n_pairs_seen_
    (tmp_path / "junk.safetensors").write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a readable HRAML model file"):
        HRAML.load(tmp_path / "junk.safetensors")


def test_output_columns_are_named_and_set_output_gives_a_data_frame(tmp_path):
    """get_feature_names_out names the embedding's columns (dim, plus the inputs with a skip), so
    scikit-learn's set_output works, on a fitted and on a loaded model."""
    import pandas as pd
    from sklearn.exceptions import NotFittedError

    X, y = blobs()
    with pytest.raises(NotFittedError):
        HRAML().get_feature_names_out()
    model = HRAML(hidden=(8,), dim=3, max_epochs=1, random_state=0).fit(X, y)
    assert model.get_feature_names_out().tolist() == ["hraml0", "hraml1", "hraml2"]
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    out = HRAML(hidden=(8,), dim=3, max_epochs=1, random_state=0).set_output(transform="pandas").fit(frame, y).transform(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["hraml0", "hraml1", "hraml2"]
    np.testing.assert_allclose(out.to_numpy(), model.transform(X))
    Y = np.eye(3, dtype=int)[y]
    Y[::4, 0] = 1  # label sets: the default input skip adds the inputs' columns
    multi = HRAML(hidden=(8,), dim=3, max_epochs=1, random_state=0).fit(X, Y)
    names = multi.get_feature_names_out()
    assert len(names) == multi.transform(X).shape[1] == 3 + X.shape[1]
    loaded = HRAML.load(multi.save(tmp_path / "m.safetensors"))
    assert loaded.get_feature_names_out().tolist() == names.tolist()


def test_get_metric_gives_the_same_neighbours_as_the_embedding():
    X, y = blobs(n=60)
    model = HRAML(max_epochs=5, random_state=0).fit(X, y)
    metric = model.get_metric()
    Z = model.transform(X)
    assert metric(X[0], X[1]) == pytest.approx(float(np.linalg.norm(Z[0] - Z[1])), abs=1e-5)
    assert metric(X[0], X[0]) == 0.0
    knn = KNeighborsClassifier(3, metric=metric, algorithm="brute").fit(X[:40], y[:40])
    ref = KNeighborsClassifier(3).fit(Z[:40], y[:40])
    assert (knn.predict(X[40:]) == ref.predict(Z[40:])).all()


def test_early_stopping_keeps_the_best_epoch():
    X, y = blobs(n=300, seed=2)
    model = HRAML(max_epochs=60, early_stopping=True, n_iter_no_change=3, random_state=0).fit(X, y)
    scores = model.validation_scores_
    assert len(scores) == model.n_iter_ < 60
    best = int(np.argmax(scores))
    assert model.n_iter_ - 1 - best == 3  # stopped three epochs after the best one
    assert model.best_validation_score_ == scores[best]
    # The kept weights are the best epoch's: re-scoring the same held-out split gives its score.
    X_fit, X_val, y_fit, y_val = train_test_split(X, y, test_size=0.1, random_state=0, stratify=y)
    again = knn_accuracy(model.transform(X_fit), y_fit, model.transform(X_val), y_val)
    assert again == pytest.approx(scores[best])


def test_divergence_warns_and_keeps_finite_weights():
    X, y = blobs()
    with pytest.warns(ConvergenceWarning, match="learning rate .* too large"):
        model = HRAML(optimizer="sgd", lr=1e12, max_epochs=20, random_state=0).fit(X, y)
    assert np.isfinite(model.transform(X)).all()


def test_each_sampler_fits():
    X, y = blobs()
    for sampler in ("batch", "hard", "pairs"):
        model = HRAML(sampler=sampler, max_epochs=2, batch_size=40, random_state=0).fit(X, y)
        assert model.n_pairs_seen_ > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HRAML(max_epochs=1, random_state=0).fit(X.astype(np.float32), y)


def test_train_config_is_what_fit_trains_with():
    model = HRAML(hidden="32,16", dim=8, lr=0.01, sampler="hard", relation="jaccard", weight_decay=0.0, random_state=3)
    config = model.train_config()
    assert (config.hidden, config.dim, config.lr, config.sampler, config.relation, config.seed) == (
        (32, 16), 8, 0.01, "hard", "jaccard", 3)
    assert model.train_config(seed=7).seed == 7
    with pytest.raises(ValueError, match="hidden must be integers"):
        HRAML(hidden="32,x").train_config()
