"""The exact held-out evaluation on demand: :meth:`hraml_core.trainer.Trainer.evaluate_full` in a
background thread, with progress and a cancel (no Streamlit here).

The live metric is computed on a fixed sample (``Snapshot.metric_sample``); this one embeds every
row with the weights of the moment it starts (a copy: training may go on, pause or stop meanwhile)
and searches the neighbours of every held-out row among every training row. One evaluation at a
time per session, in a thread named ``hraml-exact-eval-N``; the page reads :meth:`ExactEvaluation.view`
(an immutable :class:`EvalView`) and never waits on it. An evaluation belongs to one trainer (a
``key`` the session gives: trainer and generation); :meth:`ExactEvaluation.follow` with another key
cancels and forgets it.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from hraml_core.evaluate import EvaluationCancelled

from .figures import metric_label

RUNNING, DONE, CANCELLED, FAILED = "running", "done", "cancelled", "failed"
_ids = itertools.count(1)


@dataclass(frozen=True)
class EvalView:
    """What an exact evaluation is doing: ``phase`` (running / done / cancelled / failed), work done
    (``done`` of ``total``: rows embedded, then rows searched), the metrics when done,
    the step whose weights it evaluates, and its rows (held-out, training)."""

    key: object
    phase: str
    step: int
    rows: tuple[int, int]
    done: int = 0
    total: int = 0
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


class ExactEvaluation:
    """One session's exact evaluations (see the module docstring)."""

    def __init__(self, threads: int = 1):
        self.threads = int(threads)  # threads of the neighbour search
        self._lock = threading.Lock()
        self._view: EvalView | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._closed = False

    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def view(self, key=None) -> EvalView | None:
        """The latest evaluation (of ``key``'s trainer when given), or None."""
        v = self._view
        return v if v is not None and (key is None or v.key == key) else None

    def start(self, trainer, key) -> bool:
        """Evaluate ``trainer`` exactly, in the background; False when one is running already (or
        the trainer has no held-out data, which the view then says)."""
        with self._lock:
            if self._closed or (self.running() and not self._cancel.is_set()):
                return False  # (a cancelled one may still finish its chunk: its views are not published)
            snap = trainer.snapshot()
            rows = snap.metric_rows or (0, 0)
            if snap.metric_rows is None:
                self._view = EvalView(key, FAILED, snap.step, rows, message="this run has no held-out rows to evaluate")
                return False
            self._cancel = token = threading.Event()  # also tells this evaluation's views from later ones
            self._view = EvalView(key, RUNNING, snap.step, rows)
            self._thread = threading.Thread(target=self._run, args=(trainer, key, snap.step, rows, token),
                                            name=f"hraml-exact-eval-{next(_ids)}", daemon=True)
            self._thread.start()
            return True

    def _publish(self, token, view: EvalView) -> None:
        with self._lock:
            if token is self._cancel and not (token.is_set() and view.phase == RUNNING):
                self._view = view

    def _run(self, trainer, key, step, rows, token: threading.Event) -> None:
        start = time.perf_counter()
        done = total = 0

        def progress(d: int, t: int) -> None:
            nonlocal done, total
            done, total = d, t
            self._publish(token, EvalView(key, RUNNING, step, rows, d, t, seconds=time.perf_counter() - start))

        try:
            metrics = trainer.evaluate_full(progress=progress, should_stop=token.is_set, threads=self.threads)
        except EvaluationCancelled:
            self._publish(token, EvalView(key, CANCELLED, step, rows, done, total, seconds=time.perf_counter() - start))
        except Exception as exc:  # shown on the page, never a traceback
            self._publish(token, EvalView(key, FAILED, step, rows, seconds=time.perf_counter() - start,
                                          message=f"{type(exc).__name__}: {exc}"))
        else:
            self._publish(token, EvalView(key, DONE, step, rows, total, total, dict(metrics), time.perf_counter() - start))

    def cancel(self, timeout: float | None = 5.0) -> None:
        """Ask the running evaluation to stop (checked between chunks of rows); waits up to ``timeout``."""
        self._cancel.set()
        t = self._thread
        if timeout and t is not None and t is not threading.current_thread():
            t.join(timeout)

    def follow(self, key) -> None:
        """The session's trainer is now ``key``: an evaluation of another one is cancelled (without
        waiting) and forgotten."""
        with self._lock:
            if self._view is None or self._view.key == key:
                return
            self._cancel.set()
            self._cancel = threading.Event()  # the old evaluation's views are no longer published
            self._view = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.cancel()


# --------------------------------------------------------------------------------------------------
# what the page says (pure functions)
# --------------------------------------------------------------------------------------------------
def sample_caption(snap) -> str:
    """Which rows the live metric is computed on, e.g. "Held-out accuracy on 1,000 of 300,000
    held-out rows, matched against 5,000 of 700,000 training rows ..."."""
    if snap.metric_sample is None or snap.metric_rows is None:
        return "No held-out rows: no held-out metric."
    (vs, rs), (vn, rn) = snap.metric_sample, snap.metric_rows
    name = metric_label(snap.metric_name)
    if vs == vn and rs == rn:
        return f"Held-out {name} on all {vn:,} held-out rows, matched against all {rn:,} training rows."
    return (f"Held-out {name} on {vs:,} of {vn:,} held-out rows, matched against {rs:,} of {rn:,} training rows: "
            "a fixed sample, so that each refresh stays fast. **Exact evaluation** uses every row.")


def progress_text(v: EvalView) -> str:
    if not v.total:
        return "Exact evaluation: copying the weights…"
    return (f"Exact evaluation of all {v.rows[0]:,} held-out against all {v.rows[1]:,} training rows (weights of "
            f"step {v.step:,}): {v.fraction:.0%}, {v.seconds:.0f} s")


def result_text(v: EvalView, metric: str) -> str:
    """The outcome of a finished, cancelled or failed evaluation."""
    if v.phase == DONE:
        value = v.metrics.get(metric)
        shown = "–" if value is None else f"**{value:.4f}**"
        others = ", ".join(f"{metric_label(k)} {x:.4f}" for k, x in v.metrics.items() if k != metric and isinstance(x, float))
        return (f"Exact held-out {metric_label(metric)}: {shown} on all {v.rows[0]:,} held-out rows against all {v.rows[1]:,} "
                f"training rows (weights of step {v.step:,}; {v.seconds:.1f} s)" + (f"; {others}" if others else "") + ".")
    if v.phase == CANCELLED:
        return f"Exact evaluation cancelled at {v.fraction:.0%}."
    if v.phase == FAILED:
        return f"Exact evaluation failed: {v.message}"
    return progress_text(v)
