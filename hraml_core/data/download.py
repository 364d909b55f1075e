"""Fetching a missing file-based dataset from its public source, verified by sha256.

URLs: the registry's per-file ``url``, unless a base URL is given (``url_base`` argument >
``HRAML_DATASETS_URL``), in which case file ``F`` of dataset ``NAME`` is fetched from
``<base>/NAME/F`` -- the layout of ``../shared/data``, so a mirror of it (or a loopback HTTP server
in tests) can stand in for the origins. Each file is streamed into a temporary file beside its
target, hashed on the way, checked against the registry's sha256 and only then renamed into
place; a file already present with the right hash is not fetched again.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from . import paths
from .errors import dataset_error
from .registry import resolve_spec
from .spec import DatasetSpec, FileSpec

CHUNK = 1 << 16
TIMEOUT_S = 60
USER_AGENT = "hraml-explorer (dataset download)"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_url(spec: DatasetSpec, f: FileSpec, url_base: str | None = None) -> str:
    """Where file ``f`` of ``spec`` is fetched from (see the module docstring)."""
    base = url_base if url_base else os.environ.get(paths.ENV_DATASETS_URL, "").strip()
    if base:
        return f"{base.rstrip('/')}/{urllib.parse.quote(spec.name)}/{urllib.parse.quote(f.name)}"
    if not f.url:
        raise dataset_error(spec.name, f"the registry gives no download URL for {f.name}; pass --url-base")
    return f.url


def _fetch(url: str, target: Path, f: FileSpec, progress: bool) -> str:
    """Stream ``url`` into a temporary file beside ``target``, verify, rename; returns the sha256."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        received = 0
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else f.size
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                          disable=not progress, file=sys.stderr, leave=True) as bar:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        out.write(block)
                        h.update(block)
                        received += len(block)
                        bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            raise dataset_error(url, f"download failed: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise dataset_error(url, f"download failed: {exc.reason}") from None
        except (TimeoutError, OSError) as exc:
            raise dataset_error(url, f"download failed: {exc}") from None
        if length and length.isdigit() and received != int(length):
            raise dataset_error(url, f"truncated download: got {received} of {length} bytes")
        got = h.hexdigest()
        if f.sha256 and got != f.sha256:
            raise dataset_error(
                target, f"sha256 mismatch for the file downloaded from {url}: expected {f.sha256}, got {got} "
                        "(the partial file was deleted)"
            )
        os.replace(tmp, target)
        return got
    finally:
        if tmp.exists():
            tmp.unlink()


def download_dataset(name: str, data_dir=None, url_base: str | None = None, progress: bool = True,
                     log=None) -> Path:
    """Fetch the files of dataset ``name`` into ``<data_dir>/<name>/``; returns that folder.

    Files already present with the registry's sha256 are kept; others are (re-)downloaded, verified
    and renamed into place. ``log`` (e.g. ``print``) receives one line per file.
    """
    spec = resolve_spec(name)
    if spec.embedded:
        raise dataset_error(spec.name, "is embedded (it ships with the code); there is nothing to download")
    if not spec.files:
        raise dataset_error(spec.name, "the registry lists no files to download")
    folder = paths.data_dir(data_dir) / spec.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise dataset_error(folder, f"cannot create the dataset folder: {exc.strerror or exc}") from None
    say = log or (lambda _msg: None)
    for f in spec.files:
        target = folder / f.name
        if target.is_file() and f.sha256 and file_sha256(target) == f.sha256:
            say(f"{spec.name}/{f.name}: already present, sha256 ok")
            continue
        if target.exists():
            say(f"{spec.name}/{f.name}: present but its sha256 does not match; downloading it again")
        url = file_url(spec, f, url_base)
        got = _fetch(url, target, f, progress)
        say(f"{spec.name}/{f.name}: downloaded from {url} (sha256 {got[:12]}...{' verified' if f.sha256 else ' not checked: none in the registry'})")
    return folder
