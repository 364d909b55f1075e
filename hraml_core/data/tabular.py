"""CSV/TSV (plain or gzipped) and Parquet files, read with pandas, or in blocks with pyarrow.

``label_columns`` picks the label columns by name or index (negative counts from the end); the
default is the last column. The task is detected unless given: one label column -> classification
(string or numeric classes), or multi-label when it holds tag sets (text such as "rock;pop", or
Parquet lists: :func:`labels.tag_sets`); several 0/1 columns -> multi-label; several other numeric
columns -> a label distribution (rows must sum to 1). Every other column is a feature and must be
numeric.
CSV headers are detected: a first row made only of numbers is data, and columns are then named
``c0, c1, ...`` (``header=True/False`` forces the choice). So are the separator (``sep``: a tab
for ``.tsv`` / ``.tab`` files, otherwise the first of ``;`` tab ``|`` ``,`` that splits the first
lines into the same number of fields; a comma when none does) and the decimal mark (``decimal``:
a comma in a file not separated by commas whose numbers are written ``1,5``). A first column with
no name in the header is a row index (pandas' ``to_csv``) and is left out.

Large files (:data:`STREAM_MIN_BYTES` and up on disk), or any file read with ``dtype="float32"``,
are read in blocks and written straight into one feature array, float32 by default for large files
(``dtype="float64"`` keeps float64): CSV through pyarrow's streaming reader, Parquet one column of
one row group at a time. The whole-text path holds the text, a DataFrame and a float64 copy at
once, several times the features' size; the block readers hold the array and one block
(``tests/test_scale_data.py`` measures the peak). ``progress``: True for a tqdm bar on stderr, or
a callable ``progress(done, total)`` (bytes of the file for CSV, values for Parquet).
"""
from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hraml_core.tasks import CLASSIFICATION, MULTILABEL

from .dataset import Dataset
from .errors import dataset_error, plural
from .formats import detect_format
from .labels import TAG_SEPARATORS, prepare_labels, tag_sets
from .textio import ReadProgress, check_file, decode_text, read_bytes

#: Files at least this large on disk are read in blocks into float32 features (see the module docstring).
STREAM_MIN_BYTES = 64 << 20
#: Bytes of CSV text per block of the streaming reader. Small, because the reader fetches dozens
#: of blocks ahead of the consumer: its memory is a multiple of this.
CSV_BLOCK_BYTES = 1 << 20
DTYPES = ("float32", "float64")


def _short_list(items, limit: int = 12) -> str:
    items = [str(i) for i in items]
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _column_indices(names: list[str], columns: list, path, what: str, missing: str = "") -> list[int]:
    """Indices of ``columns`` (names, or indices; negative ones count from the end) in ``names``;
    ``what`` names them in errors, ``missing`` prefixes the errors of a column not there."""
    out: list[int] = []
    for col in columns:
        if isinstance(col, (int, np.integer)) and not isinstance(col, bool):
            if not -len(names) <= col < len(names):
                raise dataset_error(path, f"{missing}{what} index {col} is out of range ({len(names)} columns)")
            idx = int(col) % len(names)
        elif str(col) in names:
            idx = names.index(str(col))
        else:
            raise dataset_error(path, f"{missing}{what} {col!r} not found (columns: {_short_list(names)})")
        if idx in out:
            raise dataset_error(path, f"{what} {col!r} is given twice")
        out.append(idx)
    return out


def _as_list(columns) -> list:
    return [columns] if isinstance(columns, (str, int, np.integer)) else list(columns)


def select_label_columns(names: list[str], label_columns, path) -> list[int]:
    """Indices of the label columns: names or (negative) indices; None means the last column."""
    label_columns = [-1] if label_columns is None else _as_list(label_columns)
    if not label_columns:
        raise dataset_error(path, "missing labels: label_columns is empty")
    return _column_indices(names, label_columns, path, "label column", missing="missing labels: ")


def _check_names(names: list[str], path) -> None:
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise dataset_error(path, f"duplicate column name {dup!r}")


