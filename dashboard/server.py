"""Server-wide state of the dashboard: the sessions by their link, reload grace, shutdown.

A browser session (a tab; a reload is a new one) *attaches* to a :class:`~hraml_dashboard.state.Session`
through a token that the page keeps in its address (``?session=<token>``), so a reload or a
dropped connection reopens the same run. When the last browser of a session detaches, the session
is suspended (training paused, its slot given back, out of the queue, a baseline fit frozen: the
server goes quiet) and kept for ``grace_s`` seconds (``$HRAML_DASHBOARD_GRACE_S``, default
:data:`GRACE_S`); a browser that attaches within that time finds it as it was and training goes on;
after it, the session is closed and everything it held is released.

:func:`shutdown` is the server's end: every session's trainer, baseline fit and projection thread
stopped, the UMAP process ended, all within a deadline, in parallel. It runs when Streamlit stops
(the app calls it from the release of the first session that Streamlit closes while stopping, see
``app.py``) and at exit (``atexit``), and a watchdog ends the process if the rest of the stop takes
longer than :data:`EXIT_S` after that (a container runtime kills 10 s after SIGTERM).

No Streamlit here.
"""
from __future__ import annotations

import atexit
import gc
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field

from .budget import env_number
from .state import Session, open_sessions

GRACE_VARIABLE = "HRAML_DASHBOARD_GRACE_S"
#: Seconds a session without a browser is kept for a reload or a reconnect.
GRACE_S = 120.0
#: Seconds after the stop began at which the watchdog ends the process.
EXIT_S = 4.5
#: The address's query key that carries the session token.
QUERY_KEY = "session"


def grace_from_env() -> float:
    return env_number(GRACE_VARIABLE, GRACE_S, float, 0)


@dataclass
class _Entry:
    session: Session
    attached: int = 0
    generation: int = 0  # bumps at every detach, so a stale grace timer does nothing
    timer: threading.Timer | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Attachment:
    """One browser session's hold on a :class:`Session` (what the app's session cache keeps)."""

    token: str
    session: Session
    reattached: bool  # the token named a session that was kept: widget values are restored
    expired: bool  # a token was given but its session is gone (grace over, or a server restart)


class SessionRegistry:
    """Sessions by token; attach / detach with a grace period (see the module docstring)."""

    def __init__(self, grace_s: float = GRACE_S, factory=Session):
        if not grace_s >= 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
        self.grace_s = float(grace_s)
        self._factory = factory
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self.closing = False

    def attach(self, token: str | None = None) -> Attachment:
        """The session named by ``token`` if it is kept, else a new one (with a new token)."""
        with self._lock:
            entry = self._entries.get(token) if token else None
            if entry is not None and entry.session.closed:
                del self._entries[token]
                entry = None
            if entry is None:
                if self.closing:
                    raise RuntimeError("the server is shutting down")
                new = secrets.token_urlsafe(12)
                entry = self._entries[new] = _Entry(self._factory())
                entry.attached = 1
                return Attachment(new, entry.session, reattached=False, expired=bool(token))
            entry.attached += 1
            entry.generation += 1
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            session = entry.session
        session.wake()
        return Attachment(token, session, reattached=True, expired=False)

    def detach(self, token: str) -> None:
        """A browser session of ``token`` ended; the last one suspends the session and starts its
        grace period."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return
            entry.attached = max(0, entry.attached - 1)
            if entry.attached:
                return
            entry.generation += 1
            session = entry.session
            if self.grace_s > 0:
                entry.timer = threading.Timer(self.grace_s, self._expire, (token, entry.generation))
                entry.timer.daemon = True
                entry.timer.name = "hraml-session-grace"
                entry.timer.start()
        if self.grace_s > 0:
            session.suspend()
        else:
            self._expire(token, entry.generation)

    def _expire(self, token: str, generation: int) -> None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or entry.generation != generation or entry.attached:
                return
            del self._entries[token]
        entry.session.close()

    def get(self, token: str) -> Session | None:
        with self._lock:
            entry = self._entries.get(token)
            return None if entry is None else entry.session

    def attached(self, token: str) -> int:
        with self._lock:
            entry = self._entries.get(token)
            return 0 if entry is None else entry.attached

    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> list[Session]:
        """Forget every session (timers cancelled); returns them, not closed."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for e in entries:
            if e.timer is not None:
                e.timer.cancel()
        return [e.session for e in entries]


_lock = threading.Lock()
_registry: SessionRegistry | None = None
_shutdown_started: float | None = None
_shutdown_done = threading.Event()


def _recording_session() -> Session:
    """A new session whose runs are recorded under the server's runs folder (--runs)."""
    from .run_store import runs_root

    return Session(runs_root=runs_root())


def registry() -> SessionRegistry:
    """The server's registry (grace from ``$HRAML_DASHBOARD_GRACE_S``); registers the exit hook."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = SessionRegistry(grace_from_env(), factory=_recording_session)
            atexit.register(shutdown, exit_after_s=None)  # at exit the process is ending anyway
        return _registry


def shutdown(deadline_s: float = 3.0, exit_after_s: float | None = EXIT_S) -> bool:
    """The server's end: :func:`stop_all` once per process (later calls wait for the first).

    With ``exit_after_s``, a daemon watchdog ends the process that many seconds after this call
    began if it is still running then (the rest of the server's stop hung).
    """
    global _shutdown_started
    with _lock:
        first = _shutdown_started is None
        if first:
            _shutdown_started = time.monotonic()
        reg = _registry
    if not first:
        _shutdown_done.wait(deadline_s)
        return _shutdown_done.is_set()
    if exit_after_s is not None:
        threading.Thread(target=_watchdog, args=(exit_after_s,), name="hraml-exit-watchdog", daemon=True).start()
    kept = []
    if reg is not None:
        reg.closing = True
        kept = reg.clear()  # held here: a session only the registry knew would drop out of open_sessions()
    from .umap_process import umap_service

    sessions = list({id(s): s for s in kept + open_sessions()}.values())
    try:
        return stop_all(sessions, umap_service(start=False), deadline_s)
    finally:
        _shutdown_done.set()
        # The interpreter's exit collects every object once more, torch's and Streamlit's included
        # (slow under load, and the watchdog thread cannot run then). What exists now needs no
        # collection: the process is ending.
        gc.freeze()


def stop_all(sessions, umap=None, deadline_s: float = 3.0) -> bool:
    """Close ``sessions`` in parallel (trainers, baseline fits, projection threads) and end the
    ``umap`` service's process; True when all of it stopped within ``deadline_s``."""
    end = time.monotonic() + deadline_s
    closers = []
    for s in sessions:
        th = threading.Thread(target=_close_quietly, args=(s,), name="hraml-shutdown", daemon=True)
        th.start()
        closers.append(th)
    if umap is not None:
        umap.close(grace=0.2)
    for th in closers:
        th.join(max(0.0, end - time.monotonic()))
    return not any(th.is_alive() for th in closers)


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except Exception as exc:  # a trainer that does not stop in time: the exit ends it
        print(f"hraml dashboard: closing session {session.id} at shutdown: {exc}", file=sys.stderr)


def _watchdog(after_s: float) -> None:
    time.sleep(after_s)
    print(f"hraml dashboard: still stopping {after_s:g} s after the stop began; exiting now", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(0)


def stopping() -> bool:
    """Whether :func:`shutdown` has begun in this process."""
    return _shutdown_started is not None
