"""Data-parallel HRAML over ``torch.distributed``: for data that outgrows one machine.

Each rank holds one shard of the rows, draws its own mini-batches from it and computes the
alignment loss over the pairs inside them; ``DistributedDataParallel`` averages the gradients, so
every rank takes the same step and the encoders stay identical. Pairs across shards are never
formed (as with any data-parallel pair loss); with shuffled shards that drops no kind of pair.

The engine is torch's own: process groups, DDP and ``torchrun`` for launching::

    torchrun --nproc-per-node 4 -m hraml_core.distributed --dataset uspst --data-dir DIR --out model.safetensors

``gloo`` serves CPUs, ``nccl`` GPUs (one per rank, chosen by LOCAL_RANK).
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .relations import get_relation, relation_max, relation_scale
from .training import TrainConfig, TrainingRun


def shard_rows(n: int, rank: int, world_size: int, seed: int = 0) -> np.ndarray:
    """The rows of rank ``rank``: a seeded shuffle split into ``world_size`` near-equal parts."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(np.array_split(order, world_size)[rank])


class DistributedRun(TrainingRun):
    """A TrainingRun whose encoder is wrapped in DDP and whose ranks agree on finiteness."""

    def __init__(self, X_shard, Y_shard, task: str, config: TrainConfig, global_scale: float):
        if not dist.is_initialized():
            raise RuntimeError("initialise a process group first (torch.distributed.init_process_group)")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        # The same seed on every rank gives the same initial weights (DDP also broadcasts rank 0's);
        # the sampler is offset by rank so that ranks draw different batches.
        super().__init__(X_shard, Y_shard, task, config.replace(scale=global_scale), sampler_offset=self.rank)
        self.module = self.encoder
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.encoder = DistributedDataParallel(self.module, device_ids=device_ids)

    def _loss_is_finite(self, value: float) -> bool:
        flag = torch.tensor([1.0 if super()._loss_is_finite(value) else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() == 1.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}


def global_relation_scale(config: TrainConfig, Y_shard, device) -> float:
    """The ``scale`` factor from the largest g over all shards (every rank gets the same)."""
    g_max = torch.tensor([relation_max(get_relation(config.relation), Y_shard)], device=device)
    dist.all_reduce(g_max, op=dist.ReduceOp.MAX)
    return relation_scale(config.scale, float(g_max.item()))


def fit_distributed(X_shard, Y_shard, task: str, config: TrainConfig, max_epochs: int) -> DistributedRun:
    """Train on this rank's shard for ``max_epochs`` (every rank must call it).

    All ranks run the same number of steps, the fewest any shard needs per epoch times
    ``max_epochs`` (DDP needs every rank in every all-reduce).
    """
    device = torch.device(config.device)
    run = DistributedRun(X_shard, Y_shard, task, config, global_relation_scale(config, Y_shard, device))
    steps = torch.tensor([run.sampler.steps_per_epoch], device=device)
    dist.all_reduce(steps, op=dist.ReduceOp.MIN)
    for _ in range(int(steps.item()) * max_epochs):
        run.step()
    return run


def _train_and_save(args, rank: int, world: int, device: str) -> None:
    # A function of its own so that the run, and DDP's reducer with it, is gone before the
    # process group is destroyed (a reducer outliving its group aborts the process at exit).
    from .data import load_dataset
    from .estimator import HRAML
    from .preprocessing import Preprocessor

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    rows = shard_rows(ds.n_samples, rank, world, args.seed)
    # Preprocessing statistics come from rank 0's shard and are broadcast, so that every rank
    # feeds the encoder the same transform.
    pre = [Preprocessor(args.preprocessing, random_state=args.seed).fit(ds.X[rows]) if rank == 0 else None]
    dist.broadcast_object_list(pre, src=0)
    X = pre[0].transform(ds.X[rows])
    targets = ds.targets()
    config = TrainConfig(batch_size=args.batch_size, lr=args.lr, relation=args.relation, seed=args.seed, device=device)
    run = fit_distributed(X, targets.Y[rows], targets.task, config, args.epochs)
    if rank == 0:
        model = HRAML.from_training_run(run, targets.classes)
        model.save(args.out)
        pre[0].save(os.path.splitext(args.out)[0] + ".preprocess.safetensors")
        print(f"{world} ranks, {run.state.step} steps each; saved {args.out}")


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``torchrun ... -m hraml_core.distributed``."""
    ap = argparse.ArgumentParser(prog="python -m hraml_core.distributed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--preprocessing", default="standardize")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--relation", default="l1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="model.safetensors")
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)
    try:
        _train_and_save(args, rank, world, device)
    finally:
        dist.barrier()  # rank 0 may still be saving; no rank tears the group down under another
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover - launched by torchrun
    raise SystemExit(main())
