"""Reading run directories: :func:`open_run` (one run, kept current by :meth:`Run.refresh`) and
:func:`list_runs` (a summary of every run under a folder, from run.json alone).

Made for a page that polls while runs are written: :meth:`Run.refresh` reads only what was added
since its last call (scalars.jsonl from a byte offset, the snapshot folder's listing, run.json only
when it changed), and nothing a writer does mid-record makes it raise: a last scalars line without
its newline waits for the next refresh (as TensorBoard's event loader keeps its place before a
truncated record), snapshots and run.json appear whole (the writer renames them into place), and a
run replaced by a new one in the same folder (a new ``run_id``) is read again from the start.

No torch and no Streamlit here: numpy, pandas and safetensors only.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .format import (
    CHECKPOINT_DIR, LOST, MODEL_FILE, PROBE_FILE, PROBE_TENSORS, RUN_FILE, RUNNING, SCALARS_FILE, SNAPSHOT_DIR,
    SNAPSHOT_TENSORS, SPLIT_FILE, check_run_info, is_live, step_file, step_of,
)

#: Snapshots a Run keeps decoded (a replay slider revisits recent frames).
SNAPSHOT_CACHE = 16


@dataclass(frozen=True)
class RunSnapshot:
    """One recorded moment of a run. Arrays are read-only.

    ``A`` and ``E`` are p x p (the probe rows, ordered by label); ``embeddings`` is m x dim (the
    display rows); ``probe_index`` / ``embedding_index`` are their rows in the data and
    ``probe_labels`` / ``embedding_labels`` their labels (class values, or label indices for label
    sets and distributions).
    """

    step: int
    time: float
    epoch: float | None
    loss: float | None
    metric: float | None
    A: np.ndarray
    E: np.ndarray
    embeddings: np.ndarray
    probe_index: np.ndarray
    probe_labels: np.ndarray
    embedding_index: np.ndarray
    embedding_labels: np.ndarray


@dataclass(frozen=True)
class RunSummary:
    """What a runs list shows of one run, read from its run.json alone."""

    name: str  # the folder's path relative to the listed root (the run's name for the root itself)
    path: Path
    status: str  # running, stopped, finished, failed, created, or lost (running, writer silent)
    source: str | None
    task: str | None
    dataset: str | None
    relation: str | None
    metric: str | None
    best_metric: float | None
    last_metric: float | None
    loss: float | None
    step: int | None
    snapshots: int
    created: float | None
    updated: float | None
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def _field(key: str, doc: str) -> property:
    """A read-only property for run.json's field ``key`` (None when absent)."""
    return property(lambda self: self._info.get(key), doc=doc)


