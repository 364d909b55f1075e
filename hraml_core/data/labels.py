"""Turning raw label arrays read from files into what :class:`~hraml_core.data.Dataset` expects."""
from __future__ import annotations

import numpy as np

from hraml_core.tasks import CLASSIFICATION, MULTILABEL, TASKS, detect_task

from .errors import dataset_error, plural


#: Separators of a set of tags written in one text label column ("rock;pop", "rock|pop"), looked for
#: in this order.
TAG_SEPARATORS = (";", "|")


def tag_sets(Y, task: str = "auto", where=None) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """One text label column of tag sets -> (0/1 indicator matrix, tag names in column order), or
    None when the column holds classes (or is not text).

    The column holds tag sets when ``task`` is "multilabel" (a value without a separator is one
    tag), or when it is "auto" and some value joins tags with one of :data:`TAG_SEPARATORS`: the
    first of them found in the column splits every row; a column whose values are lists (Parquet's
    ``list<string>``) holds one set per row as it is. Tags are stripped of surrounding spaces (a
    value of separators only is a row with no tag; the file loaders report an empty cell as a
    missing label). scikit-learn's ``MultiLabelBinarizer`` makes the matrix.

    >>> Y, names = tag_sets(np.array(["rock; pop", "pop", "jazz|x"]))
    >>> names, Y.tolist()
    (('jazz|x', 'pop', 'rock'), [[0, 1, 1], [0, 1, 0], [1, 0, 0]])
    """
    Y = np.asarray(Y)
    if Y.ndim != 1 or Y.dtype.kind not in "UO" or task not in ("auto", MULTILABEL):
        return None
    if Y.dtype.kind == "O" and any(isinstance(v, (list, tuple, np.ndarray)) for v in Y[:1000]):
        sets = _listed_sets(Y, where)  # a column of lists (Parquet's list<string>): the sets as they are
    else:
        text = Y.astype(str)
        sep = next((s for s in TAG_SEPARATORS if (np.char.find(text, s) >= 0).any()), None)
        if sep is None and task != MULTILABEL:
            return None
        sets = [[t for t in (v.strip() for v in (value.split(sep) if sep else [value])) if t] for value in text]
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer(sparse_output=True)
    M = binarizer.fit_transform(sets)
    if M.shape[1] == 0:
        raise dataset_error(where, "no tags: every value of the label column is empty")
    return M.toarray().astype(np.int8), tuple(str(c) for c in binarizer.classes_)


def _listed_sets(Y: np.ndarray, where) -> list[list[str]]:
    """Each row's tags from a column whose values are lists of tags (an empty list: no tag)."""
    missing = [i for i, v in enumerate(Y) if v is None or (isinstance(v, float) and np.isnan(v))]
    if missing:
        raise dataset_error(where, f"missing labels: {plural(len(missing), 'row')} without a list of tags, the first "
                                   f"is row {missing[0]} (0-based)")
    return [[t for t in (str(x).strip() for x in v) if t] for v in Y]


def prepare_labels(Y, task: str = "auto", where=None) -> tuple[np.ndarray, str]:
    """Raw labels -> (labels, task): 1-D class labels, or a 0/1 matrix (``-1/1`` mapped to ``0/1``)."""
    if hasattr(Y, "toarray"):
        Y = Y.toarray()
    Y = np.asarray(Y)
    if Y.size == 0:
        raise dataset_error(where, "missing labels: the label array is empty")
    if task != "auto" and task not in TASKS:
        raise dataset_error(where, f"unknown task {task!r}; expected 'auto' or one of {', '.join(TASKS)}")
    if task in ("auto", MULTILABEL) and Y.ndim == 2 and Y.shape[1] > 1 and Y.dtype.kind in "biuf":
        finite = Y[np.isfinite(Y)] if Y.dtype.kind == "f" else Y
        if finite.size and finite.min() == -1 and np.all((finite == -1) | (finite == 1)):
            Y = np.where(Y == -1, 0, Y)  # the MATLAB -1/1 convention of multi-label files; NaN stays NaN
    if task == "auto":
        if Y.ndim == 2 and Y.shape[1] > 1 and Y.dtype.kind not in "biuf":
            raise dataset_error(where, "a label matrix with several columns must be numeric")
        try:
            task = detect_task(Y)
        except ValueError as exc:
            raise dataset_error(where, str(exc)) from None
    if task == CLASSIFICATION:
        if Y.ndim == 2 and Y.shape[1] == 1:
            Y = Y[:, 0]
        if Y.ndim == 2 and Y.shape[0] == 1:
            Y = Y[0]
        if Y.dtype.kind == "f" and np.all(np.isfinite(Y)):
            if np.all(Y == np.round(Y)):
                Y = Y.astype(np.int64)
            else:  # a quantity, or one column of several meant together: no evaluator takes these as classes
                example = Y[np.flatnonzero(Y != np.round(Y))[0]]
                raise dataset_error(
                    where, f"the class labels are non-integer numbers (e.g. {example:g}; {len(np.unique(Y)):,} "
                    "distinct values): classes must be discrete values; for label distributions or label sets, "
                    "name all of their columns as the label columns")
        return Y, task
    return Y, task


def lone_classes_warning(Y, task: str) -> str | None:
    """A warning when more than half of the rows are the only row of their class, else None.

    Such a label column is most likely an identifier or a quantity (a price, a measurement) read
    as classes: a held-out row's class is then rarely seen in training, and a neighbour-based
    accuracy near zero says nothing about the metric. Files are still read as given.

    >>> lone_classes_warning(np.arange(6), "classification")[:40]
    '6 of 6 rows are the only row of their cl'
    >>> lone_classes_warning(np.array([0, 0, 1, 1]), "classification") is None
    True
    """
    if task != CLASSIFICATION or len(Y) == 0:
        return None
    _, counts = np.unique(np.asarray(Y), return_counts=True)
    lone = int((counts == 1).sum())
    if lone * 2 <= len(Y):
        return None
    return (f"{lone:,} of {len(Y):,} rows are the only row of their class ({len(counts):,} classes): the label "
            "column looks like an identifier or a quantity rather than classes, and a held-out row's class is "
            "then rarely seen in training")
