"""The dashboard at scale: every row trained on, data-directory CSV / Parquet files read in blocks
with progress, the live metric's sample sizes on the page, the exact evaluation on demand, the
upload limit, and the preparation's memory (no gathered or float64 copies)."""
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from support import wait_for  # noqa: E402

from hraml_core.data import Dataset, DatasetError  # noqa: E402
from hraml_core.data.tabular import csv_column_names, parquet_column_names  # noqa: E402
from hraml_core.evaluate import EvaluationCancelled  # noqa: E402
from hraml_core.preprocessing import Preprocessor  # noqa: E402
from hraml_core.trainer import Trainer  # noqa: E402
from hraml_dashboard import exact_eval, prepare, sources  # noqa: E402
from hraml_dashboard.prepare import prepare_dataset  # noqa: E402


def blobs(n: int, d: int, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = (rng.normal(size=(n, d)) + 3 * rng.normal(size=(classes, d))[y]).astype(np.float32)
    return X, y


def write_parquet(path: Path, n: int, d: int = 8, classes: int = 4) -> Path:
    X, y = blobs(n, d, classes)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(d)])
    frame["label"] = y
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def write_tags_csv(path: Path, n: int = 400) -> Path:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 5))
    tags = (X[:, :2] > 0).astype(int)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(5)]).assign(tag_a=tags[:, 0], tag_b=tags[:, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.5f")
    return path


# --------------------------------------------------------------------------------------------------
# the data directory's files
# --------------------------------------------------------------------------------------------------
def test_data_directory_files_are_offered_by_path(tmp_path):
    write_parquet(tmp_path / "big.parquet", 50)
    write_tags_csv(tmp_path / "mine" / "tags.csv", 20)
    write_tags_csv(tmp_path / "mine" / "more.tsv.gz", 20)  # not a real TSV: only its name counts here
    write_tags_csv(tmp_path / "single" / "only.csv", 20)  # an unregistered folder with one file
    (tmp_path / "arffset").mkdir()
    (tmp_path / "arffset" / "data.arff").write_text("@relation x\n")
    (tmp_path / "notes.txt").write_text("not data")
    (tmp_path / ".hidden.csv").write_text("a,b\n1,2\n")
    write_tags_csv(tmp_path / "emotions" / "extra.csv", 20)  # a registered set's folder: offered by name only
    from hraml_core.data.shards import write_shards

    X, y = blobs(40, 3)
    write_shards(Dataset(name="s", X=X, Y=y, task="classification"), tmp_path / "sharded", 2)  # by name, whole

    files = sources.data_files(tmp_path)
    assert [f.option for f in files] == ["big.parquet", "mine/more.tsv.gz", "mine/tags.csv", "single/only.csv"]
    assert [f.format for f in files] == ["parquet", "csv", "csv", "csv"]
    assert files[0].size == (tmp_path / "big.parquet").stat().st_size and files[0].name == "big"

    options = sources.dataset_options(tmp_path)
    assert options[0] == "digits" and "iris" in options
    assert "arffset" in options  # an unregistered folder holding one ARFF file keeps its name
    assert "single" not in options and "single/only.csv" in options  # a table is offered as the file itself
    assert options[-4:] == [f.option for f in files] and options[-5] == "sharded"

    assert sources.find_data_file("mine/tags.csv", tmp_path).path == tmp_path / "mine" / "tags.csv"
    for option in ("digits", "notes.txt", "../big.parquet", str(tmp_path / "big.parquet"), "missing.csv"):
        assert sources.find_data_file(option, tmp_path) is None


def test_column_names_match_what_the_loader_reads(tmp_path):
    from hraml_core.data import load_file

    p = write_parquet(tmp_path / "b.parquet", 30, d=3)
    assert parquet_column_names(p) == ["f0", "f1", "f2", "label"]
    c = write_tags_csv(tmp_path / "t.csv", 30)
    assert csv_column_names(c) == ["x0", "x1", "x2", "x3", "x4", "tag_a", "tag_b"]
    (tmp_path / "plain.tsv").write_text("1.5\t2\t0\n0.5\t1\t1\n")
    assert csv_column_names(tmp_path / "plain.tsv") == ["c0", "c1", "c2"]  # no header: the loader's names
    ds = load_file(tmp_path / "plain.tsv", label_columns=["c2"], dtype="float32")
    assert ds.feature_names == ("c0", "c1")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match="bad.parquet"):
        parquet_column_names(tmp_path / "bad.parquet")
    with pytest.raises(DatasetError, match="file not found"):
        csv_column_names(tmp_path / "missing.csv")


def test_a_file_is_read_once_with_progress_and_trained_on_whole(tmp_path):
    write_parquet(tmp_path / "blobs.parquet", 3000)
    f = sources.find_data_file("blobs.parquet", tmp_path)
    cache = sources.PreparedCache(keep=1)
    reports = []
    p = sources.prepare_file(f, ("label",), "auto", progress=lambda done, total: reports.append((done, total)), cache=cache)
    assert len(p.train_index) + len(p.val_index) == 3000  # every row, no subsample
    assert p.X_train.dtype == np.float32 and p.extra["read_s"] >= 0 and p.extra["prepare_s"] >= 0
    assert reports and reports[-1][0] == reports[-1][1]  # the read ends at 100%
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)
    assert "Read 3,000 rows in" in sources.timing_note(p)
    assert sources.prepare_file(f, ("label",), "auto", cache=cache) is p  # cached: not read again
    assert cache.cached(sources.file_key(f, ("label",), "auto"))
    # a failing read leaves nothing behind, and the next call tries again
    calls = []

    def bad():
        calls.append(1)
        raise DatasetError("broken")

    for _ in range(2):
        with pytest.raises(DatasetError):
            cache.get("bad", bad)
    assert len(calls) == 2 and not cache.cached("bad")
    # keep=1: a new key pushes the old one out
    cache.get("new", lambda: "x")
    assert not cache.cached(sources.file_key(f, ("label",), "auto"))


