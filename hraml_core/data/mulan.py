"""ARFF files (plain or gzipped), with Mulan's XML label file for multi-label sets.

Which attributes are labels, in order of precedence: ``labels_xml`` (a Mulan XML file whose
``<label name="..."/>`` elements, namespaced or not, name them); ``label_columns`` (names or
indices); ``n_labels`` (the last ``n`` attributes, Mulan's layout); an XML file beside the ARFF
(``emotions.orig.arff.gz`` -> ``emotions.orig.xml[.gz]`` or ``emotions.xml[.gz]``); else the last
attribute (a Weka-style class).

Nominal attributes arrive from liac-arff as strings. When every declared value looks like a number
(flags: ``{0,1,2}``) they become those numbers; otherwise features get ordinal codes 0, 1, ... in
the declared order, and a class attribute keeps its string values. String attributes must hold
numbers (features). Missing values (``?``) become NaN and are then reported as errors.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import dataset_error
from .labels import prepare_labels
from .tabular import select_label_columns
from .textio import read_bytes, read_text

NUMERIC_TYPES = {"NUMERIC", "REAL", "INTEGER"}


def read_label_names(xml_path) -> list[str]:
    """Label names from a Mulan XML label file (hierarchical ones flattened in document order)."""
    xml_path = Path(xml_path)
    raw = read_bytes(xml_path)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise dataset_error(xml_path, f"malformed or truncated XML label file ({exc})") from None
    names = [el.get("name") for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "label" and el.get("name")]
    if not names:
        raise dataset_error(xml_path, 'missing labels: the XML label file names no <label name="..."/> elements')
    return names


def find_label_xml(path: Path) -> Path | None:
    """The Mulan XML file beside an ARFF file, if there is one."""
    base = path.name
    for ext in (".gz", ".arff"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
    stems = dict.fromkeys([base, base.split(".")[0]])
    for stem in stems:
        for ext in (".xml", ".xml.gz"):
            candidate = path.with_name(stem + ext)
            if candidate.is_file():
                return candidate
    return None


def _looks_numeric(values) -> bool:
    try:
        for v in values:
            float(v)
    except (TypeError, ValueError):
        return False
    return True


def _convert(column: np.ndarray, attr_type, attr_name: str, path: Path, keep_strings: bool) -> np.ndarray:
    """One ARFF column (an object array) -> float64 (or str for a non-numeric class attribute)."""
    missing = np.array([v is None for v in column])
    if isinstance(attr_type, list):  # nominal
        declared = [str(v) for v in attr_type]
        if _looks_numeric(declared):
            table = {d: float(d) for d in declared}
        elif keep_strings:
            out = np.array(["" if v is None else (declared[0] if v == 0 else str(v)) for v in column], dtype=object)
            out[missing] = None
            return out
        else:
            table = {d: float(i) for i, d in enumerate(declared)}
        # a value omitted from a sparse row arrives as 0: the first declared value
        return np.array(
            [np.nan if v is None else table[declared[0]] if (v == 0 and not isinstance(v, str)) else table[str(v)]
             for v in column],
            dtype=np.float64,
        )
    kind = str(attr_type).upper()
    if kind in NUMERIC_TYPES:
        return np.array([np.nan if v is None else v for v in column], dtype=np.float64)
    present = column[~missing]
    if _looks_numeric(present):
        return np.array([np.nan if v is None else float(v) for v in column], dtype=np.float64)
    if keep_strings:
        return column
    bad = next(i for i, v in enumerate(column) if v is not None and not _looks_numeric([v]))
    raise dataset_error(path, f"non-numeric feature {attr_name!r} ({kind} attribute; row {bad}: {column[bad]!r})")


def load_arff(path, *, task: str = "auto", labels_xml=None, label_columns=None, n_labels: int | None = None,
              name: str | None = None, description: str = "", source: str = "") -> Dataset:
    import arff  # liac-arff

    path = Path(path)
    text = read_text(path)
    try:
        data = arff.loads(text)
    except Exception as exc:  # arff.ArffException and what malformed text makes it raise
        raise dataset_error(path, f"malformed or truncated ARFF ({type(exc).__name__}: {exc})") from None
    attrs = data.get("attributes") or []
    rows = data.get("data") or []
    if not attrs:
        raise dataset_error(path, "malformed ARFF: no @attribute declarations")
    if not rows:
        raise dataset_error(path, "empty: the @data section has no rows")
    names = [a[0] for a in attrs]

    if labels_xml is None and label_columns is None and n_labels is None:
        labels_xml = find_label_xml(path)
    if labels_xml is not None:
        wanted = read_label_names(labels_xml)
        absent = [w for w in wanted if w not in names]
        if absent:
            raise dataset_error(
                path,
                f"missing labels: label {absent[0]!r} named in {Path(labels_xml).name} is not an attribute "
                f"({len(absent)} of {len(wanted)} labels absent)",
            )
        label_idx = [names.index(w) for w in wanted]
    elif n_labels is not None:
        if not 0 < int(n_labels) < len(names):
            raise dataset_error(path, f"n_labels={n_labels} must be between 1 and {len(names) - 1}")
        label_idx = list(range(len(names) - int(n_labels), len(names)))
    else:
        label_idx = select_label_columns(names, label_columns, path)
    feature_idx = [j for j in range(len(names)) if j not in set(label_idx)]
    if not feature_idx:
        raise dataset_error(path, "no feature attributes: every attribute is a label")

    table = np.array(rows, dtype=object)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise dataset_error(path, f"ragged rows: expected {len(names)} values per row")
    X = np.column_stack([_convert(table[:, j], attrs[j][1], names[j], path, False) for j in feature_idx])
    single_class = len(label_idx) == 1 and task in ("auto", "classification")
    Y = np.column_stack([_convert(table[:, j], attrs[j][1], names[j], path, single_class) for j in label_idx])
    if single_class and Y.dtype == object and not any(v is None for v in Y[:, 0]):
        Y = Y.astype(str)
    Y, task = prepare_labels(Y, task, path)
    return Dataset(
        name=name or path.name.split(".")[0], X=X, Y=Y, task=task,
        feature_names=tuple(names[j] for j in feature_idx),
        label_names=() if task == "classification" else tuple(names[j] for j in label_idx),
        description=description or str(data.get("description") or "").strip(),
        source=source or str(path), path=str(path),
    )
