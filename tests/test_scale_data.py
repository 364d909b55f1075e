"""Data at scale: CSV and Parquet read in blocks into float32, with progress, within a memory bound,
and handed to the trainer without another copy."""
import gzip
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import hraml_core.data.tabular as tabular
from hraml_core import HRAML
from hraml_core.data import DatasetError, load_file
from hraml_core.preprocessing import Preprocessor
from hraml_core.trainer import Trainer
from hraml_core.training import TrainConfig, TrainingRun

from conftest import REPO


def frame(n=300, seed=0, labels="strings"):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    if labels == "strings":
        df["cls"] = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, n)]
    elif labels == "ints":
        df["cls"] = rng.integers(0, 5, n)
    else:
        df["y1"], df["y2"], df["y3"] = (rng.random((3, n)) < 0.4).astype(int)
    return df


def same(a, b):
    assert b.X.dtype == np.float32 and b.X.flags.c_contiguous and b.dtype == "float32"
    np.testing.assert_allclose(b.X, a.X, rtol=1e-6, atol=1e-6)
    assert np.array_equal(a.Y, b.Y) and a.Y.dtype == b.Y.dtype
    assert (a.task, a.feature_names, a.label_names) == (b.task, b.feature_names, b.label_names)


@pytest.mark.parametrize("kind", ["csv", "tsv", "csv.gz", "headerless", "ints", "multilabel", "parquet", "parquet-groups"])
def test_block_readers_give_the_whole_file_readers_result(tmp_path, kind):
    df = frame(labels={"ints": "ints", "multilabel": "multi"}.get(kind, "strings"))
    path = tmp_path / f"t.{kind.split('-')[0] if 'parquet' in kind else kind if kind != 'headerless' else 'csv'}"
    if kind == "ints":
        path = tmp_path / "t.csv"
    if kind == "multilabel":
        path = tmp_path / "m.csv"
    if kind in ("csv", "ints", "multilabel"):
        df.to_csv(path, index=False)
    elif kind == "tsv":
        df.to_csv(path, index=False, sep="\t")
    elif kind == "csv.gz":
        with gzip.open(path, "wt") as f:
            df.to_csv(f, index=False)
    elif kind == "headerless":
        df.to_csv(path, index=False, header=False)
    else:
        df.to_parquet(path, row_group_size=None if kind == "parquet" else 70)
    cols = ["y1", "y2", "y3"] if kind == "multilabel" else None
    whole = load_file(path, label_columns=cols)
    blocks = load_file(path, label_columns=cols, dtype="float32")
    assert whole.X.dtype == np.float64 and whole.dtype == "float64"
    same(whole, blocks)


def test_csv_rows_longer_than_the_first_ones_grow_the_array(tmp_path, monkeypatch):
    # The array is sized from the first lines' bytes per row; long rows later make it too small.
    monkeypatch.setattr(tabular, "CSV_BLOCK_BYTES", 4096)
    short = "\n".join(f"{i},{i},0" for i in range(200))
    long = "\n".join(f"{i}.123456789012345,{i}.987654321098765,1" for i in range(200, 5000))
    path = tmp_path / "grow.csv"
    path.write_text("a,b,y\n" + short + "\n" + long + "\n")
    ds = load_file(path, dtype="float32")
    assert ds.n_samples == 5000 and ds.X[4999, 0] == pytest.approx(4999.1234567)
    assert ds.X[:200, 0].tolist() == list(range(200)) and list(np.bincount(ds.Y)) == [200, 4800]


def test_large_files_stream_into_float32_by_default(tmp_path, monkeypatch):
    df = frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    assert load_file(tmp_path / "t.csv").X.dtype == np.float64  # small: the whole-file reader
    monkeypatch.setattr(tabular, "STREAM_MIN_BYTES", 1)
    for name in ("t.csv", "t.parquet"):
        assert load_file(tmp_path / name).X.dtype == np.float32
        assert load_file(tmp_path / name, dtype="float64").X.dtype == np.float64  # blocks, kept float64
    with pytest.raises(DatasetError, match="dtype must be one of float32, float64"):
        load_file(tmp_path / "t.csv", dtype="float16")
    with pytest.raises(DatasetError, match="option dtype= does not apply to mat files"):
        load_file(tmp_path / "x.mat", dtype="float32")


