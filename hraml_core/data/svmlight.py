"""svmlight / LIBSVM files: ``label index:value index:value ...``, one sample per line.

The format large sparse sets are published in (LIBSVM's rcv1, news20, real-sim; Mulan's and
LIBSVM's multi-label sets, where a line's labels are written ``2,7,11``). Read by scikit-learn's
``load_svmlight_file`` (a parser in C) into a CSR matrix, which HRAML trains on as it is.

A file is read as multi-label when a line's label field holds a comma (or is empty: a line with no
labels); otherwise each line's label is its class. Feature indices may start at 0 or 1
(scikit-learn's ``zero_based="auto"``: 1-based unless a 0 index occurs, over the whole file).
``.gz`` files are read gunzipped.

The file is parsed in blocks of whole lines (:data:`BLOCK_BYTES`), so that a large file reports
its progress and its text is never held whole beside the matrix; scikit-learn's parser takes one
block at a time, and the blocks' rows are joined at the end.
"""
from __future__ import annotations

import gzip
import io
import re
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .dataset import Dataset
from .errors import dataset_error
from .labels import prepare_labels
from .textio import ReadProgress, check_file

#: A line whose first field (the labels) holds a comma, or that starts with a feature (no labels).
_MULTILABEL_LINE = re.compile(rb"(?m)^[ \t]*(?:[^\s#:]*,|[0-9]+:)")
#: Text parsed at a time (a block ends at a line's end).
BLOCK_BYTES = 32 * 2**20


def load_svmlight(path, *, task: str = "auto", name: str | None = None, description: str = "",
                  source: str = "", progress=None) -> Dataset:
    """Read an svmlight / LIBSVM file (see the module docstring) into a :class:`Dataset` with sparse
    X. ``progress``: True for a tqdm bar, or a callable ``progress(done, total)`` in bytes of the
    file (of the compressed file for ``.gz``)."""
    from sklearn.datasets import load_svmlight_file
    from sklearn.preprocessing import MultiLabelBinarizer

    path = Path(path)
    check_file(path)
    report = ReadProgress(progress, path.stat().st_size, path, "B")
    multilabel = task == "multilabel"
    blocks, labels = [], []
    try:
        for text, done in _line_blocks(path):
            if not blocks and b"\x00" in text[:65536]:
                raise dataset_error(path, "not an svmlight file: it holds binary data (NUL bytes)")
            multilabel = multilabel or (task == "auto" and _MULTILABEL_LINE.search(text) is not None)
            try:  # indices as written; every label as a tuple, so that any block may turn the file multi-label
                X, y = load_svmlight_file(io.BytesIO(text), multilabel=True, dtype=np.float64, zero_based=True)
            except (ValueError, RuntimeError) as exc:  # scikit-learn's parser says what it could not read
                raise dataset_error(path, f"not a valid svmlight file: {exc}") from None
            blocks.append(X)
            labels.extend(y)
            report(done)
    finally:
        report.close()
    X = _join(blocks)
    if X.shape[0] == 0:
        raise dataset_error(path, "empty: no data lines")
    label_names: tuple = ()
    if multilabel:
        binarizer = MultiLabelBinarizer()
        Y = binarizer.fit_transform([tuple(int(v) if float(v).is_integer() else v for v in ls) for ls in labels])
        label_names = tuple(str(c) for c in binarizer.classes_)
        if Y.shape[1] == 1:
            raise dataset_error(path, f"label sets of one label ({label_names[0]}): each line holds it or nothing, "
                                      "which is two classes; write each line's class instead")
    else:  # one label a line: no comma was found, unless task="classification" asked for classes
        bad = next((i for i, ls in enumerate(labels) if len(ls) != 1), None)
        if bad is not None:
            raise dataset_error(path, f"data line {bad + 1} holds {len(labels[bad])} labels: classes need one a line "
                                      "(label sets are read with task='multilabel' or 'auto')")
        Y = np.array([ls[0] for ls in labels], dtype=np.float64)
    del labels
    Y, task = prepare_labels(Y, task, path)
    return Dataset(
        name=name or path.name.split(".")[0], X=X, Y=Y, task=task, label_names=label_names,
        description=description, source=source or str(path), path=str(path),
    )


def _line_blocks(path: Path):
    """``(text, done)`` pairs: blocks of whole lines of the file (gunzipped for ``.gz``), and the
    bytes of the file read so far."""
    gz = path.name.lower().endswith(".gz")
    with open(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if gz else raw
        rest = b""
        try:
            while True:
                chunk = stream.read(BLOCK_BYTES)
                if not chunk:
                    break
                text = rest + chunk
                cut = text.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a block: read on
                    rest = text
                    continue
                rest = text[cut:]
                yield text[:cut], raw.tell()
        except EOFError:
            raise dataset_error(path, "truncated gzip file (the compressed stream ends early)") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise dataset_error(path, f"not a valid gzip file ({exc})") from None
        except OSError as exc:
            raise dataset_error(path, f"cannot read the file: {exc.strerror or exc}") from None
        if rest.strip():
            yield rest + b"\n", raw.tell()


def _join(blocks: list) -> sp.csr_matrix:
    """The blocks' rows as one CSR matrix, as wide as the widest; indices shifted down by one when
    none is 0 (1-based, LIBSVM's own convention)."""
    width = max((X.shape[1] for X in blocks), default=0)
    one_based = all(X.indices.min(initial=1) >= 1 for X in blocks)
    rows = sum(X.shape[0] for X in blocks)
    nnz = sum(X.nnz for X in blocks)
    data = np.empty(nnz, dtype=np.float64)
    indices = np.empty(nnz, dtype=np.int64 if width > np.iinfo(np.int32).max else np.int32)
    indptr = np.zeros(rows + 1, dtype=np.int64 if nnz > np.iinfo(np.int32).max else np.int32)
    row = at = 0
    while blocks:
        X = blocks.pop(0)  # freed as it is copied
        data[at : at + X.nnz] = X.data
        indices[at : at + X.nnz] = X.indices
        indptr[row + 1 : row + 1 + X.shape[0]] = X.indptr[1:] + at
        row, at = row + X.shape[0], at + X.nnz
    if one_based and nnz:
        indices -= 1
        width -= 1
    return sp.csr_matrix((data, indices, indptr), shape=(rows, max(width, 0)))
