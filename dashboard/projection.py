"""The per-session projection worker: follows a trainer's snapshots and publishes 2-D frames.

:class:`ProjectionWorker` is one daemon thread per browser session (name ``hraml-projection-N``).
It follows a snapshot source (the trainer), and for each new snapshot (at most one frame per
``min_interval_s``) computes a frame, UMAP warm-started from the previous layout when the UMAP
process (:mod:`hraml_dashboard.umap_process`) is ready and PCA otherwise, aligns it onto the
previous frame (:mod:`hraml_dashboard.geometry`) and publishes it. The UI only reads
:meth:`ProjectionWorker.latest`.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import numpy as np

from .geometry import pca_2d, procrustes_align
from .umap_process import umap_enabled, umap_service

UMAP, PCA = "umap", "pca"
METHODS = (UMAP, PCA)
#: Fewer points than this: PCA only (UMAP needs a neighbourhood graph).
UMAP_MIN_POINTS = 20
_ids = itertools.count(1)


def _geometry_version(snap) -> int:
    """Which embeddings a snapshot carries: a trainer's snapshots keep them between recomputations
    (``geometry_version``), so a frame is made once per new embeddings, not per snapshot."""
    return int(getattr(snap, "geometry_version", snap.version))


# --------------------------------------------------------------------------------------------------
class BackgroundThread:
    """One daemon thread (named ``name``) that runs ``self._loop``: started by :meth:`_ensure_thread`
    (again after it ended), woken by :meth:`poke`, stopped by :meth:`close`. The loop watches
    ``self._wake`` and ``self._closed``."""

    def __init__(self, name: str):
        self.name = name
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    def _loop(self) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def _ensure_thread(self) -> None:
        if self._closed.is_set():
            return
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def poke(self) -> None:
        """Something new may be there: look now."""
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        self._wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def is_alive(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()


@dataclass(frozen=True)
class Frame:
    """One published projection: ``xy`` (n, 2) float32 of the embeddings ``version`` (a snapshot's
    ``geometry_version``, else its ``version``)."""

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


class ProjectionWorker(BackgroundThread):
    """One daemon thread that projects the latest snapshot of ``source()`` (see the module docstring).

    ``source`` is a callable returning the current :class:`hraml_core.trainer.Snapshot`-like object
    (with ``version`` or ``geometry_version``, ``embeddings``, ``embedding_labels``) and ``source_id`` something that
    changes when the trainer is replaced (frames of different trainers are not aligned).
    """

    def __init__(self, min_interval_s: float = 1.0, seed: int = 0, service_getter=None):
        super().__init__(f"hraml-projection-{next(_ids)}")
        self.min_interval_s = float(min_interval_s)
        self.seed = seed
        self.method = UMAP if umap_enabled() else PCA
        self._service_getter = service_getter or (lambda: umap_service() if umap_enabled() else None)
        self._source = None
        self._source_id = None
        self._frame: Frame | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []
        self.frames = 0
        self.passes = 0  # times the thread looked at its source (frames computed or not)

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
        return frame is not None and frame.shows(_geometry_version(snap), self.method, self.effective_method())

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
            if prev is not None and prev.shows(_geometry_version(snap), self.method, method):
                self.passes += 1
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
            version=int(_geometry_version(snap)),
            source=source_id,
            seconds=time.perf_counter() - t0,
            note=note,
            step=int(getattr(snap, "geometry_step", getattr(snap, "step", 0))),
            fallback=fallback,
        )
