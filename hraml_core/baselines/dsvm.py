"""DSVM: the doublet SVM (Wang, Zuo, Zhang, Meng & Zhang, "A kernel classification framework for
metric learning", IEEE TNNLS 2015).

A doublet is a pair z = (x_i, x_j) with label h = +1 when the samples are of different classes and
-1 when of the same class. An SVM on doublets with the degree-2 polynomial doublet kernel

    K(z_ij, z_kl) = ((x_i - x_j)^T (x_k - x_l))^2 = <T_ij, T_kl>_F

has the decision function ``sum_p alpha_p h_p <T_p, T> + b``, i.e. ``d_M + b`` with
``M = sum_p alpha_p h_p T_p``; M is then projected onto the PSD cone (as the paper does). The SVM is
scikit-learn's ``SVC(kernel="precomputed")``. No maintained library implements DSVM (metric-learn
0.7.0 has none), so the doublet construction and the read-out of M are written here.

Doublets: per sample ``n_partners`` partners, ``balance`` of them its nearest same-class neighbours,
the rest its nearest other-class neighbours (the paper's k-nearest-neighbour doublets). The kernel is
P x P with P about n * n_partners, capped at ``max_pairs`` (a random subset, with a warning).
Differences are scaled to mean squared norm 1 before the kernel so that ``C`` does not depend on the
feature scale; M is scaled back. Class labels only.
"""
from __future__ import annotations

import numpy as np
from sklearn.svm import SVC

from ..tasks import EncodedTargets
from .base import PairBaseline, metric_from_pairs, pair_kernel, similar_mask


class DSVM(PairBaseline):
    """Doublet-SVM metric learning (Wang et al., IEEE TNNLS 2015).

    Parameters
    ----------
    C : float, default 1.0
        SVM soft-margin parameter.
    n_partners, balance : doublets per sample and the share of same-class partners.
    max_pairs : int, default 6000
        Cap on the number of doublets (the kernel takes max_pairs^2 * 8 bytes).
    tol : float, default 1e-3
        libsvm stopping tolerance.
    random_state : seeds the subsample when ``max_pairs`` applies.
    """

    method = "DSVM"

    def __init__(self, C=1.0, n_partners=4, balance=0.5, max_pairs=6000, tol=1e-3, random_state=None):
        self.C = C
        self.n_partners = n_partners
        self.balance = balance
        self.max_pairs = max_pairs
        self.tol = tol
        self.random_state = random_state

    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:
        D, a, b = self._pairs(X, targets)
        h = np.where(similar_mask(targets, a, b), -1, 1)
        if np.all(h == h[0]):
            raise ValueError("DSVM: the sampled doublets are all of one kind; use balance strictly between 0 and 1")
        scale = float(np.mean(np.einsum("pi,pi->p", D, D)))
        D = D / np.sqrt(scale)
        svm = SVC(kernel="precomputed", C=self.C, tol=self.tol)
        svm.fit(pair_kernel(D), h)
        # dual_coef_ holds alpha_p * h_p (sign of the class classes_[1] = +1, dissimilar).
        sign = 1.0 if svm.classes_[1] == 1 else -1.0
        self.n_support_ = int(len(svm.support_))
        return sign * metric_from_pairs(D[svm.support_], svm.dual_coef_[0]) / scale