def _split_columns(names: list[str], label_columns, path, ignore_columns=None) -> tuple[list[int], list[int]]:
    """(label column indices, feature column indices): every column that is neither a label nor
    in ``ignore_columns`` is a feature; no feature column is an error."""
    label_idx = select_label_columns(names, label_columns, path)
    ignored = set() if ignore_columns is None else set(_column_indices(names, _as_list(ignore_columns), path,
                                                                       "ignored column"))
    both = sorted(ignored & set(label_idx))
    if both:
        raise dataset_error(path, f"column {names[both[0]]!r} is both a label column and ignored")
    taken = set(label_idx) | ignored
    feature_idx = [j for j in range(len(names)) if j not in taken]
    if not feature_idx:
        raise dataset_error(path, "no feature columns: every column is a label column"
                                  + (" or ignored" if ignored else ""))
    return label_idx, feature_idx


#: Said after a non-numeric feature column's error: how to go on without editing the file.
LEAVE_OUT = "leave it out with ignore_columns (hraml train --ignore-columns)"


def _labelled_dataset(path: Path, X, Y, task: str, names: list[str], label_idx: list[int], feature_idx: list[int], *,
                      name, description, source, dtype) -> Dataset:
    """The Dataset of features X and raw labels Y read from the columns of ``path`` (one column of
    tag sets, "rock;pop" or lists, is a multi-label indicator matrix: :func:`labels.tag_sets`)."""
    tags = tag_sets(Y, task, path) if len(label_idx) == 1 else None
    if tags is not None:
        Y, label_names = tags
        task = MULTILABEL
    else:
        Y, task = prepare_labels(Y, task, path)
        label_names = () if task == CLASSIFICATION else tuple(names[j] for j in label_idx)
    return Dataset(
        name=name or path.name.split(".")[0], X=X, Y=Y, task=task,
        feature_names=tuple(names[j] for j in feature_idx),
        label_names=label_names,
        description=description, source=source or str(path), path=str(path), dtype=dtype,
    )


def frame_to_dataset(df, path: Path, *, label_columns=None, ignore_columns=None, task: str = "auto",
                     name: str | None = None, description: str = "", source: str = "", dtype: str = "float64") -> Dataset:
    """A pandas DataFrame read from ``path`` -> :class:`Dataset`."""
    import pandas as pd

    names = [str(c) for c in df.columns]
    _check_names(names, path)
    if len(df) == 0:
        raise dataset_error(path, "empty: no data rows" + (" (only a header)" if names else ""))
    label_idx, feature_idx = _split_columns(names, label_columns, path, ignore_columns)

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
                f"non-numeric feature column {names[j]!r}: row {bad[0]} (0-based) holds {series.iloc[bad[0]]!r}; "
                + LEAVE_OUT,
            )
    X = feats.to_numpy(dtype=np.dtype(dtype), na_value=np.nan)

    labels = df.iloc[:, label_idx]
    if len(label_idx) == 1:
        col = labels.iloc[:, 0]
        missing = col.isna().to_numpy()
        if missing.any():
            raise dataset_error(path, _missing_labels(names[label_idx[0]], col.to_numpy(dtype=object), missing))
        if pd.api.types.is_numeric_dtype(col):
            Y = col.to_numpy()
        elif isinstance(col.iloc[0], (list, tuple, np.ndarray)):  # lists of tags (Parquet's list<string>)
            Y = col.to_numpy(dtype=object)
        else:
            Y = col.astype(str).to_numpy(dtype=str)
    else:
        for j in label_idx:
            if not pd.api.types.is_numeric_dtype(df.iloc[:, j]):
                raise dataset_error(path, f"label column {names[j]!r} must be numeric when there are several label columns")
        Y = labels.to_numpy(dtype=np.float64, na_value=np.nan)
    return _labelled_dataset(path, X, Y, task, names, label_idx, feature_idx, name=name, description=description,
                             source=source, dtype=dtype)


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


def _first_row_is_data(text: str, sep: str, decimal: str = ".") -> bool:
    first = next((row for row in csv.reader(io.StringIO(text), delimiter=sep) if row), [])
    try:
        for v in first:
            float(v.replace(decimal, "."))
    except ValueError:
        return False
    return bool(first)


def _stream_and_dtype(path: Path, dtype: str | None) -> tuple[bool, str]:
    """(read in blocks?, feature dtype) for a file: large files and float32 requests stream."""
    if dtype is not None and dtype not in DTYPES:
        raise dataset_error(path, f"dtype must be one of {', '.join(DTYPES)} or None, got {dtype!r}")
    check_file(path)
    stream = path.stat().st_size >= STREAM_MIN_BYTES or dtype == "float32"
    return stream, dtype or ("float32" if stream else "float64")


