"""``hraml runs``: the run directories under a folder, one line each (or JSON), from their run.json."""
from __future__ import annotations

import argparse
import json
import sys
import time

from . import CommandError, text_table


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "runs", help="list the recorded runs under a folder",
        description="List the run directories at or under ROOT (hraml train --out, the dashboard, HRAML(log_dir=), "
                    "torchrun --out): status, task, dataset, relation, step, loss and held-out metric, read from each "
                    "run's run.json. A run still being written shows `running`; one whose writer went silent, "
                    "`lost`. Open one in the dashboard's Runs page, or in Python with hraml_core.runs.open_run.",
    )
    p.add_argument("root", nargs="?", default=None, metavar="ROOT",
                   help="folder to list (default: $HRAML_RUNS_DIR, else ./runs)")
    p.add_argument("--json", action="store_true", help="one JSON object per run, one per line (every field)")
    p.set_defaults(func=run_runs)


def _age(updated: float | None, now: float) -> str:
    """How long ago, in the largest whole unit (``-`` when unknown)."""
    if updated is None:
        return "-"
    seconds = max(0.0, now - float(updated))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def _number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def run_runs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..runs import list_runs
    from ..runs.format import RUN_FILE
    from ..runs.root import runs_root

    root = Path(args.root).expanduser() if args.root else runs_root()
    unreadable: list = []
    try:
        found = list_runs(root, unreadable=unreadable)
    except ValueError as exc:
        raise CommandError(f"{exc}" + ("" if args.root else " (set $HRAML_RUNS_DIR, or give ROOT)")) from None
    for folder, error in unreadable:  # a damaged run is said, not left out in silence
        print(f"hraml runs: warning: {folder}: {RUN_FILE} could not be read: {error}", file=sys.stderr)
    if args.json:
        for s in found:
            print(json.dumps({**s.as_dict(), "path": str(s.path)}))
        return 0
    if not found:
        print(f"no runs under {root}")
        return 0
    now = time.time()
    rows = [["NAME", "STATUS", "TASK", "DATASET", "RELATION", "STEP", "LOSS", "METRIC", "UPDATED"]]
    for s in found:
        metric = "-" if s.last_metric is None else f"{s.metric} {s.last_metric:.4f}"
        rows.append([s.name, s.status or "-", s.task or "-", s.dataset or "-", s.relation or "-",
                     _number(s.step, ","), _number(s.loss, ".4g"), metric, _age(s.updated, now)])
    print(f"{len(found)} run{'s' if len(found) != 1 else ''} under {root}")
    print(text_table(rows))
    return 0
