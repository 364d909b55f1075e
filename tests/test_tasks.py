import numpy as np
import pytest

from hraml_core.splits import can_stratify, holdout_split
from hraml_core.tasks import detect_task, encode_targets, label_order


def test_can_stratify_needs_two_per_class_and_room_on_both_sides():
    y = np.array([0] * 5 + [1] * 5 + [2] * 5)
    assert can_stratify(y, 0.2)  # 3 held out, 12 kept, 3 classes
    assert not can_stratify(y, 0.1)  # 2 held out < 3 classes
    assert not can_stratify(np.array([0, 0, 0, 1]), 0.5)  # class 1 has one member


def test_holdout_split_is_seeded_sorted_and_stratified_where_possible():
    y = np.repeat([0, 1, 2], [10, 20, 30])
    part = holdout_split(y, "classification", seed=3, test_size=0.5)
    assert part.stratified and np.all(np.diff(part.train) > 0) and np.all(np.diff(part.test) > 0)
    assert sorted(np.concatenate([part.train, part.test])) == list(range(60))
    assert np.bincount(y[part.test]).tolist() == [5, 10, 15]  # proportions kept
    again = holdout_split(y, "classification", seed=3, test_size=0.5)
    assert np.array_equal(part.test, again.test)
    lone = holdout_split(np.array([0, 0, 0, 0, 1, 1, 1, 2]), "classification", seed=0, test_size=0.25)
    assert not lone.stratified and len(lone.test) == 2  # class 2 has one member: a plain split
    sub = holdout_split(y, "classification", seed=0, train_size=12)
    assert len(sub.train) == 12 and np.bincount(y[sub.train]).tolist() == [2, 4, 6]
    labels = np.eye(3)[np.arange(30) % 3]
    assert not holdout_split(labels, "multilabel", seed=0, test_size=0.3).stratified
    with pytest.raises(ValueError, match="test_size must lie in"):
        holdout_split(y, "classification", seed=0, test_size=1.5)


@pytest.mark.parametrize(
    "y, task",
    [
        (np.array([3, 1, 3]), "classification"),
        (np.array(["a", "b"]), "classification"),
        (np.array([[1], [2]]), "classification"),
        (np.array([[1, 0, 1], [0, 0, 1]]), "multilabel"),
        (np.array([[0.2, 0.8], [0.5, 0.5]]), "distribution"),
    ],
)
def test_detect_task(y, task):
    assert detect_task(y) == task


def test_encode_targets_builds_the_label_matrix():
    enc = encode_targets(np.array(["b", "a", "b"]))
    assert enc.task == "classification" and list(enc.classes) == ["a", "b"]
    assert enc.Y.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert encode_targets(np.array([[0.3, 0.7], [1.0, 0.0]])).classes is None


@pytest.mark.parametrize(
    "y, task, message",
    [
        (np.array([[0.5, 0.7], [0.2, 0.1]]), "auto", "neither 0/1 indicators nor"),
        (np.array([1, 1, 1]), "auto", "single class"),
        (np.array([1.0, np.nan]), "auto", "NaN"),
        (np.array([[1, 0], [1, 0]]), "multilabel", "same label set"),
        (np.array([[0.5, 0.6], [0.1, 0.9]]), "distribution", "sum to 1; 1 rows do not"),
        (np.array([], dtype=float), "auto", "empty"),
        (np.array([0, 1]), "regression", "unknown task"),
        # object arrays (a pandas column) that np.unique cannot sort
        (np.array(["a", None, "b", float("nan")], dtype=object), "auto",
         r"missing \(None or NaN\) in 2 rows, the first is row 1 \(0-based\)"),
        (np.array(["a", 1, "b"], dtype=object), "auto", "mix text and numbers: row 0 is 'a', row 1 is 1"),
        (np.array([1.0, 1.0]), "auto", r"got a single class \(1.0\)$"),  # the value, not numpy's repr
        # label sets as one sequence per row: ragged, as sets, as a pandas column of lists
        ([["rock", "pop"], ["jazz"]], "auto", r"one sequence per row \(row 0: \['rock', 'pop'\]\).*MultiLabelBinarizer"),
        ([{"rock", "pop"}, {"jazz", "pop"}], "auto", r"row 0: \['pop', 'rock'\]"),
        ([1, ["a", "b"]], "auto", r"row 1: \['a', 'b'\]"),
        (np.array([["rock", "pop"], ["jazz", "pop"]]), "auto", r"must be numeric .* such as 'rock'.*MultiLabelBinarizer"),
    ],
)
def test_bad_targets_name_the_problem(y, task, message):
    with pytest.raises(ValueError, match=message):
        encode_targets(y, task)


def test_rounding_below_zero_in_a_distribution_reads_as_zero():
    D = np.array([[1 + 1e-9, -1e-9], [0.3, 0.7], [-4e-7, 1.0]])  # proportions computed as 1 minus the others
    enc = encode_targets(D)
    assert enc.task == "distribution" and enc.Y.tolist() == [[1 + 1e-9, 0.0], [0.3, 0.7], [0.0, 1.0]]
    with pytest.raises(ValueError, match="some values are negative"):
        encode_targets(np.array([[1.001, -0.001], [0.3, 0.7]]))  # beyond rounding
    with pytest.raises(ValueError, match="label distributions must be non-negative"):
        encode_targets(np.array([[1.00001, -1e-5], [0.3, 0.7]]), "distribution")


def test_label_order_groups_classes():
    Y = encode_targets(np.array([2, 0, 1, 0, 2])).Y
    assert Y[label_order(Y)].argmax(1).tolist() == [0, 0, 1, 2, 2]
