"""The UMAP process: one per server, off the training thread and the page.

:class:`UmapService` starts a child process (:mod:`hraml_dashboard.child`) that imports umap-learn
and compiles numba in the background (a tiny fit at start), then computes UMAP frames on request.
A separate process keeps numba's compile and UMAP's GIL-holding loops off the training thread and
the page (a lower CPU priority, ``nice``, is possible but starved the warm-up on a busy small
machine). :func:`serve` is the child's main loop.

The compile is paid once per machine, not per server start: the child keeps numba's compiled
kernels on disk (:func:`numba_cache_dir`), and the neighbour graph is computed outside numba
(:func:`hraml_dashboard.geometry.umap_2d`), which leaves out the one kernel that cannot be cached.

The process is shared by every session of the server (see :mod:`hraml_dashboard.budget`): frames
are computed one at a time in the order asked, with a pause after each that keeps the process
below ``max_duty`` of a core. A process that dies is started again at the next frame (that frame
falls back to PCA, with the reason shown); one that dies during its warm-up is reported.
"""
from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hraml_core.scheduler import CpuShare

from . import child
from .geometry import UMAP_EPOCHS, pca_2d, umap_2d

#: Where the UMAP process keeps numba's compiled kernels (else $NUMBA_CACHE_DIR, else
#: $XDG_CACHE_HOME/hraml/numba or ~/.cache/hraml/numba, else a temporary folder).
CACHE_VARIABLE = "HRAML_NUMBA_CACHE_DIR"


# --------------------------------------------------------------------------------------------------
def numba_cache_dir() -> Path:
    """A writable folder for numba's on-disk cache (created), chosen as :data:`CACHE_VARIABLE` says."""
    given = os.environ.get(CACHE_VARIABLE) or os.environ.get("NUMBA_CACHE_DIR")
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    for folder in ([given] if given else []) + [str(Path(home) / "hraml" / "numba"),
                                                 str(Path(tempfile.gettempdir()) / "hraml-numba")]:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return Path(folder)
        except OSError:
            continue
    raise OSError("no writable folder for numba's cache")


def _cache_numba_kernels() -> None:
    """In the UMAP process, before umap is imported: compiled kernels go to an on-disk cache.

    umap-learn declares most of its kernels without ``cache=True``, so every new process compiled
    them again (most of its warm-up; docs/BENCHMARKS.md, section Dashboard). Defaulting
    ``cache=True`` on numba's decorators here (an explicit ``cache=False`` is kept; a kernel numba
    cannot cache is compiled as before) makes the second and later processes on a machine load
    them instead.
    """
    try:
        os.environ["NUMBA_CACHE_DIR"] = str(numba_cache_dir())  # read when numba is imported
        import numba
    except (OSError, ImportError):
        return

    def cached(decorator):
        def wrapper(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)
        return wrapper

    numba.njit, numba.jit = cached(numba.njit), cached(numba.jit)