def _stat_key(path: Path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _meta_float(meta: dict, key: str) -> float | None:
    value = meta.get(key)
    return None if value is None else float(value)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class Run:
    """A run directory, read incrementally. Use :func:`open_run`.

    Attributes and properties reflect the last :meth:`refresh` (``open_run`` does the first).
    Safe to share between threads.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._info: dict = {}
        self._info_key = None
        self._reset_data()
        try:
            self._info = check_run_info(json.loads((self.path / RUN_FILE).read_text()), self.path)
        except OSError as exc:
            raise ValueError(f"{self.path}: not a run directory ({RUN_FILE} unreadable: {exc.strerror or exc})") from None
        self._info_key = _stat_key(self.path / RUN_FILE)
        self.refresh()

    def _reset_data(self) -> None:
        self._offset = 0
        self._scalars_id = None
        self._frame = _empty_scalars()
        self._pending: list[dict] = []
        self.skipped_lines = 0  #: complete scalars lines that were not valid JSON objects (ignored)
        self._steps: tuple[int, ...] = ()
        self._cache: OrderedDict[int, RunSnapshot] = OrderedDict()
        self._probe: dict | None = None

    # -- keeping up -----------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Read what changed since the last call; True when anything did. Never raises for a run
        being written (a file missing or half-written is simply not there yet)."""
        with self._lock:
            changed = self._refresh_info()
            changed |= self._refresh_scalars()
            changed |= self._refresh_snapshots()
            return changed

    def _refresh_info(self) -> bool:
        key = _stat_key(self.path / RUN_FILE)
        if key is None or key == self._info_key:
            return False
        try:
            info = check_run_info(json.loads((self.path / RUN_FILE).read_text()), self.path)
        except (OSError, ValueError):
            return False  # replaced meanwhile, or not ours: keep what was read
        self._info_key = key
        if info.get("run_id") != self._info.get("run_id"):
            self._reset_data()  # a new run in the same folder
        self._info = info
        return True

    def _refresh_scalars(self) -> bool:
        path = self.path / SCALARS_FILE
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            if self._offset or len(self._frame) or self._pending:
                self._offset, self._scalars_id, self._frame, self._pending = 0, None, _empty_scalars(), []
                return True
            return False
        with f:
            st = os.fstat(f.fileno())
            changed = False
            if (st.st_dev, st.st_ino) != self._scalars_id or st.st_size < self._offset:
                # Another file (the run was replaced), or the same one truncated: start over.
                changed = bool(self._offset or len(self._frame) or self._pending)
                self._offset, self._frame, self._pending = 0, _empty_scalars(), []
                self._scalars_id = (st.st_dev, st.st_ino)
            if st.st_size == self._offset:
                return changed
            f.seek(self._offset)
            data = f.read(st.st_size - self._offset)
        end = data.rfind(b"\n")
        if end < 0:
            return changed  # only the start of a line so far
        self._offset += end + 1
        for line in data[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                self._pending.append(row)
            else:
                self.skipped_lines += 1
        return True

    def _refresh_snapshots(self) -> bool:
        try:
            with os.scandir(self.path / SNAPSHOT_DIR) as entries:
                steps = tuple(sorted(s for s in (step_of(e.name) for e in entries) if s is not None))
        except FileNotFoundError:
            steps = ()
        if steps == self._steps:
            return False
        self._steps = steps
        return True

    # -- run.json ---------------------------------------------------------------------------------
    @property
    def info(self) -> dict:
        """run.json as last read (a copy)."""
        return json.loads(json.dumps(self._info))

    run_id = _field("run_id", "A new id for each run written into the folder.")
    task = _field("task", "classification, multilabel or distribution.")
    metric = _field("metric", "The held-out metric's name: its column in :attr:`scalars` (None: not tracked).")
    dataset = _field("dataset", "What the writer knew of the data: {'name': ..., ...} (or None).")
    status = _field("status", "As recorded: created, running, stopped, finished or failed (see :attr:`state`).")
    created = _field("created", "When the run was created (Unix time).")
    updated = _field("updated", "When the writer last wrote run.json (Unix time; every few seconds while running).")
    raw_metric = _field("raw_metric", "The metric on the raw features, for comparison (or None).")
    results = _field("results", "The held-out metrics at the end: {'metrics': ..., 'raw_metrics': ...} (or None).")

    @property
    def name(self) -> str:
        return self._info.get("name") or self.path.name

    @property
    def config(self) -> dict:
        """The settings: TrainConfig's fields and the writer's own (max_epochs...)."""
        return dict(self._info.get("config") or {})

    @property
    def progress(self) -> dict:
        """step, epoch, loss, metric, best_metric, best_step, snapshots, last_snapshot_step."""
        return dict(self._info.get("progress") or {})

    @property
    def message(self) -> str:
        return self._info.get("message") or ""

    @property
    def state(self) -> str:
        """:attr:`status`, except ``lost`` for a running run whose writer went silent."""
        status = self.status
        return LOST if status == RUNNING and not self.is_live() else status

    def is_live(self, now: float | None = None) -> bool:
        """Whether the run is being written: status running and run.json refreshed lately."""
        return is_live(self._info, time.time() if now is None else now)

    @property
    def split(self) -> dict | None:
        """split.json (train_rows, test_rows, test_size, seed...), or None without one."""
        try:
            return json.loads((self.path / SPLIT_FILE).read_text())
        except (OSError, ValueError):
            return None

    # -- scalars ------------------------------------------------------------------------------------
    @property
    def scalars(self) -> pd.DataFrame:
        """Every scalars row read so far: columns ``step``, ``time``, ``loss`` always, then
        ``epoch``, the metric columns... (NaN where a row has no value). Treat as read-only: the
        next call after a refresh returns a new frame with the new rows appended."""
        with self._lock:
            if self._pending:
                new = _frame(self._pending)
                self._pending = []
                frame = new if self._frame.empty else pd.concat([self._frame, new], ignore_index=True)
                for col in ("time", "loss"):  # always there, for plotting code that expects them
                    if col not in frame:
                        frame[col] = np.nan
                self._frame = frame
            return self._frame

    # -- snapshots ----------------------------------------------------------------------------------
    @property
    def snapshot_steps(self) -> tuple[int, ...]:
        """The steps that have a snapshot, ascending."""
        return self._steps

    def nearest_snapshot_step(self, step: int) -> int | None:
        """The last snapshot step at or before ``step`` (the first one if all are later); None without any."""
        steps = self._steps
        if not steps:
            return None
        i = int(np.searchsorted(steps, step, side="right")) - 1
        return steps[max(i, 0)]

    def snapshot(self, step: int) -> RunSnapshot:
        """The snapshot at ``step`` (one of :attr:`snapshot_steps`). KeyError when there is none;
        ValueError naming the file when it cannot be read."""
        step = int(step)
        with self._lock:
            cached = self._cache.get(step)
            if cached is not None:
                self._cache.move_to_end(step)
                return cached
            snap = self._read_snapshot(step)
            self._cache[step] = snap
            while len(self._cache) > SNAPSHOT_CACHE:
                self._cache.popitem(last=False)
            return snap

    def latest_snapshot(self) -> RunSnapshot | None:
        return self.snapshot(self._steps[-1]) if self._steps else None

    def _read_snapshot(self, step: int) -> RunSnapshot:
        from safetensors import SafetensorError, safe_open

        path = self.path / SNAPSHOT_DIR / step_file(step)
        probe = self._read_probe()
        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
                arrays = {k: f.get_tensor(k) for k in SNAPSHOT_TENSORS}
        except FileNotFoundError:
            raise KeyError(f"{self.name}: no snapshot at step {step}" + _steps_hint(self._steps)) from None
        except (SafetensorError, OSError, KeyError) as exc:
            raise ValueError(f"{path}: not a readable snapshot ({exc})") from None
        # float32 as written; a writer may write float16 to halve a run's size (docs/RUNS.md)
        arrays = {k: v.astype(np.float32, copy=False) for k, v in arrays.items()}
        A, E = arrays["A"], probe["E"]
        if A.shape != E.shape or arrays["embeddings"].shape[0] != len(probe["embedding_index"]):
            raise ValueError(f"{path}: A {A.shape} or embeddings {arrays['embeddings'].shape} do not match the probe file")
        return RunSnapshot(
            step=int(meta.get("step", step)), time=float(meta.get("time", "nan")), epoch=_meta_float(meta, "epoch"),
            loss=_meta_float(meta, "loss"), metric=_meta_float(meta, "metric"),
            A=_frozen(A), E=E, embeddings=_frozen(arrays["embeddings"]),
            probe_index=probe["probe_index"], probe_labels=probe["probe_labels"],
            embedding_index=probe["embedding_index"], embedding_labels=probe["embedding_labels"],
        )

    def _read_probe(self) -> dict:
        if self._probe is not None:
            return self._probe
        from safetensors import SafetensorError, safe_open

        path = self.path / SNAPSHOT_DIR / PROBE_FILE
        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
                probe = {k: f.get_tensor(k) for k in PROBE_TENSORS}
            probe["E"] = probe["E"].astype(np.float32, copy=False)
            probe = {k: _frozen(v) for k, v in probe.items()}
        except FileNotFoundError:
            raise KeyError(f"{self.name}: no snapshots yet ({path} is missing)") from None
        except (SafetensorError, OSError, KeyError) as exc:
            raise ValueError(f"{path}: not a readable probe file ({exc})") from None
        classes = json.loads(meta.get("classes") or "null")
        if classes is not None:
            names = np.asarray(classes)
            for key in ("probe_labels", "embedding_labels"):
                probe[key] = _frozen(names[probe[key]])
        probe["relation_scale"] = json.loads(meta.get("relation_scale") or "null")
        self._probe = probe
        return probe

    @property
    def relation_scale(self) -> float | None:
        """The factor applied to g in E (None before the first snapshot)."""
        try:
            return self._read_probe()["relation_scale"]
        except (KeyError, ValueError):
            return None

    # -- models ---------------------------------------------------------------------------------------
    @property
    def checkpoint_steps(self) -> tuple[int, ...]:
        try:
            with os.scandir(self.path / CHECKPOINT_DIR) as entries:
                return tuple(sorted(s for s in (step_of(e.name) for e in entries) if s is not None))
        except FileNotFoundError:
            return ()

    def load_model(self, step: int | None = None):
        """The HRAML model at checkpoint ``step``; by default model.safetensors, else the last
        checkpoint. KeyError when the run has none (yet)."""
        from ..estimator import HRAML

        if step is None:
            if (self.path / MODEL_FILE).exists():
                return HRAML.load(self.path / MODEL_FILE)
            steps = self.checkpoint_steps
            if not steps:
                raise KeyError(f"{self.name}: no model saved yet")
            step = steps[-1]
        path = self.path / CHECKPOINT_DIR / step_file(step)
        if not path.exists():
            raise KeyError(f"{self.name}: no checkpoint at step {step}" + _steps_hint(self.checkpoint_steps))
        return HRAML.load(path)

    def __repr__(self) -> str:
        return f"<Run {self.name!r} {self.state} step={self.progress.get('step')} snapshots={len(self._steps)}>"


def _steps_hint(steps) -> str:
    if not steps:
        return " (none yet)"
    return f" ({len(steps)} from {steps[0]} to {steps[-1]})"


def _empty_scalars() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype="int64"), "time": pd.Series(dtype="float64"),
                         "loss": pd.Series(dtype="float64")})


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows)
    for col in df.columns:
        # A column of nulls only comes out as objects; numbers and nulls are what a writer writes.
        if df[col].dtype == object and df[col].isna().all():
            df[col] = df[col].astype("float64")
    return df


