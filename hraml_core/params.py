"""Every hyperparameter of HRAML, declared once.

Each :class:`Param` gives a name, a kind, a default, the allowed values, a help text and where the
parameter applies. Everything else is derived from :data:`PARAMS`:

- :class:`hraml_core.training.TrainConfig`, the settings of one run (the ``config`` parameters),
  through :func:`config_class`;
- the parameters of :class:`hraml_core.HRAML` (its ``__init__`` signature, ``get_params``) and the
  "Parameters" section of its docstring, through :func:`estimator_params` and
  :func:`numpydoc_parameters`;
- the flags of ``hraml train`` and of ``torchrun -m hraml_core.distributed``, through
  :func:`add_arguments` (this module imports only the standard library, so ``hraml --help`` does
  not import torch);
- the dashboard's settings widgets (``dashboard/settings_form.py`` reads the ``widget`` parameters);
- the ``config`` of a saved model or run directory, through :func:`config_to_dict` and
  :func:`config_from_dict`.

Adding a hyperparameter is one :class:`Param` here, plus the code that uses it.
"""
from __future__ import annotations

import argparse
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Kinds of value. Each has a parser for text (CLI, widgets) and a checker for values.
INT, FLOAT, STR, BOOL, INTS, SCALE, SEED, RANDOM_STATE, PATH = (
    "int", "float", "str", "bool", "ints", "scale", "seed", "random_state", "path",
)
KINDS = (INT, FLOAT, STR, BOOL, INTS, SCALE, SEED, RANDOM_STATE, PATH)

#: Groups, in the order the dashboard and the docstring show them.
GROUPS = ("relation", "encoder", "pairs", "optimiser", "training", "runtime")

#: The named values of ``scale`` (a positive number is allowed too).
SCALE_NAMES = ("auto", "max", "none")
#: Tasks the estimator accepts for ``task`` (``hraml_core.tasks.TASKS`` plus "auto").
TASK_CHOICES = ("auto", "classification", "multilabel", "distribution")


