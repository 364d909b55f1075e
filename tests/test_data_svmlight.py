"""svmlight / LIBSVM files (hraml_core.data.svmlight): sparse features, classes or label sets."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file

from hraml_core.cli import main
from hraml_core.data import DatasetError, load_file


def data(n=40, d=25, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.2, format="csr", random_state=seed)
    y = np.arange(n) % 3
    Y = (rng.random((n, 4)) < 0.4).astype(int)
    Y[:, 0] = 1 - Y[:, 1]
    return X, y, Y


def test_classes_read_back_as_written_sparse(tmp_path):
    X, y, _ = data()
    dump_svmlight_file(X, y, str(tmp_path / "a.svm"))  # zero-based indices
    ds = load_file(tmp_path / "a.svm")
    assert ds.task == "classification" and sp.issparse(ds.X) and ds.X.shape == (40, 25)
    np.testing.assert_allclose(ds.X.toarray(), X.toarray())
    assert ds.Y.tolist() == y.tolist() and ds.name == "a"
    buffer = io.BytesIO()
    dump_svmlight_file(X, y, buffer, zero_based=False)  # LIBSVM's own 1-based indices, gzipped
    (tmp_path / "b.libsvm.gz").write_bytes(gzip.compress(buffer.getvalue()))
    np.testing.assert_allclose(load_file(tmp_path / "b.libsvm.gz").X.toarray(), X.toarray())


def test_label_sets_are_read_from_comma_separated_labels(tmp_path):
    X, _, Y = data()
    Y[5] = 0  # a line with no labels
    dump_svmlight_file(X, Y, str(tmp_path / "m.svm"), multilabel=True)
    ds = load_file(tmp_path / "m.svm")
    assert ds.task == "multilabel" and ds.label_names == ("0", "1", "2", "3")
    assert ds.Y.tolist() == Y.tolist()


def test_by_hand_with_comments_and_bad_lines(tmp_path):
    path = tmp_path / "hand.svm"
    path.write_text("# two classes\n1 1:0.5 3:2\n2 2:1.5  # a comment\n1 3:1\n")
    ds = load_file(path)
    assert ds.X.toarray().tolist() == [[0.5, 0, 2], [0, 1.5, 0], [0, 0, 1]] and ds.Y.tolist() == [1, 2, 1]
    path.write_text("1 1:0.5\nyes 2:1\n")
    with pytest.raises(DatasetError, match=r"hand.svm: not a valid svmlight file"):
        load_file(path)
    path.write_text("0.25 1:0.5\n1.75 2:1\n3.5 1:2\n")  # a regression file: no classes
    with pytest.raises(DatasetError, match="the class labels are non-integer numbers"):
        load_file(path)
    path.write_text("# sets\n1 1:0.5\n2,3 2:1\n1 3:1\n")
    with pytest.raises(DatasetError, match=r"data line 2 holds 2 labels: classes need one a line"):
        load_file(path, task="classification")
    assert load_file(path).task == "multilabel"
    path.write_text("1 1:0.5\n2:1\n1 3:1\n")  # label 1 or no label: two classes in disguise
    with pytest.raises(DatasetError, match=r"label sets of one label \(1\): each line holds it or nothing"):
        load_file(path)


def test_hraml_train_on_an_svmlight_file_keeps_it_sparse(tmp_path, capsys):
    X, y, _ = data(n=60)
    dump_svmlight_file(X, y, str(tmp_path / "words.svm"))
    assert main(["train", "--dataset", str(tmp_path / "words.svm"), "--preprocessing", "none", "--epochs", "2",
                 "--hidden", "16", "--dim", "8", "--out", str(tmp_path / "run")]) == 0
    assert "60 x 25, sparse, 3 classes" in capsys.readouterr().out


def test_an_svmlight_upload_is_reduced_and_shown_on_the_page(app, tmp_path):
    X, y, _ = data(n=60, d=150)
    buffer = io.BytesIO()
    dump_svmlight_file(X, y, buffer)
    app.run()
    app.selectbox(key="dataset").set_value("Upload a file…").run()
    app.file_uploader(key="upload").set_value(("words.svm", buffer.getvalue(), "application/octet-stream")).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Task: classification" in m.value and "150 features (SVD to 41)" in m.value for m in app.markdown)


@pytest.mark.parametrize("block", [7, 64, 10**6])  # shorter than a line, a few lines, the whole file
def test_blocks_of_any_size_read_what_scikit_learn_reads_whole(tmp_path, monkeypatch, block):
    from sklearn.datasets import load_svmlight_file

    from hraml_core.data import svmlight

    monkeypatch.setattr(svmlight, "BLOCK_BYTES", block)
    X, y, Y = data(n=60, d=30)
    cases = {}
    dump_svmlight_file(X, y, str(tmp_path / "zero.svm"))
    cases["zero.svm"] = (X.toarray(), y.tolist(), "classification")
    buffer = io.BytesIO()
    dump_svmlight_file(X, y, buffer, zero_based=False)
    (tmp_path / "one.svm.gz").write_bytes(gzip.compress(buffer.getvalue()))
    cases["one.svm.gz"] = (X.toarray(), y.tolist(), "classification")
    # label sets written only on the last lines (after the first blocks were read as classes), and
    # a last line with no newline
    lines = [f"{c} 1:{i + 1}" for i, c in enumerate(y[:40])] + [f"{c},{(c + 1) % 3} 2:{i + 1}" for i, c in enumerate(y[40:])]
    (tmp_path / "late.svm").write_text("\n".join(lines))
    cases["late.svm"] = (None, None, "multilabel")
    for name, (dense, labels, task) in cases.items():
        seen = []
        ds = load_file(tmp_path / name, progress=lambda done, total: seen.append((done, total)))
        assert ds.task == task, name
        if dense is not None:
            np.testing.assert_allclose(ds.X.toarray(), dense)
            assert ds.Y.tolist() == labels
        else:  # against scikit-learn's parse of the whole file
            Xs, ys = load_svmlight_file(str(tmp_path / name), multilabel=True, zero_based="auto")
            np.testing.assert_allclose(ds.X.toarray(), Xs.toarray())
            assert ds.Y.shape == (60, 3) and ds.Y[:40].sum(axis=1).tolist() == [1] * 40
            assert ds.Y[40:].sum(axis=1).tolist() == [2] * 20
        size = (tmp_path / name).stat().st_size
        assert seen and seen[-1] == (size, size) and [d for d, _ in seen] == sorted(d for d, _ in seen)
