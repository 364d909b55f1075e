"""The cross-validation protocol (hraml_core.protocol) and ``hraml reproduce``: fast checks on
tiny data. What the protocol promises: stratified folds, model selection that never sees the test
fold, honest aggregation and comparison with the paper's numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hraml_core import protocol
from hraml_core.protocol import (
    Candidate,
    FoldResult,
    ProtocolConfig,
    compare_with_paper,
    cross_validate,
    fit_hraml,
    fold_splits,
    format_tables,
    summarize,
)

# Small, quick settings: one hidden layer of 16, a few epochs.
TINY = {"hidden": (16,), "dim": 8, "batch_size": 64}


def _blobs(n_per_class=20, classes=3, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    X = rng.normal(size=(len(y), d)) + 3 * np.eye(classes, d)[y]
    # column 0 holds a unique row id, so that a recorded matrix tells which rows it holds
    X[:, 0] = np.arange(len(y)) + 1000.0
    return X, y


class _DS:
    def __init__(self, X, Y, task, name="toy"):
        self.X, self.Y, self.task, self.name = X, Y, task, name


def test_fold_splits_are_stratified_and_partition_the_rows():
    y = np.repeat([0, 1, 2], [30, 20, 10])
    splits = fold_splits("classification", y, 5, seed=0)
    assert len(splits) == 5
    tests = np.concatenate([te for _, te in splits])
    assert sorted(tests) == list(range(len(y)))  # every row tested exactly once
    for train, test in splits:
        assert not set(train) & set(test)
        assert np.array_equal(np.bincount(y[test]), [6, 4, 2])  # class proportions kept
    # seeded: the same seed gives the same split, another seed another one
    again = fold_splits("classification", y, 5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))
    other = fold_splits("classification", y, 5, seed=1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(splits, other))


def test_fold_splits_fall_back_to_plain_kfold_for_rare_classes_and_label_sets():
    y = np.array([0] * 10 + [1] * 2)
    with pytest.warns(UserWarning, match="fewer than 3 folds"):
        splits = fold_splits("classification", y, 3, seed=0)
    assert sorted(np.concatenate([te for _, te in splits])) == list(range(12))
    Y = np.random.default_rng(0).integers(0, 2, size=(12, 3))
    assert len(fold_splits("multilabel", Y, 4, seed=0)) == 4
    with pytest.raises(ValueError, match="need at least"):
        fold_splits("multilabel", Y, 13, seed=0)


@pytest.mark.parametrize("selection,refit", [("curve", True), ("curve", False), ("early_stopping", True)])
def test_model_selection_never_sees_the_test_fold(monkeypatch, selection, refit):
    """Every matrix a model or a preprocessing is fitted on holds training-fold rows only."""
    from hraml_core.preprocessing import Preprocessor
    from hraml_core.training import TrainingRun

    seen: list[np.ndarray] = []
    run_init, pre_fit = TrainingRun.__init__, Preprocessor.fit_transform

    def record_run(self, X, *args, **kwargs):
        seen.append(np.asarray(X)[:, 0].copy())
        run_init(self, X, *args, **kwargs)

    def record_pre(self, X):
        seen.append(np.asarray(X)[:, 0].copy())
        return pre_fit(self, X)

    monkeypatch.setattr(TrainingRun, "__init__", record_run)
    monkeypatch.setattr(Preprocessor, "fit_transform", record_pre)
    X, y = _blobs()
    config = ProtocolConfig(
        folds=3, max_epochs=4, checkpoints=(2, 4), n_iter_no_change=2, selection=selection, refit=refit,
        candidates=(Candidate("none", TINY), Candidate("none", {**TINY, "dim": 4})),
    )
    results = cross_validate(_DS(X, y, "classification"), ["hraml"], config)
    assert len(results) == 3
    splits = fold_splits("classification", y, 3, 0)
    # the recorded fits come fold after fold; match them to folds by their rows
    test_ids = [set(X[te, 0]) for _, te in splits]
    train_ids = [set(X[tr, 0]) for tr, _ in splits]
    assert seen
    for ids in seen:
        ids = set(ids)
        fold = next(i for i, tr in enumerate(train_ids) if ids <= tr)  # a subset of one training fold
        assert not ids & test_ids[fold]
    # the selection saw validation parts smaller than the training fold (curve: fit parts)
    assert min(len(s) for s in seen) < min(len(t) for t in train_ids)


def test_fit_hraml_picks_the_candidate_and_epochs_on_validation(monkeypatch):
    X, y = _blobs()
    config = ProtocolConfig(folds=3, max_epochs=6, checkpoints=(2, 4, 6),
                            candidates=(Candidate("none", TINY), Candidate("standardize", TINY)))
    pre, model, cand, scores = fit_hraml("classification", X, y, config, seed=0)
    assert set(scores) == {"none[batch_size=64,dim=8,hidden=(16,)]", "standardize[batch_size=64,dim=8,hidden=(16,)]"}
    best_label = max(scores, key=lambda k: scores[k][0])
    assert cand.label() == best_label
    epochs = scores[best_label][1]
    assert epochs in (2, 4, 6)
    assert model.n_iter_ == epochs  # refit on the whole training fold for the chosen epochs
    assert model.transform(pre.transform(X)).shape == (len(X), 8)


def test_config_checks_and_helpers():
    with pytest.raises(ValueError, match="folds"):
        ProtocolConfig(folds=1)
    with pytest.raises(ValueError, match="selection"):
        ProtocolConfig(selection="oracle")
    with pytest.raises(ValueError, match="validation_fraction"):
        ProtocolConfig(validation_fraction=1.0)
    c = ProtocolConfig(max_epochs=60, checkpoints=(5, 50, 100))
    assert c.epoch_checkpoints() == [5, 50, 60]
    c = ProtocolConfig(validation_fraction=0.15, validation_rows=250)  # the repeats rule, at 15%
    assert c.repeats_for(175) == 5  # flags-sized: 26 validation rows, capped at 5 splits
    assert c.repeats_for(534) == 4  # emotions-sized: 80 rows
    assert c.repeats_for(1806) == 1  # uspst-sized: 271 rows
    assert ProtocolConfig(validation_repeats=2).repeats_for(10_000) == 2
    with pytest.raises(ValueError, match="smoothing"):
        ProtocolConfig(smoothing=-1)


def test_pca_is_optional():
    X = np.random.default_rng(0).normal(size=(30, 120))
    assert ProtocolConfig().preprocessor("pca", 0).fit_transform(X).shape == (30, 29)  # min(100, n - 1)
    off = ProtocolConfig(pca_components=0)
    assert off.preprocessor("pca", 0).fit_transform(X).shape == (30, 120)
    Z = off.preprocessor("pca+standardize", 0).fit_transform(X)
    assert Z.shape == (30, 120) and np.allclose(Z.std(0), 1)
    with pytest.raises(ValueError, match="pca_components"):
        ProtocolConfig(pca_components=-5)


def test_smooth_curve_averages_neighbouring_checkpoints():
    from hraml_core.protocol import smooth_curve

    curve = [0.5, 0.9, 0.6, 0.7, 0.7]
    assert np.allclose(smooth_curve(curve, 0), curve)
    assert np.allclose(smooth_curve(curve, 1), [0.7, 2.0 / 3, 2.2 / 3, 2.0 / 3, 0.7])
    # a lone spike (0.9 at the second checkpoint) no longer wins over a plateau
    assert int(np.argmax(smooth_curve(curve, 1))) != 1


def _fold(dataset, method, fold, **metrics):
    return FoldResult(dataset, method, fold, metrics, seconds=1.0)


def test_summarize_mean_and_sample_std():
    results = [
        _fold("binalpha", "hraml", 0, accuracy=0.70),
        _fold("binalpha", "hraml", 1, accuracy=0.80),
        _fold("binalpha", "hraml", 2, accuracy=0.75),
        _fold("binalpha", "raw", 0, accuracy=0.60),
    ]
    rows = {(r["method"], r["metric"]): r for r in summarize(results)}
    h = rows[("hraml", "accuracy")]
    assert h["mean"] == pytest.approx(0.75)
    assert h["std"] == pytest.approx(0.05)  # ddof=1, MATLAB's std
    assert h["n_folds"] == 3 and h["seconds"] == pytest.approx(3.0)
    assert h["paper"] == pytest.approx(0.7243)
    assert rows[("raw", "accuracy")]["std"] == 0.0  # one fold: no spread


def test_format_tables_prints_the_paper_numbers_beside_ours():
    results = [_fold("uspst", "hraml", i, accuracy=a) for i, a in enumerate((0.94, 0.95))]
    results += [_fold("binalpha", "raw", 0, accuracy=0.7)]
    results += [_fold("flags", "hraml", 0, hamming_loss=0.28, ranking_loss=0.2, one_error=0.2, coverage=3.7,
                      average_precision=0.82)]
    text = format_tables(summarize(results))
    assert "Table 1" in text and "Table 2" in text and "Table 3" not in text
    assert "0.9450±0.0071" in text  # ours
    assert "0.9537 (hraml)" in text  # paper best on uspst is the paper's HRAML
    assert "0.7243" in text and "0.7250 (raml_svr)" in text  # binalpha: paper HRAML, paper best
    assert "0.2791" in text and "3.6769" in text and "0.8244" in text
    assert "accuracy (up)" in text and "hamming_loss (down)" in text


def test_compare_with_paper_verdicts_follow_metric_direction():
    rows = [
        {"dataset": "binalpha", "method": "hraml", "metric": "accuracy", "mean": 0.7300},
        {"dataset": "uspst", "method": "hraml", "metric": "accuracy", "mean": 0.9400},
        {"dataset": "emotions", "method": "hraml", "metric": "hamming_loss", "mean": 0.2000},
        {"dataset": "emotions", "method": "hraml", "metric": "ranking_loss", "mean": 0.1400},
        {"dataset": "emotions", "method": "raw", "metric": "ranking_loss", "mean": 0.1000},  # not hraml
        {"dataset": "iris", "method": "hraml", "metric": "accuracy", "mean": 0.99},  # not in the paper
    ]
    v = {(r["dataset"], r["metric"]): r for r in compare_with_paper(rows)}
    assert set(v) == {("binalpha", "accuracy"), ("uspst", "accuracy"), ("emotions", "hamming_loss"),
                      ("emotions", "ranking_loss")}
    assert v[("binalpha", "accuracy")]["meets"] and v[("binalpha", "accuracy")]["paper_best_method"] == "raml_svr"
    assert v[("binalpha", "accuracy")]["gap"] == pytest.approx(0.0050)
    assert not v[("uspst", "accuracy")]["meets"]
    assert v[("uspst", "accuracy")]["gap"] == pytest.approx(0.9400 - 0.9537)
    assert v[("emotions", "hamming_loss")]["meets"]  # lower is better: 0.2000 < 0.2046
    assert not v[("emotions", "ranking_loss")]["meets"]  # 0.1400 > 0.1382 (raml_krr)
    assert v[("emotions", "ranking_loss")]["paper_best_method"] == "raml_krr"


def test_parallel_folds_give_the_same_results_as_sequential():
    X, y = _blobs()
    config = ProtocolConfig(folds=3, max_epochs=3, checkpoints=(3,), candidates=(Candidate("standardize", TINY),))
    ds = _DS(X, y, "classification")
    one = cross_validate(ds, ["hraml", "raw"], config)
    two = cross_validate(ds, ["hraml", "raw"], config, n_jobs=2)
    assert [(r.fold, r.method, r.chosen) for r in one] == [(r.fold, r.method, r.chosen) for r in two]
    assert [r.metrics for r in one] == [r.metrics for r in two]


@pytest.mark.parametrize("dataset,metric", [("iris", "accuracy"), ("synthetic_multilabel", "average_precision")])
def test_reproduce_command_writes_results(tmp_path, capsys, dataset, metric):
    from hraml_core.cli import main

    out = tmp_path / "out"
    status = main(["reproduce", "--datasets", dataset, "--folds", "3", "--methods", "hraml,raw",
                   "--max-epochs", "3", "--out", str(out), "--no-progress"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "Chosen on validation" in printed and "fits in" in printed
    records = json.loads((out / "results.json").read_text())
    assert records and all(set(r) == {"dataset", "method", "metric", "mean", "std"} for r in records)
    by = {(r["method"], r["metric"]): r for r in records}
    assert {m for m, _ in by} == {"hraml", "raw"}
    assert 0 <= by[("hraml", metric)]["mean"] <= 1 and by[("hraml", metric)]["std"] >= 0
    assert (out / "results.csv").exists()
    folds = json.loads((out / "folds.json").read_text())
    assert len(folds) == 6 and {f["fold"] for f in folds} == {0, 1, 2}


def test_reproduce_command_rejects_bad_arguments(capsys):
    from hraml_core.cli import main

    assert main(["reproduce", "--datasets", "iris", "--methods", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["reproduce", "--datasets", "iris", "--folds", "1"]) == 2
    assert main(["reproduce", "--datasets", "iris", "--workers", "0"]) == 2


def test_default_grid_covers_every_task():
    for task in ("classification", "multilabel", "distribution"):
        cands = protocol.DEFAULT_CANDIDATES[task]
        assert cands and all(isinstance(c, Candidate) for c in cands)
