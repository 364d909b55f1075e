"""The held-out metric of a live run at any size: a fixed sample, and a time budget.

A live run re-evaluates its embedding every second or so. An exact evaluation embeds every row and
searches the neighbours of every held-out row among all training rows, O(n_train x n_val): at
100,000 rows it took most of the training thread's time. The live metric is therefore computed on
a fixed sample (:func:`sample_rows`: seeded, stratified by class; its sizes are shown beside the
metric), and :class:`EvalBudget` spaces the evaluations so that they take at most a set share of
the thread's time. The exact evaluation on every row is a separate call with a progress report
(:meth:`hraml_core.trainer.Trainer.evaluate_full`, ``hraml evaluate``).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from .evaluate import EVAL_CHUNK_ROWS, EvaluationCancelled, evaluate_embedding
from .splits import holdout_split

#: Held-out rows of the live metric; all of them when there are fewer.
METRIC_VAL_ROWS = 1000
#: Training (reference) rows the held-out rows are matched against; all of them when fewer. MLkNN
#: searches each reference row's neighbours among the others (reference rows squared), which
#: makes this the size that bounds a refresh.
METRIC_REF_ROWS = 5000
#: Share of the training thread's time the live evaluations may take.
EVAL_SHARE = 0.1


def sample_rows(labels: np.ndarray, task: str, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` rows of ``labels`` (all rows when there are no more), drawn with
    ``seed``: stratified by class for classification (each class keeps its share, within a row),
    uniformly otherwise."""
    n = len(labels)
    if size >= n:
        return np.arange(n)
    if size < 1:
        raise ValueError(f"a metric sample needs at least one row, got {size}")
    return holdout_split(labels, task, seed, train_size=size).train


class EvalBudget:
    """When the next evaluation may run, so that evaluations take at most ``share`` of the time.

    The rule: after an evaluation that took ``e`` seconds, the next one waits until
    ``max(min_interval, e * (1 - share) / share)`` seconds have passed since it ended. Between two
    evaluations the thread then works at least ``e (1 - share) / share`` seconds for ``e`` seconds of
    evaluating, so evaluating takes ``e / (e + e (1 - share) / share) = share`` of its time at most;
    a fast evaluation is still spaced by ``min_interval`` (the refresh rate a UI asked for).
    ``clock`` is injectable (tests drive the rule with a fake clock).
    """

    def __init__(self, share: float = EVAL_SHARE, min_interval: float = 1.0,
                 clock: Callable[[], float] = time.perf_counter):
        if not 0 < share < 1:
            raise ValueError(f"the evaluation share must lie in (0, 1), got {share!r}")
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval!r}")
        self.share, self.min_interval, self.clock = float(share), float(min_interval), clock
        self.last_end = -math.inf
        self.last_seconds = 0.0
        self.total_seconds = 0.0
        self.count = 0

    @property
    def wait(self) -> float:
        """Seconds from the end of the last evaluation to the next one."""
        return max(self.min_interval, self.last_seconds * (1 - self.share) / self.share)

    def due(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return now - self.last_end >= self.wait

    def record(self, start: float, end: float) -> None:
        """An evaluation ran from ``start`` to ``end`` (the clock's seconds)."""
        self.last_seconds = max(0.0, end - start)
        self.last_end = end
        self.total_seconds += self.last_seconds
        self.count += 1


def full_evaluation(task: str, embed: Callable[[np.ndarray], np.ndarray] | None, X_train, Y_train, X_val, Y_val,
                    *, k: int | None = None, progress: Callable[[int, int], object] | None = None,
                    should_stop: Callable[[], bool] | None = None, threads: int = 1,
                    chunk_rows: int = EVAL_CHUNK_ROWS) -> dict[str, float]:
    """The task's metrics on every held-out row against every training row, in chunks.

    ``embed`` maps feature rows to embeddings (e.g. ``HRAML.transform``; None scores the features
    themselves). ``progress(done, total)`` counts rows embedded and then rows searched (see
    :func:`hraml_core.evaluate.evaluate_embedding`), ``should_stop()`` is checked between chunks
    (True raises :class:`hraml_core.evaluate.EvaluationCancelled`).
    """
    n_train, n_val = X_train.shape[0], X_val.shape[0]
    searched = n_val + (n_train if task == "multilabel" else 0)
    embedded = (n_train + n_val) if embed is not None else 0
    total = embedded + searched
    done = 0

    def chunked_embed(X):
        nonlocal done
        out, sparse_parts = None, []
        for a in range(0, X.shape[0], chunk_rows):
            if should_stop is not None and should_stop():
                raise EvaluationCancelled(f"evaluation cancelled after embedding {done} of {embedded} rows")
            Z = embed(X[a : a + chunk_rows])
            if sp.issparse(Z):  # sparse inputs with an input skip (HRAML.transform): stacked at the end
                sparse_parts.append(Z)
            else:
                if out is None:
                    out = np.empty((X.shape[0], Z.shape[1]), dtype=Z.dtype)
                out[a : a + Z.shape[0]] = Z
            done += Z.shape[0]
            if progress is not None:
                progress(done, total)
        return sp.vstack(sparse_parts, format="csr") if sparse_parts else out

    if embed is not None:
        Z_train, Z_val = chunked_embed(X_train), chunked_embed(X_val)
    else:
        Z_train, Z_val = X_train, X_val
    offset = done
    report = None if progress is None else (lambda d, t: progress(offset + d, total))
    return evaluate_embedding(task, Z_train, Y_train, Z_val, Y_val, k, progress=report,
                              should_stop=should_stop, chunk_rows=chunk_rows, threads=threads)
