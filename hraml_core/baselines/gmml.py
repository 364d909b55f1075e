"""GMML: Geometric Mean Metric Learning (Zadeh, Hosseini & Sra, ICML 2016).

GMML minimises ``tr(A S) + tr(A^-1 D)`` over SPD ``A``, with S and D the scatter of the similar and
the dissimilar pairs' differences; the minimiser is the geometric mean ``S^-1 # D``. The weighted
and regularised form (the paper's eq. for ``lambda * D_sld(A, A0)``) is closed-form too:

    A = (S + lambda A0^-1)^-1  #_t  (D + lambda A0),   P #_t Q = P^1/2 (P^-1/2 Q P^-1/2)^t P^1/2,

here with ``A0 = I``. ``t = 0.5`` is the plain geometric mean; t -> 1 weighs the dissimilar scatter
more. No maintained library implements GMML (metric-learn 0.7.0 has none), so it is written here.

Pairs: the authors sample random same-class / different-class pairs; here S and D are the *mean*
scatter over all of them (the limit of that sampling), computed exactly from the class means and
covariances in O(n d^2), so no pair is ever formed. Class labels only.
"""
from __future__ import annotations

import numpy as np

from ..tasks import EncodedTargets
from .base import MahalanobisBaseline, spd_power


def pair_scatters(X: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of (x_i - x_j)(x_i - x_j)^T over same-class pairs (S) and over other-class pairs (D).

    Over all ordered pairs of a set of m points, the sum is 2 m^2 Cov (population covariance), so
    S = sum_c 2 n_c^2 Cov_c / sum_c n_c (n_c - 1) and D = (2 n^2 Cov - sum_c 2 n_c^2 Cov_c) /
    (n^2 - sum_c n_c^2).
    """
    n = X.shape[0]
    Xc = X - X.mean(axis=0)
    total = 2.0 * n * (Xc.T @ Xc)  # 2 n^2 Cov
    within = np.zeros_like(total)
    n_same = 0.0
    sizes = np.bincount(codes)
    for c in np.flatnonzero(sizes):
        Z = X[codes == c]
        Z = Z - Z.mean(axis=0)
        within += 2.0 * sizes[c] * (Z.T @ Z)
        n_same += sizes[c] * (sizes[c] - 1.0)
    n_diff = n * n - float(np.sum(sizes.astype(np.float64) ** 2))
    return within / n_same, (total - within) / n_diff


def geometric_mean(P: np.ndarray, Q: np.ndarray, t: float = 0.5) -> np.ndarray:
    """The weighted geometric mean ``P #_t Q`` of two SPD matrices."""
    Ph, Pih = spd_power(P, 0.5), spd_power(P, -0.5)
    return Ph @ spd_power(Pih @ Q @ Pih, t) @ Ph


class GMML(MahalanobisBaseline):
    """Geometric Mean Metric Learning (Zadeh, Hosseini & Sra, ICML 2016), closed form.

    Parameters
    ----------
    t : float in [0, 1], default 0.5
        Weight of the geometric mean (0.5: the plain ``S^-1 # D``).
    reg : float >= 0, default 0.1
        ``lambda``, the pull towards the prior ``A0 = I`` (also what keeps S invertible when some
        features are constant). The scatters are means over pairs, so for standardised features
        their diagonal is about 2 and 0.1 is a mild regularisation.
    random_state : unused (the closed form is deterministic); kept so that every baseline takes
        ``get_baseline(name, random_state=seed)``.
    """

    method = "GMML"

    def __init__(self, t=0.5, reg=0.1, random_state=None):
        self.t = t
        self.reg = reg
        self.random_state = random_state

    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:
        if not 0.0 <= self.t <= 1.0:
            raise ValueError(f"GMML: t must lie in [0, 1], got {self.t}")
        if self.reg < 0:
            raise ValueError(f"GMML: reg must be >= 0, got {self.reg}")
        S, D = pair_scatters(X, targets.Y.argmax(axis=1))
        eye = np.eye(X.shape[1])
        S_reg, D_reg = S + self.reg * eye, D + self.reg * eye
        if self.reg == 0 and np.linalg.eigvalsh(S_reg)[0] <= 1e-12 * np.trace(S_reg):
            raise ValueError("GMML: the similar-pair scatter is singular; use reg > 0")
        return geometric_mean(spd_power(S_reg, -1.0), D_reg, self.t)
