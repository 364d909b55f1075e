"""The server's CPU budget, shared by every browser session of one dashboard server.

Three parts, all server-wide (module-level singletons, created on first use):

- :class:`Admission`: at most ``limit`` *jobs* at once, a job being a training session or a
  baseline fit. A job beyond the limit waits in one first-come-first-served queue (its position is
  shown) and starts by itself when a slot frees. The limit: ``hraml dashboard --max-training N``,
  else ``$HRAML_DASHBOARD_MAX_TRAINING``, else :func:`default_limit` (3 per core).
- the trainers' CPU share (:class:`hraml_core.scheduler.CpuShare`): the admitted trainer threads
  take turns, ``$HRAML_DASHBOARD_TRAIN_SLOTS`` of them stepping at once (default 1: on a 2-core
  machine the other core is the page's and the browser's), a slice of ``SLICE_S`` each.
- the UMAP process's duty (:mod:`hraml_dashboard.umap_process`): frames are served one at a time
  in arrival order, with a pause after each so that the process stays below ``UMAP_DUTY`` of one
  core however many sessions ask.

And the refresh intervals: every page that refreshes costs the server a script run, so the
interval grows with the number of pages refreshing: Train pages (:func:`refresh_interval`) and,
counted apart, views of recorded runs: a class's watch links, the Runs and Compare pages
(:func:`view_interval`, with :func:`views` counting them). A page takes a new interval up only when
it moved by more than :data:`INTERVAL_MOVE` (:func:`interval_moved`). The script runs of every
session share one interpreter lock with the trainers, so watchers' refreshes cost the trainers
steps (docs/BENCHMARKS.md, "Server: watchers elsewhere").

No Streamlit here.
"""
from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from hraml_core.scheduler import CpuShare

LIMIT_VARIABLE = "HRAML_DASHBOARD_MAX_TRAINING"
SLOTS_VARIABLE = "HRAML_DASHBOARD_TRAIN_SLOTS"
#: Seconds a trainer steps before handing its turn to the next waiting one.
SLICE_S = 0.05
#: Most of one core the UMAP process may use (frames wait so that it stays below).
UMAP_DUTY = 0.5
#: Page refresh: the interval for up to ``FULL_RATE_PAGES`` refreshing pages (about 2 Hz, the
#: page's target in docs/BENCHMARKS.md, section Dashboard), growing in proportion beyond that, never
#: longer than ``MAX_REFRESH_S`` (about 0.5 Hz).
REFRESH_S = 0.45
FULL_RATE_PAGES = 2
MAX_REFRESH_S = 1.9
#: A refreshing page is drawn anew for a new interval only when it moved by more than this fraction:
#: sessions (a class's watchers) arrive one by one, and each must not redraw every other page.
INTERVAL_MOVE = 0.3


#: A view of a recorded run refreshes every ``VIEW_S`` while at most ``FULL_RATE_VIEWS`` views of the
#: server refresh, less often beyond that in proportion, but never less often than every
#: ``VIEW_MAX_S``: a class's watchers each still see a new step more than once a second (the
#: watch page's target in docs/BENCHMARKS.md, "Server: watchers elsewhere").
VIEW_S = 0.5
FULL_RATE_VIEWS = 4
VIEW_MAX_S = 0.8
#: A view that has not refreshed within this long no longer counts (closed, or paused).
VIEW_GONE_S = 3.0


def default_limit(cores: int | None = None) -> int:
    """Jobs admitted at once when nothing is set: 3 per core, so that each admitted trainer still
    gets about a third of a core's turns and visibly moves; beyond that students wait in line."""
    return max(2, 3 * (cores or os.cpu_count() or 1))


def env_number(name: str, default, parse=int, minimum=1):
    """``parse($name)`` (``default`` when unset or empty); ValueError naming the variable when it
    is not a number of that kind >= ``minimum``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not value >= minimum:
        kind = "an integer" if parse is int else "a number"
        raise ValueError(f"${name} must be {kind} >= {minimum}, got {raw!r}")
    return value


def _shared_interval(pages: int, base_s: float, full_rate: int, max_s: float) -> float:
    """``base_s`` for up to ``full_rate`` pages, longer in proportion beyond, at most ``max_s``."""
    return min(max_s, base_s * max(1.0, pages / full_rate))


def refresh_interval(refreshing: int) -> float:
    """Seconds between page refreshes when ``refreshing`` sessions refresh at once."""
    return _shared_interval(refreshing, REFRESH_S, FULL_RATE_PAGES, MAX_REFRESH_S)


def interval_moved(interval: float | None, wanted: float | None) -> bool:
    """Whether a page refreshing every ``interval`` seconds (None: not refreshing) should be drawn
    anew to refresh every ``wanted``: it starts or stops, or the interval moved by more than
    :data:`INTERVAL_MOVE`."""
    if interval is None or wanted is None:
        return interval != wanted
    return abs(wanted / interval - 1) > INTERVAL_MOVE


def view_interval(viewing: int) -> float:
    """Seconds between refreshes of a recorded run's view when ``viewing`` views refresh at once."""
    return _shared_interval(viewing, VIEW_S, FULL_RATE_VIEWS, VIEW_MAX_S)