@pytest.mark.parametrize("stream", [False, True])
def test_a_column_of_tag_sets_is_a_multi_label_matrix(tmp_path, monkeypatch, stream):
    df = frame(n=6).drop(columns="cls")
    df["tags"] = ["rock; pop", "pop", "jazz;rock", "jazz", "pop;jazz;rock", "rock"]
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    df.assign(tags=[t.replace(";", "|") for t in df["tags"]]).to_csv(tmp_path / "bar.csv", index=False)
    if stream:
        monkeypatch.setattr(tabular, "STREAM_MIN_BYTES", 1)
    expected = [[0, 1, 1], [0, 1, 0], [1, 0, 1], [1, 0, 0], [1, 1, 1], [0, 0, 1]]  # jazz, pop, rock
    for name in ("t.csv", "t.parquet", "bar.csv"):
        ds = load_file(tmp_path / name)
        assert ds.task == "multilabel" and ds.label_names == ("jazz", "pop", "rock"), name
        assert ds.Y.tolist() == expected and ds.feature_names == ("a", "b", "c", "d")
    # the task given wins: each distinct set is then a class of its own
    ds = load_file(tmp_path / "t.csv", task="classification")
    assert ds.task == "classification" and len(set(ds.Y.tolist())) == 6


@pytest.mark.parametrize("stream", [False, True])
def test_a_parquet_column_of_lists_is_a_multi_label_matrix(tmp_path, monkeypatch, stream):
    df = frame(n=6).drop(columns="cls")
    df["tags"] = [["rock", "pop"], ["pop"], ["jazz", "rock"], [], ["pop", "jazz", "rock"], ["rock"]]
    df.to_parquet(tmp_path / "l.parquet")
    df.assign(tags=[["rock"], None, ["pop"], ["jazz"], ["rock"], ["pop"]]).to_parquet(tmp_path / "hole.parquet")
    if stream:
        monkeypatch.setattr(tabular, "STREAM_MIN_BYTES", 1)
    ds = load_file(tmp_path / "l.parquet")
    assert ds.task == "multilabel" and ds.label_names == ("jazz", "pop", "rock")
    assert ds.Y.tolist() == [[0, 1, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 0, 1]]  # [] has no tag
    with pytest.raises(DatasetError, match="missing label.*row 1"):
        load_file(tmp_path / "hole.parquet")


def test_tag_sets_rules():
    from hraml_core.data.labels import tag_sets

    assert tag_sets(np.array(["cat", "dog"])) is None  # no separator: classes
    Y, names = tag_sets(np.array(["cat", "dog"]), "multilabel")  # one tag each
    assert names == ("cat", "dog") and Y.tolist() == [[1, 0], [0, 1]]
    Y, names = tag_sets(np.array(["a|b;c", "c"]))  # ";" comes first: "a|b" is one tag
    assert names == ("a|b", "c") and Y.tolist() == [[1, 1], [0, 1]]
    assert tag_sets(np.array([1, 2])) is None and tag_sets(np.array(["a;b"]), "distribution") is None
    with pytest.raises(DatasetError, match="no tags: every value of the label column is empty"):
        tag_sets(np.array([";", " ; "]), where="x.csv")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_progress_callback_and_bar(tmp_path, suffix, capsys, monkeypatch):
    monkeypatch.setattr(tabular, "CSV_BLOCK_BYTES", 2048)
    path = tmp_path / f"t.{suffix}"
    df = frame(n=2000)
    df.to_csv(path, index=False) if suffix == "csv" else df.to_parquet(path, row_group_size=500)
    seen = []
    load_file(path, dtype="float32", progress=lambda done, total: seen.append((done, total)))
    total = path.stat().st_size if suffix == "csv" else 2000 * 5  # bytes; values (rows x columns)
    assert len(seen) > 3 and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == total
    load_file(path, dtype="float32", progress=True)
    assert f"reading {path.name}" in capsys.readouterr().err  # tqdm on stderr


