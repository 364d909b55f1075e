"""The Train page's sidebar in the page's address, so that a copied link opens the same settings.

No Streamlit here: the functions take the session state and the query parameters as mappings
(``st.session_state`` and ``st.query_params`` in the app, dicts in tests).

- :func:`parse_query`: link values -> widget values, each checked by its declaration
  (:mod:`hraml_core.params` through :mod:`hraml_dashboard.settings_form`), with a message for
  each value that cannot be used (never an exception);
- :func:`to_query`: widget values -> link values, only those that differ from the defaults (a link
  with no settings opens the defaults, so links stay short);
- :func:`initial_values` / :func:`remember`: what the sidebar's widgets start from: the link's values
  (first run of a session), the values the sidebar had before a visit to another page (Streamlit
  forgets the state of widgets a page does not draw) and values another page asks for (a duplicate);
- :func:`sync_query`: after the sidebar is drawn, write its state into the address.

Query keys ``page``, ``run``, ``runs``, ``watch`` (the runs pages) and ``session`` are not settings.
"""
from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from hraml_core import params as hp

from . import settings_form as sf

#: Query keys that belong to the pages, not to the sidebar.
RESERVED = ("page", "run", "runs", "watch", "session")
DATASET = "dataset"
#: Session-state keys of this module.
APPLIED, SAVED, PENDING, PROBLEMS = "_share_applied", "_share_saved", "_share_pending", "_share_problems"


@dataclass(frozen=True)
class DisplaySetting:
    """A sidebar widget that is not a hyperparameter: how many points to draw, and how to project them."""

    key: str
    label: str
    default: object
    low: int | None = None
    high: int | None = None
    step: int | None = None
    options: tuple = ()

    def parse(self, text: str):
        """The widget value for link text ``text`` (ValueError naming what is allowed)."""
        if self.options:
            if text not in self.options:
                raise ValueError(f"{self.key} must be one of {', '.join(self.options)}, got {text!r}")
            return text
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{self.key} must be an integer, got {text!r}") from None
        if not self.low <= value <= self.high or (value - self.low) % self.step:
            raise ValueError(f"{self.key} must be {self.low} to {self.high} in steps of {self.step}, got {text!r}")
        return value


#: The Display section of the sidebar (app.py draws these widgets from here).
DISPLAY = (
    DisplaySetting("probe_size", "Heatmap points", 300, 50, 1000, 50),
    DisplaySetting("display_size", "Projection points", 2000, 100, 5000, 100),
    DisplaySetting("projection", "Projection", "UMAP", options=("UMAP", "PCA")),
)
_DISPLAY = {d.key: d for d in DISPLAY}


def sidebar_keys(specs: Sequence[sf.WidgetSpec]) -> tuple[str, ...]:
    """Every widget key the link carries: the dataset, the declared settings, the display settings."""
    return (DATASET, *(s.key for s in specs), *(d.key for d in DISPLAY))


def default_value(spec: sf.WidgetSpec):
    """What the widget shows before anyone touches it."""
    if spec.widget == sf.TEXT:
        return spec.text_default()
    if spec.widget == sf.SELECT:
        return spec.default if spec.default in spec.options else spec.options[0]
    if spec.widget == sf.FLOAT:
        return float(spec.default)
    if spec.widget == sf.INT:
        return int(spec.default) if spec.default is not None else spec.min_value
    return spec.default


def widget_value(spec: sf.WidgetSpec, value, text: str | None = None):
    """A parameter value (already checked by its declaration) as ``spec``'s widget holds it;
    ``text`` is what was typed, kept as it is for text widgets. ValueError when the widget cannot
    show it (a choice the sidebar does not offer, None in a number box)."""
    if spec.widget == sf.SELECT:
        if value not in spec.options:
            raise ValueError(f"{spec.key} must be one of {', '.join(map(str, spec.options))}, got {value!r}")
        return value
    if spec.widget == sf.CHECKBOX:
        return bool(value)
    if spec.widget in (sf.INT, sf.FLOAT):
        if value is None:
            raise ValueError(f"{spec.key}: the sidebar needs a number, got None")
        number = int(value) if spec.widget == sf.INT else float(value)
        if (spec.min_value is not None and number < spec.min_value) or (spec.max_value is not None and number > spec.max_value):
            raise ValueError(f"{spec.key} must be between {spec.min_value} and {spec.max_value}, got {value!r}")
        return number
    if text is not None:
        return text
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _text(spec: sf.WidgetSpec, value) -> str:
    """A widget value as link text that parses back to the same value."""
    if spec.widget == sf.CHECKBOX:
        return "true" if value else "false"
    if spec.widget == sf.FLOAT:
        return repr(float(value))  # the shortest text that reads back as the same float
    return str(value)


def parse_query(query: Mapping, specs: Sequence[sf.WidgetSpec], datasets: Sequence[str]) -> tuple[dict, list[str]]:
    """(widget values, problems) from a link's query parameters. Each value is parsed and checked by
    its declaration; a value that cannot be used is left out with a message saying why, and an
    unknown key is named. Reserved keys (:data:`RESERVED`) are not looked at."""
    by_key = {s.key: s for s in specs}
    declared = hp.by_name()
    values, problems = {}, []
    for key in query:
        if key in RESERVED:
            continue
        raw = query[key]
        text = raw[-1] if isinstance(raw, (list, tuple)) else raw
        text = "" if text is None else str(text)
        try:
            if key == DATASET:
                if text not in datasets:
                    shown = ", ".join(list(datasets)[:12]) + (", …" if len(datasets) > 12 else "")
                    raise ValueError(f"dataset {text!r} is not available here (available: {shown})")
                values[key] = text
            elif key in by_key:
                spec = by_key[key]
                parsed = declared[key].parse(text) if key in declared else text
                values[key] = widget_value(spec, parsed, text.strip() if spec.widget == sf.TEXT else None)
            elif key in _DISPLAY:
                values[key] = _DISPLAY[key].parse(text)
            else:
                raise ValueError(f"{key!r} is not a setting of this page")
        except ValueError as exc:
            problems.append(str(exc))
    return values, problems


