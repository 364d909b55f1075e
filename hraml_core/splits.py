"""The one train / held-out split of the project: seeded, stratified for classes where possible.

Every part that holds rows out (``hraml train``, the torchrun entry point, early stopping, the
protocol's validation parts, the dashboard's split and its subsample of a large set) calls
:func:`holdout_split`, so they agree on what a split with a given seed is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tasks import CLASSIFICATION


@dataclass(frozen=True)
class Holdout:
    """Row indices (sorted) of the kept part and of the held-out part."""

    train: np.ndarray
    test: np.ndarray
    stratified: bool  # whether the classes' proportions were kept


def can_stratify(y, test_fraction: float) -> bool:
    """Whether a stratified split of class labels ``y`` with this held-out fraction is possible:
    two members per class, and room for every class on both sides of the split."""
    _, counts = np.unique(np.asarray(y), return_counts=True)
    n = len(y)
    n_test = int(np.ceil(test_fraction * n))
    return counts.min() >= 2 and n_test >= len(counts) and n - n_test >= len(counts)


def holdout_split(y, task: str, seed: int, test_size: float | None = None, train_size: int | None = None) -> Holdout:
    """Split the rows of targets ``y`` (n rows) into a kept and a held-out part.

    Give ``test_size`` (a fraction in (0, 1)) or ``train_size`` (a number of rows to keep, for
    subsampling). For classes (``task == "classification"``, ``y`` 1-D labels) the split is
    stratified when every class can be on both sides; otherwise it is a plain shuffled split.
    """
    from sklearn.model_selection import train_test_split

    n = len(y)
    if (test_size is None) == (train_size is None):
        raise ValueError("give test_size or train_size")
    if test_size is not None and not 0 < test_size < 1:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size!r}")
    if train_size is not None and not 1 <= train_size < n:
        raise ValueError(f"train_size must lie in [1, {n}), got {train_size!r}")
    fraction = test_size if test_size is not None else 1 - train_size / n
    stratify = None
    if task == CLASSIFICATION and can_stratify(y, fraction):
        stratify = np.asarray(y)
    rows = np.arange(n)
    keep, held = train_test_split(rows, test_size=test_size, train_size=train_size, random_state=seed, stratify=stratify)
    return Holdout(np.sort(keep), np.sort(held), stratify is not None)
