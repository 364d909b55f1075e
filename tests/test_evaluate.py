"""Tests for hraml_core.evaluate: every metric and learner against values worked out by hand."""
import gzip
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from sklearn.metrics import coverage_error, label_ranking_average_precision_score, label_ranking_loss
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from hraml_core.evaluate import (
    DEFAULT_K,
    LDL_METRICS,
    METRIC_DIRECTIONS,
    MULTILABEL_METRICS,
    PRIMARY_METRIC,
    AAkNN,
    MLkNN,
    evaluate_embedding,
    knn_accuracy,
    ldl_metrics,
    multilabel_metrics,
)
from hraml_core.tasks import TASKS

# --------------------------------------------------------------------------------------------------
# kNN accuracy
# --------------------------------------------------------------------------------------------------
# 1-D training points 0, 1, 2 (class 0, 0, 1) and 10, 11 (class 1); test 0.4, 1.6, 9 (0, 0, 1).
Z_TR = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
Y_TR = np.array([0, 0, 1, 1, 1])
Z_TE = np.array([[0.4], [1.6], [9.0]])
Y_TE = np.array([0, 0, 1])


def test_knn_accuracy_by_hand():
    # k=1: 0.4 -> 0 (d .4) class 0 ok; 1.6 -> 2 (d .4, vs 1 at .6) class 1 wrong; 9 -> 10 ok: 2/3
    assert knn_accuracy(Z_TR, Y_TR, Z_TE, Y_TE, k=1) == pytest.approx(2 / 3)
    # k=3: 0.4 -> {0,1,2} = 0,0,1 -> 0 ok; 1.6 -> {2,1,0} = 1,0,0 -> 0 ok; 9 -> {10,11,2} -> 1 ok: 3/3
    assert knn_accuracy(Z_TR, Y_TR, Z_TE, Y_TE, k=3) == pytest.approx(1.0)


def test_knn_accuracy_string_labels_and_default_k():
    names = np.array(["cat", "cat", "dog", "dog", "dog"])
    assert knn_accuracy(Z_TR, names, Z_TE, np.array(["cat", "cat", "dog"])) == pytest.approx(2 / 3)
    # evaluate_embedding's classification default is 1-NN (2/3 here, where 3-NN gives 1.0)
    assert DEFAULT_K["classification"] == 1
    assert evaluate_embedding("classification", Z_TR, Y_TR, Z_TE, Y_TE) == {"accuracy": pytest.approx(2 / 3)}
    assert evaluate_embedding("classification", Z_TR, Y_TR, Z_TE, Y_TE, k=3)["accuracy"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------
# MLkNN on a hand-worked set: 6 points in 1-D, two labels (A, B), k = 2, s = 1
# --------------------------------------------------------------------------------------------------
# x:     0    1    3    7    12   20
# A:     1    1    0    0    1    0       3 of 6 -> P(H1_A) = (1+3)/(2+6) = 1/2
# B:     0    0    1    1    1    1       4 of 6 -> P(H1_B) = (1+4)/(2+6) = 5/8
# 2 nearest other points (no distance ties):
#   0 -> {1, 3}   1 -> {0, 3}   3 -> {1, 0}   7 -> {3, 12}   12 -> {7, 20}   20 -> {12, 7}
# neighbour counts C_A = [1, 1, 2, 1, 0, 1], C_B = [1, 1, 0, 2, 2, 2]
# A: with A (x=0,1,12): C = 1,1,0 -> c = [1,2,0];  without (3,7,20): C = 2,1,1 -> c' = [0,2,1]
#    P(E_j|H1) = (1+c)/(1*3+3) = [2,3,1]/6;  P(E_j|H0) = (1+c')/(3+3) = [1,3,2]/6
# B: with B (3,7,12,20): C = 0,2,2,2 -> c = [1,0,3];  without (0,1): C = 1,1 -> c' = [0,2,0]
#    P(E_j|H1) = (1+c)/(3+4) = [2,1,4]/7;  P(E_j|H0) = (1+c')/(3+2) = [1,3,1]/5
ML_X = np.array([[0.0], [1.0], [3.0], [7.0], [12.0], [20.0]])
ML_Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 1]])
# test points and their 2 nearest training points:
#   0.4 -> {0, 1}: C_A = 2, C_B = 0      9   -> {7, 12}: C_A = 1, C_B = 2
#   4.5 -> {3, 7}: C_A = 0, C_B = 2      2.2 -> {3, 1}:  C_A = 1, C_B = 1
ML_XT = np.array([[0.4], [9.0], [4.5], [2.2]])
# A: C=2: (1/2)(1/6) vs (1/2)(2/6) -> 1/3;  C=1: (1/2)(3/6) vs (1/2)(3/6) -> 1/2 (a tie: off);
#    C=0: (1/2)(2/6) vs (1/2)(1/6) -> 2/3
# B: C=0: (5/8)(2/7)=50/280 vs (3/8)(1/5)=21/280 -> 50/71;  C=2: (5/8)(4/7)=100/280 vs 21/280 -> 100/121;
#    C=1: (5/8)(1/7)=25/280 vs (3/8)(3/5)=63/280 -> 25/88
ML_POST = np.array([[1 / 3, 50 / 71], [1 / 2, 100 / 121], [2 / 3, 100 / 121], [1 / 2, 25 / 88]])
ML_PRED = np.array([[0, 1], [0, 1], [1, 1], [0, 0]])