def to_query(values: Mapping, specs: Sequence[sf.WidgetSpec], dataset_default: str | None = None,
             datasets: Sequence[str] | None = None) -> dict[str, str]:
    """The link parameters for the widget ``values``: those that differ from the defaults, as text
    that :func:`parse_query` reads back to the same values. A dataset the link cannot carry (an
    uploaded file: not in ``datasets``) is left out."""
    out = {}
    ds = values.get(DATASET)
    if ds is not None and ds != dataset_default and (datasets is None or ds in datasets):
        out[DATASET] = str(ds)
    for spec in specs:
        if spec.key in values and values[spec.key] != default_value(spec):
            out[spec.key] = _text(spec, values[spec.key])
    for d in DISPLAY:
        if d.key in values and values[d.key] != d.default:
            out[d.key] = str(values[d.key])
    return out


def values_from_config(config: Mapping, specs: Sequence[sf.WidgetSpec]) -> tuple[dict, list[str]]:
    """(widget values, problems) for a run's recorded ``config`` (run.json: TrainConfig fields and the
    Trainer's probe_size / display_size), to train it again with the same settings."""
    declared = hp.by_name()
    values, problems = {}, []
    for spec in specs:
        if config.get(spec.key) is None:
            continue
        try:
            parsed = declared[spec.key].parse(config[spec.key]) if spec.key in declared else config[spec.key]
            values[spec.key] = widget_value(spec, parsed)
        except (ValueError, TypeError) as exc:
            problems.append(str(exc))
    for d in DISPLAY:
        if d.key in config and config[d.key] is not None:
            try:
                values[d.key] = d.parse(str(config[d.key]))
            except ValueError as exc:
                problems.append(str(exc))
    return values, problems


# --------------------------------------------------------------------------------------------------
# the session's side
# --------------------------------------------------------------------------------------------------
def initial_values(state: MutableMapping, query: Mapping, specs: Sequence[sf.WidgetSpec],
                   datasets: Sequence[str]) -> tuple[dict, list[str]]:
    """(values, messages): what the sidebar's widgets start from when they are drawn anew, each
    over the one before:

    1. the values the sidebar had when this session last drew it (Streamlit drops the state of
       widgets that a page does not draw, so a visit to the Runs page would reset them);
    2. on the session's first drawing of the sidebar, the link's values;
    3. values another page asked for (:data:`PENDING`, e.g. "duplicate with another relation").

    The app draws each widget with its value as the widget's default (:func:`with_defaults`) rather
    than writing it into ``st.session_state``: a value written there before the widget is drawn
    sometimes lost the race with the browser's first report of its widgets, which then showed (and
    sent back) the declared default. Widgets that exist keep their state; these values only start
    new ones. The messages are about values that were not used; they are kept (the page reruns on
    its own) until :func:`dismiss`.
    """
    values = dict(state.get(SAVED) or {})
    problems = list(state.get(PROBLEMS) or [])
    if not state.get(APPLIED):
        state[APPLIED] = True
        link, problems = parse_query(query, specs, datasets)
        values.update(link)
    pending = dict(state.get(PENDING) or {})
    if pending:
        state[PENDING] = None
        if DATASET in pending and pending[DATASET] not in datasets:
            problems.append(f"dataset {pending.pop(DATASET)!r} is not available here: choose the data in the sidebar")
        values.update(pending)
    state[PROBLEMS] = problems
    return values, problems


def with_defaults(specs: Sequence[sf.WidgetSpec], values: Mapping) -> list[sf.WidgetSpec]:
    """``specs`` with ``values`` as the defaults their widgets are drawn with."""
    import dataclasses

    return [dataclasses.replace(s, default=values[s.key]) if s.key in values else s for s in specs]


def dismiss(state: MutableMapping) -> None:
    """Forget the messages of :func:`initial_values`."""
    state[PROBLEMS] = []


def remember(state: MutableMapping, keys: Sequence[str]) -> None:
    """Keep the sidebar's values (after drawing it) for :func:`initial_values`."""
    state[SAVED] = {k: state[k] for k in keys if k in state}


def request(state: MutableMapping, values: Mapping) -> None:
    """Ask the sidebar to take ``values`` at its next drawing (from another page)."""
    state[PENDING] = dict(values)


def sync_query(query: MutableMapping, state: Mapping, specs: Sequence[sf.WidgetSpec], dataset_default: str | None,
               datasets: Sequence[str] | None = None) -> dict[str, str]:
    """Write the sidebar's state into ``query`` (the address): set what changed, remove settings
    back at their defaults, leave other keys alone. Returns the settings' part of the link."""
    keys = sidebar_keys(specs)
    wanted = to_query({k: state[k] for k in keys if k in state}, specs, dataset_default, datasets)
    for key in keys:
        if key in wanted:
            if query.get(key) != wanted[key]:
                query[key] = wanted[key]
        elif key in query:
            del query[key]
    return wanted


def link(base: str | None, params: Mapping[str, str | Sequence[str]]) -> str:
    """``base`` (the page's address, without its query) with ``params`` as its query."""
    from urllib.parse import urlencode

    query = urlencode([(k, x) for k, v in params.items() for x in ([v] if isinstance(v, str) else v)])
    return f"{base or ''}?{query}" if query else (base or "?")