@dataclass(frozen=True)
class Param:
    """One hyperparameter.

    ``config``: a field of :class:`~hraml_core.training.TrainConfig` (the run's settings);
    ``estimator``: a parameter of :class:`~hraml_core.HRAML`; ``cli``: a flag of ``hraml train``
    and of the torchrun entry point (``flag`` overrides ``--name-with-dashes``); ``widget``: a
    widget in the dashboard's sidebar (``advanced`` ones sit in a collapsed section).
    ``choices`` are the allowed values of a ``str`` parameter; ``open_choices`` means the library
    accepts more (e.g. relations registered at run time, checked where they are looked up).
    ``low`` / ``high`` bound numbers (``low_open`` / ``high_open``: strictly); for ``ints``
    they bound each element. ``none_ok``: None is allowed (it then means the documented default).
    ``step`` and ``display`` tune the dashboard's number input (a printf format such as "%.1e").
    """

    name: str
    kind: str
    default: object
    help: str
    group: str
    label: str = ""
    choices: tuple = ()
    open_choices: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none_ok: bool = False
    config: bool = True
    estimator: bool = True
    cli: bool = True
    widget: bool = True
    advanced: bool = False
    flag: str | None = None
    step: float | None = None
    display: str | None = None
    choice_help: Mapping[str, str] = field(default_factory=dict)
    #: Defaults that depend on the task: None (the declared default) then means ``task_defaults[task]``,
    #: or ``task_defaults["*"]`` for a task not named (see :func:`for_task`).
    task_defaults: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: unknown kind {self.kind!r}")
        if self.group not in GROUPS:
            raise ValueError(f"parameter {self.name}: unknown group {self.group!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))
        if self.choices and not self.open_choices:
            self.check(self.default)
        if self.task_defaults:
            if self.default is not None or not self.none_ok or "*" not in self.task_defaults:
                raise ValueError(f"parameter {self.name}: task defaults need default None and a '*' entry")
            for value in self.task_defaults.values():
                self.check(value)

    def for_task(self, value, task: str):
        """``value``, or the task's default when ``value`` is None and the default depends on the task."""
        if value is None and self.task_defaults:
            return self.task_defaults.get(task, self.task_defaults["*"])
        return value

    def describe_default(self) -> str:
        """The default in words: the value, or the value per task."""
        if not self.task_defaults:
            return repr(self.default)
        named = [f"{task}: {value!r}" for task, value in self.task_defaults.items() if task != "*"]
        return f"None (per task: {'; '.join(named)}; otherwise {self.task_defaults['*']!r})"

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    # -- values -------------------------------------------------------------------------------
    def parse(self, value):
        """A value from text or a widget (``"256,128"``, ``"1e-3"``, ``"auto"``, ``16.0``), checked."""
        if isinstance(value, str):
            text = value.strip()
            if self.kind in (INT, SEED, RANDOM_STATE) and text.lower() in ("none", ""):
                value = None if self.none_ok or self.kind == RANDOM_STATE else text
            elif self.kind in (INT, SEED, RANDOM_STATE):
                value = _int_text(text, self.name)
            elif self.kind == FLOAT:
                value = _float_text(text, self.name)
            elif self.kind == BOOL:
                value = _bool_text(text, self.name)
            elif self.kind == SCALE:
                value = text if text in SCALE_NAMES else _float_text(text, self.name)
            elif self.kind == INTS:
                value = _ints_text(text, self.name)
        elif self.kind in (INT, SEED) and isinstance(value, float) and value.is_integer():
            value = int(value)  # number widgets may hand back 16.0
        return self.check(value)

    def expects(self) -> str:
        """What a valid value is, in words (every error message about this parameter says it)."""
        kind = self.kind
        if self.choices and not self.open_choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif kind == BOOL:
            text = "True or False"
        elif kind == SCALE:
            text = "one of " + ", ".join(SCALE_NAMES) + " or a positive number"
        elif kind == RANDOM_STATE:
            text = "a non-negative int, a RandomState or None"
        elif kind == STR:
            text = "a string"
        elif kind == PATH:
            text = "a path"
        else:
            noun = {INT: "int", SEED: "int", INTS: "int", FLOAT: "number"}[kind]
            lo, hi = self.low, self.high
            if lo == 0 and self.low_open and hi is None:
                text = f"a positive {'finite ' if kind == FLOAT else ''}{noun}"
            elif lo == 0 and hi is None:
                text = f"a non-negative {noun}"
            elif lo == 1 and hi is None and kind != FLOAT:
                text = f"a positive {noun}"
            elif lo is not None and hi is not None:
                text = f"{'an' if noun == 'int' else 'a'} {noun} in {'(' if self.low_open else '['}{lo:g}, {hi:g}{')' if self.high_open else ']'}"
            elif lo is not None:
                text = f"{'an' if noun == 'int' else 'a'} {noun} {'>' if self.low_open else '>='} {lo:g}"
            else:
                text = f"{'an' if noun == 'int' else 'a'} {noun}"
            if kind == INTS:
                plural = re.sub(r"\bint\b", "ints", re.sub(r"^an? ", "", text))  # "a positive int" -> "positive ints"
                text = f"{plural} (a sequence, or separated by commas)"
        if self.none_ok and kind != RANDOM_STATE:
            text += " or None"
        return text

    def _fail(self, value):
        return ValueError(f"{self.name} must be {self.expects()}, got {value!r}")

    def check(self, value):
        """``value`` normalised (ints to a tuple, numpy scalars to Python), or a ValueError naming the
        parameter and what it must be."""
        given = value
        if value is None:
            if self.none_ok or self.kind == RANDOM_STATE:
                return None
            raise self._fail(value)
        kind = self.kind
        if kind == STR and self.open_choices:
            return value  # a registered name or an object; checked where it is looked up
        try:
            if kind in (INT, SEED):
                value = _as_int(value)
            elif kind == FLOAT:
                value = _as_float(value)
            elif kind == BOOL:
                if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
                    raise ValueError
                value = bool(value)
            elif kind == STR:
                if not isinstance(value, str):
                    raise ValueError
            elif kind == PATH:
                if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
                    raise ValueError
                return value
            elif kind == INTS:
                value = _as_ints(value, self.name)
                for v in value:
                    self._check_bounds(v)
                return value
            elif kind == SCALE:
                if isinstance(value, str):
                    if value not in SCALE_NAMES:
                        raise ValueError
                    return value
                value = _as_float(value)
                if not value > 0:
                    raise ValueError
                return value
            elif kind == RANDOM_STATE:
                if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                    if value < 0:
                        raise ValueError
                    return int(value)
                return value  # a numpy RandomState / Generator: sklearn's check_random_state takes it
            if self.choices and value not in self.choices:
                raise ValueError
            if kind in (INT, SEED, FLOAT):
                self._check_bounds(value)
        except ValueError as exc:
            if str(exc):  # already names the problem (e.g. text that is not a list of ints)
                raise
            raise self._fail(given) from None
        return value

    def _check_bounds(self, value) -> None:
        lo, hi = self.low, self.high
        if lo is not None and (value < lo or (self.low_open and value == lo)):
            raise ValueError
        if hi is not None and (value > hi or (self.high_open and value == hi)):
            raise ValueError

    def to_json(self, value):
        """``value`` as JSON (tuples become lists; objects that are not plain values are refused)."""
        if isinstance(value, tuple):
            return list(value)
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise ValueError(f"{self.name}={value!r} cannot be written as JSON (only plain values can be saved)")

    def describe_type(self) -> str:
        """The type line of the numpydoc entry."""
        if self.choices and not self.open_choices:
            text = "{" + ", ".join(repr(c) for c in self.choices) + "}"
        else:
            text = {
                INT: "int", FLOAT: "float", STR: "str", BOOL: "bool", INTS: "sequence of int",
                SCALE: "{'auto', 'max', 'none'} or float", SEED: "int", RANDOM_STATE: "int, RandomState or None",
                PATH: "str or path",
            }[self.kind]
            if self.open_choices:
                text += " or callable"
        if self.none_ok and self.kind != RANDOM_STATE:
            text += " or None"
        return f"{text}, default {self.describe_default()}"


# -- parsing helpers ---------------------------------------------------------------------------
# Each raises a bare ValueError; Param.check turns it into one message naming the parameter.
def _as_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError
    return int(value)


def _as_float(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError
    return float(value)


def _as_ints(value, name: str) -> tuple[int, ...]:
    if isinstance(value, str):
        return _ints_text(value, name)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),)
    if isinstance(value, Iterable):
        return tuple(_as_int(v) for v in value)
    raise ValueError


