"""The data layer: embedded sets, the shared real sets, the file formats, the data directory."""
from __future__ import annotations

import gzip
import shutil

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from hraml_core.data import (
    DEFAULT_DATASET,
    Dataset,
    DatasetError,
    data_dir,
    list_datasets,
    load_dataset,
    load_file,
    registry,
)
from hraml_core.data import paths
from hraml_core.data.registry import read_manifest
from hraml_core.tasks import CLASSIFICATION, DISTRIBUTION, MULTILABEL

SHARED = {  # folder name -> (n_samples, n_features, n_labels or classes, task); ../shared/reference/PROTOCOL.md "Data at hand"
    "binalpha": (1404, 320, 36, CLASSIFICATION),
    "uspst": (2007, 256, 10, CLASSIFICATION),
    "news20": (3970, 8014, 4, CLASSIFICATION),
    "MnistDat": (4000, 784, 10, CLASSIFICATION),
    "caltech101": (8641, 256, 101, CLASSIFICATION),
    "MnistData_05": (3495, 784, 10, CLASSIFICATION),
    "TDT2_20": (1938, 36771, 20, CLASSIFICATION),
    "emotions": (593, 72, 6, MULTILABEL),
    "flags": (194, 19, 7, MULTILABEL),
    "CAL500": (502, 68, 174, MULTILABEL),
    "plant978": (978, 440, 12, MULTILABEL),
    "human3106": (3106, 440, 14, MULTILABEL),
    "Arts1500": (7484, 500, 26, MULTILABEL),
    "Business1500": (11214, 500, 30, MULTILABEL),
    "rcv1subset1500": (6000, 500, 101, MULTILABEL),
    "SJAFFE": (213, 243, 6, DISTRIBUTION),
    "Yeast_alpha": (2465, 24, 18, DISTRIBUTION),
}

EMBEDDED = {
    "digits": (1797, 64, 10, CLASSIFICATION),
    "iris": (150, 4, 3, CLASSIFICATION),
    "wine": (178, 13, 3, CLASSIFICATION),
    "breast_cancer": (569, 30, 2, CLASSIFICATION),
    "yeast": (2417, 103, 14, MULTILABEL),
    "synthetic_multilabel": (600, 20, 6, MULTILABEL),
    "synthetic_distribution": (600, 20, 5, DISTRIBUTION),
}


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(paths.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(paths.ENV_DATASETS_URL, raising=False)


def check_dataset(ds: Dataset, shape, task):
    n, d, k = shape[:3]
    assert ds.task == task
    assert ds.shape == (n, d, k)
    assert ds.Y.shape[0] == n
    assert len(ds.feature_names) == d and len(ds.label_names) == k
    if ds.is_sparse:
        assert sp.isspmatrix_csr(ds.X) or isinstance(ds.X, sp.csr_array)
        assert ds.X.dtype == np.float64
    else:
        assert isinstance(ds.X, np.ndarray) and ds.X.dtype == np.float64 and np.isfinite(ds.X).all()
    if task == CLASSIFICATION:
        assert ds.Y.ndim == 1 and len(np.unique(ds.Y)) == k
    elif task == MULTILABEL:
        assert ds.Y.shape == (n, k) and ds.Y.dtype == np.int64 and set(np.unique(ds.Y)) <= {0, 1}
    else:
        assert ds.Y.shape == (n, k) and ds.Y.dtype == np.float64
        np.testing.assert_allclose(ds.Y.sum(axis=1), 1.0, atol=1e-3)
    assert ds.targets().Y.shape == (n, k)


# -- embedded and synthetic ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(EMBEDDED))
def test_embedded_dataset_loads(name):
    ds = load_dataset(name)
    check_dataset(ds, EMBEDDED[name], EMBEDDED[name][3])
    assert ds.name == name
    assert (ds.path is None) == (name != "yeast")  # yeast is read from the file river ships
    assert registry()[name].embedded


def test_default_dataset_is_digits():
    assert DEFAULT_DATASET == "digits"
    ds = load_dataset(DEFAULT_DATASET)
    assert ds.label_names == tuple(str(i) for i in range(10))


def test_iris_class_names_follow_sorted_classes():
    ds = load_dataset("iris")
    assert list(ds.classes) == [0, 1, 2]
    assert ds.label_names == ("setosa", "versicolor", "virginica")


def test_yeast_is_read_from_the_river_file():
    ds = load_dataset("yeast")
    assert ds.path.endswith("river/datasets/yeast.csv.gz")
    assert ds.label_names == tuple(f"Class{i}" for i in range(1, 15))
    assert ds.feature_names[:2] == ("Att1", "Att2")


def test_synthetic_sets_are_seeded_and_structured():
    from hraml_core.data.synthetic import make_synthetic_distribution, make_synthetic_multilabel

    a, b = load_dataset("synthetic_multilabel"), load_dataset("synthetic_multilabel")
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.Y, b.Y)
    assert (a.Y.sum(axis=1) >= 1).all()
    other = make_synthetic_multilabel(seed=1)
    assert not np.array_equal(other.Y, a.Y)
    # squared feature distance follows the number of differing labels
    i, j = np.triu_indices(200, 1)
    d2 = ((a.X[i] - a.X[j]) ** 2).sum(axis=1)
    ham = np.abs(a.Y[i] - a.Y[j]).sum(axis=1)
    assert np.corrcoef(d2, ham)[0, 1] > 0.5

    dist = make_synthetic_distribution()
    np.testing.assert_array_equal(dist.Y, load_dataset("synthetic_distribution").Y)
    np.testing.assert_allclose(dist.Y.sum(axis=1), 1.0)
    assert make_synthetic_distribution(n_samples=50, seed=3).shape == (50, 20, 5)


