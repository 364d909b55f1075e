"""The sidebar's training settings, derived from the hyperparameter declaration.

:func:`widget_specs` turns the ``widget`` parameters of :data:`hraml_core.params.PARAMS` into
widget descriptions (pure; tests read them without Streamlit), :func:`render` draws one, and
:func:`config_from_values` reads the widgets' values back into a
:class:`~hraml_core.training.TrainConfig`. A new declared parameter appears here by itself.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hraml_core import params as hp
from hraml_core.training import TrainConfig

#: Sidebar headers of the declared groups.
GROUP_TITLES = {"relation": "Relation", "encoder": "Encoder", "pairs": "Pairs", "optimiser": "Optimiser",
                "training": "Training", "runtime": "Run"}
SELECT, TEXT, INT, FLOAT, CHECKBOX = "select", "text", "int", "float", "checkbox"


@dataclass(frozen=True)
class WidgetSpec:
    """One settings widget: its key (the parameter's name) and how to draw it."""

    key: str
    widget: str
    label: str
    group: str
    default: object
    help: str
    options: tuple = ()
    min_value: float | None = None
    max_value: float | None = None
    step: float | None = None
    format: str | None = None
    advanced: bool = False

    def text_default(self) -> str:
        return ",".join(map(str, self.default)) if isinstance(self.default, tuple) else str(self.default)


def widget_specs(params: Sequence[hp.Param] = hp.PARAMS, options: Mapping[str, Sequence] | None = None) -> list[WidgetSpec]:
    """A widget per ``widget`` parameter, in declared order. ``options`` gives the choices of
    parameters whose choices are open (the relations registered at run time)."""
    options = options or {}
    specs = []
    for p in params:
        if not p.widget:
            continue
        label = p.label[:1].upper() + p.label[1:]
        text = p.help
        if p.choice_help:
            text += " " + "; ".join(f"**{k}**: {v}" for k, v in p.choice_help.items())
        common = dict(key=p.name, label=label, group=p.group, default=p.default, help=text, advanced=p.advanced)
        choices = tuple(options.get(p.name, ())) or (p.choices if not p.open_choices else ())
        if choices:
            specs.append(WidgetSpec(widget=SELECT, options=choices, **common))
        elif p.kind == hp.BOOL:
            specs.append(WidgetSpec(widget=CHECKBOX, **common))
        elif p.kind in (hp.INT, hp.SEED):
            lo = None if p.low is None else int(p.low) + (1 if p.low_open else 0)
            hi = None if p.high is None else int(p.high) - (1 if p.high_open else 0)
            specs.append(WidgetSpec(widget=INT, min_value=lo, max_value=hi, step=int(p.step or 1), **common))
        elif p.kind == hp.FLOAT:
            # An open bound (lr > 0) is left to the declaration's check, which names the problem.
            lo = None if p.low is None or p.low_open else float(p.low)
            hi = None if p.high is None or p.high_open else float(p.high)
            specs.append(WidgetSpec(widget=FLOAT, min_value=lo, max_value=hi, step=float(p.step or 0.01),
                                    format=p.display, **common))
        else:  # sequences of ints, scale, free text
            specs.append(WidgetSpec(widget=TEXT, **common))
    return specs


def render(container, spec: WidgetSpec) -> None:
    """Draw ``spec`` in ``container`` (the sidebar or a column); the value lands in session state
    under ``spec.key``."""
    if spec.widget == SELECT:
        options = list(spec.options)
        index = options.index(spec.default) if spec.default in options else 0
        container.selectbox(spec.label, options, index=index, key=spec.key, help=spec.help)
    elif spec.widget == CHECKBOX:
        container.checkbox(spec.label, value=bool(spec.default), key=spec.key, help=spec.help)
    elif spec.widget == INT:
        container.number_input(spec.label, min_value=spec.min_value, max_value=spec.max_value,
                               value=int(spec.default) if spec.default is not None else spec.min_value,
                               step=int(spec.step), key=spec.key, help=spec.help)
    elif spec.widget == FLOAT:
        container.number_input(spec.label, min_value=spec.min_value, max_value=spec.max_value,
                               value=float(spec.default), step=spec.step, format=spec.format,
                               key=spec.key, help=spec.help)
    else:
        container.text_input(spec.label, spec.text_default(), key=spec.key, help=spec.help)


def widget_keys(params: Sequence[hp.Param] = hp.PARAMS) -> tuple[str, ...]:
    return tuple(p.name for p in params if p.widget)


def config_from_values(values: Mapping, params: Sequence[hp.Param] = hp.PARAMS, config_class: type = TrainConfig):
    """A TrainConfig (or ``config_class``) from widget values (keys: parameter names; missing ones
    keep their defaults).

    Raises ``ValueError`` naming every bad value (e.g. hidden sizes "12,x").
    """
    kw, problems = {}, []
    for p in params:
        if not p.config or p.name not in values or values[p.name] is None:
            continue
        try:
            kw[p.name] = p.parse(values[p.name])
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return config_class(**kw)


def changed_settings(old: TrainConfig, new: TrainConfig) -> list[str]:
    """Labels of the declared settings that differ between two configs."""
    return [p.label for p in old.__params__ if getattr(old, p.name) != getattr(new, p.name)]
