"""Warnings about a dataset that reads fine but is most likely not what its owner meant.

Files are still used as given; ``hraml train`` prints these and the dashboard shows them beside the
data. :func:`dataset_warnings` is the one list both ask for.
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .labels import lone_classes_warning
from .tabular import LEAVE_OUT


#: Rows from which a column holding each row number once, shuffled, is pointed out: in a few rows
#: small integers form such a set by chance.
MIN_SHUFFLED_ROWS = 20


def _row_number_columns(X, feature_names=()) -> tuple[list[str], list[str]]:
    """Names of the feature columns holding each row number once (0, 1, ..., n - 1 or 1, 2, ..., n):
    in file order, and in another order from :data:`MIN_SHUFFLED_ROWS` rows. One pass for both
    kinds: a column in order has the same least and greatest values as a shuffled one."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] < 3:
        return [], []
    n = X.shape[0]
    low, high = X.min(axis=0), X.max(axis=0)
    in_order, shuffled = [], []
    for j in np.flatnonzero(((low == 0) | (low == 1)) & (high == low + n - 1)):
        name = str(feature_names[j]) if j < len(feature_names) else f"column {j}"
        column = X[:, j]
        if np.all(np.diff(column) == 1):
            in_order.append(name)
        elif n >= MIN_SHUFFLED_ROWS and np.array_equal(np.sort(column), np.arange(low[j], low[j] + n)):
            shuffled.append(name)
    return in_order, shuffled


def row_counter_columns(X, feature_names=()) -> list[str]:
    """Names of the feature columns that count the rows in file order (0, 1, 2, ... or 1, 2, 3, ...).

    Such a column is a row index written out as data (``DataFrame.to_csv`` with a named index, an
    ``id`` column): as a feature it gives the rows' order away, and a file sorted by class then hands
    the classes to the metric. Sparse matrices are not searched (an index column is dense).

    >>> row_counter_columns(np.array([[0, 5.0], [1, 3.0], [2, 4.0]]), ("id", "x"))
    ['id']
    """
    return _row_number_columns(X, feature_names)[0]


def shuffled_row_index_columns(X, feature_names=()) -> list[str]:
    """Names of the feature columns holding each row number once in another order (a shuffle of
    0, 1, ..., n - 1 or of 1, 2, ..., n).

    Such a column is a row index kept through a shuffle (``df.sample(frac=1).to_csv()`` with a
    named index): it identifies every row, and it still carries the order the rows had before the
    shuffle, which is often by class. Columns in order are :func:`row_counter_columns`'; sparse
    matrices are not searched.

    >>> shuffled_row_index_columns(np.column_stack([np.random.default_rng(0).permutation(30), np.ones(30)]), ("id", "x"))
    ['id']
    """
    return _row_number_columns(X, feature_names)[1]


def dataset_warnings(ds: Dataset) -> tuple[str, ...]:
    """What looks wrong in ``ds``: a label column of identifiers (:func:`~hraml_core.data.labels.
    lone_classes_warning`), feature columns that count the rows (:func:`row_counter_columns`) or
    hold them shuffled (:func:`shuffled_row_index_columns`)."""
    out = [lone_classes_warning(ds.Y, ds.task)]
    counters, shuffled = _row_number_columns(ds.X, ds.feature_names)
    if counters:
        names = ", ".join(repr(c) for c in counters)
        out.append(f"feature column{'s' if len(counters) > 1 else ''} {names} count{'' if len(counters) > 1 else 's'} "
                   f"the rows (0, 1, 2, ...): a row index read as a feature gives the rows' order away; {LEAVE_OUT}")
    if shuffled:
        names = ", ".join(repr(c) for c in shuffled)
        out.append(f"feature column{'s' if len(shuffled) > 1 else ''} {names} hold{'' if len(shuffled) > 1 else 's'} "
                   "each row number once, shuffled (a row index kept through a shuffle): it identifies the rows and "
                   f"carries their order before the shuffle; {LEAVE_OUT}")
    return tuple(w for w in out if w)