def test_mlknn_tables_by_hand():
    m = MLkNN(k=2, s=1).fit(ML_X, ML_Y)
    np.testing.assert_allclose(m.prior1_, [1 / 2, 5 / 8])
    np.testing.assert_array_equal(m.c1_, [[1, 1], [2, 0], [0, 3]])  # rows j = 0..2, columns A, B
    np.testing.assert_array_equal(m.c0_, [[0, 0], [2, 2], [1, 0]])
    np.testing.assert_allclose(m.cond1_, [[2 / 6, 2 / 7], [3 / 6, 1 / 7], [1 / 6, 4 / 7]])
    np.testing.assert_allclose(m.cond0_, [[1 / 6, 1 / 5], [3 / 6, 3 / 5], [2 / 6, 1 / 5]])


def test_mlknn_posteriors_and_map_rule_by_hand():
    m = MLkNN(k=2, s=1).fit(ML_X, ML_Y)
    np.testing.assert_allclose(m.predict_proba(ML_XT), ML_POST)
    np.testing.assert_array_equal(m.predict(ML_XT), ML_PRED)  # the 1/2 ties stay off
    pred, proba = m.predict_with_proba(ML_XT)
    np.testing.assert_array_equal(pred, ML_PRED)
    np.testing.assert_allclose(proba, ML_POST)


def test_mlknn_defaults_and_smoothing():
    assert (MLkNN().k, MLkNN().s) == (10, 1.0)
    # s = 2 changes the prior: P(H1_A) = (2+3)/(4+6) = 1/2, P(H1_B) = (2+4)/(4+6) = 3/5
    # and P(E_j|H1_B) = (2+c)/(2*3+4) = [3,2,5]/10
    m = MLkNN(k=2, s=2).fit(ML_X, ML_Y)
    np.testing.assert_allclose(m.prior1_, [1 / 2, 3 / 5])
    np.testing.assert_allclose(m.cond1_[:, 1], [3 / 10, 2 / 10, 5 / 10])


def test_mlknn_own_point_is_not_its_neighbour_even_when_duplicated():
    # x=0 appears twice (labels 1 and 0), x=5 once (label 1). With k=1 each copy of 0 has the
    # other copy as neighbour: C = [0, 1, 1] (5's neighbour is a 0, the first or second copy).
    # If a point counted itself, the first copy (label 1) would get C=1, not 0.
    m = MLkNN(k=1).fit(np.array([[0.0], [0.0], [5.0]]), np.array([[1], [0], [1]]))
    # labelled samples: x0 with C=0 and x5 with C=0 or 1; unlabelled sample x0' with C=1
    assert m.c1_[:, 0].sum() == 2 and m.c1_[0, 0] >= 1
    np.testing.assert_array_equal(m.c0_[:, 0], [0, 1])


