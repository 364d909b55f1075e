"""The dataset registry: embedded sets (defined in code) plus the file-based ones of the manifest.

The manifest is ``registry.toml`` beside this module, shipped as package data (read with
:mod:`tomllib`); its format is described in ``datasets/README.md``. Embedded sets (scikit-learn's, river's yeast, the
synthetic ones) are defined in :mod:`hraml_core.data.embedded`, so they work even when the manifest
is missing; file-based sets then raise a DatasetError saying the manifest is missing.
"""
from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path

from hraml_core.tasks import TASKS

from . import paths
from .embedded import EMBEDDED_SPECS
from .errors import dataset_error
from .formats import FORMATS
from .loaders import FORMAT_OPTIONS
from .spec import DatasetSpec, FileSpec

DATASET_KEYS = {"task", "format", "description", "source", "homepage", "shape", "data", "files", "options"}
FILE_KEYS = {"name", "sha256", "url", "size"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _parse_entry(name: str, entry: dict, path: Path) -> DatasetSpec:
    where = f"{path} [datasets.{name}]"
    if not isinstance(entry, dict):
        raise dataset_error(where, "must be a table")
    unknown = sorted(set(entry) - DATASET_KEYS)
    if unknown:
        raise dataset_error(where, f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(DATASET_KEYS))}")
    if not _PLAIN_NAME.match(name):
        raise dataset_error(where, "dataset names may only hold letters, digits and _ . + -")
    task = entry.get("task")
    if task not in TASKS:
        raise dataset_error(where, f"task must be one of {', '.join(TASKS)}, got {task!r}")
    fmt = entry.get("format")
    if fmt not in FORMATS:
        raise dataset_error(where, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    files = []
    for i, f in enumerate(entry.get("files", [])):
        fwhere = f"{where} files[{i}]"
        if not isinstance(f, dict) or "name" not in f:
            raise dataset_error(fwhere, "each file needs at least a name")
        unknown = sorted(set(f) - FILE_KEYS)
        if unknown:
            raise dataset_error(fwhere, f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(FILE_KEYS))}")
        if not _PLAIN_NAME.match(f["name"]) or f["name"] in (".", ".."):
            raise dataset_error(fwhere, f"file name {f['name']!r} must be a plain file name (no folders)")
        sha = f.get("sha256")
        if sha is not None and not _SHA256.match(str(sha)):
            raise dataset_error(fwhere, "sha256 must be 64 lower-case hex digits")
        files.append(FileSpec(name=f["name"], sha256=sha, url=f.get("url"), size=f.get("size")))
    data = entry.get("data") or (files[0].name if files else None)
    if data is None:
        raise dataset_error(where, "needs a data file: give 'data' or at least one [[files]] entry")
    if files and data not in {f.name for f in files}:
        raise dataset_error(where, f"data file {data!r} is not among its files")
    options = entry.get("options", {})
    unknown = sorted(set(options) - FORMAT_OPTIONS[fmt])
    if unknown:
        raise dataset_error(where, f"option {unknown[0]!r} does not apply to {fmt} files")
    shape = entry.get("shape")
    if shape is not None and (len(shape) != 3 or not all(isinstance(v, int) for v in shape)):
        raise dataset_error(where, "shape must be [n_samples, n_features, n_labels]")
    return DatasetSpec(
        name=name, task=task, format=fmt, description=entry.get("description", ""),
        source=entry.get("source", ""), homepage=entry.get("homepage", ""),
        shape=tuple(shape) if shape else None, data=data, files=tuple(files),
        options=tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items())),
    )


@functools.lru_cache(maxsize=8)
def _read_manifest_cached(path: str, mtime_ns: int) -> dict[str, DatasetSpec]:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise dataset_error(p, f"malformed TOML ({exc})") from None
    except UnicodeDecodeError:
        raise dataset_error(p, "undecodable text: the manifest is not UTF-8") from None
    version = doc.get("format_version", 1)
    if version != 1:
        raise dataset_error(p, f"format_version {version!r} is not supported (expected 1)")
    entries = doc.get("datasets", {})
    specs = {name: _parse_entry(name, entry, p) for name, entry in entries.items()}
    clash = sorted(set(specs) & set(EMBEDDED_SPECS))
    if clash:
        raise dataset_error(p, f"dataset {clash[0]!r} is embedded; pick another name")
    return specs


def read_manifest(path: str | Path | None = None) -> dict[str, DatasetSpec]:
    """The file-based datasets of the manifest; a DatasetError if it is missing or malformed."""
    p = Path(path) if path is not None else paths.REGISTRY_PATH
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        raise dataset_error(p, "the dataset manifest is missing") from None
    return _read_manifest_cached(str(p), mtime)


def manifest_path() -> Path:
    return paths.REGISTRY_PATH


def registry(path: str | Path | None = None) -> dict[str, DatasetSpec]:
    """All datasets by name: the embedded ones, then the manifest's (skipped if the manifest is missing)."""
    specs = dict(EMBEDDED_SPECS)
    p = Path(path) if path is not None else paths.REGISTRY_PATH
    if p.exists():
        specs.update(read_manifest(p))
    return specs


def lookup(name: str, path: str | Path | None = None) -> DatasetSpec | None:
    """The spec named ``name`` (exact, else a unique case-insensitive match), or None."""
    specs = registry(path)
    if name in specs:
        return specs[name]
    folded = [n for n in specs if n.lower() == name.lower()]
    return specs[folded[0]] if len(folded) == 1 else None


def resolve_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name`` (case-insensitive when unique); a DatasetError naming the choices."""
    spec = lookup(name)
    if spec is None:
        specs = registry()
        hint = "" if paths.REGISTRY_PATH.exists() else f" (the manifest {paths.REGISTRY_PATH} is missing, so only embedded sets are known)"
        raise dataset_error(name, f"unknown dataset; known: {', '.join(specs)}{hint}")
    return spec
