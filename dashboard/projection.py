"""2-D projections of the embeddings, computed off the UI path.

- Pure functions: :func:`pca_2d`, :func:`procrustes_align` (rotate / reflect, scale and translate a
  frame onto the previous one so points do not jump), :func:`umap_2d` (warm-started UMAP).
- :class:`UmapService`: one process per server that imports umap-learn and compiles numba in the
  background (a tiny fit at start), then computes UMAP frames on request. A separate process keeps
  numba's compile and UMAP's GIL-holding loops off the training thread and the page (a lower CPU
  priority, ``nice``, is possible but starved the warm-up for minutes on a busy 2-vCPU machine).
  This module imports neither torch nor Streamlit, so the process starts light.
- :class:`ProjectionWorker`: one daemon thread per browser session (name ``hraml-projection-N``).
  It follows a snapshot source (the trainer), and for each new snapshot (at most one frame per
  ``min_interval_s``) computes a frame, UMAP warm-started from the previous layout when the UMAP
  process is ready and PCA otherwise, aligns it onto the previous frame and publishes it. The UI
  only reads :meth:`ProjectionWorker.latest`.
"""
from __future__ import annotations

import atexit
import itertools
import os
import pickle
import select
import subprocess
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import child

UMAP, PCA = "umap", "pca"
METHODS = (UMAP, PCA)
#: UMAP settings for live frames (see docs/BENCHMARKS.md): approximate neighbours, 50 epochs.
UMAP_EPOCHS = 50
UMAP_NEIGHBORS = 15
#: Fewer points than this: PCA only (UMAP needs a neighbourhood graph).
UMAP_MIN_POINTS = 20
_ids = itertools.count(1)


