"""svmlight / LIBSVM files: ``label index:value index:value ...``, one sample per line.

The format large sparse sets are published in (LIBSVM's rcv1, news20, real-sim; Mulan's and
LIBSVM's multi-label sets, where a line's labels are written ``2,7,11``). Read by scikit-learn's
``load_svmlight_file`` (a parser in C) into a CSR matrix, which HRAML trains on as it is.

A file is read as multi-label when a line's label field holds a comma (or is empty: a line with no
labels); otherwise each line's label is its class. Feature indices may start at 0 or 1
(scikit-learn's ``zero_based="auto"``: 1-based unless a 0 index occurs). ``.gz`` files are read
gunzipped.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import dataset_error
from .labels import prepare_labels
from .textio import read_bytes

#: A line whose first field (the labels) holds a comma, or that starts with a feature (no labels).
_MULTILABEL_LINE = re.compile(rb"(?m)^[ \t]*(?:[^\s#:]*,|[0-9]+:)")


def load_svmlight(path, *, task: str = "auto", name: str | None = None, description: str = "",
                  source: str = "") -> Dataset:
    """Read an svmlight / LIBSVM file (see the module docstring) into a :class:`Dataset` with sparse X."""
    from sklearn.datasets import load_svmlight_file
    from sklearn.preprocessing import MultiLabelBinarizer

    path = Path(path)
    raw = read_bytes(path)
    if b"\x00" in raw[:65536]:
        raise dataset_error(path, "not an svmlight file: it holds binary data (NUL bytes)")
    multilabel = task == "multilabel" or (task == "auto" and _MULTILABEL_LINE.search(raw) is not None)
    try:
        X, y = load_svmlight_file(io.BytesIO(raw), multilabel=multilabel, dtype=np.float64, zero_based="auto")
    except (ValueError, RuntimeError) as exc:  # scikit-learn's parser says which line and what it could not read
        raise dataset_error(path, f"not a valid svmlight file: {exc}") from None
    if X.shape[0] == 0:
        raise dataset_error(path, "empty: no data lines")
    label_names: tuple = ()
    if multilabel:
        binarizer = MultiLabelBinarizer()
        Y = binarizer.fit_transform([tuple(int(v) if float(v).is_integer() else v for v in labels) for labels in y])
        label_names = tuple(str(c) for c in binarizer.classes_)
    else:
        Y = y
    Y, task = prepare_labels(Y, task, path)
    return Dataset(
        name=name or path.name.split(".")[0], X=X.tocsr(), Y=Y, task=task, label_names=label_names,
        description=description, source=source or str(path), path=str(path),
    )
