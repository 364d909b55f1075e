"""Seeded synthetic datasets: small, quick, and with a known link between features and labels.

- :func:`make_synthetic_multilabel`: each of ``n_labels`` labels has a prototype in feature space;
  a sample's features are the sum of the prototypes of its labels plus noise, so the squared
  feature distance between two samples grows with the number of labels they differ in. Label sets
  are correlated through a low-dimensional latent factor (as in real multi-label data).
- :func:`make_synthetic_distribution`: features are Gaussian; label distributions are the softmax
  of a one-hidden-layer tanh map of a 3-D projection of the features plus noise, so samples close
  in that projection have close distributions (raw Euclidean distance, dominated by the other
  directions, relates to them only weakly: room for a learned metric).
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset

SEED = 0


def make_synthetic_multilabel(n_samples: int = 600, n_features: int = 20, n_labels: int = 6,
                              seed: int = SEED, noise: float = 0.5) -> Dataset:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_samples, 2))
    mixing = rng.normal(size=(2, n_labels)) * 1.5
    bias = rng.uniform(-1.2, -0.2, size=n_labels)
    prob = 1.0 / (1.0 + np.exp(-(latent @ mixing + bias)))
    Y = (rng.random((n_samples, n_labels)) < prob).astype(np.int64)
    empty = Y.sum(axis=1) == 0  # every sample carries at least one label
    Y[empty, rng.integers(0, n_labels, size=int(empty.sum()))] = 1
    # near-orthogonal prototypes of equal length: ||x_i - x_j||^2 ~ 4 * hamming(y_i, y_j) + noise
    q, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
    prototypes = 2.0 * q[:n_labels] if n_labels <= n_features else 2.0 * rng.normal(size=(n_labels, n_features)) / np.sqrt(n_features)
    X = Y @ prototypes + noise * rng.normal(size=(n_samples, n_features))
    return Dataset(
        name="synthetic_multilabel", X=X, Y=Y, task="multilabel",
        label_names=tuple(f"label{j}" for j in range(n_labels)),
        description=f"Seeded synthetic multi-label set (seed {seed}): features = sum of label prototypes + noise",
        source="hraml_core.data.synthetic",
    )


def make_synthetic_distribution(n_samples: int = 600, n_features: int = 20, n_labels: int = 5,
                                seed: int = SEED, noise: float = 0.3, hidden: int = 8) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    # the labels depend on a 3-D projection of the features only: a learned metric can find it
    w1 = rng.normal(size=(n_features, 3)) @ rng.normal(size=(3, hidden)) / np.sqrt(3 * n_features)
    w2 = rng.normal(size=(hidden, n_labels)) * 1.5
    logits = np.tanh(X @ w1 * 1.5) @ w2 + noise * rng.normal(size=(n_samples, n_labels))
    logits -= logits.max(axis=1, keepdims=True)
    D = np.exp(logits)
    D /= D.sum(axis=1, keepdims=True)
    return Dataset(
        name="synthetic_distribution", X=X, Y=D, task="distribution",
        label_names=tuple(f"label{j}" for j in range(n_labels)),
        description=f"Seeded synthetic label-distribution set (seed {seed}): softmax of a tanh map of the features + noise",
        source="hraml_core.data.synthetic",
    )
