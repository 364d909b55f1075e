"""LMNN: Large Margin Nearest Neighbour (Weinberger & Saul, JMLR 2009).

Through metric-learn's ``LMNN`` (metric-learn 0.7.0), with its defaults (3 target neighbours,
``regularization`` 0.5 between the pull and the push terms). Class labels only.
"""
from __future__ import annotations

import numpy as np

from ..tasks import EncodedTargets
from .base import MetricLearnBaseline


class LMNN(MetricLearnBaseline):
    """LMNN (Weinberger & Saul, JMLR 2009) via ``metric_learn.LMNN``; parameters are its own."""

    method = "LMNN"

    def __init__(
        self,
        n_neighbors=3,
        init="auto",
        min_iter=50,
        max_iter=1000,
        learn_rate=1e-7,
        regularization=0.5,
        convergence_tol=1e-3,
        random_state=None,
    ):
        self.n_neighbors = n_neighbors
        self.init = init
        self.min_iter = min_iter
        self.max_iter = max_iter
        self.learn_rate = learn_rate
        self.regularization = regularization
        self.convergence_tol = convergence_tol
        self.random_state = random_state

    def _fit_metric(self, X: np.ndarray, targets: EncodedTargets) -> np.ndarray:
        counts = targets.Y.sum(axis=0)
        if counts.min() <= self.n_neighbors:
            small = targets.classes[int(counts.argmin())]
            raise ValueError(
                f"LMNN: class {small!r} has {int(counts.min())} samples; each class needs more than "
                f"n_neighbors={self.n_neighbors}"
            )
        return super()._fit_metric(X, targets)

    def _metric_learn_model(self):
        from metric_learn import LMNN as _LMNN

        return _LMNN(n_neighbors=self.n_neighbors, init=self.init, min_iter=self.min_iter, max_iter=self.max_iter,
                     learn_rate=self.learn_rate, regularization=self.regularization,
                     convergence_tol=self.convergence_tol, random_state=self.random_state)
