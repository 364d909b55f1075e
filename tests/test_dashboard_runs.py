"""The dashboard's recorded-runs parts without a browser: the shared readers (run_store), the
aligned replay frames (replay), the replay / compare / export figures and the link of the sidebar
(share)."""
import base64
import io
import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from hraml_core.runs import open_run
from hraml_dashboard import figures, replay, run_store, settings_form, share
from hraml_dashboard.geometry import pca_2d, procrustes_align
from run_factory import make_run
from support import wait_for


@pytest.fixture(autouse=True)
def _no_shared_runs_left():
    yield
    run_store.close_shared_runs()


# -- run_store -------------------------------------------------------------------------------------
def test_new_run_dirs_are_readable_unique_and_not_created(tmp_path):
    a = run_store.new_run_dir(tmp_path, "my data/set", "l1", now=0)
    b = run_store.new_run_dir(tmp_path, "my data/set", "l1", now=0)
    assert a.parent == tmp_path and a != b and not a.exists()
    assert a.name.startswith("my-data-set-l1-19700101-") or a.name.startswith("my-data-set-l1-1970")
    assert set(a.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


def test_resolve_run_stays_inside_the_runs_folder(tmp_path):
    make_run(tmp_path / "runs" / "group" / "r1", snapshots=2)
    (tmp_path / "outside").mkdir()
    make_run(tmp_path / "outside" / "secret", snapshots=2)
    root = tmp_path / "runs"
    assert run_store.resolve_run(root, "group/r1") == (root / "group" / "r1").resolve()
    for bad in ("../outside/secret", str(tmp_path / "outside" / "secret"), "group/../../outside/secret", "", "nope"):
        with pytest.raises(ValueError, match="not a run name|no run called"):
            run_store.resolve_run(root, bad)
    assert [s.name for s in run_store.summaries(root)] == ["group/r1"]
    assert run_store.summaries(tmp_path / "absent") == []


def test_one_shared_reader_per_run_refreshed_at_most_every_interval(tmp_path):
    w = make_run(tmp_path / "live", snapshots=2, finish=False)
    a = run_store.shared_run(tmp_path / "live")
    assert run_store.shared_run(str(tmp_path / "live" / ".." / "live")) is a  # one per folder, however named
    steps = len(a.run.scalars)
    w.log(999, loss=0.5)
    w.flush()
    reads = a.refreshes
    assert a.refresh(min_interval_s=3600) is False and a.refreshes == reads  # throttled: no read at all
    assert a.refresh(min_interval_s=0) is True and len(a.run.scalars) == steps + 1
    # viewers asking at once: a refresh under way is not waited for, and not repeated
    start, results = threading.Barrier(8), []

    def viewer():
        start.wait()
        results.append(a.refresh(min_interval_s=10))

    w.log(1000, loss=0.4)
    w.flush()
    a._refreshed = -1e9  # due now
    threads = [threading.Thread(target=viewer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1 and a.run.scalars["step"].max() == 1000
    built = []
    figs = [a.figures(("k", 1), lambda: built.append(1) or {"x": 1}) for _ in range(3)]
    assert built == [1] and all(f is figs[0] for f in figs)
    w.finish()


# -- replay frames ---------------------------------------------------------------------------------
def test_frames_are_aligned_snapshot_to_snapshot(tmp_path):
    make_run(tmp_path / "r", snapshots=12, display=80)
    run = open_run(tmp_path / "r")
    chain = replay.FrameChain(run, "pca")
    chain.ensure()
    assert chain.wait(30) and chain.progress() == (12, 12)
    steps = run.snapshot_steps
    frames = [chain.frame(s) for s in steps]
    assert all(f is not None and f.method == "pca" and f.aligned for f in frames)
    for prev, cur in zip(frames, frames[1:]):
        # each frame already sits where Procrustes would put it on the one before
        np.testing.assert_allclose(procrustes_align(cur.xy, prev.xy), cur.xy, atol=1e-4)
        # and moves less than the plain PCA of the same snapshot, whose axes may flip
        plain = pca_2d(run.snapshot(cur.step).embeddings)
        assert np.linalg.norm(cur.xy - prev.xy) <= np.linalg.norm(plain - prev.xy) + 1e-6
    np.testing.assert_array_equal(frames[0].labels, run.snapshot(0).embedding_labels)
    # the export uses the chain's frames when it has them all, else computes a PCA chain itself
    assert replay.aligned_frames(run, steps[::3], chain)[1] is frames[3]
    own = replay.aligned_frames(run, steps[::3])
    np.testing.assert_allclose(own[0].xy, frames[0].xy, atol=1e-5)
    chain.close()
    assert not chain.is_alive()


def test_the_chain_follows_a_run_being_written(tmp_path):
    w = make_run(tmp_path / "live", snapshots=3, finish=False)
    shared = run_store.shared_run(tmp_path / "live")
    chain = shared.chain("pca")
    assert chain.wait(30) and chain.progress() == (3, 3)
    Z = np.random.default_rng(5).normal(size=(60, 8)).astype(np.float32)
    w.snapshot(500, shared.run.snapshot(0).A, Z / np.linalg.norm(Z, axis=1, keepdims=True))
    assert shared.refresh(0)  # the viewer's refresh wakes the chain
    assert wait_for(lambda: chain.frame(500) is not None, 30)
    assert chain.latest().step == 500 and shared.chain("pca") is chain
    w.finish()


def test_a_chain_nobody_looks_at_stops_and_goes_on_when_asked_again(tmp_path):
    make_run(tmp_path / "r", snapshots=6)
    run = open_run(tmp_path / "r")
    looking = threading.Event()
    chain = replay.FrameChain(run, "pca", wanted=looking.is_set)
    chain.ensure()
    assert wait_for(lambda: not chain.is_alive(), 30)  # gone without computing a frame
    assert chain.progress() == (0, 6) and chain.latest() is None
    looking.set()
    chain.ensure()
    assert chain.wait(30) and chain.progress() == (6, 6)
    chain.close()


def test_a_shared_run_is_watched_while_viewers_ask_for_it(tmp_path):
    make_run(tmp_path / "r", snapshots=2)
    shared = run_store.shared_run(tmp_path / "r")
    chain = shared.chain("pca")
    assert shared.watched()
    shared.last_used -= run_store.VIEWERS_GONE_S + 1  # the last viewer left that long ago
    assert not shared.watched()
    assert shared.chain("pca") is chain and shared.watched()  # a viewer back: its chain goes on
    assert chain.wait(30)


def test_a_step_before_the_chain_gets_there_shows_an_aligned_pca(tmp_path):
    make_run(tmp_path / "r", snapshots=4)
    run = open_run(tmp_path / "r")
    chain = replay.FrameChain(run, "umap", service_getter=lambda: None)  # never started: no frames yet
    f = chain.frame_or_fallback(run.snapshot_steps[2])
    assert f is not None and f.method == "pca" and not f.aligned and "0/4" in f.note
    assert chain.frame_or_fallback(12345) is None  # no such snapshot


def test_umap_frames_come_from_the_umap_service_warm_started(tmp_path):
    make_run(tmp_path / "r", snapshots=3, display=40)
    run = open_run(tmp_path / "r")
    inits = []

    def fit(Z, init=None, seed=0):
        inits.append(np.array(init))
        return (np.asarray(init) * 1.01).astype(np.float32)

    svc = SimpleNamespace(ready=threading.Event(), failed=None, fit=fit)
    svc.ready.set()
    chain = replay.FrameChain(run, "umap", service_getter=lambda: svc)
    chain.ensure()
    assert chain.wait(30)
    frames = [chain.frame(s) for s in run.snapshot_steps]
    assert [f.method for f in frames] == ["umap"] * 3 and len(inits) == 3
    np.testing.assert_allclose(inits[1], frames[0].xy, atol=1e-6)  # warm-started from the previous frame
    off = replay.FrameChain(run, "umap", service_getter=lambda: None)
    off.ensure()
    assert off.wait(30) and off.frame(0).method == "pca" and "switched off" in off.note
    chain.close()
    off.close()
    with pytest.raises(ValueError):
        replay.FrameChain(run, "tsne")


# -- figures -----------------------------------------------------------------------------------------
def test_curve_figure_marks_the_step_and_draws_the_curve_up_to_it():
    x = np.arange(1, 101, dtype=float)
    fig = figures.curve_figure({"loss": (x, 1 / x)}, "t", "loss", step=40, upto=True, x_range=(0, 100))
    later, done, dot = fig.data
    assert done.x[-1] == 40 and later.x[0] == 41 and later.opacity == 0.25
    assert list(dot.x) == [40] and dot.y[0] == pytest.approx(1 / 40)
    assert fig.layout.shapes[0].x0 == 40 and fig.layout.yaxis.type == "log" and list(fig.layout.xaxis.range) == [0, 100]
    two = figures.curve_figure({"a": (x, x), "b": (x, 2 * x)}, "t", "m", step=10, lines={"raw": 5.0}, log=False)
    assert [t.name for t in two.data if t.mode == "lines"] == ["a", "b", "raw (5.0000)"] and two.layout.showlegend
    assert figures.value_at([1, 5, 9], [10, 50, 90], 7) == 50 and figures.value_at([1, 5], [1, 2], 0) is None


def test_replay_figures_show_the_run_at_the_snapshot(tmp_path):
    make_run(tmp_path / "r", snapshots=5, every=10)
    run = open_run(tmp_path / "r")
    snap = run.snapshot(20)
    frame = replay.aligned_frames(run, [20])[0]
    figs = figures.replay_figures(run, snap, frame)
    assert set(figs) == {"loss", "metric", "heatmaps", "scatter", "projection"}
    np.testing.assert_array_equal(figs["heatmaps"].data[0].z, snap.A)
    np.testing.assert_array_equal(figs["heatmaps"].data[1].z, snap.E)
    loss = [t for t in figs["loss"].data if t.mode == "lines" and t.opacity != 0.25][0]
    assert loss.x[-1] == 20 and "step 20: 0.04762" in figs["loss"].layout.title.text
    assert "accuracy at step 20: 0.7500" in figs["metric"].layout.title.text
    assert any("raw features" in (t.name or "") for t in figs["metric"].data)
    assert "at step 20" in figs["projection"].layout.title.text
    live = figures.replay_figures(run, snap, None, as_images=True)["heatmaps"]  # a view that refreshes
    assert live.startswith("<svg") and live.count("<image ") == 3
    assert figures.replay_figures(run, snap, None, as_images=True, svg=False)["heatmaps"].data[0].type == "image"


def test_matrices_of_several_runs_share_one_colour_scale():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, (10, 10)), rng.uniform(0, 3, (12, 12))
    fig = figures.matrices_figure([("a", a), ("b", b)], [np.arange(10) // 5, None], as_images=False)
    h1, h2 = fig.data
    assert h1.coloraxis == h2.coloraxis and h1.zmax == h2.zmax == figures.nice_ceiling(b.max())
    assert [x.text for x in fig.layout.annotations] == ["a", "b"] and h2.xaxis == "x2"
    images = figures.matrices_figure([("a", a), ("b", b)])
    assert [t.type for t in images.data] == ["image", "image", "heatmap"]
    with pytest.raises(ValueError):
        figures.matrices_figure([("bad", np.zeros((2, 3)))])


def _tags(html: str) -> list:
    """The (tag, attributes) of an HTML page (script contents are not parsed as markup)."""
    from html.parser import HTMLParser

    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Tags().feed(html)
    return found


def _spec(html: str) -> dict:
    """The figure an exported page plays (its JSON block)."""
    start = html.index('id="hraml-evolution">') + len('id="hraml-evolution">')
    return json.loads(html[start: html.index("</script>", start)])


def test_evolution_html_is_one_self_contained_file_with_a_frame_per_snapshot(tmp_path):
    from PIL import Image

    make_run(tmp_path / "r", snapshots=7)
    run = open_run(tmp_path / "r")
    html = replay.evolution_html(run)
    tags = _tags(html)
    assert html.startswith("<!DOCTYPE html>") and [t for t, _ in tags].count("script") == 3
    assert not [(t, a) for t, a in tags if {"src", "href"} & {k for k, _ in a}], "nothing is fetched"
    assert "plotly.js v" in html  # the library itself is inside
    spec = _spec(html)
    frames = spec["frames"]
    assert [f["name"] for f in frames] == [str(s) for s in run.snapshot_steps]
    assert spec["layout"]["updatemenus"][0]["buttons"][0]["label"].endswith("Play")
    assert len(spec["layout"]["sliders"][0]["steps"]) == 7
    last = frames[-1]["data"]
    a_image = [t for t in last if t["type"] == "image"][0]["source"]
    png = base64.b64decode(a_image.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(png)).size == (24, 24)
    groups = [t for t in last if t["type"] == "scatter" and t.get("xaxis") == "x5"]
    assert len(groups) == 3 and sum(len(base64.b64decode(t["x"]["bdata"])) for t in groups) == 4 * 60  # float32
    final = replay.aligned_frames(run, run.snapshot_steps)[-1]
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(groups[0]["x"]["bdata"]), "<f4"),
                                  final.xy[final.labels == np.unique(final.labels)[0], 0])
    assert figures.pick_steps(range(1000), 200)[::199] == [0, 999] and len(figures.pick_steps(range(1000), 200)) == 200
    short = _spec(replay.evolution_html(run, max_frames=3))
    assert [f["name"] for f in short["frames"]] == ["0", "30", "60"]
    make_run(tmp_path / "empty", snapshots=0)
    with pytest.raises(ValueError, match="no snapshots"):
        replay.evolution_html(open_run(tmp_path / "empty"))


# -- the link --------------------------------------------------------------------------------------
SPECS = settings_form.widget_specs(options={"relation": ["l1", "l2", "jaccard"]})
DATASETS = ["digits", "iris", "wine"]


def _other_value(spec):
    """A valid widget value different from the default."""
    if spec.widget == settings_form.SELECT:
        return [o for o in spec.options if o != share.default_value(spec)][-1]
    if spec.widget == settings_form.CHECKBOX:
        return not spec.default
    if spec.widget == settings_form.INT:
        v = int(spec.default) + int(spec.step)
        return v if spec.max_value is None or v <= spec.max_value else int(spec.default) - int(spec.step)
    if spec.widget == settings_form.FLOAT:
        v = float(spec.default) * 0.5 if spec.default else 0.25
        return v
    return "32,16" if spec.key == "hidden" else "1.5"


def test_every_sidebar_setting_travels_in_a_link_and_back():
    values = {s.key: _other_value(s) for s in SPECS}
    values.update(dataset="wine", probe_size=150, display_size=500, projection="PCA")
    query = share.to_query(values, SPECS, "digits", DATASETS)
    assert set(query) == set(share.sidebar_keys(SPECS))  # every one differs from its default
    assert all(isinstance(v, str) for v in query.values())
    back, problems = share.parse_query(query, SPECS, DATASETS)
    assert problems == [] and back == values
    # defaults are left out: a link with no settings opens the defaults
    defaults = {s.key: share.default_value(s) for s in SPECS}
    assert share.to_query({**defaults, "dataset": "digits", "probe_size": 300}, SPECS, "digits", DATASETS) == {}
    assert share.to_query({"dataset": "Upload a file…"}, SPECS, "digits", DATASETS) == {}  # a file cannot travel
    assert share.to_query({"lr": 0.1 + 0.2}, SPECS)["lr"] == "0.30000000000000004"  # the exact float


def test_bad_link_values_are_named_and_left_out():
    query = {"dataset": "nope", "lr": "fast", "hidden": "12,x", "dim": "0", "sampler": "magic", "relation": "l7",
             "probe_size": "333", "projection": "tsne", "colour": "red", "run": "anything", "session": "x",
             "seed": "none", "early": "1"}
    values, problems = share.parse_query(query, SPECS, DATASETS)
    assert values == {}
    text = " | ".join(problems)
    for what in ("dataset 'nope' is not available", "lr must be a number", "hidden must be integers",
                 "dim must be an int", "sampler must be one of", "relation must be one of l1, l2, jaccard",
                 "probe_size must be 50 to 1000 in steps of 50", "projection must be one of UMAP, PCA",
                 "'colour' is not a setting", "seed: the sidebar needs a number", "'early' is not a setting"):
        assert what in text, (what, text)
    assert len(problems) == 11  # run and session are the pages' keys, not settings


def test_the_sidebar_survives_other_pages_and_takes_the_link_once():
    state, query = {}, {"relation": "jaccard", "lr": "0.01"}
    assert share.initial_values(state, query, SPECS, DATASETS) == ({"relation": "jaccard", "lr": 0.01}, [])
    assert state[share.APPLIED] and "relation" not in state  # widgets start from them; nothing is written for them
    state.update(relation="l2", lr=0.01)  # the widgets as drawn, then the user changes the relation
    share.remember(state, share.sidebar_keys(SPECS))
    wanted = share.sync_query(query, state, SPECS, "digits", DATASETS)
    assert query == wanted == {"relation": "l2", "lr": "0.01"}
    del state["relation"], state["lr"]  # Streamlit forgets widgets a page does not draw
    values, _ = share.initial_values(state, {"relation": "l1"}, SPECS, DATASETS)  # back: the link is not re-read
    assert values["relation"] == "l2" and values["lr"] == 0.01
    share.request(state, {"relation": "jaccard", "dataset": "gone"})  # a duplicate asks for another relation
    values, problems = share.initial_values(state, {}, SPECS, DATASETS)
    assert values["relation"] == "jaccard" and "dataset" not in values
    assert "dataset 'gone' is not available" in problems[0]
    assert share.initial_values(state, {}, SPECS, DATASETS)[1] == problems  # kept until dismissed
    share.dismiss(state)
    assert share.initial_values(state, {}, SPECS, DATASETS)[1] == []
    shown = {s.key: s for s in share.with_defaults(SPECS, {"relation": "jaccard", "hidden": "8,4"})}
    assert shown["relation"].default == "jaccard" and shown["hidden"].text_default() == "8,4"
    assert shown["lr"].default == 3e-3
    state["relation"] = "l1"
    state["lr"] = 3e-3
    share.sync_query(query, state, SPECS, "digits", DATASETS)
    assert query == {}
    assert share.link("http://h/", {"watch": "a b", "runs": ["x", "y"]}) == "http://h/?watch=a+b&runs=x&runs=y"


def test_a_recorded_config_becomes_the_same_sidebar():
    from hraml_core.training import TrainConfig

    config = TrainConfig(relation="l2", hidden=(64, 32), lr=0.01, sampler="hard", seed=3)
    recorded = json.loads(json.dumps({**config.to_dict(describe_objects=True), "probe_size": 200, "display_size": 700}))
    values, problems = share.values_from_config(recorded, SPECS)
    assert problems == [] and values["hidden"] == "64,32" and values["probe_size"] == 200
    assert settings_form.config_from_values(values) == config
    from hraml_dashboard.train_runs import duplicate_values

    dup, problems = duplicate_values(recorded, "iris", "jaccard", SPECS)
    assert problems == [] and dup["dataset"] == "iris"
    assert settings_form.config_from_values(dup) == config.replace(relation="jaccard")


def test_a_late_report_of_a_redrawn_step_control_is_not_the_users_move(monkeypatch):
    """A browser behind the server reports the slider and Follow toggle it still shows, under the
    keys of a version the page has since replaced: following a live run must go on."""
    from hraml_dashboard import run_view

    ss = {"v_version": 2, "v_follow": True, "v_pos": 1904, "v_step_1": 1829, "v_follow_1": False}
    monkeypatch.setattr(run_view, "st", SimpleNamespace(session_state=ss))
    run_view._on_slide("v", "v_step_1")  # the slider of version 1, drawn at 1829 before the page moved on
    run_view._on_follow("v", "v_follow_1")
    assert (ss["v_pos"], ss["v_follow"], ss["v_version"]) == (1904, True, 2)
    ss["v_step_2"] = 1500  # the user drags the slider the page shows now
    run_view._on_slide("v", "v_step_2")
    assert (ss["v_pos"], ss["v_follow"], ss["v_version"]) == (1500, False, 3)
    ss["v_follow_3"] = True  # and switches Follow back on
    run_view._on_follow("v", "v_follow_3")
    assert ss["v_follow"] is True
