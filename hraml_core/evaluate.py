"""Held-out evaluators for learned embeddings: kNN accuracy, MLkNN and AA-kNN, plus their metrics.

The paper measures a learned metric by what a nearest-neighbour learner does in the embedding:

- ``classification``: kNN majority vote, scored by accuracy;
- ``multilabel``: MLkNN (Zhang & Zhou, "ML-KNN: A lazy learning approach to multi-label learning",
  Pattern Recognition 40(7), 2007), scored by Hamming loss, ranking loss, one-error, coverage and
  average precision;
- ``distribution``: AA-kNN (Geng, "Label distribution learning", IEEE TKDE 28(7), 2016), scored by
  Chebyshev, Clark, Canberra, Kullback-Leibler, cosine and intersection.

:func:`evaluate_embedding` is the one entry point the rest of the project calls; it returns a flat
``{metric name: float}`` dict. :data:`METRIC_DIRECTIONS` says whether each metric is better high
(``"max"``) or low (``"min"``), and :data:`PRIMARY_METRIC` names the one the dashboard follows live.

Everything here is numpy / scikit-learn and vectorised over samples: the evaluators run inside a
live training loop several times a second on a few thousand points. Distances are Euclidean.

Large sets: :func:`evaluate_embedding` takes ``progress`` (called with rows done and rows in all)
and ``should_stop`` (a cancellation check) and then queries the neighbours in chunks of
:data:`EVAL_CHUNK_ROWS` rows, reporting and checking between chunks (a stop raises
:class:`EvaluationCancelled`); the results are those of one query. The neighbour search is
scikit-learn's exact search with its ``algorithm="auto"`` choice, i.e. brute force for embeddings
(more than 15 dimensions) and a k-d tree for low-dimensional raw features. On 64-d unit vectors,
clustered like trained embeddings or not, k-d and ball trees answer slower than brute force from
1e4 to 1e5 reference rows (``bench/bench_scale.py --neighbours``, numbers in docs/BENCHMARKS.md),
and pynndescent (which umap-learn brings) is approximate, where an evaluation must be exact, and
its index alone costs more than brute force's answers at the query counts here.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from numbers import Integral

import numpy as np
from sklearn.metrics import coverage_error, hamming_loss
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from threadpoolctl import ThreadpoolController

from .tasks import CLASSIFICATION, DISTRIBUTION, MULTILABEL, TASKS
from .validation import check_matrix, check_same_features, check_same_rows

#: float32 stays float32 (embeddings, large feature sets: half the memory and time of a float64
#: copy); anything else is computed in float64.
FLOATS = (np.float64, np.float32)

__all__ = [
    "AAkNN",
    "DEFAULT_K",
    "EVAL_CHUNK_ROWS",
    "EvaluationCancelled",
    "KL_EPSILON",
    "LDL_METRICS",
    "METRIC_DIRECTIONS",
    "MLkNN",
    "MULTILABEL_METRICS",
    "PRIMARY_METRIC",
    "evaluate_embedding",
    "knn_accuracy",
    "ldl_metrics",
    "multilabel_metrics",
]

#: Metric names returned for each task, in display order.
MULTILABEL_METRICS = ("hamming_loss", "ranking_loss", "one_error", "coverage", "average_precision")
LDL_METRICS = ("chebyshev", "clark", "canberra", "kl", "cosine", "intersection")

#: ``"max"``: higher is better; ``"min"``: lower is better.
METRIC_DIRECTIONS: dict[str, str] = {
    "accuracy": "max",
    "hamming_loss": "min",
    "ranking_loss": "min",
    "one_error": "min",
    "coverage": "min",
    "average_precision": "max",
    "chebyshev": "min",
    "clark": "min",
    "canberra": "min",
    "kl": "min",
    "cosine": "max",
    "intersection": "max",
}

#: The held-out metric the dashboard plots live for each task.
PRIMARY_METRIC: dict[str, str] = {
    CLASSIFICATION: "accuracy",
    MULTILABEL: "average_precision",
    DISTRIBUTION: "cosine",
}

#: Number of neighbours :func:`evaluate_embedding` uses when ``k`` is None.
#: - classification: 1-NN, the plain nearest-neighbour accuracy (pass ``k=4`` for the authors'
#:   "k = pairsize = 4" majority vote).
#: - multilabel: 10, the MLkNN default of Zhang & Zhou (2007).
#: - distribution: 4, Geng's setting for AA-kNN (his LDL toolbox calls
#:   ``aaknn(train, labels, test, 4, 'L2')``), the "AA-kNN with L2" of the authors' protocol.
DEFAULT_K: dict[str, int] = {CLASSIFICATION: 1, MULTILABEL: 10, DISTRIBUTION: 4}

#: Floor put under the predicted probability ``q`` in the KL divergence (see :func:`ldl_metrics`).
KL_EPSILON = 1e-12

# scikit-learn's brute-force neighbour search runs on OpenMP threads (2 on the project's 2-vCPU
# machines). The evaluators run beside a training loop that keeps a core busy, and there a second
# thread only competes with it: one thread was faster whenever a core was busy, so searches run
# single-threaded (the exact evaluation on demand may ask for more).
_NEIGHBOUR_THREADS = 1
_threadpools: ThreadpoolController | None = None

# Pairwise (label, label) comparisons for ranking loss / average precision are done this many
# cells (samples x labels x labels) at a time, to bound memory for many labels.
_RANK_CHUNK_CELLS = 1 << 22


#: Query rows per chunk when an evaluation reports progress or can be cancelled.
EVAL_CHUNK_ROWS = 4096


@contextmanager
def _neighbour_threads(threads: int = _NEIGHBOUR_THREADS):
    global _threadpools
    if _threadpools is None:  # created once: it scans every loaded library, not worth repeating
        _threadpools = ThreadpoolController()
    with _threadpools.limit(limits=threads, user_api="openmp"):
        yield


class EvaluationCancelled(RuntimeError):
    """An evaluation stopped because its ``should_stop`` check returned True."""


class _Work:
    """Progress, cancellation and threads of one evaluation, passed down to its neighbour queries."""

    def __init__(self, total: int, progress: Callable[[int, int], object] | None = None,
                 should_stop: Callable[[], bool] | None = None, chunk_rows: int = EVAL_CHUNK_ROWS,
                 threads: int = _NEIGHBOUR_THREADS):
        self.total, self.done = int(total), 0
        self.progress, self.should_stop = progress, should_stop
        self.chunk_rows, self.threads = max(1, int(chunk_rows)), max(1, int(threads))

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise EvaluationCancelled(f"evaluation cancelled after {self.done} of {self.total} rows")

    def advance(self, rows: int) -> None:
        self.done += rows
        if self.progress is not None:
            self.progress(self.done, self.total)


def _kneighbors(nn: NearestNeighbors, X: np.ndarray, k: int, work: _Work | None, query_is_train: bool = False) -> np.ndarray:
    """Indices of the ``k`` nearest fitted rows of each row of ``X``; with ``query_is_train`` (X is
    the fitted data) each row's own index is left out as scikit-learn's ``kneighbors()`` does."""
    n = X.shape[0]
    if work is None or n <= work.chunk_rows:  # one query: exactly the call the evaluators made before
        if work is not None:
            work.check()
        with _neighbour_threads(work.threads if work is not None else _NEIGHBOUR_THREADS):
            idx = nn.kneighbors(None if query_is_train else X, k, return_distance=False)
        if work is not None:
            work.advance(n)
        return idx
    out = np.empty((n, k), dtype=np.intp)
    for a in range(0, n, work.chunk_rows):
        work.check()
        b = min(a + work.chunk_rows, n)
        with _neighbour_threads(work.threads):
            if not query_is_train:
                out[a:b] = nn.kneighbors(X[a:b], k, return_distance=False)
            else:
                # scikit-learn's kneighbors(X=None) per chunk: k + 1 neighbours without the row
                # itself, or without the first one when duplicates crowd the row out of them.
                ind = nn.kneighbors(X[a:b], k + 1, return_distance=False)
                mask = ind != np.arange(a, b)[:, None]
                mask[mask.all(axis=1), 0] = False
                out[a:b] = ind[mask].reshape(b - a, k)
        work.advance(b - a)
    return out


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------
def _check_k(k, n_train: int, *, exclude_self: bool = False, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, Integral):
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k}")
    if exclude_self and k >= n_train:
        raise ValueError(
            f"{name}={k} is too large for {n_train} training samples: MLkNN counts each training "
            f"sample's {name} nearest neighbours other than itself, so {name} must be at most {n_train - 1}"
        )
    if k > n_train:
        raise ValueError(f"{name}={k} is larger than the training set ({n_train} samples)")
    return k


def _class_labels(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
    if y.dtype.kind in "biuf" and not np.all(np.isfinite(y.astype(np.float64))):
        raise ValueError(f"{name} contains NaN or infinite values")
    if y.dtype.kind == "O" and any(v is None or (isinstance(v, float) and v != v) for v in y):
        raise ValueError(f"{name} contains missing (None or NaN) class labels")
    return y


def _label_matrix(Y, name: str, *, binary: bool) -> np.ndarray:
    if hasattr(Y, "toarray"):
        Y = Y.toarray()
    if np.ndim(Y) != 2:
        raise ValueError(f"{name} must be a 2-D label matrix (samples x labels), got shape {np.shape(Y)}")
    Y = check_matrix(Y, name)
    if binary:
        if not np.all((Y == 0) | (Y == 1)):
            raise ValueError(f"{name} must be a 0/1 indicator matrix")
        return Y.astype(np.int8)
    if np.any(Y < 0):
        raise ValueError(f"{name} must be non-negative (label distributions)")
    return Y


def _same_shape(A: np.ndarray, B: np.ndarray, a_name: str, b_name: str) -> None:
    if A.shape != B.shape:
        raise ValueError(f"{a_name} has shape {A.shape} but {b_name} has shape {B.shape}")


# --------------------------------------------------------------------------------------------------
# single-label: kNN accuracy
# --------------------------------------------------------------------------------------------------
def knn_accuracy(Z_train, y_train, Z_test, y_test, k: int = 1, *, work: _Work | None = None) -> float:
    """Accuracy of a Euclidean k-nearest-neighbour majority vote (scikit-learn's KNeighborsClassifier).

    ``y_train`` / ``y_test`` are 1-D class labels (ints or strings). On a tied vote scikit-learn
    picks the smallest class label among the tied ones.
    """
    Z_train = check_matrix(Z_train, "Z_train", dtype=FLOATS, sparse="keep")
    Z_test = check_matrix(Z_test, "Z_test", dtype=FLOATS, sparse="keep")
    check_same_features(Z_train, Z_test, "Z_train", "Z_test")
    y_train = _class_labels(y_train, "y_train")
    y_test = _class_labels(y_test, "y_test")
    check_same_rows(Z_train, y_train, "Z_train", "y_train")
    check_same_rows(Z_test, y_test, "Z_test", "y_test")
    k = _check_k(k, Z_train.shape[0])
    clf = KNeighborsClassifier(n_neighbors=k).fit(Z_train, y_train)
    if work is None:
        with _neighbour_threads():
            pred = clf.predict(Z_test)
    else:  # the vote is per row: chunks give the single call's predictions
        pred = np.empty(Z_test.shape[0], dtype=np.asarray(clf.classes_).dtype)
        for a in range(0, Z_test.shape[0], work.chunk_rows):
            work.check()
            b = min(a + work.chunk_rows, Z_test.shape[0])
            with _neighbour_threads(work.threads):
                pred[a:b] = clf.predict(Z_test[a:b])
            work.advance(b - a)
    return float(np.mean(pred == y_test))


# --------------------------------------------------------------------------------------------------
# multi-label: MLkNN and its metrics
# --------------------------------------------------------------------------------------------------
class MLkNN:
    """ML-kNN of Zhang & Zhou, "ML-KNN: A lazy learning approach to multi-label learning",
    Pattern Recognition 40(7):2038-2048, 2007 (Euclidean neighbours).

    Written here by hand: scikit-learn has no MLkNN, and scikit-multilearn (which has one) is not a
    dependency of this project and is unmaintained.

    Training (the paper's Fig. 1, steps 1-13), for every label ``l``:

    - prior ``P(H1_l) = (s + #{i: y_il = 1}) / (2 s + n)``, ``P(H0_l) = 1 - P(H1_l)``;
    - ``C_il`` = how many of sample ``i``'s ``k`` nearest training neighbours (itself excluded)
      carry label ``l``;
    - ``c[j]`` = #{i : y_il = 1 and C_il = j}, ``c'[j]`` = #{i : y_il = 0 and C_il = j}, j = 0..k;
    - ``P(E_j | H1_l) = (s + c[j]) / (s (k + 1) + sum_p c[p])``, likewise with ``c'`` for ``H0_l``.

    Prediction for a test point with ``C_l`` of its ``k`` nearest training neighbours carrying ``l``:
    the label is on when ``P(H1_l) P(E_C | H1_l) > P(H0_l) P(E_C | H0_l)`` (the MAP rule; a tie
    leaves it off), and its score is the posterior
    ``P(H1_l | E_C) = P(H1_l) P(E_C|H1_l) / sum_b P(Hb_l) P(E_C|Hb_l)``.

    ``s`` must be > 0 (with ``s = 0`` a count never seen in training gives 0/0 posteriors).
    Among neighbours at exactly equal distance scikit-learn's order decides which are taken.
    """

    def __init__(self, k: int = 10, s: float = 1.0):
        self.k = k
        self.s = s

    def fit(self, X, Y, *, work: _Work | None = None) -> "MLkNN":
        X = check_matrix(X, "X", dtype=FLOATS, sparse="keep")
        Y = _label_matrix(Y, "Y", binary=True)
        check_same_rows(X, Y, "X", "Y")
        k = _check_k(self.k, X.shape[0], exclude_self=True)
        s = float(self.s)
        if not np.isfinite(s) or s <= 0:
            raise ValueError(f"the smoothing s must be a positive number, got {self.s!r}")
        n, L = Y.shape

        self.prior1_ = (s + Y.sum(axis=0)) / (2.0 * s + n)  # (L,)
        self.prior0_ = 1.0 - self.prior1_

        self.nn_ = NearestNeighbors(n_neighbors=k).fit(X)
        # each training point's k neighbours other than itself (duplicates handled by index)
        idx = _kneighbors(self.nn_, X, k, work, query_is_train=True)  # (n, k)
        C = self._counts(Y, idx)  # (n, L), values 0..k

        # c[j, l] and c'[j, l] by one bincount over the flat cell index j * L + l
        cell = (C * L + np.arange(L)).ravel()
        on = Y.ravel().astype(bool)
        c1 = np.bincount(cell[on], minlength=(k + 1) * L).reshape(k + 1, L)
        c0 = np.bincount(cell[~on], minlength=(k + 1) * L).reshape(k + 1, L)
        self.c1_, self.c0_ = c1, c0
        self.cond1_ = (s + c1) / (s * (k + 1) + c1.sum(axis=0))  # P(E_j | H1_l), (k+1, L)
        self.cond0_ = (s + c0) / (s * (k + 1) + c0.sum(axis=0))  # P(E_j | H0_l)
        self.Y_ = Y
        self.k_ = k
        self.n_features_in_ = X.shape[1]
        return self

    @staticmethod
    def _counts(Y: np.ndarray, idx: np.ndarray) -> np.ndarray:
        # sum of the neighbours' indicator rows: (n, k, L) -> (n, L)
        return Y[idx].sum(axis=1, dtype=np.int64)

    def _joint(self, X, work: _Work | None = None):
        """P(H1) P(E_C | H1) and P(H0) P(E_C | H0) for every test sample and label."""
        idx = _fitted_neighbours(self, X, "fit(X, Y)", work)
        C = self._counts(self.Y_, idx)
        cols = np.arange(C.shape[1])
        p1 = self.prior1_ * self.cond1_[C, cols]
        p0 = self.prior0_ * self.cond0_[C, cols]
        return p1, p0

    def predict_proba(self, X) -> np.ndarray:
        """Posterior ``P(label l on | neighbour count)``, shape (n_samples, n_labels)."""
        p1, p0 = self._joint(X)
        return p1 / (p1 + p0)

    def predict(self, X) -> np.ndarray:
        """0/1 label matrix by the MAP rule ``P(H1)P(E|H1) > P(H0)P(E|H0)`` (posterior > 0.5)."""
        p1, p0 = self._joint(X)
        return (p1 > p0).astype(np.int8)

    def predict_with_proba(self, X, *, work: _Work | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(predict(X), predict_proba(X))`` from one neighbour search."""
        p1, p0 = self._joint(X, work)
        return (p1 > p0).astype(np.int8), p1 / (p1 + p0)


def _fitted_neighbours(learner, X, fit_call: str, work: _Work | None) -> np.ndarray:
    """The k nearest training rows of each row of ``X`` for a fitted MLkNN or AAkNN (checked)."""
    name = type(learner).__name__
    if not hasattr(learner, "nn_"):
        raise ValueError(f"this {name} is not fitted yet; call {fit_call} first")
    X = check_matrix(X, "X", dtype=FLOATS, sparse="keep")
    if X.shape[1] != learner.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features but this {name} was fitted on {learner.n_features_in_}")
    return _kneighbors(learner.nn_, X, learner.k_, work)


def multilabel_metrics(Y_true, Y_pred, scores) -> dict[str, float]:
    """The five multi-label metrics of Zhang & Zhou (2007), section 4.1.

    ``Y_true`` and ``Y_pred`` are 0/1 matrices (n x L), ``scores`` real-valued label scores
    (higher = more relevant; e.g. MLkNN posteriors) of the same shape.

    - ``hamming_loss``: fraction of wrong label bits (scikit-learn ``hamming_loss``), over all samples.
    - ``ranking_loss``: fraction of (relevant, irrelevant) label pairs ranked the wrong way, a tie
      counting as wrong (scikit-learn's ``label_ranking_loss``, computed vectorised here).
    - ``one_error``: fraction of samples whose top-scored label is not relevant (on tied top scores
      the first label in column order is taken, as ``argmax`` and MATLAB's ``max`` do).
    - ``coverage``: how far down the ranking one must go to cover every relevant label, counted
      from 0 (the Mulan / Zhang & Zhou convention): scikit-learn's ``coverage_error`` minus 1
      (ties ranked pessimistically, as scikit-learn does).
    - ``average_precision``: label-ranking average precision (scikit-learn's
      ``label_ranking_average_precision_score``, computed vectorised here; ties pessimistic).

    Samples with no relevant label: ranking loss, one-error, coverage and average precision are
    undefined for them, so, as Mulan does, they are left out of those four means (scikit-learn
    would instead count them as 0 ranking loss, coverage -1 and precision 1). They still count in
    the Hamming loss. When no sample has a relevant label those four are NaN. Samples with every
    label relevant are kept (ranking loss 0, one-error 0, coverage L - 1, precision 1).
    """
    Y_true = _label_matrix(Y_true, "Y_true", binary=True)
    Y_pred = _label_matrix(Y_pred, "Y_pred", binary=True)
    scores = check_matrix(scores, "scores")
    _same_shape(Y_true, Y_pred, "Y_true", "Y_pred")
    _same_shape(Y_true, scores, "Y_true", "scores")

    out = {"hamming_loss": float(hamming_loss(Y_true, Y_pred))}
    keep = Y_true.any(axis=1)
    if not keep.any():
        out.update(ranking_loss=np.nan, one_error=np.nan, coverage=np.nan, average_precision=np.nan)
        return {m: out[m] for m in MULTILABEL_METRICS}
    Yt, S = Y_true[keep], scores[keep]
    top = S.argmax(axis=1)
    rank_loss, avg_prec = _ranking_loss_and_precision(Yt.astype(bool), S)
    out["ranking_loss"] = float(rank_loss.mean())
    out["one_error"] = float(np.mean(Yt[np.arange(len(Yt)), top] == 0))
    out["coverage"] = float(coverage_error(Yt, S) - 1.0)
    out["average_precision"] = float(avg_prec.mean())
    return {m: out[m] for m in MULTILABEL_METRICS}


def _ranking_loss_and_precision(Y: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ranking loss and label-ranking average precision, vectorised.

    Same definitions and tie handling as scikit-learn's ``label_ranking_loss`` and
    ``label_ranking_average_precision_score`` (the tests check they agree), which loop over samples
    in Python over the samples, too slow for the live loop. Every row of ``Y``
    must have a relevant label. For each label j let ``above_j = #{l : s_l >= s_j}`` and
    ``rel_above_j`` the relevant ones among them; then, over the relevant labels j,
    ranking loss = sum_j (above_j - rel_above_j) / (|relevant| |irrelevant|) (0 when every label is
    relevant) and average precision = mean_j rel_above_j / above_j.
    """
    n, L = Y.shape
    loss = np.empty(n)
    prec = np.empty(n)
    step = max(1, _RANK_CHUNK_CELLS // (L * L))
    for a in range(0, n, step):  # chunks of samples bound the (m, L, L) comparison array
        y, s = Y[a : a + step], S[a : a + step]
        geq = s[:, None, :] >= s[:, :, None]  # geq[i, j, l] = s_il >= s_ij
        above = geq.sum(axis=2)
        rel_above = (geq & y[:, None, :]).sum(axis=2)
        n_rel = y.sum(axis=1)
        pairs = n_rel * (L - n_rel)
        wrong = np.where(y, above - rel_above, 0).sum(axis=1)
        loss[a : a + step] = np.where(pairs > 0, wrong / np.maximum(pairs, 1), 0.0)
        prec[a : a + step] = np.where(y, rel_above / above, 0.0).sum(axis=1) / n_rel
    return loss, prec


# --------------------------------------------------------------------------------------------------
# label distributions: AA-kNN and its metrics
# --------------------------------------------------------------------------------------------------
class AAkNN:
    """AA-kNN of Geng, "Label distribution learning", IEEE TKDE 28(7):1734-1748, 2016 (section 5.2):
    the predicted label distribution is the plain mean of the ``k`` nearest training distributions
    (Euclidean / L2 distance).

    Default ``k = 4``: the value Geng's LDL toolbox uses for AA-kNN
    (``aaknn(train_features, train_labels, test_features, 4, 'L2')``), which is also the "AA-kNN
    with L2" of the HRAML authors' protocol.
    """

    def __init__(self, k: int = 4):
        self.k = k

    def fit(self, X, D) -> "AAkNN":
        X = check_matrix(X, "X", dtype=FLOATS, sparse="keep")
        D = _label_matrix(D, "D", binary=False)
        check_same_rows(X, D, "X", "D")
        k = _check_k(self.k, X.shape[0])
        self.nn_ = NearestNeighbors(n_neighbors=k).fit(X)
        self.D_ = D
        self.k_ = k
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X, *, work: _Work | None = None) -> np.ndarray:
        """Mean of the k nearest training distributions, shape (n_samples, n_labels)."""
        idx = _fitted_neighbours(self, X, "fit(X, D)", work)
        return self.D_[idx].mean(axis=1)


def ldl_metrics(D_true, D_pred) -> dict[str, float]:
    """The six label-distribution measures of Geng (2016), Table 2, averaged over samples.

    With ``p`` the true and ``q`` the predicted distribution of a sample:

    - ``chebyshev`` = max_j |p_j - q_j|                       (lower is better)
    - ``clark``     = sqrt(sum_j (p_j - q_j)^2 / (p_j + q_j)^2)  (lower is better)
    - ``canberra``  = sum_j |p_j - q_j| / (p_j + q_j)           (lower is better)
    - ``kl``        = sum_j p_j ln(p_j / q_j)                   (lower is better)
    - ``cosine``    = p . q / (|p| |q|)                          (higher is better)
    - ``intersection`` = sum_j min(p_j, q_j)                    (higher is better)

    Zeros: a label with ``p_j = q_j = 0`` contributes 0 to Clark and Canberra (0/0 := 0). In KL a
    term with ``p_j = 0`` is 0 (0 ln 0 := 0) and ``q_j`` is floored at :data:`KL_EPSILON` (1e-12),
    so a predicted 0 where the truth is positive gives a large but finite divergence. Rows are used
    as given (not renormalised); they must be non-negative and not all zero.
    """
    P = _label_matrix(D_true, "D_true", binary=False)
    Q = _label_matrix(D_pred, "D_pred", binary=False)
    _same_shape(P, Q, "D_true", "D_pred")
    for M, name in ((P, "D_true"), (Q, "D_pred")):
        zero = np.flatnonzero(~M.any(axis=1))
        if len(zero):
            raise ValueError(f"{name} row {zero[0]} is all zeros, not a label distribution")

    diff = np.abs(P - Q)
    tot = P + Q
    nz = tot > 0
    safe_tot = np.where(nz, tot, 1.0)
    ratio = np.where(nz, diff / safe_tot, 0.0)  # |p-q|/(p+q), 0/0 := 0
    pos = P > 0
    kl_terms = np.where(pos, P * (np.log(np.where(pos, P, 1.0)) - np.log(np.maximum(Q, KL_EPSILON))), 0.0)
    cos = np.einsum("ij,ij->i", P, Q) / (np.linalg.norm(P, axis=1) * np.linalg.norm(Q, axis=1))
    return {
        "chebyshev": float(diff.max(axis=1).mean()),
        "clark": float(np.sqrt((ratio**2).sum(axis=1)).mean()),
        "canberra": float(ratio.sum(axis=1).mean()),
        "kl": float(kl_terms.sum(axis=1).mean()),
        "cosine": float(cos.mean()),
        "intersection": float(np.minimum(P, Q).sum(axis=1).mean()),
    }


# --------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------
def evaluate_embedding(task: str, Z_train, Y_train, Z_test, Y_test, k: int | None = None, *,
                       progress: Callable[[int, int], object] | None = None,
                       should_stop: Callable[[], bool] | None = None, chunk_rows: int = EVAL_CHUNK_ROWS,
                       threads: int = _NEIGHBOUR_THREADS) -> dict[str, float]:
    """Score an embedding by the task's nearest-neighbour learner, trained on ``(Z_train, Y_train)``
    and tested on ``(Z_test, Y_test)``.

    - ``"classification"``: ``Y`` are 1-D class labels; kNN majority vote (k defaults to 1);
      returns ``{"accuracy"}``.
    - ``"multilabel"``: ``Y`` are 0/1 indicator matrices; MLkNN (k defaults to 10, s = 1);
      returns the five :data:`MULTILABEL_METRICS` (see :func:`multilabel_metrics`).
    - ``"distribution"``: ``Y`` are label-distribution matrices; AA-kNN (k defaults to 4);
      returns the six :data:`LDL_METRICS` (see :func:`ldl_metrics`).

    ``Z_train`` / ``Z_test`` are arrays or scipy.sparse matrices (searched as they are: the
    embeddings of sparse inputs with an input skip are sparse).

    ``k=None`` takes the task's :data:`DEFAULT_K`, lowered to what the training set allows (MLkNN:
    one less than its rows; the others: its rows). Raises ``ValueError`` for an unknown task,
    mismatched shapes, NaN / infinite values, labels of the wrong kind, or a ``k`` given that is
    larger than the training set allows.

    With ``progress`` or ``should_stop`` the neighbour queries run ``chunk_rows`` rows at a time:
    ``progress(done, total)`` after each chunk (rows queried: the test rows, plus the training rows
    for MLkNN, which needs each training row's neighbours), ``should_stop()`` before each, a True
    raising :class:`EvaluationCancelled`. ``threads``: OpenMP threads of the search (1 by default:
    the evaluators run beside a training thread).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    Z_train = check_matrix(Z_train, "Z_train", dtype=FLOATS, sparse="keep")
    Z_test = check_matrix(Z_test, "Z_test", dtype=FLOATS, sparse="keep")
    check_same_features(Z_train, Z_test, "Z_train", "Z_test")
    if k is None:  # the default, at most what the training set allows: a small set still gets a metric
        k = max(1, min(DEFAULT_K[task], Z_train.shape[0] - 1 if task == MULTILABEL else Z_train.shape[0]))
    work = None
    if progress is not None or should_stop is not None or threads != _NEIGHBOUR_THREADS:
        total = Z_test.shape[0] + (Z_train.shape[0] if task == MULTILABEL else 0)
        work = _Work(total, progress, should_stop, chunk_rows, threads)

    if task == CLASSIFICATION:
        return {"accuracy": knn_accuracy(Z_train, Y_train, Z_test, Y_test, k=k, work=work)}

    binary = task == MULTILABEL
    Y_train = _label_matrix(Y_train, "Y_train", binary=binary)
    Y_test = _label_matrix(Y_test, "Y_test", binary=binary)
    check_same_rows(Z_train, Y_train, "Z_train", "Y_train")
    check_same_rows(Z_test, Y_test, "Z_test", "Y_test")
    if Y_train.shape[1] != Y_test.shape[1]:
        raise ValueError(f"Y_train has {Y_train.shape[1]} labels but Y_test has {Y_test.shape[1]}")

    if task == MULTILABEL:
        pred, proba = MLkNN(k=k).fit(Z_train, Y_train, work=work).predict_with_proba(Z_test, work=work)
        return multilabel_metrics(Y_test, pred, proba)
    return ldl_metrics(Y_test, AAkNN(k=k).fit(Z_train, Y_train).predict(Z_test, work=work))
