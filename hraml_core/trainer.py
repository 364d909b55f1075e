"""A background trainer: a :class:`~hraml_core.training.TrainingRun` stepped in its own thread.

Any thread may call :meth:`Trainer.start`, :meth:`~Trainer.pause`, :meth:`~Trainer.resume`,
:meth:`~Trainer.stop` and :meth:`~Trainer.reset`, in any order; they serialise on one lock and at
most one training thread exists per trainer. The training thread publishes an immutable
:class:`Snapshot` a few times a second (arrays are replaced, never mutated, and marked read-only),
so a UI reads :meth:`Trainer.snapshot` without touching torch or waiting on training.

With ``run_dir`` the trainer also records a run directory (hraml_core.runs, docs/RUNS.md) from
its training thread: every checked step's loss, the held-out metric, a snapshot every
``snapshot_every_s`` seconds (from the published snapshots, so recording adds only the file
writes), and a checkpoint whenever training stops, finishes or fails.
"""
from __future__ import annotations

import atexit
import itertools
import math
import threading
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch

from .curves import bin_curve
from .evaluate import PRIMARY_METRIC, EvaluationCancelled, evaluate_embedding
from .heldout import (
    EVAL_SHARE,
    METRIC_REF_ROWS,
    METRIC_VAL_ROWS,
    EvalBudget,
    full_evaluation,
    sample_rows,
)
from .loss import pairwise_sq_dists
from .runs.recorder import choose_probe
from .tasks import CLASSIFICATION, display_labels, encode_heldout_targets, encode_targets
from .training import TrainConfig, TrainingDiverged, TrainingRun, torch_threads
from .validation import check_matrix, check_same_features, check_same_rows

IDLE, RUNNING, PAUSED, STOPPED, FINISHED, FAILED = "idle", "running", "paused", "stopped", "finished", "failed"
#: How the message of a run that failed on an error (not a diverging loss) begins.
CRASHED = "training failed"
#: Longest loss curve a snapshot carries; longer histories are averaged into this many bins.
MAX_CURVE_POINTS = 2000
_ids = itertools.count(1)


