"""A CPU share for training threads: at most ``slots`` of them step at once, taking turns in order.

Several :class:`~hraml_core.trainer.Trainer` threads in one process (a dashboard serving a class,
say) do not share the CPU fairly by themselves: each step is a stream of short torch calls that
release and retake the GIL, and whichever thread holds it tends to keep it, so some trainers race
while others hardly move, and the switching costs the whole process throughput. A
:class:`CpuShare` makes them take turns instead: a thread :meth:`Turn.acquire`\\ s a turn before its
work, calls :meth:`Turn.checkpoint` after each unit of work (a training step and what goes with
it), and :meth:`Turn.release`\\ s the turn when it pauses or ends.

- At most ``slots`` turns are held at once; the others wait, blocked, costing no CPU.
- Waiting turns are served first come, first served (a FIFO queue, no priorities).
- A holder keeps its turn for ``slice_s`` seconds of work; at the first checkpoint after that,
  if another turn is waiting, it hands its slot to the head of the queue and queues at the back.
  With nobody waiting it keeps going: a lone trainer never pays for the share.

So with N busy members and ``slots`` = S, each member holds a slot about S/N of the time and the
number of threads stepping at once never exceeds S. Used by passing ``scheduler=`` to
:class:`~hraml_core.trainer.Trainer` (default None: no share, the trainer steps freely).

Standard library only; no Streamlit, no torch.
"""
from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable


class CpuShare:
    """Turns for CPU-bound threads: ``slots`` at once, ``slice_s`` seconds each, first come first
    served (see the module docstring). ``clock`` is injectable for tests (seconds, monotonic)."""

    def __init__(self, slots: int = 1, slice_s: float = 0.05, clock: Callable[[], float] = time.monotonic):
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots must be an integer >= 1, got {slots!r}")
        if not slice_s >= 0:
            raise ValueError(f"slice_s must be >= 0 seconds, got {slice_s!r}")
        self.slots = slots
        self.slice_s = float(slice_s)
        self.clock = clock
        # re-entrant: the condition given to wait_until may call holders() / waiting()
        self._cv = threading.Condition(threading.RLock())
        self._queue: collections.deque[Turn] = collections.deque()
        self._holders: list[Turn] = []
        self._ids = itertools.count(1)
        self.grants = 0  # turns handed out so far (tests, benchmarks)

    def turn(self, name: str = "") -> "Turn":
        """A new member's handle (holds nothing until :meth:`Turn.acquire`)."""
        return Turn(self, name or f"turn-{next(self._ids)}")

    # -- reading ----------------------------------------------------------------------------------
    def holders(self) -> list[str]:
        """Names of the turns held now."""
        with self._cv:
            return [t.name for t in self._holders]

    def waiting(self) -> list[str]:
        """Names of the waiting turns, first in line first."""
        with self._cv:
            return [t.name for t in self._queue]

    def wait_until(self, cond: Callable[["CpuShare"], bool], timeout: float | None = None) -> bool:
        """Block until ``cond(self)`` holds (checked whenever a turn changes hands); for tests."""
        with self._cv:
            return self._cv.wait_for(lambda: cond(self), timeout)

    # -- internals (called with self._cv held) ---------------------------------------------------
    def _grant_waiting(self) -> None:
        while self._queue and len(self._holders) < self.slots:
            t = self._queue.popleft()
            self._hold(t)
        self._cv.notify_all()

    def _hold(self, t: "Turn") -> None:
        t._held, t._since = True, self.clock()
        t.grants += 1
        self.grants += 1
        self._holders.append(t)

    def _drop(self, t: "Turn") -> None:
        if t._held:
            t.held_s += self.clock() - t._since
            t._held = False
            self._holders.remove(t)
        elif t in self._queue:
            self._queue.remove(t)


class Turn:
    """One member's handle on a :class:`CpuShare`. Use from one thread (the member's own)."""

    def __init__(self, share: CpuShare, name: str):
        self.share = share
        self.name = name
        self._held = False
        self._since = 0.0
        self.grants = 0  # times this member was given a slot
        self.held_s = 0.0  # clock seconds it held one, over finished holds

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self, cancel: Callable[[], bool] | None = None, poll_s: float = 0.05) -> bool:
        """Hold a turn, waiting in line if every slot is taken. Returns True once held (at once if
        already held), or False as soon as ``cancel()`` returns True while waiting (checked at least
        every ``poll_s`` seconds); the place in line is then given up."""
        s = self.share
        with s._cv:
            if self._held:
                return True
            if not s._queue and len(s._holders) < s.slots:
                s._hold(self)
                s._cv.notify_all()
                return True
            if self not in s._queue:
                s._queue.append(self)
                s._cv.notify_all()
            while not self._held:
                if cancel is not None and cancel():
                    s._drop(self)
                    s._cv.notify_all()
                    return False
                s._cv.wait(poll_s if cancel is not None else None)
            return True

    def checkpoint(self) -> bool:
        """After a unit of work: once this hold has lasted ``slice_s`` and another turn is waiting,
        hand the slot over and queue again (the next :meth:`acquire` waits its turn). Returns True
        when the turn was handed over."""
        s = self.share
        with s._cv:
            if not self._held or not s._queue or s.clock() - self._since < s.slice_s:
                return False
            s._drop(self)
            s._grant_waiting()
            return True

    def release(self) -> None:
        """Give the slot back (or leave the queue); the next in line gets it. Idempotent."""
        s = self.share
        with s._cv:
            s._drop(self)
            s._grant_waiting()

    def __enter__(self) -> "Turn":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Turn({self.name!r}, held={self._held}, grants={self.grants})"
