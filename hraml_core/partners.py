"""Partners in the input space: the authors' pairs, computed once over a whole training set.

Every training sample (an anchor) gets ``partners`` partners among its nearest neighbours in the
*input* space (../shared/reference/PROTOCOL.md, "Pairs"; the authors' get_distance_index.m and
muti_label_sampling.m):

- classes: ``round(balance * partners)`` nearest same-class samples and the rest nearest
  other-class samples;
- label sets and label distributions: partners drawn without replacement among the
  ``candidates`` nearest samples, with probability proportional to
  ``(1 / (g + 1e-6)) ** sampling_power`` where g is the label relation (0 draws uniformly).

The neighbours come from scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors` (exact,
Euclidean). The ``neighbors`` sampler (:mod:`hraml_core.samplers`) steps through these pairs and
the pair-based baselines (:mod:`hraml_core.baselines`) learn from them.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from .tasks import CLASSIFICATION

#: Pairs whose relation is computed at once (memory: chunk x chunk).
_RELATION_CHUNK = 256


def _nearest(X_from: np.ndarray, X_to: np.ndarray, k: int, same_set: bool) -> np.ndarray:
    """Indices (into X_to) of the k nearest rows of X_to for each row of X_from; with ``same_set``
    (X_from is X_to) a row is never its own neighbour."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, X_to.shape[0] - (1 if same_set else 0))
    if k <= 0:
        return np.empty((X_from.shape[0], 0), dtype=np.int64)
    nn = NearestNeighbors(n_neighbors=k).fit(X_to)
    # Without a query, scikit-learn leaves each point out of its own neighbours (duplicates too
    # are handled by index), which is what "never one's own partner" needs.
    return nn.kneighbors(None if same_set else X_from, return_distance=False)


def class_partners(X: np.ndarray, codes: np.ndarray, partners: int, balance: float) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, partners) for class codes: per sample its nearest same-class and other-class rows."""
    n_same = int(round(balance * partners))
    n_other = partners - n_same
    anchors, chosen = [], []
    for c in np.unique(codes):
        members = np.flatnonzero(codes == c)
        others = np.flatnonzero(codes != c)
        for pool, k, same in ((members, n_same, True), (others, n_other, False)):
            if k == 0 or len(pool) - (1 if same else 0) <= 0:
                continue
            idx = _nearest(X[members], X[pool], k, same_set=same)
            anchors.append(np.repeat(members, idx.shape[1]))
            chosen.append(pool[idx].ravel())
    return _concat(anchors, chosen)


def weighted_partners(X: np.ndarray, relation_rows: Callable[[np.ndarray, np.ndarray], np.ndarray], partners: int,
                      sampling_power: float, candidates: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, partners) for label sets and distributions: ``partners`` drawn among each sample's
    ``candidates`` nearest rows with weights (1 / (g + 1e-6)) ** sampling_power.

    ``relation_rows(a, b)`` gives g for the pairs (a[i], b[i]).
    """
    k = max(int(candidates), partners)
    cand = _nearest(X, X, k, same_set=True)
    n, k = cand.shape
    rows = np.repeat(np.arange(n), k)
    g = relation_rows(rows, cand.ravel()).reshape(n, k)
    # Weighted sampling without replacement: the top keys of log w + Gumbel noise (Efraimidis-Spirakis).
    logw = -float(sampling_power) * np.log(np.clip(g, 0.0, None) + 1e-6)
    keys = logw + rng.gumbel(size=logw.shape)
    pick = np.argsort(-keys, axis=1)[:, : min(partners, k)]
    return np.repeat(np.arange(n), pick.shape[1]), np.take_along_axis(cand, pick, axis=1).ravel()


def input_space_pairs(X, Y: np.ndarray, task: str, relation=None, partners: int = 4, balance: float = 0.5,
                      sampling_power: float = 1.0, candidates: int = 20, seed: int = 0,
                      unique: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The authors' pairs of a training set (see the module docstring): ``(anchors, partners)``.

    ``Y`` is the label matrix of ``task`` (one-hot for classes; hraml_core.tasks.encode_targets);
    ``relation`` (hraml_core.relations) weighs the draws for label sets and distributions; ``X`` may
    be a scipy.sparse matrix. Each sample is the anchor of its ``partners`` pairs (ordered pairs, as
    the authors sample them); with ``unique`` each unordered pair is kept once, as (smaller index,
    larger index).
    """
    # sparse rows stay sparse: scikit-learn's neighbours search them as they are
    X = sp.csr_matrix(X, dtype=np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y)
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"pairs need at least 2 samples, got {n}")
    if int(partners) < 1:
        raise ValueError(f"partners must be at least 1, got {partners}")
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance must lie in [0, 1], got {balance}")
    if sampling_power < 0:
        raise ValueError(f"sampling_power must be >= 0, got {sampling_power}")
    if task == CLASSIFICATION:
        a, b = class_partners(X, Y.argmax(axis=1), int(partners), float(balance))
    else:
        if relation is None:
            raise ValueError("label sets and distributions need a relation to weigh the partners")
        a, b = weighted_partners(X, lambda i, j: pair_relation(relation, Y, i, j), int(partners),
                                 float(sampling_power), int(candidates), np.random.default_rng(seed))
    if unique:
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keys = np.unique(lo.astype(np.int64) * n + hi)
        return keys // n, keys % n
    return a, b


def pair_relation(relation, Y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """g(y_a[p], y_b[p]) for each pair p, as float64 (chunked: no n x n matrix)."""
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), _RELATION_CHUNK):
        G = relation(Y[a[s: s + _RELATION_CHUNK]], Y[b[s: s + _RELATION_CHUNK]])
        out[s: s + _RELATION_CHUNK] = np.diagonal(G.detach().cpu().numpy()).astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"relation {relation.name!r} gives NaN or infinite values on these labels")
    return out


def _concat(anchors: list, chosen: list) -> tuple[np.ndarray, np.ndarray]:
    if not anchors:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(anchors).astype(np.int64), np.concatenate(chosen).astype(np.int64)
