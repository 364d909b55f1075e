"""HRAML Explorer: Hierarchical Relationship Alignment Metric Learning.

Learn an encoder whose squared embedding distances match a relation between labels, for
classification, multi-label learning and label distribution learning alike.

    >>> from hraml_core import HRAML
    >>> Z = HRAML(random_state=0).fit(X_train, y_train).transform(X_test)
"""
from .encoder import MLPEncoder
from .estimator import HRAML
from .relations import RELATIONS, Relation, get_relation, register_relation
from .tasks import CLASSIFICATION, DISTRIBUTION, MULTILABEL, TASKS, detect_task, encode_targets
from .training import TrainConfig, TrainingRun

__all__ = [
    "HRAML",
    "MLPEncoder",
    "RELATIONS",
    "Relation",
    "get_relation",
    "register_relation",
    "TrainConfig",
    "TrainingRun",
    "CLASSIFICATION",
    "MULTILABEL",
    "DISTRIBUTION",
    "TASKS",
    "detect_task",
    "encode_targets",
]
__version__ = "0.1.0"
