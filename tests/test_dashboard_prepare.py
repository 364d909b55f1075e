"""Data preparation for the dashboard: split, SVD for sparse inputs, scaler fit on train only."""

import numpy as np
import pytest
import scipy.sparse as sp


from hraml_dashboard.prepare import prepare_dataset
from hraml_core.data import Dataset, load_dataset


def test_digits_split_is_stratified_seeded_and_scaled_on_train():
    ds = load_dataset("digits")
    p = prepare_dataset(ds, test_size=0.3, seed=0)
    assert p.task == "classification" and p.n_samples == 1797
    assert len(p.train_index) + len(p.val_index) == 1797
    assert not set(p.train_index) & set(p.val_index)
    assert abs(len(p.val_index) - 0.3 * 1797) <= 1
    # stratified: class proportions match
    tr = np.bincount(p.Y_train) / len(p.Y_train)
    va = np.bincount(p.Y_val) / len(p.Y_val)
    assert np.abs(tr - va).max() < 0.02 and p.stratified
    # scaler fit on the training part only
    assert p.X_train.dtype == np.float32
    np.testing.assert_allclose(p.X_train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(p.preprocessor.scale_mean_, ds.X[p.train_index].mean(0))
    np.testing.assert_allclose(p.transform(ds.X[p.val_index]), p.X_val, atol=1e-5)
    # seeded
    q = prepare_dataset(ds, test_size=0.3, seed=0)
    np.testing.assert_array_equal(p.train_index, q.train_index)
    # targets and rows are read-only; the features are writeable so that the trainer shares them
    assert not p.Y_train.flags.writeable and not p.train_index.flags.writeable
    assert p.X_train.flags.writeable and p.X_train.flags.c_contiguous
    assert "train 1257 / held-out 540" in p.summary()


def test_sparse_inputs_are_reduced_by_svd_fit_on_train():
    rng = np.random.default_rng(0)
    X = sp.random(300, 500, density=0.02, format="csr", random_state=0)
    y = rng.integers(0, 3, 300)
    ds = Dataset(name="sparse", X=X, Y=y, task="classification")
    p = prepare_dataset(ds, max_dims=20)
    assert p.X_train.shape == (210, 20) and p.preprocessor.components_.shape == (20, 500) and p.reduced
    assert any("TruncatedSVD" in n for n in p.notes)
    np.testing.assert_allclose(p.transform(X[p.val_index]), p.X_val, atol=1e-4)


def test_multilabel_targets_pass_through():
    ds = load_dataset("synthetic_multilabel")
    p = prepare_dataset(ds)
    assert p.task == "multilabel" and p.Y_train.ndim == 2 and not p.stratified


def test_subsampling_and_bad_inputs():
    ds = load_dataset("digits")
    p = prepare_dataset(ds, max_samples=500)
    assert len(p.train_index) + len(p.val_index) == 500 and p.notes
    tiny = Dataset(name="tiny", X=np.zeros((4, 2)), Y=np.array([0, 1, 0, 1]), task="classification")
    with pytest.raises(ValueError, match="too few"):
        prepare_dataset(tiny)
    with pytest.raises(ValueError):
        prepare_dataset(ds, test_size=1.5)


def test_a_label_column_of_mostly_lone_classes_is_pointed_out():
    """Row IDs or prices read as classes: a warning for the page (the words `hraml train` prints)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    ids = Dataset(name="ids", X=X, Y=np.r_[np.arange(30), np.zeros(10, int)], task="classification")
    (warning,) = prepare_dataset(ids).warnings
    assert warning.startswith("29 of 40 rows are the only row of their class (30 classes)")
    half = Dataset(name="half", X=X, Y=np.arange(40) % 25, task="classification")  # 10 lone rows of 40
    assert prepare_dataset(half).warnings == ()