def _frozen(a) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]``, or ``a`` itself (no copy) when ``rows`` is every row in order."""
    return a if len(rows) == len(a) else a[rows]


@dataclass(frozen=True)
class Snapshot:
    """What the trainer is doing, as of ``time``. All arrays are read-only copies."""

    version: int
    status: str
    message: str
    task: str
    step: int
    epoch: float
    pairs_seen: int
    pairs_per_s: float
    steps_per_s: float
    elapsed_s: float
    loss_steps: np.ndarray
    loss_values: np.ndarray
    metric_name: str
    metric_steps: np.ndarray
    metric_values: np.ndarray
    raw_metric: float | None
    A: np.ndarray  # D^2 between probe samples, ordered by label
    E: np.ndarray  # scaled g between the same samples
    probe_labels: np.ndarray
    embeddings: np.ndarray  # f(x) of the display subset
    embedding_labels: np.ndarray
    embedding_index: np.ndarray  # rows of the training set shown
    relation_scale: float
    config: TrainConfig
    time: float = field(default_factory=time.time)
    #: (held-out rows, training rows) the live metric is computed on: a fixed sample of
    #: ``metric_rows`` (hraml_core.heldout); None without held-out data.
    metric_sample: tuple[int, int] | None = None
    #: (held-out rows, training rows) in all: what Trainer.evaluate_full uses.
    metric_rows: tuple[int, int] | None = None
    #: Seconds the last live evaluation took, and the share of the training thread's time spent on
    #: live evaluations so far (kept under Trainer.eval_share).
    eval_seconds: float = 0.0
    eval_share: float = 0.0
    #: The step at which ``A`` and ``embeddings`` were computed, and how many times they have been.
    #: They are recomputed by the training thread's own working time (its CPU time), the rest of
    #: the snapshot by the clock: a trainer that shares the CPU (a server's sessions taking turns)
    #: publishes its step and loss as often as alone, and its geometry as often per unit of work.
    geometry_step: int = 0
    geometry_version: int = 0

    @property
    def last_loss(self) -> float:
        return float(self.loss_values[-1]) if len(self.loss_values) else math.nan

    @property
    def last_metric(self) -> float | None:
        return float(self.metric_values[-1]) if len(self.metric_values) else None


class Trainer:
    """Train HRAML on (X, Y) in a background thread and publish snapshots for a UI.

    Parameters
    ----------
    X, Y : training features and targets (classes, label sets or distributions).
    config : TrainConfig
    task : "auto" or a task name.
    X_val, Y_val : optional held-out data; the task's primary metric is tracked on it, and on the
        raw features once for comparison.
    max_epochs : stop with status "finished" after this many epochs (None: until stopped).
    probe_size : samples in the A / E heatmaps (at most 300 by default), ordered by label.
    display_size : samples whose embeddings each snapshot carries (for a 2-D projection).
    publish_every_s, eval_every_s : how often snapshots and the held-out metric are refreshed
        (eval_every_s at most: see eval_share).
    n_threads : torch threads in the training thread (torch's setting is process-wide).
    run_dir : record the training in this run directory (hraml_core.runs); None: record nothing.
    run_meta : keyword arguments for its RunWriter: name, source, dataset (a dict, e.g. {"name":
        "digits"}), info.
    snapshot_every_s : seconds between the run directory's snapshots (a few hundred over a
        typical demonstration make a smooth replay).
    metric_val_rows, metric_ref_rows : the live metric is computed on a fixed sample of this many
        held-out and training (reference) rows (seeded, stratified by class; all rows of smaller
        sets); the raw-feature metric on the same rows. :meth:`evaluate_full` uses every row.
    eval_share : live evaluations take at most this share of the training thread's time: after one
        that took e seconds the next waits max(eval_every_s, e (1 - share) / share) seconds
        (:class:`hraml_core.heldout.EvalBudget`). These seconds, and publish_every_s for a
        snapshot's embeddings and A, are the thread's CPU time: a trainer sharing the CPU spends
        the same share of its work on them as alone (the step and loss still follow the clock).

    Pause and stop take effect between steps, and a live evaluation in progress is abandoned
    (checked between chunks of its neighbour search) rather than waited for.
    scheduler : a :class:`~hraml_core.scheduler.CpuShare` that this trainer's thread takes turns
        on with the other trainers of the process (a turn around each step and its publishing);
        None (default): it steps without waiting for anyone.
    """

    def __init__(
        self,
        X,
        Y,
        config: TrainConfig = TrainConfig(),
        task: str = "auto",
        X_val=None,
        Y_val=None,
        max_epochs: float | None = None,
        probe_size: int = 300,
        display_size: int = 2000,
        publish_every_s: float = 0.25,
        eval_every_s: float = 1.0,
        n_threads: int | None = 1,
        run_dir=None,
        run_meta: dict | None = None,
        snapshot_every_s: float = 1.0,
        metric_val_rows: int = METRIC_VAL_ROWS,
        metric_ref_rows: int = METRIC_REF_ROWS,
        eval_share: float = EVAL_SHARE,
        scheduler=None,
    ):
        X = check_matrix(X, "X", dtype=np.float32, min_samples=2)  # a float32 C-array is not copied
        targets = encode_targets(Y, task)
        check_same_rows(X, targets.Y, "X", "Y")
        self.X, self.targets, self.task = X, targets, targets.task
        self.y_raw = np.asarray(Y).reshape(-1) if targets.task == CLASSIFICATION else targets.Y  # (n, 1) labels too
        if (X_val is None) != (Y_val is None):
            raise ValueError(f"X_val and Y_val go together: {'Y_val' if Y_val is None else 'X_val'} is missing")
        self.X_val = None if X_val is None else check_matrix(X_val, "X_val", dtype=np.float32)
        self.Y_val = None
        if X_val is not None:
            check_same_features(X, self.X_val, "X", "X_val")
            self.Y_val = encode_heldout_targets(Y_val, targets)  # class labels for classes, else the label matrix
            check_same_rows(self.X_val, self.Y_val, "X_val", "Y_val")
        if max_epochs is not None and not max_epochs > 0:
            raise ValueError(f"max_epochs must be positive or None, got {max_epochs!r}")
        if int(metric_val_rows) < 1 or int(metric_ref_rows) < 1:
            raise ValueError(f"metric_val_rows and metric_ref_rows must be positive, got {metric_val_rows}, {metric_ref_rows}")
        self.max_epochs = max_epochs
        self.probe_size, self.display_size = int(probe_size), int(display_size)
        self.publish_every_s, self.eval_every_s = float(publish_every_s), float(eval_every_s)
        self.n_threads = n_threads
        self.scheduler = scheduler
        self._turn = None  # the thread's turn on the scheduler, while it runs
        if not snapshot_every_s >= 0:
            raise ValueError(f"snapshot_every_s must be >= 0, got {snapshot_every_s!r}")
        self.run_dir, self.run_meta, self.snapshot_every_s = run_dir, dict(run_meta or {}), float(snapshot_every_s)
        self._writer = None
        self.run_error: str | None = None  # why recording the run stopped early, if it did
        self.eval_share = float(eval_share)
        EvalBudget(self.eval_share)  # validates the share here, not in the thread
        if X_val is not None:
            # Fixed for the trainer's life (a reset keeps them), so that every point of the metric
            # curve, and the raw-feature reference, is measured on the same rows.
            seed = config.seed if config.seed is not None else 0
            labels = self.y_raw if self.task == CLASSIFICATION else targets.Y
            self._ref_rows = sample_rows(labels, self.task, int(metric_ref_rows), seed)
            self._val_rows = sample_rows(self.Y_val, self.task, int(metric_val_rows), seed + 1)
            self._X_ref, self._y_ref = _rows(self.X, self._ref_rows), _rows(labels, self._ref_rows)
            self._X_val_s, self._y_val_s = _rows(self.X_val, self._val_rows), _rows(self.Y_val, self._val_rows)
        self.metric_name = PRIMARY_METRIC[self.task]
        self.name = f"hraml-train-{next(_ids)}"

        self._control = threading.RLock()  # serialises start/pause/resume/stop/reset
        self._model_lock = threading.Lock()  # held by the training thread around each step
        self._snapshot_lock = threading.Lock()
        self._unpaused = threading.Event()
        self._parked = threading.Event()  # set by the training thread once a pause has taken effect
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._raw_metric: float | None = None
        self._version = 0
        self._build(config)

    # -- set-up -------------------------------------------------------------------------------
    def _build(self, config: TrainConfig) -> None:
        self.config = config
        self.run = TrainingRun(self.X, self.targets.Y, self.task, config)
        self.probe = choose_probe(self.targets.Y, self.run.seed, self.probe_size, self.display_size)
        self.probe_index = self.probe.index
        self._E = _frozen(self.run.relation_matrix(self.targets.Y[self.probe_index]).numpy())
        self._probe_labels = _frozen(display_labels(self.targets.Y[self.probe_index], self.task, self.targets.classes))
        display = self.probe.display_index
        self.display_index = _frozen(display)
        self._display_labels = _frozen(display_labels(self.targets.Y[display], self.task, self.targets.classes))
        self._metric_steps: list[int] = []
        self._metric_values: list[float] = []
        self._budget = EvalBudget(self.eval_share, self.eval_every_s)
        self._thread_seconds = 0.0  # the training thread's working (CPU) time, evaluations included
        self._geometry = None  # (A, embeddings, step, version) of the last geometry published
        self._elapsed = 0.0
        self._rate = (0.0, 0.0)
        self._status, self._message = IDLE, "ready"
        self._logged = self._metrics_logged = 0  # losses and metric values written to the run
        self._last_recorded: tuple[int, float] | None = None  # (step, time) of the last snapshot written
        self._publish()

    # -- control (any thread) -----------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._status

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start training, or continue from the current weights after a stop or a failure.

        Returns False when there is nothing to start: a thread already runs (a paused one is
        resumed) or the run has finished its ``max_epochs``.
        """
        with self._control:
            if self.is_alive():
                if self._status == PAUSED:
                    self.resume()
                return False
            if self._status == FINISHED:
                return False
            self._open_run()
            self._stop_requested.clear()
            self._unpaused.set()
            self._set_status(RUNNING, "training")
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()
            _live.add(self)
            return True

    def pause(self, timeout: float = 10.0) -> bool:
        """Pause training. Returns once the thread has stopped stepping and published the step it
        stopped at (True), or False when nothing was running or it did not stop within ``timeout``
        seconds (a live evaluation in progress gives way to a pause between its chunks)."""
        with self._control:
            if not (self.is_alive() and self._status == RUNNING):
                return False
            self._parked.clear()
            self._unpaused.clear()
            self._set_status(PAUSED, "paused")
            thread = self._thread
        end = time.monotonic() + timeout
        while not self._parked.wait(0.05):
            if not thread.is_alive():
                return True  # stopped meanwhile: it steps no more either
            if time.monotonic() >= end:
                return False
        return True

    def resume(self) -> None:
        with self._control:
            if self.is_alive() and self._status == PAUSED:
                self._set_status(RUNNING, "training")
                self._unpaused.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (weights kept); returns once it has exited."""
        with self._control:
            thread = self._thread
            if thread is None:
                return
            self._stop_requested.set()
            self._unpaused.set()
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"training thread {thread.name} did not stop within {timeout} s")
            self._thread = None
            if self._status in (RUNNING, PAUSED):
                self._set_status(STOPPED, f"stopped at step {self.run.state.step}")
                self._end_run(STOPPED)

    def reset(self, config: TrainConfig | None = None, run_dir=None, run_meta: dict | None = None) -> None:
        """Stop, then start over from a fresh initialisation (with a new config if given).

        The run directory of the old run is closed; the new run is recorded in ``run_dir`` if
        given (a new folder: the old run's stays as it is), else not at all.
        """
        with self._control:
            self.stop()
            self._close_run()
            self.run_dir, self.run_meta = run_dir, dict(run_meta or {})
            self._build(config or self.config)

    def close(self) -> None:
        """Stop training and close the run directory, if any."""
        with self._control:
            self.stop()
            self._close_run()

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- reading (any thread) -----------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        with self._snapshot_lock:
            return self._snapshot

    def embed(self, X) -> np.ndarray:
        """Embeddings of X with the current weights (waits for the step in progress)."""
        with self._model_lock:
            return self.run.embed(np.asarray(X, dtype=np.float32))

    def to_estimator(self):
        """A fitted :class:`hraml_core.HRAML` holding a copy of the current weights."""
        from .estimator import HRAML

        with self._model_lock:
            return HRAML.from_training_run(self.run, self.targets.classes)

    # -- the training thread --------------------------------------------------------------------
    def _set_status(self, status: str, message: str) -> None:
        self._status, self._message = status, message
        self._publish()

    def _interrupted(self) -> bool:
        """A pause or a stop was asked for (a live evaluation then gives up)."""
        return self._stop_requested.is_set() or self._status == PAUSED

    def _loop(self) -> None:
        # torch's thread count is process-wide: set for the loop, restored when it ends.
        with torch_threads(self.n_threads):
            self._turn = None if self.scheduler is None else self.scheduler.turn(self.name)
            try:
                self._train()
            finally:
                if self._turn is not None:
                    self._turn.release()  # a stopped or failed trainer holds no slot

    def _off(self) -> bool:
        """Whether the thread should stop waiting for a turn (a stop or a pause came)."""
        return self._stop_requested.is_set() or not self._unpaused.is_set()

    def _train(self) -> None:
        # Two clocks: the wall clock paces what a page shows (step, loss, rates); the thread's own
        # CPU time paces what costs work (the held-out evaluation, the geometry: embeddings and A).
        # Alone on a core they advance together; a trainer taking turns with others, or short of
        # CPU, then spends on them the same share of its work as alone, not more.
        work_mark = time.thread_time()
        try:
            run = self.run
            last_publish = last_geometry = -math.inf
            t_prev, s_prev, p_prev = time.perf_counter(), run.state.step, run.state.pairs_seen
            while not self._stop_requested.is_set():
                if not self._unpaused.is_set():
                    if not self._parked.is_set():
                        if self._turn is not None:
                            self._turn.release()  # a paused trainer lets the others step
                        with self._model_lock:
                            run.flush()  # a paused run shows every step it took
                        self._publish()
                        self._parked.set()  # pause() returns now: no step until a resume
                    self._unpaused.wait(0.1)
                    t_prev, s_prev, p_prev = time.perf_counter(), run.state.step, run.state.pairs_seen
                    continue
                if self._turn is not None and not self._turn.acquire(cancel=self._off):
                    continue  # paused or stopped while waiting for a turn
                t0 = time.perf_counter()
                with self._model_lock:
                    run.step()
                now = time.perf_counter()
                self._elapsed += now - t0
                done = self.max_epochs is not None and run.epoch >= self.max_epochs
                if done or now - last_publish >= self.publish_every_s:
                    with self._model_lock:
                        run.flush()  # the snapshot reads the checked losses
                    if now > t_prev:
                        self._rate = ((run.state.pairs_seen - p_prev) / (now - t_prev), (run.state.step - s_prev) / (now - t_prev))
                    t_prev, s_prev, p_prev = now, run.state.step, run.state.pairs_seen
                    work = time.thread_time()
                    if self.X_val is not None and (done or self._budget.due(work)):
                        self._evaluate()
                    last_publish = now
                    geometry = done or work - last_geometry >= self.publish_every_s
                    if geometry:
                        last_geometry = work
                    self._publish(geometry=geometry)
                    work = time.thread_time()
                    self._thread_seconds += work - work_mark
                    work_mark = work
                    self._record()
                if self._turn is not None:
                    self._turn.checkpoint()  # after a time slice, the next waiting trainer's turn
                if done:
                    self._set_status(FINISHED, f"finished {self.max_epochs:g} epochs ({run.state.step} steps)")
                    self._end_run(FINISHED)
                    return
            with self._model_lock:
                run.flush()  # stopped: the last steps are checked (and shown) too
        except TrainingDiverged as exc:
            self._set_status(FAILED, str(exc))
            self._end_run(FAILED)
        except Exception as exc:  # keep the UI informed rather than dying silently in a thread
            self._set_status(FAILED, f"{CRASHED}: {type(exc).__name__}: {exc}")
            self._end_run(FAILED)
        else:
            self._publish()
        finally:
            self._thread_seconds += time.thread_time() - work_mark

    def _metric(self, Z_ref, Z_val) -> float:
        """The primary metric of the sampled held-out rows against the sampled reference rows."""
        return evaluate_embedding(self.task, Z_ref, self._y_ref, Z_val, self._y_val_s,
                                  should_stop=self._interrupted)[self.metric_name]

    def _evaluate(self) -> None:
        start = time.thread_time()  # the budget counts the training thread's own time
        try:
            if self._raw_metric is None:  # once per trainer: the features do not change
                self._raw_metric = self._metric(self._X_ref, self._X_val_s)
                if self._writer is not None:
                    self._writer.update(raw_metric=self._raw_metric)
            value = self._metric(self.run.embed(self._X_ref), self.run.embed(self._X_val_s))
        except EvaluationCancelled:
            return  # a pause or stop came first
        self._budget.record(start, time.thread_time())
        self._metric_steps.append(self.run.state.step)
        self._metric_values.append(value)

    def evaluate_full(self, progress=None, should_stop=None, threads: int = 1) -> dict[str, float]:
        """The task's metrics, exactly: every held-out row against every training row, with the
        weights of the moment (copied, so training may go on meanwhile, in any thread).

        ``progress(done, total)`` is called as rows are embedded and searched, ``should_stop()``
        checked between chunks (True raises :class:`hraml_core.evaluate.EvaluationCancelled`);
        ``threads``: threads of the neighbour search. Raises ValueError without held-out data.
        """
        if self.X_val is None:
            raise ValueError("this trainer has no held-out data (X_val, Y_val) to evaluate on")
        labels = self.y_raw if self.task == CLASSIFICATION else self.targets.Y
        model = self.to_estimator()
        return full_evaluation(self.task, model.transform, self.X, labels, self.X_val, self.Y_val,
                               progress=progress, should_stop=should_stop, threads=threads)

    def _publish(self, geometry: bool = True) -> None:
        """A new snapshot; with ``geometry`` (else only when there is none yet) the embeddings and A
        are computed anew, otherwise the last ones are kept (with their step)."""
        run = self.run
        if geometry or self._geometry is None:
            with self._model_lock:  # a control thread may publish while a step is in progress
                probe = run.embed(self.X[self.probe_index])
                embeddings = run.embed(self.X[self.display_index])
                step = run.state.step
            A = pairwise_sq_dists(torch.from_numpy(probe)).fill_diagonal_(0).numpy()
            version = 1 if self._geometry is None else self._geometry[3] + 1
            self._geometry = (_frozen(A.astype(np.float32)), _frozen(embeddings), step, version)
        A, embeddings, geometry_step, geometry_version = self._geometry
        losses = run.state.losses
        loss_steps, loss_values = bin_curve(np.arange(1, len(losses) + 1), losses, MAX_CURVE_POINTS)
        pairs_rate, steps_rate = self._rate if self._status == RUNNING else (0.0, 0.0)
        with self._snapshot_lock:
            self._version += 1
            self._snapshot = Snapshot(
                version=self._version,
                status=self._status,
                message=self._message,
                task=self.task,
                step=run.state.step,
                epoch=run.epoch,
                pairs_seen=run.state.pairs_seen,
                pairs_per_s=pairs_rate,
                steps_per_s=steps_rate,
                elapsed_s=self._elapsed,
                loss_steps=_frozen(loss_steps),
                loss_values=_frozen(loss_values),
                metric_name=self.metric_name,
                metric_steps=_frozen(self._metric_steps),
                metric_values=_frozen(self._metric_values),
                raw_metric=self._raw_metric,
                A=A,
                E=self._E,
                probe_labels=self._probe_labels,
                embeddings=embeddings,
                embedding_labels=self._display_labels,
                embedding_index=self.display_index,
                relation_scale=run.scale,
                config=self.config,
                metric_sample=None if self.X_val is None else (len(self._val_rows), len(self._ref_rows)),
                metric_rows=None if self.X_val is None else (len(self.X_val), len(self.X)),
                eval_seconds=self._budget.last_seconds,
                eval_share=self._budget.total_seconds / self._thread_seconds if self._thread_seconds else 0.0,
                geometry_step=geometry_step,
                geometry_version=geometry_version,
            )

    # -- the run directory ------------------------------------------------------------------------
    @property
    def run_writer(self):
        """The :class:`~hraml_core.runs.RunWriter` recording this run (None without ``run_dir``,
        before the first start, or after a write failed: see :attr:`run_error`)."""
        return self._writer

    def _open_run(self) -> None:
        """At a start (control thread): open the run directory, or mark it running again."""
        if self.run_dir is None:
            return
        if self._writer is not None:
            if not self._writer.closed:
                self._writer.set_status(RUNNING, "training")
            return
        from .runs.writer import RunWriter

        config = {**self.config.for_task(self.task).to_dict(describe_objects=True), "max_epochs": self.max_epochs, "probe_size": self.probe_size,
                  "display_size": self.display_size, "snapshot_every_s": self.snapshot_every_s}
        writer = RunWriter(self.run_dir, config=config, task=self.task,
                           metric=self.metric_name if self.X_val is not None else None,
                           **{"source": "Trainer", **self.run_meta})
        try:
            p = self.probe
            writer.write_probe(self._E, p.index, p.codes, p.display_index, p.display_codes,
                               classes=self.targets.classes, relation_scale=self.run.scale)
            if self._raw_metric is not None:
                writer.update(raw_metric=self._raw_metric)
        except BaseException as exc:
            writer.finish(FAILED, f"{type(exc).__name__}: {exc}")
            raise
        self._writer, self.run_error = writer, None
        self._record(force=True)  # the geometry before training

    def _record(self, force: bool = False) -> None:
        """Append the new losses and metric values to the run; write a snapshot when one is due
        (``force``: whenever the step moved). Reuses the published snapshot's arrays."""
        writer = self._writer
        if writer is None:
            return
        snap = self.snapshot()
        losses = self.run.state.losses
        self._logged = min(self._logged, len(losses))  # a divergence took steps back
        per_epoch = self.run.sampler.steps_per_epoch
        rows = {i + 1: {"loss": losses[i], "epoch": (i + 1) / per_epoch} for i in range(self._logged, len(losses))}
        self._logged = len(losses)
        new = slice(self._metrics_logged, len(self._metric_steps))
        for step, value in zip(self._metric_steps[new], self._metric_values[new]):
            rows.setdefault(step, {})[self.metric_name] = value
        self._metrics_logged = new.stop
        for step in sorted(rows):
            writer.log(step, **rows[step])
        now = time.monotonic()
        last = self._last_recorded
        fresh = snap.geometry_step == snap.step  # a recorded snapshot's A and embeddings are of its step
        if fresh and (last is None or (snap.step != last[0] and (force or now - last[1] >= self.snapshot_every_s))):
            writer.snapshot(snap.step, snap.A, snap.embeddings, time=snap.time, epoch=snap.epoch,
                            loss=snap.last_loss, metric=snap.last_metric)
            self._last_recorded = (snap.step, now)

    def _end_run(self, status: str) -> None:
        """Training stopped, finished or failed: last rows, last snapshot, a checkpoint, the status."""
        writer = self._writer
        if writer is None or writer.closed:
            return
        try:
            self._record(force=True)
            if self.run.state.step > 0:
                writer.checkpoint(self.to_estimator(), self.run.state.step)
            if status == FINISHED:
                writer.finish(FINISHED, self._message)
            else:
                writer.set_status(status, self._message)
        except Exception as exc:  # the training's own outcome stays what the UI shows
            self._drop_run(exc)

    def _close_run(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:
                self.run_error = f"closing the run directory failed: {exc}"

    def _drop_run(self, exc: BaseException) -> None:
        """A write failed: stop recording (the run directory keeps what was written)."""
        writer, self._writer = self._writer, None
        self.run_dir = None  # a later start must not replace what was recorded
        self.run_error = f"recording the run stopped: {type(exc).__name__}: {exc}"
        try:
            writer.finish(FAILED, self.run_error)
        except Exception:
            pass  # the same disk error again: nothing more to record

#: Trainers whose thread may still run. At interpreter exit their threads are stopped and joined:
#: a daemon thread left inside a native neighbour search while Python finalises can crash the
#: process (seen as a segmentation fault at exit).
_live: "weakref.WeakSet[Trainer]" = weakref.WeakSet()


@atexit.register
def _stop_live_trainers() -> None:
    for trainer in list(_live):
        try:
            trainer.stop(timeout=5.0)
        except Exception:  # noqa: BLE001 - exiting anyway; one trainer must not keep the others running
            pass
