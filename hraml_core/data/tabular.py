"""CSV/TSV (plain or gzipped) and Parquet files, read with pandas.

``label_columns`` picks the label columns by name or index (negative counts from the end); the
default is the last column. The task is detected unless given: one label column -> classification
(string or numeric classes); several 0/1 columns -> multi-label; several other numeric columns ->
a label distribution (rows must sum to 1). Every other column is a feature and must be numeric.
CSV headers are detected: a first row made only of numbers is data, and columns are then named
``c0, c1, ...`` (``header=True/False`` forces the choice).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import dataset_error, plural
from .labels import prepare_labels
from .textio import check_file, decode_text, read_bytes


def _short_list(items, limit: int = 12) -> str:
    items = [str(i) for i in items]
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def select_label_columns(names: list[str], label_columns, path) -> list[int]:
    """Indices of the label columns: names or (negative) indices; None means the last column."""
    if label_columns is None:
        label_columns = [-1]
    elif isinstance(label_columns, (str, int, np.integer)):
        label_columns = [label_columns]
    label_columns = list(label_columns)
    if not label_columns:
        raise dataset_error(path, "missing labels: label_columns is empty")
    out: list[int] = []
    for col in label_columns:
        if isinstance(col, (int, np.integer)) and not isinstance(col, bool):
            if not -len(names) <= col < len(names):
                raise dataset_error(path, f"missing labels: label column index {col} is out of range ({len(names)} columns)")
            idx = int(col) % len(names)
        elif str(col) in names:
            idx = names.index(str(col))
        else:
            raise dataset_error(
                path, f"missing labels: label column {col!r} not found (columns: {_short_list(names)})"
            )
        if idx in out:
            raise dataset_error(path, f"label column {col!r} is given twice")
        out.append(idx)
    return out


def frame_to_dataset(df, path: Path, *, label_columns=None, task: str = "auto", name: str | None = None,
                     description: str = "", source: str = "") -> Dataset:
    """A pandas DataFrame read from ``path`` -> :class:`Dataset`."""
    import pandas as pd

    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise dataset_error(path, f"duplicate column name {dup!r}")
    if len(df) == 0:
        raise dataset_error(path, "empty: no data rows" + (" (only a header)" if names else ""))
    label_idx = select_label_columns(names, label_columns, path)
    feature_idx = [j for j in range(len(names)) if j not in set(label_idx)]
    if not feature_idx:
        raise dataset_error(path, "no feature columns: every column is a label column")

    feats = df.iloc[:, feature_idx]
    for j, col in zip(feature_idx, feats.columns):
        series = feats[col]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            coerced = pd.to_numeric(series, errors="coerce")
            bad = np.flatnonzero(coerced.isna().to_numpy() & series.notna().to_numpy())
            if len(bad) == 0:  # only missing values, e.g. an all-empty column
                feats = feats.assign(**{col: coerced})
                continue
            raise dataset_error(
                path,
                f"non-numeric feature column {names[j]!r}: row {bad[0]} (0-based) holds {series.iloc[bad[0]]!r}",
            )
    X = feats.to_numpy(dtype=np.float64, na_value=np.nan)

    labels = df.iloc[:, label_idx]
    if len(label_idx) == 1:
        col = labels.iloc[:, 0]
        missing = col.isna().to_numpy()
        if missing.any():
            rows = np.flatnonzero(missing)
            raise dataset_error(
                path,
                f"missing labels in column {names[label_idx[0]]!r}: {plural(len(rows), 'row')} without a label, "
                f"the first is row {rows[0]} (0-based)",
            )
        Y = col.to_numpy() if pd.api.types.is_numeric_dtype(col) else col.astype(str).to_numpy(dtype=str)
    else:
        for j in label_idx:
            if not pd.api.types.is_numeric_dtype(df.iloc[:, j]):
                raise dataset_error(path, f"label column {names[j]!r} must be numeric when there are several label columns")
        Y = labels.to_numpy(dtype=np.float64, na_value=np.nan)
    Y, task = prepare_labels(Y, task, path)
    return Dataset(
        name=name or path.name.split(".")[0], X=X, Y=Y, task=task,
        feature_names=tuple(names[j] for j in feature_idx),
        label_names=() if task == "classification" else tuple(names[j] for j in label_idx),
        description=description, source=source or str(path), path=str(path),
    )


def _check_ragged(text: str, sep: str, path: Path, has_header: bool) -> None:
    expected = None
    for lineno, row in enumerate(csv.reader(io.StringIO(text), delimiter=sep), start=1):
        if not row:
            continue
        if expected is None:
            expected = len(row)
        elif len(row) != expected:
            what = "the header has" if has_header else "the first row has"
            raise dataset_error(
                path, f"ragged rows: line {lineno} has {len(row)} fields but {what} {expected}"
            )


def _first_row_is_data(text: str, sep: str) -> bool:
    first = next((row for row in csv.reader(io.StringIO(text), delimiter=sep) if row), [])
    try:
        for v in first:
            float(v)
    except ValueError:
        return False
    return bool(first)


def load_csv(path, *, label_columns=None, task: str = "auto", header: bool | None = None, sep: str | None = None,
             name: str | None = None, description: str = "", source: str = "") -> Dataset:
    import pandas as pd

    path = Path(path)
    text = decode_text(read_bytes(path), path)
    if sep is None:
        sep = "\t" if path.name.lower().removesuffix(".gz").endswith((".tsv", ".tab")) else ","
    if header is None:
        header = not _first_row_is_data(text, sep)
    _check_ragged(text, sep, path, header)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, index_col=False,
                         skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise dataset_error(path, "the file is empty (no columns)") from None
    except pd.errors.ParserError as exc:
        raise dataset_error(path, f"ragged or malformed rows ({exc})".replace("\n", " ")) from None
    if not header:
        df.columns = [f"c{j}" for j in range(df.shape[1])]
    return frame_to_dataset(df, path, label_columns=label_columns, task=task, name=name,
                            description=description, source=source)


def load_parquet(path, *, label_columns=None, task: str = "auto", name: str | None = None,
                 description: str = "", source: str = "") -> Dataset:
    import pandas as pd

    path = Path(path)
    check_file(path)
    try:
        df = pd.read_parquet(path)
    except ImportError as exc:
        raise dataset_error(path, f"reading Parquet needs pyarrow ({exc})") from None
    except Exception as exc:  # pyarrow.ArrowInvalid and friends
        raise dataset_error(path, f"unreadable or truncated Parquet file ({type(exc).__name__}: {exc})") from None
    return frame_to_dataset(df, path, label_columns=label_columns, task=task, name=name,
                            description=description, source=source)
