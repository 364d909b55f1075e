"""Wall-clock time of the full ``hraml reproduce`` run: every dataset at hand, both splits, both
protocols.

Runs ``python -m hraml_core reproduce`` in a subprocess (default: the eight datasets of
``hraml reproduce``, methods hraml and raw, 10 folds, ``--split cv,fixed``, ``--protocol
project,authors``) and times it, optionally once per worker count so that worker counts are
compared on the same machine, back to back. Budget: 30 minutes (issue 8).

    python bench/bench_reproduce.py --workers 2             # time the full run, print its tables
    python bench/bench_reproduce.py --workers 1,2 --datasets binalpha --max-folds 4   # compare
    python bench/bench_reproduce.py --write                  # also rewrite docs/BENCHMARKS.md's section

Reads data from --data-dir (default ../shared/data beside the repository).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
SECTION = "Reproduce run time"
DATASETS = "binalpha,caltech101,MnistData_05,news20,TDT2_20,uspst,emotions,flags"
BUDGET_MINUTES = 30


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux
        return "n/a"


def time_run(args, workers: int, out: Path) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "hraml_core", "reproduce", "--datasets", args.datasets, "--methods", args.methods,
           "--protocol", args.protocol, "--split", args.split, "--seed", str(args.seed),
           "--folds", str(args.folds), "--data-dir", str(args.data_dir), "--out", str(out), "--no-progress",
           "--workers", str(workers)]
    if args.max_folds:
        cmd += ["--max-folds", str(args.max_folds)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"reproduce failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, proc.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=DATASETS)
    ap.add_argument("--methods", default="hraml,raw")
    ap.add_argument("--protocol", default="project,authors")
    ap.add_argument("--split", default="cv,fixed")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fold split")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--max-folds", type=int, default=None)
    ap.add_argument("--workers", default="1", help="comma-separated worker counts to time, one run each")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=None, help="keep the last run's results here")
    ap.add_argument("--write", action="store_true", help=f"rewrite the '{SECTION}' section of docs/BENCHMARKS.md")
    args = ap.parse_args(argv)
    rows, last = [], ""
    for w in [int(x) for x in args.workers.split(",")]:
        load = _load()
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            elapsed, last = time_run(args, w, out)
        rows.append((w, elapsed, load))
        print(f"workers={w}: {elapsed:.0f} s (1/5/15-min load average at start {load})", flush=True)
    print(last)
    if args.write:
        folds = f"first {args.max_folds} of {args.folds}" if args.max_folds else str(args.folds)
        table = "\n".join(f"| {w} | {s:.0f} s ({s / 60:.1f} min) | {load} |" for w, s, load in rows)
        verdict = "\n".join(line.strip() for line in last.splitlines()
                            if line.strip().startswith(("protocol ", "best of the protocols")))
        body = (
            f"`hraml reproduce --datasets {args.datasets} --methods {args.methods} --protocol {args.protocol} "
            f"--split {args.split} --folds {args.folds} --seed {args.seed}` ({folds} folds), timed end to end in a "
            f"subprocess by `python bench/bench_reproduce.py --write`. Budget: {BUDGET_MINUTES} minutes.\n\n"
            f"Machine: {machine()}; shared with other work, so times carry noise.\n\n"
            f"| workers | wall time | load average at start (1/5/15 min) |\n|---|---|---|\n{table}\n\n"
            f"{verdict}"
        )
        write_section(SECTION, body)
        print(f"wrote the '{SECTION}' section of docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
