"""Writing a run directory: :class:`RunWriter`, and :func:`prepare_run` for a run set up before it starts.

One process writes a run (in a torchrun job, rank 0). The writer never leaves a file half-written
where a reader looks: run.json, snapshots and checkpoints are written to a temporary name and
renamed into place, and scalars are appended as whole lines (a reader ignores a last line without
its newline, as TensorBoard's event reader stops at a truncated record and retries later).

Scalars are buffered in memory and appended by a background thread every ``flush_every_s``
seconds, which also rewrites run.json every ``heartbeat_every_s`` seconds while the run is
running: the training loop only appends to a list, and a reader can tell a run whose process
died (its run.json stops changing) from a slow one. The thread exists only while the status is
``running``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .format import (
    CHECKPOINT_DIR, CREATED, FAILED, FINISHED, FORMAT, MODEL_FILE, OWNED_FILES, PREPROCESS_FILE,
    PROBE_FILE, PROGRESS_FIELDS, RUN_FIELDS, RUN_FILE, RUNNING, SCALARS_FILE, SNAPSHOT_DIR, SNAPSHOT_FORMAT,
    SPLIT_FILE, STATUSES, STOPPED, VERSION, check_run_info, is_live, step_file, step_of, temporary_beside,
    write_json_atomic,
)

#: Fields of run.json that :meth:`RunWriter.update` may change.
UPDATABLE = ("name", "source", "message", "task", "metric", "dataset", "config", "raw_metric", "info", "results")


def plain(obj):
    """``obj`` as JSON-ready Python: numpy scalars and arrays unwrapped, tuples as lists, paths as
    strings, non-finite floats as None, dataclasses as dicts; anything else by its repr."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    return repr(obj)


def _number(value):
    """A scalar value for scalars.jsonl: int, float, or None where not finite."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def read_info(path: Path) -> dict | None:
    """run.json of folder ``path`` if it is a readable run of this format, else None."""
    try:
        return check_run_info(json.loads((Path(path) / RUN_FILE).read_text()), path)
    except (OSError, ValueError):
        return None


def _refuse_live(path: Path, info: dict | None) -> None:
    if info is not None and is_live(info, time.time()):
        age = time.time() - info["updated"]
        raise ValueError(
            f"{path} holds a run that is still being written (status running, run.json refreshed {age:.0f} s ago); "
            "choose another folder or stop that run first"
        )


def _clear(path: Path) -> None:
    """Remove the files an earlier run left in ``path`` (only the names the format owns)."""
    for name in OWNED_FILES:
        (path / name).unlink(missing_ok=True)
    for sub in (SNAPSHOT_DIR, CHECKPOINT_DIR):
        try:
            entries = list(os.scandir(path / sub))
        except FileNotFoundError:
            continue
        for e in entries:
            if step_of(e.name) is not None or e.name == PROBE_FILE or (e.name.startswith(".") and e.name.endswith(".tmp")):
                os.unlink(e.path)


def _new_info(path: Path, name, source, dataset, info) -> dict:
    now = time.time()
    out = dict.fromkeys(RUN_FIELDS)
    out.update(format=FORMAT, version=VERSION, run_id=uuid.uuid4().hex, name=name or path.resolve().name,
               source=source, status=CREATED, message="", created=now, updated=now, dataset=plain(dataset),
               info=plain(info or {}), progress=dict.fromkeys(PROGRESS_FIELDS))
    out["progress"]["snapshots"] = 0
    return out


def _write_split(path: Path, split: Mapping) -> None:
    missing = {"train_rows", "test_rows"} - set(split)
    if missing:
        raise ValueError(f"a split needs train_rows and test_rows, missing {sorted(missing)}")
    write_json_atomic(path / SPLIT_FILE, plain(split))


def prepare_run(path, *, name: str | None = None, source: str | None = None, dataset: Mapping | None = None,
                info: Mapping | None = None, split: Mapping | None = None) -> Path:
    """Set up a run at ``path`` before training starts, with status ``created``.

    The next :class:`RunWriter` opened there keeps the name, source, dataset, info and split given
    here (e.g. ``hraml train`` knows the dataset, the estimator it calls does not). An earlier run
    in ``path`` is replaced (its files only; other files stay); one still being written is refused.
    ``split``: ``{"train_rows": [...], "test_rows": [...], ...}``, written to split.json.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _refuse_live(path, read_info(path))
    _clear(path)
    if split is not None:
        _write_split(path, split)
    write_json_atomic(path / RUN_FILE, _new_info(path, name, source, dataset, info))
    return path