def test_concurrent_sessions_share_one_read():
    cache = sources.PreparedCache()
    gate, made = threading.Event(), []

    def make():
        made.append(1)
        gate.wait(10)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", make))) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(made) == 1)
    gate.set()
    for t in threads:
        t.join(10)
    assert len(made) == 1 and len(got) == 3 and got[0] is got[1] is got[2]


def test_throttle_reports_at_most_every_interval_and_always_the_end():
    now = [0.0]
    shown = []
    t = sources.Throttle(shown.append, every_s=1.0, clock=lambda: now[0])
    for done in range(0, 10):
        now[0] = done * 0.3
        t(done, 10)
    t(10, 10)
    assert shown == [0.0, 0.4, 0.8, 1.0]  # at t = 0, 1.2, 2.4 s, and the end
    t2 = sources.Throttle(shown.append)
    t2(0, 0)
    assert shown[-1] == 1.0  # an empty total counts as done


def test_upload_limit_messages(tmp_path):
    assert sources.upload_too_large("a.csv", 2**20, 1, tmp_path) is None  # exactly the limit is fine
    msg = sources.upload_too_large("a.csv", 2**20 + 1, 1, tmp_path)
    assert "a.csv is 1.0 MB" in msg and "upload limit of 1 MB" in msg and str(tmp_path) in msg and "data directory" in msg
    assert "Uploads up to 200 MB" in sources.upload_limit_note(200, tmp_path)


# --------------------------------------------------------------------------------------------------
# preparation at scale
# --------------------------------------------------------------------------------------------------
def test_block_standardisation_equals_the_preprocessor():
    X, y = blobs(5000, 12)
    X[:, 3] = 7.0  # a constant column: kept (minus its mean), as scikit-learn's scaler does
    ds = Dataset(name="b", X=X, Y=y, task="classification", dtype="float32")
    old = prepare.BLOCK_BYTES
    try:
        prepare.BLOCK_BYTES = 700 * 12 * 8  # blocks of 700 rows, the last one short
        p = prepare_dataset(ds)
    finally:
        prepare.BLOCK_BYTES = old
    ref = Preprocessor("standardize")
    expected = ref.fit_transform(X[p.train_index].astype(np.float64))
    np.testing.assert_allclose(p.X_train, expected, atol=2e-5)
    np.testing.assert_allclose(p.X_val, ref.transform(X[p.val_index].astype(np.float64)), atol=2e-5)
    np.testing.assert_allclose(p.preprocessor.scale_mean_, ref.scale_mean_, rtol=1e-6)
    np.testing.assert_allclose(p.preprocessor.scale_, ref.scale_, rtol=1e-5)
    assert p.X_train[:, 3].max() == 0 and p.preprocessor.scale_[3] == 1.0
    np.testing.assert_allclose(p.transform(X[p.val_index]), p.X_val, atol=2e-5)  # the exported model's mapping


