"""Mulan's fixed train/test splits: the ones the paper's Table 2 numbers come from.

Mulan ships emotions as 391 training / 202 test rows and flags as 129 / 65, each half in its own
ARFF file with one XML label file for both (Mulan layout: features first, the labels named in the
XML last). They live in ``<data dir>/mulan-splits/`` (the layout of ../shared/data, whose
SOURCE.txt names the Mulan commit they were copied from):

    mulan-splits/emotions-train.arff  emotions-test.arff  emotions.xml
    mulan-splits/flags-train.arff     flags-test.arff     flags.xml

:func:`load_fixed_split` reads both halves through the Mulan ARFF reader
(:func:`hraml_core.data.mulan.load_arff`) and checks that they agree (same features, same labels).
"""
from __future__ import annotations

import os
from pathlib import Path

from . import paths
from .dataset import Dataset
from .errors import dataset_error

#: The folder of the data directory that holds the splits.
FOLDER = "mulan-splits"
#: Datasets with a fixed split, and the (train, test) sizes Mulan gives them.
FIXED_SPLITS = {"emotions": (391, 202), "flags": (129, 65)}


def fixed_split_files(name: str, data_dir: str | os.PathLike | None = None) -> tuple[Path, Path, Path]:
    """The (train ARFF, test ARFF, label XML) paths of ``name``'s fixed split (they may not exist)."""
    folder = paths.data_dir(data_dir) / FOLDER
    return folder / f"{name}-train.arff", folder / f"{name}-test.arff", folder / f"{name}.xml"


def has_fixed_split(name: str) -> bool:
    """Whether ``name`` is one of the sets with a fixed split (:data:`FIXED_SPLITS`)."""
    return name in FIXED_SPLITS


def load_fixed_split(name: str, data_dir: str | os.PathLike | None = None) -> tuple[Dataset, Dataset]:
    """(train, test) :class:`~hraml_core.data.Dataset` of Mulan's fixed split of ``name``.

    Raises :class:`~hraml_core.data.DatasetError` for a set without a fixed split, for missing
    files (naming the first one), and for halves that disagree on features or labels.
    """
    from .mulan import load_arff

    if name not in FIXED_SPLITS:
        raise dataset_error(name, f"no fixed train/test split (only {', '.join(FIXED_SPLITS)} have one)")
    files = fixed_split_files(name, data_dir)
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise dataset_error(
            name,
            f"fixed split not in the data directory {paths.data_dir(data_dir)} (missing {FOLDER}/{missing[0].name}); "
            f"point --data-dir / HRAML_DATA_DIR at a folder with {FOLDER}/ (../shared/data has one)",
        )
    train_path, test_path, xml = files
    train = load_arff(train_path, task="multilabel", labels_xml=xml, name=name, source=str(train_path))
    test = load_arff(test_path, task="multilabel", labels_xml=xml, name=name, source=str(test_path))
    if train.feature_names != test.feature_names or train.X.shape[1] != test.X.shape[1]:
        raise dataset_error(test_path, f"features differ from those of {train_path.name}")
    if train.label_names != test.label_names:
        raise dataset_error(test_path, f"labels differ from those of {train_path.name}")
    return train, test
