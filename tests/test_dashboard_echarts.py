"""The live page's charts: plotly figures drawn as ECharts options, the heatmaps as one SVG image."""
import base64
import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from hraml_dashboard import figures
from hraml_dashboard.echarts import TURBO, echarts_option

SVG = "{http://www.w3.org/2000/svg}"


def _columns(option, series):
    """The x, y (and colour) columns of a series' dataset, as numpy arrays."""
    table = option["dataset"][series["datasetIndex"]]["source"]
    return {name: np.asarray(table.column(name).to_numpy()) for name in table.column_names}


def test_loss_curve_is_a_line_on_a_log_axis_with_the_binned_points():
    steps = np.arange(1, 2001)
    loss = 1.0 / steps
    option, height = echarts_option(figures.loss_figure(steps, loss))
    assert height == 300 and option["animation"] is False
    # the plot area at plotly's margins, the axes' labels outside it (not ECharts 6's outer bounds)
    # (the right margin widened to hold half of the last x tick label)
    assert option["grid"] == {"left": 64, "right": 24, "top": 36, "bottom": 48, "outerBoundsMode": "none"}
    (series,) = option["series"]
    assert series["type"] == "line" and series["showSymbol"] is False
    x, y = figures.bin_curve(steps, loss, figures.LOSS_POINTS)
    cols = _columns(option, series)
    np.testing.assert_allclose(cols["x"], x, rtol=1e-6)
    np.testing.assert_allclose(cols["y"], y, rtol=1e-6)
    assert cols["x"].dtype == np.float32  # sent as an Arrow float32 column, not as JSON lists
    assert option["yAxis"]["type"] == "log" and option["yAxis"]["name"] == "loss"
    assert option["xAxis"]["name"] == "step" and option["title"]["text"] == "Training loss"
    assert "legend" not in option  # one series: no legend
    # a loss that reaches 0 or below is drawn on a linear axis
    option, _ = echarts_option(figures.loss_figure([1, 2], [0.5, 0.0]))
    assert option["yAxis"]["type"] == "value"


def test_metric_chart_keeps_the_reference_lines_and_their_styles():
    option, _ = echarts_option(figures.metric_figure("accuracy", [10, 20], [0.5, 0.75], raw=0.6,
                                                     baselines={"gmml": 0.7}))
    names = [s["name"] for s in option["series"]]
    assert names == ["HRAML", "raw features (0.6000)", "gmml (0.7000)"]
    hraml, raw, gmml = option["series"]
    assert hraml["showSymbol"] is True  # lines+markers
    assert raw["lineStyle"]["type"] == "dashed" and raw["lineStyle"]["color"] == "#7f7f7f"
    assert gmml["lineStyle"]["type"] == "dotted"
    np.testing.assert_allclose(_columns(option, raw)["y"], [0.6, 0.6])
    np.testing.assert_allclose(_columns(option, raw)["x"], [10, 20])
    assert option["legend"]["data"] == names
    assert option["title"]["text"] == "Held-out accuracy — 0.7500"


def test_alignment_scatter_markers_and_the_diagonal():
    A = np.array([[0, 1, 4], [1, 0, 9], [4, 9, 0]], np.float32)
    E = np.array([[0, 2, 2], [2, 0, 8], [2, 8, 0]], np.float32)
    option, height = echarts_option(figures.alignment_scatter(A, E))
    pairs, diagonal = option["series"]
    assert pairs["type"] == "scatter" and pairs["symbolSize"] == 4 and pairs["itemStyle"]["opacity"] == 0.35
    cols = _columns(option, pairs)
    np.testing.assert_allclose(np.sort(cols["y"]), [1.0, 4.0, 9.0])  # D² of the three pairs
    assert diagonal["type"] == "line" and diagonal["silent"] is True and diagonal["lineStyle"]["type"] == "dashed"
    np.testing.assert_allclose(_columns(option, diagonal)["y"], [0.0, 9.0])
    assert option["title"]["text"].startswith("D² vs g: r = ") and height == 380


