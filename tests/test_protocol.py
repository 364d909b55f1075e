"""The cross-validation protocol (hraml_core.protocol) and ``hraml reproduce``: fast checks on
tiny data. What the protocol promises: stratified folds, model selection that never sees the test
fold, honest aggregation and comparison with the paper's numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

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


@pytest.mark.slow
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
    assert "no fixed train/test split for " + dataset in printed  # the default --split cv,fixed
    records = json.loads((out / "results.json").read_text())
    assert records and all(set(r) == {"dataset", "method", "metric", "mean", "std", "split", "protocol"}
                           for r in records)
    assert {(r["split"], r["protocol"]) for r in records} == {("cv", "project")}
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
    assert main(["reproduce", "--datasets", "iris", "--protocol", "mine"]) == 2
    assert "unknown protocol(s) mine; choose from project, authors" in capsys.readouterr().err
    assert main(["reproduce", "--datasets", "iris", "--split", "cv,holdout"]) == 2
    assert "unknown split(s) holdout; choose from cv, fixed" in capsys.readouterr().err
    # a fixed split only: iris has none, so nothing is left to run
    assert main(["reproduce", "--datasets", "iris", "--split", "fixed"]) == 2
    assert "nothing to run" in capsys.readouterr().err


def test_default_grid_covers_every_task():
    for task in ("classification", "multilabel", "distribution"):
        cands = protocol.DEFAULT_CANDIDATES[task]
        assert cands and all(isinstance(c, Candidate) for c in cands)


# -- the authors' preset, the learning-rate drop, fixed splits, verdicts ------------------------

def test_authors_preset_holds_the_authors_settings():
    from hraml_core.protocol import AUTHORS_HRAML, PROTOCOLS, get_protocol

    c = get_protocol("authors")
    assert c is PROTOCOLS["authors"] and c == ProtocolConfig.authors()
    assert c.name == "authors" and get_protocol("project") == ProtocolConfig()
    assert (c.folds, c.pca_components, c.knn_k) == (10, 100, 4)
    # 20 epochs, the metric read after every one on one 10 % validation split, the best epoch's
    # weights kept (no refit, no smoothing)
    assert c.max_epochs == 20 and c.epoch_checkpoints() == list(range(1, 21))
    assert (c.selection, c.smoothing, c.refit) == ("curve", 0, False)
    assert (c.validation_fraction, c.repeats_for(10_000), c.repeats_for(50)) == (0.1, 1, 1)
    for task, pre in (("classification", "pca"), ("multilabel", "pca+standardize"), ("distribution", "pca")):
        (cand,) = c.candidates_for(task)
        assert cand.preprocessing == pre and cand.label() == pre + "[authors]"
        # classes: targets 0 (same class) / 1 (other class), the l1 g of one-hot rows halved
        extra = {"scale": 0.5} if task == "classification" else {}
        assert cand.params == {**AUTHORS_HRAML, **extra}
    p = AUTHORS_HRAML
    assert p["hidden"] == (100,) and p["dim"] == "input"
    assert (p["out_activation"], p["init"], p["relation"]) == ("tanh", "paper", "l1")
    assert (p["optimizer"], p["momentum"]) == ("sgd", 0.9)
    # the authors' 0.01 then 0.001 on the sum over a batch's 40 pairs is 40x that on our mean
    assert (p["lr"], p["lr_drop_epoch"], p["weight_decay"]) == (0.4, 10, 0.0)
    assert (p["sampler"], p["batch_size"], p["partners"], p["balance"]) == ("neighbors", 40, 4, 0.5)
    # the embedding alone, clean inputs: not the project's multi-label defaults
    assert (p["input_skip"], p["input_noise"]) == (0.0, 0.0)
    # overrides apply on top of the preset; a bad name is refused
    assert get_protocol("authors", folds=3, seed=5).folds == 3 and get_protocol("authors", seed=5).max_epochs == 20
    with pytest.raises(ValueError, match="unknown protocol 'paper'; choose one of project, authors"):
        get_protocol("paper")


def test_authors_preset_resolves_the_output_size_to_the_input_size():
    from hraml_core.protocol import resolve_params

    assert resolve_params({"dim": "input", "lr": 0.4}, 37) == {"dim": 37, "lr": 0.4}
    assert resolve_params({"dim": 8}, 37) == {"dim": 8}
    X, y = _blobs(n_per_class=15, d=6)
    config = ProtocolConfig.authors(folds=3, max_epochs=3)
    pre, model, cand, scores = fit_hraml("classification", X, y, config, seed=0)
    width = pre.transform(X).shape[1]
    assert width == 6  # PCA-100 keeps 6 features as they are
    assert model.dim == width and model.encoder_.dim == width and model.transform(pre.transform(X)).shape == (45, 6)
    assert model.hidden == (100,) and model.optimizer == "sgd" and model.sampler == "neighbors"
    assert scores[cand.label()][1] in (1, 2, 3)


def test_cross_validate_under_the_authors_preset_records_its_name():
    X, y = _blobs(n_per_class=12)
    results = cross_validate(_DS(X, y, "classification"), ["hraml", "raw"], ProtocolConfig.authors(folds=3, max_epochs=2))
    assert {(r.protocol, r.split) for r in results} == {("authors", "cv")}
    assert all(r.chosen.startswith("pca[authors]@") for r in results if r.method == "hraml")
    rows = summarize(results)
    assert {(r["protocol"], r["split"], r["n_folds"]) for r in rows} == {("authors", "cv", 3)}


def _lr_run(**changes):
    from hraml_core.training import TrainConfig, TrainingRun

    X, y = _blobs(n_per_class=10, d=4)
    X[:, 0] = 0.0  # the row ids of _blobs would saturate the tanh
    config = TrainConfig(hidden=(8,), dim=4, batch_size=8, optimizer="sgd", momentum=0.0, lr=0.1, weight_decay=0.0,
                         seed=3, **changes)
    return TrainingRun(X, np.eye(3)[y], "classification", config)


def _weights(run):
    return [p.detach().clone() for p in run.encoder.parameters()]


def test_lr_drop_divides_the_learning_rate_by_ten_after_its_epoch():
    run = _lr_run(lr_drop_epoch=2)
    assert run.sampler.steps_per_epoch == 4  # 30 rows, 8 per step
    rates = []
    for _ in range(12):
        run.step()
        rates.append(run.optimizer.param_groups[0]["lr"])  # the rate the step just used
    assert rates == pytest.approx([0.1] * 8 + [0.01] * 4)  # epochs 1-2 at lr, epoch 3 at lr / 10
    assert run.current_lr() == pytest.approx(0.01)
    assert _lr_run().current_lr() == 0.1 and _lr_run(lr_drop_epoch=None)._lr_drop_step is None


def test_lr_drop_scales_the_update_itself():
    """Plain SGD (no momentum): the step after the drop moves the weights by a tenth of what the
    same step moves them without the drop (same weights, same batch, same gradient)."""
    dropped, constant = _lr_run(lr_drop_epoch=1), _lr_run()
    for _ in range(4):  # epoch 1: the same steps
        dropped.step()
        constant.step()
    before = _weights(dropped)
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(constant)))
    dropped.step()
    constant.step()
    for b, d, c in zip(before, _weights(dropped), _weights(constant)):
        # float32 weights of about 0.2: their differences carry rounding of about 1e-8
        assert torch.allclose(d - b, (c - b) / 10.0, rtol=1e-3, atol=1e-7)
    assert max(float((c - b).abs().max()) for b, c in zip(before, _weights(constant))) > 1e-4


def test_lr_drop_is_a_declared_parameter():
    from hraml_core import HRAML, params
    from hraml_core.training import TrainConfig

    p = params.get("lr_drop_epoch")
    assert p.default is None and p.none_ok and p.group == "optimiser"
    assert HRAML().lr_drop_epoch is None and TrainConfig().lr_drop_epoch is None
    assert HRAML(lr_drop_epoch=3).train_config(0).lr_drop_epoch == 3
    with pytest.raises(ValueError, match="lr_drop_epoch must be a positive int or None, got 0"):
        TrainConfig(lr_drop_epoch=0)
    X, y = _blobs(n_per_class=8, d=4)
    model = HRAML(hidden=(8,), dim=4, max_epochs=2, lr_drop_epoch=1, optimizer="sgd", lr=0.05, random_state=0).fit(X, y)
    assert model.n_iter_ == 2


_ARFF_HEAD = """@relation toy
@attribute f1 numeric
@attribute f2 numeric
@attribute f3 numeric
@attribute red {0,1}
@attribute blue {0,1}
@data
"""
_XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels"><label name="red"></label><label name="blue"></label></labels>
"""


