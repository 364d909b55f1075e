"""RAML: relation alignment metric learning by kernel regression (Zhu, Ren, Hu, Wang, Zhang &
Yang, "Beyond similar and dissimilar relations: a kernel regression formulation for metric
learning", IJCAI 2018).

Metric learning as a regression on pairs (eqs. 2-3 of the HRAML paper): for each pair
``g(y_i, y_j) = <M, T_ij> + b`` with ``T_ij = (x_i - x_j)(x_i - x_j)^T``. In the dual the regressor is
a kernel machine on pairs with the kernel ``K_pq = <T_p, T_q>_F = ((x_i - x_j)^T (x_k - x_l))^2``
and ``M = sum_p alpha_p T_p = D^T diag(alpha) D`` (D: the pairs' difference vectors), projected onto
the PSD cone. Two regressors:

- :class:`RAMLKRR`: kernel ridge regression in closed form, with an unregularised offset b (the
  LS-SVM system ``[[0, 1^T], [1, K + reg I]] [b; alpha] = [0; g]``: b is the weighted mean of g,
  alpha = (K + reg I)^-1 (g - b)). No maintained library fits KRR with a free offset and exposes
  what M needs, so it is written here (one Cholesky factorisation).
- :class:`RAMLSVR`: epsilon-SVR, scikit-learn's ``SVR(kernel="precomputed")``; alpha = its
  ``dual_coef_``, b = its ``intercept_``.

Both work for all three tasks, with g any relation of :mod:`hraml_core.relations` (default ``"l1"``,
the paper's eq. 11, the HRAML default; g is used as the formula gives it, unscaled: M is free, so no
unit-sphere rescaling is needed). Pairs as the authors sample them (:func:`.base.sample_pairs`):
``n_partners`` per sample (nearest same/other-class neighbours for classes; drawn among the
``n_candidates`` nearest neighbours with probability ~ (1/(g + 1e-6))^sampling_power otherwise). The
kernel is P x P with P about n * n_partners, capped at ``max_pairs`` (a random subset, with a
warning): 6000 pairs are 288 MB. Differences are scaled to mean squared norm 1 before the kernel, so
``reg`` and ``C`` do not depend on the feature scale; M is scaled back.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from sklearn.svm import SVR

from ..relations import get_relation
from ..tasks import TASKS, EncodedTargets
from ..partners import pair_relation
from .base import PairBaseline, metric_from_pairs, pair_kernel


class _RAML(PairBaseline):
    tasks = TASKS

    def _pair_problem(self, X: np.ndarray, targets: EncodedTargets):
        """Scaled differences D, the pair kernel K, the relation values g, and the scale."""
        relation = get_relation(self.relation)
        D, a, b = self._pairs(X, targets, relation)
        g = pair_relation(relation, targets.Y, a, b)
        scale = float(np.mean(np.einsum("pi,pi->p", D, D)))
        if scale <= 0:
            raise ValueError(f"{self.method}: every sampled pair has identical features")
        D = D / np.sqrt(scale)
        return D, pair_kernel(D), g, scale


class RAMLKRR(_RAML):
    """RAML-KRR (Zhu et al., IJCAI 2018): kernel ridge regression of g on the pairs, closed form.

    Parameters
    ----------
    relation : str or callable, default "l1"
        The label-space relation g (a name of ``hraml_core.relations.RELATIONS``).
    reg : float > 0, default 1.0
        Ridge parameter (on the scaled kernel, whose diagonal averages about 1-3).
    n_partners, balance, sampling_power, n_candidates : the pair sampling (see module docstring).
    max_pairs : int, default 6000
        Cap on the number of pairs P (the kernel is P x P).
    random_state : seeds the multi-label sampling and the ``max_pairs`` subsample.
    """

    method = "RAML-KRR"

    def __init__(
        self,
        relation="l1",
        reg=1.0,
        n_partners=4,
        balance=0.5,
        sampling_power=1.0,
        n_candidates=20,
        max_pairs=6000,
        random_state=None,
    ):
        self.relation = relation
        self.reg = reg
        self.n_partners = n_partners
        self.balance = balance
        self.sampling_power = sampling_power
        self.n_candidates = n_candidates
        self.max_pairs = max_pairs
        self.random_state = random_state

    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:
        if not self.reg > 0:
            raise ValueError(f"RAML-KRR: reg must be > 0, got {self.reg}")
        D, K, g, scale = self._pair_problem(X, targets)
        K[np.diag_indices_from(K)] += self.reg
        factor = cho_factor(K, overwrite_a=True, check_finite=False)
        Ai_g = cho_solve(factor, g, check_finite=False)
        Ai_1 = cho_solve(factor, np.ones_like(g), check_finite=False)
        self.intercept_ = float(Ai_g.sum() / Ai_1.sum())
        alpha = Ai_g - self.intercept_ * Ai_1  # (K + reg I)^-1 (g - b)
        return metric_from_pairs(D, alpha) / scale


class RAMLSVR(_RAML):
    """RAML-SVR (Zhu et al., IJCAI 2018): epsilon-SVR of g on the pairs (scikit-learn's SVR).

    Parameters
    ----------
    relation : str or callable, default "l1"
        The label-space relation g.
    C : float, default 1.0
        SVR regularisation parameter.
    epsilon : float, default 0.1
        Width of the insensitive tube (in units of g).
    n_partners, balance, sampling_power, n_candidates : the pair sampling (see module docstring).
    max_pairs : int, default 6000
        Cap on the number of pairs P (the kernel is P x P).
    tol : float, default 1e-3
        libsvm stopping tolerance.
    random_state : seeds the multi-label sampling and the ``max_pairs`` subsample.
    """

    method = "RAML-SVR"

    def __init__(
        self,
        relation="l1",
        C=1.0,
        epsilon=0.1,
        n_partners=4,
        balance=0.5,
        sampling_power=1.0,
        n_candidates=20,
        max_pairs=6000,
        tol=1e-3,
        random_state=None,
    ):
        self.relation = relation
        self.C = C
        self.epsilon = epsilon
        self.n_partners = n_partners
        self.balance = balance
        self.sampling_power = sampling_power
        self.n_candidates = n_candidates
        self.max_pairs = max_pairs
        self.tol = tol
        self.random_state = random_state

    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:
        D, K, g, scale = self._pair_problem(X, targets)
        svr = SVR(kernel="precomputed", C=self.C, epsilon=self.epsilon, tol=self.tol)
        svr.fit(K, g)
        self.intercept_ = float(svr.intercept_[0])
        self.n_support_ = int(len(svr.support_))
        return metric_from_pairs(D[svr.support_], svr.dual_coef_[0]) / scale