def load_csv(path, *, label_columns=None, ignore_columns=None, task: str = "auto", header: bool | None = None,
             sep: str | None = None, decimal: str | None = None, name: str | None = None, description: str = "",
             source: str = "", dtype: str | None = None,
             progress: bool | Callable[[int, int], object] | None = None) -> Dataset:
    import pandas as pd

    path = Path(path)
    stream, dtype = _stream_and_dtype(path, dtype)
    head = _head_text(_head_bytes(path), path)  # whole lines: the dialect and the header are read from them
    sep = sep or detect_separator(head, path.name)
    decimal = decimal or detect_decimal(head, sep)
    if stream:
        return _stream_csv(path, head, label_columns=label_columns, ignore_columns=ignore_columns, task=task,
                           header=header, sep=sep, decimal=decimal, name=name, description=description, source=source,
                           dtype=dtype, progress=progress)
    text = decode_text(read_bytes(path), path)
    header, read_names, names = _columns_of_head(head, path, sep, decimal, header)
    _check_ragged(text, sep, path, header)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, header=0 if header else None,
                         index_col=0 if len(names) < len(read_names) else False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise dataset_error(path, "the file is empty (no columns)") from None
    except pd.errors.ParserError as exc:
        raise dataset_error(path, f"ragged or malformed rows ({exc})".replace("\n", " ")) from None
    if not header:
        df.columns = [f"c{j}" for j in range(df.shape[1])]
    ds = frame_to_dataset(df, path, label_columns=label_columns, ignore_columns=ignore_columns, task=task, name=name,
                          description=description, source=source, dtype=dtype)
    if progress:
        ReadProgress(progress, 1, path, "B")(1)
    return ds


#: Separators a CSV file's first lines are tried with, in this order (``detect_separator``).
SEPARATORS = (";", "\t", "|", ",")
#: Lines of a file's head that the separator is detected on.
SNIFF_LINES = 50
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+(?:[eE][+-]?\d+)?\s*")
_DECIMAL_POINT = re.compile(r"\s*[+-]?\d*\.\d+(?:[eE][+-]?\d+)?\s*")


def detect_separator(text: str, name: str = "") -> str:
    """The field separator of CSV ``text`` (a file's first lines; ``name``: the file's name).

    A tab for ``.tsv`` / ``.tab`` names; otherwise the first of :data:`SEPARATORS` that splits
    every one of the first lines into the same number of fields, two or more (quoted fields as
    the csv module reads them); a comma when none does (a file of one column). Not
    ``csv.Sniffer``: it takes the comma whenever the comma splits the lines evenly, which a
    semicolon-separated file of decimal commas (``1,5;2,5``) always does.
    """
    if name.lower().removesuffix(".gz").endswith((".tsv", ".tab")):
        return "\t"
    lines = [line for line in text.splitlines() if line.strip()][:SNIFF_LINES]
    for sep in SEPARATORS:
        widths = {len(row) for row in csv.reader(lines, delimiter=sep)}
        if len(widths) == 1 and widths.pop() > 1:
            return sep
    return ","


def detect_decimal(text: str, sep: str) -> str:
    """The decimal mark of CSV ``text`` split by ``sep``: a comma when the separator is not one and
    the first lines hold numbers written with a decimal comma (``1,5``) and none with a point, as
    spreadsheets in many languages save them; else a point."""
    if sep == ",":
        return "."
    fields = [v for row in csv.reader(io.StringIO("\n".join(text.splitlines()[:SNIFF_LINES])), delimiter=sep)
              for v in row]
    comma = any(_DECIMAL_COMMA.fullmatch(v) for v in fields)
    return "," if comma and not any(_DECIMAL_POINT.fullmatch(v) for v in fields) else "."