def test_names_are_case_insensitive():
    assert load_dataset("Digits").name == "digits"


# -- the shared real datasets ------------------------------------------------------------------------

@pytest.mark.data
@pytest.mark.parametrize("name", list(SHARED))
def test_shared_dataset_loads_by_folder_name(name, shared_data):
    ds = load_dataset(name, data_dir=shared_data)
    check_dataset(ds, SHARED[name], SHARED[name][3])
    assert ds.name == name
    assert ds.path.startswith(str(shared_data / name))
    assert ds.source == registry()[name].source


@pytest.mark.data
def test_shared_specifics(shared_data):
    news = load_dataset("news20", data_dir=shared_data)
    assert news.is_sparse and news.X.nnz == 237162
    assert news.X[:5].toarray().shape == (5, 8014)
    assert list(news.classes) == [1, 2, 3, 4]
    mnist = load_dataset("MnistDat", data_dir=shared_data)
    assert mnist.X.max() == 255 and list(mnist.classes) == list(range(10))
    usps = load_dataset("uspst", data_dir=shared_data)
    assert usps.X.min() == -1 and usps.X.max() == 1
    emotions = load_dataset("emotions", data_dir=shared_data)
    assert emotions.label_names[0] == "amazed-suprised" and len(emotions.label_names) == 6
    flags = load_dataset("flags", data_dir=shared_data)
    assert flags.feature_names[:3] == ("landmass", "zone", "area")
    assert flags.label_names == ("red", "green", "blue", "yellow", "white", "black", "orange")
    assert set(np.unique(flags.X[:, 0])) <= set(range(7))  # nominal {0..6} read as numbers


@pytest.mark.data
def test_shared_data_via_env_var(shared_data, monkeypatch):
    monkeypatch.setenv(paths.ENV_DATA_DIR, str(shared_data))
    assert load_dataset("SJAFFE").shape == (213, 243, 6)


@pytest.mark.data
def test_manifest_hashes_match_shared_files(shared_data):
    from hraml_core.data.download import file_sha256

    specs = read_manifest()
    assert set(specs) == set(SHARED)
    for name, spec in specs.items():
        assert spec.shape == SHARED[name][:3]
        assert spec.task == SHARED[name][3]
        for f in spec.files:
            assert f.url.startswith("https://raw.githubusercontent.com/")
            assert file_sha256(shared_data / name / f.name) == f.sha256
            assert (shared_data / name / f.name).stat().st_size == f.size


