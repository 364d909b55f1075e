"""The paper's baseline metric learners (hraml_core.baselines): registry, faithfulness, and errors."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.datasets import load_wine
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from hraml_core.baselines import BASELINES, RAMLKRR, RAMLSVR, get_baseline, pair_kernel, project_psd
from hraml_core.baselines.base import metric_from_pairs, sample_pairs
from hraml_core.baselines.gmml import GMML, pair_scatters
from hraml_core.tasks import encode_targets

NAMES = ("itml", "ldml", "lmnn", "dsvm", "gmml", "dml_eig", "raml_svr", "raml_krr")
CLASS_ONLY = ("itml", "ldml", "lmnn", "dsvm", "gmml", "dml_eig")


def _make(name: str, **params):
    params.setdefault("random_state", 0)
    return get_baseline(name, **params)


def _one_nn(Ztr, ytr, Zte, yte) -> float:
    return KNeighborsClassifier(n_neighbors=1).fit(Ztr, ytr).score(Zte, yte)


@pytest.fixture(scope="module")
def noisy_wine():
    """Wine, standardised, plus 20 Gaussian noise features of variance 4 (4x the real ones).

    On this split Euclidean 1-NN falls from about 0.95 to 0.70: the noise dominates the distances.
    """
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X = np.hstack([X, 2.0 * np.random.default_rng(0).standard_normal((len(X), 20))])
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    return Xtr, Xte, ytr, yte, _one_nn(Xtr, ytr, Xte, yte)


@pytest.fixture(scope="module")
def fitted(noisy_wine):
    Xtr, _, ytr, _, _ = noisy_wine
    return {name: _make(name).fit(Xtr, ytr) for name in NAMES}


@pytest.fixture(scope="module")
def label_problems():
    """A small multi-label and a small label-distribution problem: 4 informative + 8 noise features."""
    rng = np.random.default_rng(0)
    n, k = 300, 4
    informative = rng.standard_normal((n, k))
    multilabel = (informative + 0.3 * rng.standard_normal((n, k)) > 0.2).astype(float)
    logits = informative @ (1.5 * rng.standard_normal((k, 5)))
    dist = np.exp(logits - logits.max(axis=1, keepdims=True))
    dist /= dist.sum(axis=1, keepdims=True)
    X = np.hstack([informative, 2.0 * rng.standard_normal((n, 8))])
    return X, {"multilabel": multilabel, "distribution": dist}


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------
def test_registry_names_and_defaults():
    assert tuple(BASELINES) == NAMES
    for name, cls in BASELINES.items():
        est = cls()  # builds with defaults
        assert clone(est).get_params() == est.get_params()
        assert "random_state" in est.get_params()  # every one can be seeded the same way
        assert isinstance(get_baseline(name), cls)
    assert isinstance(get_baseline("RAML-KRR", reg=0.5), RAMLKRR)
    assert get_baseline("dml-eig").get_params()["max_iter"] == 500
    with pytest.raises(ValueError, match="unknown baseline 'nca'"):
        get_baseline("nca")
    with pytest.raises(ValueError, match="does not take"):
        get_baseline("gmml", C=1.0)


#: scikit-learn's estimator checks each baseline fails on purpose, with the reason.
EXPECTED_FAILED_CHECKS = {
    # LMNN needs more samples per class than n_neighbors (3); the check's 1-feature data has 3.
    "LMNN": {"check_fit2d_1feature": "each class needs more than n_neighbors samples (the check gives 3)"},
    # metric-learn's ITML stops with "The input metric should be symmetric" on the sparse checks'
    # mostly-zero data, dense or sparse alike: a numerical failure of ITML, not a sparse one.
    "ITML": {name: "metric-learn's ITML fails numerically on mostly-zero data (dense too)"
             for name in ("check_estimator_sparse_tag", "check_estimator_sparse_array", "check_estimator_sparse_matrix")},
}


#: Iteration caps for the estimator checks: they test the contract (shapes, validation, cloning),
#: not convergence, and the iterative baselines' default caps would make them most of the suite.
CHECK_PARAMS = {"lmnn": {"min_iter": 5, "max_iter": 20}, "itml": {"max_iter": 100}, "ldml": {"max_iter": 30},
                "dml_eig": {"max_iter": 30}}


@parametrize_with_checks([cls(random_state=0, **CHECK_PARAMS.get(name, {})) for name, cls in BASELINES.items()],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}))
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # metric-learn on scikit-learn 1.7
        check(estimator)


# --------------------------------------------------------------------------------------------------
# Every baseline on noisy wine: accuracy, PSD, transform == M
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_beats_euclidean_1nn_on_noisy_data(name, noisy_wine, fitted):
    Xtr, Xte, ytr, yte, euclid = noisy_wine
    assert euclid < 0.8  # the noise hurts Euclidean distances on this split
    est = fitted[name]
    acc = _one_nn(est.transform(Xtr), ytr, est.transform(Xte), yte)
    assert acc > euclid, f"{name}: 1-NN accuracy {acc:.3f} not above Euclidean {euclid:.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_metric_is_symmetric_psd_and_matches_transform(name, noisy_wine, fitted):
    Xtr, Xte, *_ = noisy_wine
    est = fitted[name]
    M = est.M_
    d = Xtr.shape[1]
    assert M.shape == (d, d) and est.L_.shape == (d, d)
    assert est.n_features_in_ == d and est.task_ == "classification"
    assert np.allclose(M, M.T, rtol=0, atol=1e-12 * np.abs(M).max())
    w = np.linalg.eigvalsh(M)
    assert w.min() >= -1e-8 * max(w.max(), 1e-300)
    assert w.max() > 0
    np.testing.assert_allclose(est.L_.T @ est.L_, M, atol=1e-10 * np.abs(M).max())
    np.testing.assert_array_equal(est.get_mahalanobis_matrix(), M)
    # ||L x_i - L x_j||^2 == (x_i - x_j)^T M (x_i - x_j)
    i, j = np.arange(0, 40), np.arange(1, 41)
    Z = est.transform(Xte)
    lhs = np.sum((Z[i] - Z[j]) ** 2, axis=1)
    diff = Xte[i] - Xte[j]
    rhs = np.einsum("pi,ij,pj->p", diff, M, diff)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-8, atol=1e-10 * rhs.max())


def test_fit_transform_and_single_row(noisy_wine):
    Xtr, Xte, ytr, *_ = noisy_wine
    est = GMML()
    Z = est.fit_transform(Xtr, ytr)
    np.testing.assert_allclose(Z, est.transform(Xtr))
    assert est.transform(Xte[:1]).shape == (1, Xtr.shape[1])


# --------------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLASS_ONLY)
@pytest.mark.parametrize("task", ["multilabel", "distribution"])
def test_class_only_methods_reject_other_tasks(name, task, label_problems):
    X, targets = label_problems
    est = _make(name)
    with pytest.raises(ValueError, match=rf"{est.method} is defined only for 'classification' targets, got '{task}'"):
        est.fit(X, targets[task])


def test_one_hot_matrix_counts_as_classes(noisy_wine):
    Xtr, _, ytr, *_ = noisy_wine
    one_hot = np.eye(3)[ytr]
    a = GMML().fit(Xtr, one_hot)
    b = GMML().fit(Xtr, ytr)
    assert a.task_ == "classification"
    np.testing.assert_allclose(a.M_, b.M_)


@pytest.mark.parametrize("cls", [RAMLKRR, RAMLSVR])
@pytest.mark.parametrize("task", ["multilabel", "distribution"])
def test_raml_aligns_relations_on_label_sets_and_distributions(cls, task, label_problems):
    X, targets = label_problems
    Y = targets[task]
    train, test = np.arange(220), np.arange(220, len(X))
    est = cls(random_state=0).fit(X[train], Y[train])
    assert est.task_ == task and est.n_pairs_ <= 220 * 4
    # held-out pairs: rank correlation between d and g, Euclidean vs learned
    a, b = np.triu_indices(len(test), 1)
    g = np.abs(Y[test][a] - Y[test][b]).sum(axis=1)
    diff = X[test][a] - X[test][b]
    before = spearmanr(np.sum(diff**2, axis=1), g)[0]
    after = spearmanr(np.sum((diff @ est.L_.T) ** 2, axis=1), g)[0]
    assert after > before + 0.1, f"{cls.__name__} on {task}: correlation {before:.3f} -> {after:.3f}"


def test_raml_takes_any_relation(label_problems):
    X, targets = label_problems
    est = RAMLKRR(relation="kl", random_state=0).fit(X, targets["distribution"])
    assert np.all(np.isfinite(est.M_))
    with pytest.raises(ValueError, match="unknown relation"):
        RAMLKRR(relation="nope").fit(X, targets["distribution"])


# --------------------------------------------------------------------------------------------------
# The pieces, against hand computations
# --------------------------------------------------------------------------------------------------
def test_pair_kernel_by_hand():
    # three pairs in 2-D with differences (1, 0), (0, 2), (1, 1)
    x = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0], [2.0, 3.0]])
    pairs = [(1, 0), (2, 1), (3, 2)]
    D = np.array([x[i] - x[j] for i, j in pairs])
    expected = np.array([[1.0, 0.0, 1.0], [0.0, 16.0, 4.0], [1.0, 4.0, 4.0]])
    np.testing.assert_allclose(pair_kernel(D), expected)
    T = [np.outer(dv, dv) for dv in D]
    frob = np.array([[np.sum(Ti * Tj) for Tj in T] for Ti in T])
    np.testing.assert_allclose(pair_kernel(D), frob)
    alpha = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(metric_from_pairs(D, alpha), sum(a * Ti for a, Ti in zip(alpha, T)))


def test_project_psd_clips_negative_eigenvalues():
    V = np.linalg.qr(np.random.default_rng(1).standard_normal((4, 4)))[0]
    M = V @ np.diag([3.0, 1.0, -2.0, 0.5]) @ V.T
    P, L = project_psd(M + 1e-3 * np.triu(np.ones((4, 4)), 1))  # slightly asymmetric input
    np.testing.assert_allclose(np.linalg.eigvalsh(P), [0.0, 0.5, 1.0, 3.0], atol=2e-3)
    np.testing.assert_allclose(L.T @ L, P, atol=1e-12)


def test_gmml_closed_form_solves_its_riccati_equation():
    # With reg = 0 and t = 1/2, A = S^-1 # D is the SPD solution of A S A = D.
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    S, D = pair_scatters(X, y)
    A = GMML(reg=0.0).fit(X, y).M_
    np.testing.assert_allclose(A @ S @ A, D, rtol=1e-7, atol=1e-9)


def test_pair_scatters_by_brute_force():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((12, 3)), np.repeat([0, 1, 2], 4)
    S = np.zeros((3, 3))
    Dm = np.zeros((3, 3))
    ns = nd = 0
    for i in range(12):
        for j in range(12):
            if i == j:
                continue
            T = np.outer(X[i] - X[j], X[i] - X[j])
            if y[i] == y[j]:
                S, ns = S + T, ns + 1
            else:
                Dm, nd = Dm + T, nd + 1
    S_, D_ = pair_scatters(X, y)
    np.testing.assert_allclose(S_, S / ns)
    np.testing.assert_allclose(D_, Dm / nd)


def test_raml_krr_solves_the_offset_system(noisy_wine):
    # The LS-SVM system: alpha sums to 0 and (K + reg I) alpha + b = g on the training pairs.
    Xtr, _, ytr, *_ = noisy_wine
    est = RAMLKRR(reg=0.5, random_state=0)
    targets = encode_targets(ytr)
    D, K, g, scale = est._pair_problem(Xtr, targets)
    M = est._fit_metric(Xtr, targets)
    # recover alpha from M's definition: d_M on the pairs = K alpha (scaled)
    alpha = np.linalg.solve(K + 0.5 * np.eye(len(g)), g - est.intercept_)
    assert abs(alpha.sum()) < 1e-8 * np.abs(alpha).sum()
    np.testing.assert_allclose(metric_from_pairs(D, alpha) / scale, M, atol=1e-10 * np.abs(M).max())
    np.testing.assert_allclose(np.unique(g), [0.0, 2.0])  # l1 on one-hot classes


def test_dml_eig_raises_its_objective(noisy_wine):
    # min over dissimilar pairs of <X~_t, S> on the spectrahedron: above its value at S = I/d.
    Xtr, _, ytr, *_ = noisy_wine
    est = _make("dml_eig").fit(Xtr, ytr)
    start = _make("dml_eig", max_iter=0).fit(Xtr, ytr)
    assert est.min_dissimilar_ > 2 * start.min_dissimilar_


def test_dsvm_and_ldml_separate_similar_from_dissimilar_pairs(noisy_wine, fitted):
    Xtr, _, ytr, *_ = noisy_wine
    a, b = sample_pairs(Xtr, encode_targets(ytr), None, rng=0)
    same = ytr[a] == ytr[b]
    for name in ("dsvm", "ldml"):
        Z = fitted[name].transform(Xtr)
        d = np.sum((Z[a] - Z[b]) ** 2, axis=1)
        assert np.median(d[~same]) > 2 * np.median(d[same]), name
    assert np.isfinite(fitted["ldml"].bias_)


def test_sample_pairs_for_classes(noisy_wine):
    Xtr, _, ytr, *_ = noisy_wine
    a, b = sample_pairs(Xtr, encode_targets(ytr), None, n_partners=4, balance=0.5)
    assert np.all(a < b)
    assert len(np.unique(a * len(Xtr) + b)) == len(a) <= 4 * len(Xtr)
    same = ytr[a] == ytr[b]
    assert 0.3 < same.mean() < 0.7
    # every sample is in at least 4 pairs: its 2 nearest same-class and 2 nearest other-class
    assert np.bincount(np.concatenate([a, b]), minlength=len(Xtr)).min() >= 4
    # the nearest same-class neighbour of sample 0 is among its partners
    d = np.sum((Xtr - Xtr[0]) ** 2, axis=1)
    d[0] = np.inf
    d[ytr != ytr[0]] = np.inf
    assert ((a == 0) & (b == d.argmin())).any()


def test_max_pairs_caps_the_kernel_with_a_warning(noisy_wine):
    Xtr, _, ytr, *_ = noisy_wine
    with pytest.warns(UserWarning, match="max_pairs"):
        est = RAMLSVR(max_pairs=100, random_state=0).fit(Xtr, ytr)
    assert est.n_pairs_ == 100


def test_metric_learn_future_warnings_stay_local(noisy_wine):
    Xtr, _, ytr, *_ = noisy_wine
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # a leaked FutureWarning would raise
        before = list(warnings.filters)
        _make("itml").fit(Xtr, ytr)
        _make("lmnn", max_iter=5).fit(Xtr, ytr)
        assert warnings.filters == before  # and the silencing did not outlive the fit


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gmml", "raml_krr", "itml"])
def test_bad_input_raises_value_error(name, noisy_wine):
    Xtr, _, ytr, *_ = noisy_wine
    est = _make(name)
    bad = Xtr.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        est.fit(bad, ytr)
    with pytest.raises(ValueError, match=r"X has \d+ samples but Y has \d+"):
        est.fit(Xtr, ytr[:-1])
    with pytest.raises(ValueError, match="2-D"):
        est.fit(Xtr[:, 0], ytr)
    with pytest.raises(ValueError, match="numeric"):
        est.fit(Xtr.astype(str), ytr)
    with pytest.raises(NotFittedError):
        est.transform(Xtr)
    est.fit(Xtr, ytr)
    with pytest.raises(ValueError, match="features"):
        est.transform(Xtr[:, :5])


def test_sparse_features_are_densified(noisy_wine):
    Xtr, _, ytr, *_ = noisy_wine
    dense = GMML().fit(Xtr, ytr)
    sparse = GMML().fit(sp.csr_matrix(Xtr), ytr)
    np.testing.assert_allclose(sparse.M_, dense.M_)
    np.testing.assert_allclose(sparse.transform(sp.csr_matrix(Xtr)), dense.transform(Xtr))


def test_single_sample_class_is_rejected():
    X = np.random.default_rng(0).standard_normal((6, 3))
    with pytest.raises(ValueError, match="single sample"):
        GMML().fit(X, [0, 0, 0, 1, 1, 2])
