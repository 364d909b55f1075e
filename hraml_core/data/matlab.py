"""MATLAB ``.mat`` files (v4-v7, read with :func:`scipy.io.loadmat`).

Layouts recognised (first match wins; names are matched exactly, then case-insensitively):
``fea``/``gnd`` (the Deng Cai collection), ``X``/``Y`` (the ``*_uni`` collection),
``features``/``labels`` (Geng's LDL benchmark), ``data``/``label(s)``, ``x``/``y``; or name them with
``x_var``/``y_var``. Labels as a column or row vector are class labels; a 0/1 (or -1/1) matrix is
multi-label, any other numeric matrix a label distribution. Sparse features stay sparse (CSR).
Labels stored transposed (labels x samples) are turned round when that is unambiguous.
MATLAB v7.3 files are HDF5, which scipy does not read; they raise a DatasetError that says so.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import dataset_error
from .labels import prepare_labels
from .textio import check_file

LAYOUTS = (("fea", "gnd"), ("X", "Y"), ("features", "labels"), ("data", "labels"), ("data", "label"), ("x", "y"))


def _find_layout(names: list[str], x_var, y_var, path) -> tuple[str, str]:
    if x_var or y_var:
        missing = [v for v in (x_var, y_var) if v and v not in names]
        if missing:
            raise dataset_error(path, f"variable {missing[0]!r} not found; the file has {', '.join(names) or 'none'}")
        if not (x_var and y_var):
            raise dataset_error(path, "give both x_var and y_var (the feature and the label variable)")
        return x_var, y_var
    for match in (lambda a, b: a == b, lambda a, b: a.lower() == b.lower()):
        for fx, fy in LAYOUTS:
            xs = [n for n in names if match(n, fx)]
            ys = [n for n in names if match(n, fy)]
            if len(xs) == 1 and len(ys) == 1:
                return xs[0], ys[0]
    for fx, fy in LAYOUTS:  # features present, labels absent: say so precisely
        if any(n.lower() == fx.lower() for n in names):
            raise dataset_error(
                path,
                f"missing labels: found the feature variable {fx!r} but no label variable {fy!r} "
                f"(variables: {', '.join(names)})",
            )
    raise dataset_error(
        path,
        "no known feature/label variables (fea/gnd, X/Y, features/labels); the file has "
        f"{', '.join(names) or 'no variables'}; pass x_var= and y_var=",
    )


def _mat_version(raw_head: bytes) -> str | None:
    if raw_head.startswith(b"MATLAB 7.3") or raw_head.startswith(b"\x89HDF"):
        return "7.3"
    if len(raw_head) >= 128 and raw_head[124:128] in (b"\x00\x02IM", b"\x02\x00MI"):
        return "7.3"
    return None


def load_mat(path, *, task: str = "auto", x_var: str | None = None, y_var: str | None = None,
             name: str | None = None, description: str = "", source: str = "") -> Dataset:
    import scipy.io

    path = Path(path)
    check_file(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
    except OSError as exc:
        raise dataset_error(path, f"cannot read the file: {exc.strerror or exc}") from None
    if _mat_version(head) == "7.3":
        have = "is installed but not used by this loader" if importlib.util.find_spec("h5py") else "is not installed"
        raise dataset_error(
            path,
            f"MATLAB v7.3 (HDF5) .mat files are not supported: reading them needs h5py, which {have}; "
            "re-save it in MATLAB with save(..., '-v7')",
        )
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError as exc:  # scipy's own v7.3 detection
        raise dataset_error(path, f"MATLAB v7.3 (HDF5) .mat files are not supported (h5py is not installed): {exc}") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, zlib.error... on bad bytes
        raise dataset_error(path, f"unreadable or truncated .mat file ({type(exc).__name__}: {exc})") from None
    names = [k for k in mat if not k.startswith("__")]
    xv, yv = _find_layout(names, x_var, y_var, path)
    X, Y = mat[xv], mat[yv]
    if not hasattr(X, "tocsr"):
        X = np.asarray(X)
    if hasattr(Y, "toarray"):
        Y = Y.toarray()
    Y = np.asarray(Y)
    if X.dtype.kind not in "biuf" or Y.dtype.kind not in "biufUS":
        bad, arr = (xv, X) if X.dtype.kind not in "biuf" else (yv, Y)
        what = {"U": "text (char array)", "S": "text (char array)", "O": "a cell array or struct"}.get(arr.dtype.kind, f"of dtype {arr.dtype}")
        raise dataset_error(path, f"non-numeric data: variable {bad!r} is {what}")
    if X.ndim != 2:
        raise dataset_error(path, f"feature variable {xv!r} must be a 2-D matrix, got shape {X.shape}")
    n = X.shape[0]
    if Y.ndim == 2 and Y.shape[0] != n and Y.shape[1] == n:
        Y = Y.T  # a row vector, or labels stored as (n_labels, n_samples)
    if Y.ndim == 2 and min(Y.shape) == 1 and task in ("auto", "classification"):
        Y = Y.reshape(-1)  # a label vector (its length is then checked against X)
    Y, task = prepare_labels(Y, task, path)
    return Dataset(
        name=name or path.name.split(".")[0], X=X, Y=Y, task=task,
        description=description, source=source or str(path), path=str(path),
    )
