"""Sharded datasets on disk: a folder of Parquet files and a manifest, for data that outgrows one machine.

A data-parallel job (hraml_core.distributed) reads only its ranks' shards, so a node needs only
its own part of the data on its disk. The layout (format ``hraml-shards``, version 1)::

    DIR/shards.json                     the manifest (below), written last
    DIR/shard-00000-000.parquet         shard 0, its first file (a shard has one or more)
    DIR/shard-00001-000.parquet         ...

Every file has the columns ``row`` (int64: the row of the dataset it came from), ``x0`` ... ``x{d-1}``
(float32 features), then the labels: ``y`` for classification (the class values, int64 or string)
or ``y0`` ... ``y{L-1}`` (multilabel: int8 0/1; distribution: float64). Column names are positional
so that no feature name can collide with a label or with ``row``; the dataset's names are in the
manifest. Any Parquet reader reads the files (``pandas.read_parquet(DIR / "shard-00000-000.parquet")``).

The manifest (JSON) holds ``format``, ``version``, ``id``, ``name`` (the source dataset), ``task``,
``n_rows``, ``features`` and ``labels`` (the dataset's feature and label names), ``seed`` and
``shards``: one ``{"rows": n, "files": [{"name": ..., "rows": n}, ...]}`` per shard. ``id`` is the
sha256 of the rest, so that the nodes of a job can check that their copies are of one layout.

Shard ``s`` of ``N`` holds the rows :func:`shard_rows` gives it (a seeded shuffle split into N
near-equal parts, each part in dataset order). :func:`assign_shards` says which rank of a job
reads which shards: rank r of W takes shards r, r+W, ... where every rank sees every shard (a
shared file system, or full copies); otherwise (each node holding only some shards) an
assignment of equal counts among the shards each rank sees.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..tasks import CLASSIFICATION, MULTILABEL, TASKS
from .dataset import Dataset
from .errors import dataset_error, plural

MANIFEST = "shards.json"
FORMAT, VERSION = "hraml-shards", 1
#: Rows per Parquet row group: a reader decodes one group of every column at a time (64k rows of
#: 100 float32 features: 26 MB), and the writer buffers one.
ROW_GROUP_ROWS = 1 << 16
#: Rows per file by default; a shard of more rows is written as several files.
ROWS_PER_FILE = 1 << 22
ROW_COLUMN = "row"


def shard_rows(n: int, shard: int, n_shards: int, seed: int = 0) -> np.ndarray:
    """The rows of shard ``shard`` of ``n_shards``: a seeded shuffle of ``range(n)`` split into
    ``n_shards`` near-equal parts, the part sorted. (Also the rows of rank ``shard`` of a world of
    ``n_shards`` when every rank holds the whole dataset.)"""
    if not 0 <= shard < n_shards:
        raise ValueError(f"rank {shard} outside a world of {n_shards}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(np.array_split(order, n_shards)[shard])


def _feature_columns(d: int) -> list[str]:
    return [f"x{j}" for j in range(d)]


def _label_columns(task: str, n_labels: int) -> list[str]:
    return ["y"] if task == CLASSIFICATION else [f"y{j}" for j in range(n_labels)]


@dataclass(frozen=True)
class ShardLayout:
    """A layout's manifest, read and checked (:func:`read_manifest`)."""

    folder: Path
    id: str
    name: str
    task: str
    n_rows: int
    features: tuple[str, ...]
    labels: tuple[str, ...]
    seed: int
    shards: tuple[dict, ...]  # {"rows": n, "files": [{"name", "rows"}]} per shard

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    @property
    def feature_columns(self) -> list[str]:
        return _feature_columns(len(self.features))

    @property
    def label_columns(self) -> list[str]:
        return _label_columns(self.task, len(self.labels))

    def present(self) -> list[int]:
        """The shards whose files are all in this folder (a node may hold only some)."""
        return [s for s, shard in enumerate(self.shards) if all((self.folder / f["name"]).is_file() for f in shard["files"])]


