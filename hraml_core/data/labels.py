"""Turning raw label arrays read from files into what :class:`~hraml_core.data.Dataset` expects."""
from __future__ import annotations

import numpy as np

from hraml_core.tasks import CLASSIFICATION, DISTRIBUTION, MULTILABEL, TASKS

from .errors import dataset_error


def infer_task(Y: np.ndarray, task: str = "auto", where=None) -> str:
    """The task of raw labels: one column -> classification; 0/1 (or -1/1) -> multilabel; else distribution.

    Unlike :func:`hraml_core.tasks.detect_task`, a numeric matrix that is not 0/1 is taken to be a
    label distribution, so that rows not summing to 1 are reported as such by the validation.
    """
    if task != "auto":
        if task not in TASKS:
            raise dataset_error(where, f"unknown task {task!r}; expected 'auto' or one of {', '.join(TASKS)}")
        return task
    if Y.ndim == 1 or (Y.ndim == 2 and Y.shape[1] == 1):
        return CLASSIFICATION
    if Y.dtype.kind not in "biuf":
        raise dataset_error(where, "a label matrix with several columns must be numeric")
    finite = Y[np.isfinite(Y)] if Y.dtype.kind == "f" else Y
    if np.all((finite == 0) | (finite == 1)) or np.all((finite == -1) | (finite == 1)):
        return MULTILABEL
    return DISTRIBUTION


def prepare_labels(Y, task: str = "auto", where=None) -> tuple[np.ndarray, str]:
    """Raw labels -> (labels, task): 1-D class labels, or a 0/1 matrix (``-1/1`` mapped to ``0/1``)."""
    if hasattr(Y, "toarray"):
        Y = Y.toarray()
    Y = np.asarray(Y)
    if Y.size == 0:
        raise dataset_error(where, "missing labels: the label array is empty")
    task = infer_task(Y, task, where)
    if task == CLASSIFICATION:
        if Y.ndim == 2 and Y.shape[1] == 1:
            Y = Y[:, 0]
        if Y.ndim == 2 and Y.shape[0] == 1:
            Y = Y[0]
        if Y.dtype.kind == "f" and np.all(np.isfinite(Y)) and np.all(Y == np.round(Y)):
            Y = Y.astype(np.int64)
        return Y, task
    if Y.dtype.kind in "biuf" and task == MULTILABEL:
        finite = Y[np.isfinite(Y)] if Y.dtype.kind == "f" else Y
        if finite.size and finite.min() == -1 and np.all((finite == -1) | (finite == 1)):
            Y = np.where(Y == -1, 0, Y)  # the MATLAB -1/1 convention; NaN stays NaN
    return Y, task