def _warm_up_data(n: int = 300, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (5, d))
    return (centres[rng.integers(0, 5, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def serve(nice: int = 0, warm_up: bool = True) -> None:
    """The UMAP process's main loop: requests ``(Z, init, seed, n_epochs)`` on its pipe, answers
    ``("ok", xy, seconds)`` or ``("error", message)``; first ``("ready", seconds)`` once warm
    (``warm_up=False``: at once, the compile left to the first frame).

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
        if warm_up:
            _cache_numba_kernels()
            Z = _warm_up_data()
            umap_2d(Z, init=pca_2d(Z), n_epochs=10)  # compiles (or loads) what later frames use
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
    """A child process that computes UMAP frames; one call at a time, served in the order asked.

    :meth:`start` returns at once; the process imports umap-learn and compiles numba (a tiny fit),
    then :attr:`ready` is set. :meth:`fit` before that raises ``RuntimeError``. The process is a
    :mod:`hraml_dashboard.child`: it exits when the parent closes its pipe or dies.

    ``max_duty`` (0 < max_duty <= 1): after a frame that took d seconds the next one starts no
    sooner than d * (1 / max_duty - 1) seconds later, so the process uses at most that share of a
    core however many callers wait. ``warm_up=False`` skips the warm-up fit (tests).
    """

    def __init__(self, nice: int = 0, max_duty: float = 1.0, warm_up: bool = True):
        if not 0 < max_duty <= 1:
            raise ValueError(f"max_duty must be in (0, 1], got {max_duty!r}")
        self.nice = nice
        self.max_duty = float(max_duty)
        self.warm_up = bool(warm_up)
        self.ready = threading.Event()
        self.failed: str | None = None
        self.warm_up_s: float | None = None
        self.restarts = 0  # processes started again after one died
        self._closed = False  # closed: no restart (a caller still in line gets an error)
        self._lock = threading.Lock()
        self._line = CpuShare(slots=1, slice_s=0.0)  # callers take turns, first come first served
        self._not_before = 0.0  # monotonic time the next frame may start (the duty cap)
        self._proc = None
        self._conn = None
        self._waiter: threading.Thread | None = None

    def start(self) -> "UmapService":
        with self._lock:
            self._closed = False
            if self._proc is not None and self._proc.poll() is None:
                return self
            self._spawn()
        return self

    def _spawn(self) -> None:
        self.ready.clear()
        self.failed = None
        self._proc, self._conn = child.spawn(
            f"from hraml_dashboard.umap_process import serve; serve({int(self.nice)}, {self.warm_up})")
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
        with self._line.turn():
            wait = self._not_before - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the duty cap; later callers wait their turn meanwhile
            t0 = time.monotonic()
            try:
                msg = self._ask((Z, init, int(seed), int(n_epochs)), timeout)
            finally:
                took = time.monotonic() - t0
                self._not_before = time.monotonic() + took * (1.0 / self.max_duty - 1.0)
        if msg[0] != "ok":
            raise RuntimeError(f"UMAP failed: {msg[1]}")
        return msg[1]

    def _ask(self, request, timeout: float):
        with self._lock:
            conn = self._conn
            if self._closed:
                raise RuntimeError("the UMAP process was closed")
            try:
                if conn is None:
                    raise EOFError("the UMAP process is not running")
                conn.send(request)
                if not conn.poll(timeout):
                    raise TimeoutError(f"no UMAP frame within {timeout} s")
                return conn.recv()
            except (EOFError, OSError, TimeoutError, pickle.UnpicklingError) as exc:
                if self._closed:
                    raise RuntimeError("the UMAP process was closed") from None
                why = str(exc) or type(exc).__name__
                code = None
                if self._proc is not None:
                    try:  # a broken pipe: the process has ended or is ending; wait for its code a moment
                        code = self._proc.wait(0.5)
                    except subprocess.TimeoutExpired:
                        pass
                if code is not None:
                    why = f"the UMAP process ended (exit code {code})"
                self._restart(why)
                raise RuntimeError(f"UMAP process failed ({why}); restarting it") from None

    def _restart(self, why: str) -> None:
        self._kill()
        self._spawn()
        self.restarts += 1
        self.failed = why  # shown (state "failed") until the new process is warm

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self.ready.clear()
        child.end(proc, conn)  # closing the pipe ends the serve loop; terminate only if it lingers

    def close(self, grace: float = 1.0) -> None:
        """End the process (a frame in progress fails at once: its caller gets an error)."""
        self._closed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            child.signal_group(proc, signal.SIGTERM)  # not waiting for the frame that holds the lock
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
            self.ready.clear()
            child.end(proc, conn, grace)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid


_service: UmapService | None = None
_service_lock = threading.Lock()


def umap_service(start: bool = True) -> UmapService | None:
    """The process-wide UMAP service, started (warm-up in the background) on first use; its duty
    is capped at :data:`hraml_dashboard.budget.UMAP_DUTY` of a core."""
    from .budget import UMAP_DUTY

    global _service
    with _service_lock:
        if _service is None and start:
            _service = UmapService(max_duty=UMAP_DUTY).start()
            atexit.register(_service.close)
        return _service


def umap_enabled() -> bool:
    """UMAP can be switched off (PCA only) with HRAML_DASHBOARD_UMAP=0."""
    return os.environ.get("HRAML_DASHBOARD_UMAP", "1").strip().lower() not in ("0", "false", "no", "off")


