"""Run directories: what recording snapshots costs a training loop, and what reading them back costs a replay.

    python bench/bench_runs.py [--write] [--snapshots 200] [--steps-per-snapshot 10]

Target (issue 10): replaying 200 snapshots of digits, slider to frame in <= 0.3 s. This script
measures the read part of that (a fresh ``open_run``, then ``snapshot(step)`` at random steps, as
a slider does); drawing the figures is the dashboard's (bench/bench_dashboard.py). It also times
the writer against the training step of the same run: a digits run with the default settings,
a snapshot every ``--steps-per-snapshot`` steps, each of 300 probe rows (A, E) and 1797 display rows.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

from hraml_core.runs import RunWriter, list_runs, open_run  # noqa: E402
from hraml_core.runs.recorder import choose_probe, square_distances  # noqa: E402
from hraml_core.tasks import encode_targets  # noqa: E402
from hraml_core.training import TrainConfig, TrainingRun  # noqa: E402


def ms(seconds) -> str:
    return f"{1000 * seconds:.2f} ms"


def write_run(folder: Path, n_snapshots: int, every: int) -> dict:
    """Train digits, writing a snapshot every ``every`` steps; per-step and per-snapshot times (s)."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    targets = encode_targets(y)
    run = TrainingRun(X, targets.Y, targets.task, TrainConfig())
    probe = choose_probe(targets.Y, run.seed, 300, 2000)
    Xp, Xd = X[probe.index], X[probe.display_index]
    writer = RunWriter(folder, config={"relation": "l1"}, task=targets.task, dataset={"name": "digits"}, source="bench")
    writer.write_probe(run.relation_matrix(run.Y[probe.index]).numpy(), probe.index, probe.codes, probe.display_index,
                       probe.display_codes, classes=targets.classes, relation_scale=run.scale)
    for _ in range(20):  # warm-up (first optimiser step imports torch._dynamo)
        run.step()
    step_s, embed_s, write_s, log_s = [], [], [], []
    logged = len(run.state.losses)
    for i in range(n_snapshots * every):
        t0 = time.perf_counter()
        run.step()
        step_s.append(time.perf_counter() - t0)
        if (i + 1) % every:
            continue
        t0 = time.perf_counter()
        losses = run.state.losses
        for k in range(logged, len(losses)):
            writer.log(k + 1, loss=losses[k])
        logged = len(losses)
        t1 = time.perf_counter()
        A, D = square_distances(run.embed(Xp)), run.embed(Xd)
        t2 = time.perf_counter()
        writer.snapshot(run.state.step, A, D, epoch=run.epoch, loss=losses[-1])
        t3 = time.perf_counter()
        log_s.append(t1 - t0)
        embed_s.append(t2 - t1)
        write_s.append(t3 - t2)
    writer.finish()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"step": np.array(step_s), "embed": np.array(embed_s), "write": np.array(write_s), "log": np.array(log_s),
            "size_mb": size / 2**20, "every": every}


