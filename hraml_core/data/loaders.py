"""``load_file``: read one data file, choosing the reader by its extension (or ``format=``)."""
from __future__ import annotations

import os
from pathlib import Path

from .dataset import Dataset
from .errors import dataset_error
from .formats import FORMATS, detect_format

#: which keyword options each format takes (beyond task, name, description, source)
FORMAT_OPTIONS = {
    "mat": {"x_var", "y_var"},
    "arff": {"labels_xml", "label_columns", "n_labels"},
    "csv": {"label_columns", "ignore_columns", "header", "sep", "decimal", "dtype", "progress"},
    "parquet": {"label_columns", "ignore_columns", "dtype", "progress"},
    "svmlight": {"progress"},
}


def load_file(path: str | os.PathLike, *, format: str | None = None, task: str = "auto", name: str | None = None,
              label_columns=None, ignore_columns=None, labels_xml=None, n_labels: int | None = None,
              x_var: str | None = None, y_var: str | None = None, header: bool | None = None, sep: str | None = None,
              decimal: str | None = None, description: str = "", source: str = "", dtype: str | None = None,
              progress=None) -> Dataset:
    """Read one data file into a :class:`Dataset`.

    - ``.mat`` (MATLAB v4-v7): layouts fea/gnd, X/Y, features/labels (dense or sparse), or
      ``x_var``/``y_var``.
    - ``.arff`` / ``.arff.gz``: labels from ``labels_xml`` (Mulan XML), ``label_columns``,
      ``n_labels`` (the last n attributes), an XML file beside it, else the last attribute.
    - ``.csv`` / ``.tsv`` (optionally ``.gz``) and ``.parquet``: ``label_columns`` (names or
      indices; default the last column); ``ignore_columns`` (names or indices: neither features nor
      labels, e.g. an identifier); ``header`` / ``sep`` / ``decimal`` for CSV (detected when
      not given); ``dtype`` ("float32", "float64", or None: float32 for files of STREAM_MIN_BYTES
      and more, which are read in blocks) and ``progress`` (True: a tqdm bar; or a callable
      ``progress(done, total)``); see :mod:`hraml_core.data.tabular`.
    - ``.svm`` / ``.svmlight`` / ``.libsvm`` (optionally ``.gz``): svmlight / LIBSVM lines, read as
      sparse features; a class per line, or comma-separated label sets (:mod:`hraml_core.data.svmlight`),
      read in blocks (``progress`` as for CSV: bytes of the file).

    ``task`` is ``"auto"`` (detected) or one of ``hraml_core.tasks.TASKS``. Every problem raises
    :class:`~hraml_core.data.DatasetError` naming the file.
    """
    path = Path(path).expanduser()
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise dataset_error(path, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    given = {k: v for k, v in dict(label_columns=label_columns, ignore_columns=ignore_columns, labels_xml=labels_xml,
                                   n_labels=n_labels, x_var=x_var, y_var=y_var, header=header, sep=sep,
                                   decimal=decimal, dtype=dtype, progress=progress).items() if v is not None}
    unused = sorted(set(given) - FORMAT_OPTIONS[fmt])
    if unused:
        raise dataset_error(path, f"option {unused[0]}= does not apply to {fmt} files")
    common = dict(task=task, name=name, description=description, source=source)
    if fmt == "mat":
        from .matlab import load_mat

        return load_mat(path, **given, **common)
    if fmt == "arff":
        from .mulan import load_arff

        return load_arff(path, **given, **common)
    if fmt == "csv":
        from .tabular import load_csv

        return load_csv(path, **given, **common)
    if fmt == "svmlight":
        from .svmlight import load_svmlight

        return load_svmlight(path, **given, **common)
    from .tabular import load_parquet

    return load_parquet(path, **given, **common)
