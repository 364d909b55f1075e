"""Input checks at the library's boundary: scikit-learn's ``check_array`` / ``validate_data`` do the
checking and converting; these helpers add what the project's messages promise (the argument's
name, who asked, and where a NaN sits) so that every entry point fails the same way.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array, validate_data


def _prefixed(owner: str | None, message: str) -> str:
    return f"{owner}: {message}" if owner else message


def check_matrix(X, name: str = "X", *, owner: str | None = None, dtype=np.float64, min_samples: int = 1,
                 sparse: str = "densify", estimator=None, reset: bool = True, copy: bool = False):
    """``X`` as a finite 2-D numeric array (or a CSR matrix with ``sparse="keep"``).

    ``sparse``: ``"densify"`` turns a scipy.sparse matrix into an array, ``"keep"`` keeps it (CSR),
    ``"refuse"`` raises. With ``estimator`` this is scikit-learn's ``validate_data`` (which also
    sets or checks ``n_features_in_``, by ``reset``). ``owner`` prefixes messages (e.g. the
    baseline's name). Raises ``ValueError`` naming ``name`` and the problem.
    """
    if sparse == "densify" and sp.issparse(X):
        X = X.toarray()
    if not sp.issparse(X):
        # Two cases said here rather than by check_array: its message for a 1-D input prints the
        # whole array, and it would parse an array of numeric strings as numbers.
        try:
            as_array = np.asarray(X)
            dtype_in, shape = as_array.dtype, as_array.shape
        except (TypeError, ValueError):  # ragged rows and the like: check_array says what is wrong
            dtype_in, shape = None, (0, 0)
        if dtype_in is not None and dtype_in.kind in "USa":
            raise ValueError(_prefixed(owner, f"{name} must be numeric, got dtype {dtype_in}"))
        if len(shape) != 2:
            raise ValueError(_prefixed(owner, f"{name} must be a 2-D array (n_samples, n_features), got shape "
                                              f"{shape}. Reshape your data: X.reshape(-1, 1) for a single "
                                              "feature, X.reshape(1, -1) for a single sample"))
    kw = dict(accept_sparse="csr" if sparse == "keep" else False, dtype=dtype, ensure_min_samples=min_samples,
              ensure_all_finite=False, copy=copy)
    try:
        if estimator is not None:  # validate_data names the input X itself
            X = validate_data(estimator, X, reset=reset, **kw)
        else:
            X = check_array(X, input_name=name, **kw)
    except (TypeError, ValueError) as exc:  # the same type, the message prefixed with who asked
        raise type(exc)(_prefixed(owner, str(exc))) from None
    check_finite(X, name, owner=owner)
    return X


def check_finite(X, name: str = "X", *, owner: str | None = None) -> None:
    """A ``ValueError`` saying where the first NaN or infinite value of ``X`` is, if it has one."""
    values = X.data if sp.issparse(X) else X
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        if sp.issparse(X):
            X = X.tocoo()
            first = np.flatnonzero(~np.isfinite(X.data))[0]
            where = (int(X.row[first]), int(X.col[first]))
        else:
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(X))[0])
        at = f"row {where[0]}, column {where[1]}" if len(where) == 2 else f"position {where}"
        raise ValueError(_prefixed(owner, f"{name} contains NaN or infinite values (first at {at})"))


def check_same_rows(A, B, a_name: str, b_name: str, *, owner: str | None = None) -> None:
    """A ``ValueError`` when ``A`` and ``B`` do not have one row per sample each."""
    if A.shape[0] != B.shape[0]:
        raise ValueError(_prefixed(owner, f"{a_name} has {A.shape[0]} rows but {b_name} has {B.shape[0]}"))


def check_same_features(A, B, a_name: str, b_name: str, *, owner: str | None = None) -> None:
    if A.shape[1] != B.shape[1]:
        raise ValueError(_prefixed(owner, f"{a_name} has {A.shape[1]} features but {b_name} has {B.shape[1]}"))
