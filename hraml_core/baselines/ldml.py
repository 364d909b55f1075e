"""LDML: Logistic Discriminant Metric Learning (Guillaumin, Verbeek & Schmid, ICCV 2009).

A pair (i, j) is modelled as similar with probability ``p_ij = sigma(b - d_M(x_i, x_j))``; M and the
bias b maximise the log-likelihood ``sum t_ij log p_ij + (1 - t_ij) log(1 - p_ij)`` of the pairs'
labels (t = 1 same class, 0 otherwise). The objective is concave in (M, b); it is maximised here by
accelerated projected gradient ascent (FISTA) with the step 1 / Lipschitz constant (the largest
eigenvalue of the pairs' Gram operator / 4, by power iteration), M projected onto the PSD cone after
every step. No maintained library implements LDML (metric-learn 0.7.0 has none), so it is written
here.

Pairs: per sample ``n_partners`` partners, ``balance`` of them its nearest same-class neighbours and
the rest its nearest other-class ones (the authors' protocol for the baselines). Differences are
scaled so their mean squared norm is 1 (M = I, b = 1 starts at p = 1/2 on an average pair); the
learned M is scaled back. Class labels only.
"""
from __future__ import annotations

import numpy as np

from ..tasks import EncodedTargets
from .base import PairBaseline, metric_from_pairs, pair_sq_dists, project_psd, similar_mask


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _gram_lmax(D: np.ndarray, n_iter: int = 30, seed: int = 0) -> float:
    """Largest eigenvalue of (1/P) sum_p phi_p phi_p^T, phi_p = (T_p, -1), by power iteration."""
    P, d = D.shape
    V = np.eye(d) + 0.01 * np.random.default_rng(seed).standard_normal((d, d))
    V = 0.5 * (V + V.T)
    c = 1.0
    lam = 0.0
    for _ in range(n_iter):
        norm = np.sqrt(np.sum(V * V) + c * c)
        V, c = V / norm, c / norm
        q = pair_sq_dists(D, V) - c
        V, c = metric_from_pairs(D, q) / P, -q.mean()
        lam = np.sqrt(np.sum(V * V) + c * c)
    return float(lam)


class LDML(PairBaseline):
    """Logistic Discriminant Metric Learning (Guillaumin et al., ICCV 2009).

    Parameters
    ----------
    n_partners, balance : pairs per sample and the share of same-class partners.
    max_iter : int, default 300
        Projected-gradient iterations (each O(P d^2) plus a d x d eigendecomposition).
    tol : float, default 1e-6
        Stop when the relative change of M falls below it.
    random_state : unused by the nearest-neighbour pairs; kept for a uniform interface.
    """

    method = "LDML"

    def __init__(self, n_partners=4, balance=0.5, max_iter=300, tol=1e-6, random_state=None):
        self.n_partners = n_partners
        self.balance = balance
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:
        D, a, b_idx = self._pairs(X, targets)
        t = similar_mask(targets, a, b_idx).astype(np.float64)
        scale = float(np.mean(np.einsum("pi,pi->p", D, D)))
        if scale <= 0:
            raise ValueError("LDML: every sampled pair has identical features")
        D = D / np.sqrt(scale)
        P, d = D.shape
        step = 4.0 / max(_gram_lmax(D), 1e-12)

        def gradient(M, b):
            p = _sigmoid(b - pair_sq_dists(D, M))
            return metric_from_pairs(D, p - t) / P, float(np.mean(t - p))

        M, b = np.eye(d), 1.0
        Y_M, Y_b, theta = M, b, 1.0
        self.n_iter_ = 0
        for it in range(int(self.max_iter)):
            gM, gb = gradient(Y_M, Y_b)
            M_new, _ = project_psd(Y_M + step * gM)
            b_new = Y_b + step * gb
            theta_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * theta * theta))
            mom = (theta - 1.0) / theta_new
            Y_M, Y_b = M_new + mom * (M_new - M), b_new + mom * (b_new - b)
            change = np.linalg.norm(M_new - M) / max(np.linalg.norm(M), 1e-12)
            M, b, theta = M_new, b_new, theta_new
            self.n_iter_ = it + 1
            if change < self.tol:
                break
        self.bias_ = b
        return M / scale
