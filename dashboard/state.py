"""Per-session state of the dashboard: the trainer, the projection worker, the baseline fits.

No Streamlit here. The app keeps one :class:`Session` per browser session (from a factory under
``st.cache_resource(scope="session", on_release=close_session)``) and calls its methods from button
callbacks and script runs; threads only ever publish data, they never call ``st.*``.

Invariants:

- at most one training thread per session: there is one :class:`~hraml_core.trainer.Trainer` at a
  time, a replaced trainer is stopped first, and ``Trainer.start`` never starts a second thread;
- settings changes rebuild the trainer by themselves only while it is pristine (never started);
  otherwise :meth:`Session.pending_changes` lists them and :meth:`Session.reset` applies them;
- training and baseline fits are jobs of the server's :class:`~hraml_dashboard.budget.Admission`:
  a session trains only while it holds a slot (a Start beyond the limit queues, :attr:`Session.queued`,
  and starts by itself when a slot frees); a pause, a stop, a reset or the end of the session gives
  the slot back; its trainer takes turns with the other sessions' on the server's CPU share;
- a session whose browser is gone (:meth:`Session.suspend`) trains nothing and waits in no queue
  until a browser comes back (:meth:`Session.wake`) or it is closed.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import shutil
import signal
import tempfile
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hraml_core.trainer import IDLE, PAUSED, RUNNING, Trainer
from hraml_core.training import TrainConfig

from . import budget, export, settings_form
from .baseline_process import BaselineFit
from .exact_eval import ExactEvaluation
from .prepare import Prepared
from .projection import ProjectionWorker

_session_ids = itertools.count(1)
_sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()


@dataclass(frozen=True)
class Settings:
    """Everything that defines a trainer: the data (by key), the config and the display sizes."""

    data_key: tuple
    config: TrainConfig
    probe_size: int = 300
    display_size: int = 2000


def changed_settings(old: Settings, new: Settings) -> list[str]:
    """Human names of what differs between two settings (empty when equal)."""
    out = []
    if old.data_key != new.data_key:
        out.append("dataset")
    out += settings_form.changed_settings(old.config, new.config)
    if old.probe_size != new.probe_size:
        out.append("heatmap points")
    if old.display_size != new.display_size:
        out.append("projection points")
    return out


@dataclass
class BaselineResult:
    name: str
    status: str  # "queued", "fitting", "done", "failed", "cancelled"
    metric: str
    value: float | None = None
    seconds: float | None = None
    message: str = ""


class BaselineRunner:
    """Fits baselines (hraml_core.baselines) on the session's training part, one at a time, each in a
    child process (:class:`~dashboard.baseline_process.BaselineFit`: a thread cannot be cancelled);
    results are kept per dataset. A fit is a job of the server's admission: beyond its limit it
    waits ("queued") and starts when a slot frees."""

    def __init__(self, admission: budget.Admission | None = None, key=None):
        self._lock = threading.RLock()
        self._fit: BaselineFit | None = None
        self._closed = False
        self.data_key = None
        self.results: dict[str, BaselineResult] = {}
        self.admission = admission if admission is not None else budget.admission()
        self.key = key if key is not None else ("baseline", id(self))
        self._queued: tuple | None = None  # (name, task, metric, data, data_key) waiting for a slot
        self._suspended = False

    def busy(self) -> bool:
        return self.running() is not None or self._queued is not None

    def queue_position(self) -> int | None:
        """The queued fit's place in the server's queue (None when no fit waits)."""
        if self._queued is None:
            return None
        return self.admission.position(self.key)

    def running(self) -> BaselineFit | None:
        """The fit in progress (``name``, ``phase``, ``elapsed()``), or None."""
        fit = self._fit
        return fit if fit is not None and fit.alive() else None

    def clear_for(self, data_key) -> None:
        """Forget the results of another dataset, cancelling a fit on it."""
        with self._lock:
            if data_key == self.data_key:
                return
            self.data_key, self.results, fit = data_key, {}, self._fit
            self._unqueue()
        if fit is not None:
            fit.cancel()

    def fit(self, name: str, prepared: Prepared, data_key) -> bool:
        """Start fitting ``name``; False when a fit is already running."""
        from hraml_core.evaluate import PRIMARY_METRIC

        with self._lock:
            if self._closed or self.busy():
                return False
            if data_key != self.data_key:
                self.data_key, self.results = data_key, {}
            metric = PRIMARY_METRIC[prepared.task]
            data = prepared.baseline_data()  # a fixed sample of large sets (prepare.BASELINE_TRAIN_ROWS)
            self._queued = (name, prepared.task, metric, data, data_key)
            self.results[name] = BaselineResult(name, "queued", metric)
            if self.admission.request(self.key, self._admitted, alive=self._holds_slot) == 0:
                self._launch()
            return True

    def _admitted(self) -> bool:
        """A slot freed for the queued fit (called by the admission)."""
        with self._lock:
            if self._closed or self._queued is None:
                return False
            self._launch()
            return True

    def _launch(self) -> None:
        name, task, metric, data, data_key = self._queued
        self._queued = None
        self.results[name] = BaselineResult(name, "fitting", metric)
        on_end = functools.partial(self._publish, data_key, metric)
        self._fit = BaselineFit(name, task, metric, data, on_end)
        self._fit.start()

    def _holds_slot(self) -> bool:
        with self._lock:  # not while a fit is being launched
            return self.running() is not None

    def _unqueue(self) -> None:
        if self._queued is not None:
            name, metric = self._queued[0], self._queued[2]
            self._queued = None
            self.admission.release(self.key)
            if name in self.results:
                self.results[name] = BaselineResult(name, "cancelled", metric)

    def _publish(self, data_key, metric, fit: BaselineFit, status, value, message, seconds) -> None:
        with self._lock:
            if self.data_key == data_key:  # a result for data no longer shown is dropped
                self.results[fit.name] = BaselineResult(fit.name, status, metric, value, seconds, message)
        self.admission.release(self.key)  # the fit's process is gone: its slot is free

    def cancel(self, timeout: float = 5.0) -> None:
        """Cancel the running or queued fit (it shows "cancelled"); returns once its process is gone."""
        with self._lock:
            self._unqueue()
            fit = self._fit
        if fit is not None:
            fit.cancel(timeout)

    def suspend(self) -> None:
        """Freeze a running fit's process (SIGSTOP; it keeps its slot); :meth:`wake` continues it."""
        self._signal_fit(signal.SIGSTOP, True)

    def wake(self) -> None:
        self._signal_fit(signal.SIGCONT, False)

    def _signal_fit(self, sig, suspended: bool) -> None:
        with self._lock:
            fit = self.running()
            if self._suspended == suspended or fit is None or fit.pid is None:
                self._suspended = suspended
                return
            try:
                os.kill(fit.pid, sig)
            except ProcessLookupError:  # it ended meanwhile
                pass
            self._suspended = suspended

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.cancel()
        self.admission.release(self.key)

    def join(self, timeout=None) -> None:
        fit = self._fit
        if fit is not None:
            fit.thread.join(timeout)


