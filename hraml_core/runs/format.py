"""The run directory format, declared once: names, version, statuses and record schemas.

docs/RUNS.md describes it for people; this module is what the writer and the reader both use, so
the two cannot drift apart. Everything here is plain Python (no numpy, no torch): the reader of a
runs list and the ``hraml`` command line import it cheaply.

A run directory::

    run.json                      one JSON object, replaced atomically (FORMAT, VERSION, status...)
    scalars.jsonl                 one JSON object per line, appended: step, time, loss, metrics
    split.json                    optional: the rows trained on and held out
    snapshots/probe.safetensors   E and the probe / display rows, written once
    snapshots/step-000001234.safetensors   A and the display embeddings at one step
    checkpoints/step-000001234.safetensors an HRAML model file (HRAML.save) at one step
    model.safetensors, preprocess.safetensors   the model folder of `hraml train` / torchrun
"""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

FORMAT = "hraml-run"
#: Bumped only by a change that an older reader would misread; added optional fields, columns,
#: tensors or files keep it. A reader refuses a run of a higher version than its own.
VERSION = 1

RUN_FILE = "run.json"
SCALARS_FILE = "scalars.jsonl"
SPLIT_FILE = "split.json"
SNAPSHOT_DIR = "snapshots"
PROBE_FILE = "probe.safetensors"  # inside SNAPSHOT_DIR
CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.safetensors"
PREPROCESS_FILE = "preprocess.safetensors"
#: Files a writer owns at the top of a run directory; starting a new run there removes them (and
#: the step files of SNAPSHOT_DIR and CHECKPOINT_DIR) and nothing else.
OWNED_FILES = (SCALARS_FILE, SPLIT_FILE, MODEL_FILE, PREPROCESS_FILE)

# Statuses recorded in run.json. CREATED: prepared (dataset, split) but not started; its first
# writer keeps what was prepared. A RUNNING run whose writer stopped refreshing run.json is LOST
# (derived by the reader, never written).
CREATED, RUNNING, STOPPED, FINISHED, FAILED = "created", "running", "stopped", "finished", "failed"
STATUSES = (CREATED, RUNNING, STOPPED, FINISHED, FAILED)
LOST = "lost"

#: Fields of run.json that only the writer that creates a run sets.
IDENTITY_FIELDS = ("format", "version", "run_id", "created")
#: run.json fields (all present in a written file; null where unknown).
RUN_FIELDS = (
    "format", "version", "run_id", "name", "source", "status", "message", "created", "updated",
    "heartbeat_every_s", "task", "metric", "dataset", "config", "progress", "raw_metric", "info", "results",
)
#: Keys of run.json's ``progress``, kept current by the writer so a runs list needs no other file.
PROGRESS_FIELDS = ("step", "epoch", "loss", "metric", "best_metric", "best_step", "snapshots", "last_snapshot_step")

#: Columns every scalars row has; the others are optional (absent keys read as NaN).
SCALAR_REQUIRED = ("step", "time")
#: Optional columns with a fixed meaning. The held-out metric is a column named after it
#: (``accuracy``, ``average_precision``, ...: run.json's ``metric``); early stopping's score on the
#: part of the training set it holds out is ``val_<metric>``.
SCALAR_OPTIONAL = ("epoch", "loss", "pairs_seen")

SNAPSHOT_FORMAT = "hraml-run-snapshot"
#: Tensors of a step file (float32): A (p x p) squared embedding distances between the probe rows;
#: embeddings (m x dim) of the display rows.
SNAPSHOT_TENSORS = ("A", "embeddings")
#: Metadata of a step file (strings, as safetensors requires): step, time, and optional numbers.
SNAPSHOT_METADATA = ("format", "version", "step", "time", "epoch", "loss", "metric")
#: Tensors of the probe file: E (p x p float32, the scaled relation between the probe rows, what A
#: is trained to match); probe_index (p) and embedding_index (m), int64 rows of the data (of the
#: whole dataset where the writer knows it, else of the training set); probe_labels (p) and
#: embedding_labels (m), int64 label codes: the index of the class (decoded by the metadata's
#: ``classes``) or of the dominant label.
PROBE_TENSORS = ("E", "probe_index", "probe_labels", "embedding_index", "embedding_labels")

_STEP_FILE = re.compile(r"^step-(\d{9,})\.safetensors$")


def step_file(step: int) -> str:
    """``step-000001234.safetensors``: zero-padded so that names sort as steps."""
    if step < 0:
        raise ValueError(f"a step is >= 0, got {step}")
    return f"step-{int(step):09d}.safetensors"


def step_of(name: str) -> int | None:
    """The step of a step file's name, or None for any other name (temporary files included)."""
    m = _STEP_FILE.match(name)
    return int(m.group(1)) if m else None


def stale_after(heartbeat_every_s: float | None) -> float:
    """Seconds without a refresh of run.json after which a running run counts as lost."""
    return max(15.0, 5.0 * float(heartbeat_every_s or 0.0))


def check_run_info(info, where) -> dict:
    """``info`` if it is a run.json this version can read; ValueError naming ``where`` otherwise."""
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{where}: not an HRAML run (no \"format\": \"{FORMAT}\" in {RUN_FILE})")
    version = info.get("version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{where}: bad format version {version!r}")
    if version > VERSION:
        raise ValueError(f"{where}: written in run format version {version}; this hraml reads up to {VERSION}")
    return info


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it over ``path``: a reader sees
    the old file or the new one, never a part (os.replace is atomic on POSIX and Windows)."""
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def temporary_beside(path: Path) -> str:
    """A fresh temporary file name in ``path``'s folder (starts with '.', ends with '.tmp'). Not
    tempfile.mkstemp: its files are private (0600), and the renamed file keeps the mode."""
    path = Path(path)
    return str(path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def is_live(info: dict, now: float) -> bool:
    """Whether run.json ``info`` is of a run still being written: running, and refreshed lately."""
    if info.get("status") != RUNNING:
        return False
    updated = info.get("updated")
    return isinstance(updated, (int, float)) and now - updated < stale_after(info.get("heartbeat_every_s"))
