"""The UMAP process: one per server, off the training thread and the page.

:class:`UmapService` starts a child process (:mod:`hraml_dashboard.child`) that imports umap-learn
and compiles numba in the background (a tiny fit at start), then computes UMAP frames on request.
A separate process keeps numba's compile and UMAP's GIL-holding loops off the training thread and
the page (a lower CPU priority, ``nice``, is possible but starved the warm-up for minutes on a busy
2-vCPU machine). :func:`serve` is the child's main loop.
"""
from __future__ import annotations

import atexit
import os
import pickle
import threading
import time

import numpy as np

from . import child
from .geometry import UMAP_EPOCHS, pca_2d, umap_2d


# --------------------------------------------------------------------------------------------------
def _warm_up_data(n: int = 300, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (5, d))
    return (centres[rng.integers(0, 5, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def serve(nice: int = 0) -> None:
    """The UMAP process's main loop: requests ``(Z, init, seed, n_epochs)`` on its pipe, answers
    ``("ok", xy, seconds)`` or ``("error", message)``; first ``("ready", seconds)`` once warm.

    Started by :class:`UmapService` as ``python -c "...serve()"``. Exits when the pipe closes (the
    parent is gone) or on a ``None`` request.
    """
    conn = child.connection()
    try:
        if nice:
            os.nice(nice)
    except OSError:
        pass
    import warnings

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    try:
        Z = _warm_up_data()
        umap_2d(Z, init=pca_2d(Z), n_epochs=10)  # compiles what later frames use
        conn.send(("ready", time.perf_counter() - t0))
    except BaseException as exc:  # report, then exit
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if msg is None:
            return
        Z, init, seed, n_epochs = msg
        try:
            t = time.perf_counter()
            xy = umap_2d(Z, init=init, seed=seed, n_epochs=n_epochs)
            conn.send(("ok", xy, time.perf_counter() - t))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class UmapService:
    """A child process that computes UMAP frames; one call at a time (calls queue on a lock).

    :meth:`start` returns at once; the process imports umap-learn and compiles numba (a tiny fit),
    then :attr:`ready` is set. :meth:`fit` before that raises ``RuntimeError``. The process is a
    :mod:`hraml_dashboard.child`: it exits when the parent closes its pipe or dies.
    """

    def __init__(self, nice: int = 0):
        self.nice = nice
        self.ready = threading.Event()
        self.failed: str | None = None
        self.warm_up_s: float | None = None
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._waiter: threading.Thread | None = None

    def start(self) -> "UmapService":
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self
            self._spawn()
        return self

    def _spawn(self) -> None:
        self.ready.clear()
        self.failed = None
        self._proc, self._conn = child.spawn(f"from hraml_dashboard.umap_process import serve; serve({int(self.nice)})")
        self._waiter = threading.Thread(target=self._wait_ready, args=(self._proc, self._conn),
                                        name="hraml-umap-warmup", daemon=True)
        self._waiter.start()

    def _wait_ready(self, proc, conn) -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            msg = ("error", "the UMAP process exited during warm-up")
        if proc is not self._proc:
            return
        if msg[0] == "ready":
            self.warm_up_s = float(msg[1])
            self.ready.set()
        else:
            self.failed = str(msg[1])

    @property
    def state(self) -> str:
        if self.ready.is_set():
            return "ready"
        if self.failed:
            return "failed"
        if self._proc is None:
            return "off"
        return "warming up"

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def fit(self, Z, init=None, seed: int = 0, n_epochs: int = UMAP_EPOCHS, timeout: float = 60.0) -> np.ndarray:
        """A UMAP layout of Z computed in the process (raises RuntimeError if it is not ready)."""
        if not self.ready.is_set():
            raise RuntimeError(f"UMAP is not ready ({self.state})")
        Z = np.ascontiguousarray(Z, dtype=np.float32)
        init = None if init is None else np.ascontiguousarray(init, dtype=np.float64)
        with self._lock:
            conn = self._conn
            try:
                if conn is None:
                    raise EOFError("the UMAP process is not running")
                conn.send((Z, init, int(seed), int(n_epochs)))
                if not conn.poll(timeout):
                    raise TimeoutError(f"no UMAP frame within {timeout} s")
                msg = conn.recv()
            except (EOFError, OSError, TimeoutError, pickle.UnpicklingError) as exc:
                self._restart(str(exc))
                raise RuntimeError(f"UMAP process failed ({exc}); restarting it") from None
        if msg[0] != "ok":
            raise RuntimeError(f"UMAP failed: {msg[1]}")
        return msg[1]

    def _restart(self, why: str) -> None:
        self._kill()
        self._spawn()
        self.failed = why

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self.ready.clear()
        child.end(proc, conn)  # closing the pipe ends the serve loop; terminate only if it lingers

    def close(self) -> None:
        with self._lock:
            self._kill()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid


_service: UmapService | None = None
_service_lock = threading.Lock()


def umap_service(start: bool = True) -> UmapService | None:
    """The process-wide UMAP service, started (warm-up in the background) on first use."""
    global _service
    with _service_lock:
        if _service is None and start:
            _service = UmapService().start()
            atexit.register(_service.close)
        return _service


def umap_enabled() -> bool:
    """UMAP can be switched off (PCA only) with HRAML_DASHBOARD_UMAP=0."""
    return os.environ.get("HRAML_DASHBOARD_UMAP", "1").strip().lower() not in ("0", "false", "no", "off")