def test_projection_one_series_per_label_in_the_palette():
    xy = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], np.float32)
    labels = np.array([1, 0, 1, 0])
    option, _ = echarts_option(figures.projection_figure(xy, labels, {0: "zero", 1: "one"}))
    s0, s1 = option["series"]
    assert (s0["name"], s1["name"]) == ("zero", "one")
    assert s0["itemStyle"]["color"] == figures.PALETTE[0] and s1["itemStyle"]["color"] == figures.PALETTE[1]
    np.testing.assert_allclose(_columns(option, s0)["x"], [1, 3])
    np.testing.assert_allclose(_columns(option, s1)["x"], [0, 2])
    assert option["legend"]["data"] == ["zero", "one"] and option["legend"]["orient"] == "vertical"
    assert option["xAxis"]["axisLabel"] == {"show": False}


def test_projection_with_many_labels_is_coloured_by_code():
    n = figures.MAX_LEGEND_LABELS + 5
    xy = np.stack([np.arange(n), np.arange(n)], 1).astype(np.float32)
    option, _ = echarts_option(figures.projection_figure(xy, np.arange(n)))
    (series,) = option["series"]
    (vm,) = option["visualMap"]
    assert vm["dimension"] == 2 and vm["seriesIndex"] == 0 and (vm["min"], vm["max"]) == (0.0, n - 1.0)
    assert vm["inRange"]["color"] == list(TURBO)
    np.testing.assert_allclose(_columns(option, series)["c"], np.arange(n))


def test_empty_figure_shows_its_message_and_no_axes():
    option, height = echarts_option(figures.empty_figure("Press Start to train", 280))
    assert option["title"]["text"] == "Press Start to train" and "series" not in option and "xAxis" not in option
    assert height == 280


def test_curve_with_a_step_marker_and_a_fixed_range():
    fig = figures.curve_figure({"loss": (np.arange(10.0), np.linspace(1, 0.1, 10))}, "Loss", "loss", step=4,
                               x_range=(0.0, 20.0))
    option, _ = echarts_option(fig)
    assert option["series"][0]["markLine"]["data"] == [{"xAxis": 4.0}]
    assert (option["xAxis"]["min"], option["xAxis"]["max"]) == (0.0, 20.0)


def test_only_scatter_traces_can_be_drawn():
    A, E, labels = TestSvg.pair()
    with pytest.raises(ValueError, match="only scatter traces"):
        echarts_option(figures.relation_heatmaps(A, E, labels))


