"""Sparse features (scipy.sparse, e.g. a TfidfVectorizer's output) through training, the estimator
and the evaluators: the same numbers as their dense form, without making the matrix dense."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from hraml_core import HRAML, rows
from hraml_core.evaluate import evaluate_embedding
from hraml_core.runs import open_run
from hraml_core.tasks import encode_targets
from hraml_core.training import TrainConfig, TrainingRun


def sparse_data(n=120, d=300, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.04, format="csr", random_state=seed, dtype=np.float64)
    X = X.tolil()
    X[0] = 0  # an empty row: its input-skip part stays zero
    X = X.tocsr()
    X.eliminate_zeros()
    y = rng.integers(0, 3, n)
    Y = (rng.random((n, 4)) < 0.4).astype(int)
    Y[:, 0] = 1 - Y[:, 1]  # no empty label sets
    return X, y, Y


def dense(Z):
    return Z.toarray() if sp.issparse(Z) else Z


def test_sparse_rows_reads_the_rows_asked_for_as_a_dense_tensor():
    X = sp.csr_matrix(np.array([[0.0, 2.0], [3.0, 0.0], [0.0, 0.0]]))
    got = rows.SparseRows(X)
    assert got.shape == (3, 2) and len(got) == 3
    assert got[np.array([1, 0, 1])].tolist() == [[3.0, 0.0], [0.0, 2.0], [3.0, 0.0]]
    assert got[1:3].tolist() == [[3.0, 0.0], [0.0, 0.0]]
    assert rows.dense_chunk_rows(2**22, 100) == 4 and rows.dense_chunk_rows(10, 100) == 100
    assert rows.dense_chunk_rows(2**30, 100) == 1


@pytest.mark.parametrize("sampler", ["batch", "hard", "neighbors", "pairs"])
@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_a_run_on_sparse_rows_takes_the_steps_of_the_dense_run(sampler, task):
    X, y, Y = sparse_data()
    labels = encode_targets(y).Y if task == "classification" else Y
    config = TrainConfig(seed=0, sampler=sampler, input_noise=1.0, input_skip=0.5, hidden=(16,), dim=8)
    runs = [TrainingRun(data, labels, task, config) for data in (X, X.toarray())]
    for run in runs:
        for _ in range(15):
            run.step()
        run.flush()
    # The noise scale comes from a neighbour search over sparse rows, to float32 rounding of the
    # dense search's: every noise draw then differs by that much, hence the tolerances below.
    assert runs[0].noise_std == pytest.approx(runs[1].noise_std, rel=1e-6)
    assert runs[0].state.losses == pytest.approx(runs[1].state.losses, rel=1e-4, abs=1e-6)
    Z_sparse, Z_dense = runs[0].embed(X), runs[1].embed(X.toarray())
    assert sp.issparse(Z_sparse) and Z_sparse.shape == Z_dense.shape == (120, 8 + 300)
    np.testing.assert_allclose(Z_sparse.toarray(), Z_dense, atol=1e-4)


def test_the_estimator_fits_and_transforms_sparse_x_as_its_dense_form():
    X, y, Y = sparse_data()
    for target, width, kind in ((y, 8, np.ndarray), (Y, 8 + 300, sp.csr_matrix)):
        a = HRAML(max_epochs=3, hidden=(16,), dim=8, random_state=0).fit(X, target)
        b = HRAML(max_epochs=3, hidden=(16,), dim=8, random_state=0).fit(X.toarray(), target)
        Z = a.transform(X)
        assert isinstance(Z, kind) and Z.shape == (120, width)  # classes: no input skip, so dense f(X)
        np.testing.assert_allclose(dense(Z), b.transform(X.toarray()), atol=1e-4)  # see the test above
        norms = np.linalg.norm(dense(Z), axis=1)  # unit rows, but the empty row's input part is zero
        assert np.allclose(norms[1:], 1.0, atol=1e-5) and norms[0] == pytest.approx(np.sqrt(1 - a.input_skip_))
        metric = a.get_metric()  # scikit-learn hands a callable metric one sparse row at a time
        assert metric(X[3], X[7]) == pytest.approx(np.linalg.norm(dense(Z)[3] - dense(Z)[7]), abs=1e-6)


def test_a_wide_sparse_matrix_is_embedded_in_row_blocks(monkeypatch):
    X, _, Y = sparse_data()
    model = HRAML(max_epochs=2, hidden=(16,), dim=8, random_state=0).fit(X, Y)
    whole = model.transform(X).toarray()
    monkeypatch.setattr(rows, "DENSE_BLOCK_ENTRIES", 7 * 300)  # blocks of 7 rows
    assert rows.dense_chunk_rows(300, 16384) == 7
    np.testing.assert_allclose(model.transform(X).toarray(), whole, atol=1e-7)


@pytest.mark.parametrize("task", ["classification", "multilabel", "distribution"])
def test_the_evaluators_score_a_sparse_embedding_as_its_dense_form(task):
    rng = np.random.default_rng(1)
    Z = sp.random(300, 200, density=0.05, format="csr", random_state=1)
    labels = {"classification": rng.integers(0, 3, 300), "multilabel": (rng.random((300, 4)) < 0.4).astype(int),
              "distribution": rng.dirichlet([1.0, 1.0, 1.0], 300)}[task]
    expected = evaluate_embedding(task, Z[:200].toarray(), labels[:200], Z[200:].toarray(), labels[200:])
    assert evaluate_embedding(task, Z[:200], labels[:200], Z[200:], labels[200:]) == expected
    chunked = evaluate_embedding(task, Z[:200], labels[:200], Z[200:], labels[200:], chunk_rows=30,
                                 progress=lambda done, total: None)
    assert chunked == expected


def test_early_stopping_scores_a_sparse_embedding():
    X, _, Y = sparse_data()
    model = HRAML(max_epochs=3, hidden=(16,), dim=8, early_stopping=True, random_state=0).fit(X, Y)
    dense_model = HRAML(max_epochs=3, hidden=(16,), dim=8, early_stopping=True, random_state=0).fit(X.toarray(), Y)
    assert model.validation_scores_ == pytest.approx(dense_model.validation_scores_, abs=1e-9)


def test_a_text_pipeline_trains_on_tfidf_features():
    docs = [f"good great fine nice film {w}" for w in "abcdefghijkl"] + [f"bad awful poor sad film {w}" for w in "abcdefghijkl"]
    labels = [0] * 12 + [1] * 12
    pipe = make_pipeline(TfidfVectorizer(), HRAML(max_epochs=20, hidden=(16,), dim=8, random_state=0),
                         KNeighborsClassifier(n_neighbors=3)).fit(docs, labels)
    assert pipe.predict(["a great nice film", "an awful sad film"]).tolist() == [0, 1]


def test_recording_a_sparse_fit(tmp_path):
    X, y, Y = sparse_data()
    with pytest.raises(ValueError, match=r"sparse X with an input skip \(input_skip=0.5\).*all 300 input columns"):
        HRAML(max_epochs=1, hidden=(16,), dim=8, log_dir=tmp_path / "skip").fit(X, Y)
    assert not (tmp_path / "skip").exists()
    model = HRAML(max_epochs=2, hidden=(16,), dim=8, random_state=0, log_dir=tmp_path / "run").fit(X, y)
    run = open_run(tmp_path / "run")
    assert run.state == "finished" and len(run.snapshot_steps) >= 2
    assert run.latest_snapshot().embeddings.shape[1] == 8
    np.testing.assert_allclose(run.load_model().transform(X), model.transform(X), atol=1e-7)


def test_preprocessing_none_passes_sparse_features_on_and_the_others_make_them_dense():
    from hraml_core.preprocessing import Preprocessor

    X, _, _ = sparse_data()
    kept = Preprocessor("none").fit(X[:80])
    assert sp.isspmatrix_csr(kept.fit_transform(X[:80])) and sp.isspmatrix_csr(kept.transform(X[80:]))
    np.testing.assert_array_equal(kept.transform(X[80:]).toarray(), X[80:].toarray())
    assert isinstance(Preprocessor("standardize").fit_transform(X), np.ndarray)
    assert isinstance(Preprocessor("pca", n_components=10).fit_transform(X), np.ndarray)


def test_the_exact_evaluation_of_a_sparse_fit_is_that_of_its_dense_form():
    from hraml_core.heldout import full_evaluation

    X, _, Y = sparse_data()
    model = HRAML(max_epochs=2, hidden=(16,), dim=8, random_state=0).fit(X[:90], Y[:90])
    seen = []
    got = full_evaluation("multilabel", model.transform, X[:90], Y[:90], X[90:], Y[90:], chunk_rows=25,
                          progress=lambda done, total: seen.append((done, total)))
    dense = full_evaluation("multilabel", model.transform, X[:90].toarray(), Y[:90], X[90:].toarray(), Y[90:])
    assert got == pytest.approx(dense, abs=1e-12)
    assert seen[-1] == (90 + 30 + 30 + 90, 90 + 30 + 30 + 90)  # embedded, then searched (MLkNN: train rows too)


def test_hraml_train_and_evaluate_keep_a_sparse_file_sparse_with_no_preprocessing(tmp_path, capsys):
    import scipy.io

    from hraml_core.cli import main

    X, y, _ = sparse_data(n=90)
    scipy.io.savemat(tmp_path / "words.mat", {"fea": X, "gnd": y.reshape(-1, 1)})
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(tmp_path / "words.mat"), "--preprocessing", "none", "--epochs", "2",
                 "--hidden", "16", "--dim", "8", "--out", str(out)]) == 0
    assert "90 x 300, sparse" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    assert "its own held-out rows" in capsys.readouterr().out
