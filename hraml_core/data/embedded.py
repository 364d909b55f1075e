"""Datasets that need no files: scikit-learn's bundled sets, river's yeast, and the synthetic ones.

They are defined here (not in the manifest) so that they load even without ``hraml_core/data/registry.toml``.
``digits`` is the default dataset everywhere.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from .dataset import Dataset
from .errors import dataset_error
from .spec import EMBEDDED, DatasetSpec

DEFAULT_DATASET = "digits"

YEAST_LABELS = tuple(f"Class{i}" for i in range(1, 15))


def _sklearn(name: str, loader_name: str, description: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        names = list(getattr(bunch, "feature_names", None) if getattr(bunch, "feature_names", None) is not None else [])
        return Dataset(
            name=name, X=bunch.data, Y=bunch.target, task="classification",
            feature_names=tuple(str(f) for f in names),
            label_names=tuple(str(t) for t in bunch.target_names),
            description=description, source=f"scikit-learn sklearn.datasets.{loader_name}",
        )

    return load


def river_yeast_path() -> Path:
    """``river/datasets/yeast.csv.gz`` inside the installed river package (river is not imported)."""
    spec = importlib.util.find_spec("river")
    if spec is None or not spec.submodule_search_locations:
        raise dataset_error("yeast", "needs the optional 'river' package, which ships the file "
                                     "(pip install 'hraml-explorer[embedded]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "yeast.csv.gz"
    if not path.is_file():
        raise dataset_error(path, "file not found in the installed river package")
    return path


def _load_yeast() -> Dataset:
    from .tabular import load_csv

    return load_csv(
        river_yeast_path(), label_columns=list(YEAST_LABELS), task="multilabel", header=True, name="yeast",
        description="Yeast gene functions (Mulan multi-label benchmark), as shipped with river",
        source="river (river/datasets/yeast.csv.gz; Mulan yeast, OpenML 40597)",
    )


def _synthetic(kind: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        from . import synthetic

        return getattr(synthetic, f"make_synthetic_{kind}")()

    return load


def _spec(name, task, shape, description, source, homepage="") -> DatasetSpec:
    return DatasetSpec(name=name, task=task, format=EMBEDDED, description=description, source=source,
                       homepage=homepage, shape=shape)


EMBEDDED_SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _spec("digits", "classification", (1797, 64, 10), "8x8 images of handwritten digits", "scikit-learn"),
        _spec("iris", "classification", (150, 4, 3), "Fisher's iris flowers", "scikit-learn"),
        _spec("wine", "classification", (178, 13, 3), "Wine recognition (UCI)", "scikit-learn"),
        _spec("breast_cancer", "classification", (569, 30, 2), "Breast cancer Wisconsin (diagnostic)", "scikit-learn"),
        _spec("yeast", "multilabel", (2417, 103, 14), "Yeast gene functions (Mulan multi-label)", "river"),
        _spec("synthetic_multilabel", "multilabel", (600, 20, 6),
              "Seeded synthetic multi-label set: label prototypes + noise", "synthetic (seed 0)"),
        _spec("synthetic_distribution", "distribution", (600, 20, 5),
              "Seeded synthetic label distributions: softmax of a tanh map + noise", "synthetic (seed 0)"),
    )
}

EMBEDDED_LOADERS: dict[str, Callable[[], Dataset]] = {
    "digits": _sklearn("digits", "load_digits", EMBEDDED_SPECS["digits"].description),
    "iris": _sklearn("iris", "load_iris", EMBEDDED_SPECS["iris"].description),
    "wine": _sklearn("wine", "load_wine", EMBEDDED_SPECS["wine"].description),
    "breast_cancer": _sklearn("breast_cancer", "load_breast_cancer", EMBEDDED_SPECS["breast_cancer"].description),
    "yeast": _load_yeast,
    "synthetic_multilabel": _synthetic("multilabel"),
    "synthetic_distribution": _synthetic("distribution"),
}


def load_embedded(name: str) -> Dataset:
    try:
        loader = EMBEDDED_LOADERS[name]
    except KeyError:
        raise dataset_error(name, f"not an embedded dataset; embedded: {', '.join(EMBEDDED_LOADERS)}") from None
    return loader()
