"""Data file formats: which reader a file's extension names (one table, used by the loaders and
the readers that take a file's name, such as an upload's column picker)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import dataset_error

#: extension (lower case, ``.gz`` stripped for text formats) -> format name
EXTENSIONS = {
    ".mat": "mat",
    ".arff": "arff",
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".svm": "svmlight",
    ".svmlight": "svmlight",
    ".libsvm": "svmlight",
}
FORMATS = ("mat", "arff", "csv", "parquet", "svmlight")


def detect_format(path: Path) -> str:
    """The format of ``path`` from its extension; unknown extensions raise a DatasetError."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    stem = name[:-3] if gz else name
    ext = os.path.splitext(stem)[1]
    fmt = EXTENSIONS.get(ext)
    if fmt is None or (gz and fmt in ("mat", "parquet")):
        shown = ext + (".gz" if gz else "") if ext else "(none)"
        raise dataset_error(
            path,
            f"unknown format: extension {shown} is not one of {', '.join(sorted(EXTENSIONS))} "
            "(text formats may also be gzipped, e.g. .arff.gz); choose one with format= (hraml train --format)",
        )
    return fmt
