"""Each hyperparameter is declared once (hraml_core.params); everything else is derived from it."""
from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys

import pytest

from hraml_core import HRAML, params
from hraml_core.training import TrainConfig, _ConfigMethods
from hraml_dashboard import settings_form

NEW = params.Param("warmup_steps", params.INT, 7, "Steps at a reduced learning rate.", "optimiser",
                   label="warm-up steps", low=0)


def test_a_new_declared_parameter_appears_everywhere():
    extended = params.PARAMS + (NEW,)
    # the run's settings
    Config = params.config_class(extended, _ConfigMethods, "ExtendedConfig", __name__)
    assert Config().warmup_steps == 7 and Config(warmup_steps=3).warmup_steps == 3
    with pytest.raises(ValueError, match="warmup_steps must be a non-negative int, got -1"):
        Config(warmup_steps=-1)

    # the estimator's parameters and its docstring
    @params.declare_parameters(extended)
    class Extended(HRAML):
        pass

    assert Extended().get_params()["warmup_steps"] == 7
    assert Extended(warmup_steps=2).get_params()["warmup_steps"] == 2
    assert "warmup_steps : int, default 7" in Extended.__doc__
    assert "Steps at a reduced learning rate." in Extended.__doc__

    # the command-line flags (hraml train and the torchrun entry point build theirs the same way)
    parser = argparse.ArgumentParser()
    params.add_arguments(parser, extended)
    args = parser.parse_args(["--warmup-steps", "5"])
    assert params.values_from_args(args, extended)["warmup_steps"] == 5
    assert "--warmup-steps" in parser.format_help()

    # the dashboard's widgets
    spec = {w.key: w for w in settings_form.widget_specs(extended)}["warmup_steps"]
    assert (spec.widget, spec.label, spec.default, spec.min_value) == (settings_form.INT, "Warm-up steps", 7, 0)
    assert settings_form.config_from_values({"warmup_steps": 4.0}, extended, Config).warmup_steps == 4

    # the saved config of a model folder / run directory
    saved = params.config_to_dict(Config(warmup_steps=9))
    assert json.loads(json.dumps(saved))["warmup_steps"] == 9
    assert params.config_from_dict(Config, saved) == Config(warmup_steps=9)


def test_declared_defaults_are_the_libraries_and_the_cli_s():
    from hraml_core.cli import build_parser

    model = HRAML().get_params()
    config = TrainConfig()
    args = build_parser().parse_args(["train"])
    for p in params.PARAMS:
        if p.estimator:
            assert model[p.name] == p.default, p.name
        if p.config:
            assert getattr(config, p.name) == p.default, p.name
        if p.cli:
            assert getattr(args, p.name) == p.default, p.name
    sig = inspect.signature(HRAML)
    assert list(sig.parameters) == [p.name for p in params.PARAMS if p.estimator]
    with pytest.raises(TypeError):
        HRAML(no_such_parameter=1)


def test_values_are_parsed_and_checked_with_the_parameter_named():
    assert params.get("hidden").parse("64, 32") == (64, 32)
    assert params.get("dim").parse(16.0) == 16
    assert params.get("scale").parse("0.5") == 0.5 and params.get("scale").parse("auto") == "auto"
    assert params.get("early_stopping").parse("yes") is True
    cases = [
        ("lr", 0, "lr must be a positive finite number, got 0"),
        ("momentum", 1.0, r"momentum must be a number in \[0, 1\), got 1.0"),
        ("batch_size", 1, "batch_size must be an int >= 2, got 1"),
        ("sampler", "triplets", "sampler must be one of batch, hard, neighbors, pairs, got 'triplets'"),
        ("dim", 2.5, "dim must be an int in"),
        ("early_stopping", "maybe", "early_stopping must be true or false"),
        ("hidden", [64, -1], r"hidden must be positive ints \(a sequence, or separated by commas\), got \[64, -1\]"),
    ]
    for name, value, message in cases:
        with pytest.raises(ValueError, match=message):
            params.get(name).parse(value)


def test_a_bad_flag_is_an_argparse_error_naming_it(capsys):
    from hraml_core.cli import main

    assert main(["train", "--batch-size", "1"]) == 2
    assert "argument --batch-size: batch_size must be an int >= 2, got 1" in capsys.readouterr().err


def test_the_command_line_builds_its_parser_without_torch():
    code = "import sys; from hraml_core.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_saved_models_keep_the_declared_parameters(tmp_path):
    import numpy as np

    X = np.random.default_rng(0).normal(size=(40, 5))
    y = np.arange(40) % 2
    model = HRAML(hidden="8", dim=4, max_epochs=1, random_state=3).fit(X, y)
    loaded = HRAML.load(model.save(tmp_path / "m.safetensors"))
    assert loaded.get_params() == {**model.get_params(), "hidden": (8,)}