def column_names_of_bytes(content: bytes, name: str, *, sep: str | None = None, header: bool | None = None) -> list[str]:
    """The column names the readers give a CSV or Parquet file holding ``content`` and called
    ``name`` (``.parquet`` / ``.pq``: Parquet, from its schema; ``.gz``: gzipped CSV; a CSV
    without a header: ``c0, c1, ...``). Only the head of a CSV is read: for choosing label columns
    before reading the file, e.g. an upload."""
    path = Path(name)
    if detect_format(path) == "parquet":
        return _parquet_names(io.BytesIO(content), path)
    if path.name.lower().endswith(".gz"):
        import zlib

        try:
            with gzip.GzipFile(fileobj=io.BytesIO(content)) as f:
                content = f.read(HEAD_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            raise dataset_error(path, f"not a readable gzip file ({exc})") from None
    return _column_names(content[:HEAD_BYTES], path, sep, header)


def _column_names(head: bytes, path: Path, sep: str | None, header: bool | None) -> list[str]:
    """The column names from a file's first bytes (of its text: decompressed)."""
    text = _head_text(head, path)
    sep = sep or detect_separator(text, path.name)
    return _columns_of_head(text, path, sep, detect_decimal(text, sep), header)[2]


def _columns_of_head(text: str, path: Path, sep: str, decimal: str, header: bool | None) -> tuple[bool, list[str], list[str]]:
    """(whether the file has a header, its columns' names, the names of the columns kept) from its
    first lines: a first row of numbers is data (columns ``c0, c1, ...``) unless ``header`` says;
    an unnamed first column of a header is pandas' row index, not kept."""
    first = _first_row(text, path, sep)
    if header is None:
        header = not _first_row_is_data(text, sep, decimal)
    if not header:
        names = [f"c{j}" for j in range(len(first))]
        return False, names, names
    names = [c.strip() for c in first]
    return True, names, names[1:] if _is_index(first) else names


def csv_column_names(path, *, sep: str | None = None, header: bool | None = None) -> list[str]:
    """The column names the block reader gives a CSV file (``c0, c1, ...`` without a header), read
    from its first lines: for choosing label columns before reading the file."""
    path = Path(path)
    check_file(path)
    return _column_names(_head_bytes(path), path, sep, header)


def parquet_column_names(path) -> list[str]:
    """The column names of a Parquet file, from its schema (no data read)."""
    return _parquet_names(Path(path), Path(path))


def _parquet_names(source, path: Path) -> list[str]:
    """The column names in the schema of the Parquet file ``source`` (a path or a file object)."""
    try:
        import pyarrow.parquet as pq

        names = pq.read_schema(source).names
    except ImportError as exc:
        raise dataset_error(path, f"reading Parquet needs pyarrow ({exc})") from None
    except Exception as exc:  # pyarrow.ArrowInvalid and friends
        raise dataset_error(path, f"unreadable or truncated Parquet file ({type(exc).__name__}: {exc})") from None
    return [n for n in names if not n.startswith("__index_level_")]


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


#: Bytes of a file's head: its header, the separator and the first rows are read from them.
HEAD_BYTES = 1 << 16


def _head_bytes(path: Path) -> bytes:
    """The first :data:`HEAD_BYTES` of the file (of its text, for a gzipped file)."""
    try:
        with _open_binary(path) as f:
            return f.read(HEAD_BYTES)
    except (OSError, EOFError) as exc:
        raise dataset_error(path, f"cannot read the file ({exc})") from None


def _head_text(head: bytes, path: Path) -> str:
    """A file's first bytes as text (:func:`~hraml_core.data.textio.decode_text`: strict UTF-8, as
    the whole-text path), cut after their last full line when the file goes on."""
    cut = head.rfind(b"\n")
    return decode_text(head[: cut + 1] if cut >= 0 and len(head) >= HEAD_BYTES else head, path)


def _is_index(header: list[str]) -> bool:
    """Whether a header's first column is a row index: no name, as pandas' ``to_csv`` writes its
    index. It is left out (a row number is no feature, and would give away sorted classes)."""
    return len(header) > 1 and not header[0].strip()


def _first_row(text: str, path: Path, sep: str) -> list[str]:
    first = next((row for row in csv.reader(io.StringIO(text), delimiter=sep) if row), [])
    if not first:
        raise dataset_error(path, "the file is empty (only whitespace)")
    return first


def _stream_csv(path: Path, text: str, *, label_columns, ignore_columns, task, header, sep, decimal, name, description,
                source, dtype, progress) -> Dataset:
    """A large CSV in blocks: pyarrow's streaming reader, features converted block by block
    (``text``: the file's head)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header, read_names, names = _columns_of_head(text, path, sep, decimal, header)
    _check_names(names, path)
    label_idx, feature_idx = _split_columns(names, label_columns, path, ignore_columns)
    # Features parse straight to float32/64; one label column is read as text (classes may be
    # names) and turned into numbers below when every value is one; several must be numbers.
    types = {names[j]: pa.from_numpy_dtype(np.dtype(dtype)) for j in feature_idx}
    types.update({names[j]: pa.string() if len(label_idx) == 1 else pa.float64() for j in label_idx})
    raw = open(path, "rb")
    size = path.stat().st_size
    report = ReadProgress(progress, size, path, "B")
    # Rows are written into one array sized from the first lines' bytes per row (with room to
    # spare: pages never written take no memory), grown by half when short; no second copy of
    # the whole array unless the estimate was off (gzip: the text is about 3-4x the file).
    per_row = max(1.0, len(text.encode()) / max(1, text.count("\n")))
    expand = 4.0 if path.name.lower().endswith(".gz") else 1.0
    X = np.empty((int(size * expand / per_row * 1.1) + 1024, len(feature_idx)), dtype=dtype)
    label_chunks, at = [], 0
    try:
        source_stream = pa.CompressedInputStream(raw, "gzip") if path.name.lower().endswith(".gz") else raw
        reader = pacsv.open_csv(
            source_stream,
            read_options=pacsv.ReadOptions(column_names=read_names, skip_rows=1 if header else 0,
                                           block_size=CSV_BLOCK_BYTES, encoding="utf8", use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=sep),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, decimal_point=decimal,
                                                 include_columns=[names[j] for j in feature_idx + label_idx]),
        )
        for batch in reader:
            m = batch.num_rows
            if at + m > len(X):
                grown = np.empty((max(at + m, int(len(X) * 1.5)), X.shape[1]), dtype=dtype)
                grown[:at] = X[:at]
                X = grown
            for k, j in enumerate(feature_idx):  # by name: the batch holds the columns read, in its order
                X[at : at + m, k] = batch.column(names[j]).to_numpy(zero_copy_only=False)
            label_chunks.append([batch.column(names[j]) for j in label_idx])
            at += m
            report(raw.tell())
    except pa.ArrowInvalid as exc:
        raise dataset_error(path, _arrow_csv_problem(str(exc), read_names)) from None
    except (OSError, EOFError) as exc:
        raise dataset_error(path, f"cannot read the file ({exc})") from None
    finally:
        raw.close()
        report.close()
    if at == 0:
        raise dataset_error(path, "empty: no data rows" + (" (only a header)" if header else ""))
    X = X[:at]  # a view: C-contiguous, the unused tail never touched
    columns = [pa.chunked_array([chunk[k] for chunk in label_chunks]) for k in range(len(label_idx))]
    Y = _stream_labels(columns, [names[j] for j in label_idx], path)
    return _labelled_dataset(path, X, Y, task, names, label_idx, feature_idx, name=name, description=description,
                             source=source, dtype=dtype)


def _arrow_csv_problem(message: str, names: list[str]) -> str:
    """pyarrow's parse / conversion error, with the column named."""
    found = re.search(r"column #(\d+)", message)
    if found and int(found.group(1)) < len(names):
        col = names[int(found.group(1))]
        if "conversion error" in message:
            value = re.search(r"invalid value (.*)$", message)
            return f"non-numeric value in column {col!r}: {value.group(1) if value else message}; {LEAVE_OUT}"
        return f"column {col!r}: {message}"
    if "Expected" in message and "columns" in message:
        return f"ragged rows: {message}"
    return f"malformed CSV ({message})"


def _missing_labels(name: str, values: np.ndarray, missing: np.ndarray) -> str:
    """The error for empty cells of a one-column label; in a column of tag sets (other cells join
    tags with a separator), an empty cell may have meant "no tag", which is written as a lone
    separator."""
    rows = np.flatnonzero(missing)
    message = (f"missing labels in column {name!r}: {plural(len(rows), 'row')} without a label, "
               f"the first is row {rows[0]} (0-based)")
    text = [v for v in values[~missing][:10_000] if isinstance(v, str)]
    sep = next((s for s in TAG_SEPARATORS if any(s in v for v in text)), None)
    if sep is not None:
        message += f"; in this column of tag sets, a row with no tag is written as a lone {sep!r}"
    return message


def _stream_labels(columns, names: list[str], path: Path) -> np.ndarray:
    """Label columns read in blocks -> the array frame_to_dataset would give."""
    import pandas as pd

    if len(columns) == 1:
        values = columns[0].to_numpy(zero_copy_only=False)
        missing = pd.isna(values)
        if missing.any():
            raise dataset_error(path, _missing_labels(names[0], values, missing))
        text = pd.Series(values, dtype=object).str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        if not numbers.isna().any():
            return numbers.to_numpy()
        return text.to_numpy(dtype=str)
    return np.column_stack([c.to_numpy(zero_copy_only=False) for c in columns]).astype(np.float64)


def load_parquet(path, *, label_columns=None, ignore_columns=None, task: str = "auto", name: str | None = None,
                 description: str = "", source: str = "", dtype: str | None = None,
                 progress: bool | Callable[[int, int], object] | None = None) -> Dataset:
    import pandas as pd

    path = Path(path)
    stream, dtype = _stream_and_dtype(path, dtype)
    if stream:
        return _stream_parquet(path, label_columns=label_columns, ignore_columns=ignore_columns, task=task, name=name,
                               description=description, source=source, dtype=dtype, progress=progress)
    try:
        df = pd.read_parquet(path)
    except ImportError as exc:
        raise dataset_error(path, f"reading Parquet needs pyarrow ({exc})") from None
    except Exception as exc:  # pyarrow.ArrowInvalid and friends
        raise dataset_error(path, f"unreadable or truncated Parquet file ({type(exc).__name__}: {exc})") from None
    ds = frame_to_dataset(df, path, label_columns=label_columns, ignore_columns=ignore_columns, task=task, name=name,
                          description=description, source=source, dtype=dtype)
    if progress:
        ReadProgress(progress, len(df), path, "rows")(len(df))
    return ds


def _stream_parquet(path: Path, *, label_columns, ignore_columns, task, name, description, source, dtype,
                    progress) -> Dataset:
    """A large Parquet file by record batches into one preallocated feature array."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise dataset_error(path, f"reading Parquet needs pyarrow ({exc})") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow.ArrowInvalid and friends
        raise dataset_error(path, f"unreadable or truncated Parquet file ({type(exc).__name__}: {exc})") from None
    schema = pf.schema_arrow
    names = [f.name for f in schema if not f.name.startswith("__index_level_")]
    _check_names(names, path)
    n = pf.metadata.num_rows
    if n == 0:
        raise dataset_error(path, "empty: no data rows")
    label_idx, feature_idx = _split_columns(names, label_columns, path, ignore_columns)
    for j in feature_idx:
        t = schema.field(names[j]).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise dataset_error(path, f"non-numeric feature column {names[j]!r} (type {t}); {LEAVE_OUT}")
    if len(label_idx) > 1:
        for j in label_idx:
            t = schema.field(names[j]).type
            if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
                raise dataset_error(path, f"label column {names[j]!r} must be numeric when there are several label columns")
    X = np.empty((n, len(feature_idx)), dtype=dtype)
    label_parts: list[list] = [[] for _ in label_idx]
    groups = pf.metadata.num_row_groups
    report = ReadProgress(progress, n * (len(feature_idx) + len(label_idx)), path, "values")
    at = done = 0
    try:
        # One column of one row group at a time: a batch of every column would decode the whole
        # row group first (pyarrow writes up to a million rows per group), several times the array.
        for g in range(groups):
            m = pf.metadata.row_group(g).num_rows
            for k, j in enumerate(feature_idx):
                X[at : at + m, k] = pf.read_row_group(g, columns=[names[j]]).column(0).to_numpy()
                done += m
                report(done)
            for part, j in zip(label_parts, label_idx):
                part.extend(pf.read_row_group(g, columns=[names[j]]).column(0).chunks)
                done += m
                report(done)
            at += m
    except Exception as exc:  # pyarrow.ArrowInvalid and friends: a truncated or corrupt file
        raise dataset_error(path, f"unreadable or truncated Parquet file ({type(exc).__name__}: {exc})") from None
    finally:
        report.close()
    columns = [pa.chunked_array(part, type=schema.field(names[j]).type) for part, j in zip(label_parts, label_idx)]
    if len(label_idx) == 1 and not pa.types.is_string(columns[0].type) and not pa.types.is_large_string(columns[0].type):
        Y = columns[0].to_numpy(zero_copy_only=False)
        if Y.dtype.kind == "f" and np.isnan(Y).any():
            rows_missing = np.flatnonzero(np.isnan(Y))
            raise dataset_error(
                path, f"missing labels in column {names[label_idx[0]]!r}: {plural(len(rows_missing), 'row')} without a "
                f"label, the first is row {rows_missing[0]} (0-based)",
            )
    else:
        Y = _stream_labels(columns, [names[j] for j in label_idx], path)
    return _labelled_dataset(path, X, Y, task, names, label_idx, feature_idx, name=name, description=description,
                             source=source, dtype=dtype)
