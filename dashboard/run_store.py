"""The runs the dashboard shows: where they live, what they are called, and one shared reader per run.

No Streamlit here. Every page and every viewer of the server reads a run through the same
:class:`SharedRun` (from :func:`shared_run`): one :class:`hraml_core.runs.Run` per run directory
for the whole process, refreshed at most every :data:`REFRESH_MIN_S` seconds whoever asks (a
refresh already under way is not waited for), its aligned projection frames computed once
(:mod:`hraml_dashboard.replay`) and the figures of its last few steps built once. Thirty students
watching the teacher's run therefore cost one reader, one projection chain and one figure build
per new step, plus what Streamlit spends sending each of them the page.

- :func:`runs_root`: the folder the server lists and records into (``hraml dashboard --runs DIR``
  sets ``HRAML_RUNS_DIR``; default ``./runs``);
- :func:`new_run_dir`: a fresh, readable folder name for a dashboard run;
- :func:`resolve_run`: a run's folder from its name in a link, never outside the root.
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

from hraml_core.runs import Run, RunSummary, list_runs, open_run
from hraml_core.runs.root import runs_root  # noqa: F401  (the server's runs folder; the page modules ask here)
#: A shared run reads its files at most this often, however many viewers ask (each refreshes
#: every budget.view_interval: up to twice a second).
REFRESH_MIN_S = 0.4
#: A shared run nobody asked for in this long is dropped (its threads end, its memory is freed).
IDLE_DROP_S = 600.0
#: A run's projection frames are computed while a viewer asked for the run within this long: a view
#: whose frames are pending refreshes itself (budget.view_interval, at most budget.VIEW_MAX_S), so a
#: longer silence means its viewers have gone.
VIEWERS_GONE_S = 4.0
#: Figure sets kept per run (a replay slider revisits recent steps; watchers all want the last one).
FIGURE_CACHE = 8

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str, max_len: int = 40) -> str:
    """``text`` as a piece of a folder name: letters, digits, ``.``, ``_`` and ``-`` only."""
    out = _SAFE.sub("-", str(text)).strip("-.")[:max_len]
    return out or "run"


def new_run_dir(root, dataset: str, relation: str, now: float | None = None) -> Path:
    """A new folder under ``root`` for a run: ``<dataset>-<relation>-<YYYYmmdd-HHMMSS>-<4 hex>``.

    Not created: the trainer creates it when it starts. The random suffix keeps two sessions that
    build a trainer in the same second apart (a writer replaces a finished run in its folder).
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    root = Path(root)
    while True:
        path = root / f"{slug(dataset)}-{slug(relation, 20)}-{stamp}-{secrets.token_hex(2)}"
        if not path.exists():
            return path


def resolve_run(root, name: str) -> Path:
    """The folder of the run called ``name`` (its path relative to ``root``, as :func:`list_runs`
    names it). ValueError when the name leaves the root or names no run directory."""
    root = Path(root).resolve()
    if not name or not isinstance(name, str) or name.startswith(("/", "\\")) or "\0" in name:
        raise ValueError(f"not a run name: {name!r}")
    path = (root / name).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"not a run name: {name!r} (outside the runs folder)")
    if not (path / "run.json").is_file():
        raise ValueError(f"no run called {name!r} in {root}")
    return path