class TestSvg:
    @staticmethod
    def pair(n=12):
        labels = np.repeat([0, 1, 2], n // 3)
        E = 2.0 * (labels[:, None] != labels[None, :]).astype(np.float32)
        Z = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
        A = ((Z[:, None] - Z[None]) ** 2).sum(-1).astype(np.float32)
        return A, E, labels

    def test_heatmaps_svg_has_the_three_images_in_the_plotly_colours(self):
        from PIL import Image

        A, E, labels = self.pair()
        svg = figures.relation_heatmaps_svg(A, E, labels, {0: "cat", 1: "dog", 2: "emu"})
        root = ET.fromstring(svg)
        images = root.findall(f"{SVG}image")
        assert len(images) == 3
        sc = figures.heatmap_scales(A, E)
        decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(im.get("href").split(",", 1)[1]))).convert("RGB"))
                   for im in images]
        np.testing.assert_array_equal(decoded[0], figures.colour_map(A, 0.0, sc["zmax"], figures.HEATMAP_SCALE))
        np.testing.assert_array_equal(decoded[1], figures.colour_map(E, 0.0, sc["zmax"], figures.HEATMAP_SCALE))
        np.testing.assert_array_equal(decoded[2], figures.colour_map(A - E, sc["dmin"], sc["dmax"], figures.DIFF_SCALE))
        texts = [t.text for t in root.iter(f"{SVG}text")]
        assert {"A: embedding D²", "E: label relation g", "A − E"} <= set(texts)
        assert {"cat", "dog", "emu"} <= set(texts)  # the label blocks beside A
        # the colour bars' ends: 0 and zmax for A and E, ±dmax for the difference
        assert {"0", f"{sc['zmax']:g}", f"{-sc['dmax']:g}", f"{sc['dmax']:g}"} <= set(texts)
        # each label block's text sits at its block's centre: rows 0-3 of 12 -> 1/6 of the panel
        cat = next(t for t in root.iter(f"{SVG}text") if t.text == "cat")
        top, size = float(images[0].get("y")), float(images[0].get("height"))
        assert float(cat.get("y")) == pytest.approx(top + size * 2.0 / 12, abs=0.1)

    def test_heatmaps_svg_rejects_mismatched_shapes(self):
        with pytest.raises(ValueError, match="square matrices"):
            figures.relation_heatmaps_svg(np.zeros((3, 3)), np.zeros((4, 4)))

    def test_label_names_are_escaped(self):
        A, E, labels = self.pair()
        svg = figures.relation_heatmaps_svg(A, E, labels, {0: "<b>&", 1: "x", 2: "y"})
        assert "<b>&" in [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_a_log_loss_axis_is_labelled_at_1_2_and_5_per_decade():
    fig = figures.loss_figure(np.arange(1, 50), 1.0 / np.arange(1, 50))
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == "D2"
    fig = figures.loss_figure(np.arange(3), np.array([1.0, 0.0, -1.0]))  # not all positive: linear
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis.dtick is None


def test_label_blocks_leave_out_runs_too_short_to_hold_their_text():
    labels = np.array([0] * 100 + [1] * 50 + [2] * 3 + [3] * 2)  # 155 rows: 1/30 of them is 5.2 rows
    ticks, texts = figures.label_blocks(labels, {0: "a", 1: "b", 2: "c", 3: "d"})
    assert ticks == [49.5, 124.5] and texts == ["a", "b"]
    assert figures.label_blocks(np.arange(31)) == ([], [])  # more runs than max_blocks: none
    assert figures.label_blocks(np.repeat(np.arange(30), 2))[1] == [str(i) for i in range(30)]


class TestMatricesSvg:
    """The Compare page's live matrices: several runs' A on one colour scale, as one SVG drawing."""

    @staticmethod
    def decoded(svg: str):
        from PIL import Image

        root = ET.fromstring(svg)
        images = root.findall(f"{SVG}image")
        return root, images, [np.asarray(Image.open(io.BytesIO(base64.b64decode(im.get("href").split(",", 1)[1])))
                                         .convert("RGB")) for im in images]

    def test_panels_share_one_colour_scale_and_one_bar(self):
        rng = np.random.default_rng(0)
        a, b = rng.uniform(0, 1, (10, 10)).astype(np.float32), rng.uniform(0, 3, (12, 12)).astype(np.float32)
        root, images, pixels = self.decoded(figures.matrices_svg([("run <a>", a), ("run b", b)]))
        zmax = figures.nice_ceiling(float(b.max()))  # the largest entry of any, rounded up: 3.0
        assert len(images) == 2 and zmax == 3.0
        np.testing.assert_array_equal(pixels[0], figures.colour_map(a, 0.0, zmax, figures.HEATMAP_SCALE))
        np.testing.assert_array_equal(pixels[1], figures.colour_map(b, 0.0, zmax, figures.HEATMAP_SCALE))
        texts = [t.text for t in root.iter(f"{SVG}text")]
        assert {"run <a>", "run b"} <= set(texts)  # titles, escaped in the markup
        (bar,) = root.findall(f"{SVG}rect")
        assert {"0", "1.5", "3"} <= set(texts)  # the one bar's ends and middle
        # the bar spans both panels: from the first's left edge to the second's right edge
        assert float(bar.get("x")) == float(images[0].get("x"))
        assert float(bar.get("x")) + float(bar.get("width")) == float(images[1].get("x")) + float(images[1].get("width"))
        # two panels centred in a drawing as wide as the Train page's three: the same size on a page
        heatmaps = ET.fromstring(figures.relation_heatmaps_svg(a, a))
        assert root.get("width") == heatmaps.get("width")
        right = float(root.get("width")) - float(images[1].get("x")) - float(images[1].get("width"))
        assert float(images[0].get("x")) == right

    def test_label_blocks_beside_a_panel_only_where_they_change(self):
        A = np.ones((6, 6), np.float32)
        same, other = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 1, 2, 2])
        names = {0: "cat", 1: "dog", 2: "emu"}
        root, images, _ = self.decoded(figures.matrices_svg([("x", A), ("y", A), ("z", A)], [same, same, other], names))
        blocks = [(t.text, float(t.get("x")), float(t.get("y"))) for t in root.iter(f"{SVG}text")
                  if t.get("font-size") == "9"]
        left = [float(im.get("x")) for im in images]
        top, size = float(images[0].get("y")), float(images[0].get("height"))
        # panel 1: cat, dog (rows 0-2, 3-5); panel 2: none (the same labels); panel 3: cat, dog, emu
        assert [b[0] for b in blocks] == ["cat", "dog", "cat", "dog", "emu"]
        assert [b[1] for b in blocks] == [left[0] - 4] * 2 + [left[2] - 4] * 3
        # a block's text at its block's centre: rows 0-2 of 6 -> a quarter of the panel's height
        assert blocks[0][2] == pytest.approx(top + size / 4, abs=0.1)
        assert left[1] - left[0] < left[2] - left[1]  # room for the third panel's labels only

    def test_bad_input_and_the_drawing_kept_for_the_same_arrays(self):
        with pytest.raises(ValueError, match="bad: a square matrix is needed"):
            figures.matrices_svg([("bad", np.zeros((2, 3)))])
        with pytest.raises(ValueError, match="no matrices"):
            figures.matrices_svg([])
        A = np.eye(4, dtype=np.float32)
        first = figures.matrices_svg([("a", A), ("b", A)])
        assert figures.matrices_svg([("a", A), ("b", A)]) is first
        assert figures.matrices_svg([("a", A), ("c", A)]) != first  # another title
        assert figures.matrices_svg([("a", A), ("b", 2 * A)]) != first  # other arrays


