"""Data preparation for the dashboard: split, reduce, standardise (pure functions, no Streamlit).

:func:`prepare_dataset` turns a :class:`hraml_core.data.Dataset` into what the background trainer
needs: a seeded train / held-out split (stratified for classes when every class has two members),
then the library's :class:`~hraml_core.preprocessing.Preprocessor` fitted on the training part only
(sparse inputs reduced by TruncatedSVD to at most ``max_dims`` dimensions, then standardised). The
fitted preprocessor is kept, so :meth:`Prepared.transform` maps raw rows the same way (used for the
embedding export and the downloaded model, which ``hraml evaluate`` reads like a ``hraml train`` one).

Every row is trained on, at any size. Dense features are split and standardised block by block
(:data:`BLOCK_BYTES` at a time) straight into the two float32 arrays the trainer takes, so the
only full-size arrays are the dataset's own and the prepared parts (together the dataset's size
again in float32): no gathered copy of the training part, no float64 copy, no temporaries of the
scaler's full size (``tests/test_dashboard_scale.py`` measures the peak). Parts that cannot take
every row say so where they are shown: the baselines (:meth:`Prepared.baseline_data`) and the
embeddings download (:meth:`Prepared.export_positions`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from hraml_core.data.advice import dataset_warnings
from hraml_core.heldout import sample_rows
from hraml_core.preprocessing import Preprocessor
from hraml_core.splits import holdout_split
from hraml_core.tasks import CLASSIFICATION

#: Held-out fraction of the split the dashboard trains on.
DEFAULT_TEST_SIZE = 0.3
#: Sparse inputs are reduced to at most this many dimensions (TruncatedSVD) before training.
MAX_SPARSE_DIMS = 100
#: Fewest samples a dataset needs (a few training rows and a few held-out rows).
MIN_SAMPLES = 8
#: Bytes of float64 per block of rows split and standardised at a time: bounds the temporaries
#: (a block's float64 sums) at any size.
BLOCK_BYTES = 16 << 20
#: Baselines (hraml_core.baselines) are fitted on at most this many training rows and scored on at
#: most this many held-out rows (seeded, stratified samples): most of them scale with the rows
#: squared or worse (pairs, LMNN's neighbourhoods); these are the sizes the dashboard used for every
#: dataset before it trained on all rows.
BASELINE_TRAIN_ROWS = 7_000
BASELINE_VAL_ROWS = 3_000
#: The embeddings download holds at most this many rows (a seeded sample of both parts): the CSV is
#: built when a download button is drawn, and a million rows are about a gigabyte of text. The
#: model download embeds any rows (``hraml evaluate``, ``HRAML.transform``).
EXPORT_ROWS = 20_000


def _is_sparse(X) -> bool:
    return hasattr(X, "tocsr") and hasattr(X, "nnz")


@dataclass(frozen=True, eq=False)
class Prepared:
    """A dataset split and preprocessed for training.

    ``X_train`` / ``X_val`` are float32, C-contiguous, standardised (after SVD for sparse inputs),
    and writeable: the trainer shares a writeable float32 array, while a read-only one is copied
    (hraml_core.training); nothing writes them (the trainer only reads its inputs). ``Y_train`` /
    ``Y_val`` are the targets as the trainer takes them (1-D class labels, or label matrices), and
    read-only, like ``train_index`` / ``val_index``: the rows of the original dataset (after any
    subsampling, still original row numbers).
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
    #: What the user should look at before training (a label column that looks like row IDs).
    warnings: tuple = ()
    stratified: bool = False
    #: ``prepare_s``: seconds the split and the preprocessing took; a reader may add ``read_s``.
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
        return self.preprocessor.transform(X).astype(np.float32, copy=False)

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

    @cached_property
    def label_map(self) -> dict | None:
        """Label value -> display name for the figures (computed once: the page asks on every refresh)."""
        if self.task != CLASSIFICATION:
            return dict(enumerate(self.label_names))
        classes = np.unique(np.concatenate([self.Y_train, self.Y_val]))
        if len(self.label_names) == len(classes):
            return {c: n for c, n in zip(classes.tolist(), self.label_names)}
        return None

    # -- parts that take a sample -------------------------------------------------------------------
    @cached_property
    def _baseline_rows(self) -> tuple[np.ndarray, np.ndarray]:
        return (sample_rows(self.Y_train, self.task, BASELINE_TRAIN_ROWS, seed=0),
                sample_rows(self.Y_val, self.task, BASELINE_VAL_ROWS, seed=1))

    def baseline_sizes(self) -> tuple[int, int]:
        """(training rows, held-out rows) a baseline is fitted and scored on."""
        tr, va = self._baseline_rows
        return len(tr), len(va)

    def baseline_data(self) -> tuple:
        """(X_train, Y_train, X_val, Y_val) for a baseline fit: every row of sets up to
        :data:`BASELINE_TRAIN_ROWS` / :data:`BASELINE_VAL_ROWS`, a fixed sample of larger ones."""
        tr, va = self._baseline_rows
        return (_take(self.X_train, tr), _take(self.Y_train, tr), _take(self.X_val, va), _take(self.Y_val, va))

    def baseline_note(self) -> str | None:
        """Says what a baseline is fitted and scored on, when that is a sample (else None)."""
        a, b = self.baseline_sizes()
        if a == len(self.train_index) and b == len(self.val_index):
            return None
        return (f"Baselines are fitted on {a:,} of {len(self.train_index):,} training rows and scored on {b:,} of "
                f"{len(self.val_index):,} held-out rows (a fixed sample: most of them grow with the rows squared or "
                "faster).")

    @cached_property
    def _export_positions(self) -> tuple[np.ndarray, np.ndarray]:
        n_tr, n_va = len(self.train_index), len(self.val_index)
        if n_tr + n_va <= EXPORT_ROWS:
            return np.arange(n_tr), np.arange(n_va)
        rows = np.sort(np.random.default_rng(0).choice(n_tr + n_va, EXPORT_ROWS, replace=False))
        return rows[rows < n_tr], rows[rows >= n_tr] - n_tr

    def export_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions in (X_train, X_val) of the rows the embeddings download holds: all of them
        up to :data:`EXPORT_ROWS`, else a seeded sample of that many."""
        return self._export_positions

    def export_note(self) -> str | None:
        """Says that the embeddings download is a sample, when it is (else None)."""
        tr, va = self.export_positions()
        total = len(self.train_index) + len(self.val_index)
        if len(tr) + len(va) == total:
            return None
        return (f"The embeddings CSV holds a fixed sample of {len(tr) + len(va):,} of the {total:,} rows (a million "
                "rows would be a gigabyte of text); the model embeds any rows (`hraml evaluate`, `HRAML.transform`).")


def _take(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]``, or ``a`` itself when ``rows`` is every row."""
    return a if len(rows) == len(a) else a[rows]


