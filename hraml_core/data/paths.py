"""Where things live: the dataset manifest (package data) and the data directory.

The data directory is resolved as: explicit argument (``--data-dir``) > environment variable
``HRAML_DATA_DIR`` > a default: ``datasets/files`` of the source checkout when the package runs
from one, else ``$XDG_DATA_HOME/hraml-explorer/datasets`` (``~/.local/share/...``) for an
installed package. Inside it, each file-based dataset has a folder named after it
(``DIR/binalpha/binaryalphadigs.mat``), the layout of ``../shared/data``.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: The dataset manifest, shipped inside the package; read by :mod:`hraml_core.data.registry`.
#: (A wheel installs it as a plain file, so it has a real path.)
REGISTRY_PATH = Path(str(resources.files(__package__) / "registry.toml"))


def _default_data_dir() -> Path:
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "datasets").is_dir():
        return checkout / "datasets" / "files"
    base = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(base) / "hraml-explorer" / "datasets"


#: Where data files go when nothing else is said.
DEFAULT_DATA_DIR = _default_data_dir()

ENV_DATA_DIR = "HRAML_DATA_DIR"
ENV_DATASETS_URL = "HRAML_DATASETS_URL"


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The data directory and where that choice came from (``"argument"``, the env var, ``"default"``)."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser(), "argument"
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        return Path(env).expanduser(), ENV_DATA_DIR
    return DEFAULT_DATA_DIR, "default"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: ``explicit`` > ``$HRAML_DATA_DIR`` > the default (see the module docstring)."""
    return resolve_data_dir(explicit)[0]