# --------------------------------------------------------------------------------------------------
# pure functions
# --------------------------------------------------------------------------------------------------
def pca_2d(Z) -> np.ndarray:
    """The first two principal components of ``Z`` (n x d) as an (n, 2) float32 array.

    Signs are fixed (the largest-magnitude coordinate of each axis is positive) so that equal
    inputs give equal outputs; fewer than 2 dimensions are padded with zeros.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {Z.shape}")
    n = len(Z)
    out = np.zeros((n, 2))
    if n == 0:
        return out.astype(np.float32)
    C = Z - Z.mean(0)
    if n > 1 and C.shape[1] > 0:
        U, S, _ = np.linalg.svd(C, full_matrices=False)
        k = min(2, len(S))
        P = U[:, :k] * S[:k]
        idx = np.abs(P).argmax(0)
        P = P * np.where(P[idx, np.arange(k)] < 0, -1.0, 1.0)
        out[:, :k] = P
    return out.astype(np.float32)


def procrustes_align(frame, reference) -> np.ndarray:
    """``frame`` (n, 2) moved onto ``reference`` (n, 2) by the similarity transform that fits best.

    Both are centred and scaled to unit Frobenius norm, the orthogonal matrix R minimising
    ||F R - Ref|| is found (scipy's orthogonal_procrustes; a reflection is allowed, UMAP's sign is
    arbitrary), and the result is put back at the reference's scale and centre. A rotated, scaled,
    reflected and translated copy of the reference therefore aligns back onto it exactly.
    """
    from scipy.linalg import orthogonal_procrustes

    F = np.asarray(frame, dtype=np.float64)
    Ref = np.asarray(reference, dtype=np.float64)
    if F.shape != Ref.shape or F.ndim != 2:
        raise ValueError(f"frame and reference must have the same (n, k) shape, got {F.shape} and {Ref.shape}")
    mu_f, mu_r = F.mean(0), Ref.mean(0)
    Fc, Rc = F - mu_f, Ref - mu_r
    nf, nr = np.linalg.norm(Fc), np.linalg.norm(Rc)
    if nf == 0 or nr == 0:
        return (Fc + mu_r).astype(np.float32)
    R, _ = orthogonal_procrustes(Fc / nf, Rc / nr)
    return ((Fc / nf) @ R * nr + mu_r).astype(np.float32)


def umap_2d(Z, init=None, seed: int = 0, n_epochs: int = UMAP_EPOCHS, n_neighbors: int = UMAP_NEIGHBORS) -> np.ndarray:
    """UMAP of ``Z`` to 2-D, warm-started from ``init`` (n, 2) when given (PCA otherwise).

    Approximate neighbours (``force_approximation_algorithm``: umap's exact path below 4096 points
    is a slow Python loop), one thread, a fixed seed and few epochs: a live frame, not a final plot.
    """
    import umap

    Z = np.ascontiguousarray(Z, dtype=np.float32)
    if init is None:
        init = pca_2d(Z)
    init = np.asarray(init, dtype=np.float64)
    if init.shape != (len(Z), 2):
        raise ValueError(f"init must have shape ({len(Z)}, 2), got {init.shape}")
    if np.ptp(init, axis=0).min() <= 0:  # degenerate start: umap rescales by the range
        init = init + np.random.default_rng(seed).normal(0, 1e-3, init.shape)
    model = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, len(Z) - 1)),
        n_epochs=n_epochs,
        init=init,
        random_state=seed,
        n_jobs=1,
        force_approximation_algorithm=True,
        low_memory=True,
        verbose=False,
    )
    return model.fit_transform(Z).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# the UMAP process
# --------------------------------------------------------------------------------------------------
def _warm_up_data(n: int = 300, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (5, d))
    return (centres[rng.integers(0, 5, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def serve(nice: int = 0) -> None:
    """The UMAP process's main loop: frames over stdin / stdout (length-prefixed pickles).

    Started by :class:`UmapService` as ``python -c "...serve()"``; stdout is kept for the protocol
    (anything printed goes to stderr). Exits when stdin closes (the parent is gone).
    """
    out, inp = child.streams()
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
        child.send(out, ("ready", time.perf_counter() - t0))
    except BaseException as exc:  # report, then exit
        child.send(out, ("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            msg = child.recv(inp)
        except (EOFError, OSError):  # the parent is gone
            return
        if msg is None:
            return
        Z, init, seed, n_epochs = msg
        try:
            t = time.perf_counter()
            xy = umap_2d(Z, init=init, seed=seed, n_epochs=n_epochs)
            child.send(out, ("ok", xy, time.perf_counter() - t))
        except Exception as exc:
            child.send(out, ("error", f"{type(exc).__name__}: {exc}"))


class UmapService:
    """A child process that computes UMAP frames; one call at a time (calls queue on a lock).

    :meth:`start` returns at once; the process imports umap-learn and compiles numba (a tiny fit),
    then :attr:`ready` is set. :meth:`fit` before that raises ``RuntimeError``. The process is a
    plain ``python -c`` child (not multiprocessing, which would re-import the parent's main
    script), reads requests on stdin and exits when the parent closes it or dies.
    """

    def __init__(self, nice: int = 0):
        self.nice = nice
        self.ready = threading.Event()
        self.failed: str | None = None
        self.warm_up_s: float | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
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
        self._proc = child.spawn(f"from dashboard.projection import serve; serve({int(self.nice)})")
        self._waiter = threading.Thread(target=self._wait_ready, args=(self._proc,), name="hraml-umap-warmup", daemon=True)
        self._waiter.start()

    def _wait_ready(self, proc) -> None:
        try:
            msg = child.recv(proc.stdout)
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
            proc = self._proc
            try:
                child.send(proc.stdin, (Z, init, int(seed), int(n_epochs)))
                ready, _, _ = select.select([proc.stdout], [], [], timeout)
                if not ready:
                    raise TimeoutError(f"no UMAP frame within {timeout} s")
                msg = child.recv(proc.stdout)
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
        proc = self._proc
        self._proc = None
        self.ready.clear()
        child.end(proc)  # closing its stdin ends the serve loop; terminate only if it lingers

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


# --------------------------------------------------------------------------------------------------
# the per-session worker
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    """One published projection: ``xy`` (n, 2) float32 for the snapshot ``version``."""

    xy: np.ndarray
    labels: np.ndarray
    method: str  # the method that produced it ("umap" or "pca")
    requested: str  # the method the user chose
    version: int
    source: object  # identity of the snapshot source (a new trainer starts a new sequence)
    seconds: float
    note: str = ""
    step: int = 0
    fallback: bool = False  # UMAP was wanted and ready but failed on this snapshot: PCA instead

    def shows(self, version: int, requested: str, method: str) -> bool:
        """Whether this frame already is what the worker would compute now."""
        return self.version == version and self.requested == requested and (self.method == method or self.fallback)


class ProjectionWorker:
    """One daemon thread that projects the latest snapshot of ``source()`` (see the module docstring).

    ``source`` is a callable returning the current :class:`hraml_core.trainer.Snapshot`-like object
    (with ``version``, ``embeddings``, ``embedding_labels``) and ``source_id`` something that
    changes when the trainer is replaced (frames of different trainers are not aligned).
    """

    def __init__(self, min_interval_s: float = 1.0, seed: int = 0, service_getter=None):
        self.min_interval_s = float(min_interval_s)
        self.seed = seed
        self.method = UMAP if umap_enabled() else PCA
        self._service_getter = service_getter or (lambda: umap_service() if umap_enabled() else None)
        self._source = None
        self._source_id = None
        self._frame: Frame | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.name = f"hraml-projection-{next(_ids)}"
        self.errors: list[str] = []
        self.frames = 0

    # -- control --------------------------------------------------------------------------------
    def follow(self, source, source_id) -> None:
        """Project snapshots of ``source()`` from now on (starting the thread if needed)."""
        with self._lock:
            if source_id != self._source_id:
                self._source, self._source_id = source, source_id
                self._frame = None
        self._ensure_thread()
        self._wake.set()

    def set_method(self, method: str) -> None:
        if method not in METHODS:
            raise ValueError(f"projection method must be one of {METHODS}, got {method!r}")
        if method != self.method:
            self.method = method
            self._wake.set()

    def poke(self) -> None:
        """A new snapshot may be there: look now (the thread also polls)."""
        self._wake.set()

    def _ensure_thread(self) -> None:
        if self._closed.is_set():
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- reading --------------------------------------------------------------------------------
    def latest(self) -> Frame | None:
        with self._lock:
            return self._frame

    def effective_method(self) -> str:
        if self.method == UMAP:
            svc = self._service_getter()
            if svc is not None and svc.ready.is_set():
                return UMAP
        return PCA

    def up_to_date(self) -> bool:
        """True when the published frame shows the source's latest snapshot by the wanted method."""
        with self._lock:
            source, frame = self._source, self._frame
        if source is None:
            return True
        try:
            snap = source()
        except Exception:
            return True
        return frame is not None and frame.shows(snap.version, self.method, self.effective_method())

    # -- the thread -----------------------------------------------------------------------------
    def _loop(self) -> None:
        last_start = -np.inf
        while not self._closed.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            if self._closed.is_set():
                return
            with self._lock:
                source, source_id, prev = self._source, self._source_id, self._frame
            if source is None:
                continue
            try:
                snap = source()
            except Exception:
                continue
            method = self.effective_method()
            if prev is not None and prev.shows(snap.version, self.method, method):
                continue
            wait = self.min_interval_s - (time.perf_counter() - last_start)
            if prev is not None and wait > 0:
                if self._closed.wait(wait):
                    return
                self._wake.set()
                continue  # re-read the newest snapshot after waiting
            last_start = time.perf_counter()
            frame = self._compute(snap, prev, method, source_id)
            with self._lock:
                if self._source_id == source_id:
                    self._frame = frame
                    self.frames += 1

    def _compute(self, snap, prev: Frame | None, method: str, source_id) -> Frame:
        t0 = time.perf_counter()
        Z = np.asarray(snap.embeddings)
        same = prev is not None and prev.xy.shape == (len(Z), 2)
        note = ""
        xy = None
        fallback = False
        if method == UMAP and len(Z) >= UMAP_MIN_POINTS:
            svc = self._service_getter()
            try:
                init = prev.xy if same else pca_2d(Z)
                xy = svc.fit(Z, init=init, seed=self.seed)
            except Exception as exc:  # fall back to PCA for this snapshot
                self.errors = (self.errors + [str(exc)])[-20:]
                note = f"UMAP failed, showing PCA: {exc}"
                method, fallback = PCA, True
        else:
            method = PCA
        if xy is None:
            xy = pca_2d(Z)
            if self.method == UMAP and not note:
                svc = self._service_getter()
                if len(Z) < UMAP_MIN_POINTS:
                    note = f"PCA: too few points for UMAP ({len(Z)})"
                elif svc is None:
                    note = "PCA: UMAP is switched off"
                elif svc.failed:
                    note = f"PCA: UMAP unavailable ({svc.failed})"
                else:
                    note = "PCA while UMAP warms up in the background"
        if same:
            xy = procrustes_align(xy, prev.xy)
        return Frame(
            xy=xy,
            labels=np.asarray(snap.embedding_labels),
            method=method,
            requested=self.method,
            version=int(snap.version),
            source=source_id,
            seconds=time.perf_counter() - t0,
            note=note,
            step=int(getattr(snap, "step", 0)),
            fallback=fallback,
        )
