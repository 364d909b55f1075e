"""Feature preprocessing fitted on training data only: optional PCA, optional standardisation.

The authors fed their networks PCA-reduced features ("PCA100"); scikit-learn's digits and the
Mulan sets want standardisation instead (features on different scales). :class:`Preprocessor`
covers both, accepts sparse input (news20) through TruncatedSVD, and saves itself to safetensors
so that a trained model can be applied to new raw data later.

float32 input gives float32 output (large sets: half the memory, and what training uses without a
further copy); anything else gives float64.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

KINDS = ("none", "standardize", "pca", "pca+standardize")
FORMAT = "hraml-explorer-preprocessing/1"


class Preprocessor:
    """``kind`` is one of :data:`KINDS`; ``n_components`` bounds the PCA (skipped when d is smaller).

    Dense input uses PCA (centred). Sparse input uses TruncatedSVD, which keeps it sparse until the
    projection; ``"none"`` passes sparse input on as CSR (HRAML trains on it as it is), and
    ``"standardize"`` alone densifies it (centring fills every zero).
    """

    def __init__(self, kind: str = "standardize", n_components: int = 100, random_state: int = 0):
        if kind not in KINDS:
            raise ValueError(f"unknown preprocessing {kind!r}; choose one of {', '.join(KINDS)}")
        if int(n_components) < 1:
            raise ValueError(f"n_components must be positive, got {n_components}")
        self.kind, self.n_components, self.random_state = kind, int(n_components), random_state
        self.mean_: np.ndarray | None = None  # centring before the projection
        self.components_: np.ndarray | None = None  # (k, d) projection
        self.scale_mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.n_features_in_: int | None = None

    def fit(self, X) -> "Preprocessor":
        self.fit_transform(X)
        return self

    def fit_transform(self, X) -> np.ndarray:
        # scikit-learn is imported here, not at module level: the CLI reads KINDS at start-up.
        from sklearn.decomposition import PCA, TruncatedSVD
        from sklearn.preprocessing import StandardScaler

        self.n_features_in_ = X.shape[1]
        dtype = _out_dtype(X)
        Z = X
        if self.kind.startswith("pca") and X.shape[1] > self.n_components:
            k = min(self.n_components, X.shape[0] - 1)
            if sp.issparse(X):
                svd = TruncatedSVD(k, random_state=self.random_state)
                Z = svd.fit_transform(X)
                self.mean_, self.components_ = np.zeros(X.shape[1]), svd.components_
            else:
                pca = PCA(k, random_state=self.random_state, svd_solver="auto")
                Z = pca.fit_transform(X)
                self.mean_, self.components_ = pca.mean_, pca.components_
        Z = self._output(Z, dtype)
        if self.kind.endswith("standardize"):
            scaler = StandardScaler().fit(Z)
            self.scale_mean_, self.scale_ = scaler.mean_, scaler.scale_
            Z = self._standardize(Z)
        return Z

    def _output(self, Z, dtype):
        """The projection's or the input's values as ``dtype``: CSR for sparse input kept by ``"none"``,
        else a dense array."""
        if sp.issparse(Z) and self.kind == "none":
            return sp.csr_matrix(Z, dtype=dtype)
        return _dense(Z, dtype)

    def _standardize(self, Z: np.ndarray) -> np.ndarray:
        # One new array, divided in place: (Z - mean) / scale would hold two of Z's size.
        Z = Z - self.scale_mean_.astype(Z.dtype)
        Z /= self.scale_.astype(Z.dtype)
        return Z

    def transform(self, X) -> np.ndarray:
        if self.n_features_in_ is None:
            raise ValueError("this Preprocessor is not fitted yet")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the preprocessing was fitted on {self.n_features_in_}")
        dtype = _out_dtype(X)
        Z = X
        if self.components_ is not None:
            C = self.components_.astype(dtype, copy=False)
            Z = (X @ C.T) - (self.mean_ @ self.components_.T).astype(dtype)
        Z = self._output(Z, dtype)
        if self.scale_ is not None:
            Z = self._standardize(Z)
        return Z

    # -- persistence ----------------------------------------------------------------------------
    _ARRAYS = ("mean_", "components_", "scale_mean_", "scale_")

    def save(self, path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        tensors = {k: np.ascontiguousarray(getattr(self, k)) for k in self._ARRAYS if getattr(self, k) is not None}
        meta = {"format": FORMAT, "kind": self.kind, "n_components": str(self.n_components),
                "n_features_in": json.dumps(self.n_features_in_)}
        save_file(tensors, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path) -> "Preprocessor":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not a preprocessing file (format {meta.get('format')!r})")
            arrays = {k: f.get_tensor(k) for k in f.keys()}
        pre = cls(meta["kind"], int(meta["n_components"]))
        pre.n_features_in_ = json.loads(meta["n_features_in"])
        for k, v in arrays.items():
            setattr(pre, k, v)
        return pre

    def __repr__(self) -> str:
        return f"Preprocessor(kind={self.kind!r}, n_components={self.n_components})"


def _out_dtype(X) -> type:
    return np.float32 if X.dtype == np.float32 else np.float64


def _dense(Z, dtype=np.float64) -> np.ndarray:
    return np.asarray(Z.toarray() if sp.issparse(Z) else Z, dtype=dtype)
