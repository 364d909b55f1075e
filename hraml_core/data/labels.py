"""Turning raw label arrays read from files into what :class:`~hraml_core.data.Dataset` expects."""
from __future__ import annotations

import numpy as np

from hraml_core.tasks import CLASSIFICATION, MULTILABEL, TASKS, detect_task

from .errors import dataset_error


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
        if Y.dtype.kind == "f" and np.all(np.isfinite(Y)) and np.all(Y == np.round(Y)):
            Y = Y.astype(np.int64)
        return Y, task
    return Y, task