def test_preparation_holds_no_extra_full_copies(monkeypatch):
    # 60,000 x 100 float32 (24 MB): the split parts are the only full-size arrays made, beside
    # block-sized temporaries (1 MiB blocks here; 16 MiB in use, against 400 MB at a million rows).
    # Before, the gathered training part, the scaler's float64 temporaries and a float32 cast came on top.
    monkeypatch.setattr(prepare, "BLOCK_BYTES", 1 << 20)
    X, y = blobs(60_000, 100, classes=20)
    ds = Dataset(name="b", X=X, Y=y, task="classification", dtype="float32")
    tracemalloc.start()
    try:
        p = prepare_dataset(ds)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    parts = p.X_train.nbytes + p.X_val.nbytes
    assert parts == X.nbytes
    assert peak < 1.25 * parts, f"peak {peak / 2**20:.1f} MiB for {parts / 2**20:.1f} MiB of prepared features"
    # the trainer shares the prepared features rather than copying them
    t = Trainer(p.X_train, p.Y_train, X_val=p.X_val, Y_val=p.Y_val)
    assert np.shares_memory(t.run.X.numpy(), p.X_train)


def test_baselines_and_the_export_take_stated_samples(monkeypatch):
    monkeypatch.setattr(prepare, "BASELINE_TRAIN_ROWS", 500)
    monkeypatch.setattr(prepare, "BASELINE_VAL_ROWS", 200)
    monkeypatch.setattr(prepare, "EXPORT_ROWS", 1000)
    X, y = blobs(3000, 6)
    p = prepare_dataset(Dataset(name="b", X=X, Y=y, task="classification", dtype="float32"))
    Xtr, Ytr, Xva, Yva = p.baseline_data()
    assert (len(Xtr), len(Ytr), len(Xva), len(Yva)) == (500, 500, 200, 200) and p.baseline_sizes() == (500, 200)
    assert "fitted on 500 of 2,100 training rows and scored on 200 of 900 held-out rows" in p.baseline_note()
    tr, va = p.export_positions()
    assert len(tr) + len(va) == 1000 and "1,000 of the 3,000 rows" in p.export_note()
    from hraml_dashboard import export

    csv = pd.read_csv(__import__("io").StringIO(export.sampled_embeddings_csv(lambda A: A[:, :2] * 0 + 1, p)))
    assert len(csv) == 1000 and set(csv["row"]) == set(p.train_index[tr]) | set(p.val_index[va])
    small = prepare_dataset(Dataset(name="s", X=X[:300], Y=y[:300], task="classification", dtype="float32"))
    assert small.baseline_note() is None and small.export_note() is None
    assert small.baseline_data()[0] is small.X_train  # every row: no copy


# --------------------------------------------------------------------------------------------------
# the exact evaluation
# --------------------------------------------------------------------------------------------------
class GatedTrainer:
    """Stands in for a Trainer: evaluate_full reports progress, then waits for a gate, checking
    should_stop, as hraml_core.heldout.full_evaluation does between chunks."""

    def __init__(self):
        self.gate, self.started = threading.Event(), threading.Event()

    def snapshot(self):
        return type("S", (), {"step": 7, "metric_rows": (300, 700)})()

    def evaluate_full(self, progress=None, should_stop=None, threads=1):
        for done in (250, 500, 1000):
            if should_stop():
                raise EvaluationCancelled("stopped")
            progress(done, 1000)
            self.started.set()
            self.gate.wait(10)
        return {"accuracy": 0.75}


def test_exact_evaluation_in_the_background_with_progress_and_a_result():
    X, y = blobs(1500, 6)
    t = Trainer(X[:1000], y[:1000], X_val=X[1000:], Y_val=y[1000:])
    ev = exact_eval.ExactEvaluation()
    assert ev.start(t, "k")
    assert not ev.start(t, "k") or ev.view("k").phase == exact_eval.DONE  # one at a time
    assert wait_for(lambda: not ev.running() and ev.view("k").phase == exact_eval.DONE, 60)
    v = ev.view("k")
    assert v.done == v.total > 0 and v.rows == (500, 1000) and v.step == 0
    assert v.metrics == t.evaluate_full()  # the same weights (untrained): the same numbers
    assert "Exact held-out accuracy: **" in exact_eval.result_text(v, "accuracy") and "all 500 held-out rows" in \
        exact_eval.result_text(v, "accuracy")
    assert ev.view("other") is None
    no_val = Trainer(X[:100], y[:100])
    assert not ev.start(no_val, "n") and "no held-out rows" in ev.view("n").message
    ev.close()