# --------------------------------------------------------------------------------------------------
# multi-label metrics
# --------------------------------------------------------------------------------------------------
# three labels, three samples (no score ties):
#   1: relevant {0},   scores .9 .5 .1  -> ranking 0,1,2
#   2: relevant {1,2}, scores .8 .7 .2  -> ranking 0,1,2 (top label 0 is irrelevant)
#   3: relevant {0,1}, scores .2 .6 .4  -> ranking 1,2,0
YT = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]])
YP = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1]])
SC = np.array([[0.9, 0.5, 0.1], [0.8, 0.7, 0.2], [0.2, 0.6, 0.4]])
EXPECTED_ML = {
    # wrong bits: row1 0, row2 2 (labels 0, 2), row3 2 (labels 0, 2) -> 4 / 9
    "hamming_loss": 4 / 9,
    # misordered (relevant, irrelevant) pairs: row1 0/2, row2 2/2 (.7<.8, .2<.8), row3 1/2 (.2<.4)
    # -> (0 + 1 + 1/2) / 3 = 1/2
    "ranking_loss": 0.5,
    # top label: row1 0 (relevant), row2 0 (irrelevant), row3 1 (relevant) -> 1/3
    "one_error": 1 / 3,
    # deepest relevant rank minus 1: row1 1-1=0, row2 3-1=2, row3 3-1=2 -> 4/3
    "coverage": 4 / 3,
    # precision at each relevant label: row1 1/1; row2 label1 1/2, label2 2/3 -> 7/12;
    # row3 label1 1/1, label0 2/3 -> 5/6;  (1 + 7/12 + 5/6) / 3 = 29/36
    "average_precision": 29 / 36,
}


def test_multilabel_metrics_by_hand():
    out = multilabel_metrics(YT, YP, SC)
    assert list(out) == list(MULTILABEL_METRICS)
    for name, value in EXPECTED_ML.items():
        assert out[name] == pytest.approx(value), name


def test_coverage_is_sklearn_minus_one():
    # sklearn counts from 1: (1 + 3 + 3) / 3 = 7/3; the Mulan convention is 7/3 - 1 = 4/3
    assert coverage_error(YT, SC) == pytest.approx(7 / 3)
    assert multilabel_metrics(YT, YP, SC)["coverage"] == pytest.approx(7 / 3 - 1)
    rng = np.random.default_rng(0)
    Y = (rng.random((50, 5)) < 0.4).astype(int)
    Y[~Y.any(axis=1), 0] = 1
    S = rng.random((50, 5))
    assert multilabel_metrics(Y, Y, S)["coverage"] == pytest.approx(coverage_error(Y, S) - 1)


def test_samples_without_labels_are_left_out_of_ranking_metrics():
    # a fourth sample with no relevant label and one wrong predicted bit
    yt = np.vstack([YT, [0, 0, 0]])
    yp = np.vstack([YP, [0, 1, 0]])
    sc = np.vstack([SC, [0.1, 0.9, 0.5]])
    out = multilabel_metrics(yt, yp, sc)
    assert out["hamming_loss"] == pytest.approx(5 / 12)  # counted there: (4 + 1) / 12
    for name in ("ranking_loss", "one_error", "coverage", "average_precision"):
        assert out[name] == pytest.approx(EXPECTED_ML[name]), name  # unchanged: the sample is skipped
    # scikit-learn would count it (ranking loss 0, coverage 0, precision 1) and drift:
    assert label_ranking_loss(yt, sc) == pytest.approx((0 + 1 + 0.5 + 0) / 4)
    assert coverage_error(yt, sc) - 1 == pytest.approx((1 + 3 + 3 + 0) / 4 - 1)