@pytest.mark.data
def test_wrong_file_for_a_registered_name_is_caught_by_its_shape(shared_data, tmp_path):
    (tmp_path / "binalpha").mkdir()
    scipy.io.savemat(tmp_path / "binalpha" / "binaryalphadigs.mat",
                     {"fea": np.eye(4), "gnd": np.array([[1], [2], [1], [2]])})
    with pytest.raises(DatasetError, match=r"binaryalphadigs\.mat: has shape 4 x 4 .* registry declares 1404 x 320"):
        load_dataset("binalpha", data_dir=tmp_path)


# -- .mat ----------------------------------------------------------------------------------------------

def savemat(path, **variables):
    scipy.io.savemat(path, variables)
    return path


def test_mat_fea_gnd(tmp_path):
    rng = np.random.default_rng(0)
    path = savemat(tmp_path / "a.mat", fea=rng.integers(0, 255, (30, 5)).astype(np.uint8),
                   gnd=(np.arange(30) % 3 + 1).reshape(-1, 1).astype(np.uint8))
    ds = load_file(path)
    assert ds.task == CLASSIFICATION and ds.shape == (30, 5, 3)
    assert ds.Y.dtype == np.int64 and list(ds.classes) == [1, 2, 3]
    assert ds.name == "a" and ds.path == str(path)


def test_mat_sparse_X_Y_row_vector(tmp_path):
    X = sp.random(40, 12, density=0.2, format="csc", random_state=0)
    path = savemat(tmp_path / "s.mat", X=X, Y=(np.arange(40) % 2).reshape(1, -1).astype(float))
    ds = load_file(path)
    assert ds.is_sparse and ds.X.format == "csr" and ds.shape == (40, 12, 2)


def test_mat_features_labels_distribution_and_multilabel(tmp_path):
    rng = np.random.default_rng(1)
    D = rng.dirichlet(np.ones(4), size=25)
    ds = load_file(savemat(tmp_path / "d.mat", features=rng.normal(size=(25, 6)), labels=D))
    assert ds.task == DISTRIBUTION and ds.shape == (25, 6, 4)
    M = (rng.random((25, 3)) < 0.5).astype(float)
    M[0] = [1, 0, 0]
    M[1] = [0, 1, 1]
    ds = load_file(savemat(tmp_path / "m.mat", features=rng.normal(size=(25, 6)), labels=M))
    assert ds.task == MULTILABEL and ds.Y.dtype == np.int64
    # the MATLAB -1/1 convention, stored transposed (labels x samples)
    ds = load_file(savemat(tmp_path / "pm.mat", data=rng.normal(size=(25, 6)), labels=(2 * M - 1).T))
    assert ds.task == MULTILABEL
    np.testing.assert_array_equal(ds.Y, M)


def test_mat_named_variables_and_case(tmp_path):
    rng = np.random.default_rng(2)
    path = savemat(tmp_path / "v.mat", FEA=rng.normal(size=(10, 3)), GND=np.arange(10) % 2,
                   other=np.ones((10, 3)))
    assert load_file(path).shape == (10, 3, 2)
    path = savemat(tmp_path / "w.mat", A=rng.normal(size=(10, 3)), b=np.arange(10) % 2)
    assert load_file(path, x_var="A", y_var="b").shape == (10, 3, 2)
    with pytest.raises(DatasetError, match=r"w\.mat: no known feature/label variables.*A, b"):
        load_file(path)


# -- ARFF ----------------------------------------------------------------------------------------------

