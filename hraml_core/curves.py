"""Long curves shown short: the one binning function of the project (the trainer's snapshots and
the dashboard's figures both use it)."""
from __future__ import annotations

import numpy as np


def bin_curve(x, y, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) averaged into at most ``max_points`` bins of equal length (in points): a curve looks
    the same and draws faster. Shorter curves come back as they are (as float64)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} points but y has {len(y)}")
    if max_points < 1:
        raise ValueError(f"max_points must be positive, got {max_points}")
    if len(x) <= max_points:
        return x, y
    edges = np.linspace(0, len(x), max_points + 1).astype(int)
    counts = np.diff(edges)
    return np.add.reduceat(x, edges[:-1]) / counts, np.add.reduceat(y, edges[:-1]) / counts
