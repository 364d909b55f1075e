"""Pure figure functions of the dashboard: data in, plotly figures out (no browser)."""

import numpy as np
import plotly.io as pio
import pytest


from hraml_dashboard import figures


def _relation_pair(n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, 4, n))
    E = 2.0 * (labels[:, None] != labels[None, :]).astype(np.float32)
    Z = rng.normal(size=(n, 8)).astype(np.float32)
    A = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1).astype(np.float32)
    return A, E, labels


def test_heatmaps_share_one_colour_scale_and_show_the_difference():
    A, E, labels = _relation_pair()
    fig = figures.relation_heatmaps(A, E, labels)
    a, e, d = fig.data
    assert [t.type for t in fig.data] == ["heatmap"] * 3
    assert a.z.shape == e.z.shape == d.z.shape == A.shape
    # numpy float32 arrays, never lists
    assert isinstance(a.z, np.ndarray) and a.z.dtype == np.float32
    np.testing.assert_array_equal(a.z, A)
    np.testing.assert_array_equal(e.z, E)
    np.testing.assert_allclose(d.z, A - E, rtol=0, atol=1e-6)
    # A and E: one colour axis, same zmin / zmax covering both
    assert a.coloraxis == e.coloraxis == "coloraxis" and d.coloraxis == "coloraxis2"
    top = max(A.max(), E.max())
    assert (a.zmin, a.zmax) == (e.zmin, e.zmax) and a.zmin == 0.0 and top <= a.zmax <= 1.25 * top
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (a.zmin, a.zmax)
    # the difference is centred on 0 and covers |A - E|
    assert fig.layout.coloraxis2.cmin == -fig.layout.coloraxis2.cmax
    assert np.abs(A - E).max() <= fig.layout.coloraxis2.cmax <= 1.25 * np.abs(A - E).max()
    # label blocks on the axes: one tick per label run
    assert list(fig.layout.yaxis.ticktext) == [str(v) for v in np.unique(labels)]
    # serialised as typed arrays, not as lists of numbers
    spec = pio.to_json(fig, validate=False)
    assert '"bdata"' in spec and len(spec) < 3 * A.nbytes * 2


def test_live_heatmaps_are_images_with_the_same_colours():
    import base64
    import io

    from PIL import Image

    A, E, labels = _relation_pair()
    fig = figures.relation_heatmaps(A, E, labels, as_images=True)
    images = [t for t in fig.data if t.type == "image"]
    assert [t.name for t in images] == ["A = D²", "E = g", "A − E"]
    sc = figures.heatmap_scales(A, E)
    decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(t.source.split(",", 1)[1]))).convert("RGB"))
               for t in images]
    assert all(d.shape == A.shape + (3,) for d in decoded)
    # A and E through one colour map and range; the third image is A - E on the diverging scale
    np.testing.assert_array_equal(decoded[0], figures.colour_map(A, 0.0, sc["zmax"], figures.HEATMAP_SCALE))
    np.testing.assert_array_equal(decoded[1], figures.colour_map(E, 0.0, sc["zmax"], figures.HEATMAP_SCALE))
    np.testing.assert_array_equal(decoded[2], figures.colour_map(A - E, sc["dmin"], sc["dmax"], figures.DIFF_SCALE))
    # equal values get equal colours in A and E: the scale is shared
    i, j = np.argwhere(E == 2.0)[0]
    assert tuple(figures.colour_map(np.array([[2.0]]), 0.0, sc["zmax"], figures.HEATMAP_SCALE)[0, 0]) == tuple(decoded[1][i, j])
    # the colour bars are still there, with the same ranges as the heatmap version
    assert fig.layout.coloraxis.cmax == pytest.approx(sc["zmax"]) and fig.layout.coloraxis2.cmin == pytest.approx(sc["dmin"])
    lut = figures.colour_lut("Viridis")
    assert lut.shape == (256, 3) and tuple(lut[0]) == (68, 1, 84)  # viridis starts dark purple
    # E's image is reused while the same array comes back
    again = figures.relation_heatmaps(A + 0.01, E, labels, as_images=True)
    assert [t for t in again.data if t.type == "image"][1].source == images[1].source


def test_nice_ceiling():
    assert figures.nice_ceiling(2.13) == 2.25 and figures.nice_ceiling(2.0) == 2.0
    assert figures.nice_ceiling(0.37) == pytest.approx(0.375) and figures.nice_ceiling(0) == 1.0


def test_heatmaps_reject_mismatched_shapes():
    with pytest.raises(ValueError):
        figures.relation_heatmaps(np.zeros((3, 3)), np.zeros((4, 4)))


