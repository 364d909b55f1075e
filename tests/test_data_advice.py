"""Warnings about data that reads fine but is likely not what was meant (hraml_core.data.advice)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from hraml_core.data import Dataset
from hraml_core.data.advice import MIN_SHUFFLED_ROWS, dataset_warnings, row_counter_columns, shuffled_row_index_columns


def test_row_counter_columns_are_the_columns_counting_the_rows_in_order():
    X = np.array([[0, 1, 7.5, 2], [1, 2, 7.5, 0], [2, 3, 7.5, 1], [3, 4, 7.5, 3]], dtype=float)
    assert row_counter_columns(X, ("id", "number", "c", "shuffled")) == ["id", "number"]
    assert row_counter_columns(X) == ["column 0", "column 1"]
    assert row_counter_columns(np.array([[5.0, 0], [6.0, 1], [7.0, 2]]), ("from five", "x")) == ["x"]
    assert row_counter_columns(np.array([[0.0], [1.0]]), ("two rows",)) == []  # too few to tell
    assert row_counter_columns(sp.csr_matrix(X)) == []


def test_dataset_warnings_name_the_columns_and_the_label_column_of_ids():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.arange(40), rng.normal(size=40), np.arange(1, 41)])
    ds = Dataset("indexed", X, np.arange(40) % 4, "classification", feature_names=("id", "x", "row"))
    assert dataset_warnings(ds) == (
        "feature columns 'id', 'row' count the rows (0, 1, 2, ...): a row index read as a feature gives the "
        "rows' order away; leave it out with ignore_columns (hraml train --ignore-columns)",)
    ids = Dataset("ids", X[:, 1:2], np.arange(40), "classification", feature_names=("x",))
    assert len(dataset_warnings(ids)) == 1 and dataset_warnings(ids)[0].startswith("40 of 40 rows are the only row")
    assert dataset_warnings(Dataset("fine", X[:, 1:2], np.arange(40) % 4, "classification")) == ()


def test_a_row_index_kept_through_a_shuffle_is_pointed_out():
    rng = np.random.default_rng(0)
    n = 40
    order = rng.permutation(n)
    X = np.column_stack([order, order + 1, np.arange(n), rng.normal(size=n), np.r_[order[:-1], n + 5],
                         np.r_[order[:-1], order[0]]]).astype(float)
    names = ("id", "from one", "counter", "x", "gap", "twice")
    # a shuffle of 0..n-1 and of 1..n; not the counter in order (row_counter_columns says it), not
    # a column missing a number or holding one twice
    assert shuffled_row_index_columns(X, names) == ["id", "from one"]
    assert shuffled_row_index_columns(X[: MIN_SHUFFLED_ROWS - 1]) == []  # too few rows to tell from chance
    assert shuffled_row_index_columns(sp.csr_matrix(X)) == []
    y = np.where(order < n // 2, 0, 1)  # the rows were sorted by class before the shuffle
    ds = Dataset("shuffled", X[:, [0, 3]], y, "classification", feature_names=("id", "x"))
    assert dataset_warnings(ds) == (
        "feature column 'id' holds each row number once, shuffled (a row index kept through a shuffle): it "
        "identifies the rows and carries their order before the shuffle; leave it out with ignore_columns "
        "(hraml train --ignore-columns)",)

