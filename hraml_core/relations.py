"""Label-space relation functions g(y_i, y_j): how different two samples' labels are.

HRAML learns an embedding whose squared distances D_ij^2 match g. Each relation here is a
vectorised torch function from two label matrices (n x L, m x L) to an n x m matrix, with a
one-line formula for display. The paper's relation is ``l1`` (eq. 11).

The scale of g matters: embeddings live on the unit sphere, where D^2 lies in [0, 4], and the mean
of D^2 over any set of points is at most 2 (sum_ij ||f_i - f_j||^2 = 2n^2 - 2||sum_i f_i||^2), so 2
is the largest value that every pair can reach at once (mutually orthogonal embeddings).
:func:`relation_scale` turns the ``scale`` option into a factor applied to g:

- ``"auto"`` (default): ``min(1, 2 / g_max)``. It keeps the paper's g untouched wherever g already
  stays within 2 (one-hot classes under l1 give exactly 0 or 2; label distributions under l1 give
  0..2) and shrinks g into [0, 2] only when it could not be matched otherwise (multi-label sets under
  l1 reach the number of labels; symmetric KL is unbounded).
- ``"max"``: ``2 / g_max``, always stretch the largest observed relation to 2.
- ``"none"``: factor 1, g exactly as the formula gives it.
- a positive number: that factor.

g_max is the largest g between the training label rows (distinct rows; a seeded sample of 2048 of
them when there are more).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

Tensor = torch.Tensor

#: The largest D^2 that all pairs of a set of unit vectors can reach together (see module docstring).
REACHABLE_D2 = 2.0
#: Smoothing of distributions before logarithms in ``kl`` and ``js``.
LOG_EPS = 1e-3


def _as_tensor(Y) -> Tensor:
    if isinstance(Y, Tensor):
        return Y if Y.is_floating_point() else Y.float()
    return torch.as_tensor(np.asarray(Y, dtype=np.float32))


def _l1(A: Tensor, B: Tensor) -> Tensor:
    return torch.cdist(A, B, p=1)


def _l2(A: Tensor, B: Tensor) -> Tensor:
    # The exact path: the matmul shortcut loses precision on equal rows (g must be exactly 0 there).
    return torch.cdist(A, B, p=2, compute_mode="donot_use_mm_for_euclid_dist")


def _squared_l2(A: Tensor, B: Tensor) -> Tensor:
    return _l2(A, B).square()


def _hamming(A: Tensor, B: Tensor) -> Tensor:
    return torch.cdist(A, B, p=1) / A.shape[1]


def _jaccard(A: Tensor, B: Tensor) -> Tensor:
    # For non-negative rows: sum(min) = (Sa + Sb - L1)/2 and sum(max) = (Sa + Sb + L1)/2, so
    # 1 - sum(min)/sum(max) = 2 L1 / (Sa + Sb + L1). Two empty label sets are identical (0).
    l1 = torch.cdist(A, B, p=1)
    denom = A.sum(1, keepdim=True) + B.sum(1)[None, :] + l1
    return torch.where(denom > 0, 2 * l1 / denom.clamp_min(1e-12), torch.zeros_like(l1))


def _cosine(A: Tensor, B: Tensor) -> Tensor:
    na, nb = A.norm(dim=1, keepdim=True), B.norm(dim=1, keepdim=True)
    sim = (A @ B.T) / (na * nb.T).clamp_min(1e-12)
    both_empty = (na == 0) & (nb.T == 0)
    sim = torch.where(both_empty, torch.ones_like(sim), sim)
    return (1 - sim).clamp(0, 2)


def _chebyshev(A: Tensor, B: Tensor) -> Tensor:
    return torch.cdist(A, B, p=float("inf"))


def _smooth(P: Tensor) -> Tensor:
    P = P.clamp_min(0) + LOG_EPS
    return P / P.sum(1, keepdim=True)


def _kl(A: Tensor, B: Tensor) -> Tensor:
    # Symmetrised KL: 1/2 sum_k (p_k - q_k)(log p_k - log q_k), expanded into matrix products.
    P, Q = _smooth(A), _smooth(B)
    lP, lQ = P.log(), Q.log()
    out = (P * lP).sum(1, keepdim=True) + (Q * lQ).sum(1)[None, :] - P @ lQ.T - lP @ Q.T
    return (0.5 * out).clamp_min(0)


def _js(A: Tensor, B: Tensor, chunk: int = 256) -> Tensor:
    # JS has no matrix-product form: broadcast over label columns, a block of rows at a time.
    P, Q = _smooth(A), _smooth(B)
    lQ = Q.log()
    rows = []
    for s in range(0, P.shape[0], chunk):
        p = P[s : s + chunk, None, :]
        M = 0.5 * (p + Q[None, :, :])
        lM = M.log()
        rows.append(0.5 * (p * (p.log() - lM)).sum(-1) + 0.5 * (Q[None] * (lQ[None] - lM)).sum(-1))
    return torch.cat(rows).clamp_min(0)


def _binary(A: Tensor, B: Tensor) -> Tensor:
    return 2.0 * (torch.cdist(A, B, p=1) > 1e-6).to(A.dtype)


@dataclass(frozen=True)
class Relation:
    """A label-space relation: ``relation(Ya, Yb)`` is the matrix of g between their rows."""

    name: str
    formula: str
    description: str
    fn: Callable[[Tensor, Tensor], Tensor]

    def __call__(self, Ya, Yb=None) -> Tensor:
        A = _as_tensor(Ya)
        B = A if Yb is None else _as_tensor(Yb)
        if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
            raise ValueError(
                f"relation {self.name!r} needs two label matrices with the same number of columns, "
                f"got shapes {tuple(A.shape)} and {tuple(B.shape)}"
            )
        B = B.to(A.dtype)
        return self.fn(A, B)


RELATIONS: dict[str, Relation] = {}


def register_relation(relation: Relation) -> Relation:
    """Add a relation to the registry (the dashboard and CLI offer every registered name)."""
    RELATIONS[relation.name] = relation
    return relation


for _r in (
    Relation("l1", "g = Σₖ |yᵢₖ − yⱼₖ|", "the paper's eq. 11: 0/2 for classes, #differing labels for sets", _l1),
    Relation("l2", "g = √Σₖ (yᵢₖ − yⱼₖ)²", "Euclidean distance between label vectors", _l2),
    Relation("squared_l2", "g = Σₖ (yᵢₖ − yⱼₖ)²", "squared Euclidean distance between label vectors", _squared_l2),
    Relation("hamming", "g = (1/L) Σₖ |yᵢₖ − yⱼₖ|", "fraction of differing labels", _hamming),
    Relation("jaccard", "g = 1 − Σₖ min(yᵢₖ, yⱼₖ) / Σₖ max(yᵢₖ, yⱼₖ)", "Jaccard distance of label sets (weighted for distributions)", _jaccard),
    Relation("cosine", "g = 1 − yᵢ·yⱼ / (‖yᵢ‖ ‖yⱼ‖)", "cosine distance between label vectors", _cosine),
    Relation("chebyshev", "g = maxₖ |yᵢₖ − yⱼₖ|", "largest difference on any one label", _chebyshev),
    Relation("kl", "g = ½ [KL(yᵢ ‖ yⱼ) + KL(yⱼ ‖ yᵢ)]", "symmetrised Kullback-Leibler divergence of distributions (smoothed by 1e-3)", _kl),
    Relation("js", "g = ½ KL(yᵢ ‖ m) + ½ KL(yⱼ ‖ m),  m = (yᵢ + yⱼ)/2", "Jensen-Shannon divergence of distributions (nats)", _js),
    Relation("binary", "g = 0 if yᵢ = yⱼ else 2", "similar / dissimilar: the classic pairwise constraint", _binary),
):
    register_relation(_r)


def get_relation(relation: str | Relation | Callable) -> Relation:
    """Look a relation up by name; a Relation passes through; a plain callable is wrapped."""
    if isinstance(relation, Relation):
        return relation
    if isinstance(relation, str):
        try:
            return RELATIONS[relation]
        except KeyError:
            raise ValueError(
                f"unknown relation {relation!r}; choose one of {', '.join(RELATIONS)} or pass a callable"
            ) from None
    if callable(relation):
        name = getattr(relation, "__name__", "custom")
        return Relation(name, f"g = {name}(yᵢ, yⱼ)", "user-supplied relation", relation)
    raise ValueError(f"relation must be a name, a Relation or a callable, got {type(relation).__name__}")


def unique_rows(Y) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(Y, axis=0, return_inverse=True)`` for a label matrix, as float32 rows.

    numpy compares whole rows in its sort, which is slow at a million rows (and runs twice at
    every run's start). Rows of 0s and 1s (one-hot classes, label sets) are packed into bits
    first, the first column the most significant, so that sorting the packed keys (one integer per
    row for up to 64 labels) is sorting the rows: same rows, same order, same inverse.
    """
    Y = np.asarray(Y, dtype=np.float32)
    if Y.ndim == 2 and Y.shape[1] and np.all((Y == 0) | (Y == 1)):
        packed = np.packbits(Y.astype(bool), axis=1)  # (n, ceil(L / 8)) bytes, big-endian bits
        if packed.shape[1] <= 8:
            keys = np.zeros((len(Y), 8), np.uint8)
            keys[:, 8 - packed.shape[1]:] = packed  # right-aligned: the integer order is the row order
            _, first, inverse = np.unique(keys.view(">u8").reshape(-1), return_index=True, return_inverse=True)
        else:
            _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
        return Y[first], inverse.reshape(-1)
    rows, inverse = np.unique(Y, axis=0, return_inverse=True)
    return rows, inverse.reshape(-1)


