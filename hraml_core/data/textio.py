"""Reading a data file's bytes (gunzipping ``.gz``) and decoding text strictly as UTF-8."""
from __future__ import annotations

import gzip
import sys
import zlib
from pathlib import Path

from .errors import dataset_error


def check_file(path: Path) -> None:
    """Raise a DatasetError unless ``path`` is an existing, non-empty regular file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise dataset_error(path, "file not found") from None
    except OSError as exc:
        raise dataset_error(path, f"cannot read the file: {exc.strerror or exc}") from None
    if path.is_dir():
        raise dataset_error(path, "is a directory, not a data file")
    if size == 0:
        raise dataset_error(path, "the file is empty (0 bytes)")


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when its name ends in ``.gz``; empty files are an error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise dataset_error(path, "file not found") from None
    except IsADirectoryError:
        raise dataset_error(path, "is a directory, not a data file") from None
    except OSError as exc:
        raise dataset_error(path, f"cannot read the file: {exc.strerror or exc}") from None
    if not raw:
        raise dataset_error(path, "the file is empty (0 bytes)")
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise dataset_error(path, "truncated gzip file (the compressed stream ends early)") from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise dataset_error(path, f"not a valid gzip file ({exc})") from None
        if not raw:
            raise dataset_error(path, "the file is empty (its gzip content has 0 bytes)")
    return raw


def decode_text(raw: bytes, path: Path) -> str:
    """``raw`` as UTF-8 text (a BOM is dropped); binary data and other encodings are an error."""
    if b"\x00" in raw[:65536]:
        raise dataset_error(path, "undecodable text: the file holds binary data (NUL bytes), not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise dataset_error(
            path,
            f"undecodable text: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}, "
            f"line {line}); re-save the file as UTF-8",
        ) from None
    if not text.strip():
        raise dataset_error(path, "the file is empty (only whitespace)")
    return text


def read_text(path: Path) -> str:
    return decode_text(read_bytes(path), path)


class ReadProgress:
    """``progress`` as given to a loader, called with the amount read so far: None/False (nothing), True
    (a tqdm bar on stderr), or a callable ``progress(done, total)``."""

    def __init__(self, progress, total: int, path: Path, unit: str):
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, unit_scale=True, desc=f"reading {path.name}", file=sys.stderr,
                            leave=False, mininterval=0.5)
        self.total = total
        self.done = 0

    def __call__(self, done: int) -> None:
        # Never backwards: a CSV's position is read while pyarrow's read-ahead thread moves it, and
        # a read caught mid-way can report less than the call before.
        done = self.done = max(done, self.done)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        if self.callback is not None:
            self.callback(done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