class Session:
    """One browser session: its trainer, projection worker and baseline runner."""

    def __init__(self, projection_interval_s: float = 1.0, admission: budget.Admission | None = None,
                 scheduler=None, runs_root=None):
        self.id = next(_session_ids)
        self.runs_root = None if runs_root is None else Path(runs_root)  # each trainer records a run there
        self._lock = threading.RLock()
        self.trainer: Trainer | None = None
        self.settings: Settings | None = None
        self.prepared: Prepared | None = None
        self.generation = 0  # bumps whenever the trainer is rebuilt or reset
        self.projector = ProjectionWorker(min_interval_s=projection_interval_s)
        self.admission = admission if admission is not None else budget.admission()
        self.scheduler = scheduler if scheduler is not None else budget.cpu_share()
        self._train_key = ("train", self.id)
        self.baselines = BaselineRunner(self.admission, ("baseline", self.id))
        self.queued = False  # Start pressed, waiting for a training slot
        self.suspended = False  # no browser attached (see suspend / wake)
        self._wake_action: str | None = None  # what wake() restarts: "train" or "queue"
        self.ui_state: dict = {}  # the page's widget values, restored when a browser reattaches
        self.exact = ExactEvaluation()  # the exact held-out evaluation on demand
        self.closed = False
        self._upload_dir: str | None = None
        self._downloads_key = None
        self._downloads: dict[str, bytes] = {}
        _sessions.add(self)

    def upload_dir(self) -> Path:
        """A private temporary folder for this session's uploaded files (removed on close)."""
        if self._upload_dir is None:
            self._upload_dir = tempfile.mkdtemp(prefix="hraml-upload-")
        return Path(self._upload_dir)

    # -- building -------------------------------------------------------------------------------
    def _new_trainer(self, settings: Settings, prepared: Prepared) -> Trainer:
        return Trainer(
            prepared.X_train, prepared.Y_train, config=settings.config, X_val=prepared.X_val, Y_val=prepared.Y_val,
            probe_size=settings.probe_size, display_size=settings.display_size, scheduler=self.scheduler,
            **self._recording(settings, prepared),
        )

    def _recording(self, settings: Settings, prepared: Prepared) -> dict:
        """A new run directory for a (re)built trainer (created when it starts), with what the runs
        list and "duplicate" need to know about the data."""
        if self.runs_root is None:
            return {}
        from .run_store import new_run_dir

        path = new_run_dir(self.runs_root, prepared.name, str(settings.config.relation))
        dataset = {"name": prepared.name, "kind": settings.data_key[0], "task": prepared.task,
                   "n_train": len(prepared.X_train), "n_val": len(prepared.X_val)}
        return {"run_dir": path, "run_meta": {"name": path.name, "source": "dashboard", "dataset": dataset}}

    def run_path(self) -> Path | None:
        """The run directory this session's trainer is recording (None before its first start)."""
        t = self.trainer
        if t is None or t.run_dir is None or not (Path(t.run_dir) / "run.json").is_file():
            return None
        return Path(t.run_dir)

    def _install(self, trainer: Trainer, settings: Settings, prepared: Prepared) -> None:
        old = self.trainer
        if old is not None and old is not trainer:
            old.stop()
            if not self.queued:  # a Start that waits for a slot starts the new trainer
                self.admission.release(self._train_key)
        self.trainer, self.settings, self.prepared = trainer, settings, prepared
        self.generation += 1
        self.baselines.clear_for(settings.data_key)
        self._follow()

    def _follow(self) -> None:
        trainer = self.trainer
        if trainer is not None and not self.closed:
            self.projector.follow(trainer.snapshot, (id(trainer), self.generation))

    def pristine(self) -> bool:
        """True when the trainer has never trained (a settings change may rebuild it silently)."""
        t = self.trainer
        return t is None or (not t.is_alive() and t.status == IDLE and t.snapshot().step == 0)

    def sync(self, settings: Settings, prepared: Prepared) -> bool:
        """Make the trainer follow ``settings`` if that loses nothing; True when it was (re)built.

        Raises ``ValueError`` when a trainer cannot be built from these settings (the old one stays).
        """
        with self._lock:
            if self.closed:
                return False
            if self.trainer is not None and (settings == self.settings or not self.pristine()):
                return False
            self._rebuild(settings, prepared)
            return True

    def _rebuild(self, settings: Settings, prepared: Prepared) -> None:
        """A new trainer for ``settings`` (built first: if that raises, the old one is untouched;
        :meth:`_install` then stops the old one)."""
        self._install(self._new_trainer(settings, prepared), settings, prepared)

    def pending_changes(self, settings: Settings | None) -> list[str]:
        """Settings that differ from the running trainer's (they wait for Reset)."""
        if settings is None or self.settings is None:
            return []
        return changed_settings(self.settings, settings)

    # -- control (button callbacks) -------------------------------------------------------------
    def start(self, settings: Settings | None = None, prepared: Prepared | None = None) -> bool:
        """Start (or resume, or continue after a stop/failure). Never a second thread.

        True when a training thread started now. Beyond the server's limit the session queues
        (:attr:`queued`, :meth:`queue_position`) and starts by itself when a slot frees.
        """
        with self._lock:
            if self.closed:
                return False
            if settings is not None and prepared is not None:
                self.sync(settings, prepared)
            t = self.trainer
            if t is None or (t.is_alive() and t.status == RUNNING):
                return False
            if self.suspended:  # no browser: start once one is back
                self._wake_action = "train"
                return False
            if self.admission.request(self._train_key, self._admitted, alive=self._holds_slot) != 0:
                self.queued = True
                return False
            return self._start_trainer()

    def _start_trainer(self) -> bool:
        self.queued = False
        started = self.trainer.start()  # a paused thread is resumed (False)
        self._follow()
        if not self.training():  # finished runs do not start: the slot goes back
            self.admission.release(self._train_key)
        return started

    def _admitted(self) -> bool:
        """A slot freed while this session waited (called by the admission, outside its lock)."""
        with self._lock:
            if self.closed or not self.queued or self.trainer is None:
                return False
            self._start_trainer()
            return self.training()

    def _holds_slot(self) -> bool:
        """The admission's check that this session still trains (waits while a start is under way)."""
        with self._lock:
            return self.training()

    def _leave_admission(self) -> None:
        """Give back the training slot, or leave the queue."""
        self.queued = False
        self.admission.release(self._train_key)

    def queue_position(self) -> int | None:
        """This session's place in the server's queue for a training slot (None: not queued)."""
        return self.admission.position(self._train_key) if self.queued else None

    def pause(self) -> None:
        with self._lock:
            if self.trainer is not None:
                self.trainer.pause()
            self._leave_admission()

    def resume(self) -> None:
        with self._lock:
            if self.trainer is not None and self.trainer.status == PAUSED:
                self.start()

    def stop(self) -> None:
        with self._lock:
            self._leave_admission()
            if self.trainer is not None:
                self.trainer.stop()
            self.projector.poke()

    def reset(self, settings: Settings | None = None, prepared: Prepared | None = None) -> None:
        """Stop and start over from fresh weights, applying ``settings`` if given; a baseline fit
        in progress is cancelled."""
        with self._lock:
            if self.closed:
                return
            self.baselines.cancel()
            self._leave_admission()
            if settings is None or prepared is None:
                if self.trainer is not None:
                    self.trainer.reset(**(self._recording(self.settings, self.prepared) if self.settings else {}))
                    self.generation += 1
                    self._follow()
                return
            self._rebuild(settings, prepared)  # the old trainer stops once the new one exists

    # -- reading --------------------------------------------------------------------------------
    def snapshot(self):
        t = self.trainer
        return None if t is None else t.snapshot()

    def training(self) -> bool:
        t = self.trainer
        return t is not None and t.is_alive() and t.status == RUNNING

    def downloads(self, baselines: Mapping[str, float]) -> dict | None:
        """What the Download buttons serve, by name: ``embeddings`` (CSV), ``metrics`` (CSV), ``model`` (zip).

        None before the first step (an untrained model is nothing to keep). While training: functions
        that Streamlit calls when a button is clicked, so the file holds the state of that moment.
        Otherwise: the bytes themselves, built once per (trainer, step, baseline results). Streamlit
        names a file by the hash of its content, so the same bytes keep the same address on every
        rerun, and a click that meets a rerun (the one that ends the periodic refresh a moment after
        Stop, say) still finds its file; a deferred function is revoked at every full rerun instead.
        """
        with self._lock:
            trainer, prep, settings = self.trainer, self.prepared, self.settings
            if trainer is None or prep is None:
                return None
            snap = trainer.snapshot()
            if snap.step == 0:
                return None
            config = {} if settings is None else settings.config.to_dict()
            baselines = dict(baselines)

            def embeddings() -> str:
                return export.sampled_embeddings_csv(trainer.embed, prep)

            def model() -> bytes:
                s = trainer.snapshot()
                metrics = {} if s.last_metric is None else {s.metric_name: s.last_metric}
                return export.model_zip(trainer.to_estimator(), prep, config, metrics)

            makers = {
                "embeddings": embeddings,
                "metrics": lambda: export.metrics_csv(trainer.snapshot(), baselines),
                "model": model,
            }
            if self.training():
                return makers
            key = (id(trainer), self.generation, snap.step, snap.status, tuple(sorted(baselines.items())))
            if key != self._downloads_key:
                self._downloads = {name: make() for name, make in makers.items()}
                self._downloads_key = key
            return dict(self._downloads)

    def needs_refresh(self) -> bool:
        """Whether the page should keep refreshing: training or queued, a projection, a baseline or an
        exact evaluation pending."""
        if self.closed:
            return False
        return (self.training() or self.queued or self.baselines.busy() or self.exact.running()
                or not self.projector.up_to_date())

    # -- no browser attached ----------------------------------------------------------------------
    def suspend(self) -> None:
        """The last browser of this session went away: pause training (its slot goes to the next in
        line), leave the queue, freeze a baseline fit; :meth:`wake` undoes all three."""
        with self._lock:
            if self.closed or self.suspended:
                return
            self.suspended = True
            self._wake_action = "train" if self.training() else "queue" if self.queued else None
            if self.trainer is not None and self.trainer.status == RUNNING:
                self.trainer.pause()
            self._leave_admission()
            self.baselines.suspend()

    def wake(self) -> None:
        """A browser is back: continue what :meth:`suspend` paused (through the admission again)."""
        with self._lock:
            if self.closed or not self.suspended:
                return
            self.suspended = False
            action, self._wake_action = self._wake_action, None
            self.baselines.wake()
            if action is not None:
                self.start()

    # -- ending ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every thread and process of this session (the trainer's within its stop timeout)."""
        with self._lock:
            self.closed = True
            self._leave_admission()
            self.baselines.close()
            self.exact.close()
            if self.trainer is not None:
                try:
                    self.trainer.stop()
                except RuntimeError:
                    pass
            self.projector.close()
            if self._upload_dir is not None:
                shutil.rmtree(self._upload_dir, ignore_errors=True)
                self._upload_dir = None
        _sessions.discard(self)


def close_session(session: Session) -> None:
    """``on_release`` of the session cache: the browser session ended."""
    session.close()


def close_all_sessions() -> None:
    """Close every open session of this process (tests; shutdown)."""
    for s in list(_sessions):
        s.close()


def open_sessions() -> list[Session]:
    return list(_sessions)


def replace_config(settings: Settings, **changes) -> Settings:
    return dataclasses.replace(settings, config=settings.config.replace(**changes))
