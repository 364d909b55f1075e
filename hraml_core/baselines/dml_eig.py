"""DML-eig: distance metric learning with eigenvalue optimisation (Ying & Li, JMLR 2012).

The problem is ``max_{M PSD} min_{(i,j) dissimilar} d_M(x_i, x_j)`` subject to
``sum_{(i,j) similar} d_M(x_i, x_j) <= 1``. With X_S the similar pairs' scatter and
``X~_t = X_S^-1/2 X_t X_S^-1/2`` for each dissimilar pair t, it becomes (their Theorem 1)

    max_{S in spectrahedron}  min_t <X~_t, S>,      spectrahedron = {S PSD, tr S = 1},

an eigenvalue optimisation (its dual is ``min_u lambda_max(sum_t u_t X~_t)`` over the simplex).
Their algorithm, followed here: smooth the min by ``f_mu(S) = -mu log sum_t exp(-<X~_t, S>/mu)``
and maximise f_mu over the spectrahedron by Frank-Wolfe: the ascent direction is the rank-one
``v v^T`` with v the top eigenvector of ``grad f_mu(S) = sum_t u_t X~_t`` (u the softmax weights),
and ``S <- (1 - a) S + a v v^T`` with the step a by exact line search (cheap: a rank-one update
changes each <X~_t, S> by a scalar). It stops when the Frank-Wolfe duality gap
``lambda_max(grad) - <grad, S>`` falls below ``tol`` times the objective. Then
``M = X_S^-1/2 S X_S^-1/2``. No maintained library implements DML-eig (metric-learn 0.7.0 has none),
so it is written here.

Pairs: per sample ``n_partners`` partners, ``balance`` of them its nearest same-class neighbours
(similar set) and the rest its nearest other-class ones (dissimilar set). X_S is the *mean* similar
scatter plus ``ridge * tr(X_S)/d * I`` so it is invertible when features are constant. Class labels
only.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import eigh

from ..tasks import EncodedTargets
from .base import PairBaseline, metric_from_pairs, similar_mask, spd_power


def _smooth_min(z: np.ndarray, mu: float) -> float:
    """-mu log sum exp(-z / mu): a smooth lower bound of min(z), within mu log(len(z))."""
    m = z.min()
    return float(m - mu * np.log(np.sum(np.exp(-(z - m) / mu))))


def _softmin_weights(z: np.ndarray, mu: float) -> np.ndarray:
    e = np.exp(-(z - z.min()) / mu)
    return e / e.sum()


def _line_search(v: np.ndarray, w: np.ndarray, mu: float, n_iter: int = 40) -> float:
    """argmax over a in [0, 1] of the smoothed min of (1 - a) v + a w (concave): golden section."""
    def f(a):
        return _smooth_min((1.0 - a) * v + a * w, mu)

    lo, hi = 0.0, 1.0
    r = 0.5 * (np.sqrt(5.0) - 1.0)
    x1, x2 = hi - r * (hi - lo), lo + r * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(n_iter):
        if f1 < f2:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + r * (hi - lo)
            f2 = f(x2)
        else:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - r * (hi - lo)
            f1 = f(x1)
    return 0.5 * (lo + hi)


class DMLEig(PairBaseline):
    """DML-eig (Ying & Li, JMLR 2012): smoothed eigenvalue optimisation by Frank-Wolfe.

    Parameters
    ----------
    n_partners, balance : pairs per sample and the share of same-class (similar) partners.
    smoothing : float, default 0.01
        mu of the smoothed min, relative to the mean of <X~_t, S> at the start (S = I/d).
    max_iter : int, default 500
        Frank-Wolfe iterations (each O(P d^2) plus the top eigenvector of a d x d matrix).
    tol : float, default 1e-4
        Relative duality gap at which to stop.
    ridge : float, default 1e-3
        Added to X_S (times its mean eigenvalue) before the inverse square root.
    random_state : unused by the nearest-neighbour pairs; kept for a uniform interface.
    """

    method = "DML-eig"

    def __init__(self, n_partners=4, balance=0.5, smoothing=0.01, max_iter=500, tol=1e-4, ridge=1e-3, random_state=None):
        self.n_partners = n_partners
        self.balance = balance
        self.smoothing = smoothing
        self.max_iter = max_iter
        self.tol = tol
        self.ridge = ridge
        self.random_state = random_state

    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:
        Dp, a, b = self._pairs(X, targets)
        same = similar_mask(targets, a, b)
        if same.all() or not same.any():
            raise ValueError("DML-eig needs both similar and dissimilar pairs; use balance strictly between 0 and 1")
        d = X.shape[1]
        XS = metric_from_pairs(Dp[same], np.full(int(same.sum()), 1.0 / same.sum()))
        XS += self.ridge * max(np.trace(XS) / d, 1e-12) * np.eye(d)
        W = spd_power(XS, -0.5)
        Dt = Dp[~same] @ W  # rows: X_S^-1/2 (x_i - x_j), so <X~_t, S> = Dt_t^T S Dt_t

        S = np.eye(d) / d
        v = np.einsum("pi,pi->p", Dt, Dt) / d
        mu = self.smoothing * float(v.mean())
        self.n_iter_ = 0
        for it in range(int(self.max_iter)):
            u = _softmin_weights(v, mu)
            G = metric_from_pairs(Dt, u)
            lam, vec = eigh(G, subset_by_index=[d - 1, d - 1])
            top = vec[:, 0]
            gap = float(lam[0] - u @ v)
            self.n_iter_ = it + 1
            if gap <= self.tol * max(abs(float(v.min())), 1e-12):
                break
            w = (Dt @ top) ** 2
            step = _line_search(v, w, mu)
            if step <= 0.0:
                break
            S = (1.0 - step) * S + step * np.outer(top, top)
            v = (1.0 - step) * v + step * w
        self.min_dissimilar_ = float(v.min())  # min_t <X~_t, S>: the objective (mean-scatter units)
        return W @ S @ W
