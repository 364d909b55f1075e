"""Sparse feature matrices for training: their rows as dense tensors, a batch at a time.

Text features (a ``TfidfVectorizer``'s output, bags of words) come as scipy.sparse matrices whose
dense form would not fit in memory. A training step only needs its batch's rows, so
:class:`SparseRows` keeps the matrix sparse (CSR) and hands the step those rows as a dense tensor:
the encoder's first layer is an ordinary dense layer of ``n_features`` inputs either way.

Why not torch's own sparse tensors: indexing rows of a CSR tensor (``index_select``) is not
implemented for them in the torch this project pins, and the batch must be dense for the first
layer's matrix product and the input noise anyway.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class SparseRows:
    """Rows of a scipy.sparse matrix (kept as float32 CSR), read as dense float32 tensors on ``device``.

    ``rows[idx]`` takes an index tensor, array, list or slice and returns the dense
    ``(len(idx), n_features)`` tensor; ``shape`` and ``len`` are the matrix's.

    >>> rows = SparseRows(sp.csr_matrix(np.eye(3)))
    >>> rows[torch.tensor([2, 0])].tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """

    def __init__(self, X, device: torch.device | str = "cpu"):
        self.matrix = sp.csr_matrix(X, dtype=np.float32)
        self.shape = self.matrix.shape
        self.device = torch.device(device)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        return torch.from_numpy(self.matrix[idx].toarray()).to(self.device)


#: Entries of the dense block a sparse matrix is read in when embedding it (float32: 64 MB).
DENSE_BLOCK_ENTRIES = 2**24


def dense_chunk_rows(n_features: int, most: int) -> int:
    """Rows of a sparse matrix to embed at a time: at most ``most``, fewer for wide matrices so that
    the dense block stays within :data:`DENSE_BLOCK_ENTRIES`."""
    return max(1, min(int(most), DENSE_BLOCK_ENTRIES // max(1, int(n_features))))


def sparse_input_skip(X, Z: np.ndarray, weight: float):
    """:func:`hraml_core.encoder.with_input_skip` for sparse inputs ``X`` with encoder embeddings
    ``Z`` (numpy): ``Z`` itself for ``weight`` 0, else the CSR matrix ``[sqrt(s) x/||x||, sqrt(1-s) z]``,
    the inputs' part kept sparse (a dense one would hold every zero of every input column)."""
    if not weight:
        return Z
    from sklearn.preprocessing import normalize

    u = normalize(sp.csr_matrix(X, dtype=np.float32), norm="l2")
    z = sp.csr_matrix(np.asarray(Z) * np.float32(np.sqrt(1.0 - weight)))
    out = sp.hstack([u * np.float32(np.sqrt(weight)), z], format="csr")
    return out.astype(Z.dtype, copy=False)
