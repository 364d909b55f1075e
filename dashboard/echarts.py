"""The live charts as ECharts options, for ``st.echarts_chart``: a refresh updates a chart in place.

Why a second chart library on the live page: Streamlit's ``st.plotly_chart`` derives a chart's
element id from its figure, so every data change is a new element and a full ``Plotly.newPlot`` in
the browser; on a two-core machine that rebuild was the page's largest cost (docs/BENCHMARKS.md,
"What limits the live page"). A keyed ``st.echarts_chart`` keeps its element, and the browser hands
the new option to the chart it already has (``setOption``).

Each chart is still declared once, as a plotly figure in :mod:`figures`; :func:`echarts_option`
renders the part of plotly those figures use (scatter traces as lines or markers, axis titles and
ranges, log axes, a vertical marker line, a centred message) as an ECharts option. Data travels as
Arrow tables (``dataset.source``), as Streamlit advises for charts of more than a few hundred
points, so float32 arrays are sent as they are.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .figures import PALETTE, ByIdentity

#: plotly's dash names -> ECharts line types
_DASH = {"dash": "dashed", "dot": "dotted", "dashdot": "dashed", "longdash": "dashed", "solid": "solid"}
#: colours of plotly's "Turbo" scale, for markers coloured by a number (a label's code)
TURBO = ("#30123b", "#4662d7", "#36aaf9", "#1ae4b6", "#72fe5e", "#c8ef34", "#faba39", "#f66b19", "#ca2a04",
         "#7a0403")
_DEFAULT_HEIGHT = 300


def _get(d: Mapping | None, *path, default=None):
    for key in path:
        if not isinstance(d, Mapping) or key not in d:
            return default
        d = d[key]
    return d


def _table(columns: Mapping[str, np.ndarray]):
    """A pyarrow table of float32 columns: what ``dataset.source`` carries to the browser."""
    import pyarrow as pa

    return pa.table({k: pa.array(np.asarray(v, dtype=np.float32)) for k, v in columns.items()})


def _axis(spec: Mapping | None, margin: int, vertical: bool) -> dict:
    """One plotly axis (title, range, log type, tick labels shown) as an ECharts value axis."""
    spec = spec or {}
    axis: dict = {"type": "log" if spec.get("type") == "log" else "value", "scale": True,
                  "splitLine": {"show": spec.get("showgrid", True)}}
    title = _get(spec, "title", "text")
    if title:
        axis.update(name=title, nameLocation="middle", nameGap=max(margin - 18, 20) if vertical else 28)
    rng = spec.get("range")
    if rng is not None and len(rng) == 2:
        lo, hi = float(min(rng)), float(max(rng))
        axis.update(min=lo, max=hi)
    if spec.get("showticklabels") is False:
        axis.update(axisLabel={"show": False}, axisTick={"show": False})
    if spec.get("visible") is False:
        axis["show"] = False
    return axis


def _series(trace: Mapping, index: int, datasets: list, visual_maps: list) -> dict | None:
    """One plotly scatter trace as an ECharts series reading its own dataset."""
    if trace.get("type", "scatter") != "scatter":
        raise ValueError(f"only scatter traces are drawn as ECharts series, got {trace.get('type')!r}")
    x, y = trace.get("x"), trace.get("y")
    if x is None or y is None:
        return None
    mode = trace.get("mode", "lines")
    marker, line = trace.get("marker") or {}, trace.get("line") or {}
    columns = {"x": np.asarray(x, dtype=np.float64), "y": np.asarray(y, dtype=np.float64)}
    colour = marker.get("color") if "markers" in mode else line.get("color")
    colour = colour if colour is not None else line.get("color", marker.get("color"))
    by_number = colour is not None and not isinstance(colour, str)
    if by_number:  # one colour per point, from a number: plotly's colorscale becomes a visualMap
        columns["c"] = np.asarray(colour, dtype=np.float64)
        lo, hi = float(np.min(columns["c"], initial=0.0)), float(np.max(columns["c"], initial=1.0))
        visual_maps.append({"show": False, "dimension": 2, "min": lo, "max": max(hi, lo + 1e-9),
                            "seriesIndex": index, "inRange": {"color": list(TURBO)}})
        colour = None
    datasets.append({"source": _table(columns)})
    series: dict = {"name": str(trace.get("name", f"trace {index}")), "datasetIndex": len(datasets) - 1,
                    "encode": {"x": "x", "y": "y"}}
    if colour is None and not by_number:
        colour = PALETTE[index % len(PALETTE)]
    if "lines" in mode:
        series.update(type="line", showSymbol="markers" in mode, symbolSize=marker.get("size", 4),
                      lineStyle={"width": line.get("width", 2), "type": _DASH.get(line.get("dash"), "solid")})
    else:
        series.update(type="scatter", symbolSize=marker.get("size", 6))
    if colour is not None:
        series["itemStyle"] = {"color": colour}
        series.setdefault("lineStyle", {})["color"] = colour
    opacity = marker.get("opacity")
    if opacity is not None and "markers" in mode:
        series.setdefault("itemStyle", {})["opacity"] = float(opacity)
    if trace.get("opacity") is not None:
        series.setdefault("lineStyle", {})["opacity"] = float(trace["opacity"])
    if trace.get("hoverinfo") == "skip":
        series["silent"] = True
    return series


#: The least right margin of a chart, in pixels.
MIN_RIGHT_MARGIN = 24


def echarts_option(fig) -> tuple[dict, int]:
    """An ECharts option and its height in pixels, drawn from a plotly figure (or its dict) of
    :mod:`figures` made of scatter traces.

    >>> import numpy as np
    >>> from hraml_dashboard.figures import loss_figure
    >>> option, height = echarts_option(loss_figure(np.arange(3), np.array([3.0, 2.0, 1.0])))
    >>> option["series"][0]["type"], option["yAxis"]["type"], height
    ('line', 'log', 300)
    """
    if hasattr(fig, "layout"):  # a figure object: its traces and layout as dicts of numpy arrays
        spec = {"data": [t.to_plotly_json() for t in fig.data], "layout": fig.layout.to_plotly_json()}
    else:
        spec = dict(fig)
    layout = spec.get("layout") or {}
    margin = {k: int(_get(layout, "margin", k, default=d)) for k, d in (("l", 64), ("r", 12), ("t", 36), ("b", 48))}
    # room for half of the last x tick label, which ECharts centres on the plot's right edge (plotly
    # widens its margin for it by itself)
    margin["r"] = max(margin["r"], MIN_RIGHT_MARGIN)
    option: dict = {"animation": False, "tooltip": {"trigger": "item"}}
    title = _get(layout, "title", "text")
    if title:
        option["title"] = {"text": title, "left": 4, "top": 4, "textStyle": {"fontSize": 14, "fontWeight": "normal"}}
    datasets: list = []
    visual_maps: list = []
    series, legend = [], []
    for trace in spec.get("data") or ():
        s = _series(trace, len(series), datasets, visual_maps)
        if s is None:
            continue
        series.append(s)
        if trace.get("showlegend") is not False:
            legend.append(s["name"])
    notes = [a for a in layout.get("annotations") or () if a.get("xref") == "paper" and a.get("yref") == "paper"]
    if not series:  # an empty figure: its message in the middle, no axes
        text = notes[0]["text"] if notes else ""
        option["title"] = {"text": text, "left": "center", "top": "middle",
                           "textStyle": {"fontSize": 13, "fontWeight": "normal"}}
        return option, int(layout.get("height") or _DEFAULT_HEIGHT)
    # The margins are plotly's: the plot area's distance from the chart's edges, the axes' labels and
    # titles drawn in them. ECharts 6 would otherwise fit the labels inside that rectangle too
    # (its default outer bounds), which shrinks the plot and puts the legend over the tick labels.
    option.update(dataset=datasets, series=series,
                  grid={"left": margin["l"], "right": margin["r"], "top": margin["t"], "bottom": margin["b"],
                        "outerBoundsMode": "none"},
                  xAxis=_axis(layout.get("xaxis"), margin["b"], False),
                  yAxis=_axis(layout.get("yaxis"), margin["l"], True))
    if visual_maps:
        option["visualMap"] = visual_maps
    for shape in layout.get("shapes") or ():  # a vertical line at a step: a mark line on the first series
        if shape.get("type") == "line" and shape.get("x0") == shape.get("x1") and shape.get("xref", "x") == "x":
            series[0]["markLine"] = {"silent": True, "symbol": "none", "label": {"show": False},
                                     "lineStyle": {"type": _DASH.get(_get(shape, "line", "dash"), "dotted"),
                                                   "color": _get(shape, "line", "color", default="#555555")},
                                     "data": [{"xAxis": float(shape["x0"])}]}
    show_legend = layout.get("showlegend", len(legend) > 1)
    if show_legend and legend:
        if _get(layout, "legend", "orientation") == "h":  # inside the plot, bottom right, as in plotly
            option["legend"] = {"data": legend, "orient": "vertical", "right": margin["r"] + 8,
                                "bottom": margin["b"] + 14, "backgroundColor": "rgba(255,255,255,0.6)",
                                "textStyle": {"fontSize": 11}, "itemHeight": 8}
        else:  # right of the plot, in the margin kept for it
            option["legend"] = {"data": legend, "type": "scroll", "orient": "vertical", "right": 4,
                                "top": margin["t"], "textStyle": {"fontSize": 10}, "itemHeight": 8}
    return option, int(layout.get("height") or _DEFAULT_HEIGHT)


_options = ByIdentity(size=64)


def option_of(fig) -> tuple[dict, int]:
    """:func:`echarts_option` of ``fig``, made once per figure object and kept while that object
    lives. A run's figures are built once for every viewer of the server
    (:meth:`hraml_dashboard.run_store.SharedRun.figures`), so a class watching one run converts each
    figure once, not once per viewer and refresh. Streamlit copies an option before changing it, so
    sharing one is safe; callers must not change it either."""
    hit = _options.get((fig,))
    return hit if hit is not None else _options.put((fig,), (), echarts_option(fig))


def title_of(option: Mapping) -> str:
    """The chart's title (its text for screen readers, and how a test finds it in the page)."""
    return str(_get(option, "title", "text", default="") or "chart")
