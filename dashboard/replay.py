"""Projections of a recorded run, for replaying it: one aligned 2-D frame per snapshot.

:class:`FrameChain` walks a run's snapshots in step order in one background thread (per run and
method, for the whole server: :meth:`hraml_dashboard.run_store.SharedRun.chain`), computes each
frame like the live page does (UMAP warm-started from the previous frame through the server's UMAP
process, or PCA) and aligns it onto the previous frame (Procrustes), so that points move smoothly
from one snapshot to the next. Frames are kept (16 kB for 2000 points), snapshots are not. A run
still being written extends its chain as snapshots arrive.

A step whose frame is not computed yet is shown by :meth:`FrameChain.frame_or_fallback`: the PCA of
that snapshot, aligned onto the last frame computed before it.

Why not umap-learn's AlignedUMAP: it fits every snapshot together, once, and a live run keeps
adding snapshots; the warm-started chain is also what the live page shows, so a replay looks like
the training did.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .geometry import pca_2d, procrustes_align
from .projection import PCA, UMAP, UMAP_MIN_POINTS, BackgroundThread
from .umap_process import umap_enabled, umap_service

_ids = itertools.count(1)
#: A chain's thread ends after this long with nothing to do (a new snapshot starts it again).
IDLE_EXIT_S = 5.0


@dataclass(frozen=True)
class ReplayFrame:
    """One projected snapshot: ``xy`` (n, 2) float32 at ``step``, by ``method``."""

    xy: np.ndarray
    labels: np.ndarray
    method: str
    step: int
    note: str = ""
    aligned: bool = True  # False: a fallback, not yet part of the chain


class FrameChain(BackgroundThread):
    """Aligned frames of ``run``'s snapshots by ``method`` ("umap" or "pca"); see the module docstring.

    ``service_getter`` returns the UMAP service (default: the server's, None when UMAP is switched off).
    ``wanted`` says whether anyone still looks (default: always): checked before each frame, a chain
    nobody looks at stops computing (its thread ends) until :meth:`ensure` is called again, so the
    server goes quiet when the last viewer leaves, however many frames were still to compute.
    """

    def __init__(self, run, method: str, service_getter=None, idle_exit_s: float = IDLE_EXIT_S,
                 wanted: Callable[[], bool] | None = None):
        if method not in (UMAP, PCA):
            raise ValueError(f"projection method must be {UMAP!r} or {PCA!r}, got {method!r}")
        super().__init__(f"hraml-replay-{method}-{next(_ids)}")
        self.run = run
        self.method = method
        self.idle_exit_s = float(idle_exit_s)
        self._service_getter = service_getter or (lambda: umap_service() if umap_enabled() else None)
        self._wanted = wanted or (lambda: True)
        self._frames: dict[int, ReplayFrame] = {}
        self._steps: list[int] = []  # steps with a frame, ascending
        self._upto = -1  # the last snapshot step the chain has dealt with
        self._lock = threading.Lock()
        self.note = ""  # why frames are not (yet) by the method asked for
        self.errors: list[str] = []

    # -- control ----------------------------------------------------------------------------------
    def ensure(self) -> None:
        """Start the thread if snapshots are waiting for their frames."""
        if self._missing():
            self._ensure_thread()

    def poke(self) -> None:
        """New snapshots may be there."""
        super().poke()
        self.ensure()

    # -- reading ----------------------------------------------------------------------------------
    def progress(self) -> tuple[int, int]:
        """(snapshots dealt with, snapshots)."""
        steps = self.run.snapshot_steps
        return int(np.searchsorted(steps, self._upto, side="right")), len(steps)

    def complete(self) -> bool:
        return not self._missing()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every snapshot read so far has its frame (True) or ``timeout`` (False)."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        while not self.complete():
            self.ensure()
            if end is not None and time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    def frame(self, step: int) -> ReplayFrame | None:
        """The chain's frame at ``step`` (None when not computed)."""
        return self._frames.get(int(step))

    def latest(self) -> ReplayFrame | None:
        """The chain's last frame (a live view shows it rather than a fallback that would flicker
        between methods)."""
        with self._lock:
            return self._frames[self._steps[-1]] if self._steps else None

    def frame_or_fallback(self, step: int) -> ReplayFrame | None:
        """The frame at ``step``; before the chain reaches it, the PCA of that snapshot aligned onto
        the last frame computed before it (None when the snapshot cannot be read)."""
        hit = self._frames.get(int(step))
        if hit is not None:
            return hit
        try:
            snap = self.run.snapshot(step)
        except (KeyError, ValueError):
            return None
        xy = pca_2d(snap.embeddings)
        with self._lock:
            i = int(np.searchsorted(self._steps, step)) - 1
            prev = self._frames[self._steps[i]] if i >= 0 else None
        if prev is not None and prev.xy.shape == xy.shape:
            xy = procrustes_align(xy, prev.xy)
        done, total = self.progress()
        return ReplayFrame(xy, np.asarray(snap.embedding_labels), PCA, int(step),
                           f"PCA while {self.method.upper()} frames are computed ({done}/{total})", aligned=False)

    # -- the thread -------------------------------------------------------------------------------
    def _missing(self) -> list[int]:
        # steps recorded below the last one computed (a divergence took the trainer back) are
        # shown by the fallback: the chain only moves forward
        upto = self._upto
        return [s for s in self.run.snapshot_steps if s > upto]

    def _loop(self) -> None:
        while not self._closed.is_set():
            todo = self._missing()
            if not todo:
                self._wake.clear()
                if not self._wake.wait(self.idle_exit_s) or self._closed.is_set():
                    with self._thread_lock:
                        if self._missing() and not self._closed.is_set():
                            continue  # a snapshot arrived as we were leaving
                        self._thread = None
                    return
                continue
            for step in todo:
                if self._closed.is_set():
                    return
                if not self._wanted():
                    with self._thread_lock:
                        self._thread = None  # the next ensure() starts it again
                    return
                frame = self._compute(step)
                with self._lock:
                    if frame is not None:
                        self._frames[step] = frame
                        self._steps.append(step)
                    self._upto = step

    def _compute(self, step: int) -> ReplayFrame | None:
        try:
            snap = self.run.snapshot(step)
        except (KeyError, ValueError) as exc:  # replaced meanwhile, or unreadable: no frame for it
            self.errors = (self.errors + [str(exc)])[-20:]
            return None
        Z = np.asarray(snap.embeddings)
        with self._lock:
            prev = self._frames[self._steps[-1]] if self._steps else None
        same = prev is not None and prev.xy.shape == (len(Z), 2)
        method, xy = PCA, None
        if self.method == UMAP:
            xy = self._umap(Z, prev.xy if same else None)
            method = UMAP if xy is not None else PCA
        if xy is None:
            xy = pca_2d(Z)
        if same:
            xy = procrustes_align(xy, prev.xy)
        return ReplayFrame(xy, np.asarray(snap.embedding_labels), method, int(step), self.note if method != self.method else "")

    def _umap(self, Z, init) -> np.ndarray | None:
        """A UMAP frame from the server's UMAP process (waiting for its warm-up), or None (PCA)."""
        if len(Z) < UMAP_MIN_POINTS:
            self.note = f"PCA: too few points for UMAP ({len(Z)})"
            return None
        svc = self._service_getter()
        if svc is None:
            self.note = "PCA: UMAP is switched off"
            return None
        while not svc.ready.is_set():
            if svc.failed:
                self.note = f"PCA: UMAP unavailable ({svc.failed})"
                return None
            self.note = "waiting for the UMAP process to warm up"
            if self._closed.wait(0.25):
                return None
        try:
            xy = svc.fit(Z, init=init if init is not None else pca_2d(Z), seed=0)
        except Exception as exc:  # this snapshot by PCA; the next one tries UMAP again
            self.errors = (self.errors + [str(exc)])[-20:]
            self.note = f"UMAP failed, PCA instead: {exc}"
            return None
        self.note = ""
        return xy


# --------------------------------------------------------------------------------------------------
def aligned_frames(run, steps, chain: FrameChain | None = None) -> list[ReplayFrame]:
    """One aligned frame per step of ``steps``: the chain's when it has them all, else a PCA chain
    over exactly these steps, computed here (each frame aligned onto the one before)."""
    if chain is not None:
        got = [chain.frame(s) for s in steps]
        if all(f is not None for f in got):
            return got
    out, prev = [], None
    for s in steps:
        snap = run.snapshot(s)
        xy = pca_2d(snap.embeddings)
        if prev is not None and prev.shape == xy.shape:
            xy = procrustes_align(xy, prev)
        out.append(ReplayFrame(xy, np.asarray(snap.embedding_labels), PCA, int(s)))
        prev = xy
    return out


def evolution_html(run, chain: FrameChain | None = None, max_frames: int | None = None, label_names=None) -> str:
    """A run's evolution as one self-contained HTML file (:func:`hraml_dashboard.figures.evolution_figure`):
    up to ``max_frames`` snapshots spread over the run, with the chain's projection frames when it has
    them all (else PCA frames aligned here). ValueError for a run without snapshots."""
    from . import figures

    if not run.snapshot_steps:
        raise ValueError(f"{run.name}: no snapshots to export yet")
    steps = figures.pick_steps(run.snapshot_steps, max_frames or figures.EXPORT_FRAMES)
    frames = aligned_frames(run, steps, chain)
    fig = figures.evolution_figure(run, steps, frames, label_names, title=run.name)
    return figures.evolution_html(fig, title=f"{run.name} (HRAML run)")