def fit_with_and_without_log_dir(folder: Path) -> dict:
    """Seconds of HRAML's default digits fit without and with log_dir (snapshots within their time
    budget, hraml_core.runs.recorder.MAX_OVERHEAD), and the snapshots it wrote."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from hraml_core import HRAML

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    HRAML(max_epochs=2, random_state=0).fit(X, y)  # warm-up
    times = {}
    for name, log_dir in (("plain", None), ("log_dir", folder), ("plain again", None)):
        t0 = time.perf_counter()
        HRAML(random_state=0, log_dir=log_dir).fit(X, y)
        times[name] = time.perf_counter() - t0
    run = open_run(folder)
    return {"plain": min(times["plain"], times["plain again"]), "log_dir": times["log_dir"],
            "snapshots": len(run.snapshot_steps), "steps": run.progress["step"]}


def read_run(folder: Path, frames: int = 60, seed: int = 0) -> dict:
    """Times (s) of a fresh open_run, of snapshot(step) at distinct random steps, of an idle refresh."""
    opens = []
    for _ in range(5):
        t0 = time.perf_counter()
        run = open_run(folder)
        _ = run.scalars
        opens.append(time.perf_counter() - t0)
    steps = np.random.default_rng(seed).permutation(run.snapshot_steps)[:frames]
    frame = []
    for s in steps:  # distinct steps: every read misses the Run's cache, as a slider dragged along does
        t0 = time.perf_counter()
        snap = run.snapshot(int(s))
        frame.append(time.perf_counter() - t0)
        assert snap.A.shape == snap.E.shape
    first = []
    for s in steps[:10]:  # the first frame a page shows: a new Run, then one snapshot
        t0 = time.perf_counter()
        open_run(folder).snapshot(int(s))
        first.append(time.perf_counter() - t0)
    idle = []
    for _ in range(50):
        t0 = time.perf_counter()
        run.refresh()
        idle.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    summaries = list_runs(folder.parent)
    listed = time.perf_counter() - t0
    return {"open": np.array(opens), "frame": np.array(frame), "first": np.array(first), "idle": np.array(idle),
            "list": listed, "n_runs": len(summaries), "n_snapshots": len(run.snapshot_steps), "rows": len(run.scalars)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snapshots", type=int, default=200)
    ap.add_argument("--steps-per-snapshot", type=int, default=10)
    ap.add_argument("--write", action="store_true", help="write the results into docs/BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="hraml-bench-runs-"))
    try:
        w = write_run(root / "digits", args.snapshots, args.steps_per_snapshot)
        r = read_run(root / "digits")
        f = fit_with_and_without_log_dir(root / "fit")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    step, write, embed = np.median(w["step"]), np.median(w["write"]), np.median(w["embed"])
    overhead = (w["write"].sum() + w["embed"].sum() + w["log"].sum()) / w["step"].sum()
    rows = [
        ("training step (median)", ms(step), "1.00"),
        ("snapshot: file write only, as the Trainer (median)", ms(write), f"{write / step:.2f}"),
        ("snapshot: embed + A + write, as fit / torchrun (median)", ms(write + embed), f"{(write + embed) / step:.2f}"),
        (f"scalars: buffering {w['every']} rows (median)", ms(np.median(w["log"])), f"{np.median(w['log']) / step:.3f}"),
    ]
    reads = [
        ("open_run + scalars (fresh, median of 5)", ms(np.median(r["open"]))),
        (f"snapshot(step), {len(r['frame'])} distinct random steps: median / p95 / max",
         f"{ms(np.median(r['frame']))} / {ms(np.percentile(r['frame'], 95))} / {ms(r['frame'].max())}"),
        ("open_run + snapshot(step) (a page's first frame, max of 10)", ms(r["first"].max())),
        ("refresh() with nothing new (median)", ms(np.median(r["idle"]))),
        (f"list_runs over {r['n_runs']} run", ms(r["list"])),
    ]
    body = [
        f"Machine: {machine()}. Digits (1797 x 64), default settings, one torch thread; "
        f"{r['n_snapshots']} snapshots ({args.steps_per_snapshot} steps apart; 300 probe rows, 1797 display rows), "
        f"{r['rows']} scalars rows, {w['size_mb']:.1f} MB on disk. `python bench/bench_runs.py`.",
        "",
        "| writing, in the training loop | time | / step |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        f"Recording every {args.steps_per_snapshot} steps added {100 * overhead:.1f}% to the training time "
        "when every snapshot is taken (the Trainer reuses the arrays it publishes: only the write is its cost). "
        f"`HRAML().fit` on digits: {f['plain']:.2f} s, with `log_dir` {f['log_dir']:.2f} s "
        f"({f['log_dir'] / f['plain']:.2f}x), {f['snapshots']} snapshots over {f['steps']} steps "
        "(snapshots keep within half the training time).",
        "",
        "| reading, for a replay (target: slider to frame <= 300 ms) | time |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in reads],
    ]
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section("Run directories", text)


if __name__ == "__main__":
    main()