@dataclass(frozen=True)
class ShardData:
    """Rows read from some shards, in the order of the shards asked for, each in dataset order."""

    X: np.ndarray  # float32, (n, d), C-contiguous
    y: np.ndarray  # class values (1-D), or the (n, L) label matrix
    rows: np.ndarray  # int64: each row's row in the dataset
    sizes: tuple[int, ...]  # rows of each shard read, in that order


def is_shard_folder(path) -> bool:
    """Whether ``path`` is a folder with a shard manifest."""
    return path is not None and (Path(path) / MANIFEST).is_file()


def _layout_id(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_out_folder(out: Path) -> None:
    """Refuse a path that a layout cannot be written into: a file, or a folder that is not empty."""
    if out.exists() and not out.is_dir():
        raise dataset_error(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise dataset_error(out, "is not empty: write a shard layout into a new or empty folder")


def _label_block(ds: Dataset, rows: np.ndarray, columns: list[str]) -> dict:
    Y = ds.Y[rows]
    if ds.task == CLASSIFICATION:
        return {columns[0]: Y}
    dtype = np.int8 if ds.task == MULTILABEL else np.float64
    return {c: np.ascontiguousarray(Y[:, j], dtype=dtype) for j, c in enumerate(columns)}


def write_shards(ds: Dataset, out, n_shards: int, seed: int = 0, rows_per_file: int = ROWS_PER_FILE,
                 progress=None) -> ShardLayout:
    """Write ``ds`` as ``n_shards`` shards into the new (or empty) folder ``out``; the manifest last.

    Rows go to shards by :func:`shard_rows` with ``seed``; a shard of more than ``rows_per_file``
    rows is written as several files. Features are written as float32 (sparse features
    densified one row group at a time). ``progress(done_rows, total_rows)`` is called as rows are
    written. Returns the layout, as :func:`read_manifest` would read it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    n = ds.n_samples
    if isinstance(n_shards, bool) or not isinstance(n_shards, (int, np.integer)) or n_shards < 1:
        raise ValueError(f"the number of shards must be a positive integer, got {n_shards!r}")
    if n_shards > n:
        raise ValueError(f"{n_shards} shards of {plural(n, 'row')}: a shard would be empty")
    if isinstance(rows_per_file, bool) or not isinstance(rows_per_file, (int, np.integer)) or rows_per_file < 1:
        raise ValueError(f"rows_per_file must be a positive integer, got {rows_per_file!r}")
    check_out_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    x_cols = _feature_columns(ds.n_features)
    y_cols = _label_columns(ds.task, ds.n_labels)
    shards, done = [], 0
    for s in range(n_shards):
        rows = shard_rows(n, s, n_shards, seed)
        files = []
        for k, start in enumerate(range(0, len(rows), rows_per_file)):
            part = rows[start : start + rows_per_file]
            name = f"shard-{s:05d}-{k:03d}.parquet"
            tmp = out / f".{name}.tmp"
            writer = None
            try:
                for g in range(0, len(part), ROW_GROUP_ROWS):
                    block = part[g : g + ROW_GROUP_ROWS]
                    X = ds.X[block]
                    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)
                    columns = {ROW_COLUMN: block.astype(np.int64)}
                    columns.update({c: X[:, j] for j, c in enumerate(x_cols)})
                    columns.update(_label_block(ds, block, y_cols))
                    table = pa.table(columns)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                    done += len(block)
                    if progress is not None:
                        progress(done, n)
            finally:
                if writer is not None:
                    writer.close()
            os.replace(tmp, out / name)
            files.append({"name": name, "rows": int(len(part))})
        shards.append({"rows": int(len(rows)), "files": files})
    manifest = {"format": FORMAT, "version": VERSION, "name": ds.name, "task": ds.task, "n_rows": int(n),
                "features": list(ds.feature_names), "labels": list(ds.label_names), "seed": int(seed), "shards": shards}
    manifest["id"] = _layout_id(manifest)
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out / MANIFEST)
    return read_manifest(out)


def read_manifest(folder) -> ShardLayout:
    """The layout of ``folder``, its manifest checked (not its data files: see :func:`read_shards`)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise dataset_error(folder, f"not a shard layout: no {MANIFEST} (write one with `hraml datasets shard`)")
    try:
        m = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise dataset_error(path, f"unreadable manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise dataset_error(path, f"not a {FORMAT} manifest")
    if not isinstance(m.get("version"), int) or m["version"] > VERSION:
        raise dataset_error(path, f"manifest version {m.get('version')!r}; this version of hraml reads up to {VERSION}")
    try:
        shards = m["shards"]
        layout = ShardLayout(folder=folder, id=str(m["id"]), name=str(m["name"]), task=m["task"], n_rows=int(m["n_rows"]),
                             features=tuple(m["features"]), labels=tuple(m["labels"]), seed=int(m["seed"]),
                             shards=tuple(shards))
        sizes = [int(s["rows"]) for s in shards]
        files = [[(str(f["name"]), int(f["rows"])) for f in s["files"]] for s in shards]
    except (KeyError, TypeError, ValueError) as exc:
        raise dataset_error(path, f"malformed manifest ({type(exc).__name__}: {exc})") from None
    problems = []
    if layout.task not in TASKS:
        problems.append(f"unknown task {layout.task!r}")
    if not shards:
        problems.append("no shards")
    if sum(sizes) != layout.n_rows:
        problems.append(f"the shards hold {sum(sizes)} rows, not n_rows = {layout.n_rows}")
    for s, listed in enumerate(files):
        if not listed or sum(rows for _, rows in listed) != sizes[s]:
            problems.append(f"shard {s}'s files do not hold its {sizes[s]} rows")
        if any(Path(name).name != name or name.startswith(".") for name, _ in listed):
            problems.append(f"shard {s} names a file outside the folder")
    if _layout_id(m) != layout.id:
        problems.append("its id does not match its content (edited by hand?)")
    if problems:
        raise dataset_error(path, "bad manifest: " + "; ".join(problems))
    return layout


def read_shards(layout: ShardLayout, shards) -> ShardData:
    """The rows of ``shards`` (shard indices, in that order) from ``layout.folder``, features float32.

    Reads one row group of every column at a time into one preallocated array. A missing file, or
    one whose rows or columns differ from the manifest, raises a DatasetError naming it.
    """
    import pyarrow.parquet as pq

    shards = [int(s) for s in shards]
    bad = [s for s in shards if not 0 <= s < layout.n_shards]
    if bad:
        raise dataset_error(layout.folder, f"no shard {bad[0]}: the layout has {plural(layout.n_shards, 'shard')}")
    sizes = tuple(int(layout.shards[s]["rows"]) for s in shards)
    n, d = sum(sizes), len(layout.features)
    X = np.empty((n, d), dtype=np.float32)
    rows = np.empty(n, dtype=np.int64)
    x_cols, y_cols = layout.feature_columns, layout.label_columns
    labels: list[np.ndarray] = []
    at = 0
    for s in shards:
        for f in layout.shards[s]["files"]:
            path = layout.folder / f["name"]
            if not path.is_file():
                raise dataset_error(path, f"shard {s}'s file is missing from this folder")
            try:
                pf = pq.ParquetFile(path)
            except Exception as exc:  # pyarrow.ArrowInvalid and friends
                raise dataset_error(path, f"unreadable Parquet file ({type(exc).__name__}: {exc})") from None
            names = pf.schema_arrow.names
            missing = [c for c in [ROW_COLUMN, *x_cols, *y_cols] if c not in names]
            if missing:
                raise dataset_error(path, f"column {missing[0]!r} is missing: not a file of this layout")
            if pf.metadata.num_rows != int(f["rows"]):
                raise dataset_error(path, f"holds {plural(pf.metadata.num_rows, 'row')}, the manifest says {f['rows']}")
            try:
                for g in range(pf.metadata.num_row_groups):
                    table = pf.read_row_group(g, columns=[ROW_COLUMN, *x_cols, *y_cols])
                    m = table.num_rows
                    rows[at : at + m] = table.column(ROW_COLUMN).to_numpy()
                    for j, c in enumerate(x_cols):
                        X[at : at + m, j] = table.column(c).to_numpy()
                    if layout.task == CLASSIFICATION:
                        labels.append(table.column("y").to_numpy(zero_copy_only=False))
                    else:
                        labels.append(np.column_stack([table.column(c).to_numpy() for c in y_cols]))
                    at += m
            except Exception as exc:  # a truncated or corrupt file
                raise dataset_error(path, f"unreadable Parquet file ({type(exc).__name__}: {exc})") from None
    y = np.concatenate(labels) if labels else np.zeros(0)
    if layout.task == CLASSIFICATION and y.dtype == object:
        y = y.astype(str)
    elif layout.task != CLASSIFICATION:
        y = y.astype(np.int64 if layout.task == MULTILABEL else np.float64)
    return ShardData(X=X, y=y, rows=rows, sizes=sizes)


def load_sharded(folder) -> Dataset:
    """The whole dataset of a shard layout (every shard must be in ``folder``), rows in dataset order."""
    layout = read_manifest(folder)
    absent = sorted(set(range(layout.n_shards)) - set(layout.present()))
    if absent:
        raise dataset_error(layout.folder, f"holds only some shards of its layout (shard {absent[0]} and "
                                           f"{plural(len(absent) - 1, 'other')} are elsewhere): the whole set cannot be read here")
    data = read_shards(layout, range(layout.n_shards))
    order = np.argsort(data.rows, kind="stable")
    if not np.array_equal(data.rows[order], np.arange(layout.n_rows)):
        raise dataset_error(layout.folder, "the shards' row numbers are not the rows 0 .. n_rows - 1, each once")
    return Dataset(name=layout.name, X=data.X[order], Y=data.y[order], task=layout.task, feature_names=layout.features,
                   label_names=layout.labels, source=f"shard layout {layout.folder}", path=str(layout.folder),
                   dtype="float32")


def assign_shards(n_shards: int, world_size: int, visible) -> list[list[int]]:
    """Which shards each rank reads: a list of ``world_size`` sorted lists, equal in length.

    ``visible[r]``: the shards rank r can read (those in its node's folder). Rank r takes shards
    r, r+W, ... when it sees them all; otherwise every rank takes N / W of the shards it sees,
    each shard exactly one rank's (a maximum bipartite matching, scipy's). Raises ValueError when
    W does not divide N, when a shard is on no node, or when no such assignment exists.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    W, N = int(world_size), int(n_shards)
    if len(visible) != W:
        raise ValueError(f"visible lists {len(visible)} ranks, not {W}")
    if N % W:
        raise ValueError(f"{N} shards cannot be shared equally by {W} ranks: every rank reads as many shards, so the "
                         f"number of ranks must divide the number of shards (write the layout with a multiple of {W} "
                         f"shards, or run {', '.join(str(w) for w in range(1, N + 1) if N % w == 0)} ranks)")
    visible = [set(int(s) for s in v) for v in visible]
    canonical = [list(range(r, N, W)) for r in range(W)]
    if all(set(c) <= v for c, v in zip(canonical, visible)):
        return canonical
    nowhere = sorted(set(range(N)) - set().union(*visible))
    if nowhere:
        raise ValueError(f"shard {nowhere[0]} is on no node ({plural(len(nowhere), 'shard')} missing: "
                         f"{', '.join(map(str, nowhere[:12]))}): copy its files into a node's shard folder")
    k = N // W
    # One slot per (rank, j < k); a slot may take any shard its rank sees.
    slots, cols = [], []
    for r in range(W):
        for _ in range(k):
            cols.extend(sorted(visible[r]))
            slots.append(len(visible[r]))
    indptr = np.concatenate([[0], np.cumsum(slots)])
    graph = csr_matrix((np.ones(len(cols), dtype=np.int8), np.asarray(cols, dtype=np.int64), indptr), shape=(W * k, N))
    match = maximum_bipartite_matching(graph, perm_type="column")
    if (match < 0).any():
        seen = ", ".join(f"rank {r}: {len(v)}" for r, v in enumerate(visible))
        raise ValueError(f"the ranks cannot each read {plural(k, 'shard')} of those on their node (shards seen by "
                         f"{seen}): give each node {k} shards per rank it runs")
    return [sorted(int(s) for s in match[r * k : (r + 1) * k]) for r in range(W)]
