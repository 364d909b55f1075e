"""The metric-learning methods the paper compares HRAML with, as scikit-learn transformers.

``BASELINES`` maps a name to its class; every class builds with defaults, learns a Mahalanobis
matrix with ``fit(X, Y)`` (``M_``, symmetric PSD) and maps features with ``transform(X) = X @ L_.T``
where ``M_ = L_.T @ L_``:

============  ================================================  =======================  ==============
name          method                                            implementation           tasks
============  ================================================  =======================  ==============
``itml``      ITML, Davis et al., ICML 2007                     metric-learn 0.7.0       classes
``ldml``      LDML, Guillaumin et al., ICCV 2009                here (projected FISTA)   classes
``lmnn``      LMNN, Weinberger & Saul, JMLR 2009                metric-learn 0.7.0       classes
``dsvm``      doublet SVM, Wang et al., IEEE TNNLS 2015         here + sklearn SVC       classes
``gmml``      GMML, Zadeh et al., ICML 2016                     here (closed form)       classes
``dml_eig``   DML-eig, Ying & Li, JMLR 2012                     here (Frank-Wolfe)       classes
``raml_svr``  RAML-SVR, Zhu et al., IJCAI 2018                  here + sklearn SVR       all three
``raml_krr``  RAML-KRR, Zhu et al., IJCAI 2018                  here (closed form)       all three
============  ================================================  =======================  ==============

Methods defined for class labels only raise a ValueError naming the method for multi-label and
label-distribution targets (a one-hot matrix counts as class labels).
"""
from __future__ import annotations

from .base import MahalanobisBaseline, PairBaseline, pair_kernel, project_psd, sample_pairs
from .dml_eig import DMLEig
from .dsvm import DSVM
from .gmml import GMML
from .itml import ITML
from .ldml import LDML
from .lmnn import LMNN
from .raml import RAMLKRR, RAMLSVR

#: name -> class, in the order of the paper's Table 1.
BASELINES: dict[str, type[MahalanobisBaseline]] = {
    "itml": ITML,
    "ldml": LDML,
    "lmnn": LMNN,
    "dsvm": DSVM,
    "gmml": GMML,
    "dml_eig": DMLEig,
    "raml_svr": RAMLSVR,
    "raml_krr": RAMLKRR,
}


def get_baseline(name: str, **params) -> MahalanobisBaseline:
    """A new, unfitted baseline by name (case and ``-`` / ``_`` ignored), with ``params`` set."""
    key = str(name).strip().lower().replace("-", "_")
    try:
        cls = BASELINES[key]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"baseline {key!r} does not take these parameters: {exc}") from None


__all__ = [
    "BASELINES",
    "DMLEig",
    "DSVM",
    "GMML",
    "ITML",
    "LDML",
    "LMNN",
    "MahalanobisBaseline",
    "PairBaseline",
    "RAMLKRR",
    "RAMLSVR",
    "get_baseline",
    "pair_kernel",
    "project_psd",
    "sample_pairs",
]
