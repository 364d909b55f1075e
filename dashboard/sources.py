"""Where the dashboard's data comes from, besides embedded and registered sets: CSV and Parquet
files of the data directory, read in blocks with a progress report and prepared once per server;
and the upload size limit. No Streamlit here (the app draws the progress this module reports).

The data directory's files are offered by their path under it (``big.parquet``,
``mine/train.csv``): files at its top level, and in its folders that are not registered datasets.
They are read by :func:`hraml_core.data.load_file` in blocks straight into float32 features
(``dtype="float32"``: the training dtype, at any size, with ``progress``), with the label columns
the user picks (default: the last column). Uploads are for small files: Streamlit holds an upload
in memory, so the server caps its size (``hraml dashboard --max-upload-mb``), and the page points
larger files to the data directory.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hraml_core.data import DatasetError, list_datasets, load_file
from hraml_core.data import data_dir as resolve_data_dir
from hraml_core.data.formats import detect_format
from hraml_core.data.shards import is_shard_folder

from .prepare import DEFAULT_TEST_SIZE, Prepared, prepare_dataset

#: Tables among the data directory's files: read in blocks, with the label-column picker.
TABLE_FORMATS = ("csv", "parquet")
#: Formats of the data directory's files the Dataset list offers: tables (label columns picked,
#: read in blocks into float32 with a progress bar) and svmlight files (sparse, read in blocks).
LISTED_FORMATS = TABLE_FORMATS + ("svmlight",)
#: Prepared data of this many data-directory files is kept for the server's sessions (the newest
#: ones); at a million rows of 100 features each takes 400 MB. A session's trainer keeps its own.
KEEP_PREPARED = 2


@dataclass(frozen=True)
class DataFile:
    """A CSV / Parquet / svmlight file of the data directory; ``option`` is its path under the
    directory (what the dataset list shows)."""

    option: str
    path: Path
    format: str
    size: int
    mtime_ns: int

    @property
    def key(self) -> tuple:
        """Changes when the file does (a rewritten file is read again)."""
        return (str(self.path), self.size, self.mtime_ns)

    @property
    def name(self) -> str:
        return Path(self.option).name.split(".")[0]

    @property
    def is_table(self) -> bool:
        """Whether it has columns to pick (CSV, Parquet) and is read in blocks."""
        return self.format in TABLE_FORMATS


def format_bytes(n: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} bytes"


def _listed_format(path: Path) -> str | None:
    try:
        fmt = detect_format(path)
    except DatasetError:
        return None
    return fmt if fmt in LISTED_FORMATS else None


def _data_file(root: Path, path: Path) -> DataFile | None:
    fmt = _listed_format(path)
    if fmt is None or path.name.startswith("."):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return DataFile(path.relative_to(root).as_posix(), path, fmt, st.st_size, st.st_mtime_ns)


def data_files(data_dir: str | os.PathLike | None = None) -> list[DataFile]:
    """The CSV / Parquet / svmlight files of the data directory: at its top level and in its folders that are
    neither registered datasets nor shard layouts (those are offered by name), sorted by path."""
    from hraml_core.data import registry

    root = resolve_data_dir(data_dir)
    if not root.is_dir():
        return []
    registered = {n.lower() for n in registry()}
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            found.append(_data_file(root, entry))
        elif entry.is_dir() and entry.name.lower() not in registered and not is_shard_folder(entry):
            found += [_data_file(root, p) for p in sorted(entry.iterdir()) if p.is_file()]
    return [f for f in found if f is not None]


def find_data_file(option: str, data_dir: str | os.PathLike | None = None) -> DataFile | None:
    """The data-directory file the dataset list calls ``option``, or None when it is not one."""
    if not option or Path(option).is_absolute() or ".." in Path(option).parts:
        return None
    root = resolve_data_dir(data_dir)
    path = root / option
    if not path.is_file():
        return None
    return _data_file(root, path)


def dataset_options(data_dir: str | os.PathLike | None = None) -> list[str]:
    """What the dataset list offers: embedded sets (digits first), registered sets present in the
    data directory, unregistered folders holding one other data file (ARFF, MAT), shard layouts
    (``hraml datasets shard``: loaded whole, by name), then the CSV / Parquet / svmlight files of
    :func:`data_files` by their path."""
    files = data_files(data_dir)
    as_files = {f.path for f in files}
    rows = list_datasets(data_dir)
    embedded = [r.name for r in rows if r.status == "embedded"]
    named = [r.name for r in rows if r.status == "available"
             or (r.status == "unregistered" and r.path is not None and (r.path / r.detail) not in as_files)]
    root = resolve_data_dir(data_dir)
    known = {n.lower() for n in named}
    sharded = sorted(p.name for p in root.iterdir() if p.is_dir() and is_shard_folder(p)
                     and p.name.lower() not in known) if root.is_dir() else []
    ordered = (["digits"] if "digits" in embedded else []) + [n for n in embedded if n != "digits"]
    return ordered + named + sharded + [f.option for f in files]


def columns(f: DataFile) -> list[str]:
    """The column names ``load_file`` gives the file (raises DatasetError for an unreadable one)."""
    from hraml_core.data.tabular import csv_column_names, parquet_column_names

    return parquet_column_names(f.path) if f.format == "parquet" else csv_column_names(f.path)


# --------------------------------------------------------------------------------------------------
# reading with progress, once per server
# --------------------------------------------------------------------------------------------------
class Throttle:
    """``progress(done, total)`` for a loader -> ``show(fraction)`` at most every ``every_s`` seconds
    (and at the end): a CSV reader reports every megabyte, and each report is a message to the page."""

    def __init__(self, show: Callable[[float], object], every_s: float = 0.2, clock=time.monotonic):
        self.show, self.every_s, self.clock = show, float(every_s), clock
        self._last = -float("inf")

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if done < total and now - self._last < self.every_s:
            return
        self._last = now
        self.show(min(1.0, done / total) if total else 1.0)


class PreparedCache:
    """Prepared data by key, shared by the server's sessions: each key is made once even when
    several sessions ask at the same time (the others wait for it), and the ``keep`` most recently
    used are kept. A make that raises (a bad file, or Streamlit stopping the script run for a new
    choice) leaves nothing behind."""

    def __init__(self, keep: int = KEEP_PREPARED):
        self.keep = int(keep)
        self._lock = threading.Lock()
        self._items: OrderedDict = OrderedDict()
        self._making: dict = {}

    def get(self, key, make: Callable[[], Prepared]) -> Prepared:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            gate = self._making.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                value = make()
            finally:
                with self._lock:
                    self._making.pop(key, None)
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.keep:
                    self._items.popitem(last=False)
            return value

    def cached(self, key) -> bool:
        with self._lock:
            return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


PREPARED = PreparedCache()


def file_key(f: DataFile, label_columns, task: str, ignore_columns=None) -> tuple:
    return (f.key, tuple(label_columns) if label_columns else None, task,
            tuple(ignore_columns) if ignore_columns else None)


def prepare_file(f: DataFile, label_columns=None, task: str = "auto",
                 progress: Callable[[int, int], object] | None = None, cache: PreparedCache = PREPARED,
                 ignore_columns=None) -> Prepared:
    """Read ``f`` in blocks into float32 (``progress(done, total)`` as it goes) and prepare it
    (split, standardise); once per server for the same file, label columns, ignored columns and task.
    ``extra["read_s"]`` / ``extra["prepare_s"]`` say how long each part took."""

    def make() -> Prepared:
        start = time.perf_counter()
        if f.is_table:
            ds = load_file(f.path, task=task, label_columns=list(label_columns) if label_columns else None,
                           ignore_columns=list(ignore_columns) if ignore_columns else None,
                           name=f.name, dtype="float32", progress=progress)
        else:  # svmlight: sparse, no columns to pick
            ds = load_file(f.path, task=task, name=f.name, progress=progress)
        read_s = time.perf_counter() - start
        prepared = prepare_dataset(ds, test_size=DEFAULT_TEST_SIZE, seed=0)
        prepared.extra["read_s"] = read_s
        return prepared

    return cache.get(file_key(f, label_columns, task, ignore_columns), make)


def timing_note(p: Prepared) -> str | None:
    """"Read in 12.3 s; split and standardised in 2.1 s" for data read from a file, else None."""
    if "read_s" not in p.extra:
        return None
    return (f"Read {p.n_samples:,} rows in {p.extra['read_s']:.1f} s; split and standardised in "
            f"{p.extra.get('prepare_s', 0.0):.1f} s (once per server: other sessions reuse it).")


# --------------------------------------------------------------------------------------------------
# uploads
# --------------------------------------------------------------------------------------------------
def upload_limit_note(limit_mb: int, data_dir: str | os.PathLike | None) -> str:
    return (f"Uploads up to {limit_mb:,} MB (`hraml dashboard --max-upload-mb`). Larger files: put them in "
            f"the data directory ({resolve_data_dir(data_dir)}) and pick them from the Dataset list; CSV and "
            "Parquet files there are read in blocks at any size.")


def upload_too_large(name: str, size: int, limit_mb: int, data_dir: str | os.PathLike | None) -> str | None:
    """The message for an upload over the server's limit, or None when it is within it."""
    if size <= limit_mb * 2**20:  # Streamlit's limit counts mebibytes
        return None
    return (f"{name} is {format_bytes(size)}, over this server's upload limit of {limit_mb:,} MB. Put it in the "
            f"data directory ({resolve_data_dir(data_dir)}) instead and pick it from the Dataset list: CSV and "
            "Parquet files there are read in blocks, with a progress bar, at any size (or raise the limit with "
            "`hraml dashboard --max-upload-mb`).")