def test_block_reader_errors_name_the_problem(tmp_path):
    cases = {
        "text.csv": ("a,b,y\n1,2,0\n3,x,1\n", r"non-numeric value in column 'b': 'x'"),
        "ragged.csv": ("a,b,y\n1,2,0\n3,4,1,5\n", r"ragged rows: .*Expected 3 columns, got 4"),
        "nan.csv": ("a,b,y\n1,2,0\n3,,1\n", r"features contain NaN \(missing\) values: 1 entry, the first at row 1 \(0-based\), column 'b'"),
        "nolabel.csv": ("a,b,y\n1,2,0\n3,4,\n", r"missing labels in column 'y': 1 row without a label, the first is row 1"),
        "notag.csv": ("a,b,y\n1,2,x|z\n3,4,\n", r"missing labels in column 'y': 1 row without a label, the first is row 1 "
                                              r"\(0-based\); in this column of tag sets, a row with no tag is written as a lone '\|'"),
        "header.csv": ("a,b,y\n", r"empty: no data rows \(only a header\)"),
        "dup.csv": ("a,a,y\n1,2,0\n", r"duplicate column name 'a'"),
        "nul.csv": ("a,b\x00,y\n1,2,0\n", r"undecodable text: the file holds binary data"),
    }
    for name, (text, problem) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DatasetError, match=rf"{name}: {problem}"):
            load_file(tmp_path / name, dtype="float32")
    (tmp_path / "latin1.csv").write_bytes("a,b,y\n1,2,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="undecodable text: not valid UTF-8"):
        load_file(tmp_path / "latin1.csv", dtype="float32")
    pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"], "y": [0, 1]}).to_parquet(tmp_path / "s.parquet")
    with pytest.raises(DatasetError, match=r"s\.parquet: non-numeric feature column 's'"):
        load_file(tmp_path / "s.parquet", dtype="float32")
    pd.DataFrame({"x": [1.0, 2.0], "y": [0.0, np.nan]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(DatasetError, match=r"missing labels in column 'y': 1 row"):
        load_file(tmp_path / "n.parquet", dtype="float32")
    (tmp_path / "cut.parquet").write_bytes((tmp_path / "s.parquet").read_bytes()[:-20])
    with pytest.raises(DatasetError, match="unreadable or truncated Parquet file"):
        load_file(tmp_path / "cut.parquet", dtype="float32")


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_peak_memory_of_a_block_read_is_within_three_times_the_float32_array(tmp_path, suffix):
    # 200,000 x 100 floats (80 MB as float32), read in a fresh process: the peak resident memory
    # the read adds (Linux's VmHWM, restarted before it) must stay within 3x the array. Fixed
    # costs of a first read (pyarrow's readers, thread pools) count against the bound too.
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    n = 200_000
    rng = np.random.default_rng(0)
    table = pa.table({**{f"f{j}": rng.normal(size=n).astype(np.float32) for j in range(100)},
                      "y": rng.integers(0, 20, n)})
    path = tmp_path / f"big.{suffix}"
    pacsv.write_csv(table, path) if suffix == "csv" else pq.write_table(table, path)
    del table
    code = (
        "import numpy, pandas, pyarrow, pyarrow.csv, pyarrow.parquet\n"
        "from hraml_core.data import load_file\n"
        "def kib(key):\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))\n"
        "open('/proc/self/clear_refs', 'w').write('5')  # restart the peak (VmHWM) from the current RSS\n"
        "before = kib('VmRSS:')\n"
        f"ds = load_file({str(path)!r})\n"
        "print(ds.X.dtype, ds.X.nbytes, (kib('VmHWM:') - before) * 1024, ds.n_samples)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    dtype, nbytes, added, rows = out.stdout.split()
    assert dtype == "float32" and int(rows) == n  # large enough to stream: float32 by default
    assert int(added) <= 3 * int(nbytes), f"peak grew by {int(added) / int(nbytes):.2f}x the array"


# -- no second copy for the trainer -------------------------------------------------------------------

def test_float32_features_reach_the_trainer_without_a_copy(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = np.arange(200) % 3
    t = Trainer(X, y, TrainConfig(hidden=(8,), dim=4))
    assert t.X is X and np.shares_memory(t.run.X.numpy(), X)
    seen = {}
    original = TrainingRun.__init__

    def spy(self, X_, *args, **kwargs):
        original(self, X_, *args, **kwargs)
        seen["X"] = self.X

    monkeypatch.setattr(TrainingRun, "__init__", spy)
    HRAML(max_epochs=1, hidden=8, dim=4, random_state=0).fit(X, y)
    assert np.shares_memory(seen["X"].numpy(), X)
    # a view of a larger buffer (how the CSV block reader returns its rows) is shared as well
    view = np.empty((300, 5), np.float32)[:200]
    view[:] = X
    assert np.shares_memory(TrainingRun(view, np.eye(3)[y], "classification", TrainConfig(hidden=(8,), dim=4)).X.numpy(), view)


def test_preprocessor_keeps_float32():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(100, 8)) * 3 + 1).astype(np.float32)
    for kind in ("standardize", "pca+standardize", "none"):
        pre = Preprocessor(kind, n_components=4)
        Z = pre.fit_transform(X)
        assert Z.dtype == np.float32 and pre.transform(X).dtype == np.float32
        Z64 = Preprocessor(kind, n_components=4).fit_transform(X.astype(np.float64))
        assert Z64.dtype == np.float64
        np.testing.assert_allclose(Z, Z64, rtol=1e-4, atol=1e-4)
    assert torch.from_numpy(Preprocessor().fit_transform(X)).dtype == torch.float32


def test_transform_in_chunks_gives_the_rows_of_one_pass(monkeypatch):
    import hraml_core.estimator as estimator

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 5)), np.arange(300) % 3
    model = HRAML(max_epochs=2, hidden=8, dim=4, random_state=0).fit(X, y)
    whole = model.transform(X)
    monkeypatch.setattr(estimator, "TRANSFORM_CHUNK_ROWS", 7)
    for data in (X, X.astype(np.float32)):
        chunked = model.transform(data)
        assert chunked.dtype == data.dtype and chunked.shape == (300, 4)
        np.testing.assert_allclose(chunked, whole, rtol=1e-5 if data.dtype == np.float32 else 1e-12, atol=1e-6)
