"""The dashboard's figures: pure functions from arrays to plotly figures (no Streamlit, no torch).

Each chart is declared here once. A view that refreshes draws the same figures through
:mod:`echarts` (updated in place in the browser) and the heatmaps as one SVG image
(:func:`relation_heatmaps_svg`).

Large arrays go in as float32 numpy arrays, never as lists (plotly serialises numpy arrays as
compact typed arrays; ``.tolist()`` is ~30x slower and 3x larger, see ../shared/reference/PLATFORM.md). Every figure
sets ``uirevision`` so that a user's zoom survives the live refreshes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
import weakref
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go

from hraml_core.curves import bin_curve

#: Colours for labels in the projection (plotly's D3 + Alphabet palettes).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#AA0DFE", "#3283FE", "#85660D", "#782AB6", "#565656", "#1C8356", "#16FF32", "#F7E1A0",
    "#E2E2E2", "#1CBE4F", "#C4451C", "#DEA0FD", "#FE00FA", "#325A9B", "#FEAF16", "#F8A19F", "#90AD1C",
    "#F6222E", "#1CFFCE", "#2ED9FF",
)
#: At most this many labels get their own trace and legend entry in the projection.
MAX_LEGEND_LABELS = len(PALETTE)
HEATMAP_SCALE = "Viridis"
#: Points drawn: the browser redraws every chart on each refresh, and SVG cost grows with points.
LOSS_POINTS = 600
SCATTER_PAIRS = 500
DIFF_SCALE = "RdBu_r"
_MARGIN = dict(l=10, r=10, t=40, b=10, autoexpand=False)


def _margin(l: int = 64, r: int = 12, t: int = 36, b: int = 48) -> dict:
    """Fixed margins. ``autoexpand=False`` skips plotly's auto-margin passes, a large part of the
    browser's work to draw these charts on every refresh (docs/BENCHMARKS.md, section Dashboard);
    the margins leave room for the tick labels, titles and colour bars."""
    return dict(l=l, r=r, t=t, b=b, autoexpand=False)


def _title(text: str) -> dict:
    return dict(text=text, x=0, font=dict(size=14))


def _figure(data: list, layout: dict) -> go.Figure:
    """A figure from plain dicts: one validation pass instead of many (update_layout with
    magic-underscore paths costs ~10x more on every refresh)."""
    return go.Figure(dict(data=data, layout=layout))


def _names(labels, label_names: Mapping | None) -> list[str]:
    if label_names:
        return [str(label_names.get(v, v)) for v in labels]
    return [str(v) for v in labels]


# --------------------------------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------------------------------
def y_scale(log: bool) -> dict:
    """A value axis's scale: linear, or log with ticks at 1, 2 and 5 times each power of ten (plotly's
    default labels every digit between decades, which crowds a loss axis)."""
    return {"type": "log", "dtick": "D2"} if log else {"type": "linear"}


def loss_figure(steps, values, title: str = "Training loss", max_points: int = LOSS_POINTS) -> go.Figure:
    """The loss per step (log scale when every value is positive), at most ``max_points`` points."""
    steps, values = bin_curve(steps, values, max_points)
    log = len(values) > 0 and bool(np.all(values > 0))
    return _figure(
        [dict(type="scatter", x=steps, y=values, mode="lines", name="loss", line=dict(width=1.5))],
        dict(title=_title(title), height=300, margin=_margin(), showlegend=False, uirevision="loss",
             xaxis=dict(title=dict(text="step")), yaxis=dict(title=dict(text="loss"), **y_scale(log))),
    )


def metric_label(name: str | None) -> str:
    """A metric's name as the page writes it: "average_precision" -> "average precision" (the
    name itself stays the key of files, tables and links)."""
    return (name or "metric").replace("_", " ")


def metric_figure(name: str, steps, values, raw: float | None = None, baselines: Mapping[str, float] | None = None) -> go.Figure:
    """The held-out ``name`` of the embedding over steps, with the same metric on raw features and
    any fitted baselines as horizontal lines."""
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    data = [dict(type="scatter", x=steps, y=values, mode="lines+markers", name="HRAML", marker=dict(size=4))]
    x_end = float(steps[-1]) if len(steps) else 1.0
    x0 = float(steps[0]) if len(steps) else 0.0
    lines = []
    if raw is not None and np.isfinite(raw):
        lines.append(("raw features", float(raw), "dash", "#7f7f7f"))
    for i, (bname, bval) in enumerate((baselines or {}).items()):
        if bval is not None and np.isfinite(bval):
            lines.append((bname, float(bval), "dot", PALETTE[(i + 1) % len(PALETTE)]))
    for label, v, dash, colour in lines:
        data.append(dict(type="scatter", x=[x0, max(x_end, x0 + 1)], y=[v, v], mode="lines", name=f"{label} ({v:.4f})",
                         line=dict(dash=dash, color=colour, width=1.5)))
    last = f" — {values[-1]:.4f}" if len(values) else ""
    return _figure(data, dict(
        title=_title(f"Held-out {metric_label(name)}{last}"), height=300, margin=_margin(), uirevision="metric",
        xaxis=dict(title=dict(text="step")), yaxis=dict(title=dict(text=metric_label(name))),
        legend=dict(orientation="h", yanchor="bottom", y=0.0, xanchor="right", x=1.0, bgcolor="rgba(255,255,255,0.6)"),
    ))


# --------------------------------------------------------------------------------------------------
# relation heatmaps
# --------------------------------------------------------------------------------------------------
def label_blocks(labels, label_names: Mapping | None = None, max_blocks: int = 30):
    """Tick positions (block centres) and texts for runs of equal labels in ``labels`` (sorted).

    No ticks when there are more than ``max_blocks`` runs; a run shorter than ``1 / max_blocks`` of
    the rows gets none either (its text would overlap its neighbours', as the small label sets of a
    multi-label set's tail do)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return [], []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    if len(starts) > max_blocks:
        return [], []
    keep = (ends - starts) * max_blocks >= len(labels)
    centres = ((starts + ends - 1) / 2.0)[keep].tolist()
    return centres, _names(labels[starts[keep]], label_names)


@lru_cache(maxsize=8)
def colour_lut(name: str, n: int = 256) -> np.ndarray:
    """An (n, 3) uint8 lookup table sampled from a plotly colour scale (entry 0 = scale minimum)."""
    import plotly.colors as pc

    cols = pc.sample_colorscale(pc.get_colorscale(name), np.linspace(0, 1, n), colortype="rgb")
    lut = np.array([[float(v) for v in c[c.index("(") + 1 : -1].split(",")] for c in cols])
    lut.setflags(write=False)
    return np.clip(np.round(lut), 0, 255).astype(np.uint8)


def colour_index(M, zmin: float, zmax: float, n: int = 256) -> np.ndarray:
    """Values -> uint8 indices 0..n-1 into a colour LUT, linear between zmin and zmax (clipped)."""
    span = (zmax - zmin) or 1.0
    idx = np.clip(np.rint((np.asarray(M, dtype=np.float32) - zmin) / span * (n - 1)), 0, n - 1)
    return idx.astype(np.uint8)


def colour_map(M, zmin: float, zmax: float, scale: str) -> np.ndarray:
    """Values -> (h, w, 3) uint8 RGB through ``scale`` between zmin and zmax (clipped), as plotly does."""
    lut = colour_lut(scale)
    return lut[colour_index(M, zmin, zmax, len(lut))]


def png_data_uri(index: np.ndarray, lut: np.ndarray) -> str:
    """A palette PNG (one byte per pixel, ``lut`` as palette) as a data URI: a third of the bytes
    of an RGB PNG (three bytes per pixel) to compress, encode and send on every refresh."""
    import base64
    import io

    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(index, dtype=np.uint8), mode="P")
    img.putpalette(np.ascontiguousarray(lut, dtype=np.uint8).tobytes())
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def nice_ceiling(x: float) -> float:
    """``x`` rounded up to a multiple of a quarter of its decade (2.13 -> 2.25, 0.37 -> 0.375): colour
    ranges that change rarely, so an unchanged matrix keeps its image between refreshes."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    step = 10.0 ** np.floor(np.log10(x)) / 4
    return float(np.ceil(x / step - 1e-9) * step)


class ByIdentity:
    """Drawings kept while the very objects they show come back (the same arrays or figures,
    checked through weak references, so a new object with a reused id is drawn anew), at most
    ``size`` of them. Also keeps :func:`hraml_dashboard.echarts.option_of`'s options per figure.

    A trainer's E is one read-only array for a whole run, and its A stays the same object between
    geometry recomputations (``Snapshot.geometry_version``): their drawings are made once. Not
    ``functools.lru_cache``: arrays are not hashable, and their contents are not what is compared.
    """

    def __init__(self, size: int = 32):
        self.size = size
        self._items: dict = {}

    def get(self, arrays: tuple, extra: tuple = ()):
        hit = self._items.get((tuple(map(id, arrays)), extra))
        if hit is not None and all(ref() is a for ref, a in zip(hit[0], arrays)):
            return hit[1]
        return None

    def put(self, arrays: tuple, extra: tuple, drawing):
        """Keep ``drawing`` (returned); an array that takes no weak reference is not kept."""
        try:
            refs = tuple(weakref.ref(a) for a in arrays)
        except TypeError:
            return drawing
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[(tuple(map(id, arrays)), extra)] = (refs, drawing)
        return drawing


_static_images = ByIdentity()


def _image_uri(M: np.ndarray, zmin: float, zmax: float, scale: str, cache: bool = False) -> str:
    """The colour-mapped PNG of M; with ``cache``, reused while the same array object and range
    come back (E is one read-only array for a whole run)."""
    extra = (zmin, zmax, scale)
    if cache:
        hit = _static_images.get((M,), extra)
        if hit is not None:
            return hit
    lut = colour_lut(scale)
    uri = png_data_uri(colour_index(M, zmin, zmax, len(lut)), lut)
    return _static_images.put((M,), extra, uri) if cache else uri


def _relation_pair(A, E) -> tuple[np.ndarray, np.ndarray, bool]:
    """A and E as float32 matrices of one shape (ValueError otherwise), and whether E is the array
    given (then its image may be cached: one read-only E per run)."""
    E_in = E
    A = np.asarray(A, dtype=np.float32)
    E = np.asarray(E, dtype=np.float32)
    if A.shape != E.shape or A.ndim != 2:
        raise ValueError(f"A and E must be square matrices of one shape, got {A.shape} and {E.shape}")
    return A, E, E is E_in


def _relation_images(A: np.ndarray, E: np.ndarray, E_given: bool, sc: Mapping) -> tuple[str, str, str]:
    """The PNG data URIs of A, E (on [0, zmax]) and A − E (on [-dmax, dmax]) of :func:`heatmap_scales`."""
    return (_image_uri(A, 0.0, sc["zmax"], HEATMAP_SCALE), _image_uri(E, 0.0, sc["zmax"], HEATMAP_SCALE, cache=E_given),
            _image_uri(A - E, -sc["dmax"], sc["dmax"], DIFF_SCALE))


def heatmap_scales(A, E) -> dict[str, float]:
    """The colour ranges: [0, zmax] shared by A and E, [-dmax, dmax] for A - E (both rounded up by
    :func:`nice_ceiling`)."""
    A = np.asarray(A, dtype=np.float32)
    E = np.asarray(E, dtype=np.float32)
    zmax = nice_ceiling(float(max(np.max(A, initial=0.0), np.max(E, initial=0.0))))
    dmax = nice_ceiling(float(np.max(np.abs(A - E), initial=0.0)))
    return {"zmin": 0.0, "zmax": zmax, "dmin": -dmax, "dmax": dmax}


def relation_heatmaps(A, E, labels=None, label_names: Mapping | None = None, height: int = 380,
                      as_images: bool = False) -> go.Figure:
    """A (embedding D^2) | E (label relation g) | A - E, side by side on the probe subset.

    A and E share one colour scale (same zmin / zmax, one colour bar); the difference has its own
    diverging scale centred on 0.

    - ``as_images=False``: three ``go.Heatmap`` traces of float32 numpy arrays (hover shows values).
    - ``as_images=True`` (a refreshing view drawn with plotly, ``$HRAML_DASHBOARD_LIVE_CHARTS=plotly``):
      the same colours, pre-rendered server-side into three PNG
      images (``go.Image``), plus two invisible 1 x 2 heatmaps that carry the colour bars.
      Streamlit remounts a plotly chart on every data change, and the browser rebuilds three
      300 x 300 heatmaps much more slowly than three images. Hover then shows positions only. The
      image of E (one read-only array per run) is cached between refreshes.

    Both modes use the colour ranges of :func:`heatmap_scales`.
    """
    A, E, E_given = _relation_pair(A, E)
    D = A - E
    sc = heatmap_scales(A, E)
    zmax, dmax = sc["zmax"], sc["dmax"]
    ticks, texts = label_blocks(labels, label_names) if labels is not None else ([], [])
    names = ("A = D²", "E = g", "A − E")
    if as_images:
        uris = _relation_images(A, E, E_given, sc)
        data = [
            dict(type="image", source=uri, name=name, x0=0, dx=1, y0=0, dy=1,
                 hovertemplate="row %{y}, col %{x}<extra>" + name + "</extra>",
                 **({} if i == 0 else dict(xaxis=f"x{i + 1}", yaxis=f"y{i + 1}")))
            for i, (uri, name) in enumerate(zip(uris, names))
        ]
        # invisible carriers of the two colour bars
        data += [
            dict(type="heatmap", z=np.array([[0.0, zmax]], np.float32), coloraxis="coloraxis", opacity=0.0,
                 hoverinfo="skip", name="scale"),
            dict(type="heatmap", z=np.array([[-dmax, dmax]], np.float32), coloraxis="coloraxis2", opacity=0.0,
                 hoverinfo="skip", name="diff scale", xaxis="x3", yaxis="y3"),
        ]
    else:
        hover = "row %{y}, col %{x}<br>%{z:.3f}<extra>%{fullData.name}</extra>"
        data = [
            dict(type="heatmap", z=A, name=names[0], coloraxis="coloraxis", zmin=0.0, zmax=zmax, hovertemplate=hover),
            dict(type="heatmap", z=E, name=names[1], coloraxis="coloraxis", zmin=0.0, zmax=zmax, xaxis="x2", yaxis="y2",
                 hovertemplate=hover),
            dict(type="heatmap", z=D, name=names[2], coloraxis="coloraxis2", zmin=-dmax, zmax=dmax, xaxis="x3", yaxis="y3",
                 hovertemplate=hover),
        ]
    n = A.shape[0]
    gap = 0.05
    w = (1 - 2 * gap) / 3
    axis = dict(showgrid=False, zeroline=False, tickvals=ticks, ticktext=texts, tickfont=dict(size=9),
                constrain="domain", range=[-0.5, n - 0.5])
    layout = dict(
        height=height, margin=_margin(l=40, r=12, t=30, b=64), uirevision="heatmaps",
        coloraxis=dict(colorscale=HEATMAP_SCALE, cmin=0.0, cmax=zmax,
                       colorbar=dict(orientation="h", x=(2 * w + gap) / 2, xanchor="center", len=2 * w + gap,
                                     y=-0.08, yanchor="top", thickness=10, title=dict(text="D², g", side="right"))),
        coloraxis2=dict(colorscale=DIFF_SCALE, cmin=-dmax, cmax=dmax, cmid=0.0,
                        colorbar=dict(orientation="h", x=1 - w / 2, xanchor="center", len=w, y=-0.08,
                                      yanchor="top", thickness=10, title=dict(text="A − E", side="right"))),
        annotations=[
            dict(text=t, x=i * (w + gap) + w / 2, y=1.0, xref="paper", yref="paper", xanchor="center",
                 yanchor="bottom", showarrow=False, font=dict(size=13))
            for i, t in enumerate(("A: embedding D²", "E: label relation g", "A − E"))
        ],
    )
    for i in range(3):
        sx = "" if i == 0 else str(i + 1)
        layout[f"xaxis{sx}"] = dict(axis, domain=[i * (w + gap), i * (w + gap) + w], anchor=f"y{sx}", scaleanchor=f"y{sx}",
                                    showticklabels=False)
        layout[f"yaxis{sx}"] = dict(axis, range=[n - 0.5, -0.5], anchor=f"x{sx}", showticklabels=i == 0)
    return _figure(data, layout)


_svg_drawings = ByIdentity()
#: the SVG heatmaps' layout, in pixels of the drawing (the browser scales it to the page's width)
_SVG_PANEL, _SVG_GAP, _SVG_TOP, _SVG_BAR = 300, 28, 26, 10


def _svg_gradient(gid: str, scale: str, stops: int = 16) -> str:
    lut = colour_lut(scale)
    idx = np.rint(np.linspace(0, len(lut) - 1, stops)).astype(int)
    parts = "".join(f'<stop offset="{k / (stops - 1):.4f}" stop-color="#{lut[i, 0]:02x}{lut[i, 1]:02x}{lut[i, 2]:02x}"/>'
                    for k, i in enumerate(idx))
    return f'<linearGradient id="{gid}" x1="0" x2="1" y1="0" y2="0">{parts}</linearGradient>'


def _svg_panels(panels: Sequence[tuple[str, str, int]], blocks: Sequence[tuple[list, list]],
                bars: Sequence[tuple[int, int, str, str, float, float, str]], min_panels: int = 1) -> str:
    """Square images in a row as one SVG drawing: each titled, the label blocks of a panel on its
    left, colour bars below.

    ``panels``: (title, PNG data URI, rows of its matrix) each; ``blocks``: per panel, the tick
    positions and texts of :func:`label_blocks` (empty: none); ``bars``: (first panel, panels
    spanned, gradient id, colour scale, low, high, title) each. Fewer than ``min_panels`` panels are
    centred in a drawing as wide as that many: a page that scales the drawing to its width then
    draws every panel at the same size.
    """
    import html

    P, G, T, B = _SVG_PANEL, _SVG_GAP, _SVG_TOP, _SVG_BAR
    margins = [min(120, 6 * max(len(t) for t in texts)) if texts else 0 for _, texts in blocks]
    xs, x = [], 12 - G
    for margin in margins:
        x += G + margin
        xs.append(x)
        x += P
    shift = max(0, min_panels - len(panels)) * (P + G) // 2
    xs = [x0 + shift for x0 in xs]
    width, height = x + 12 + 2 * shift, T + P + 14 + B + 22
    gradients = {gid: scale for _, _, gid, scale, *_ in bars}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif" font-size="13">',
           "<defs>" + "".join(_svg_gradient(gid, scale) for gid, scale in gradients.items()) + "</defs>"]
    for x0, (name, uri, n), (ticks, texts) in zip(xs, panels, blocks):
        rows = max(n, 1)
        out.append(f'<text x="{x0 + P / 2}" y="{T - 8}" text-anchor="middle">{html.escape(name)}</text>')
        out.append(f'<image x="{x0}" y="{T}" width="{P}" height="{P}" preserveAspectRatio="none" '
                   f'style="image-rendering:pixelated" href="{uri}"/>')
        for t, text in zip(ticks, texts):
            out.append(f'<text x="{x0 - 4}" y="{T + (t + 0.5) / rows * P:.1f}" text-anchor="end" '
                       f'dominant-baseline="middle" font-size="9">{html.escape(text)}</text>')
    bar_y = T + P + 14
    for first, span, gid, _, lo, hi, title in bars:
        x0, w = xs[first], xs[first + span - 1] + P - xs[first]
        out.append(f'<rect x="{x0}" y="{bar_y}" width="{w}" height="{B}" fill="url(#{gid})"/>')
        for frac, v in ((0.0, lo), (0.5, (lo + hi) / 2), (1.0, hi)):
            anchor = ("start", "middle", "end")[int(frac * 2)]
            out.append(f'<text x="{x0 + frac * w:.1f}" y="{bar_y + B + 13}" text-anchor="{anchor}" font-size="11">{v:g}</text>')
        out.append(f'<text x="{x0 + w / 4:.1f}" y="{bar_y + B + 13}" text-anchor="middle" font-size="11" '
                   f'fill="#555">{html.escape(title)}</text>')
    out.append("</svg>")
    return "".join(out)


def relation_heatmaps_svg(A, E, labels=None, label_names: Mapping | None = None) -> str:
    """A | E | A − E as one SVG drawing: the live page's heatmaps while training.

    The same colours and ranges as :func:`relation_heatmaps` (:func:`heatmap_scales`; the
    matrices as palette PNGs, E's cached for the run), with the titles, the label blocks beside A
    and the two colour bars drawn as SVG. One image costs the browser a fraction of a plotly
    figure, and a live refresh replaces it whole; hover and zoom come back with the plotly figure
    when training pauses or stops.
    """
    A, E, E_given = _relation_pair(A, E)
    ticks, texts = label_blocks(labels, label_names) if labels is not None else ([], [])
    blocks = (tuple(ticks), tuple(texts))
    hit = _svg_drawings.get((A, E), blocks)
    if hit is not None:
        return hit
    sc = heatmap_scales(A, E)
    uris = _relation_images(A, E, E_given, sc)
    names = ("A: embedding D²", "E: label relation g", "A − E")
    drawing = _svg_panels([(name, uri, A.shape[0]) for name, uri in zip(names, uris)], [(ticks, texts), ([], []), ([], [])],
                          [(0, 2, "seq", HEATMAP_SCALE, 0.0, sc["zmax"], "D², g"),
                           (2, 1, "div", DIFF_SCALE, -sc["dmax"], sc["dmax"], "A − E")])
    return _svg_drawings.put((A, E), blocks, drawing)


# --------------------------------------------------------------------------------------------------
# D^2 against g
# --------------------------------------------------------------------------------------------------
def sample_pairs(n: int, n_pairs: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, of an n x n matrix's upper triangle: all when there are at most
    ``n_pairs``, else a seeded sample of distinct pairs (the same for the same n and seed)."""
    total = n * (n - 1) // 2
    if total <= n_pairs:
        i, j = np.triu_indices(n, 1)
        return i, j
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, n_pairs, replace=False)
    flat.sort()
    # invert the row-major enumeration of the strict upper triangle
    row_start = np.concatenate([[0], np.cumsum(np.arange(n - 1, 0, -1))])
    i = np.searchsorted(row_start, flat, side="right") - 1
    j = flat - row_start[i] + i + 1
    return i.astype(np.int64), j.astype(np.int64)


