"""The data layer: named datasets, file loaders, downloads.

Public API::

    load_dataset(name, data_dir=None) -> Dataset          # embedded, registered or a folder/file
    load_file(path, *, format=None, task="auto", label_columns=None, labels_xml=None,
              n_labels=None, x_var=None, y_var=None, header=None, sep=None, decimal=None, name=None,
              ...) -> Dataset
    list_datasets(data_dir=None, verify=False) -> list[DatasetStatus]
    download_dataset(name, data_dir=None, url_base=None, progress=True, log=None) -> Path
    load_fixed_split(name, data_dir=None) -> (train Dataset, test Dataset)   # Mulan's fixed splits
    data_dir(explicit=None) -> Path                       # argument > $HRAML_DATA_DIR > datasets/files
    registry(path=None) -> dict[str, DatasetSpec]         # embedded sets + hraml_core/data/registry.toml
    Dataset, DatasetError, DatasetSpec, FileSpec, DatasetStatus, DEFAULT_DATASET

Module map: ``dataset`` (the Dataset class), ``errors``, ``paths`` (data dir, manifest path),
``spec``/``registry`` (the manifest), ``embedded``/``synthetic`` (sets without files), ``formats``
(extensions), ``loaders`` (format dispatch) with ``matlab``, ``mulan`` (ARFF + XML), ``fixed_splits`` (Mulan's train/test files), ``tabular`` (CSV/Parquet), ``textio``
(gzip, strict UTF-8), ``labels`` (task inference), ``catalog`` (by name), ``download``.
Heavy dependencies (scipy.io, pandas, liac-arff, scikit-learn, tqdm) are imported on first use.
"""
from __future__ import annotations

from .catalog import DatasetStatus, list_datasets, load_dataset
from .dataset import Dataset
from .download import download_dataset
from .embedded import DEFAULT_DATASET
from .errors import DatasetError
from .fixed_splits import FIXED_SPLITS, load_fixed_split
from .loaders import load_file
from .paths import data_dir
from .registry import registry
from .spec import DatasetSpec, FileSpec

__all__ = [
    "DEFAULT_DATASET",
    "Dataset",
    "DatasetError",
    "DatasetSpec",
    "DatasetStatus",
    "FIXED_SPLITS",
    "FileSpec",
    "data_dir",
    "download_dataset",
    "list_datasets",
    "load_fixed_split",
    "load_dataset",
    "load_file",
    "registry",
]
