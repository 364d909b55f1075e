import json

import numpy as np
import pytest
import scipy.sparse as sp

from hraml_core.cli import main
from hraml_core.preprocessing import Preprocessor


def test_train_then_evaluate_round_trip(tmp_path, capsys):
    out = tmp_path / "iris"
    assert main(["train", "--dataset", "iris", "--epochs", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy (up)" in text and "saved to" in text
    run = json.loads((out / "run.json").read_text())
    assert run["task"] == "classification" and 0.8 < run["results"]["metrics"]["accuracy"] <= 1.0
    # A run directory (docs/RUNS.md); tests/test_runs.py reads it.
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "preprocess.safetensors", "run.json", "split.json",
                                               "scalars.jsonl", "snapshots", "checkpoints"}

    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    # The same split and model give the same accuracy as at training time.
    line = next(l for l in text.splitlines() if l.startswith("accuracy"))
    assert float(line.split()[2]) == pytest.approx(run["results"]["metrics"]["accuracy"], abs=1e-9)
    # another dataset with other features: one line naming both
    assert main(["evaluate", str(out), "--dataset", "wine", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "wine does not fit the model" in err and "trained on iris" in err and "Traceback" not in err


def test_train_on_a_csv_file_with_label_columns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    Y = (X[:, :3] > 0).astype(int)
    path = tmp_path / "mine.csv"
    header = "a,b,c,d,l1,l2,l3"
    np.savetxt(path, np.hstack([X, Y]), delimiter=",", header=header, comments="", fmt="%.6g")
    assert main(["train", "--dataset", str(path), "--label-columns", "l1,l2,l3", "--epochs", "5",
                 "--out", str(tmp_path / "m")]) == 0
    assert "average_precision" in capsys.readouterr().out


def test_ignored_columns_are_left_out_at_training_and_again_at_evaluation(tmp_path, capsys):
    path = tmp_path / "notes.csv"
    path.write_text("a,b,note,kind\n" + "\n".join(f"{i % 7},{i % 5},n{i},{'xy'[i % 2]}" for i in range(40)) + "\n")
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--out", str(tmp_path / "no")]) == 2
    assert "non-numeric feature column 'note'" in capsys.readouterr().err
    out = tmp_path / "m"
    assert main(["train", "--dataset", str(path), "--ignore-columns", "note", "--epochs", "1", "--out", str(out)]) == 0
    assert "40 x 2" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--no-progress"]) == 0  # the run remembers what was left out
    assert "its own held-out rows" in capsys.readouterr().out


def test_a_file_whose_extension_names_no_format_is_read_with_format_and_again_at_evaluation(tmp_path, capsys):
    path = tmp_path / "export.txt"  # a CSV under another extension
    path.write_text("a,b,kind\n" + "\n".join(f"{i % 7},{i % 5},{'xy'[i % 2]}" for i in range(40)) + "\n")
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert "unknown format: extension .txt" in err and "(hraml train --format)" in err
    out = tmp_path / "m"
    assert main(["train", "--dataset", str(path), "--format", "csv", "--epochs", "1", "--out", str(out)]) == 0
    assert "40 x 2, 2 classes" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--no-progress"]) == 0  # the run remembers the format
    assert "its own held-out rows" in capsys.readouterr().out
    assert main(["train", "--dataset", str(path), "--format", "parquet", "--epochs", "1", "--out", str(out)]) == 2
    assert "export.txt" in capsys.readouterr().err  # read as Parquet, it is not one: the error names the file


def test_a_large_file_is_read_with_a_progress_bar_unless_asked_not_to(tmp_path, capsys, monkeypatch):
    from hraml_core.data import tabular

    path = tmp_path / "rows.csv"
    path.write_text("a,b,kind\n" + "\n".join(f"{i % 7},{i % 5},{'xy'[i % 2]}" for i in range(40)) + "\n")
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--out", str(tmp_path / "small")]) == 0
    assert "reading rows.csv" not in capsys.readouterr().err  # a small file: no bar
    monkeypatch.setattr(tabular, "STREAM_MIN_BYTES", 100)  # this file is now a large one
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--out", str(tmp_path / "large")]) == 0
    assert "reading rows.csv" in capsys.readouterr().err
    out = tmp_path / "quiet"
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    assert "reading rows.csv" not in capsys.readouterr().err
    assert main(["evaluate", str(out)]) == 0
    assert "reading rows.csv" in capsys.readouterr().err  # evaluate reads the file again
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    assert "reading" not in capsys.readouterr().err


def test_evaluate_finds_the_training_file_from_any_folder_and_says_when_it_moved(tmp_path, capsys, monkeypatch):
    (tmp_path / "work").mkdir()
    path = tmp_path / "work" / "rows.csv"
    path.write_text("a,b,kind\n" + "\n".join(f"{i % 7},{i % 5},{'xy'[i % 2]}" for i in range(40)) + "\n")
    monkeypatch.chdir(tmp_path / "work")
    out = tmp_path / "m"
    assert main(["train", "--dataset", "rows.csv", "--epochs", "1", "--out", str(out)]) == 0  # a relative name
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--no-progress"]) == 0  # from another folder
    assert "its own held-out rows" in capsys.readouterr().out
    path.rename(tmp_path / "moved.csv")
    assert main(["evaluate", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"hraml evaluate: error: {path}: the data file the model was trained on is not there any more; pass --dataset "
        "FILE where it is now (the run's label and ignored columns still apply; add --format if the file's name has "
        "no known extension)\n")
    assert main(["evaluate", str(out), "--no-progress", "--dataset", str(tmp_path / "moved.csv")]) == 0


def test_a_label_column_of_ids_trains_with_a_warning(tmp_path, capsys):
    path = tmp_path / "ids.csv"
    path.write_text("a,b,id\n" + "\n".join(f"{i % 7},{i % 5},{i}" for i in range(30)) + "\n")
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert "hraml train: warning: ids: 30 of 30 rows are the only row of their class (30 classes)" in err


def test_a_written_out_row_index_is_pointed_out_and_can_be_left_out(tmp_path, capsys):
    path = tmp_path / "indexed.csv"  # what DataFrame.to_csv writes for an index named "id"
    path.write_text("id,a,b,kind\n" + "\n".join(f"{i},{i % 7},{i % 5},{'xy'[i // 20]}" for i in range(40)) + "\n")
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--out", str(tmp_path / "m")]) == 0
    assert "hraml train: warning: indexed: feature column 'id' counts the rows" in capsys.readouterr().err
    assert main(["train", "--dataset", str(path), "--ignore-columns", "id", "--epochs", "1",
                 "--out", str(tmp_path / "n")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_label_column_of_fractions_is_refused_and_says_how_to_name_distributions(tmp_path, capsys):
    # a label distribution's columns with the default label column (the last): its fractions are no
    # classes, and the evaluator's own error ("Unknown label type: continuous") said nothing useful
    path = tmp_path / "dist.csv"
    path.write_text("a,b,p0,p1\n" + "\n".join(f"{i % 7},{i % 5},{i / 40:.3f},{1 - i / 40:.3f}" for i in range(1, 31)) + "\n")
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "dist.csv: the class labels are non-integer numbers (e.g. 0.975; 30 distinct values)" in err
    assert "name all of their columns as the label columns" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
    assert main(["train", "--dataset", str(path), "--label-columns", "p0,p1", "--epochs", "1",
                 "--out", str(tmp_path / "m")]) == 0
    assert "distribution" in capsys.readouterr().out


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "--dataset", "no_such_set"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset" in err and "Traceback" not in err
    assert main(["train", "--dataset", "iris", "--lr", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "lr must be a positive" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "not a model folder" in capsys.readouterr().err
    assert main(["train", "--dataset", "iris", "--test-size", "1.5"]) == 2
    assert "--test-size" in capsys.readouterr().err
    # an evaluator that cannot run on this little data fails before training, leaving no run behind
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("f1,f2,tags\n" + "\n".join(f"{i},{i % 3},{'a;b' if i % 2 else 'b'}" for i in range(10)) + "\n")
    assert main(["train", "--dataset", str(tiny), "--knn-k", "9", "--out", str(tmp_path / "tiny")]) == 2
    err = capsys.readouterr().err
    assert "k=9 is too large for 7 training samples" in err and "--knn-k" in err and "Traceback" not in err
    assert not (tmp_path / "tiny").exists()
    # the default k (MLkNN's 10) is lowered to what 7 training rows allow
    assert main(["train", "--dataset", str(tiny), "--epochs", "2", "--out", str(tmp_path / "tiny")]) == 0
    assert "average_precision" in capsys.readouterr().out  # the tag column read as label sets


@pytest.mark.parametrize("kind", ["none", "standardize", "pca", "pca+standardize"])
def test_preprocessor_fits_on_train_and_round_trips(kind, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 8)) * np.arange(1, 9) + 5
    pre = Preprocessor(kind, n_components=3)
    Z = pre.fit_transform(X[:40])
    np.testing.assert_allclose(pre.transform(X[:40]), Z, atol=1e-10)
    assert Z.shape[1] == (3 if kind.startswith("pca") else 8)
    if kind.endswith("standardize"):
        np.testing.assert_allclose(Z.mean(0), 0, atol=1e-10)
        np.testing.assert_allclose(Z.std(0), 1, atol=1e-10)
    loaded = Preprocessor.load(pre.save(tmp_path / "p.safetensors"))
    np.testing.assert_allclose(loaded.transform(X[40:]), pre.transform(X[40:]), atol=1e-12)
    with pytest.raises(ValueError, match="features"):
        pre.transform(X[:, :5])


def test_sparse_input_goes_through_truncated_svd():
    X = sp.random(60, 30, density=0.2, random_state=3, format="csr")
    pre = Preprocessor("pca", n_components=5)
    Z = pre.fit_transform(X)
    assert Z.shape == (60, 5) and isinstance(Z, np.ndarray)
    np.testing.assert_allclose(pre.transform(X), Z, atol=1e-10)
    with pytest.raises(ValueError, match="unknown preprocessing"):
        Preprocessor("whiten")