def alignment_stats(a, e) -> dict[str, float]:
    """How well D^2 (``a``) matches g (``e``) over pairs: Pearson r and RMSE."""
    a = np.asarray(a, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    rmse = float(np.sqrt(np.mean((a - e) ** 2))) if len(a) else float("nan")
    if len(a) < 2 or a.std() == 0 or e.std() == 0:
        r = float("nan")
    else:
        r = float(np.corrcoef(a, e)[0, 1])
    return {"r": r, "rmse": rmse}


def alignment_scatter(A, E, n_pairs: int = SCATTER_PAIRS, seed: int = 0, scale: float = 1.0,
                      max_stat_pairs: int = 500_000) -> go.Figure:
    """D^2 (y) against g (x) for ``n_pairs`` sampled pairs of the probe subset, with the line D^2 = g.

    The title's r and RMSE are over every pair of the probe subset (a sample of ``max_stat_pairs``
    when there are more); only the plotted points are sampled. When g takes few distinct values
    (classes), points get a small fixed horizontal jitter so the columns show their spread; the
    exact g is in the hover text (customdata).
    """
    A = np.asarray(A, dtype=np.float32)
    E = np.asarray(E, dtype=np.float32)
    n = len(A)
    i, j = sample_pairs(n, n_pairs, seed)
    a, e = A[i, j], E[i, j]
    si, sj = sample_pairs(n, max_stat_pairs, seed + 1)
    stats = alignment_stats(A[si, sj], E[si, sj])
    top = float(max(np.max(a, initial=0.0), np.max(e, initial=0.0))) or 1.0
    x = e
    if len(e) and len(np.unique(e)) <= 12:
        x = (e + np.random.default_rng(seed).uniform(-0.02, 0.02, len(e)) * top).astype(np.float32)
    data = [
        dict(type="scatter", x=x, y=a, mode="markers", name="pairs", customdata=e,
             marker=dict(size=4, opacity=0.35, color="#1f77b4"),
             hovertemplate="g %{customdata:.3f}<br>D² %{y:.3f}<extra></extra>"),
        dict(type="scatter", x=[0.0, top], y=[0.0, top], mode="lines", name="D² = g",
             line=dict(color="#d62728", dash="dash", width=1.5), hoverinfo="skip"),
    ]
    xt = "g (label relation)" if scale == 1 else f"g × {scale:.3g} (label relation, scaled)"
    return _figure(data, dict(
        title=_title(f"D² vs g: r = {stats['r']:.3f}, RMSE = {stats['rmse']:.3f} over {len(si):,} pairs ({len(a):,} shown)"),
        height=380, margin=_margin(), xaxis=dict(title=dict(text=xt)), yaxis=dict(title=dict(text="D² (embedding)")),
        showlegend=False, uirevision="scatter",
    ))


# --------------------------------------------------------------------------------------------------
# projection
# --------------------------------------------------------------------------------------------------
def projection_figure(xy, labels, label_names: Mapping | None = None, title: str = "Embedding projection") -> go.Figure:
    """A 2-D scatter of the projected embeddings, one colour (and legend entry) per label."""
    xy = np.asarray(xy, dtype=np.float32)
    labels = np.asarray(labels)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(labels):
        raise ValueError(f"xy must be (n, 2) with one label per row, got {xy.shape} and {labels.shape}")
    uniq = np.unique(labels)
    traces = []
    legend_width = 60
    if len(uniq) <= MAX_LEGEND_LABELS:
        names = _names(uniq, label_names)
        legend_width = int(min(220, 48 + 6.5 * max(len(n) for n in names)))
        for k, (u, name) in enumerate(zip(uniq, names)):
            m = labels == u
            traces.append(dict(type="scatter", x=xy[m, 0], y=xy[m, 1], mode="markers", name=name,
                               marker=dict(size=5, color=PALETTE[k % len(PALETTE)], opacity=0.8),
                               hovertemplate=f"{name}<extra></extra>"))
    else:
        codes = np.searchsorted(uniq, labels).astype(np.float32)
        traces.append(dict(type="scatter", x=xy[:, 0], y=xy[:, 1], mode="markers", name="samples",
                           marker=dict(size=5, color=codes, colorscale="Turbo", opacity=0.8),
                           text=_names(labels, label_names), hovertemplate="%{text}<extra></extra>"))
    return _figure(traces, dict(
        title=_title(title), height=380, margin=_margin(l=12, r=legend_width, t=36, b=12), uirevision="projection",
        xaxis=dict(showticklabels=False, zeroline=False), yaxis=dict(showticklabels=False, zeroline=False, scaleanchor="x"),
        legend=dict(itemsizing="constant", font=dict(size=10)),
    ))


def empty_figure(text: str, height: int = 300) -> go.Figure:
    return _figure([], dict(
        height=height, margin=_MARGIN, xaxis=dict(visible=False), yaxis=dict(visible=False),
        annotations=[dict(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font=dict(size=13))],
    ))


# --------------------------------------------------------------------------------------------------
# everything a refresh shows
# --------------------------------------------------------------------------------------------------
def live_figures(snapshot, frame=None, label_names: Mapping | None = None, baselines: Mapping[str, float] | None = None,
                 n_pairs: int = SCATTER_PAIRS, live: bool | None = None, svg: bool = True) -> dict[str, go.Figure | str]:
    """All live figures for one snapshot (and projection frame): what one page refresh draws.

    ``live`` (default: the snapshot's status is "running"): the heatmaps are one SVG image
    (:func:`relation_heatmaps_svg`, a string), or with ``svg=False`` a plotly figure of images.
    """
    s = snapshot
    live = (s.status == "running") if live is None else live
    figs = {
        "loss": loss_figure(s.loss_steps, s.loss_values) if len(s.loss_values) else empty_figure("Press Start to train"),
        "metric": metric_figure(s.metric_name, s.metric_steps, s.metric_values, s.raw_metric, baselines)
        if len(s.metric_values) or s.raw_metric is not None or baselines
        else empty_figure(f"The held-out {metric_label(s.metric_name)} is measured while training runs"),
        "heatmaps": relation_heatmaps_svg(s.A, s.E, s.probe_labels, label_names) if live and svg
        else relation_heatmaps(s.A, s.E, s.probe_labels, label_names, as_images=live),
        "scatter": alignment_scatter(s.A, s.E, n_pairs=n_pairs, scale=s.relation_scale),
    }
    if frame is not None:
        figs["projection"] = projection_figure(frame.xy, frame.labels, label_names, frame_title(frame))
    else:
        figs["projection"] = empty_figure("projection: computing the first frame…", 380)
    return figs



# --------------------------------------------------------------------------------------------------
# recorded runs: replay, compare, export
# --------------------------------------------------------------------------------------------------
def run_curves(scalars, metric: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The ``loss`` and ``metric`` curves of a run's scalars (a DataFrame with ``step`` and the
    columns): (steps, values) without the NaN rows, in step order (a row may be appended late)."""
    out = {}
    for key, col in (("loss", "loss"), ("metric", metric)):
        if col is None or col not in scalars:
            out[key] = (np.zeros(0), np.zeros(0))
            continue
        rows = scalars[["step", col]].dropna()
        rows = rows.sort_values("step", kind="stable")
        out[key] = (rows["step"].to_numpy(np.float64), rows[col].to_numpy(np.float64))
    return out


def value_at(steps, values, step: float) -> float | None:
    """The last value at or before ``step`` (None when there is none)."""
    steps = np.asarray(steps)
    i = int(np.searchsorted(steps, step, side="right")) - 1
    return float(np.asarray(values)[i]) if i >= 0 else None


def curve_figure(series: Mapping[str, tuple], title: str, y_title: str, step: float | None = None,
                 upto: bool = False, lines: Mapping[str, float] | None = None, log: bool | None = None,
                 x_range: tuple[float, float] | None = None, max_points: int = LOSS_POINTS,
                 uirevision: str = "curve", height: int = 300) -> go.Figure:
    """Curves of one quantity over steps, one trace per series (``{name: (steps, values)}``: a run's
    loss, or several runs' metric), with a dashed line at ``step`` and a dot on each curve there.

    ``upto``: each curve is drawn solid up to ``step`` and faint after it (a replay draws the curve
    growing while the axes stay put). ``lines``: horizontal reference values (the metric on raw
    features). ``log``: a log y axis (default: when every value is positive).
    """
    data, shapes = [], []
    everything = [np.asarray(v, dtype=np.float64) for _, v in series.values()]
    if log is None:
        log = bool(everything) and all(len(v) == 0 or np.all(v > 0) for v in everything) and any(len(v) for v in everything)
    lo = hi = None
    for k, (name, (x, y)) in enumerate(series.items()):
        x, y = bin_curve(x, y, max_points)
        colour = PALETTE[k % len(PALETTE)]
        if len(x):
            lo = float(x[0]) if lo is None else min(lo, float(x[0]))
            hi = float(x[-1]) if hi is None else max(hi, float(x[-1]))
        if upto and step is not None:
            done = x <= step
            data.append(dict(type="scatter", x=x[~done], y=y[~done], mode="lines", name=name, showlegend=False,
                             hoverinfo="skip", line=dict(width=1, color=colour), opacity=0.25))
            x, y = x[done], y[done]
        data.append(dict(type="scatter", x=x, y=y, mode="lines", name=name, line=dict(width=1.5, color=colour)))
        if step is not None:
            v = value_at(x, y, step)
            if v is not None:
                data.append(dict(type="scatter", x=[float(step)], y=[v], mode="markers", name=f"{name} at {int(step):,}",
                                 showlegend=False, marker=dict(size=8, color=colour, line=dict(width=1, color="white")),
                                 hovertemplate=f"{name}<br>step %{{x:,}}<br>%{{y:.4g}}<extra></extra>"))
    x0, x1 = x_range if x_range is not None else (lo if lo is not None else 0.0, hi if hi is not None else 1.0)
    for k, (label, v) in enumerate((lines or {}).items()):
        if v is not None and np.isfinite(v):
            data.append(dict(type="scatter", x=[x0, max(x1, x0 + 1)], y=[v, v], mode="lines", name=f"{label} ({v:.4f})",
                             line=dict(dash="dash" if k == 0 else "dot", color="#7f7f7f", width=1.5), hoverinfo="skip"))
    if step is not None:
        shapes.append(dict(type="line", x0=step, x1=step, xref="x", y0=0, y1=1, yref="paper",
                           line=dict(color="#555555", width=1, dash="dot")))
    xaxis = dict(title=dict(text="step"))
    if x_range is not None:
        xaxis["range"] = list(x_range)
    return _figure(data, dict(
        title=_title(title), height=height, margin=_margin(), uirevision=uirevision, shapes=shapes,
        xaxis=xaxis, yaxis=dict(title=dict(text=y_title), **y_scale(log)),
        showlegend=len(series) > 1 or bool(lines),
        legend=dict(orientation="h", yanchor="bottom", y=0.0, xanchor="right", x=1.0, bgcolor="rgba(255,255,255,0.6)"),
    ))


def frame_title(frame) -> str:
    """"UMAP of 1,257 training embeddings at step 500" (and the frame's note, if any)."""
    method = "UMAP" if frame.method == "umap" else "PCA"
    title = f"{method} of {len(frame.xy):,} training embeddings at step {frame.step:,}"
    return title + (f" — {frame.note}" if getattr(frame, "note", "") else "")


def replay_curves(run, step: int, curves: Mapping | None = None) -> dict[str, go.Figure]:
    """The ``loss`` and ``metric`` figures of a recorded run at ``step``: each curve drawn up to the
    step over the whole run's axis (the axes stay put while a slider moves), a dot at the step.
    ``curves``: the run's :func:`run_curves`, when already computed."""
    curves = curves if curves is not None else run_curves(run.scalars, run.metric)
    steps = np.concatenate([curves["loss"][0], curves["metric"][0], np.array([0.0, float(step)])])
    x_range = (float(steps.min()), float(max(steps.max(), 1.0)))
    loss = curves["loss"]
    at = value_at(*loss, step)
    figs = {
        "loss": curve_figure({"loss": loss}, f"Training loss at step {step:,}" + (f": {at:.4g}" if at is not None else ""),
                             "loss", step=step, upto=True, x_range=x_range, uirevision="loss")
        if len(loss[0]) else empty_figure("No loss recorded yet"),
    }
    metric, m, raw = run.metric, curves["metric"], run.raw_metric
    if metric and (len(m[0]) or raw is not None):
        at = value_at(*m, step)
        figs["metric"] = curve_figure({"HRAML": m}, f"Held-out {metric_label(metric)}" + (f" at step {step:,}: {at:.4f}" if at is not None else ""),
                                      metric_label(metric), step=step, upto=True, lines={"raw features": raw} if raw is not None else None,
                                      log=False, x_range=x_range, uirevision="metric")
    else:
        figs["metric"] = empty_figure("No held-out metric in this run" if not metric else f"No held-out {metric_label(metric)} yet")
    return figs


def snapshot_figures(run, snap, frame=None, label_names: Mapping | None = None, as_images: bool = False,
                     n_pairs: int = SCATTER_PAIRS, svg: bool = True) -> dict[str, go.Figure | str]:
    """The ``heatmaps``, ``scatter`` and ``projection`` figures of a recorded run's snapshot ``snap``
    (a :class:`hraml_core.runs.RunSnapshot`) and its projection ``frame``. ``as_images``: the
    heatmaps as one SVG image (a string), or with ``svg=False`` a plotly figure of images."""
    figs = {
        "heatmaps": relation_heatmaps_svg(snap.A, snap.E, snap.probe_labels, label_names) if as_images and svg
        else relation_heatmaps(snap.A, snap.E, snap.probe_labels, label_names, as_images=as_images),
        "scatter": alignment_scatter(snap.A, snap.E, n_pairs=n_pairs, scale=run.relation_scale or 1.0),
    }
    if frame is not None:
        figs["projection"] = projection_figure(frame.xy, frame.labels, label_names, frame_title(frame))
    else:
        figs["projection"] = empty_figure("projection: computing…", 380)
    return figs


def replay_figures(run, snap, frame=None, label_names: Mapping | None = None, as_images: bool = False,
                   n_pairs: int = SCATTER_PAIRS, svg: bool = True) -> dict[str, go.Figure | str]:
    """What a recorded run looks like at the snapshot ``snap``: the same five figures as
    :func:`live_figures` (``loss``, ``metric``, ``heatmaps``, ``scatter``, ``projection``).

    ``run`` is a :class:`hraml_core.runs.Run` (or anything with ``scalars``, ``metric``,
    ``raw_metric`` and ``relation_scale``).
    """
    return {**replay_curves(run, snap.step), **snapshot_figures(run, snap, frame, label_names, as_images, n_pairs, svg)}


def _square_matrices(matrices: Sequence[tuple[str, np.ndarray]]) -> tuple[list[tuple[str, np.ndarray]], float]:
    """(title, float32 matrix) pairs (ValueError for none, or one that is not square) and their
    shared colour maximum."""
    mats = [(t, np.asarray(M, dtype=np.float32)) for t, M in matrices]
    if not mats:
        raise ValueError("no matrices to draw")
    for t, M in mats:
        if M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise ValueError(f"{t}: a square matrix is needed, got shape {M.shape}")
    return mats, nice_ceiling(max(float(np.max(M, initial=0.0)) for _, M in mats))


def matrices_figure(matrices: Sequence[tuple[str, np.ndarray]], labels: Sequence | None = None,
                    label_names: Mapping | None = None, height: int = 380, as_images: bool = True) -> go.Figure:
    """Square matrices side by side on one colour scale ([0, the largest entry of any]), one panel
    each, titled: the A of several runs at one step, directly comparable.

    ``labels``: per matrix, the labels of its rows (block ticks), or None. ``as_images``: panels as
    pre-coloured PNG images (fast; hover shows positions), else heatmaps with values on hover.
    """
    mats, zmax = _square_matrices(matrices)
    k = len(mats)
    gap = 0.04
    w = (1 - gap * (k - 1)) / k
    data, layout = [], dict(
        height=height, margin=_margin(l=40, r=12, t=30, b=64), uirevision="matrices",
        coloraxis=dict(colorscale=HEATMAP_SCALE, cmin=0.0, cmax=zmax,
                       colorbar=dict(orientation="h", x=0.5, xanchor="center", len=0.6, y=-0.08, yanchor="top",
                                     thickness=10, title=dict(text="D²", side="right"))),
        annotations=[dict(text=t, x=i * (w + gap) + w / 2, y=1.0, xref="paper", yref="paper", xanchor="center",
                          yanchor="bottom", showarrow=False, font=dict(size=13)) for i, (t, _) in enumerate(mats)],
    )
    for i, (t, M) in enumerate(mats):
        sx = "" if i == 0 else str(i + 1)
        axes = {} if i == 0 else dict(xaxis=f"x{sx}", yaxis=f"y{sx}")
        if as_images:
            data.append(dict(type="image", source=_image_uri(M, 0.0, zmax, HEATMAP_SCALE), name=t, x0=0, dx=1, y0=0, dy=1,
                             hovertemplate="row %{y}, col %{x}<extra>" + t + "</extra>", **axes))
        else:
            data.append(dict(type="heatmap", z=M, name=t, coloraxis="coloraxis", zmin=0.0, zmax=zmax,
                             hovertemplate="row %{y}, col %{x}<br>%{z:.3f}<extra>%{fullData.name}</extra>", **axes))
        lab = labels[i] if labels is not None else None
        ticks, texts = label_blocks(lab, label_names) if lab is not None else ([], [])
        n = M.shape[0]
        axis = dict(showgrid=False, zeroline=False, tickvals=ticks, ticktext=texts, tickfont=dict(size=9),
                    constrain="domain")
        layout[f"xaxis{sx}"] = dict(axis, range=[-0.5, n - 0.5], domain=[i * (w + gap), i * (w + gap) + w],
                                    anchor=f"y{sx}", scaleanchor=f"y{sx}", showticklabels=False)
        layout[f"yaxis{sx}"] = dict(axis, range=[n - 0.5, -0.5], anchor=f"x{sx}", showticklabels=True)
    if as_images:  # an invisible carrier of the colour bar
        data.append(dict(type="heatmap", z=np.array([[0.0, zmax]], np.float32), coloraxis="coloraxis", opacity=0.0,
                         hoverinfo="skip", name="scale"))
    return _figure(data, layout)


_matrix_drawings = ByIdentity()


def matrices_svg(matrices: Sequence[tuple[str, np.ndarray]], labels: Sequence | None = None,
                 label_names: Mapping | None = None) -> str:
    """:func:`matrices_figure` as one SVG drawing (a refreshing Compare page): the same panels,
    colours and shared range, each run's label blocks beside its panel (only where they differ
    from the panel before), one colour bar under all; two runs' panels are centred at the size of
    the Train page's three. Made once while the same arrays come back.

    Examples
    --------
    >>> A = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    >>> matrices_svg([("run a", A), ("run b", 2 * A)]).count("<image")
    2
    """
    given = tuple(M for _, M in matrices)
    lab = list(labels) if labels is not None else [None] * len(given)
    blocks = []
    for i, y in enumerate(lab):
        same = i > 0 and y is not None and lab[i - 1] is not None and np.array_equal(y, lab[i - 1])
        ticks, texts = label_blocks(y, label_names) if y is not None and not same else ([], [])
        blocks.append((tuple(ticks), tuple(texts)))
    extra = (tuple(t for t, _ in matrices), tuple(blocks))
    hit = _matrix_drawings.get(given, extra)
    if hit is not None:
        return hit
    mats, zmax = _square_matrices(matrices)
    panels = [(t, _image_uri(M, 0.0, zmax, HEATMAP_SCALE), M.shape[0]) for t, M in mats]
    drawing = _svg_panels(panels, blocks, [(0, len(mats), "seq", HEATMAP_SCALE, 0.0, zmax, "D²")], min_panels=3)
    return _matrix_drawings.put(given, extra, drawing)


# --------------------------------------------------------------------------------------------------
# a run's evolution as one HTML file
# --------------------------------------------------------------------------------------------------
#: Snapshots an exported evolution holds at most (spread evenly over the run).
EXPORT_FRAMES = 200

_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:0;padding:8px}} #plot{{width:100%;height:92vh}}</style>
<script>{plotlyjs}</script></head>
<body><div id="plot"></div>
<script type="application/json" id="hraml-evolution">{spec}</script>
<script>
const spec = JSON.parse(document.getElementById("hraml-evolution").textContent);
Plotly.newPlot("plot", spec.data, spec.layout, spec.config).then(gd => Plotly.addFrames(gd, spec.frames));
</script></body></html>
"""


def typed_array(a) -> dict:
    """A float array as plotly.js's typed-array spec (``{"dtype": "f4", "bdata": base64}``). plotly's
    Python side encodes arrays this way only inside graph objects, whose validation of a few hundred
    animation frames would cost more than the file's whole build; plain JSON lists are 2-3x larger."""
    import base64

    data = np.ascontiguousarray(a, dtype="<f4")
    return {"dtype": "f4", "bdata": base64.b64encode(data.tobytes()).decode("ascii")}


def pick_steps(steps: Sequence[int], max_frames: int = EXPORT_FRAMES) -> list[int]:
    """At most ``max_frames`` of ``steps``, spread evenly, always with the first and the last."""
    steps = list(steps)
    if len(steps) <= max_frames:
        return steps
    idx = np.unique(np.rint(np.linspace(0, len(steps) - 1, max_frames)).astype(int))
    return [steps[i] for i in idx]


def evolution_figure(run, steps: Sequence[int], frames: Sequence, label_names: Mapping | None = None,
                     title: str | None = None) -> dict:
    """A plotly figure (as a dict) that animates ``run`` (a :class:`hraml_core.runs.Run`) over its
    snapshots at ``steps`` and their projection ``frames`` (one per step, aligned): the loss and
    metric curves with a dot moving along them, A and A − E as images on colour ranges fixed over
    the whole run, and the projection; a play / pause button and a step slider. One animation frame
    per snapshot. Snapshots are read twice (colour ranges, then images) rather than all held at once.
    """
    steps = [int(s) for s in steps]
    if not steps or len(steps) != len(frames):
        raise ValueError(f"one projection frame per snapshot is needed, got {len(steps)} snapshots and {len(frames)} frames")
    curves = run_curves(run.scalars, run.metric)
    zmax = dmax = 0.0
    for st in steps:
        s = run.snapshot(st)
        zmax = max(zmax, float(np.max(s.A, initial=0.0)), float(np.max(s.E, initial=0.0)))
        dmax = max(dmax, float(np.max(np.abs(s.A - s.E), initial=0.0)))
    zmax, dmax = nice_ceiling(zmax), nice_ceiling(dmax)
    n = run.snapshot(steps[0]).A.shape[0]
    lut, dlut = colour_lut(HEATMAP_SCALE), colour_lut(DIFF_SCALE)
    labels = np.asarray(frames[0].labels)
    uniq = np.unique(labels)
    many = len(uniq) > MAX_LEGEND_LABELS  # then one trace for all points, coloured by label code
    groups = ([("samples", np.ones(len(labels), bool))] if many
              else [(name, labels == u) for u, name in zip(uniq, _names(uniq, label_names))])
    codes = np.searchsorted(uniq, labels).astype(np.float32)
    # static traces: the two curves; animated: two dots, two images, the projection groups
    data = []
    for i, (key, name) in enumerate((("loss", "loss"), ("metric", run.metric or "metric"))):
        x, y = bin_curve(*curves[key], LOSS_POINTS)
        data.append(dict(type="scatter", x=typed_array(x), y=typed_array(y), mode="lines", name=name,
                         line=dict(width=1.5, color=PALETTE[0]), xaxis=f"x{i + 1}", yaxis=f"y{i + 1}", showlegend=False))
    n_static = len(data)

    def moving(k: int) -> list[dict]:
        s, f = run.snapshot(steps[k]), frames[k]
        out = []
        for i, key in enumerate(("loss", "metric")):
            v = value_at(*curves[key], s.step)
            out.append(dict(type="scatter", x=[float(s.step)] if v is not None else [], y=[v] if v is not None else [],
                            mode="markers", marker=dict(size=9, color="#d62728"), xaxis=f"x{i + 1}", yaxis=f"y{i + 1}",
                            showlegend=False, hoverinfo="skip"))
        out.append(dict(type="image", source=png_data_uri(colour_index(s.A, 0.0, zmax, len(lut)), lut),
                        xaxis="x3", yaxis="y3", hoverinfo="skip"))
        out.append(dict(type="image", source=png_data_uri(colour_index(s.A - s.E, -dmax, dmax, len(dlut)), dlut),
                        xaxis="x4", yaxis="y4", hoverinfo="skip"))
        xy = np.asarray(f.xy, dtype=np.float32)
        for g, (name, m) in enumerate(groups):
            marker = (dict(size=4, color=typed_array(codes), colorscale="Turbo", opacity=0.8) if many
                      else dict(size=4, color=PALETTE[g % len(PALETTE)], opacity=0.8))
            out.append(dict(type="scatter", x=typed_array(xy[m, 0]), y=typed_array(xy[m, 1]), mode="markers",
                            name=name, marker=marker, xaxis="x5", yaxis="y5", hoverinfo="name"))
        return out

    data += moving(0)
    animated = list(range(n_static, len(data)))
    all_xy = np.concatenate([np.asarray(f.xy, dtype=np.float32) for f in frames])
    pad = 0.05 * (np.ptp(all_xy, axis=0) + 1e-9)
    xr = [float(all_xy[:, 0].min() - pad[0]), float(all_xy[:, 0].max() + pad[0])]
    yr = [float(all_xy[:, 1].min() - pad[1]), float(all_xy[:, 1].max() + pad[1])]
    name = title or getattr(run, "name", "run")
    heading = lambda k: f"{name}: step {steps[k]:,}"  # noqa: E731
    fig_frames = [dict(name=str(steps[k]), data=moving(k), traces=animated,
                       layout=dict(title=dict(text=heading(k)))) for k in range(len(steps))]
    sq = dict(showgrid=False, zeroline=False, showticklabels=False, constrain="domain")
    layout = dict(
        title=dict(text=heading(0), x=0, font=dict(size=16)), showlegend=len(groups) > 1,
        legend=dict(x=1.0, y=0.45, xanchor="left", yanchor="top", itemsizing="constant"),
        margin=dict(l=50, r=20, t=60, b=110), hovermode="closest",
        xaxis=dict(domain=[0, 0.46], anchor="y", title=dict(text="step")),
        yaxis=dict(domain=[0.62, 1], anchor="x", title=dict(text="loss"),
                   **y_scale(bool(len(curves["loss"][1]) and np.all(curves["loss"][1] > 0)))),
        xaxis2=dict(domain=[0.54, 1], anchor="y2", title=dict(text="step")),
        yaxis2=dict(domain=[0.62, 1], anchor="x2", title=dict(text=f"held-out {metric_label(run.metric)}" if run.metric else "metric")),
        xaxis3=dict(sq, domain=[0, 0.3], anchor="y3", range=[-0.5, n - 0.5], scaleanchor="y3"),
        yaxis3=dict(sq, domain=[0, 0.45], anchor="x3", range=[n - 0.5, -0.5]),
        xaxis4=dict(sq, domain=[0.35, 0.65], anchor="y4", range=[-0.5, n - 0.5], scaleanchor="y4"),
        yaxis4=dict(sq, domain=[0, 0.45], anchor="x4", range=[n - 0.5, -0.5]),
        xaxis5=dict(sq, domain=[0.7, 1], anchor="y5", range=xr),
        yaxis5=dict(sq, domain=[0, 0.45], anchor="x5", range=yr),
        annotations=[dict(text=t, x=x, y=0.46, xref="paper", yref="paper", xanchor="center", yanchor="bottom",
                          showarrow=False, font=dict(size=13))
                     for t, x in ((f"A = D² (0 to {zmax:g})", 0.15), (f"A − E (±{dmax:g})", 0.5), ("projection", 0.85))],
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.06, xanchor="left", yanchor="top", showactive=False,
                          buttons=[dict(label="▶ Play", method="animate",
                                        args=[None, dict(frame=dict(duration=150, redraw=True), transition=dict(duration=0),
                                                         fromcurrent=True, mode="immediate")]),
                                   dict(label="❚❚ Pause", method="animate",
                                        args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate")])])],
        sliders=[dict(active=0, x=0.2, y=-0.04, len=0.8, xanchor="left", yanchor="top",
                      currentvalue=dict(prefix="step ", font=dict(size=12)),
                      steps=[dict(label=f"{s:,}", method="animate",
                                  args=[[str(s)], dict(frame=dict(duration=0, redraw=True), mode="immediate",
                                                       transition=dict(duration=0))]) for s in steps])],
    )
    return dict(data=data, layout=layout, frames=fig_frames)


def evolution_html(figure: Mapping, title: str = "HRAML run") -> str:
    """One self-contained HTML page (plotly.js inside, nothing fetched) that plays ``figure``
    (from :func:`evolution_figure`); the figure is a JSON block ``#hraml-evolution`` in the page."""
    import html
    import json

    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    spec = json.loads(pio.to_json(dict(figure), validate=False))  # numpy arrays -> plotly's typed arrays
    spec["config"] = {"displaylogo": False, "responsive": True,
                      "toImageButtonOptions": {"format": "png", "filename": safe_filename(title)}}
    text = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    return _HTML.format(title=html.escape(title), plotlyjs=get_plotlyjs(), spec=text)


def safe_filename(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "figure"