ARFF = """% a small Mulan-style file
@relation toy
@attribute f1 numeric
@attribute colour {red, green, blue}
@attribute f3 {0, 1, 2}
@attribute l1 {0,1}
@attribute l2 {0,1}
@data
1.5,red,0,1,0
2.5,green,1,0,1
-1,blue,2,1,1
0,red,2,0,0
"""
XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="l1"></label>
<label name="l2"></label>
</labels>
"""


def test_arff_with_mulan_xml_gzipped(tmp_path):
    (tmp_path / "toy.arff.gz").write_bytes(gzip.compress(ARFF.encode()))
    (tmp_path / "toy.xml").write_text(XML)
    ds = load_file(tmp_path / "toy.arff.gz")  # the XML beside it is found
    assert ds.task == MULTILABEL and ds.shape == (4, 3, 2)
    assert ds.feature_names == ("f1", "colour", "f3") and ds.label_names == ("l1", "l2")
    np.testing.assert_array_equal(ds.X[:, 1], [0, 1, 2, 0])  # ordinal codes in declared order
    np.testing.assert_array_equal(ds.X[:, 2], [0, 1, 2, 2])  # numeric-looking nominal values
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1], [1, 1], [0, 0]])


def test_arff_label_choice_without_xml(tmp_path):
    path = tmp_path / "toy.arff"
    path.write_text(ARFF)
    by_count = load_file(path, n_labels=2)
    by_name = load_file(path, label_columns=["l1", "l2"])
    np.testing.assert_array_equal(by_count.Y, by_name.Y)
    last = load_file(path)  # default: the last attribute is the class
    assert last.task == CLASSIFICATION and last.shape == (4, 4, 2)
    xml = tmp_path / "labels.xml"
    xml.write_text(XML.replace('xmlns="http://mulan.sourceforge.net/labels"', ""))
    assert load_file(path, labels_xml=xml).label_names == ("l1", "l2")


def test_arff_string_class_and_sparse_rows(tmp_path):
    path = tmp_path / "c.arff"
    path.write_text("@relation c\n@attribute a numeric\n@attribute b numeric\n@attribute class {yes,no}\n"
                    "@data\n1,2,yes\n{0 3, 2 no}\n{1 4}\n")
    ds = load_file(path)
    assert ds.task == CLASSIFICATION
    assert list(ds.Y) == ["yes", "no", "yes"]  # omitted sparse value: the first declared one
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 0], [0, 4]])


# -- CSV / Parquet -------------------------------------------------------------------------------------

def test_csv_default_last_column_string_classes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,species\n1,2,cat\n3,4,dog\n5,6,cat\n")
    ds = load_file(path)
    assert ds.task == CLASSIFICATION and ds.feature_names == ("a", "b")
    assert list(ds.Y) == ["cat", "dog", "cat"] and ds.label_names == ("cat", "dog")


def test_csv_label_columns_by_name_and_index(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("y1,x1,x2,y2\n1,0.5,1.5,0\n0,0.1,2.5,1\n1,0.3,0.5,1\n")
    ds = load_file(path, label_columns=["y1", "y2"])
    assert ds.task == MULTILABEL and ds.feature_names == ("x1", "x2") and ds.label_names == ("y1", "y2")
    same = load_file(path, label_columns=[0, -1])
    np.testing.assert_array_equal(ds.Y, same.Y)
    cls = load_file(path, label_columns=0)
    assert cls.task == CLASSIFICATION and cls.feature_names == ("x1", "x2", "y2")


def test_csv_distribution_detected_and_task_forced(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,p1,p2\n1,0.2,0.8\n2,0.5,0.5\n3,0.9,0.1\n")
    ds = load_file(path, label_columns=["p1", "p2"])
    assert ds.task == DISTRIBUTION
    ml = tmp_path / "ml.csv"
    ml.write_text("x,p1,p2\n1,1,0\n2,0,1\n3,1,0\n")
    assert load_file(ml, label_columns=["p1", "p2"], task="distribution").task == DISTRIBUTION
    assert load_file(ml, label_columns=["p1", "p2"]).task == MULTILABEL


def test_csv_without_header_tsv_and_gzip(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("1,2,0\n3,4,1\n5,6,0\n")
    ds = load_file(path)
    assert ds.shape == (3, 2, 2) and ds.feature_names == ("c0", "c1")
    tsv = tmp_path / "t.tsv.gz"
    tsv.write_bytes(gzip.compress(b"a\tb\ty\n1\t2\t0\n3\t4\t1\n"))
    assert load_file(tsv).feature_names == ("a", "b")
    forced = load_file(path, header=True)  # the first row read as names
    assert forced.shape == (2, 2, 2)


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_csv_separator_is_detected_for_both_readers_and_the_column_picker(tmp_path, sep):
    """A semicolon (or tab, or pipe) separated .csv reads as a comma one does, whole or in blocks,
    and the columns offered for the label picker (from the head of an upload's bytes) are the ones
    the reader names; a separator inside a quoted field does not count."""
    from hraml_core.data.tabular import column_names_of_bytes, csv_column_names, detect_separator

    rows = ["a,b,species".replace(",", sep)] + [f"{i}{sep}{i % 4}{sep}{'cat' if i % 2 else 'dog'}" for i in range(12)]
    path = tmp_path / "s.csv"
    path.write_text("\n".join(rows) + "\n")
    for ds in (load_file(path), load_file(path, dtype="float32")):  # whole text, blocks
        assert ds.feature_names == ("a", "b") and ds.shape == (12, 2, 2)
        assert ds.X[5].tolist() == [5.0, 1.0] and list(ds.Y[:2]) == ["dog", "cat"]
    assert csv_column_names(path) == ["a", "b", "species"]
    assert column_names_of_bytes(path.read_bytes(), "up.csv") == ["a", "b", "species"]
    assert column_names_of_bytes(gzip.compress(path.read_bytes()), "up.csv.gz") == ["a", "b", "species"]
    numbers = f"1{sep}2{sep}0\n3{sep}4{sep}1\n".encode()  # a first row of numbers is data: no header
    assert column_names_of_bytes(numbers, "up.csv") == ["c0", "c1", "c2"]
    assert detect_separator('x,y,note\n1,2,"a;b"\n3,4,"c;d"\n') == ","
    assert detect_separator("1;2\n3;4\n", "n.tsv") == "\t"  # the name decides for .tsv
    assert detect_separator("single\n1\n2\n") == ","  # one column: nothing to split on
    with pytest.raises(DatasetError, match=r"up\.csv\.gz: not a readable gzip file"):
        column_names_of_bytes(b"plain text", "up.csv.gz")


def test_csv_decimal_comma_is_read_when_the_separator_is_not_a_comma(tmp_path):
    """Spreadsheets in many languages save ``1,5;2,25``: read as 1.5 and 2.25, whole or in blocks,
    with or without a header; a point anywhere in the numbers keeps the point."""
    from hraml_core.data.tabular import detect_decimal

    path = tmp_path / "eu.csv"
    path.write_text("x;y;kind\n1,5;-2,25;a\n3;4,5e1;b\n,5;1,0;a\n")
    for ds in (load_file(path), load_file(path, dtype="float32")):
        np.testing.assert_allclose(ds.X, [[1.5, -2.25], [3.0, 45.0], [0.5, 1.0]])
    bare = tmp_path / "bare.csv"
    bare.write_text("1,5;2,5;0\n3,5;4,5;1\n")  # the first row is numbers with decimal commas: data
    assert load_file(bare).shape == (2, 2, 2)
    assert detect_decimal("a;b\n1,5;2.5\n", ";") == "."  # a point in the numbers: no comma decimals
    assert detect_decimal("a,b\n1,5\n", ",") == "."  # commas separate fields
    with pytest.raises(DatasetError, match="non-numeric feature column 'x'.*'1,5'"):
        load_file(path, decimal=".")  # a mark given is used as given


def test_csv_row_index_written_by_pandas_is_no_feature(tmp_path):
    """``DataFrame.to_csv`` writes the index as a first column with no name: both readers and the
    column picker leave it out (a row number as a feature would give away classes sorted by row)."""
    from hraml_core.data.tabular import csv_column_names

    path = tmp_path / "pd.csv"
    path.write_text(",a,b,kind\n0,1.5,2,x\n1,3,4,y\n2,5,6,x\n")
    for ds in (load_file(path), load_file(path, dtype="float32")):
        assert ds.feature_names == ("a", "b") and ds.shape == (3, 2, 2)
        np.testing.assert_array_equal(ds.X, [[1.5, 2], [3, 4], [5, 6]])
    assert csv_column_names(path) == ["a", "b", "kind"]
    numeric = tmp_path / "pdn.csv"
    numeric.write_text(",a,b,c\n0,1,2,0\n1,3,4,1\n2,5,6,0\n")
    for dtype in (None, "float32"):  # a label column's index counts the columns after the row index
        assert load_file(numeric, label_columns=0, dtype=dtype).feature_names == ("b", "c")


def test_ignored_columns_are_neither_features_nor_labels(tmp_path):
    """An identifier or a text note is left out by name or index, by every reader; a text column
    not left out is an error that says how to leave it out."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": ["r1", "r2", "r3", "r4"], "a": [1.0, 2, 3, 4], "note": ["x", "", "y", "z"],
                          "b": [5.0, 6, 7, 8], "kind": ["p", "q", "p", "q"]})
    csv_path, pq_path = tmp_path / "t.csv", tmp_path / "t.parquet"
    frame.to_csv(csv_path, index=False)
    frame.to_parquet(pq_path, index=False)
    for path in (csv_path, pq_path):
        for dtype in (None, "float32"):  # whole, in blocks
            ds = load_file(path, ignore_columns=["id", 2], dtype=dtype)
            assert ds.feature_names == ("a", "b") and list(ds.Y) == ["p", "q", "p", "q"]
            np.testing.assert_array_equal(ds.X, [[1, 5], [2, 6], [3, 7], [4, 8]])
            with pytest.raises(DatasetError, match="non-numeric .*column 'id'.*leave it out with ignore_columns"):
                load_file(path, ignore_columns="note", dtype=dtype)
    with pytest.raises(DatasetError, match="column 'kind' is both a label column and ignored"):
        load_file(csv_path, ignore_columns=["id", "note", "kind"])
    with pytest.raises(DatasetError, match="ignored column 'nope' not found"):
        load_file(csv_path, ignore_columns=["nope"])
    with pytest.raises(DatasetError, match="every column is a label column or ignored"):
        load_file(csv_path, ignore_columns=["id", "a", "note", "b"])
    with pytest.raises(DatasetError, match="option ignore_columns= does not apply to mat files"):
        load_file(tmp_path / "x.mat", ignore_columns=["a"])
    from hraml_core.data.tabular import column_names_of_bytes  # an upload's columns, Parquet too

    assert column_names_of_bytes(pq_path.read_bytes(), "up.parquet") == ["id", "a", "note", "b", "kind"]
    with pytest.raises(DatasetError, match=r"up\.pq: unreadable or truncated Parquet file"):
        column_names_of_bytes(b"not parquet", "up.pq")


