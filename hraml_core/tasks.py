"""The three learning tasks HRAML covers, and how targets of each are recognised and encoded.

Every part of the library works on a *label matrix* ``Y`` of shape (n_samples, n_labels):

- ``classification``: one-hot rows built from 1-D class labels (ints or strings);
- ``multilabel``: 0/1 indicator rows;
- ``distribution``: non-negative rows that sum to 1 (label distribution learning).

:func:`detect_task` decides which one a target array is, :func:`encode_targets` turns it into the
label matrix, and both raise a ``ValueError`` that names the problem for targets that fit none.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

CLASSIFICATION = "classification"
MULTILABEL = "multilabel"
DISTRIBUTION = "distribution"
TASKS = (CLASSIFICATION, MULTILABEL, DISTRIBUTION)

#: Rows of a label distribution must sum to 1 within this tolerance.
DISTRIBUTION_ATOL = 1e-3
#: Entries of a label distribution down to minus this are rounding (a proportion computed as 1 minus
#: the others) and read as 0; below it they are negative.
ROUNDING_ATOL = 1e-6


@dataclass(frozen=True)
class EncodedTargets:
    """Targets as the label matrix every component uses, plus what is needed to decode them."""

    task: str
    Y: np.ndarray  # float64, (n_samples, n_labels)
    classes: np.ndarray | None  # class values for classification, else None


def refuse_label_set_sequences(y) -> None:
    """Refuse label sets given one sequence per row (``[["rock", "pop"], ["jazz"]]``, Python sets,
    a pandas column of lists) with a ValueError saying what to pass instead. numpy would make
    ragged ones an error about shapes, and equal-length sets a 1-D array of classes that compare
    by inclusion. A list of equal-length lists stays what it is, a 2-D matrix."""
    if isinstance(y, (list, tuple)):
        rows, column = y, False
    elif getattr(y, "ndim", None) == 1 and getattr(y, "dtype", None) == object:
        rows, column = np.asarray(y), True
    else:
        return
    sequence = (list, tuple, set, frozenset, np.ndarray)
    first = next((i for i, v in enumerate(rows) if isinstance(v, sequence)), None)
    if first is None:
        return
    if not column and not any(isinstance(v, (set, frozenset)) for v in rows):
        if all(isinstance(v, (list, tuple, np.ndarray)) for v in rows) and len({len(v) for v in rows}) == 1:
            return  # rows of a matrix
    row = rows[first]
    shown = sorted(row, key=str) if isinstance(row, (set, frozenset)) else np.asarray(row, dtype=object).tolist()
    raise ValueError(
        f"the targets hold label sets as one sequence per row (row {first}: {shown!r}); label sets are "
        "passed as a 0/1 indicator matrix, one column per label: "
        "sklearn.preprocessing.MultiLabelBinarizer().fit_transform(Y) makes one (its classes_ name the columns)"
    )


def _as_array(y) -> np.ndarray:
    refuse_label_set_sequences(y)
    if hasattr(y, "toarray"):  # scipy.sparse label matrices (Mulan sets are often sparse)
        y = y.toarray()
    return np.asarray(y)


def _is_numeric(y: np.ndarray) -> bool:
    return y.dtype.kind in "biuf"


def detect_task(y) -> str:
    """The task of targets ``y``: the project's one rule (the data loaders use it too).

    1-D targets (or a single column) are class labels. A 2-D 0/1 matrix is a multi-label indicator
    matrix (what scikit-learn's ``type_of_target`` calls "multilabel-indicator"; tested here
    directly, because the data loaders call this and must not import scikit-learn, and because NaN
    entries, which the loaders report as missing labels, are left out of the test). Any other
    numeric 2-D matrix is read as label distributions, whose rows :func:`encode_targets` checks. A one-hot matrix satisfies
    the multi-label rule; it is read as multi-label with exactly one label per row, which HRAML
    treats the same as classes (the relation values coincide).
    """
    y = _as_array(y)
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        return CLASSIFICATION
    if y.ndim != 2:
        raise ValueError(f"targets must be 1-D class labels or a 2-D label matrix, got {y.ndim} dimensions")
    if not _is_numeric(y):
        raise ValueError(f"a 2-D label matrix must be numeric (0/1 indicators or label distributions), got "
                         f"values such as {y.ravel()[:1].tolist()[0]!r}; for label sets written as lists of labels, "
                         "sklearn.preprocessing.MultiLabelBinarizer().fit_transform(Y) makes the indicator matrix")
    values = y[np.isfinite(y)] if y.dtype.kind == "f" else y
    return MULTILABEL if np.all((values == 0) | (values == 1)) else DISTRIBUTION


def encode_targets(y, task: str = "auto") -> EncodedTargets:
    """Validate ``y`` for ``task`` (or the detected one) and return the label matrix."""
    y = _nonempty(y)
    detected = task == "auto"
    if detected:
        task = detect_task(y)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected 'auto' or one of {', '.join(TASKS)}")

    if task == CLASSIFICATION:
        classes, codes = np.unique(_class_labels(y), return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"classification needs at least 2 classes, got a single class ({classes[:1].tolist()[0]!r})"
            )
        Y = np.zeros((len(codes), len(classes)), dtype=np.float64)
        Y[np.arange(len(codes)), codes] = 1.0
        return EncodedTargets(task, Y, classes)

    Y = _label_matrix(y, task, detected)
    # Only training needs a relation to learn; a held-out part may be all alike.
    if task == MULTILABEL and np.all(Y == Y[0]):
        raise ValueError("every sample has the same label set: there is no relation to learn")
    if task == DISTRIBUTION and np.allclose(Y, Y[0]):
        raise ValueError("every sample has the same label distribution: there is no relation to learn")
    return EncodedTargets(task, Y, None)


def encode_heldout_targets(y, train: EncodedTargets) -> np.ndarray:
    """Held-out targets for a model trained on ``train``, checked against it: 1-D class labels of
    the same kind as ``train``'s (text against numbers would give a metric of 0 and no error;
    classes that training lacks are warned about) or a label matrix of ``train``'s task with as
    many columns. A held-out part may hold a single class or label set."""
    y = _nonempty(y)
    if train.task != CLASSIFICATION:
        Y = _label_matrix(y, train.task, detected=False)
        if Y.shape[1] != train.Y.shape[1]:
            raise ValueError(f"the held-out label matrix has {Y.shape[1]} columns, the training one {train.Y.shape[1]}")
        return Y
    labels = _class_labels(y)
    kinds = _label_kind(labels), _label_kind(train.classes)
    if kinds[0] != kinds[1]:
        raise ValueError(
            f"the held-out class labels are {kinds[0]} ({_some(np.unique(labels))}) and the training labels "
            f"{kinds[1]} ({_some(train.classes)}): no held-out row could ever be classified right")
    known = np.isin(labels, train.classes)
    if not known.all():
        warnings.warn(f"{int((~known).sum())} held-out rows have classes that the training labels lack "
                      f"({_some(np.unique(labels[~known]))}): the metric counts them as misses", stacklevel=3)
    return labels


def _label_kind(labels: np.ndarray) -> str:
    """"numbers" or "text": what class labels are written as (object arrays by their first value)."""
    if labels.dtype.kind == "O" and len(labels):
        return "text" if isinstance(labels[0], str) else "numbers"
    return "text" if labels.dtype.kind in "USO" else "numbers"


def _some(values: np.ndarray, shown: int = 5) -> str:
    items = ", ".join(repr(v) for v in values[:shown].tolist())
    return items + (f", ... ({len(values)} in all)" if len(values) > shown else "")


def _nonempty(y) -> np.ndarray:
    y = _as_array(y)
    if y.size == 0 or y.shape[0] == 0:
        raise ValueError("targets are empty")
    return y


def _class_labels(y: np.ndarray) -> np.ndarray:
    """``y`` as 1-D class labels that sort: finite numbers, or values of one kind with none missing."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"class labels must be 1-D, got shape {y.shape}")
    if _is_numeric(y) and not np.all(np.isfinite(y.astype(np.float64))):
        raise ValueError("class labels contain NaN or infinite values")
    if y.dtype.kind == "O":
        _check_object_classes(y)
    return y