class RunWriter:
    """Write one run directory at ``path`` (see docs/RUNS.md); its status becomes ``running``.

    Parameters
    ----------
    path : the run directory (created). An earlier run there is replaced, one still being written
        is refused (ValueError); a run prepared by :func:`prepare_run` is adopted.
    config : the run's settings (TrainConfig fields and the writer's own), stored in run.json.
    task : the task name; metric : the held-out metric's name (its scalars column).
    name, source, dataset, info : shown by a runs list (source: which program wrote the run).
    heartbeat_every_s : how often run.json is rewritten while running (a reader's sign of life).
    flush_every_s : how often buffered scalars are appended to scalars.jsonl.

    Use it as a context manager: leaving the block normally finishes a running run, an exception
    marks it ``failed``.
    """

    def __init__(self, path, *, config: Mapping | None = None, task: str | None = None, metric: str | None = None,
                 name: str | None = None, source: str | None = None, dataset: Mapping | None = None,
                 info: Mapping | None = None, heartbeat_every_s: float = 2.0, flush_every_s: float = 0.5):
        if not (heartbeat_every_s > 0 and flush_every_s > 0):
            raise ValueError(f"heartbeat_every_s and flush_every_s must be positive, got {heartbeat_every_s}, {flush_every_s}")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        existing = read_info(path)
        if existing is not None and existing.get("status") == CREATED:
            record = existing  # prepared: keep identity, dataset, info and split
            for key, value in (("name", name), ("source", source), ("dataset", dataset)):
                if value is not None and record.get(key) is None:  # what was prepared wins
                    record[key] = plain(value)
            record["info"] = {**(record.get("info") or {}), **plain(info or {})}
        else:
            _refuse_live(path, existing)
            _clear(path)
            record = _new_info(path, name, source, dataset, info)
        record.update(config=plain(config or {}), task=task, metric=metric, heartbeat_every_s=float(heartbeat_every_s))
        record["info"].setdefault("host", socket.gethostname())
        record["info"].setdefault("pid", os.getpid())
        self._setup(path, record, float(heartbeat_every_s), float(flush_every_s))
        self.set_status(RUNNING, "")

    @classmethod
    def reopen(cls, path, *, flush_every_s: float = 0.5) -> "RunWriter":
        """Open an existing run to add to it (results, a final metric, model files) without
        replacing it; its status stays as it is. A run still being written is refused."""
        path = Path(path)
        try:
            record = check_run_info(json.loads((path / RUN_FILE).read_text()), path)
        except OSError as exc:
            raise ValueError(f"{path}: no run to reopen ({exc})") from None
        _refuse_live(path, record)
        self = cls.__new__(cls)
        self._setup(path, record, float(record.get("heartbeat_every_s") or 2.0), float(flush_every_s))
        return self

    def _setup(self, path: Path, record: dict, heartbeat_every_s: float, flush_every_s: float) -> None:
        self.path = path
        self.heartbeat_every_s, self.flush_every_s = heartbeat_every_s, flush_every_s
        self._info = record
        progress = record.get("progress") or {}
        self._info["progress"] = {k: progress.get(k) for k in PROGRESS_FIELDS}
        self._info["progress"]["snapshots"] = progress.get("snapshots") or 0
        self._lock = threading.Lock()  # the buffer and the record
        self._io_lock = threading.Lock()  # writes to scalars.jsonl and run.json
        self._rows: list[dict] = []
        self._scalars = None
        self._probe_shapes: tuple[int, int] | None = None
        self._pump_thread: threading.Thread | None = None
        self._pump_stop = threading.Event()
        self._error: BaseException | None = None
        self._last_info_write = -math.inf
        self.closed = False
        (path / SNAPSHOT_DIR).mkdir(exist_ok=True)
        (path / CHECKPOINT_DIR).mkdir(exist_ok=True)
        self._direction = None
        if record.get("metric"):
            from ..evaluate import METRIC_DIRECTIONS  # noqa: PLC0415 - only writers need it

            self._direction = METRIC_DIRECTIONS.get(record["metric"])

    # -- properties -------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._info["status"]

    @property
    def run_id(self) -> str:
        return self._info["run_id"]

    # -- scalars -----------------------------------------------------------------------------------
    def log(self, step: int, *, time: float | None = None, **values) -> None:
        """Append one scalars row: ``step``, ``time`` (now by default) and ``values`` (numbers;
        NaN and infinities are written as null). Cheap: the row is buffered, the thread writes it."""
        self._check_open()
        row = {"step": int(step), "time": _now() if time is None else float(time)}
        for key, value in values.items():
            row[key] = _number(value)
        metric = self._info["metric"]
        with self._lock:
            self._rows.append(row)
            p = self._info["progress"]
            if p["step"] is None or row["step"] >= p["step"]:
                p["step"] = row["step"]
                if row.get("epoch") is not None:
                    p["epoch"] = row["epoch"]
            if row.get("loss") is not None:
                p["loss"] = row["loss"]
            value = row.get(metric) if metric else None
            if value is not None:
                p["metric"] = value
                sign = -1.0 if self._direction == "min" else 1.0
                if p["best_metric"] is None or sign * value > sign * p["best_metric"]:
                    p["best_metric"], p["best_step"] = value, row["step"]

    def flush(self) -> None:
        """Append the buffered rows now (the background thread does it every ``flush_every_s``)."""
        with self._io_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return
            if self._scalars is None:
                self._scalars = open(self.path / SCALARS_FILE, "ab")
            # One write of whole lines: a reader may see a prefix of it, never lines interleaved.
            self._scalars.write("".join(json.dumps(r, allow_nan=False) + "\n" for r in rows).encode())
            self._scalars.flush()

    # -- snapshots and models ------------------------------------------------------------------------
    def write_probe(self, E, probe_index, probe_labels, embedding_index, embedding_labels, *, classes=None,
                    relation_scale: float | None = None) -> Path:
        """Write what every snapshot shares (snapshots/probe.safetensors): E between the probe rows,
        the probe and display rows (ints) and their label codes; ``classes`` decodes the codes."""
        E = np.ascontiguousarray(E, dtype=np.float32)
        arrays = {"probe_index": probe_index, "probe_labels": probe_labels,
                  "embedding_index": embedding_index, "embedding_labels": embedding_labels}
        arrays = {k: np.ascontiguousarray(v, dtype=np.int64).reshape(-1) for k, v in arrays.items()}
        p, m = len(arrays["probe_index"]), len(arrays["embedding_index"])
        if E.shape != (p, p) or len(arrays["probe_labels"]) != p or len(arrays["embedding_labels"]) != m:
            raise ValueError(f"E must be {p} x {p} and the labels as long as their indices; got E {E.shape}, "
                             f"{len(arrays['probe_labels'])} probe labels, {len(arrays['embedding_labels'])} display labels")
        meta = {"format": SNAPSHOT_FORMAT, "version": str(VERSION),
                "classes": json.dumps(plain(classes) if classes is not None else None),
                "relation_scale": json.dumps(_number(relation_scale))}
        path = self.path / SNAPSHOT_DIR / PROBE_FILE
        _save_tensors({"E": E, **arrays}, path, meta)
        self._probe_shapes = (p, m)
        return path

    def snapshot(self, step: int, A, embeddings, *, time: float | None = None, epoch: float | None = None,
                 loss: float | None = None, metric: float | None = None) -> Path:
        """Write A (p x p) and the display embeddings (m x dim) at ``step`` (write_probe first)."""
        self._check_open()
        if self._probe_shapes is None:
            self._probe_shapes = self._read_probe_shapes()
        p, m = self._probe_shapes
        A = np.ascontiguousarray(A, dtype=np.float32)
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if A.shape != (p, p) or embeddings.ndim != 2 or len(embeddings) != m:
            raise ValueError(f"a snapshot needs A of {p} x {p} and {m} embedding rows; got A {A.shape}, embeddings {embeddings.shape}")
        meta = {"format": SNAPSHOT_FORMAT, "version": str(VERSION), "step": str(int(step)),
                "time": repr(_now() if time is None else float(time))}
        for key, value in (("epoch", epoch), ("loss", loss), ("metric", metric)):
            if _number(value) is not None:
                meta[key] = repr(_number(value))
        path = self.path / SNAPSHOT_DIR / step_file(step)
        new = not path.exists()
        _save_tensors({"A": A, "embeddings": embeddings}, path, meta)
        with self._lock:
            progress = self._info["progress"]
            progress["snapshots"] += int(new)
            progress["last_snapshot_step"] = int(step)
        return path

    def _read_probe_shapes(self) -> tuple[int, int]:
        from safetensors import safe_open

        path = self.path / SNAPSHOT_DIR / PROBE_FILE
        if not path.exists():
            raise ValueError(f"{self.path}: write_probe() before the first snapshot")
        with safe_open(str(path), framework="np") as f:
            return f.get_slice("E").get_shape()[0], f.get_slice("embedding_index").get_shape()[0]

    def checkpoint(self, model, step: int) -> Path:
        """Save a fitted :class:`hraml_core.HRAML` as checkpoints/step-<step>.safetensors."""
        self._check_open()
        path = self.path / CHECKPOINT_DIR / step_file(step)
        _replace_with(path, model.save)
        return path

    def save_model(self, model, preprocessor=None) -> None:
        """Write the model folder files: model.safetensors (HRAML.save) and, if given,
        preprocess.safetensors (Preprocessor.save): what ``hraml evaluate DIR`` reads."""
        self._check_open()
        _replace_with(self.path / MODEL_FILE, model.save)
        if preprocessor is not None:
            _replace_with(self.path / PREPROCESS_FILE, preprocessor.save)

    def write_split(self, split: Mapping) -> None:
        """split.json: ``train_rows``, ``test_rows`` and how they were drawn (test_size, seed...)."""
        self._check_open()
        _write_split(self.path, split)

    # -- run.json -------------------------------------------------------------------------------
    def update(self, **fields) -> None:
        """Set fields of run.json (any of :data:`UPDATABLE`) and write it now."""
        self._check_open()
        unknown = set(fields) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"run.json fields {sorted(unknown)} cannot be updated; updatable: {', '.join(UPDATABLE)}")
        with self._lock:
            self._info.update({k: plain(v) for k, v in fields.items()})
        self._write_info()

    def set_status(self, status: str, message: str | None = None) -> None:
        """Record ``status`` (running, stopped, finished or failed) and write run.json now. The
        background thread runs while the status is running; a stopped run may run again."""
        self._check_open()
        if status not in STATUSES or status == "created":
            raise ValueError(f"status must be one of {', '.join(s for s in STATUSES if s != 'created')}, got {status!r}")
        with self._lock:
            self._info["status"] = status
            if message is not None:
                self._info["message"] = str(message)
        if status == RUNNING:
            if self._pump_thread is None or not self._pump_thread.is_alive():
                self._pump_stop.clear()
                self._pump_thread = threading.Thread(target=self._pump, name=f"hraml-run-writer:{self.path.name}",
                                                     daemon=True)
                self._pump_thread.start()
        else:
            self._stop_pump()
        self.flush()
        self._write_info()

    def finish(self, status: str = FINISHED, message: str | None = None) -> None:
        """Record the final status, write everything out and close the writer."""
        if self.closed:
            return
        try:
            self.set_status(status, message)
        finally:
            self._close_files()

    def close(self) -> None:
        """Write everything out and close; a run still running is recorded as stopped."""
        if self.closed:
            return
        if self.status == RUNNING:
            self.finish(STOPPED)
        else:
            try:
                self.flush()
                self._write_info()
            finally:
                self._close_files()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.closed:
            return
        if exc_type is not None:
            self.finish(FAILED, f"{exc_type.__name__}: {exc}")
        elif self.status == RUNNING:
            self.finish(FINISHED)
        else:
            self.close()

    # -- internals ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"the writer of {self.path} is closed")
        error, self._error = self._error, None
        if error is not None:
            raise OSError(f"writing the run at {self.path} failed: {error}") from error

    def _write_info(self) -> None:
        with self._io_lock:
            with self._lock:
                self._info["updated"] = _now()
                record = json.loads(json.dumps(self._info))  # a deep copy, taken under the lock
            write_json_atomic(self.path / RUN_FILE, record)
            self._last_info_write = time.monotonic()

    def _pump(self) -> None:
        while not self._pump_stop.wait(self.flush_every_s):
            try:
                self.flush()
                if time.monotonic() - self._last_info_write >= self.heartbeat_every_s:
                    self._write_info()
            except Exception as exc:  # reported to the training loop by its next call
                self._error = exc

    def _stop_pump(self) -> None:
        thread = self._pump_thread
        if thread is not None and thread is not threading.current_thread():
            self._pump_stop.set()
            thread.join()
        self._pump_thread = None

    def _close_files(self) -> None:
        self._stop_pump()
        self.closed = True
        if self._scalars is not None:
            self._scalars.close()
            self._scalars = None


def _now() -> float:
    return time.time()


def _save_tensors(tensors: dict, path: Path, metadata: dict) -> None:
    from safetensors.numpy import save_file

    _replace_with(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _replace_with(path: Path, write) -> None:
    """``write(temporary path)``, then rename the result over ``path`` (a reader never sees a part)."""
    tmp = temporary_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
