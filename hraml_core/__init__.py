"""HRAML Explorer: Hierarchical Relationship Alignment Metric Learning.

Learn an encoder whose squared embedding distances match a relation between labels, for
classification, multi-label learning and label distribution learning alike.

    >>> from hraml_core import HRAML
    >>> Z = HRAML(random_state=0).fit(X_train, y_train).transform(X_test)

Names are imported on first use, so that light parts (``hraml_core.data``, the ``hraml datasets``
command) do not pay for importing torch and scikit-learn.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "HRAML": "estimator",
    "MLPEncoder": "encoder",
    "RELATIONS": "relations",
    "Relation": "relations",
    "get_relation": "relations",
    "register_relation": "relations",
    "TrainConfig": "training",
    "TrainingRun": "training",
    "Trainer": "trainer",
    "Snapshot": "trainer",
    "CLASSIFICATION": "tasks",
    "MULTILABEL": "tasks",
    "DISTRIBUTION": "tasks",
    "TASKS": "tasks",
    "detect_task": "tasks",
    "encode_targets": "tasks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