def relation_max(relation: Relation, Y, max_rows: int = 2048, seed: int = 0) -> float:
    """The largest g between distinct rows of ``Y`` (a seeded sample when there are many)."""
    rows, _ = unique_rows(Y)
    if len(rows) > max_rows:
        rows = rows[np.random.default_rng(seed).choice(len(rows), max_rows, replace=False)]
    G = relation(rows)
    if not torch.all(torch.isfinite(G)):
        raise ValueError(f"relation {relation.name!r} gives NaN or infinite values on these labels")
    if torch.any(G < -1e-6):
        raise ValueError(f"relation {relation.name!r} gives negative values; g must be a dissimilarity >= 0")
    return float(G.max())


def relation_scale(scale, g_max: float) -> float:
    """The factor applied to g for a ``scale`` option (see the module docstring)."""
    if isinstance(scale, str):
        if scale == "none":
            return 1.0
        if g_max <= 0:
            return 1.0
        if scale == "auto":
            return min(1.0, REACHABLE_D2 / g_max)
        if scale == "max":
            return REACHABLE_D2 / g_max
        raise ValueError(f"unknown scale {scale!r}; expected 'auto', 'max', 'none' or a positive number")
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating, np.integer)):
        raise ValueError(f"scale must be 'auto', 'max', 'none' or a positive number, got {scale!r}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    return float(scale)