def test_live_charts_setting(monkeypatch):
    from hraml_dashboard import run_view

    monkeypatch.delenv(run_view.LIVE_CHARTS_VARIABLE, raising=False)
    assert run_view.live_charts() == "echarts"
    monkeypatch.setenv(run_view.LIVE_CHARTS_VARIABLE, " Plotly ")
    assert run_view.live_charts() == "plotly"
    monkeypatch.setenv(run_view.LIVE_CHARTS_VARIABLE, "vega")
    with pytest.raises(ValueError, match="HRAML_DASHBOARD_LIVE_CHARTS must be echarts or plotly"):
        run_view.live_charts()


def test_the_same_matrices_make_the_same_drawing_once():
    A, E, labels = TestSvg.pair()
    first = figures.relation_heatmaps_svg(A, E, labels)
    assert figures.relation_heatmaps_svg(A, E, labels) is first  # kept while the arrays live
    changed = A.copy()
    changed[0, 1] = changed[1, 0] = 50.0
    assert figures.relation_heatmaps_svg(changed, E, labels) != first
    assert figures.relation_heatmaps_svg(A, E, labels[::-1].copy()) != first  # other label blocks


def test_a_figure_is_converted_once_for_every_viewer():
    from hraml_dashboard.echarts import option_of

    steps, loss = np.arange(50), np.linspace(2.0, 0.1, 50)
    fig = figures.loss_figure(steps, loss)
    option, height = option_of(fig)
    assert option_of(fig)[0] is option  # the same figure object: the same option, not a new conversion
    again, _ = option_of(figures.loss_figure(steps, loss))  # another figure object: converted anew
    assert again is not option
    expected, expected_height = echarts_option(fig)
    assert height == expected_height and option["series"][0]["type"] == expected["series"][0]["type"] == "line"
    assert option["dataset"][0]["source"].equals(expected["dataset"][0]["source"])

