"""Watchers whose browsers are elsewhere: clients of Streamlit's own websocket protocol (issue 11).

In a class, thirty students watch the teacher's run from thirty machines: the server runs thirty
sessions' scripts, their renderers run elsewhere. Thirty Chromium tabs on the server's own two
vCPUs measure the renderers instead (a watch tab's renderer is busy about a quarter of a second
per refresh: docs/BENCHMARKS.md). A :class:`Watcher` is what the server sees of one such
browser, and nothing more: it opens ``/_stcore/stream`` as Streamlit's frontend does, asks for the
page (the ``?watch=<run>`` address as its query string), answers each ``AutoRerun`` the server
sends (a fragment with ``run_every``) with a fragment rerun at that interval, as the frontend's
timer does, and reads the deltas: the value of the metric labelled "Step" and when it changed.
It draws nothing. It can also press a button (:meth:`Watcher.click`, by the button's key), which
is how a benchmark starts training sessions whose browsers are elsewhere.

Written against Streamlit's protobuf messages (``streamlit.proto``) and ``websockets`` (a
dependency of Streamlit's server): no frontend code runs here, so a change of Streamlit's protocol
shows as a watcher that never sees a step (the benchmark reports it) rather than a wrong rate.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

STEP_LABEL = "Step"
#: Script runs a cached message is kept after its last use (Streamlit's frontend: the
#: ``global.maxCachedMessageAge`` option, default 2).
CACHE_AGE = 2


@dataclass
class Watcher:
    """One browser's session as the server sees it (see the module's docstring).

    ``changes``: (time.perf_counter(), step) each time the page's "Step" metric showed a new value;
    ``runs``: script runs finished (full and fragment); ``errors``: what went wrong, if anything.
    """

    url: str  # http://host:port
    query: str  # the address's query string, without "?"
    changes: list[tuple[float, int]] = field(default_factory=list)
    runs: int = 0
    refs: int = 0  # messages the server sent as a reference to one held (Streamlit's message cache)
    bytes_in: int = 0
    errors: list[str] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    #: each fragment's refresh interval (seconds) as the server last set it
    intervals: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self._page_hash = ""
        self._timers: dict[str, asyncio.Task] = {}
        self._running = False  # a run this client asked for has not finished
        self._ws = None
        self._last_step: int | None = None
        self._cache: dict[str, int] = {}  # hash of a cacheable message -> the run it was last used in
        self.buttons: dict[str, str] = {}  # a button's key -> its widget id, as last drawn
        self._leave = asyncio.Event()  # set: this browser closes its tab

    # -- the protocol ---------------------------------------------------------------------------
    def _rerun(self, fragment_id: str = "", auto: bool = False, trigger: str | None = None) -> bytes:
        msg = BackMsg()
        state = msg.rerun_script
        if trigger is not None:
            state.widget_states.widgets.add(id=trigger, trigger_value=True)
        state.query_string = self.query
        state.page_script_hash = self._page_hash
        if fragment_id:
            state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        # As the frontend does: the messages it holds are sent back as references, not again.
        state.cached_message_hashes.extend(self._cache)
        return msg.SerializeToString()

    async def _tick(self, fragment_id: str, interval: float) -> None:
        """The frontend's timer for one fragment: a rerun every ``interval`` seconds; a tick that
        finds this client's previous run unfinished is skipped (the browser waits for its page)."""
        while True:
            await asyncio.sleep(interval)
            if self._running or self._ws is None:
                continue
            self._running = True
            await self._ws.send(self._rerun(fragment_id, auto=True))

    def _clear_timers(self) -> None:
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()

    def _read(self, raw: bytes) -> None:
        self.bytes_in += len(raw)
        msg = ForwardMsg()
        msg.ParseFromString(raw)
        kind = msg.WhichOneof("type")
        if kind == "ref_hash" or msg.metadata.cacheable:
            self._cache[msg.ref_hash or msg.hash] = self.runs
            self.refs += kind == "ref_hash"
            return  # a message held already, or a large element (never the step metric: too small)
        if kind == "new_session":
            self._page_hash = msg.new_session.page_script_hash or self._page_hash
            if not msg.metadata.run.fragment_ids:
                # a full run starts: the frontend drops the fragments' timers, the run sends new ones
                self._clear_timers()
                self.intervals.clear()
        elif kind == "navigation":
            self._page_hash = msg.navigation.page_script_hash or self._page_hash
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string  # the page wrote its address (a reload link)
        elif kind == "auto_rerun":
            fid, interval = msg.auto_rerun.fragment_id, float(msg.auto_rerun.interval)
            self.intervals[fid] = interval
            if fid in self._timers:
                self._timers[fid].cancel()
            if interval > 0:
                self._timers[fid] = asyncio.get_running_loop().create_task(self._tick(fid, interval))
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            if element.WhichOneof("type") == "button":
                # a keyed widget's id ends with "-<key>" (Streamlit's compute_and_register_element_id)
                self.buttons[element.button.id.rsplit("-", 1)[-1]] = element.button.id
            elif element.WhichOneof("type") == "metric" and element.metric.label == STEP_LABEL:
                value = int(element.metric.body.replace(",", "") or 0)
                if value != self._last_step:
                    self._last_step = value
                    self.changes.append((time.perf_counter(), value))
        elif kind == "script_finished":
            self.runs += 1
            self._running = False
            self._cache = {h: run for h, run in self._cache.items() if self.runs - run <= CACHE_AGE}

    async def run(self, stop: asyncio.Event) -> None:
        """Open the page and follow it until ``stop`` (or this watcher's own leave) is set."""
        ws_url = self.url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
        try:
            async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None,
                                          compression=None, open_timeout=60) as ws:
                self._ws = ws
                self._running = True
                await ws.send(self._rerun())
                self.connected.set()
                reader = asyncio.ensure_future(self._read_all(ws))
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._leave.wait())]
                await asyncio.wait([reader, *waits], return_when=asyncio.FIRST_COMPLETED)
                for task in (reader, *waits):
                    task.cancel()
        except Exception as exc:  # reported with the results, not raised: one bad watcher is a number
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._clear_timers()
            self._ws = None

    async def click(self, key: str) -> None:
        """Press the button with ``key`` as drawn last (KeyError when the page has not drawn it)."""
        self._running = True
        await self._ws.send(self._rerun(trigger=self.buttons[key]))

    async def _read_all(self, ws) -> None:
        async for raw in ws:
            if isinstance(raw, bytes):
                self._read(raw)

    # -- reading the results -------------------------------------------------------------------
    def rate(self, t0: float, t1: float) -> float:
        """New steps shown per second between ``t0`` and ``t1`` (perf_counter times)."""
        return sum(1 for t, _ in self.changes if t0 <= t < t1) / (t1 - t0)

    def step(self) -> int | None:
        return self._last_step

    def refresh_interval(self) -> float | None:
        """The longest fragment refresh interval the server set for this page (None: none ticks)."""
        return max(self.intervals.values(), default=None)

    def steps_per_s(self, t0: float, t1: float) -> float:
        """The shown step's progress per second between ``t0`` and ``t1``: the values shown at
        those moments (the last change before each)."""
        def at(t):
            shown = [s for when, s in self.changes if when <= t]
            return shown[-1] if shown else 0
        return (at(t1) - at(t0)) / (t1 - t0)