def test_parquet_label_columns(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"x1": [0.1, 0.2, 0.3, 0.4], "x2": [1, 2, 3, 4],
                       "a": [1, 0, 1, 0], "b": [0, 1, 1, 0], "cls": ["u", "v", "u", "v"]})
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    ds = load_file(path, label_columns="cls")
    assert ds.task == CLASSIFICATION and ds.feature_names == ("x1", "x2", "a", "b")
    assert ds.label_names == ("u", "v")
    df.drop(columns="cls").to_parquet(path)
    ds = load_file(path, label_columns=["a", "b"])
    assert ds.task == MULTILABEL and ds.shape == (4, 2, 2) and ds.label_names == ("a", "b")


def test_parquet_non_numeric_feature_is_named(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"], "y": [0, 1]}).to_parquet(path)
    with pytest.raises(DatasetError, match=r"bad\.parquet: non-numeric feature column 's'"):
        load_file(path)


def test_load_dataset_accepts_a_file_path(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("a,y\n1,0\n2,1\n")
    assert load_dataset(str(path)).name == "f"


# -- data directory and registry ------------------------------------------------------------------------

def write_toy(folder, rows="1,0\n2,1\n3,0\n"):
    folder.mkdir(parents=True)
    (folder / "toy.csv").write_text("a,y\n" + rows)


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DEFAULT_DATA_DIR", tmp_path / "default")
    assert data_dir() == tmp_path / "default"
    monkeypatch.setenv("HRAML_DATA_DIR", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env"
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert paths.resolve_data_dir(None)[1] == "HRAML_DATA_DIR"

    write_toy(tmp_path / "default" / "toy", "1,0\n2,1\n")
    write_toy(tmp_path / "env" / "toy", "1,0\n2,1\n3,0\n")
    write_toy(tmp_path / "arg" / "toy", "1,0\n2,1\n3,0\n4,1\n")
    assert load_dataset("toy").n_samples == 3  # env
    assert load_dataset("toy", data_dir=tmp_path / "arg").n_samples == 4  # argument wins
    monkeypatch.delenv("HRAML_DATA_DIR")
    assert load_dataset("toy").n_samples == 2  # default


def test_default_data_dir_is_the_checkouts_and_the_manifest_is_package_data():
    repo = Path(__file__).resolve().parents[1]
    assert paths.DEFAULT_DATA_DIR == repo / "datasets" / "files"  # run from this checkout
    assert paths.REGISTRY_PATH.is_file() and paths.REGISTRY_PATH.parent == Path(paths.__file__).parent


def test_missing_registered_dataset_hints_download(tmp_path):
    with pytest.raises(DatasetError, match=r"emotions: not in the data directory .*hraml datasets download emotions"):
        load_dataset("emotions", data_dir=tmp_path)


def test_unknown_dataset_lists_known_names(tmp_path):
    with pytest.raises(DatasetError, match=r"nosuchset: unknown dataset; known: digits, .*binalpha"):
        load_dataset("nosuchset", data_dir=tmp_path)


def test_unregistered_folder_needs_exactly_one_data_file(tmp_path):
    write_toy(tmp_path / "toy")
    (tmp_path / "toy" / "other.csv").write_text("a,y\n1,0\n2,1\n")
    with pytest.raises(DatasetError, match=r"toy: not a registered dataset, .*2 data files"):
        load_dataset("toy", data_dir=tmp_path)


def test_embedded_sets_work_without_the_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "REGISTRY_PATH", tmp_path / "absent.toml")
    assert load_dataset("iris").shape == (150, 4, 3)
    assert "binalpha" not in registry()
    with pytest.raises(DatasetError, match=r"binalpha: unknown dataset.*manifest .*absent\.toml is missing"):
        load_dataset("binalpha", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="manifest is missing"):
        read_manifest(tmp_path / "absent.toml")


@pytest.mark.parametrize("body, problem", [
    ("[datasets.x\n", "malformed TOML"),
    ('[datasets.x]\ntask = "regression"\nformat = "csv"\ndata = "x.csv"\n', "task must be one of"),
    ('[datasets.x]\ntask = "classification"\nformat = "xls"\ndata = "x.xls"\n', "format must be one of"),
    ('[datasets.x]\ntask = "classification"\nformat = "csv"\ndata = "x.csv"\ncolour = 1\n', "unknown key 'colour'"),
    ('[datasets.x]\ntask = "classification"\nformat = "csv"\n[[datasets.x.files]]\nname = "../x.csv"\n',
     "plain file name"),
    ('[datasets.x]\ntask = "classification"\nformat = "csv"\n[[datasets.x.files]]\nname = "x.csv"\nsha256 = "abc"\n',
     "sha256 must be"),
    ('[datasets.digits]\ntask = "classification"\nformat = "csv"\ndata = "d.csv"\n', "is embedded"),
])
def test_malformed_manifest(tmp_path, body, problem):
    path = tmp_path / "registry.toml"
    path.write_text(body)
    with pytest.raises(DatasetError, match=problem) as err:
        registry(path)
    assert "registry.toml" in str(err.value)


def test_manifest_options_reach_the_loader(tmp_path, monkeypatch):
    manifest = tmp_path / "registry.toml"
    manifest.write_text('[datasets.toy]\ntask = "multilabel"\nformat = "csv"\nshape = [3, 1, 2]\n'
                        'data = "toy.csv"\noptions = { label_columns = ["y1", "y2"] }\n')
    monkeypatch.setattr(paths, "REGISTRY_PATH", manifest)
    (tmp_path / "files" / "toy").mkdir(parents=True)
    (tmp_path / "files" / "toy" / "toy.csv").write_text("y1,x,y2\n1,0.5,0\n0,1.5,1\n1,2.5,1\n")
    ds = load_dataset("toy", data_dir=tmp_path / "files")
    assert ds.task == MULTILABEL and ds.label_names == ("y1", "y2") and ds.shape == (3, 1, 2)


# -- Dataset itself ------------------------------------------------------------------------------------

def test_dataset_validates_on_construction():
    X = np.arange(12.0).reshape(4, 3)
    ds = Dataset(name="d", X=X.astype(np.float32), Y=np.array([1.0, 2.0, 1.0, 2.0]), task="classification")
    assert ds.X.dtype == np.float64 and ds.Y.dtype == np.int64
    assert ds.feature_names == ("x0", "x1", "x2") and ds.label_names == ("1", "2")
    assert "4 x 3" in repr(ds)
    with pytest.raises(DatasetError, match="d: unknown task 'regression'"):
        Dataset(name="d", X=X, Y=np.array([0, 1, 0, 1]), task="regression")
    with pytest.raises(DatasetError, match=r"d: bad classification labels: .*at least 2 classes"):
        Dataset(name="d", X=X, Y=np.zeros(4), task="classification")
    with pytest.raises(DatasetError, match="2 feature names for 3 features"):
        Dataset(name="d", X=X, Y=np.array([0, 1, 0, 1]), task="classification", feature_names=("a", "b"))
    with pytest.raises(Exception):  # frozen
        ds.name = "e"


# -- listing ---------------------------------------------------------------------------------------------

def test_list_datasets_statuses(tmp_path):
    (tmp_path / "emotions").mkdir()
    (tmp_path / "emotions" / "emotions.xml.gz").write_bytes(b"x")  # one of its two files
    (tmp_path / "flags").mkdir()
    for f in registry()["flags"].files:
        (tmp_path / "flags" / f.name).write_bytes(b"not the real thing")
    write_toy(tmp_path / "toy")
    rows = {s.name: s for s in list_datasets(tmp_path)}
    assert rows["digits"].status == "embedded"
    assert rows["binalpha"].status == "missing" and "hraml datasets download binalpha" in rows["binalpha"].status_text
    assert rows["emotions"].status == "incomplete" and "emotions.orig.arff.gz" in rows["emotions"].detail
    assert rows["flags"].status == "available"
    assert rows["toy"].status == "unregistered"
    verified = {s.name: s for s in list_datasets(tmp_path, verify=True)}
    assert verified["flags"].status == "corrupt" and "sha256 mismatch" in verified["flags"].status_text


@pytest.mark.data
def test_list_datasets_on_shared_data_is_all_available(shared_data):
    rows = {s.name: s for s in list_datasets(shared_data, verify=True)}
    for name in SHARED:
        assert rows[name].status == "available", rows[name]
        assert rows[name].path == shared_data / name


@pytest.mark.data
def test_shared_data_copy_loads_from_a_custom_dir(shared_data, tmp_path):
    # folder layout is all that matters: a copy elsewhere loads the same
    shutil.copytree(shared_data / "flags", tmp_path / "flags")
    ds = load_dataset("flags", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.Y, load_dataset("flags", data_dir=shared_data).Y)

