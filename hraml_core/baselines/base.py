"""The small base every baseline shares: input checks, the PSD projection, pairs and the pair kernel.

Each baseline is a scikit-learn transformer that learns a Mahalanobis matrix ``M`` (d x d, symmetric
positive semi-definite) with ``d_M(x, x') = (x - x')^T M (x - x')``. After ``fit(X, Y)``:

- ``M_``: the learned matrix, projected onto the PSD cone;
- ``L_``: a d x d factor with ``M_ = L_.T @ L_``, so ``transform(X) = X @ L_.T`` and squared Euclidean
  distances after the transform are exactly ``d_M``;
- ``n_features_in_``, ``task_`` (the task of the targets), and per method ``n_pairs_`` etc.

A subclass sets ``method`` (the name printed in messages), ``tasks`` (the tasks it is defined for)
and implements ``_fit_metric(X, targets) -> M``; the base validates the input, encodes the targets
with :func:`hraml_core.tasks.encode_targets`, rejects a task the method is not defined for, and
projects the result onto the PSD cone.

Pairs (:func:`sample_pairs`) follow the authors' protocol (../shared/reference/PROTOCOL.md): every training sample gets
``n_partners`` partners. For classes, ``balance`` of them are its nearest same-class neighbours and
the rest its nearest other-class neighbours in input space; for multi-label sets and label
distributions they are drawn among its ``n_candidates`` nearest neighbours with probability
proportional to ``(1 / (g + 1e-6)) ** sampling_power``. So there are O(n) pairs, never O(n^2).
"""
from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..relations import Relation
from ..partners import input_space_pairs
from ..tasks import CLASSIFICATION, EncodedTargets, encode_targets
from ..validation import check_matrix