def _label_matrix(y: np.ndarray, task: str, detected: bool) -> np.ndarray:
    """``y`` as a float64 label matrix valid for ``task`` (label sets or distributions)."""
    if y.ndim != 2:
        raise ValueError(f"{task} targets must be a 2-D label matrix, got shape {y.shape}")
    if not _is_numeric(y):
        raise ValueError(f"{task} targets must be numeric")
    Y = y.astype(np.float64)
    if not np.all(np.isfinite(Y)):
        raise ValueError("the label matrix contains NaN or infinite values")
    if task == MULTILABEL:
        if not np.all((Y == 0) | (Y == 1)):
            raise ValueError("multilabel targets must be a 0/1 indicator matrix")
        return Y
    Y[(Y < 0) & (Y >= -ROUNDING_ATOL)] = 0.0
    sums = Y.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > DISTRIBUTION_ATOL)
    negative = bool(np.any(Y < 0))
    if detected and (negative or len(bad)):
        why = "some values are negative" if negative else f"row {bad[0]} sums to {sums[bad[0]]:.4g}"
        raise ValueError(
            "cannot tell the task from a 2-D label matrix that is neither 0/1 indicators nor "
            f"non-negative rows summing to 1 (label distributions): {why}"
        )
    if negative:
        raise ValueError("label distributions must be non-negative")
    if len(bad):
        raise ValueError(
            f"label distribution rows must sum to 1; {len(bad)} rows do not "
            f"(row {bad[0]} sums to {sums[bad[0]]:.4g})"
        )
    return Y


def _check_object_classes(y: np.ndarray) -> None:
    """Class labels of an object array (pandas columns, mixed lists) that ``np.unique`` could not sort
    say so here: missing ones (None, NaN) and strings mixed with numbers, with the first row."""
    missing = [i for i, v in enumerate(y) if v is None or (isinstance(v, float) and v != v)]
    if missing:
        rows = f"{len(missing)} row" + ("s" if len(missing) > 1 else "")
        raise ValueError(f"class labels are missing (None or NaN) in {rows}, the first is row {missing[0]} (0-based)")
    text = [isinstance(v, (str, bytes)) for v in y]
    if any(text) and not all(text):
        i, j = text.index(True), text.index(False)
        raise ValueError(f"class labels mix text and numbers: row {i} is {y[i]!r}, row {j} is {y[j]!r}; "
                         "make them all one kind (e.g. all strings)")


def label_order(Y: np.ndarray) -> np.ndarray:
    """A stable ordering of samples that groups alike labels together (for heatmaps).

    Classes and multi-label sets sort by their dominant label, then by the rest of the row;
    distributions by their largest label, then by how peaked they are.
    """
    Y = np.asarray(Y, dtype=np.float64)
    top = Y.argmax(axis=1)
    peak = -Y.max(axis=1)
    keys = [Y[:, j] for j in range(Y.shape[1] - 1, -1, -1)] + [peak, top]
    return np.lexsort(keys)


def display_labels(Y: np.ndarray, task: str, classes: np.ndarray | None = None) -> np.ndarray:
    """One label per sample for colouring plots: the class, or the dominant label's index."""
    top = np.asarray(Y).argmax(axis=1)
    if task == CLASSIFICATION and classes is not None:
        return np.asarray(classes)[top]
    return top
