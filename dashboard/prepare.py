"""Data preparation for the dashboard: split, reduce, standardise (pure functions, no Streamlit).

:func:`prepare_dataset` turns a :class:`hraml_core.data.Dataset` into what the background trainer
needs: a seeded train / held-out split (stratified for classes when every class has two members),
then the library's :class:`~hraml_core.preprocessing.Preprocessor` fitted on the training part only
(sparse inputs reduced by TruncatedSVD to at most ``max_dims`` dimensions, then standardised). The
fitted preprocessor is kept, so :meth:`Prepared.transform` maps raw rows the same way (used for the
embedding export and the downloaded model, which ``hraml evaluate`` reads like a ``hraml train`` one).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hraml_core.preprocessing import Preprocessor
from hraml_core.splits import holdout_split
from hraml_core.tasks import CLASSIFICATION

#: Held-out fraction of the split the dashboard trains on.
DEFAULT_TEST_SIZE = 0.3
#: Sparse inputs are reduced to at most this many dimensions (TruncatedSVD) before training.
MAX_SPARSE_DIMS = 100
#: Fewest samples a dataset needs (a few training rows and a few held-out rows).
MIN_SAMPLES = 8


def _is_sparse(X) -> bool:
    return hasattr(X, "tocsr") and hasattr(X, "nnz")


@dataclass(frozen=True, eq=False)
class Prepared:
    """A dataset split and preprocessed for training; arrays are read-only.

    ``X_train`` / ``X_val`` are float32, standardised (after SVD for sparse inputs). ``Y_train`` /
    ``Y_val`` are the targets as the trainer takes them (1-D class labels, or label matrices).
    ``train_index`` / ``val_index`` are the rows of the original dataset (after any subsampling,
    still original row numbers).
    """

    name: str
    task: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    n_samples: int
    n_features: int
    label_names: tuple
    preprocessor: Preprocessor
    notes: tuple = ()
    stratified: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    @property
    def n_dims(self) -> int:
        """Dimensions the encoder sees (after any reduction)."""
        return int(self.X_train.shape[1])

    def transform(self, X) -> np.ndarray:
        """Raw feature rows -> the trainer's input space (SVD if sparse, then standardise)."""
        return self.preprocessor.transform(X).astype(np.float32)

    @property
    def reduced(self) -> bool:
        """Whether sparse features were reduced by TruncatedSVD."""
        return self.preprocessor.components_ is not None

    def summary(self) -> str:
        kind = "classes" if self.task == CLASSIFICATION else "labels"
        dims = f"{self.n_features} features"
        if self.reduced:
            dims += f" (SVD to {self.n_dims})"
        return (
            f"{self.name}: {self.task}, {self.n_samples} samples, {dims}, {self.n_labels} {kind}; "
            f"train {len(self.train_index)} / held-out {len(self.val_index)}"
        )


def _frozen(a):
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def prepare_dataset(
    ds,
    test_size: float = DEFAULT_TEST_SIZE,
    seed: int = 0,
    max_dims: int = MAX_SPARSE_DIMS,
    max_samples: int | None = None,
) -> Prepared:
    """Split ``ds`` into train / held-out and preprocess it (see the module docstring).

    ``max_samples``: keep a seeded (stratified when possible) subset of this many rows first, so
    that a large dataset stays interactive. Raises ``ValueError`` naming the problem for data the
    trainer cannot use (too few samples, a single class in the training part, ...).
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size!r}")
    X, Y, task = ds.X, np.asarray(ds.Y), ds.task
    n = int(X.shape[0])
    if n < MIN_SAMPLES:
        raise ValueError(f"{ds.name}: {n} samples are too few to split into training and held-out parts (need {MIN_SAMPLES})")
    notes = []
    rows = np.arange(n)
    classes = task == CLASSIFICATION

    if max_samples is not None and n > max_samples:
        rows = holdout_split(Y, task, seed, train_size=int(max_samples)).train
        notes.append(f"subsampled to {len(rows):,} of {n:,} rows to stay interactive")

    part = holdout_split(Y[rows], task, seed, test_size=test_size)
    tr, va, stratified = rows[part.train], rows[part.test], part.stratified
    if classes and not stratified:
        notes.append("some classes have a single sample: the split is not stratified")
    if classes and len(np.unique(Y[tr])) < 2:
        raise ValueError(f"{ds.name}: the training part holds a single class; classification needs at least 2")

    sparse = _is_sparse(X)
    pre = Preprocessor("pca+standardize" if sparse else "standardize", n_components=max_dims, random_state=seed)
    X_tr, X_va = pre.fit_transform(X[tr]).astype(np.float32), pre.transform(X[va]).astype(np.float32)
    if pre.components_ is not None:
        notes.append(f"sparse features reduced by TruncatedSVD from {X.shape[1]:,} to {X_tr.shape[1]} "
                     "dimensions (fit on the training part)")

    return Prepared(
        name=ds.name,
        task=task,
        X_train=_frozen(X_tr),
        Y_train=_frozen(Y[tr]),
        X_val=_frozen(X_va),
        Y_val=_frozen(Y[va]),
        train_index=_frozen(tr),
        val_index=_frozen(va),
        n_samples=n,
        n_features=int(X.shape[1]),
        label_names=tuple(ds.label_names),
        preprocessor=pre,
        notes=tuple(notes),
        stratified=stratified,
    )