def test_no_sample_with_a_label_gives_nan_ranking_metrics():
    out = multilabel_metrics(np.zeros((2, 3)), [[0, 1, 0], [0, 0, 0]], [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    assert out["hamming_loss"] == pytest.approx(1 / 6)
    for name in ("ranking_loss", "one_error", "coverage", "average_precision"):
        assert math.isnan(out[name]), name


def test_sample_with_every_label_relevant_is_kept():
    # row1 as above (0, 0, 0, 1) plus a row with all three labels relevant:
    # ranking loss 0 (no pairs), one-error 0, coverage 3 - 1 = 2, precision 1
    out = multilabel_metrics([[1, 0, 0], [1, 1, 1]], [[1, 0, 0], [1, 1, 1]], [[0.9, 0.5, 0.1], [0.3, 0.2, 0.1]])
    assert out["ranking_loss"] == 0.0
    assert out["one_error"] == 0.0
    assert out["coverage"] == pytest.approx((0 + 2) / 2)
    assert out["average_precision"] == pytest.approx(1.0)


def test_multilabel_metrics_ties():
    # relevant {1}; scores .5 .5 .1 (labels 0 and 1 tied on top)
    out = multilabel_metrics([[0, 1, 0]], [[0, 1, 0]], [[0.5, 0.5, 0.1]])
    assert out["one_error"] == 1.0  # argmax takes the first tied label, 0, which is irrelevant
    assert out["ranking_loss"] == pytest.approx(1 / 2)  # pair (1, 0) tied counts as wrong, (1, 2) right
    assert out["coverage"] == pytest.approx(1.0)  # tied label ranked pessimistically at 2, minus 1
    assert out["average_precision"] == pytest.approx(1 / 2)  # 1 relevant among 2 labels scored >= .5


def test_vectorised_ranking_metrics_agree_with_sklearn():
    rng = np.random.default_rng(1)
    for L in (2, 3, 6, 14):
        Y = (rng.random((300, L)) < 0.4).astype(int)
        Y[~Y.any(axis=1), 0] = 1
        S = rng.integers(0, 4, size=(300, L)).astype(float)  # many ties
        out = multilabel_metrics(Y, Y, S)
        assert out["ranking_loss"] == pytest.approx(label_ranking_loss(Y, S), abs=1e-12)
        assert out["average_precision"] == pytest.approx(label_ranking_average_precision_score(Y, S), abs=1e-12)


def test_vectorised_ranking_metrics_chunking(monkeypatch):
    import hraml_core.evaluate as ev

    rng = np.random.default_rng(2)
    Y = (rng.random((40, 5)) < 0.5).astype(int)
    Y[~Y.any(axis=1), 1] = 1
    S = rng.random((40, 5))
    whole = multilabel_metrics(Y, Y, S)
    monkeypatch.setattr(ev, "_RANK_CHUNK_CELLS", 60)  # 2 samples a chunk
    assert multilabel_metrics(Y, Y, S) == pytest.approx(whole)


# --------------------------------------------------------------------------------------------------
# AA-kNN and label-distribution metrics
# --------------------------------------------------------------------------------------------------
def test_aaknn_by_hand():
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    D = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])
    m = AAkNN(k=2).fit(X, D)
    # 0.4 -> {0 (d .4), 1 (d .6)}: ([1,0] + [.5,.5]) / 2 = [.75, .25]
    # 7   -> {10 (d 3), 2 (d 5)}:  ([.2,.8] + [0,1]) / 2 = [.1, .9]
    np.testing.assert_allclose(m.predict([[0.4], [7.0]]), [[0.75, 0.25], [0.1, 0.9]])
    # k = 4 (the default, Geng's setting): mean of all four = [1.7, 2.3] / 4
    assert AAkNN().k == 4 == DEFAULT_K["distribution"]
    np.testing.assert_allclose(AAkNN().fit(X, D).predict([[3.0]]), [[0.425, 0.575]])