def open_run(path) -> Run:
    """Open the run directory ``path`` (ValueError when it is not one this version reads)."""
    return Run(path)


def list_runs(root, max_depth: int = 3, unreadable: list | None = None) -> list[RunSummary]:
    """Summaries of the run directories at or under ``root`` (down to ``max_depth`` folders),
    sorted by name; reads one run.json per run. Folders starting with '.' are skipped, and so are
    folders whose run.json is not a run's (an older hraml's model folder). ``unreadable``: a list
    that gets ``(folder, error)`` for each run.json that could not be read or parsed (a damaged
    copy, a file cut short)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    now = time.time()
    found: list[RunSummary] = []
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        run_json = folder / RUN_FILE
        if run_json.is_file():
            try:
                info = check_run_info(json.loads(run_json.read_text()), folder)
            except (OSError, ValueError) as exc:
                info = None  # a model folder of an older hraml, or not ours: not a run
                if unreadable is not None and isinstance(exc, (OSError, json.JSONDecodeError, UnicodeDecodeError)):
                    unreadable.append((folder, str(exc)))
            if info is not None:
                found.append(_summary(root, folder, info, now))
                continue  # a run's own folders hold no runs
        if depth >= max_depth:
            continue
        try:
            with os.scandir(folder) as entries:
                subs = [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith((".", "__"))]
        except OSError:
            continue
        stack.extend((s, depth + 1) for s in subs)
    return sorted(found, key=lambda s: s.name)


def _summary(root: Path, folder: Path, info: dict, now: float) -> RunSummary:
    progress = info.get("progress") or {}
    dataset = info.get("dataset")
    status = info.get("status")
    if status == RUNNING and not is_live(info, now):
        status = LOST
    rel = folder.relative_to(root).as_posix()
    return RunSummary(
        name=rel if rel != "." else (info.get("name") or folder.resolve().name),
        path=folder, status=status, source=info.get("source"), task=info.get("task"),
        dataset=dataset.get("name") if isinstance(dataset, dict) else dataset,
        relation=(info.get("config") or {}).get("relation"), metric=info.get("metric"),
        best_metric=progress.get("best_metric"), last_metric=progress.get("metric"), loss=progress.get("loss"),
        step=progress.get("step"), snapshots=progress.get("snapshots") or 0,
        created=info.get("created"), updated=info.get("updated"), message=info.get("message") or "",
    )
