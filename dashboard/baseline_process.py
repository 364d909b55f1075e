"""Baseline fits in a child process, so that a fit can be cancelled (a Python thread cannot be killed).

:class:`BaselineFit` is one fit. Its daemon thread (name ``hraml-baseline-N``) starts a child
process (:mod:`hraml_dashboard.child`, one BLAS / OpenMP / torch thread, so that the training
thread keeps its speed on a small machine), sends it the request over their pipe, then waits for
the child's answers or its end; :meth:`BaselineFit.cancel` terminates the child. Answers from the child
(:func:`serve`): ``("fitting",)`` once its imports are done, then ``("done", value)`` or
``("failed", message)``.

This module imports only the standard library: the child loads it before anything heavy.
"""
from __future__ import annotations

import itertools
import os
import pickle
import signal
import threading
import time

from . import child

STARTING, FITTING = "starting", "fitting"
_ids = itertools.count(1)


def serve() -> None:
    """The child's main: receive (name, task, metric, X_train, Y_train, X_val, Y_val), fit, answer."""
    conn = child.connection()
    # Ctrl-C on the server reaches the whole process group: the parent ends us, without a traceback here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import warnings

    warnings.filterwarnings("ignore")  # metric-learn's FutureWarnings would fill the server's log
    try:
        name, task, metric, X_train, Y_train, X_val, Y_val = conn.recv()
    except (EOFError, OSError, pickle.UnpicklingError):  # the parent is gone, or cancelled early
        return
    # The parent sends nothing more: the pipe becoming readable means it closed its end or died
    # (even killed outright). Stop then rather than fit on for minutes.
    threading.Thread(target=lambda: (conn.poll(None), os._exit(1)), daemon=True).start()
    try:
        import numpy as np

        from hraml_core.baselines import get_baseline
        from hraml_core.evaluate import evaluate_embedding

        conn.send((FITTING,))
        Xtr, Xva = np.array(X_train, np.float64), np.array(X_val, np.float64)
        Ytr, Yva = np.array(Y_train), np.array(Y_val)
        model = get_baseline(name).fit(Xtr, Ytr)
        value = evaluate_embedding(task, model.transform(Xtr), Ytr, model.transform(Xva), Yva)[metric]
        conn.send(("done", float(value)))
    except Exception as exc:  # the message is shown in the app
        try:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        except OSError:  # the parent is gone
            pass


class BaselineFit:
    """Fit baseline ``name`` in a child process and score it (see the module docstring).

    ``data`` is (X_train, Y_train, X_val, Y_val). When the fit ends, its thread calls
    ``on_end(fit, status, value, message, seconds)`` once, with status "done", "failed" or
    "cancelled" and the seconds since the fit itself began (the child's start-up left out, for a
    fair "fit time"); the child is gone by then.
    """

    def __init__(self, name: str, task: str, metric: str, data, on_end):
        self.name = name
        self.phase = STARTING
        self.started = time.monotonic()
        self._fitting_since: float | None = None
        self._request = (name, task, metric, *data)
        self._on_end = on_end
        self._cancelled = threading.Event()
        self._proc = None
        self.thread = threading.Thread(target=self._run, name=f"hraml-baseline-{next(_ids)}", daemon=True)

    def start(self) -> "BaselineFit":
        self.thread.start()
        return self

    def alive(self) -> bool:
        return self.thread.is_alive()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.pid

    def cancel(self, timeout: float = 5.0) -> None:
        """Terminate the child; returns once the fit has ended (or after ``timeout`` seconds)."""
        self._cancelled.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            child.signal_group(proc, signal.SIGTERM)  # the thread sees the child end, reaps it, reports "cancelled"
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _run(self) -> None:
        answer, proc, conn = None, None, None
        try:
            proc, conn = child.spawn("from hraml_dashboard.baseline_process import serve; serve()")
            self._proc = proc
            if self._cancelled.is_set():  # cancel() came before there was a process to end
                child.signal_group(proc, signal.SIGTERM)
            conn.send(self._request)
            while answer is None:
                msg = conn.recv()  # EOFError once the child has ended
                if msg[0] == FITTING:
                    self.phase, self._fitting_since = FITTING, time.monotonic()
                else:
                    answer = msg
        except (EOFError, OSError, pickle.UnpicklingError):  # the child ended while we talked to it
            pass
        except Exception as exc:  # e.g. data that cannot be pickled
            answer = ("failed", f"{type(exc).__name__}: {exc}")
        finally:
            self._request = None
            child.end(proc, conn)  # after its answer the child is returning: closing the pipe ends it anyway
        seconds = time.monotonic() - (self._fitting_since or self.started)
        if answer is not None:
            status, payload = answer
            value, message = (payload, "") if status == "done" else (None, payload)
        elif self._cancelled.is_set():
            status, value, message = "cancelled", None, ""
        else:
            status, value = "failed", None
            message = f"the fitting process ended unexpectedly (exit code {proc.returncode if proc else None})"
        self._on_end(self, status, value, message, seconds)