def run_name(root, path) -> str:
    """The name of the run in ``path`` as the runs list shows it (relative to ``root``)."""
    path, root = Path(path).resolve(), Path(root).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def summaries(root, unreadable: list | None = None) -> list[RunSummary]:
    """The runs under ``root``, newest first (an absent root: none); ``unreadable`` gets the
    folders whose run.json could not be read, as :func:`list_runs` gives them."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(list_runs(root, unreadable=unreadable), key=lambda s: -(s.updated or s.created or 0.0))


# --------------------------------------------------------------------------------------------------
class SharedRun:
    """One run directory, read once for every viewer of the server. Use :func:`shared_run`."""

    def __init__(self, path):
        self.path = Path(path)
        self.run: Run = open_run(self.path)
        self._refreshing = threading.Lock()
        self._refreshed = time.monotonic()
        self.last_used = time.monotonic()
        self._lock = threading.Lock()
        self._chains: dict = {}
        self._figures: OrderedDict = OrderedDict()
        self._curves = None
        self._build_lock = threading.Lock()
        self.refreshes = 0  # reads of the files (for tests and the watch benchmark)

    def refresh(self, min_interval_s: float = REFRESH_MIN_S) -> bool:
        """Read what the writer appended, at most every ``min_interval_s`` seconds for all viewers
        together; a viewer that finds another one refreshing goes on with what is there."""
        self.last_used = time.monotonic()
        if time.monotonic() - self._refreshed < min_interval_s:
            return False
        if not self._refreshing.acquire(blocking=False):
            return False
        try:
            self._refreshed = time.monotonic()
            self.refreshes += 1
            changed = self.run.refresh()
        finally:
            self._refreshing.release()
        if changed:
            for chain in list(self._chains.values()):
                chain.poke()
        return changed

    def chain(self, method: str):
        """The aligned projection frames of this run by ``method`` (:class:`~hraml_dashboard.replay.FrameChain`),
        one per run and method for the whole server; a new one when the folder holds a new run."""
        from .replay import FrameChain

        self.last_used = time.monotonic()
        with self._lock:
            key = (method, self.run.run_id)
            chain = self._chains.get(key)
            if chain is None:
                for old in [k for k in self._chains if k[0] == method]:
                    self._chains.pop(old).close()
                chain = self._chains[key] = FrameChain(self.run, method, wanted=self.watched)
            chain.ensure()
            return chain

    def watched(self) -> bool:
        """Whether a viewer asked for this run within :data:`VIEWERS_GONE_S`."""
        return time.monotonic() - self.last_used < VIEWERS_GONE_S

    def curves(self) -> dict:
        """The run's ``loss`` and ``metric`` curves (see :func:`hraml_dashboard.figures.run_curves`) and
        ``last_step``, the last step recorded: computed once per new scalars rows for every viewer."""
        from .figures import run_curves

        frame = self.run.scalars
        key = (self.run.run_id, len(frame), self.run.metric)
        with self._lock:
            if self._curves is not None and self._curves[0] == key:
                return self._curves[1]
        made = run_curves(frame, self.run.metric)
        made["last_step"] = int(frame["step"].max()) if len(frame) else 0
        with self._lock:
            self._curves = (key, made)
        return made

    def figures(self, key, build):
        """``build()`` once per ``key`` (its figures then serve every viewer); the last
        :data:`FIGURE_CACHE` keys are kept. Built under a lock, so viewers asking at once wait
        for one build instead of each making their own."""
        with self._lock:
            hit = self._figures.get(key)
            if hit is not None:
                self._figures.move_to_end(key)
                return hit
        with self._build_lock:
            with self._lock:
                hit = self._figures.get(key)
            if hit is not None:
                return hit
            made = build()
            with self._lock:
                self._figures[key] = made
                while len(self._figures) > FIGURE_CACHE:
                    self._figures.popitem(last=False)
            return made

    def close(self) -> None:
        with self._lock:
            chains, self._chains = list(self._chains.values()), {}
            self._figures.clear()
        for chain in chains:
            chain.close()


_shared: dict[Path, SharedRun] = {}
_shared_lock = threading.Lock()


def shared_run(path) -> SharedRun:
    """The server's one :class:`SharedRun` for the run directory ``path`` (ValueError when it is not
    one). Runs nobody asked for in :data:`IDLE_DROP_S` seconds are dropped meanwhile."""
    path = Path(path).resolve()
    now = time.monotonic()
    dropped = []
    with _shared_lock:
        for key, old in list(_shared.items()):
            if key != path and now - old.last_used > IDLE_DROP_S:
                dropped.append(_shared.pop(key))
        shared = _shared.get(path)
    for old in dropped:
        old.close()
    if shared is None:
        made = SharedRun(path)  # reads the run's files: outside the lock, other runs' viewers go on
        with _shared_lock:
            shared = _shared.setdefault(path, made)
        if shared is not made:
            made.close()
    shared.last_used = now
    return shared


def open_shared_runs() -> list[SharedRun]:
    with _shared_lock:
        return list(_shared.values())


def close_shared_runs() -> None:
    """Drop every shared run (tests; the server's end)."""
    with _shared_lock:
        runs = list(_shared.values())
        _shared.clear()
    for r in runs:
        r.close()
