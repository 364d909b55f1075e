"""The :class:`Dataset` every loader returns, validated when it is built."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hraml_core.tasks import CLASSIFICATION, DISTRIBUTION, MULTILABEL, TASKS, EncodedTargets, encode_targets

from .errors import dataset_error, plural


def _is_sparse(x) -> bool:
    return hasattr(x, "tocsr") and hasattr(x, "nnz")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features, targets and names of one dataset.

    - ``X``: ``numpy.ndarray`` of shape (n_samples, n_features), float64 (or float32 when
      ``dtype="float32"``: large files, see hraml_core.data.tabular), C-contiguous; or a
      ``scipy.sparse`` CSR float64 matrix for sparse sources (news20); ``dense_X()`` gives a dense copy.
    - ``Y``: by ``task`` (see :mod:`hraml_core.tasks`): ``"classification"``: 1-D class labels
      (int64 for numeric labels, str otherwise); ``"multilabel"``: (n, L) int64 0/1 matrix;
      ``"distribution"``: (n, L) float64 non-negative rows summing to 1 (within 1e-3, not rescaled).
    - ``label_names``: one name per class (in the order of ``classes``, i.e. ``np.unique(Y)``) for
      classification, one per label column otherwise.
    - ``path``: the file it was read from (None for embedded sets); errors name it.

    Construction converts dtypes and validates; a problem raises
    :class:`~hraml_core.data.DatasetError` naming ``path`` (or ``name``) and the problem.
    """

    name: str
    X: object
    Y: np.ndarray
    task: str
    feature_names: tuple = ()
    label_names: tuple = ()
    description: str = ""
    source: str = ""
    path: str | None = None
    #: dtype of dense features: "float64", or "float32" (half the memory; what training uses).
    dtype: str = "float64"

    def __post_init__(self) -> None:
        where = self.path or self.name
        if self.task not in TASKS:
            raise dataset_error(where, f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.dtype not in ("float32", "float64"):
            raise dataset_error(where, f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        X = _validate_features(self.X, where, self.feature_names, self.dtype)
        object.__setattr__(self, "X", X)
        Y = np.asarray(self.Y.toarray() if _is_sparse(self.Y) else self.Y)
        if Y.ndim == 0 or Y.shape[0] != X.shape[0]:
            got = "a scalar" if Y.ndim == 0 else plural(Y.shape[0], "row")
            raise dataset_error(
                where, f"X/Y length mismatch: the features have {plural(X.shape[0], 'row')} but the labels have {got}"
            )
        if Y.dtype.kind == "f" and not np.all(np.isfinite(Y)):
            bad_rows = np.flatnonzero(~np.isfinite(Y.reshape(Y.shape[0], -1)).all(axis=1))
            raise dataset_error(
                where,
                f"missing labels: {plural(len(bad_rows), 'row')} with NaN or infinite labels, the first is "
                f"row {bad_rows[0]} (0-based)",
            )
        if Y.dtype.kind == "O" and any(v is None for v in Y.reshape(-1)):
            bad_rows = [i for i, v in enumerate(Y.reshape(Y.shape[0], -1)) if any(e is None for e in v)]
            raise dataset_error(
                where, f"missing labels: {plural(len(bad_rows), 'row')} without a label, the first is row {bad_rows[0]} (0-based)"
            )
        try:
            enc = encode_targets(Y, self.task)
        except ValueError as exc:
            raise dataset_error(where, f"bad {self.task} labels: {exc}") from None
        if self.task == CLASSIFICATION:
            Y = Y.reshape(-1)
            if Y.dtype.kind == "f":
                Y = Y.astype(np.int64) if np.all(Y == np.round(Y)) else Y
            elif Y.dtype.kind in "biu":
                Y = Y.astype(np.int64)
            elif Y.dtype.kind in "OSU" or str(Y.dtype) == "str":
                Y = Y.astype(str)
        elif self.task == MULTILABEL:
            Y = enc.Y.astype(np.int64)
        else:
            Y = enc.Y
        object.__setattr__(self, "Y", Y)

        feature_names = tuple(str(f) for f in self.feature_names) or tuple(f"x{j}" for j in range(X.shape[1]))
        if len(feature_names) != X.shape[1]:
            raise dataset_error(where, f"{len(feature_names)} feature names for {X.shape[1]} features")
        object.__setattr__(self, "feature_names", feature_names)
        n_labels = enc.Y.shape[1]
        if self.label_names:
            label_names = tuple(str(v) for v in self.label_names)
        elif self.task == CLASSIFICATION:
            label_names = tuple(str(c) for c in np.unique(Y))
        else:
            label_names = tuple(f"label{j}" for j in range(n_labels))
        if len(label_names) != n_labels:
            raise dataset_error(where, f"{len(label_names)} label names for {n_labels} labels")
        object.__setattr__(self, "label_names", label_names)

    # -- shapes -------------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_labels(self) -> int:
        """Number of classes (classification) or label columns."""
        return len(self.label_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_samples, n_features, n_labels)."""
        return self.n_samples, self.n_features, self.n_labels

    @property
    def is_sparse(self) -> bool:
        return _is_sparse(self.X)

    @property
    def classes(self) -> np.ndarray | None:
        """Sorted class values for classification (``label_names`` names them), else None."""
        return np.unique(self.Y) if self.task == CLASSIFICATION else None

    # -- conversions --------------------------------------------------------------------------
    def dense_X(self) -> np.ndarray:
        """``X`` as a dense float64 array (a copy for sparse sets, ``X`` itself otherwise)."""
        return self.X.toarray() if self.is_sparse else self.X

    def targets(self) -> EncodedTargets:
        """The label matrix of :func:`hraml_core.tasks.encode_targets` (one-hot for classes)."""
        return encode_targets(self.Y, self.task)

    def summary(self) -> str:
        kind = {CLASSIFICATION: "classes", MULTILABEL: "labels", DISTRIBUTION: "labels"}[self.task]
        sparse = ", sparse" if self.is_sparse else ""
        return f"{self.name}: {self.task}, {self.n_samples} x {self.n_features}{sparse}, {self.n_labels} {kind}"

    def __repr__(self) -> str:
        return f"Dataset({self.summary()})"


def _validate_features(X, where: str, names=(), dtype: str = "float64") -> object:
    if _is_sparse(X):
        X = X.tocsr()
        if X.dtype.kind not in "biuf":
            raise dataset_error(where, f"non-numeric features (sparse matrix of dtype {X.dtype})")
        X = X.astype(np.float64)
        values = X.data
    else:
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError):
                raise dataset_error(where, f"non-numeric features (dtype {X.dtype})") from None
        X = np.ascontiguousarray(X, dtype=np.dtype(dtype))  # no copy when it already is
        values = X
    if X.ndim != 2:
        raise dataset_error(where, f"features must be a 2-D matrix, got shape {X.shape}")
    if X.shape[0] == 0:
        raise dataset_error(where, "empty: no samples")
    if X.shape[1] == 0:
        raise dataset_error(where, "no feature columns")
    finite = np.isfinite(values)
    if not finite.all():
        bad = ~finite
        n_nan = int(np.isnan(values).sum())
        n_inf = int(bad.sum()) - n_nan
        kind = " and ".join(
            part for part, n in (("NaN (missing)", n_nan), ("infinite", n_inf)) if n
        )
        if _is_sparse(X):
            coo = X.tocoo()
            first = int(np.flatnonzero(~np.isfinite(coo.data))[0])
            row, col = int(coo.row[first]), int(coo.col[first])
        else:
            row, col = (int(v) for v in np.argwhere(bad)[0])
        col_name = f"{names[col]!r}" if len(names) == X.shape[1] else str(col)
        raise dataset_error(
            where,
            f"features contain {kind} values: {plural(int(bad.sum()), 'entry')}, the first at row {row} "
            f"(0-based), column {col_name}",
        )
    return X
