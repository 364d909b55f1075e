"""What a training loop records into a run: the probe rows, their A, the display embeddings.

:func:`choose_probe` picks the rows every writer shows (the background Trainer included, so that
its live view and its run directory agree); :class:`RunRecorder` records a
:class:`~hraml_core.training.TrainingRun` that a plain loop steps (``HRAML.fit``, each torchrun
rank) into a :class:`~hraml_core.runs.writer.RunWriter`.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..tasks import label_order

#: Snapshots a fit of known length spreads over its steps (plus one before the first step): enough
#: for a replay slider, few enough to write quickly and keep a run directory small.
DEFAULT_SNAPSHOTS = 200
#: Probe rows in A and E (at most), and display rows whose embeddings a snapshot carries.
PROBE_SIZE, DISPLAY_SIZE = 300, 2000
#: Snapshots may take at most this fraction of the training time; a snapshot due beyond it waits
#: for the next step within it. Embedding 2000 display rows costs several steps of a small model
#: (digits: 2-4 steps, docs/BENCHMARKS.md), so without a bound 200 snapshots of a short fit would
#: double its time; long fits, whose steps cost more, get all of theirs. None: no bound.
MAX_OVERHEAD = 0.5


@dataclass(frozen=True)
class Probe:
    """Rows of a training set shown by snapshots, with their label codes (index of the class, or
    of the dominant label)."""

    index: np.ndarray  # the rows of A and E, ordered by label
    codes: np.ndarray
    display_index: np.ndarray  # the rows whose embeddings are recorded, ascending
    display_codes: np.ndarray


def choose_probe(Y: np.ndarray, seed: int, probe_size: int = PROBE_SIZE, display_size: int = DISPLAY_SIZE) -> Probe:
    """Random probe and display rows of the label matrix ``Y`` (n x L), drawn from ``seed``."""
    Y = np.asarray(Y)
    rng = np.random.default_rng(seed)
    n = len(Y)
    probe = rng.choice(n, min(int(probe_size), n), replace=False)
    probe = probe[label_order(Y[probe])]
    display = np.sort(rng.choice(n, min(int(display_size), n), replace=False))
    return Probe(probe, Y[probe].argmax(axis=1), display, Y[display].argmax(axis=1))


def square_distances(Z) -> np.ndarray:
    """A: squared Euclidean distances between the rows of Z, float32, zero diagonal.

    In torch, as the Trainer computes it: numpy's matrix product runs on OpenBLAS's own threads,
    which on a busy small machine wait for the core the training holds; torch's one thread does not.
    """
    import torch

    from ..loss import pairwise_sq_dists

    Z = torch.as_tensor(np.ascontiguousarray(Z, dtype=np.float32))
    return pairwise_sq_dists(Z).fill_diagonal_(0).numpy()


class RunRecorder:
    """Record a TrainingRun stepped by a loop: call :meth:`begin`, :meth:`after_step` after each
    step, :meth:`end` after the last.

    Scalars: the loss of every step, written every ``log_every_s`` seconds; snapshots every
    ``ceil(total_steps / n_snapshots)`` steps, one before the first step and one after the last,
    as long as snapshots take at most ``max_overhead`` of the training time (default
    :data:`MAX_OVERHEAD`; a snapshot due beyond it is taken at the next step within it).

    In a data-parallel job every rank makes a recorder (``writer`` None except on rank 0) with a
    ``reduce_losses`` that averages a list of losses over the ranks: it is a collective, so the
    losses are then logged every ``sync_every`` steps (the same steps on every rank) rather than
    by time. ``tolerate_errors``: a failed write stops the recording with a warning instead of
    raising (a rank that raised would leave the others waiting in a collective).
    """

    def __init__(self, writer, run, X, Y, *, total_steps: int, n_snapshots: int = DEFAULT_SNAPSHOTS,
                 probe_size: int = PROBE_SIZE, display_size: int = DISPLAY_SIZE, row_ids=None, classes=None,
                 steps_per_epoch: int | None = None, reduce_losses=None, sync_every: int = 16,
                 log_every_s: float = 0.5, tolerate_errors: bool = False, max_overhead: float | None = ...):
        if n_snapshots < 1:
            raise ValueError(f"n_snapshots must be at least 1, got {n_snapshots}")
        self.max_overhead = MAX_OVERHEAD if max_overhead is ... else max_overhead
        self._trained_s = self._snapshot_s = 0.0  # training time seen between calls; time spent snapshotting
        self._returned = None  # when after_step last returned
        self.writer, self.run = writer, run
        self.every_steps = max(1, math.ceil(total_steps / n_snapshots))
        self.steps_per_epoch = steps_per_epoch or run.sampler.steps_per_epoch
        self.reduce_losses, self.sync_every, self.log_every_s = reduce_losses, int(sync_every), float(log_every_s)
        self.tolerate_errors = tolerate_errors
        self.logged = len(run.state.losses)
        self.last_loss: float | None = None
        self._last_log = time.monotonic()
        self._last_snapshot: int | None = None
        if writer is not None:
            self.probe = choose_probe(Y, run.seed, probe_size, display_size)
            X = X if sp.issparse(X) else np.asarray(X)
            self._X_probe, self._X_display = X[self.probe.index], X[self.probe.display_index]
            self._row_ids = np.arange(X.shape[0]) if row_ids is None else np.asarray(row_ids)
            self._classes = classes

    def begin(self) -> None:
        if self.writer is None:
            return
        p = self.probe
        E = self.run.relation_matrix(self.run.Y[p.index]).cpu().numpy()
        self._safely(self.writer.write_probe, E, self._row_ids[p.index], p.codes, self._row_ids[p.display_index],
                     p.display_codes, classes=self._classes, relation_scale=self.run.scale)
        self.snapshot()

    def after_step(self) -> None:
        now = time.perf_counter()
        if self._returned is not None:
            self._trained_s += now - self._returned
        step = self.run.state.step
        if self.reduce_losses is not None:
            if step % self.sync_every == 0:
                self.log_losses()
        elif time.monotonic() - self._last_log >= self.log_every_s:
            self.log_losses()
        if self.writer is not None and step - self._last_snapshot >= self.every_steps and self._within_budget():
            if self.reduce_losses is None:
                self.log_losses()  # the snapshot's loss is its step's
            self.snapshot()
        self._returned = time.perf_counter()

    def _within_budget(self) -> bool:
        return self.max_overhead is None or self._snapshot_s <= self.max_overhead * self._trained_s

    def end(self, weights_changed: bool = False) -> None:
        """After the last step. ``weights_changed``: the loop put other weights in place (early
        stopping's best epoch), so the last snapshot is taken again even at the same step."""
        self.log_losses()
        if self.writer is not None and (weights_changed or self._last_snapshot != self.run.state.step):
            self.snapshot()

    def log(self, step: int, **values) -> None:
        """Log other scalars (a validation score...) on the writing rank."""
        if self.writer is not None:
            self._safely(self.writer.log, step, **values)

    def log_losses(self) -> None:
        """Log the losses of the steps taken since the last call (a collective with reduce_losses)."""
        run = self.run
        run.flush()
        losses = run.state.losses
        self.logged = min(self.logged, len(losses))  # a divergence took steps back
        new, first = losses[self.logged:], self.logged + 1
        self.logged = len(losses)
        self._last_log = time.monotonic()
        if not new:
            return
        if self.reduce_losses is not None:
            new = self.reduce_losses(new)
        self.last_loss = float(new[-1])
        if self.writer is None:
            return
        for i, value in enumerate(new):
            step = first + i
            if not self._safely(self.writer.log, step, loss=value, epoch=step / self.steps_per_epoch):
                break

    def snapshot(self) -> None:
        run = self.run
        self._last_snapshot = run.state.step
        if self.writer is None:
            return
        t0 = time.perf_counter()
        A = square_distances(run.embed(self._X_probe))
        self._safely(self.writer.snapshot, run.state.step, A, run.embed(self._X_display),
                     epoch=run.state.step / self.steps_per_epoch, loss=self.last_loss)
        self._snapshot_s += time.perf_counter() - t0

    def _safely(self, fn, *args, **kwargs) -> bool:
        if self.writer is None:
            return False
        if not self.tolerate_errors:
            fn(*args, **kwargs)
            return True
        try:
            fn(*args, **kwargs)
            return True
        except (OSError, ValueError) as exc:
            warnings.warn(f"recording the run stopped: {exc}", RuntimeWarning, stacklevel=3)
            self.writer = None
            return False
