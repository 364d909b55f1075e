"""Datasets by name: ``load_dataset`` and ``list_datasets``."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .dataset import Dataset
from .embedded import EMBEDDED_SPECS, load_embedded
from .errors import dataset_error
from .formats import EXTENSIONS
from .download import file_sha256
from .registry import lookup, registry, resolve_spec
from .shards import is_shard_folder, load_sharded

AVAILABLE, EMBEDDED, MISSING, INCOMPLETE, CORRUPT, UNREGISTERED = (
    "available", "embedded", "missing", "incomplete", "corrupt", "unregistered",
)


def _data_files(folder: Path) -> list[Path]:
    """Files in ``folder`` that load_file can read (ignoring Mulan XML label files)."""
    out = []
    for p in sorted(folder.iterdir()):
        lname = p.name.lower()
        stem = lname[:-3] if lname.endswith(".gz") else lname
        if p.is_file() and not p.name.startswith(".") and os.path.splitext(stem)[1] in EXTENSIONS:
            out.append(p)
    return out


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or any(name.lower().removesuffix(".gz").endswith(e) for e in EXTENSIONS)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset by name: an embedded set, a registered file-based one, or an unregistered folder.

    File-based sets are read from ``<data_dir>/<name>/`` where ``data_dir`` is the argument >
    ``$HRAML_DATA_DIR`` > ``<repo>/datasets/files``. A folder of the data directory that is not
    registered loads when it holds exactly one data file, or a shard layout (``hraml datasets
    shard``) when it holds every shard. A path to a file (``x.csv``) is read with
    :func:`load_file` defaults. Problems raise :class:`DatasetError`.
    """
    from .loaders import load_file

    embedded = {n.lower(): n for n in EMBEDDED_SPECS}
    if name.lower() in embedded:  # without reading the manifest: embedded sets work without it
        return load_embedded(embedded[name.lower()])
    spec = lookup(name)
    if spec is None:
        root = paths.data_dir(data_dir)
        folder = root / name
        for shards in (folder, Path(name)):  # a shard layout (hraml_core.data.shards): every shard read
            if is_shard_folder(shards):
                return load_sharded(shards)
        if folder.is_dir():
            files = _data_files(folder)
            if len(files) == 1:
                return load_file(files[0], name=name)
            raise dataset_error(
                folder, f"not a registered dataset, and the folder holds {len(files)} data files, not 1"
                        + (f" ({', '.join(f.name for f in files)})" if files else "")
            )
        if _looks_like_path(name):
            return load_file(name)  # a file path (a missing one is reported as such)
        spec = resolve_spec(name)  # raises: unknown
    if spec.embedded:
        return load_embedded(spec.name)

    root = paths.data_dir(data_dir)
    folder = root / spec.name
    missing = [f.name for f in spec.files if not (folder / f.name).is_file()]
    if not (folder / spec.data).is_file() and spec.data not in missing:
        missing.insert(0, spec.data)
    if missing:
        raise dataset_error(
            spec.name,
            f"not in the data directory {root} (missing {spec.name}/{missing[0]}); run "
            f"`hraml datasets download {spec.name}`, or point --data-dir / HRAML_DATA_DIR at a folder that has it",
        )
    options = spec.option_dict
    if "labels_xml" in options:
        options["labels_xml"] = folder / options["labels_xml"]
    ds = load_file(folder / spec.data, format=spec.format, task=spec.task, name=spec.name,
                   description=spec.description, source=spec.source, **options)
    if spec.shape and tuple(ds.shape) != tuple(spec.shape):
        raise dataset_error(
            folder / spec.data,
            f"has shape {ds.shape[0]} x {ds.shape[1]} with {ds.shape[2]} labels, but the registry declares "
            f"{spec.shape[0]} x {spec.shape[1]} with {spec.shape[2]}; is it the right file?",
        )
    return ds


@dataclass(frozen=True)
class DatasetStatus:
    """One row of ``hraml datasets list``."""

    name: str
    task: str
    format: str
    shape: str
    source: str
    status: str  # embedded / available / missing / incomplete / corrupt / unregistered
    path: Path | None = None
    detail: str = ""

    @property
    def status_text(self) -> str:
        if self.status == EMBEDDED:
            return "embedded"
        if self.status == AVAILABLE:
            return f"available at {self.path}"
        if self.status == UNREGISTERED:
            return f"unregistered folder at {self.path} ({self.detail})"
        hint = f"; run `hraml datasets download {self.name}`"
        if self.status == MISSING:
            return f"missing{hint}"
        return f"{self.status} at {self.path} ({self.detail}){hint}"


def list_datasets(data_dir: str | os.PathLike | None = None, verify: bool = False) -> list[DatasetStatus]:
    """Every known dataset and whether it can be loaded, without reading the data files.

    File-based sets are ``available`` when all their files exist in ``<data_dir>/<name>/``
    (``verify=True`` also checks their sha256), ``incomplete`` when some do, ``missing`` when none
    do. Shapes come from the registry. Folders of the data directory that are not registered but
    hold one data file are listed as ``unregistered``.
    """
    root = paths.data_dir(data_dir)
    rows: list[DatasetStatus] = []
    specs = registry()
    for spec in specs.values():
        common = dict(name=spec.name, task=spec.task, format=spec.format, shape=spec.shape_text(), source=spec.source)
        if spec.embedded:
            rows.append(DatasetStatus(status=EMBEDDED, **common))
            continue
        folder = root / spec.name
        names = [f.name for f in spec.files] or [spec.data]
        present = [n for n in names if (folder / n).is_file()]
        if not present:
            rows.append(DatasetStatus(status=MISSING, path=folder, **common))
        elif len(present) < len(names):
            absent = [n for n in names if n not in present]
            rows.append(DatasetStatus(status=INCOMPLETE, path=folder, detail=f"missing {', '.join(absent)}", **common))
        else:
            bad = []
            if verify:
                bad = [f.name for f in spec.files if f.sha256 and file_sha256(folder / f.name) != f.sha256]
            if bad:
                rows.append(DatasetStatus(status=CORRUPT, path=folder, detail=f"sha256 mismatch: {', '.join(bad)}", **common))
            else:
                rows.append(DatasetStatus(status=AVAILABLE, path=folder, **common))
    if root.is_dir():
        known = {n.lower() for n in specs}
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if folder.name.lower() in known:
                continue
            files = _data_files(folder)
            if len(files) == 1:
                rows.append(DatasetStatus(name=folder.name, task="auto", format=files[0].name.split(".", 1)[-1],
                                          shape="?", source="local folder", status=UNREGISTERED, path=folder,
                                          detail=files[0].name))
    return rows