def test_exact_evaluation_cancels_and_follows_the_trainer():
    ev = exact_eval.ExactEvaluation()
    gated = GatedTrainer()
    assert ev.start(gated, "a")
    assert gated.started.wait(10)
    v = ev.view("a")
    assert v.phase == exact_eval.RUNNING and (v.done, v.total) == (250, 1000) and v.fraction == 0.25
    assert "all 300 held-out against all 700 training rows (weights of step 7): 25%" in exact_eval.progress_text(v)
    ev.cancel(timeout=None)
    gated.gate.set()
    assert wait_for(lambda: not ev.running(), 10)
    assert ev.view("a").phase == exact_eval.CANCELLED
    assert "cancelled at 25%" in exact_eval.result_text(ev.view("a"), "accuracy")
    # a new trainer: the old evaluation is cancelled and forgotten
    gated2 = GatedTrainer()
    assert ev.start(gated2, "b") and gated2.started.wait(10)
    ev.follow("c")
    gated2.gate.set()
    assert wait_for(lambda: not ev.running(), 10)
    assert ev.view("c") is None and ev.view("b") is None  # forgotten: its cancellation is not published
    ev.close()
    assert not ev.start(GatedTrainer(), "d")  # closed


def test_sample_caption_states_the_sizes():
    snap = type("S", (), {"metric_sample": (1000, 5000), "metric_rows": (300_000, 700_000), "metric_name": "accuracy"})()
    text = exact_eval.sample_caption(snap)
    assert "accuracy on 1,000 of 300,000 held-out rows, matched against 5,000 of 700,000 training rows" in text
    snap.metric_sample, snap.metric_rows = (540, 1257), (540, 1257)
    assert "on all 540 held-out rows, matched against all 1,257 training rows" in exact_eval.sample_caption(snap)


def test_metric_names_are_written_as_words_and_kept_as_keys():
    from hraml_dashboard import figures

    assert figures.metric_label("average_precision") == "average precision"
    assert figures.metric_label("accuracy") == "accuracy" and figures.metric_label(None) == "metric"
    snap = type("S", (), {"metric_sample": (10, 20), "metric_rows": (10, 20), "metric_name": "average_precision"})()
    assert exact_eval.sample_caption(snap).startswith("Held-out average precision on all 10 held-out rows")
    v = exact_eval.EvalView(key="k", phase=exact_eval.DONE, step=7, rows=(10, 20), done=10, total=10, seconds=0.5,
                            metrics={"average_precision": 0.8, "hamming_loss": 0.2})
    assert exact_eval.result_text(v, "average_precision").startswith("Exact held-out average precision: **0.8000**")
    assert "; hamming loss 0.2000." in exact_eval.result_text(v, "average_precision")
    fig = figures.metric_figure("hamming_loss", [1, 2], [0.3, 0.2], raw=0.25)
    assert fig.layout.title.text.startswith("Held-out hamming loss") and fig.layout.yaxis.title.text == "hamming loss"


# --------------------------------------------------------------------------------------------------
# the page (AppTest)
# --------------------------------------------------------------------------------------------------
from support import metrics, status, wait_until  # noqa: E402  (the app fixture is in conftest.py)


def _texts(at) -> list[str]:
    return [e.value for e in list(at.caption) + list(at.markdown)]


def _progress(at) -> list[str]:
    return [e.proto.text for e in at.get("progress")]


@pytest.mark.slow
def test_a_data_directory_parquet_file_trains_on_every_row(app, tmp_path, monkeypatch):
    write_parquet(tmp_path / "blobs.parquet", 12_000)
    monkeypatch.setenv("HRAML_DATA_DIR", str(tmp_path))
    gate, started = threading.Event(), threading.Event()
    original = Trainer.evaluate_full

    def gated(self, progress=None, should_stop=None, threads=1):
        def report(done, total):
            progress(done, total)
            started.set()
            gate.wait(30)
        return original(self, progress=report, should_stop=should_stop, threads=threads)

    monkeypatch.setattr(Trainer, "evaluate_full", gated)
    app.run()
    assert "blobs.parquet" in app.selectbox(key="dataset").options
    app.selectbox(key="dataset").set_value("blobs.parquet").run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert app.multiselect(key="label_columns").value == ["label"]  # the picker, default the last column
    assert any("PARQUET file, read in blocks" in c.value for c in app.sidebar.caption)
    texts = _texts(app)
    assert any("blobs: classification, 12000 samples" in t and "train 8400 / held-out 3600" in t for t in texts), texts
    assert any("Read 12,000 rows in" in t for t in texts)
    assert not any("subsampled" in t for t in texts)

    app.button(key="start").click().run()
    assert wait_until(app, lambda: metrics(app)["Held-out accuracy"] != "–", timeout=60)
    assert any("accuracy on 1,000 of 3,600 held-out rows, matched against 5,000 of 8,400 training rows" in t
               for t in _texts(app))
    app.button(key="stop").click().run()
    assert status(app) == "stopped"

    # the exact evaluation: progress while it runs, then the result beside the sampled metric
    app.button(key="exact_eval").click().run()
    assert started.wait(30)
    app.run()
    bars = _progress(app)
    assert any("Exact evaluation of all 3,600 held-out against all 8,400 training rows" in b for b in bars), bars
    assert app.button(key="exact_eval").disabled and not app.button(key="exact_cancel").disabled
    gate.set()
    assert wait_until(app, lambda: any("Exact held-out accuracy: **" in t for t in _texts(app)), timeout=60)
    from hraml_dashboard.state import open_sessions

    trainer = next(s.trainer for s in open_sessions() if s.trainer is not None and s.prepared.name == "blobs")
    exact = original(trainer)["accuracy"]
    shown = next(t for t in _texts(app) if "Exact held-out accuracy" in t)
    assert f"**{exact:.4f}**" in shown and "all 3,600 held-out rows against all 8,400 training rows" in shown
    assert not app.button(key="exact_eval").disabled and not _progress(app)
    # the baselines are fitted on a stated sample of this set
    assert any("Baselines are fitted on 7,000 of 8,400 training rows" in c.value for c in app.caption)


