import math

import numpy as np
import pytest
import torch

from hraml_core.relations import RELATIONS, get_relation, relation_max, relation_scale
from hraml_core.tasks import encode_targets

# Three label-set rows worked by hand below: a = {0, 2}, b = {1, 2}, c = {} (4 labels).
SETS = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=float)
# Two distributions over 3 labels.
P = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])


def g(name, Y):
    return get_relation(name)(Y).numpy().astype(float)


def test_l1_is_the_papers_eq_11_on_classes_sets_and_distributions():
    onehot = encode_targets(np.array([0, 1, 0])).Y
    assert g("l1", onehot).tolist() == [[0, 2, 0], [2, 0, 2], [0, 2, 0]]
    # a vs b differ on labels 0 and 1 -> 2; a vs c on 0 and 2 -> 2; b vs c on 1 and 2 -> 2.
    assert g("l1", SETS).tolist() == [[0, 2, 2], [2, 0, 2], [2, 2, 0]]
    # |0.5-0.2| + |0.5-0.3| + |0-0.5| = 0.3 + 0.2 + 0.5 = 1.0
    assert g("l1", P)[0, 1] == pytest.approx(1.0)


def test_each_relation_against_hand_values():
    # a=(1,0,1,0), b=(0,1,1,0): diff (1,-1,0,0)
    expected_ab = {
        "l1": 2.0,
        "l2": math.sqrt(2),
        "squared_l2": 2.0,
        "hamming": 2 / 4,
        "jaccard": 1 - 1 / 3,  # |a & b| = 1, |a | b| = 3
        "cosine": 1 - 1 / 2,  # a.b = 1, |a||b| = sqrt2*sqrt2
        "chebyshev": 1.0,
        "binary": 2.0,
    }
    for name, value in expected_ab.items():
        assert g(name, SETS)[0, 1] == pytest.approx(value, abs=1e-6), name
    # An empty set against a non-empty one: maximal for jaccard and cosine.
    assert g("jaccard", SETS)[0, 2] == pytest.approx(1.0)
    assert g("cosine", SETS)[0, 2] == pytest.approx(1.0)
    # Two empty sets are identical.
    empty = np.zeros((2, 3))
    for name in ("jaccard", "cosine", "l1", "binary"):
        assert g(name, empty)[0, 1] == pytest.approx(0.0), name


def test_kl_and_js_on_distributions_by_hand():
    eps = 1e-3
    p = (P[0] + eps) / (1 + 3 * eps)
    q = (P[1] + eps) / (1 + 3 * eps)
    sym_kl = 0.5 * (np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p)))
    m = (p + q) / 2
    js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert g("kl", P)[0, 1] == pytest.approx(sym_kl, rel=1e-4)
    assert g("js", P)[0, 1] == pytest.approx(js, rel=1e-4)
    assert g("kl", P)[1, 0] == pytest.approx(sym_kl, rel=1e-4)


@pytest.mark.parametrize("name", sorted(RELATIONS))
def test_every_relation_is_symmetric_nonnegative_and_zero_on_equal_labels(name):
    rng = np.random.default_rng(0)
    Y = rng.dirichlet(np.ones(5), size=20)
    Y[3] = Y[7]
    G = g(name, Y)
    assert G.shape == (20, 20)
    assert np.allclose(G, G.T, atol=1e-5)
    assert (G >= -1e-7).all()
    assert np.allclose(np.diag(G), 0, atol=1e-5)
    assert G[3, 7] == pytest.approx(0, abs=1e-5)
    assert RELATIONS[name].formula.startswith("g")


def test_relation_between_two_different_sets_of_rows():
    G = get_relation("l1")(SETS[:2], SETS)
    assert G.shape == (2, 3)
    with pytest.raises(ValueError, match="same number of columns"):
        get_relation("l1")(SETS, P)


def test_unknown_relation_names_the_choices():
    with pytest.raises(ValueError, match="unknown relation 'manhattan'.*l1"):
        get_relation("manhattan")


def test_custom_callable_relation():
    rel = get_relation(lambda a, b: torch.cdist(a, b, p=1) * 3)
    assert rel(SETS)[0, 1] == pytest.approx(6.0)


def test_scale_auto_keeps_the_papers_g_and_shrinks_what_cannot_be_reached():
    onehot = encode_targets(np.array([0, 1, 2, 1])).Y
    l1 = get_relation("l1")
    assert relation_max(l1, onehot) == pytest.approx(2.0)
    assert relation_scale("auto", 2.0) == 1.0  # classes: 0/2 as the paper
    assert relation_scale("auto", 6.0) == pytest.approx(2 / 6)  # 6 differing labels -> 2
    assert relation_scale("auto", 0.5) == 1.0
    assert relation_scale("max", 0.5) == pytest.approx(4.0)
    assert relation_scale("none", 9.0) == 1.0
    assert relation_scale(0.25, 9.0) == 0.25
    for bad in ("huge", -1.0, 0, float("nan"), True):
        with pytest.raises(ValueError, match="scale"):
            relation_scale(bad, 1.0)


def test_relation_max_rejects_negative_relations():
    bad = get_relation(lambda a, b: -torch.cdist(a, b))
    with pytest.raises(ValueError, match="negative"):
        relation_max(bad, SETS)