def test_sample_pairs_upper_triangle():
    i, j = figures.sample_pairs(5, 100)
    assert len(i) == 10 and np.all(i < j)
    i, j = figures.sample_pairs(300, 2000, seed=1)
    assert len(i) == 2000 and np.all(i < j) and np.all(j < 300)
    assert len(set(zip(i.tolist(), j.tolist()))) == 2000  # distinct pairs
    i2, j2 = figures.sample_pairs(300, 2000, seed=1)
    np.testing.assert_array_equal(i, i2)  # stable across refreshes


def test_alignment_scatter_plots_d2_against_g():
    A, E, _ = _relation_pair(60)
    fig = figures.alignment_scatter(A, E, n_pairs=500)
    pts = fig.data[0]
    i, j = figures.sample_pairs(60, 500)
    np.testing.assert_array_equal(pts.y, A[i, j])
    np.testing.assert_array_equal(pts.customdata, E[i, j])  # exact g (x is jittered for few values)
    assert np.max(np.abs(pts.x - E[i, j])) <= 0.021 * max(A.max(), E.max())
    iu, ju = np.triu_indices(60, 1)  # the title's statistics cover every pair
    stats = figures.alignment_stats(A[iu, ju], E[iu, ju])
    assert f"r = {stats['r']:.3f}" in fig.layout.title.text and "over 1,770 pairs (500 shown)" in fig.layout.title.text
    perfect = figures.alignment_stats(E[i, j], E[i, j])
    assert perfect["r"] == pytest.approx(1.0) and perfect["rmse"] == 0


def test_loss_and_metric_curves():
    fig = figures.loss_figure(np.arange(1, 11), np.linspace(1, 0.1, 10))
    assert fig.layout.yaxis.type == "log"
    np.testing.assert_array_equal(fig.data[0].y, np.linspace(1, 0.1, 10))
    long = figures.loss_figure(np.arange(1, 5001), np.ones(5000), max_points=500)
    assert len(long.data[0].y) == 500 and np.allclose(long.data[0].y, 1.0)
    assert long.data[0].x[0] == pytest.approx(5.5) and long.data[0].x[-1] == pytest.approx(4995.5)
    fig = figures.metric_figure("accuracy", [10, 20], [0.9, 0.95], raw=0.8, baselines={"raml_krr": 0.97})
    names = [t.name for t in fig.data]
    assert names[0] == "HRAML" and any("raw" in n for n in names) and any("raml_krr" in n for n in names)
    raw = [t for t in fig.data if "raw" in t.name][0]
    assert list(raw.y) == [0.8, 0.8]


def test_projection_colours_by_label():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(90, 2)).astype(np.float32)
    labels = np.repeat([0, 1, 2], 30)
    fig = figures.projection_figure(xy, labels, {0: "zero", 1: "one", 2: "two"})
    assert [t.name for t in fig.data] == ["zero", "one", "two"]
    assert sum(len(t.x) for t in fig.data) == 90
    np.testing.assert_array_equal(fig.data[1].x, xy[30:60, 0])
    many = figures.projection_figure(xy, np.arange(90), None)  # too many labels: one trace, colour scale
    assert len(many.data) == 1
    with pytest.raises(ValueError):
        figures.projection_figure(xy, labels[:10])


def test_live_figures_from_a_trainer_snapshot():
    from hraml_core.trainer import Trainer
    from hraml_core.training import TrainConfig

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    t = Trainer(X, y, TrainConfig(hidden=(16,), dim=4, batch_size=32), X_val=X[:20], Y_val=y[:20], probe_size=30)
    figs = figures.live_figures(t.snapshot(), None)
    assert set(figs) == {"loss", "metric", "heatmaps", "scatter", "projection"}
    assert figs["heatmaps"].data[0].z.shape == (30, 30)  # idle: real heatmaps with hover values
    # nothing measured yet: the metric chart says so instead of showing empty axes
    assert not figs["metric"].data and "measured while training runs" in figs["metric"].layout.annotations[0].text
    with_baseline = figures.live_figures(t.snapshot(), None, baselines={"gmml": 0.9})["metric"]
    assert [d.name for d in with_baseline.data] == ["HRAML", "gmml (0.9000)"]
    live = figures.live_figures(t.snapshot(), None, live=True)
    assert live["heatmaps"].startswith("<svg") and live["heatmaps"].count("<image ") == 3  # one SVG image
    plotly_live = figures.live_figures(t.snapshot(), None, live=True, svg=False)  # the plotly path
    assert plotly_live["heatmaps"].data[0].type == "image"