def _frozen(a):
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _block_rows(n_features: int) -> int:
    return max(256, BLOCK_BYTES // (8 * max(1, n_features)))


def _gather(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X[rows]`` as a new float32 array, gathered block by block (no float64 copy of the part)."""
    out = np.empty((len(rows), X.shape[1]), dtype=np.float32)
    block = _block_rows(X.shape[1])
    for a in range(0, len(rows), block):
        idx = rows[a : a + block]
        if X.dtype == np.float32:
            np.take(X, idx, axis=0, out=out[a : a + len(idx)], mode="clip")  # "raise" buffers `out`
        else:
            out[a : a + len(idx)] = X[idx]
    return out


def _column_moments(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the columns of float32 ``Z`` (float64 sums, block by block).

    Written here rather than ``StandardScaler.partial_fit``, whose NaN-aware passes (copies of each
    block in float64) made it several times slower than these sums at a million rows; the features
    are finite (the Dataset checks). Two passes: the mean, then squared deviations from it.
    """
    n, block = len(Z), _block_rows(Z.shape[1])
    total = np.zeros(Z.shape[1])
    for a in range(0, n, block):
        total += Z[a : a + block].sum(axis=0, dtype=np.float64)
    mean = total / n
    mean32, squares = mean.astype(np.float32), np.zeros(Z.shape[1])
    for a in range(0, n, block):
        d = Z[a : a + block] - mean32
        np.square(d, out=d)
        squares += d.sum(axis=0, dtype=np.float64)
    std = np.sqrt(squares / n)
    # constant columns keep their values minus the mean, as scikit-learn's StandardScaler does
    std[std < 10 * np.finfo(np.float64).eps] = 1.0
    return mean, std


def _standardised_parts(X: np.ndarray, tr: np.ndarray, va: np.ndarray) -> tuple[Preprocessor, np.ndarray, np.ndarray]:
    """Rows ``tr`` and ``va`` of dense ``X`` as float32 arrays standardised with the statistics
    of the ``tr`` rows, and the fitted Preprocessor (what ``Preprocessor("standardize")`` fitted on
    ``X[tr]`` gives, without holding the gathered part, a float64 copy and the result at once)."""
    X_tr, X_va = _gather(X, tr), _gather(X, va)
    mean, std = _column_moments(X_tr)
    pre = Preprocessor("standardize")
    pre.n_features_in_, pre.scale_mean_, pre.scale_ = X.shape[1], mean, std
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    for Z in (X_tr, X_va):
        Z -= mean32  # in place: no temporaries
        Z /= std32
    return pre, X_tr, X_va


def prepare_dataset(
    ds,
    test_size: float = DEFAULT_TEST_SIZE,
    seed: int = 0,
    max_dims: int = MAX_SPARSE_DIMS,
    max_samples: int | None = None,
) -> Prepared:
    """Split ``ds`` into train / held-out and preprocess it (see the module docstring).

    ``max_samples``: keep a seeded (stratified when possible) subset of this many rows first (a
    note says so; the dashboard itself trains on every row). Raises ``ValueError`` naming the
    problem for data the trainer cannot use (too few samples, a single class in the training part, ...).
    """
    start = time.perf_counter()
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size!r}")
    X, Y, task = ds.X, np.asarray(ds.Y), ds.task
    n = int(X.shape[0])
    if n < MIN_SAMPLES:
        raise ValueError(f"{ds.name}: {n} samples are too few to split into training and held-out parts (need {MIN_SAMPLES})")
    notes = []
    rows = np.arange(n)
    classes = task == CLASSIFICATION
    warnings = dataset_warnings(ds)

    if max_samples is not None and n > max_samples:
        rows = holdout_split(Y, task, seed, train_size=int(max_samples)).train
        notes.append(f"subsampled to {len(rows):,} of {n:,} rows")

    part = holdout_split(Y[rows], task, seed, test_size=test_size)
    tr, va, stratified = rows[part.train], rows[part.test], part.stratified
    if classes and not stratified:
        notes.append("some classes have a single sample: the split is not stratified")
    if classes and len(np.unique(Y[tr])) < 2:
        raise ValueError(f"{ds.name}: the training part holds a single class; classification needs at least 2")

    if _is_sparse(X):
        pre = Preprocessor("pca+standardize", n_components=max_dims, random_state=seed)
        X_tr = pre.fit_transform(X[tr]).astype(np.float32, copy=False)
        X_va = pre.transform(X[va]).astype(np.float32, copy=False)
        if pre.components_ is not None:
            notes.append(f"sparse features reduced by TruncatedSVD from {X.shape[1]:,} to {X_tr.shape[1]} "
                         "dimensions (fit on the training part)")
    else:
        pre, X_tr, X_va = _standardised_parts(X, tr, va)

    return Prepared(
        name=ds.name,
        task=task,
        X_train=np.ascontiguousarray(X_tr),
        Y_train=_frozen(Y[tr]),
        X_val=np.ascontiguousarray(X_va),
        Y_val=_frozen(Y[va]),
        train_index=_frozen(tr),
        val_index=_frozen(va),
        n_samples=n,
        n_features=int(X.shape[1]),
        label_names=tuple(ds.label_names),
        preprocessor=pre,
        notes=tuple(notes),
        warnings=warnings,
        stratified=stratified,
        extra={"prepare_s": time.perf_counter() - start},
    )