class WatcherPool:
    """Watchers of one address run by an event loop in a background thread (the benchmark's own
    thread stays free to drive Chromium and read the server).

    >>> pool = WatcherPool("http://127.0.0.1:8501", "watch=teacher")  # doctest: +SKIP
    >>> pool.add(30); ...; rates = pool.rates(t0, t1); pool.close()  # doctest: +SKIP
    """

    def __init__(self, url: str, query: str = ""):
        import threading

        self.url, self.query = url, query
        self.watchers: list[Watcher] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="watchers", daemon=True)
        self._thread.start()
        self._stop = self._call(self._make_event())
        self._tasks = []

    @staticmethod
    async def _make_event() -> asyncio.Event:
        return asyncio.Event()

    def _call(self, coro, timeout: float | None = 60):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def add(self, n: int, connect_timeout: float = 60) -> None:
        """``n`` more watchers; returns once each has sent its first request."""
        new = [Watcher(self.url, self.query) for _ in range(n)]
        self.watchers += new
        self._tasks += [asyncio.run_coroutine_threadsafe(w.run(self._stop), self._loop) for w in new]

        async def connected():
            await asyncio.wait_for(asyncio.gather(*(w.connected.wait() for w in new)), connect_timeout)
        self._call(connected(), timeout=connect_timeout + 5)

    def remove(self, n: int) -> None:
        """Close the last ``n`` watchers' pages (their websockets close, as a closed tab's do)."""
        gone, self.watchers = self.watchers[len(self.watchers) - n:], self.watchers[:len(self.watchers) - n]
        tasks, self._tasks = self._tasks[len(self._tasks) - n:], self._tasks[:len(self._tasks) - n]
        for w in gone:
            self._loop.call_soon_threadsafe(w._leave.set)
        for task in tasks:
            task.result(30)

    def rates(self, t0: float, t1: float) -> list[float]:
        return [w.rate(t0, t1) for w in self.watchers]

    def steps_per_s(self, t0: float, t1: float) -> list[float]:
        return [w.steps_per_s(t0, t1) for w in self.watchers]

    def click(self, key: str, which: list[Watcher] | None = None) -> None:
        """Press the button ``key`` on each of ``which`` (default: every session of the pool)."""
        async def press():
            for w in which or self.watchers:
                await w.click(key)
        self._call(press())

    def runs(self) -> int:
        return sum(w.runs for w in self.watchers)

    def bytes_in(self) -> int:
        return sum(w.bytes_in for w in self.watchers)

    def errors(self) -> list[str]:
        return [e for w in self.watchers for e in w.errors]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        for task in self._tasks:
            try:
                task.result(10)
            except Exception:
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