# --------------------------------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------------------------------
def project_psd(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest (Frobenius) symmetric PSD matrix to ``M`` and a factor ``L`` with ``L.T @ L``.

    Symmetrise, eigendecompose (``eigh``), clip negative eigenvalues to 0. The returned matrix is
    rebuilt as ``L.T @ L`` so that it and the transform agree to rounding.
    """
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"a Mahalanobis matrix must be square, got shape {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError("the learned matrix contains NaN or infinite values")
    w, V = np.linalg.eigh(0.5 * (M + M.T))
    L = np.sqrt(np.clip(w, 0.0, None))[:, None] * V.T  # rows: sqrt(w_k) v_k^T
    return L.T @ L, L


def spd_power(S: np.ndarray, p: float) -> np.ndarray:
    """``S ** p`` for a symmetric positive definite ``S`` (through ``eigh``)."""
    w, V = np.linalg.eigh(0.5 * (S + S.T))
    w = np.clip(w, np.finfo(np.float64).tiny, None)
    return (V * w**p) @ V.T


def pair_kernel(D1: np.ndarray, D2: np.ndarray | None = None) -> np.ndarray:
    """The doublet kernel between pairs given by their difference vectors (rows of D1, D2).

    ``K_pq = ((x_i - x_j)^T (x_k - x_l))^2 = <T_ij, T_kl>_F`` with ``T_ij = (x_i - x_j)(x_i - x_j)^T``:
    the Frobenius inner product of the pairs' outer products, in O(d) per entry instead of O(d^2).
    """
    D1 = np.asarray(D1, dtype=np.float64)
    D2 = D1 if D2 is None else np.asarray(D2, dtype=np.float64)
    K = D1 @ D2.T
    return np.square(K, out=K)


def metric_from_pairs(D: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_p w_p T_p = D^T diag(w) D`` in O(P d^2), without forming a d x d matrix per pair."""
    D = np.asarray(D, dtype=np.float64)
    return D.T @ (np.asarray(weights, dtype=np.float64)[:, None] * D)


def pair_sq_dists(D: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``d_M`` of every pair given by its difference vector: ``sum_k (D M)_pk D_pk``."""
    return np.einsum("pi,pi->p", D @ M, D)


# --------------------------------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------------------------------
def sample_pairs(
    X: np.ndarray,
    targets: EncodedTargets,
    relation: Relation | None,
    n_partners: int = 4,
    balance: float = 0.5,
    sampling_power: float = 1.0,
    n_candidates: int = 20,
    rng=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b), a < b, each unordered pair once: ``n_partners`` partners per sample, chosen in
    the input space as the authors do (:func:`hraml_core.partners.input_space_pairs`)."""
    seed = int(np.random.default_rng(rng).integers(2**31 - 1))
    return input_space_pairs(X, targets.Y, targets.task, relation, n_partners, balance, sampling_power,
                             n_candidates, seed=seed, unique=True)


# --------------------------------------------------------------------------------------------------
# The estimator base
# --------------------------------------------------------------------------------------------------
class MahalanobisBaseline(TransformerMixin, BaseEstimator):
    """Base of the baselines: ``fit(X, Y)`` learns ``M_``; ``transform(X) = X @ L_.T``."""

    #: Name used in messages and tables.
    method: ClassVar[str] = "baseline"
    #: The tasks (hraml_core.tasks) the method is defined for.
    tasks: ClassVar[tuple[str, ...]] = (CLASSIFICATION,)

    # -- to implement -------------------------------------------------------------------------------
    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------
    def _encode(self, Y, n_samples: int) -> EncodedTargets:
        if Y is None:
            raise ValueError(f"{self.method} requires y to be passed, but the target y is None "
                             "(it is a supervised metric learner)")
        targets = encode_targets(Y)
        if targets.Y.shape[0] != n_samples:
            raise ValueError(
                f"{self.method}: X has {n_samples} samples but Y has {targets.Y.shape[0]}"
            )
        if targets.task not in self.tasks and CLASSIFICATION in self.tasks and _is_one_hot(targets.Y):
            # A one-hot matrix is detected as multi-label with one label per row: it is classes.
            codes = targets.Y.argmax(axis=1)
            targets = encode_targets(codes, task=CLASSIFICATION)
        if targets.task not in self.tasks:
            what = " or ".join(repr(t) for t in self.tasks)
            raise ValueError(
                f"{self.method} is defined only for {what} targets, got {targets.task!r} targets"
                + (
                    "; use raml_krr or raml_svr (or HRAML) for multi-label and label-distribution targets"
                    if self.tasks == (CLASSIFICATION,)
                    else ""
                )
            )
        if targets.task == CLASSIFICATION and np.any(targets.Y.sum(axis=0) < 2):
            lone = targets.classes[np.flatnonzero(targets.Y.sum(axis=0) < 2)[0]]
            raise ValueError(f"{self.method}: class {lone!r} has a single sample; every class needs at least 2")
        return targets

    def fit(self, X, Y):
        """Learn ``M_`` from features ``X`` (n x d) and targets ``Y`` (classes, or a label matrix).

        A scipy.sparse ``X`` is densified: every method here works on dense differences and learns
        a dense d x d matrix anyway (memory O(d^2), each eigendecomposition O(d^3); for thousands of
        features reduce the dimension first, as the paper's authors did with PCA to 100).
        """
        X = check_matrix(X, owner=self.method, min_samples=2, estimator=self, reset=True)
        targets = self._encode(Y, X.shape[0])
        M = self._fit_metric(X, targets)
        self.M_, self.L_ = project_psd(M)
        self.task_ = targets.task
        return self

    def transform(self, X) -> np.ndarray:
        """``X @ L_.T``: squared Euclidean distances of the result are ``d_M``."""
        check_is_fitted(self, "L_")
        X = check_matrix(X, owner=self.method, estimator=self, reset=False)
        return X @ self.L_.T

    def get_mahalanobis_matrix(self) -> np.ndarray:
        """``M_`` (the name metric-learn uses)."""
        check_is_fitted(self, "M_")
        return self.M_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.sparse = True  # accepted, and densified (see fit)
        return tags


class MetricLearnBaseline(MahalanobisBaseline):
    """A baseline that is metric-learn's estimator of the same name, built with this one's
    parameters (:meth:`_metric_learn_model`) and fitted on the class codes."""

    def _metric_learn_model(self):  # pragma: no cover
        raise NotImplementedError

    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:
        model = self._metric_learn_model()
        with warnings.catch_warnings():
            # metric-learn 0.7.0 on scikit-learn 1.7 warns about deprecated sklearn arguments.
            warnings.simplefilter("ignore", FutureWarning)
            model.fit(X, targets.Y.argmax(axis=1))
        self.n_iter_ = int(model.n_iter_)
        return model.get_mahalanobis_matrix()


def _is_one_hot(Y: np.ndarray) -> bool:
    return bool(np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1))


def rng_of(random_state) -> np.random.Generator:
    """A numpy Generator from None, an int, a Generator (or a legacy RandomState)."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    return np.random.default_rng(random_state)


class PairBaseline(MahalanobisBaseline):
    """A baseline learned from sampled pairs (see :func:`sample_pairs`).

    Subclasses take the constructor parameters ``n_partners``, ``balance``, ``random_state`` and,
    where they build a P x P pair kernel, ``max_pairs``; for multi-label / distribution targets also
    ``relation``, ``sampling_power`` and ``n_candidates``. After fit, ``n_pairs_`` is the number of
    pairs used.
    """

    def _pairs(self, X: np.ndarray, targets: EncodedTargets, relation: Relation | None = None):
        """Difference vectors D (P x d), anchors a and partners b of the sampled pairs."""
        rng = rng_of(getattr(self, "random_state", None))
        a, b = sample_pairs(
            X,
            targets,
            relation,
            n_partners=int(self.n_partners),
            balance=float(self.balance),
            sampling_power=float(getattr(self, "sampling_power", 1.0)),
            n_candidates=int(getattr(self, "n_candidates", 20)),
            rng=rng,
        )
        max_pairs = getattr(self, "max_pairs", None)
        if max_pairs is not None and len(a) > int(max_pairs):
            warnings.warn(
                f"{self.method}: {len(a)} pairs sampled, using a random {int(max_pairs)} of them "
                f"(max_pairs; the pair kernel is max_pairs x max_pairs)",
                UserWarning,
                stacklevel=3,
            )
            keep = np.sort(rng.choice(len(a), int(max_pairs), replace=False))
            a, b = a[keep], b[keep]
        self.n_pairs_ = len(a)
        return X[a] - X[b], a, b


def similar_mask(targets: EncodedTargets, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For class labels: True where the pair shares its class."""
    codes = targets.Y.argmax(axis=1)
    return codes[a] == codes[b]