def _int_text(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {text!r}") from None
        if not value.is_integer():
            raise ValueError(f"{name} must be an integer, got {text!r}") from None
        return int(value)


def _float_text(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _bool_text(text: str, name: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {text!r}")


def _ints_text(text: str, name: str) -> tuple[int, ...]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"{name} must be integers separated by commas, got {text!r}") from None


# -- the declaration -----------------------------------------------------------------------------
PARAMS: tuple[Param, ...] = (
    # relation
    Param("relation", STR, "l1", "Label relation g that squared embedding distances are trained to match "
          "(hraml_core.relations.RELATIONS, or a callable); 'l1' is the paper's eq. 11.",
          "relation", label="relation", open_choices=True),
    Param("scale", SCALE, "auto", "Factor applied to g: 'auto' keeps the paper's g when it is at most 2 and "
          "shrinks it into [0, 2] otherwise; 'max' maps the largest g to 2; 'none' keeps g; or a number.",
          "relation", advanced=True),
    # encoder
    Param("hidden", INTS, (256,), "Widths of the tanh hidden layers (empty for a single linear layer).",
          "encoder", label="hidden sizes", low=1),
    Param("dim", INT, 64, "Embedding size.", "encoder", label="embedding size", low=1, high=4096),
    Param("out_activation", STR, "tanh", "Activation of the output layer before the L2 normalisation "
          "(tanh, as in the authors' code, or none).", "encoder", label="output activation",
          choices=("tanh", "none")),
    Param("input_skip", FLOAT, None, "Weight s of the input's own geometry in the metric: the embedding is "
          "[sqrt(s) x / ||x||, sqrt(1 - s) f(x)], so squared distances are s times the inputs' cosine geometry plus "
          "1 - s times the trained ones. Training aligns f alone; the skip is added at the output. Label sets "
          "default to 0.5: their relations say less about the features than classes do (many label sets are "
          "unique) and an embedding trained on them alone lost to raw features on most multi-label sets "
          "(docs/RESULTS.md, multi-label quality).", "encoder", label="input skip weight", low=0.0, high=1.0,
          high_open=True, none_ok=True, widget=False, task_defaults={"multilabel": 0.5, "*": 0.0}),
    Param("init", STR, "paper", "Weight initialisation: 'paper' draws weights from U[-0.2, 0.2] with zero "
          "biases (section 5.1); 'torch' keeps PyTorch's default.", "encoder", label="initialisation",
          choices=("paper", "torch"), advanced=True),
    # pairs
    Param("sampler", STR, "batch", "Which pairs enter a step's loss (hraml_core.samplers).", "pairs",
          label="pair sampler", choices=("batch", "hard", "neighbors", "pairs"),
          choice_help={
              "batch": "all pairs inside a shuffled mini-batch (fast; default)",
              "hard": "online mining inside each mini-batch: per sample, its nearest same-label and other-label "
                      "partners in the current embedding",
              "neighbors": "the authors' pairs: each sample with partners among its nearest neighbours in the "
                           "input space, chosen once over the whole training set, batch_size pairs per step",
              "pairs": "one random pair per step: the paper's Algorithm 1 (slow, for teaching)",
          }),
    Param("batch_size", INT, 256, "Samples embedded per step (samplers 'batch' and 'hard'); pairs per step "
          "(sampler 'neighbors').", "pairs", label="batch size", low=2, step=32),
    Param("partners", INT, 4, "Partners per sample (samplers 'hard' and 'neighbors').", "pairs",
          label="partners per sample", low=1),
    Param("balance", FLOAT, 0.5, "Fraction of same-label partners for classes (samplers 'hard' and "
          "'neighbors').", "pairs", low=0.0, high=1.0, advanced=True),
    Param("sampling_power", FLOAT, 1.0, "For label sets and distributions (samplers 'hard' and 'neighbors'): "
          "partners drawn with probability proportional to (1 / (g + 1e-6)) ** sampling_power; 0 draws them "
          "uniformly.", "pairs", label="sampling power", low=0.0, advanced=True),
    # optimiser
    Param("optimizer", STR, "adam", "Optimiser: adam; amsgrad (Adam without the sudden loss spikes that "
          "Adam makes in long runs once converged); sgd with momentum (the authors' choice).", "optimiser",
          label="optimiser", choices=("adam", "amsgrad", "sgd")),
    Param("lr", FLOAT, 3e-3, "Learning rate.", "optimiser", label="learning rate", low=0.0, low_open=True,
          step=1e-4, display="%.1e"),
    Param("lr_drop_epoch", INT, None, "Epoch after which the learning rate is divided by ten (the authors' 0.01 "
          "then 0.001); None keeps it constant. An epoch is the sampler's steps_per_epoch steps.", "optimiser",
          label="learning-rate drop epoch", low=1, none_ok=True, advanced=True, widget=False),
    Param("momentum", FLOAT, 0.9, "Momentum of sgd.", "optimiser", low=0.0, high=1.0, high_open=True, advanced=True),
    Param("weight_decay", FLOAT, 5e-5, "lambda of eq. 5, on the per-pair mean of the alignment term.",
          "optimiser", label="weight decay", low=0.0, step=1e-5, display="%.1e"),
    Param("input_noise", FLOAT, None, "Gaussian noise added to each step's training inputs, with a standard "
          "deviation of input_noise nearest-neighbour distances (the median over a sample of rows) spread over "
          "the features: a regulariser against fitting the relation of a few rows. Label sets default to 1.0, "
          "for the reason given under input_skip.", "optimiser", label="input noise", low=0.0, none_ok=True,
          widget=False, task_defaults={"multilabel": 1.0, "*": 0.0}),
    # training (the estimator's fit)
    Param("max_epochs", INT, 100, "Passes over the training set (an epoch of 'pairs' is n single-pair steps).",
          "training", label="epochs", low=1, config=False, widget=False, flag="--epochs"),
    Param("early_stopping", BOOL, False, "Hold out validation_fraction of the training data, evaluate the "
          "task's metric after each epoch, stop after n_iter_no_change epochs without improvement and keep "
          "the best weights.", "training", label="early stopping", config=False, widget=False),
    Param("validation_fraction", FLOAT, 0.1, "Held-out fraction for early stopping.", "training",
          label="validation fraction", low=0.0, high=1.0, low_open=True, high_open=True, config=False, widget=False),
    Param("n_iter_no_change", INT, 10, "Epochs without improvement before early stopping stops.", "training",
          label="patience", low=1, config=False, widget=False),
    # runtime
    Param("seed", SEED, 0, "Seed of the initialisation and of the pair sampling (None: a fresh one).",
          "runtime", none_ok=True, low=0, high=2**31 - 1, estimator=False, cli=False),
    Param("task", STR, "auto", "The learning task; 'auto' detects it from the targets.", "runtime",
          choices=TASK_CHOICES, config=False, cli=False, widget=False),
    Param("random_state", RANDOM_STATE, None, "Seeds initialisation and sampling; an int makes fits "
          "reproducible.", "runtime", label="random state", config=False, cli=False, widget=False),
    Param("n_threads", INT, 1, "torch threads while fitting (one is fastest on small machines; 0 leaves "
          "torch's setting).", "runtime", label="torch threads", low=0, config=False, widget=False),
    Param("device", STR, "cpu", "torch device to train on ('cuda' where available).", "runtime",
          open_choices=True, widget=False),
    Param("check_every", INT, None, "Steps between reads of the loss for the divergence guard; None: every "
          "step on the CPU, every 16 on a GPU, where each read waits for the device to finish its queue, and "
          "for the one-pair `pairs` sampler, whose step does little arithmetic beside the copy of the weights each "
          "check saves.",
          "runtime", label="loss check interval", low=1, none_ok=True, estimator=False, cli=False, widget=False),
    Param("pair_memory_mb", FLOAT, 1024.0, "Memory (MiB) a step's B x B pair matrices may take: larger batches "
          "compute the all-pairs loss in row blocks, with the same value and gradient.", "runtime",
          label="pair memory (MiB)", low=0.0, low_open=True, widget=False),
    Param("cuda_graphs", BOOL, False, "On a GPU, capture the batch sampler's step in a CUDA graph and replay it "
          "(one launch instead of dozens per step); ignored on the CPU and in data-parallel runs.", "runtime",
          label="CUDA graphs",
          widget=False),
    Param("verbose", BOOL, False, "Print the loss after each epoch.", "runtime", config=False, cli=False,
          widget=False),
    Param("log_dir", PATH, None, "Record each fit as a run directory there (hraml_core.runs, docs/RUNS.md): the "
          "loss of every step, the validation score of early stopping, up to 200 snapshots of the geometry spread "
          "over the fit, and the final weights as a checkpoint. A later fit replaces the run (so give clones in a "
          "grid search different folders). Opened by hraml_core.runs.open_run.", "runtime", label="run directory",
          none_ok=True, config=False, cli=False, widget=False),
)


def by_name(params: Sequence[Param] = PARAMS) -> dict[str, Param]:
    return {p.name: p for p in params}


def get(name: str, params: Sequence[Param] = PARAMS) -> Param:
    try:
        return by_name(params)[name]
    except KeyError:
        raise KeyError(f"no parameter named {name!r}") from None


def choices(name: str) -> tuple:
    """The allowed values of a declared parameter (e.g. ``choices("sampler")``)."""
    return get(name).choices


def defaults(params: Sequence[Param] = PARAMS, where: str = "config") -> dict:
    return {p.name: p.default for p in params if getattr(p, where)}


# -- derivations ----------------------------------------------------------------------------------
def config_class(params: Sequence[Param], base: type, name: str = "TrainConfig", module: str | None = None) -> type:
    """A frozen dataclass with one field per ``config`` parameter (declared order and defaults).

    ``base`` supplies the methods (``__post_init__`` normalises and checks every field through its
    declaration, then calls ``base._check`` for rules that span fields).
    """
    import dataclasses

    fields = []
    for p in params:
        if p.config:
            default = p.default
            fields.append((p.name, object, dataclasses.field(default=default)))
    cls = dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True)
    cls.__params__ = tuple(p for p in params if p.config)
    if module:
        cls.__module__ = module
    return cls


def estimator_params(params: Sequence[Param] = PARAMS) -> tuple[Param, ...]:
    return tuple(p for p in params if p.estimator)


def numpydoc_parameters(params: Sequence[Param]) -> str:
    """The "Parameters" section of a numpydoc docstring for the estimator's parameters, by group."""
    import textwrap

    lines = ["Parameters", "----------"]
    for group in GROUPS:
        for p in params:
            if p.estimator and p.group == group:
                lines.append(f"{p.name} : {p.describe_type()}")
                body = p.help
                if p.choice_help:
                    body += " " + "; ".join(f"'{k}': {v}" for k, v in p.choice_help.items()) + "."
                lines += textwrap.wrap(body, 92, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser, params: Sequence[Param] = PARAMS,
                  helps: Mapping[str, str] | None = None, select=None) -> None:
    """One flag per ``cli`` parameter (of those ``select(param)`` keeps), defaulting to the declared
    default; ``helps`` overrides a help text.

    Values are parsed and checked by the declaration, so a bad value is an argparse error naming
    the flag.
    """
    helps = helps or {}
    group = parser.add_argument_group("HRAML parameters")
    for p in params:
        if not p.cli or (select is not None and not select(p)):
            continue
        text = helps.get(p.name, p.help)
        kw = {"dest": p.name, "default": p.default, "help": f"{text} (default {_flag_default(p)})"}
        if p.kind == BOOL:
            group.add_argument(p.cli_flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if p.choices and not p.open_choices:
            kw["choices"] = p.choices
        kw["type"] = _argparse_type(p)
        if not (p.choices and not p.open_choices):
            kw["metavar"] = {INTS: "N[,N...]", INT: "N", SEED: "N", FLOAT: "X", SCALE: "auto|max|none|X"}.get(p.kind, "NAME")
        group.add_argument(p.cli_flag, **kw)


def _flag_default(p: Param) -> str:
    if p.task_defaults:
        return p.describe_default()
    if p.kind == INTS:
        return ",".join(map(str, p.default))
    return str(p.default)


def _argparse_type(p: Param):
    def parse(text: str):
        try:
            return p.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = p.kind  # argparse names the type in its messages
    return parse


def values_from_args(args: argparse.Namespace, params: Sequence[Param] = PARAMS, where: str = "cli") -> dict:
    """The values of the flags :func:`add_arguments` made, by parameter name; ``where="config"``
    keeps only the run's settings (those of TrainConfig)."""
    return {p.name: getattr(args, p.name) for p in params
            if p.cli and getattr(p, where) and hasattr(args, p.name)}


def config_to_dict(config, params: Sequence[Param] | None = None, describe_objects: bool = False) -> dict:
    """A config's declared fields as JSON-ready values (for a model folder or run directory).

    A value that is not a plain value (a custom relation function) raises ValueError, or with
    ``describe_objects`` is recorded by its name: enough to show, not to rebuild the run.
    """
    params = params if params is not None else config.__params__
    out = {}
    for p in params:
        if not p.config:
            continue
        value = getattr(config, p.name)
        try:
            out[p.name] = p.to_json(value)
        except ValueError:
            if not describe_objects:
                raise
            out[p.name] = str(getattr(value, "name", None) or getattr(value, "__name__", None) or repr(value))
    return out


def config_from_dict(cls: type, values: Mapping) -> object:
    """``cls(**values)`` for a config class, refusing names it does not declare (a newer format)."""
    known = {p.name for p in cls.__params__}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown training parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**dict(values))


def check_values(obj, params: Sequence[Param]) -> dict:
    """The declared parameters' values read from ``obj``'s attributes, checked; one ValueError that
    names every bad one."""
    values, problems = {}, []
    for p in params:
        try:
            values[p.name] = p.check(getattr(obj, p.name))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return values


def declare_parameters(params: Sequence[Param]):
    """Class decorator: the estimator's ``__init__`` takes the ``estimator`` parameters as keyword
    arguments with their declared defaults and stores them unchanged (scikit-learn's contract:
    checks happen in ``fit``), and ``{parameters}`` in the class docstring becomes their numpydoc
    section. scikit-learn reads the parameter names from the signature set here."""
    import inspect

    declared = estimator_params(params)
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        + [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default) for p in declared]
    )

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)  # a TypeError for unknown or positional arguments
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name != "self":
                setattr(self, name, value)

    def decorate(cls):
        __init__.__signature__ = signature
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        __init__.__module__ = cls.__module__
        cls.__init__ = __init__
        cls.__declared_params__ = declared
        own = cls.__dict__.get("__doc__") or ""
        template = own if "{parameters}" in own else getattr(cls, "__doc_template__", own)
        cls.__doc_template__ = template
        cls.__doc__ = template.replace("{parameters}", _indent(numpydoc_parameters(declared), "    ").lstrip())
        return cls

    return decorate


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())
