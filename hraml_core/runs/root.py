"""Where runs are kept when nobody says: ``$HRAML_RUNS_DIR``, else ``./runs``.

``hraml train`` writes ``<root>/<dataset>`` there, ``hraml runs`` lists it, and the dashboard lists
and records into it (``hraml dashboard --runs DIR`` sets the variable for its server).
"""
from __future__ import annotations

import os
from pathlib import Path

#: The environment variable naming the runs folder.
RUNS_ENV = "HRAML_RUNS_DIR"
#: The runs folder without it, relative to the working directory.
DEFAULT_RUNS_DIR = "runs"


def runs_root() -> Path:
    """The runs folder (absolute): ``$HRAML_RUNS_DIR``, else ``./runs``. Not created here."""
    return Path(os.environ.get(RUNS_ENV) or DEFAULT_RUNS_DIR).expanduser().resolve()