class Presence:
    """The keys (views) that reported within the last ``window_s`` seconds."""

    def __init__(self, window_s: float = VIEW_GONE_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = float(window_s)
        self._clock = clock
        self._seen: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def seen(self, key: Hashable) -> None:
        with self._lock:
            self._seen[key] = self._clock()

    def gone(self, key: Hashable) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def count(self) -> int:
        """Keys seen within the window (older ones are forgotten)."""
        with self._lock:
            now = self._clock()
            for key in [k for k, t in self._seen.items() if now - t > self.window_s]:
                del self._seen[key]
            return len(self._seen)


@dataclass
class _Ticket:
    key: Hashable
    on_admit: Callable[[], bool]
    alive: Callable[[], bool] | None


class Admission:
    """At most ``limit`` jobs at once; the rest wait in one FIFO queue.

    :meth:`request` admits a job at once (returns 0; the caller starts it) or queues it (returns
    its 1-based position); a queued job's ``on_admit()`` is called when a slot frees, from the
    thread that freed it, outside this object's lock, and returns whether the job started (False:
    the slot goes to the next). :meth:`release` ends a job or takes it out of the queue.

    Jobs that end without a :meth:`release` (a trainer that failed by itself) are found by their
    ``alive()`` predicate: :meth:`sweep` frees their slots, and while anyone waits a daemon thread
    sweeps every ``sweep_s`` seconds, so the queue moves without any page open.
    """

    def __init__(self, limit: int, sweep_s: float = 0.5):
        self._cv = threading.Condition(threading.RLock())
        self._active: dict[Hashable, _Ticket] = {}
        self._queue: collections.deque[_Ticket] = collections.deque()
        self.limit = 1
        self.set_limit(limit)
        self.sweep_s = float(sweep_s)
        self._sweeper: threading.Thread | None = None
        self.admitted = 0  # jobs admitted so far (tests)

    def set_limit(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"the training limit must be an integer >= 1, got {limit!r}")
        with self._cv:
            self.limit = limit
        self._admit_waiting()

    # -- reading ------------------------------------------------------------------------------
    def position(self, key: Hashable) -> int | None:
        """0 while ``key`` holds a slot, its 1-based place while queued, None otherwise."""
        with self._cv:
            if key in self._active:
                return 0
            for i, t in enumerate(self._queue):
                if t.key == key:
                    return i + 1
            return None

    def active(self) -> list:
        with self._cv:
            return list(self._active)

    def queued(self) -> list:
        with self._cv:
            return [t.key for t in self._queue]

    def wait_until(self, cond: Callable[["Admission"], bool], timeout: float | None = None) -> bool:
        """Block until ``cond(self)`` holds (checked whenever a job is admitted, queued or ends)."""
        with self._cv:
            return self._cv.wait_for(lambda: cond(self), timeout)

    # -- changing -----------------------------------------------------------------------------
    def request(self, key: Hashable, on_admit: Callable[[], bool], alive: Callable[[], bool] | None = None) -> int:
        """Admit ``key`` now (0) or queue it (its position); a key already in either stays put."""
        with self._cv:
            pos = self.position(key)
            if pos is not None:
                return pos
            ticket = _Ticket(key, on_admit, alive)
            if not self._queue and len(self._active) < self.limit:
                self._active[key] = ticket
                self.admitted += 1
                self._cv.notify_all()
                return 0
            self._queue.append(ticket)
            self._cv.notify_all()
            self._ensure_sweeper()
            return len(self._queue)

    def release(self, key: Hashable) -> None:
        """The job ``key`` ended (or left the queue); the next in line may start. Idempotent."""
        with self._cv:
            self._active.pop(key, None)
            self._queue = collections.deque(t for t in self._queue if t.key != key)
            self._cv.notify_all()
        self._admit_waiting()

    def sweep(self) -> None:
        """Free the slots of jobs whose ``alive()`` says they ended, then admit the waiting."""
        with self._cv:
            tickets = list(self._active.values())
        dead = []
        for t in tickets:
            try:
                if t.alive is not None and not t.alive():
                    dead.append(t.key)
            except Exception:  # a broken predicate must not wedge the queue
                dead.append(t.key)
        with self._cv:
            for key in dead:
                if self._active.get(key) in tickets:
                    del self._active[key]
            self._cv.notify_all()
        self._admit_waiting()

    def _admit_waiting(self) -> None:
        while True:
            with self._cv:
                if not self._queue or len(self._active) >= self.limit:
                    return
                ticket = self._queue.popleft()
                self._active[ticket.key] = ticket
                self.admitted += 1
                self._cv.notify_all()
            try:
                started = ticket.on_admit()  # outside the lock: it takes its session's lock
            except Exception:
                started = False
            if not started:
                with self._cv:
                    if self._active.get(ticket.key) is ticket:
                        del self._active[ticket.key]
                    self._cv.notify_all()

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or not self._sweeper.is_alive():
            self._sweeper = threading.Thread(target=self._sweep_loop, name="hraml-admission", daemon=True)
            self._sweeper.start()

    def _sweep_loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(self._queue))  # idle (no CPU) while nobody waits
                self._cv.wait(self.sweep_s)
            self.sweep()


_lock = threading.Lock()
_admission: Admission | None = None
_share: CpuShare | None = None
_views = Presence()


def views() -> Presence:
    """The server's refreshing views of recorded runs (for :func:`view_interval`)."""
    return _views


def admission() -> Admission:
    """The server's admission (limit from ``$HRAML_DASHBOARD_MAX_TRAINING`` or the core count)."""
    global _admission
    with _lock:
        if _admission is None:
            _admission = Admission(env_number(LIMIT_VARIABLE, default_limit()))
        return _admission


def cpu_share() -> CpuShare:
    """The server's CPU share for trainer threads (``$HRAML_DASHBOARD_TRAIN_SLOTS`` at once)."""
    global _share
    with _lock:
        if _share is None:
            _share = CpuShare(slots=env_number(SLOTS_VARIABLE, 1), slice_s=SLICE_S)
        return _share
