"""Where things live: the repository, the dataset manifest and the data directory.

The data directory is resolved as: explicit argument (``--data-dir``) > environment variable
``HRAML_DATA_DIR`` > ``<repo>/datasets/files``. Inside it, each file-based dataset has a folder named
after it (``DIR/binalpha/binaryalphadigs.mat``), the layout of ``../shared/data``.
"""
from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the project is installed editable, so this is the checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The dataset manifest; read by :mod:`hraml_core.data.registry`.
REGISTRY_PATH = REPO_ROOT / "datasets" / "registry.toml"
#: Where data files go when nothing else is said (git-ignored).
DEFAULT_DATA_DIR = REPO_ROOT / "datasets" / "files"

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
    """The data directory: ``explicit`` > ``$HRAML_DATA_DIR`` > ``<repo>/datasets/files``."""
    return resolve_data_dir(explicit)[0]