def _write_split(folder, name, n_train=24, n_test=12, seed=0):
    """Mulan-layout train / test ARFF files and the XML label file of a small multi-label set."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        Y = rng.integers(0, 2, size=(n, 2))
        Y[0] = (1, 1)
        X = rng.normal(size=(n, 3)) + 2 * Y @ np.array([[1.0, 0, 0], [0, 1.0, 0]])
        rows = "\n".join(",".join([*(f"{v:.4f}" for v in x), *(str(v) for v in yv)]) for x, yv in zip(X, Y))
        (folder / f"{name}-{part}.arff").write_text(_ARFF_HEAD + rows + "\n")
    (folder / f"{name}.xml").write_text(_XML)


def test_load_fixed_split_reads_both_halves_and_names_missing_files(tmp_path):
    from hraml_core.data import DatasetError, load_fixed_split

    _write_split(tmp_path / "mulan-splits", "flags")
    train, test = load_fixed_split("flags", tmp_path)
    assert (train.X.shape, test.X.shape, train.Y.shape, test.Y.shape) == ((24, 3), (12, 3), (24, 2), (12, 2))
    assert train.task == test.task == "multilabel" and train.label_names == ("red", "blue")
    (tmp_path / "mulan-splits" / "flags-test.arff").unlink()
    with pytest.raises(DatasetError, match=r"flags: fixed split not in the data directory .*missing mulan-splits/flags-test.arff"):
        load_fixed_split("flags", tmp_path)
    with pytest.raises(DatasetError, match="binalpha: no fixed train/test split"):
        load_fixed_split("binalpha", tmp_path)


@pytest.mark.data
def test_mulan_fixed_splits_have_mulans_sizes(shared_data):
    from hraml_core.data import load_fixed_split

    for name, (n_train, n_test, n_features, n_labels) in {"emotions": (391, 202, 72, 6), "flags": (129, 65, 19, 7)}.items():
        train, test = load_fixed_split(name, shared_data)
        assert train.X.shape == (n_train, n_features) and test.X.shape == (n_test, n_features)
        assert train.Y.shape == (n_train, n_labels) and test.Y.shape == (n_test, n_labels)
        assert len(train.label_names) == n_labels and set(np.unique(train.Y)) == {0, 1}


def test_evaluate_fixed_split_trains_on_train_and_tests_on_test(tmp_path, monkeypatch):
    from hraml_core.data import load_fixed_split
    from hraml_core.protocol import evaluate_fixed_split

    _write_split(tmp_path / "mulan-splits", "flags")
    train, test = load_fixed_split("flags", tmp_path)
    seen = []
    real = protocol.run_method

    def record(method, task, X_train, Y_train, X_test, Y_test, config, seed):
        seen.append((len(X_train), len(X_test), seed))
        return real(method, task, X_train, Y_train, X_test, Y_test, config, seed)

    monkeypatch.setattr(protocol, "run_method", record)
    config = ProtocolConfig(seed=4, max_epochs=2, checkpoints=(2,), candidates=(Candidate("standardize", TINY),))
    results = evaluate_fixed_split(train, test, ["hraml", "raw"], config)
    assert seen == [(24, 12, 4), (24, 12, 4)]
    assert [(r.method, r.fold, r.split, r.protocol) for r in results] == [("hraml", 0, "fixed", "project"),
                                                                          ("raw", 0, "fixed", "project")]
    rows = summarize(results)
    assert all(r["std"] == 0.0 and r["n_folds"] == 1 and r["split"] == "fixed" for r in rows)


def test_reproduce_fixed_split_end_to_end(tmp_path, capsys):
    """`hraml reproduce --split fixed --datasets flags --methods raw` on Mulan-layout files in a tmp
    data directory, under both protocols."""
    from hraml_core.cli import main

    _write_split(tmp_path / "data" / "mulan-splits", "flags")
    out = tmp_path / "out"
    assert main(["reproduce", "--split", "fixed", "--datasets", "flags", "--methods", "raw", "--protocol",
                 "project,authors", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "raw/project" in printed and "raw/authors" in printed and "fixed" in printed
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 10  # 5 metrics x 2 protocols
    assert {(r["split"], r["protocol"]) for r in records} == {("fixed", "project"), ("fixed", "authors")}
    assert all(r["std"] == 0 and r["dataset"] == "flags" and r["method"] == "raw" for r in records)
    folds = json.loads((out / "folds.json").read_text())
    assert [(f["split"], f["fold"]) for f in folds] == [("fixed", 0), ("fixed", 0)]


@pytest.mark.data
def test_reproduce_fixed_split_on_mulans_flags(tmp_path, capsys, shared_data):
    from hraml_core.cli import main

    out = tmp_path / "out"
    assert main(["reproduce", "--split", "fixed", "--datasets", "flags", "--methods", "raw",
                 "--data-dir", str(shared_data), "--out", str(out), "--no-progress"]) == 0
    records = {r["metric"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(records) == {"hamming_loss", "ranking_loss", "one_error", "coverage", "average_precision"}
    assert all(r["split"] == "fixed" and r["protocol"] == "project" and r["std"] == 0 for r in records.values())
    # MLkNN on standardised features of Mulan's 129 training rows, tested on its 65 test rows
    assert records["one_error"]["mean"] * 65 == pytest.approx(round(records["one_error"]["mean"] * 65))
    assert records["hamming_loss"]["mean"] * 65 * 7 == pytest.approx(round(records["hamming_loss"]["mean"] * 455))


def test_verdict_rule_on_hand_made_rows():
    from hraml_core.protocol import standard_error, verdict

    assert standard_error(0.03, 9) == pytest.approx(0.01) and standard_error(0.5, 1) == 0.0
    assert verdict(0.02, 0.01) == "meets"
    assert verdict(0.005, 0.01) == "meets, within noise"
    assert verdict(0.0, 0.0) == "meets"
    assert verdict(-0.005, 0.01) == "short, within noise"
    assert verdict(-0.01, 0.01) == "short"  # a margin of exactly one standard error is not within noise
    rows = [
        # binalpha: paper best 0.7250 (RAML-SVR); se = 0.0300 / sqrt(9) = 0.0100
        {"dataset": "binalpha", "method": "hraml", "metric": "accuracy", "mean": 0.7400, "std": 0.03, "n_folds": 9,
         "split": "cv", "protocol": "project"},
        {"dataset": "binalpha", "method": "hraml", "metric": "accuracy", "mean": 0.7300, "std": 0.03, "n_folds": 9,
         "split": "cv", "protocol": "authors"},
        # uspst: paper best 0.9537; short by 0.0037 < se 0.0060
        {"dataset": "uspst", "method": "hraml", "metric": "accuracy", "mean": 0.9500, "std": 0.0190, "n_folds": 10,
         "split": "cv", "protocol": "project"},
        # flags fixed: one evaluation, se 0: Hamming loss 0.2800 vs 0.2791 is short, however small
        {"dataset": "flags", "method": "hraml", "metric": "hamming_loss", "mean": 0.2800, "std": 0.0, "n_folds": 1,
         "split": "fixed", "protocol": "authors"},
        {"dataset": "emotions", "method": "hraml", "metric": "coverage", "mean": 1.5000, "std": 0.3, "n_folds": 4,
         "split": "cv", "protocol": "project"},  # coverage: lower is better; 1.7327 - 1.5 = +0.2327 > se 0.15
    ]
    v = {(r["dataset"], r["protocol"]): r for r in compare_with_paper(rows)}
    assert v[("binalpha", "project")]["gap"] == pytest.approx(0.0150)
    assert v[("binalpha", "project")]["se"] == pytest.approx(0.0100)
    assert v[("binalpha", "project")]["verdict"] == "meets" and not v[("binalpha", "project")]["within_noise"]
    assert v[("binalpha", "authors")]["verdict"] == "meets, within noise"
    assert v[("uspst", "project")]["verdict"] == "short, within noise"
    assert v[("uspst", "project")]["se"] == pytest.approx(0.0190 / np.sqrt(10))
    assert v[("flags", "authors")]["verdict"] == "short" and v[("flags", "authors")]["se"] == 0.0
    assert v[("emotions", "project")]["verdict"] == "meets" and v[("emotions", "project")]["gap"] == pytest.approx(0.2327)
    from hraml_core.protocol import best_of_protocols

    best = {(b["dataset"], b["metric"]): b["protocol"] for b in best_of_protocols(compare_with_paper(rows))}
    assert best[("binalpha", "accuracy")] == "project"


def test_format_tables_show_split_and_protocol():
    results = [FoldResult("uspst", "hraml", i, {"accuracy": a}, 1.0, split="cv", protocol=p)
               for i, (a, p) in enumerate([(0.94, "project"), (0.95, "project"), (0.93, "authors"), (0.95, "authors")])]
    results.append(FoldResult("flags", "raw", 0, {"hamming_loss": 0.29, "ranking_loss": 0.21, "one_error": 0.2,
                                                  "coverage": 3.72, "average_precision": 0.82}, 1.0, split="fixed",
                              protocol="authors"))
    text = format_tables(summarize(results))
    header = next(line for line in text.splitlines() if line.startswith("dataset"))
    assert header.split()[:5] == ["dataset", "split", "metric", "hraml/project", "hraml/authors"]
    line = next(line for line in text.splitlines() if line.startswith("uspst"))
    assert line.split()[1] == "cv" and "0.9450±0.0071" in line and "0.9400±0.0141" in line
    flags = next(line for line in text.splitlines() if line.startswith("flags") and "hamming" in line)
    assert flags.split()[1] == "fixed" and "0.2900 " in flags and "±" not in flags.split("(down)")[1].split("0.2791")[0]


@pytest.mark.slow
def test_reproduce_runs_in_parallel_give_the_sequential_results(tmp_path, capsys):
    """Every fold of every (dataset, protocol, split) in one pool of workers, longest first: the
    records are those of the sequential run, in the same order."""
    from hraml_core.cli import main

    common = ["reproduce", "--datasets", "iris,synthetic_multilabel", "--protocol", "project,authors",
              "--split", "cv", "--folds", "3", "--max-epochs", "2", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert one == two
    assert {(r["dataset"], r["protocol"]) for r in one} == {(d, p) for d in ("iris", "synthetic_multilabel")
                                                           for p in ("project", "authors")}
