"""ITML: Information-Theoretic Metric Learning (Davis, Kulis, Jain, Sra & Dhillon, ICML 2007).

Through metric-learn's ``ITML_Supervised`` (metric-learn 0.7.0), with its defaults: it samples
``n_constraints`` (20 * n_classes^2 by default) similar / dissimilar pairs and keeps ``M`` close to
the ``prior`` in LogDet divergence under the distance bounds. Class labels only.
"""
from __future__ import annotations

from .base import MetricLearnBaseline


class ITML(MetricLearnBaseline):
    """ITML (Davis et al., ICML 2007) via ``metric_learn.ITML_Supervised``; parameters are its own."""

    method = "ITML"

    def __init__(self, gamma=1.0, max_iter=1000, tol=1e-3, n_constraints=None, prior="identity", random_state=None):
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.n_constraints = n_constraints
        self.prior = prior
        self.random_state = random_state

    def _metric_learn_model(self):
        from metric_learn import ITML_Supervised

        return ITML_Supervised(gamma=self.gamma, max_iter=self.max_iter, tol=self.tol,
                               n_constraints=self.n_constraints, prior=self.prior, random_state=self.random_state)
