"""Distributed: what a cross-rank step costs as the world grows (docs/BENCHMARKS.md, section "Distributed").

    python bench/bench_distributed.py [--write] [--quick] [--worlds 1,2,4] [--batches 64,256,1024] [--steps 50]

For each world size W (gloo ranks on this machine, started by torch.multiprocessing on loopback,
one torch thread each) and each batch size B per rank, on synthetic data (64 features, 10 classes,
the default encoder 64 -> 256 -> 64; every rank its own 8192 rows):

- ``step``: the real step of :class:`hraml_core.distributed.DistributedRun` (pairs across the ranks:
  all-gather of the batches, the B x W*B pair loss, DDP's gradient all-reduce, the update),
  ranks aligned by a barrier before each step;
- ``compute``: the same step with no collective (the plain module; the W*B union batch stood in
  for by this rank's rows and fixed random rows): forward, pair loss, backward, update;
- ``all-gather``: :func:`gather_batches` alone on the step's payload, W*B rows x (dim + labels + 1)
  float32 received by each rank;
- ``all-reduce``: ``all_reduce`` alone on a buffer of the encoder's parameter count (what DDP's
  reducer sends: one bucket at this size), float32;
- ``check``: the one-number all-reduce by which the ranks agree that the step's loss is finite
  (every step on a CPU, every 16 on a GPU): a collective's latency, with next to no payload;
- each time the median over the steps on a rank, then the slowest rank's.

Baselines measured in the same run: the 1-rank step (W = 1, a plain TrainingRun at batch B) and
one process stepping the whole union batch W*B (what the W ranks replace). With more ranks than
cores (4 ranks on 2 cores) the ranks share cores: the numbers then measure the protocol's cost,
not a speed-up. ``--quick`` is a smoke run (worlds 1 and 2, two small batches, few steps): its
numbers are not written.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_section  # noqa: E402

D, CLASSES, HIDDEN, DIM, ROWS_PER_RANK = 64, 10, 256, 64, 8192


def _data(rank: int):
    import numpy as np

    from hraml_core.tasks import encode_targets

    rng = np.random.default_rng(rank)
    y = rng.integers(0, CLASSES, ROWS_PER_RANK)
    y[:CLASSES] = np.arange(CLASSES)  # every class on every rank: one-hot columns agree
    centres = np.random.default_rng(123).normal(size=(CLASSES, D))
    X = (centres[y] + rng.normal(size=(ROWS_PER_RANK, D))).astype(np.float32)
    return X, encode_targets(y).Y


def _median_ms(fn, steps: int, warmup: int = 3, barrier: bool = True) -> float:
    import torch.distributed as dist

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if barrier:
            dist.barrier()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def _worker(rank: int, world: int, port: int, batches: list[int], steps: int, union_sizes: list[int], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    import torch.distributed as dist

    from hraml_core.distributed import DistributedRun, _UnionAllPairs, gather_batches, gather_objects
    from hraml_core.training import TrainConfig, TrainingRun

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    X, Y = _data(rank)
    found: dict = {}
    for B in batches:
        config = TrainConfig(hidden=(HIDDEN,), dim=DIM, batch_size=B, seed=0)
        run = DistributedRun(X, Y, "classification", config, global_scale=1.0)
        row = {"step": _median_ms(run.step, steps)}
        run.flush()
        idx = run.sampler.batch_indices()
        Z, Yb = run.module(run.X[idx]).detach(), run.Y[idx]
        row["all_gather"] = _median_ms(lambda: gather_batches(Z, Yb, B), steps)
        n_params = sum(p.numel() for p in run.module.parameters())
        flat = torch.zeros(n_params)
        row["all_reduce"] = _median_ms(lambda: dist.all_reduce(flat), steps)
        flag = torch.ones(1)
        row["check"] = _median_ms(lambda: dist.all_reduce(flag, op=dist.ReduceOp.MIN), steps)
        g = torch.Generator().manual_seed(rank)
        others = torch.nn.functional.normalize(torch.randn((world - 1) * B, DIM, generator=g), dim=1)
        Y_others = run.Y[torch.randint(len(X), ((world - 1) * B,), generator=g)]

        def compute(run=run):  # bound now: the name is deleted below
            i = run.sampler.batch_indices()
            Zi = run.module(run.X[i])
            Zu = torch.cat([Zi.detach(), others])
            E = run.relation_matrix(run.Y[i], torch.cat([run.Y[i], Y_others]))
            N = len(Zu)
            fit = _UnionAllPairs.apply(Zi, Zu, E, 0, world / (4 * N * (N - 1)))
            run.optimizer.zero_grad(set_to_none=True)
            fit.backward()
            run.optimizer.step()

        row["compute"] = _median_ms(compute, steps, barrier=False)
        row["params"] = n_params
        row["payload_bytes"] = world * B * (DIM + Y.shape[1] + 1) * 4
        found[B] = row
        del run  # DDP's reducer must go before its process group
    if world == 1:  # the baselines: one process at batch B, and on the union batch W*B
        for B in sorted(set(batches) | set(union_sizes)):
            single = TrainingRun(X, Y, "classification", TrainConfig(hidden=(HIDDEN,), dim=DIM, batch_size=B, seed=0))
            found.setdefault("single", {})[B] = _median_ms(single.step, steps, barrier=False)
    every = gather_objects(found)
    if rank == 0:
        slowest = {}
        for B in batches:
            slowest[B] = {k: max(r[B][k] for r in every) for k in every[0][B]}
        if world == 1:
            slowest["single"] = every[0]["single"]
        Path(out, f"world{world}.json").write_text(json.dumps(slowest))
    dist.barrier()
    dist.destroy_process_group()
    time.sleep(0.05)  # gloo's worker threads at exit (hraml_core.distributed.close_process_group says why)


def measure(worlds: list[int], batches: list[int], steps: int) -> dict[int, dict]:
    import torch.multiprocessing as mp

    sys.path.insert(0, str(ROOT / "tests"))
    from support import free_port

    union_sizes = [w * b for w in worlds for b in batches]
    results = {}
    with tempfile.TemporaryDirectory() as out:
        for w in sorted(set(worlds) | {1}):
            t = time.perf_counter()
            mp.spawn(_worker, args=(w, free_port(), batches, steps, union_sizes, out), nprocs=w, join=True)
            results[w] = json.loads(Path(out, f"world{w}.json").read_text())
            print(f"  {w} rank(s): {time.perf_counter() - t:.0f} s", flush=True)
    return results


def table(results: dict[int, dict], batches: list[int]) -> list[str]:
    single = results[1]["single"]
    lines = ["| ranks W | batch/rank B | union W·B | step ms | compute ms | all-gather ms | all-reduce ms | check ms | "
             "rest ms | step / 1-rank step (B) | step / one process on W·B | all-gather payload | all-reduce payload |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for w in sorted(results):
        for B in batches:
            r = results[w][str(B)]
            rest = r["step"] - r["compute"] - r["all_gather"] - r["all_reduce"] - r["check"]
            lines.append(
                f"| {w} | {B} | {w * B} | {r['step']:.2f} | {r['compute']:.2f} | {r['all_gather']:.3f} | "
                f"{r['all_reduce']:.3f} | {r['check']:.3f} | {rest:.2f} | {r['step'] / single[str(B)]:.2f} | "
                f"{r['step'] / single[str(w * B)]:.2f} | {r['payload_bytes'] / 1024:.0f} KiB | {r['params'] * 4 / 1024:.0f} KiB |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="write the section into docs/BENCHMARKS.md")
    ap.add_argument("--quick", action="store_true", help="smoke run: worlds 1 and 2, small batches, few steps (not written)")
    ap.add_argument("--worlds", default=None, help="ranks, comma-separated (default 1,2,4)")
    ap.add_argument("--batches", default=None, help="batch sizes per rank, comma-separated (default 64,256,1024)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per measure (default 50)")
    args = ap.parse_args()
    if args.quick and args.write:
        ap.error("--quick is a smoke run: its numbers are not written")
    worlds = [int(w) for w in (args.worlds or ("1,2" if args.quick else "1,2,4")).split(",")]
    batches = [int(b) for b in (args.batches or ("32,128" if args.quick else "64,256,1024")).split(",")]
    steps = args.steps or (5 if args.quick else 50)
    from bench_scale import machine_line

    head = machine_line()
    print(head, flush=True)
    results = measure(worlds, batches, steps)
    cores = os.cpu_count() or 1
    body = "\n".join([
        f"`python bench/bench_distributed.py --write` on: {head}; gloo on loopback, {steps} timed steps per measure, "
        f"medians, the slowest rank's.",
        "",
        *table(results, batches),
        "",
        "`compute`: the step without collectives; `all-gather`: the union batch's embeddings and label rows; "
        "`all-reduce`: a buffer of the encoder's parameters, as DDP's reducer sends; `check`: the one-number "
        "all-reduce of the loss check; `rest`: step - the four "
        "(barrier waits, DDP's hooks; negative where the all-reduce overlaps the backward). "
        + (f"Worlds above {cores} ranks share this machine's {cores} cores: they measure the protocol's cost, "
           "not a speed-up." if max(worlds) > cores else ""),
    ])
    print(body)
    if args.write:
        write_section("Distributed", body)


if __name__ == "__main__":
    main()