def test_a_data_directory_csv_with_picked_label_columns(app, tmp_path, monkeypatch):
    write_tags_csv(tmp_path / "tags" / "tags.csv")
    monkeypatch.setenv("HRAML_DATA_DIR", str(tmp_path))
    app.run()
    app.selectbox(key="dataset").set_value("tags/tags.csv").run()
    assert app.multiselect(key="label_columns").value == ["tag_b"]
    app.multiselect(key="label_columns").set_value(["tag_a", "tag_b"]).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Task: multilabel" in m.value and "tags" in m.value for m in app.markdown)
    assert any("on all 120 held-out rows, matched against all 280 training rows" in t for t in _texts(app))


def test_a_data_directory_svmlight_file_is_offered_and_read_sparse(app, tmp_path, monkeypatch):
    import scipy.sparse as sp
    from sklearn.datasets import dump_svmlight_file

    X = sp.random(80, 150, density=0.1, format="csr", random_state=0)
    (tmp_path / "text").mkdir()
    dump_svmlight_file(X, np.arange(80) % 4, str(tmp_path / "text" / "words.svm"))
    write_tags_csv(tmp_path / "tags.csv")
    svm = [f for f in sources.data_files(tmp_path) if f.format == "svmlight"]
    assert [f.option for f in svm] == ["text/words.svm"] and not svm[0].is_table
    monkeypatch.setenv("HRAML_DATA_DIR", str(tmp_path))
    app.run()
    app.selectbox(key="dataset").set_value("tags.csv").run()
    app.multiselect(key="label_columns").set_value(["tag_a", "tag_b"]).run()  # a table's picks...
    app.selectbox(key="dataset").set_value("text/words.svm").run()  # ...do not apply to an svmlight file
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert not [m for m in app.sidebar.multiselect if m.key in ("label_columns", "ignore_columns")]
    assert any("svmlight file: sparse features" in c.value for c in app.sidebar.caption)
    assert any("Task: classification" in m.value and "150 features (SVD to" in m.value for m in app.markdown)
    # read in blocks with the page's progress, like a table
    reports = []
    sources.prepare_file(svm[0], None, "auto", progress=lambda done, total: reports.append((done, total)),
                         cache=sources.PreparedCache(keep=1))
    size = (tmp_path / "text" / "words.svm").stat().st_size
    assert reports and reports[-1] == (size, size)


def test_an_upload_over_the_limit_points_to_the_data_directory(app, tmp_path, monkeypatch):
    from streamlit import config

    monkeypatch.setenv("HRAML_DATA_DIR", str(tmp_path))
    before = config.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 1)
    try:
        app.run()
        app.selectbox(key="dataset").set_value("Upload a file…").run()
        assert any("Uploads up to 1 MB" in c.value for c in app.sidebar.caption)
        big = b"a,b,label\n" + b"1.000000,2.000000,0\n" * 60_000  # 1.2 MB
        app.file_uploader(key="upload").set_value(("big.csv", big, "text/csv")).run()
        assert not app.exception
        errors = [e.value for e in app.error]
        assert any("big.csv is 1.2 MB, over this server's upload limit of 1 MB" in e and str(tmp_path) in e
                   and "data directory" in e for e in errors), errors
    finally:
        config.set_option("server.maxUploadSize", before)
