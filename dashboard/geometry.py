"""2-D geometry of embeddings for the projection view (pure functions; no threads, no processes).

- :func:`pca_2d`: the first two principal components, signs fixed;
- :func:`procrustes_align`: rotate / reflect, scale and translate a frame onto the previous one so
  that points do not jump between frames;
- :func:`umap_2d`: a warm-started UMAP for live frames (umap-learn imported on call).

This module imports neither torch nor Streamlit, so the UMAP process starts light.
"""
from __future__ import annotations

import numpy as np

#: UMAP settings for live frames (see docs/BENCHMARKS.md): exact neighbours given to umap, 50 epochs.
UMAP_EPOCHS = 50
UMAP_NEIGHBORS = 15


# --------------------------------------------------------------------------------------------------
def pca_2d(Z) -> np.ndarray:
    """The first two principal components of ``Z`` (n x d) as an (n, 2) float32 array.

    Signs are fixed (the largest-magnitude coordinate of each axis is positive) so that equal
    inputs give equal outputs; fewer than 2 dimensions are padded with zeros.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {Z.shape}")
    n = len(Z)
    out = np.zeros((n, 2))
    if n == 0:
        return out.astype(np.float32)
    C = Z - Z.mean(0)
    if n > 1 and C.shape[1] > 0:
        U, S, _ = np.linalg.svd(C, full_matrices=False)
        k = min(2, len(S))
        P = U[:, :k] * S[:k]
        idx = np.abs(P).argmax(0)
        P = P * np.where(P[idx, np.arange(k)] < 0, -1.0, 1.0)
        out[:, :k] = P
    return out.astype(np.float32)


def procrustes_align(frame, reference) -> np.ndarray:
    """``frame`` (n, 2) moved onto ``reference`` (n, 2) by the similarity transform that fits best.

    Both are centred and scaled to unit Frobenius norm, the orthogonal matrix R minimising
    ||F R - Ref|| is found (scipy's orthogonal_procrustes; a reflection is allowed, UMAP's sign is
    arbitrary), and the result is put back at the reference's scale and centre. A rotated, scaled,
    reflected and translated copy of the reference therefore aligns back onto it exactly.
    """
    from scipy.linalg import orthogonal_procrustes

    F = np.asarray(frame, dtype=np.float64)
    Ref = np.asarray(reference, dtype=np.float64)
    if F.shape != Ref.shape or F.ndim != 2:
        raise ValueError(f"frame and reference must have the same (n, k) shape, got {F.shape} and {Ref.shape}")
    mu_f, mu_r = F.mean(0), Ref.mean(0)
    Fc, Rc = F - mu_f, Ref - mu_r
    nf, nr = np.linalg.norm(Fc), np.linalg.norm(Rc)
    if nf == 0 or nr == 0:
        return (Fc + mu_r).astype(np.float32)
    R, _ = orthogonal_procrustes(Fc / nf, Rc / nr)
    return ((Fc / nf) @ R * nr + mu_r).astype(np.float32)


def umap_2d(Z, init=None, seed: int = 0, n_epochs: int = UMAP_EPOCHS, n_neighbors: int = UMAP_NEIGHBORS) -> np.ndarray:
    """UMAP of ``Z`` to 2-D, warm-started from ``init`` (n, 2) when given (PCA otherwise).

    The neighbour graph is computed here, exactly (scikit-learn, brute force: cheap at the few
    thousand points of a frame), and handed to umap as ``precomputed_knn``: umap's own search is
    either a slow Python loop (exact, under 4096 points) or pynndescent's ``nn_descent``, whose
    numba compile is most of a fresh process's first frame and cannot be cached on disk. One
    thread, a fixed seed and few epochs: a live frame, not a final plot.
    """
    import umap
    from sklearn.neighbors import NearestNeighbors

    Z = np.ascontiguousarray(Z, dtype=np.float32)
    if init is None:
        init = pca_2d(Z)
    init = np.asarray(init, dtype=np.float64)
    if init.shape != (len(Z), 2):
        raise ValueError(f"init must have shape ({len(Z)}, 2), got {init.shape}")
    if np.ptp(init, axis=0).min() <= 0:  # degenerate start: umap rescales by the range
        init = init + np.random.default_rng(seed).normal(0, 1e-3, init.shape)
    k = max(2, min(n_neighbors, len(Z) - 1))
    dists, index = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(Z).kneighbors(Z)  # self first, as umap's
    model = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        n_epochs=n_epochs,
        init=init,
        random_state=seed,
        n_jobs=1,
        precomputed_knn=(index.astype(np.int32), dists.astype(np.float32), None),
        low_memory=True,
        verbose=False,
    )
    return model.fit_transform(Z).astype(np.float32)