def test_ldl_metrics_by_hand():
    # row 1: p = [.5, .5, 0], q = [.25, .5, .25]
    #   chebyshev max(.25, 0, .25) = .25
    #   clark sqrt(.25^2/.75^2 + 0 + .25^2/.25^2) = sqrt(1/9 + 1) = sqrt(10)/3
    #   canberra .25/.75 + 0 + .25/.25 = 4/3
    #   kl .5 ln(.5/.25) + .5 ln(.5/.5) + 0 ln 0 (:= 0) = ln(2)/2
    #   cosine (.125 + .25) / (sqrt(.5) sqrt(.375)) = .375 / sqrt(.1875) = sqrt(3)/2
    #   intersection .25 + .5 + 0 = .75
    # row 2: p = q = [1, 0, 0]: every distance 0 (0/0 terms of Clark / Canberra := 0), cosine 1,
    #   intersection 1
    P = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    Q = np.array([[0.25, 0.5, 0.25], [1.0, 0.0, 0.0]])
    out = ldl_metrics(P, Q)
    assert list(out) == list(LDL_METRICS)
    expected = {
        "chebyshev": 0.25 / 2,
        "clark": math.sqrt(10) / 3 / 2,
        "canberra": 4 / 3 / 2,
        "kl": math.log(2) / 2 / 2,
        "cosine": (math.sqrt(3) / 2 + 1) / 2,
        "intersection": (0.75 + 1) / 2,
    }
    for name, value in expected.items():
        assert out[name] == pytest.approx(value, rel=1e-12), name


def test_kl_with_a_predicted_zero_is_large_but_finite():
    # p = [.5, .5], q = [1, 0]: .5 ln(.5/1) + .5 ln(.5/1e-12) = ln(.5) + 6 ln(10) = 13.1224
    out = ldl_metrics([[0.5, 0.5]], [[1.0, 0.0]])
    assert out["kl"] == pytest.approx(math.log(0.5) + 6 * math.log(10))
    # Clark: .5^2/1.5^2 + .5^2/.5^2 = 1/9 + 1
    assert out["clark"] == pytest.approx(math.sqrt(10 / 9))


# --------------------------------------------------------------------------------------------------
# entry point, directions, errors
# --------------------------------------------------------------------------------------------------
def test_evaluate_embedding_multilabel_and_distribution_match_the_parts():
    out = evaluate_embedding("multilabel", ML_X, ML_Y, ML_XT, ML_PRED, k=2)
    assert out == pytest.approx(multilabel_metrics(ML_PRED, ML_PRED, ML_POST))
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    D = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])
    Dt = np.array([[0.5, 0.5], [0.0, 1.0]])
    out = evaluate_embedding("distribution", X, D, [[0.4], [7.0]], Dt, k=2)
    assert out == pytest.approx(ldl_metrics(Dt, [[0.75, 0.25], [0.1, 0.9]]))
    assert DEFAULT_K["multilabel"] == 10


