"""The shard layout on disk (hraml_core.data.shards) and `hraml datasets shard`."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from hraml_core.cli import main as hraml
from hraml_core.data import Dataset, DatasetError, load_dataset
from hraml_core.data.shards import (MANIFEST, assign_shards, read_manifest, read_shards, shard_rows,
                                    write_shards)


def small(task="classification", n=23, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    if task == "classification":
        Y = np.array(["ant", "bee", "cat"])[np.arange(n) % 3]
    elif task == "multilabel":
        Y = (rng.random((n, 4)) < 0.5).astype(int)
        Y[0], Y[1] = 0, 1
    else:
        Y = rng.dirichlet(np.ones(4), size=n)
    return Dataset(name=f"small-{task}", X=X, Y=Y, task=task, feature_names=("a", "b", "c"))


@pytest.mark.parametrize("task", ["classification", "multilabel", "distribution"])
def test_a_layout_reads_back_the_dataset(tmp_path, task):
    ds = small(task)
    layout = write_shards(ds, tmp_path / "s", 3, seed=5, rows_per_file=4)
    assert (layout.n_shards, layout.n_rows, layout.task, layout.name) == (3, 23, task, ds.name)
    assert [s["rows"] for s in layout.shards] == [8, 8, 7]
    assert [len(s["files"]) for s in layout.shards] == [2, 2, 2]  # 4 rows a file at most
    back = load_dataset(str(tmp_path / "s"))
    np.testing.assert_array_equal(back.X, ds.X.astype(np.float32))  # features are stored as float32
    np.testing.assert_array_equal(back.Y, ds.Y)
    assert back.Y.dtype == ds.Y.dtype and back.task == task
    assert back.feature_names == ("a", "b", "c") and back.label_names == ds.label_names
    assert back.dtype == "float32" and back.name == ds.name


def test_shard_s_holds_the_rows_shard_rows_gives_it_in_dataset_order(tmp_path):
    ds = small()
    layout = write_shards(ds, tmp_path / "s", 3, seed=5)
    data = read_shards(layout, [2, 0])
    expected = np.concatenate([shard_rows(23, 2, 3, seed=5), shard_rows(23, 0, 3, seed=5)])
    np.testing.assert_array_equal(data.rows, expected)
    assert data.sizes == (7, 8)
    np.testing.assert_array_equal(data.X, ds.X[expected].astype(np.float32))
    np.testing.assert_array_equal(data.y, ds.Y[expected])
    # Plain Parquet: any reader reads a file, with positional column names.
    df = pd.read_parquet(tmp_path / "s" / layout.shards[0]["files"][0]["name"])
    assert list(df.columns) == ["row", "x0", "x1", "x2", "y"]
    np.testing.assert_array_equal(df["row"], shard_rows(23, 0, 3, seed=5))


def test_ranks_take_shards_r_r_plus_w_when_they_see_every_shard():
    assert assign_shards(6, 3, [set(range(6))] * 3) == [[0, 3], [1, 4], [2, 5]]
    assert assign_shards(4, 1, [set(range(4))]) == [[0, 1, 2, 3]]


def test_ranks_take_the_shards_of_their_own_node():
    # Two nodes of two ranks; node A holds shards 0-3, node B 4-7; node B's ranks came first.
    a, b = {0, 1, 2, 3}, {4, 5, 6, 7}
    got = assign_shards(8, 4, [b, b, a, a])
    assert sorted(s for shards in got for s in shards) == list(range(8))
    assert all(len(s) == 2 for s in got)
    assert set(got[0] + got[1]) == b and set(got[2] + got[3]) == a


@pytest.mark.parametrize("n, world, visible, message", [
    (3, 2, [{0, 1, 2}] * 2, "3 shards cannot be shared equally by 2 ranks.*run 1, 3 ranks"),
    (4, 2, [{0, 1}, {2}], "shard 3 is on no node"),
    (4, 2, [{0, 1, 2, 3}, {0}], r"cannot each read 2 shards of those on their node \(shards seen by rank 0: 4, rank 1: 1\)"),
])
def test_a_world_that_does_not_fit_the_shards_is_refused(n, world, visible, message):
    with pytest.raises(ValueError, match=message):
        assign_shards(n, world, visible)


def test_writing_refuses_bad_requests(tmp_path):
    ds = small()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("hello")
    with pytest.raises(DatasetError, match="is not empty"):
        write_shards(ds, tmp_path / "full", 2)
    with pytest.raises(ValueError, match="24 shards of 23 rows: a shard would be empty"):
        write_shards(ds, tmp_path / "s", 24)
    with pytest.raises(ValueError, match="positive integer, got 0"):
        write_shards(ds, tmp_path / "s", 0)


def test_a_bad_layout_is_named(tmp_path):
    ds = small()
    folder = tmp_path / "s"
    layout = write_shards(ds, folder, 2)
    with pytest.raises(DatasetError, match="not a shard layout: no shards.json"):
        read_manifest(tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["n_rows"] = 99
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="the shards hold 23 rows, not n_rows = 99.*id does not match"):
        read_manifest(folder)
    manifest["n_rows"], manifest["version"] = 23, 2
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="manifest version 2; this version of hraml reads up to 1"):
        read_manifest(folder)

    layout = write_shards(ds, tmp_path / "t", 2)
    first, second = (tmp_path / "t" / s["files"][0]["name"] for s in layout.shards)
    shutil.copy(second, first)  # shard 1's rows where shard 0's should be: one row fewer
    with pytest.raises(DatasetError, match=f"{first.name}: holds 11 rows, the manifest says 12"):
        read_shards(layout, [0])
    second.unlink()
    with pytest.raises(DatasetError, match=f"{second.name}: shard 1's file is missing from this folder"):
        read_shards(layout, [1])
    with pytest.raises(DatasetError, match=r"shard 1 and 0 others are elsewhere\): the whole set cannot be read here"):
        load_dataset(str(tmp_path / "t"))
    assert read_manifest(tmp_path / "t").present() == [0]


def test_hraml_datasets_shard_writes_a_layout(tmp_path, capsys):
    out = tmp_path / "iris"
    assert hraml(["datasets", "shard", "iris", "--shards", "4", "--out", str(out), "--seed", "2", "--quiet"]) == 0
    assert "wrote 4 shards (37 to 38 rows each, 4 files)" in capsys.readouterr().out
    layout = read_manifest(out)
    assert (layout.n_shards, layout.seed, layout.n_rows) == (4, 2, 150)
    iris, back = load_dataset("iris"), load_dataset(str(out))
    np.testing.assert_array_equal(back.X, iris.X.astype(np.float32))
    np.testing.assert_array_equal(back.Y, iris.Y)
    assert hraml(["datasets", "shard", "iris", "--shards", "4", "--out", str(out), "--quiet"]) == 2
    assert "is not empty: write a shard layout into a new or empty folder" in capsys.readouterr().err
    assert hraml(["datasets", "shard", "iris", "--shards", "0", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "--shards must be a positive integer, got 0" in capsys.readouterr().err
    # a data file is read as hraml train reads it: its format, label and ignored columns
    path = tmp_path / "export.txt"
    path.write_text("kind,id,a,b\n" + "\n".join(f"{'xy'[i % 2]},{1000 + i},{i % 7},{i % 5}" for i in range(40)) + "\n")
    assert hraml(["datasets", "shard", str(path), "--format", "csv", "--label-columns", "kind", "--ignore-columns", "id",
                  "--shards", "2", "--out", str(tmp_path / "file"), "--quiet"]) == 0
    back = load_dataset(str(tmp_path / "file"))
    assert back.X.shape == (40, 2) and sorted(set(back.Y.tolist())) == ["x", "y"]