def test_directions_and_primary_metrics_cover_every_output():
    assert set(PRIMARY_METRIC) == set(TASKS)
    names = {"accuracy", *MULTILABEL_METRICS, *LDL_METRICS}
    assert set(METRIC_DIRECTIONS) == names
    assert set(METRIC_DIRECTIONS.values()) == {"max", "min"}
    ups = {name for name, d in METRIC_DIRECTIONS.items() if d == "max"}
    assert ups == {"accuracy", "average_precision", "cosine", "intersection"}
    for task, metric in PRIMARY_METRIC.items():
        assert metric in names, task


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: evaluate_embedding("regression", Z_TR, Y_TR, Z_TE, Y_TE), "unknown task"),
        (lambda: evaluate_embedding("classification", Z_TR, Y_TR[:4], Z_TE, Y_TE), "Z_train has 5 rows but y_train has 4"),
        (lambda: evaluate_embedding("classification", Z_TR, Y_TR, np.ones((3, 2)), Y_TE), "features"),
        (lambda: evaluate_embedding("classification", Z_TR, Y_TR, Z_TE, Y_TE, k=6), "larger than the training set"),
        (lambda: evaluate_embedding("classification", Z_TR, Y_TR, Z_TE, Y_TE, k=0), "positive integer"),
        (lambda: evaluate_embedding("classification", Z_TR, Y_TR, Z_TE, Y_TE, k=1.5), "positive integer"),
        (lambda: evaluate_embedding("classification", Z_TR, Y_TR, Z_TE, Y_TE, k=True), "positive integer"),
        (lambda: evaluate_embedding("classification", np.where(Z_TR == 1, np.nan, Z_TR), Y_TR, Z_TE, Y_TE), "NaN"),
        (lambda: evaluate_embedding("classification", Z_TR, [0, 0, np.nan, 1, 1], Z_TE, Y_TE), "NaN"),
        (lambda: evaluate_embedding("multilabel", ML_X, ML_Y, ML_XT, ML_PRED, k=6), "at most 5"),
        (lambda: evaluate_embedding("multilabel", ML_X, ML_Y * 2, ML_XT, ML_PRED, k=2), "0/1"),
        (lambda: evaluate_embedding("multilabel", ML_X, ML_Y, ML_XT, ML_PRED[:, :1], k=2), "labels"),
        (lambda: evaluate_embedding("multilabel", ML_X, ML_Y[:5], ML_XT, ML_PRED, k=2), "rows"),
        (lambda: evaluate_embedding("distribution", ML_X, -ML_Y, ML_XT, ML_PRED), "non-negative"),
        (lambda: evaluate_embedding("distribution", ML_X, ML_Y[:, 0], ML_XT, ML_PRED), "2-D"),
        (lambda: multilabel_metrics(YT, YP, SC[:, :2]), "shape"),
        (lambda: multilabel_metrics(YT, YP, np.where(SC > 0.8, np.nan, SC)), "NaN"),
        (lambda: ldl_metrics([[0.5, 0.5]], [[0.0, 0.0]]), "all zeros"),
        (lambda: ldl_metrics([[0.5, 0.5]], [[0.5, 0.25, 0.25]]), "shape"),
        (lambda: MLkNN(k=2, s=0).fit(ML_X, ML_Y), "smoothing"),
        (lambda: MLkNN(k=2).predict(ML_XT), "not fitted"),
        (lambda: MLkNN(k=2).fit(ML_X, ML_Y).predict(np.ones((2, 3))), "features"),
        (lambda: AAkNN(k=5).fit(ML_X[:4], ML_Y[:4]), "larger than the training set"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_the_default_k_is_lowered_to_what_a_small_training_set_allows():
    # MLkNN's default 10 on 6 training rows: 5 (each row's neighbours other than itself)
    Y_test = np.array([[1, 0], [0, 1], [0, 1], [1, 0]])
    assert evaluate_embedding("multilabel", ML_X, ML_Y, ML_XT, Y_test) == \
        evaluate_embedding("multilabel", ML_X, ML_Y, ML_XT, Y_test, k=5)
    # AA-kNN's default 4 on 3 rows: 3
    D = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    assert evaluate_embedding("distribution", ML_X[:3], D, ML_XT, np.tile([0.5, 0.5], (4, 1))) == \
        evaluate_embedding("distribution", ML_X[:3], D, ML_XT, np.tile([0.5, 0.5], (4, 1)), k=3)


def test_mlknn_k_may_be_one_less_than_the_training_set():
    out = evaluate_embedding("multilabel", ML_X, ML_Y, ML_XT, ML_PRED, k=5)
    assert set(out) == set(MULTILABEL_METRICS)


# --------------------------------------------------------------------------------------------------
# MLkNN on the real emotions set (Mulan) against the paper's raw-MLkNN row
# --------------------------------------------------------------------------------------------------
# Table 2 of the paper, MLkNN on raw features (emotions)
PAPER_EMOTIONS = {
    "hamming_loss": 0.2137,
    "ranking_loss": 0.1729,
    "one_error": 0.3317,
    "coverage": 1.9158,
    "average_precision": 0.7808,
}


@pytest.fixture(scope="module")
def emotions(shared_data):
    arff = pytest.importorskip("arff")
    folder = shared_data / "emotions"
    if not (folder / "emotions.orig.arff.gz").is_file():
        pytest.skip(f"{folder / 'emotions.orig.arff.gz'} not present")
    with gzip.open(folder / "emotions.orig.arff.gz", "rt") as f:
        data = arff.load(f)
    with gzip.open(folder / "emotions.xml.gz", "rb") as f:
        labels = [el.get("name") for el in ET.fromstring(f.read())]
    names = [a[0] for a in data["attributes"]]
    values = np.array(data["data"], dtype=np.float64)
    label_cols = [names.index(n) for n in labels]
    feature_cols = [i for i in range(len(names)) if i not in label_cols]
    X, Y = values[:, feature_cols], values[:, label_cols].astype(int)
    assert X.shape == (593, 72) and Y.shape == (593, 6)
    return X, Y


def _standardised_mlknn(X, Y, train, test):
    scaler = StandardScaler().fit(X[train])  # fitted on the training part only
    return evaluate_embedding("multilabel", scaler.transform(X[train]), Y[train], scaler.transform(X[test]), Y[test])


@pytest.mark.data
def test_mlknn_emotions_ten_fold_cv_near_the_paper(emotions):
    # Measured (KFold(10, shuffle, seed 0), features standardised on the training fold):
    # hamming .1954, ranking .1616, one-error .2564, coverage 1.786, avg precision .8034. Other
    # seeds (1-4) gave one-error .251-.280 and coverage 1.75-1.80; min-max scaling gave about the
    # same (.193 / .158 / .260 / 1.770 / .806); raw unscaled features are far off
    # (.261 / .254 / .385 / 2.22 / .716) and fail the tolerances below. CV trains on 534 samples,
    # the paper's split on 391, so CV lands a little better than the paper on every metric; the
    # tolerances are that gap plus the seed-to-seed spread.
    X, Y = emotions
    folds = [_standardised_mlknn(X, Y, tr, te) for tr, te in KFold(10, shuffle=True, random_state=0).split(X)]
    mean = {m: float(np.mean([f[m] for f in folds])) for m in MULTILABEL_METRICS}
    tolerance = {"hamming_loss": 0.03, "ranking_loss": 0.03, "one_error": 0.1, "coverage": 0.25, "average_precision": 0.03}
    for m in MULTILABEL_METRICS:
        assert abs(mean[m] - PAPER_EMOTIONS[m]) <= tolerance[m], (m, mean[m], PAPER_EMOTIONS[m])


@pytest.mark.data
def test_mlknn_emotions_train_test_split_reproduces_the_paper(emotions):
    # The paper's numbers are multiples of 1/202 (one-error .3317 = 67/202, coverage 1.9158 =
    # 387/202, Hamming .2137 = 259/1212): a single 391 / 202 train / test split, the sizes of
    # Mulan's emotions-train / emotions-test. Training on the first 391 rows (standardised on
    # them) and testing on the last 202 gives, measured: Hamming .2153 (261/1212), ranking .1714,
    # one-error .3218 (65/202), coverage 1.9158 (387/202, identical), avg precision .7839.
    # (Min-max scaling gives .2087 / .1586 / .2822 / 1.876 / .7965: standardising matches better.)
    X, Y = emotions
    out = _standardised_mlknn(X, Y, np.arange(391), np.arange(391, 593))
    assert out["coverage"] == pytest.approx(387 / 202, abs=1e-9)
    for m in ("hamming_loss", "ranking_loss", "one_error", "average_precision"):
        assert abs(out[m] - PAPER_EMOTIONS[m]) <= 0.01, (m, out[m], PAPER_EMOTIONS[m])
