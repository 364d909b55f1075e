"""Data-parallel HRAML over ``torch.distributed``: for data that outgrows one machine.

Each rank holds one shard of the rows and draws its own mini-batches from it;
``DistributedDataParallel`` averages the gradients, so every rank takes the same step and the
encoders stay identical.

Pairs cross the ranks (``cross_rank_pairs``, the default): every step the ranks all-gather their
batches' embeddings and label rows, and each rank takes the pairs between its own rows and every
other row of the *union* of the W batches, as one process with a W times larger batch would. The
loss is exact, not an approximation: the mean of the ranks' losses is the single-process loss on
the union batch and DDP's averaged gradient is its gradient (tests/test_distributed.py checks
both). It works with the ``batch`` and ``hard`` samplers (``hard`` mines on the union batch; for
label sets and distributions, whose partners are drawn at random, each rank draws those of its own
rows). ``pairs`` draws one pair per step and runs only with ``cross_rank_pairs=False``, where pairs
are formed inside each rank's mini-batch.

The engine is torch's own: process groups, DDP and ``torchrun`` for launching::

    torchrun --nproc-per-node 4 -m hraml_core.distributed --dataset uspst --data-dir DIR --out runs/uspst

``gloo`` serves CPUs, ``nccl`` GPUs (one per rank, chosen by LOCAL_RANK). ``--dataset`` names a
dataset, which every rank loads whole and keeps its part of (:func:`shard_rows`), or a shard folder
(``hraml datasets shard``, hraml_core.data.shards), of which every rank reads only its own shards:
the way past one machine, each node holding only its ranks' shards (docs/DISTRIBUTED.md: the
multi-node launch, and what a step costs as the world grows). The ranks agree on the global label
facts by collectives over small summaries: the class list (each rank's distinct classes) and the
relation's scale (each rank's distinct label rows). The entry point fits the preprocessing's PCA
(if any) on rank 0's shard and broadcasts it, and fits its standardisation on the rows of all
shards (all-reduced sums).
``--out DIR`` writes a run directory (docs/RUNS.md) as training goes, from rank 0 only: the loss of
every step averaged over the ranks, snapshots of rank 0's probe rows, and at the end the model
folder that ``hraml evaluate DIR`` reads; ``--out FILE.safetensors`` saves only the model (and
FILE.preprocess.safetensors beside it).
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from . import params
from .data.shards import shard_rows  # noqa: F401  (the rows of a rank when every rank loads the whole set)
from .loss import pairwise_sq_dists
from .relations import get_relation, relation_max, relation_scale, unique_rows
from .tasks import CLASSIFICATION
from .training import TrainConfig, TrainingRun

#: Samplers whose pairs lie inside a batch, and so extend to the union of the ranks' batches.
CROSS_RANK_SAMPLERS = ("batch", "hard")


class _AllGather(torch.autograd.Function):
    """``all_gather`` that trains through: the backward all-reduces the gradient of the gathered
    rows, so each rank's rows receive the gradient of every rank's loss, not only of its own.

    (torch.distributed.nn.functional.all_gather does the same, but is deprecated in torch 2.13.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()  # all_reduce works in place, and the incoming buffer is autograd's
        dist.all_reduce(grad)
        return grad.chunk(dist.get_world_size())[dist.get_rank()]


class _UnionAllPairs(torch.autograd.Function):
    """Forward: ``scale`` * sum of (D^2 - E)^2 over the pairs (own row i, union row j != i).
    Backward: the gradient with respect to the own rows Z of that sum taken over *all* ranks.

    The union rows Zu are constants here (gathered without a gradient). Every pair is symmetric, so
    the mirror (j, i) of a pair, summed on j's rank, has the same gradient with respect to z_i as
    (i, j): twice the direct gradient, 8 * scale * (diag(R 1) Z - R Zu), is the whole of it, and no
    collective runs in the backward. loss.py's all-pairs loss is the one-process case.
    """

    @staticmethod
    def forward(ctx, Z: torch.Tensor, Zu: torch.Tensor, E: torch.Tensor, first: int, scale: float) -> torch.Tensor:
        sq = Z.square().sum(1)[:, None] + Zu.square().sum(1)[None, :]
        R = torch.addmm(sq, Z, Zu.T, alpha=-2.0).sub_(E)
        R.diagonal(first).zero_()  # own row i sits at union row first + i: no pair with itself
        ctx.save_for_backward(Z, Zu, R)
        ctx.scale = scale
        return scale * R.square().sum()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        Z, Zu, R = ctx.saved_tensors
        grad = torch.addmm(R.sum(1, keepdim=True) * Z, R, Zu, alpha=-1.0)
        return grad.mul_(8.0 * ctx.scale * grad_out), None, None, None, None


def gather_batches(Z: torch.Tensor, Y: torch.Tensor, max_rows: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """All ranks' embeddings and label rows stacked in rank order, and where this rank's rows start.

    One collective carries both. Batches differ in length (the last of an epoch is short, shards
    differ by a row) while all_gather needs equal shapes, so each is padded to ``max_rows`` with a
    last column that marks the real rows. The embeddings keep Z's gradient, if it has one.
    """
    B, d = Z.shape
    payload = torch.cat([Z, Y.to(Z.dtype), Z.new_ones(B, 1)], 1)
    union = _AllGather.apply(torch.nn.functional.pad(payload, (0, 0, 0, max_rows - B)))
    real = union[:, -1] == 1
    first = int(real[: dist.get_rank() * max_rows].sum())
    union = union[real]
    return union[:, :d], union[:, d:-1].detach(), first


class DistributedRun(TrainingRun):
    """A TrainingRun whose encoder is wrapped in DDP and whose ranks agree on finiteness.

    With ``cross_rank_pairs`` each step's pairs span the union of all ranks' batches (see the
    module docstring); without it, each rank's pairs stay inside its own batch.
    """

    local_step = False  # a step all-gathers the batches and all-reduces the gradients

    # Cross-rank pairs are the default because they make a W-rank run the same optimisation as one
    # process with W times the batch (hyperparameters carry over), where per-rank pairs drop the
    # (W-1)/W of the union's pairs that cross shards, more the more ranks. The price: one
    # all-gather and about twice the pairs per step (docs/BENCHMARKS.md, "Distributed"), at the
    # same held-out 1-NN accuracy on digits. cross_rank_pairs=False gets per-rank pairs back.
    def __init__(self, X_shard, Y_shard, task: str, config: TrainConfig, global_scale: float,
                 cross_rank_pairs: bool = True):
        if cross_rank_pairs and config.sampler not in CROSS_RANK_SAMPLERS:
            raise ValueError(
                f"cross_rank_pairs needs a sampler that pairs the rows of a batch ({' or '.join(CROSS_RANK_SAMPLERS)}), "
                f"not sampler {config.sampler!r}; pass cross_rank_pairs=False to train with it"
            )
        if not dist.is_initialized():
            raise RuntimeError("initialise a process group first (torch.distributed.init_process_group)")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.cross_rank_pairs = cross_rank_pairs
        # The same seed on every rank gives the same initial weights (DDP also broadcasts rank 0's);
        # the sampler is offset by rank so that ranks draw different batches.
        super().__init__(X_shard, Y_shard, task, config.replace(scale=global_scale), sampler_offset=self.rank)
        self.module = self.encoder
        if self.noise_std:  # measured on each shard; one value for all ranks, as one process would have
            self.noise_std = mean_over_ranks([self.noise_std], self.device)[0]
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.encoder = DistributedDataParallel(self.module, device_ids=device_ids)

    def batch_loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        if not self.cross_rank_pairs:
            return super().batch_loss(idx)
        return self._union_fit(idx)

    def _union_fit(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This rank's part of the loss on the union batch U (N rows), and its number of pairs.

        Each pair (i, j) of U counts once, on the rank of its anchor i, with the single-process
        normalisation times W: the ranks' losses sum to W times the union loss. The backward
        gives each row the gradient of that sum, and DDP divides the summed gradient by W: the
        step is the single-process step on U.
        """
        Z, Y = self.encoder(self.batch_inputs(idx)), self.Y[idx]
        B, W = len(idx), self.world_size
        if self.sampler.all_pairs:
            Zu, Yu, first = gather_batches(Z.detach(), Y, self.config.batch_size)
            N = len(Zu)
            # The single-process loss is 1/4 * mean over U's N(N-1) ordered pairs; ours are B(N-1).
            fit = _UnionAllPairs.apply(Z, Zu, self.relation_matrix(Y, Yu), first, W / (4 * N * (N - 1)))
            return fit, B * (N - 1) // 2
        # Mined pairs are not symmetric: the gathered rows keep their gradient (_AllGather). Mining
        # sees the whole union batch, as one process would, and this rank keeps the pairs anchored
        # on its own rows (the other ranks keep theirs).
        Zu, Yu, first = gather_batches(Z, Y, self.config.batch_size)
        with torch.no_grad():
            Eu = self.relation_matrix(Yu)
            anchors, partners = self.sampler.select_pairs(pairwise_sq_dists(Zu), Eu)
        ours = (anchors >= first) & (anchors < first + B)
        a, p = anchors[ours], partners[ours]
        d2 = (Z[a - first] - Zu[p]).square().sum(1)
        return W * 0.25 * (d2 - Eu[a, p]).square().sum() / len(anchors), len(a)

    def _losses_ok(self, values: list[float]) -> bool:
        flag = torch.tensor([1.0 if super()._losses_ok(values) else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() == 1.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    @property
    def network(self):
        """The plain module, not DDP, for embedding: one rank may embed alone (rank 0's snapshots),
        and a DDP forward may join collectives the other ranks never enter."""
        return self.module


def mean_over_ranks(values: list[float], device="cpu") -> list[float]:
    """Each value averaged over the ranks (a collective: every rank calls it with as many values;
    ``device``: where the group's backend reduces, a GPU for NCCL)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order (a collective; for small summaries, never for data)."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def global_relation_scale(config: TrainConfig, Y_shard, device=None) -> float:
    """The ``scale`` factor from the largest g over the union of the shards' labels (every rank
    gets the same).

    Each rank contributes its distinct label rows (at most ``TrainingRun.MAX_CACHED_ROWS`` of them,
    a seeded sample beyond), not its labels, and every rank computes the largest g among the union
    of those: pairs of rows from different shards count too (for classes, whose distinct rows are
    the classes, the one-process value exactly; for distributions, a sample of it).
    """
    rows, _ = unique_rows(np.asarray(Y_shard))
    limit = TrainingRun.MAX_CACHED_ROWS
    seed = config.seed if config.seed is not None else 0
    if len(rows) > limit:
        rows = rows[np.random.default_rng(seed + dist.get_rank()).choice(len(rows), limit, replace=False)]
    union = np.concatenate(gather_objects(np.asarray(rows, dtype=np.float64)))
    return relation_scale(config.scale, relation_max(get_relation(config.relation), union, seed=seed))


def global_classes(y_shard) -> np.ndarray:
    """The sorted class values of all shards: each rank gathers the others' distinct classes, not
    their labels. Fewer than two raises ValueError (on every rank alike)."""
    classes = np.unique(np.concatenate([np.asarray(c) for c in gather_objects(np.unique(np.asarray(y_shard)))]))
    if len(classes) < 2:
        raise SetupRefused(f"classification needs at least 2 classes; the shards hold only {classes.tolist()!r}")
    return classes


def one_hot(y, classes: np.ndarray) -> np.ndarray:
    """The label matrix of class labels ``y`` over ``classes`` (the column of each class), as
    :func:`hraml_core.tasks.encode_targets` gives it when ``classes`` are all of y's classes; float32,
    the dtype training uses, so that the run takes it without a copy."""
    codes = np.searchsorted(classes, y)
    Y = np.zeros((len(codes), len(classes)), dtype=np.float32)
    Y[np.arange(len(codes)), codes] = 1.0
    return Y


def fit_distributed(X_shard, Y_shard, task: str, config: TrainConfig, max_epochs: int,
                    cross_rank_pairs: bool = True, recorder=None) -> DistributedRun:
    """Train on this rank's shard for ``max_epochs`` (every rank must call it).

    All ranks run the same number of steps, the fewest any shard needs per epoch times
    ``max_epochs`` (DDP needs every rank in every all-reduce). ``recorder(run, steps_per_epoch,
    total_steps)``, if given (on every rank), returns a :class:`~hraml_core.runs.RunRecorder`
    that is told of each step (see :func:`run_recorder`).
    """
    device = torch.device(config.device)
    scale = global_relation_scale(config, Y_shard, device)
    run = DistributedRun(X_shard, Y_shard, task, config, scale, cross_rank_pairs=cross_rank_pairs)
    steps = torch.tensor([run.sampler.steps_per_epoch], device=device)
    dist.all_reduce(steps, op=dist.ReduceOp.MIN)
    total = int(steps.item()) * max_epochs
    rec = recorder(run, int(steps.item()), total) if recorder is not None else None
    if rec is not None:
        rec.begin()
    for _ in range(total):
        run.step()
        if rec is not None:
            rec.after_step()
    run.flush()  # every rank checks the last steps together
    if rec is not None:
        rec.end()
    return run


def run_recorder(writer, X_shard, Y_shard, row_ids=None, classes=None, sync_every: int = 16, **options):
    """A ``recorder`` for :func:`fit_distributed`: rank 0 passes its RunWriter, the other ranks
    None. Every rank averages the losses over the ranks every ``sync_every`` steps (a
    collective); rank 0 logs them and snapshots its own probe rows (``row_ids``: their rows in
    the dataset). A write that fails stops the recording with a warning: a rank that raised
    would leave the others waiting."""
    from .runs.recorder import RunRecorder

    def make(run, steps_per_epoch: int, total_steps: int):
        return RunRecorder(writer, run, X_shard, Y_shard, total_steps=total_steps, row_ids=row_ids, classes=classes,
                           steps_per_epoch=steps_per_epoch, reduce_losses=lambda v: mean_over_ranks(v, run.device),
                           sync_every=sync_every, tolerate_errors=True, **options)

    return make


def standardise_over_shards(pre, X_shard, device, block_rows: int = 1 << 16) -> None:
    """Refit the standardisation step of a fitted Preprocessor on the rows of all shards.

    Two all-reduced passes (sums, then squared deviations from the global mean) give the mean and
    the population standard deviation that StandardScaler would fit on the whole set; features it
    would call constant (variance within rounding of 0) get scale 1, as there. A PCA step, if any,
    is left as fitted. Each pass transforms ``block_rows`` rows at a time into float64, so that it
    holds a block, not a float64 copy of the shard (twice the float32 features).
    """
    if pre.scale_ is None:
        return
    pre.scale_mean_ = pre.scale_ = None  # transform now stops before the standardisation

    def blocks():
        for s in range(0, max(len(X_shard), 1), block_rows):
            yield torch.as_tensor(pre.transform(X_shard[s : s + block_rows]), dtype=torch.float64, device=device)

    d = pre.transform(X_shard[:0]).shape[1]
    sums = torch.zeros(d + 1, dtype=torch.float64, device=device)
    for Z in blocks():
        sums[:-1] += Z.sum(0)
        sums[-1] += len(Z)
    dist.all_reduce(sums)
    n, mean = sums[-1], sums[:-1] / sums[-1]
    var = torch.zeros(d, dtype=torch.float64, device=device)
    for Z in blocks():
        var += (Z - mean).square().sum(0)
    dist.all_reduce(var)
    var /= n
    eps = torch.finfo(torch.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2  # scikit-learn's _is_constant_feature
    pre.scale_mean_ = mean.cpu().numpy()
    pre.scale_ = torch.where(constant, torch.ones_like(var), var.sqrt()).cpu().numpy()


def close_process_group() -> None:
    """Barrier, destroy the default process group, then give gloo's worker threads a moment.

    The barrier: rank 0 may still be saving, and no rank tears the group down under another. The
    pause works around torch (2.13): once DDP has used a gloo group, destroy_process_group leaves
    the group's worker threads running, and one that releases a finished work (its thread-local
    state holds a Python object) while the interpreter shuts down aborts the process, "terminate
    called without an active exception": about 1 exit in 7 on a loaded 2-core machine without the
    pause, none in 80 with it (the cause as in pytorch/pytorch#179291).
    """
    dist.barrier()
    dist.destroy_process_group()
    time.sleep(0.05)


class SetupRefused(ValueError):
    """The job cannot start (bad data, a refused run directory); every rank raises it, with the
    same message, so that all stop together."""


class RunDirectoryRefused(SetupRefused):
    """Rank 0 could not open the run directory; every rank raises it, so that all stop together."""


def on_every_rank(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on this rank; if it raised a ValueError or OSError on any rank,
    :class:`SetupRefused` on every rank (naming the ranks where they differ): a rank that raised
    alone would leave the others waiting in their next collective."""
    try:
        result, error = fn(*args, **kwargs), None
    except (ValueError, OSError) as exc:
        result, error = None, str(exc)
    failed = [(r, e) for r, e in enumerate(gather_objects(error)) if e is not None]
    if failed:
        if len({e for _, e in failed}) == 1 and len(failed) == dist.get_world_size():
            raise SetupRefused(failed[0][1])
        raise SetupRefused("; ".join(f"rank {r}: {e}" for r, e in failed))
    return result


@dataclass
class RankData:
    """What one rank trains on, and what rank 0 records and evaluates."""

    X: np.ndarray | None  # this rank's training rows: raw features (dropped once preprocessed) ...
    Y: np.ndarray  # ... their label matrix (one-hot over the classes of every shard) ...
    rows: np.ndarray  # ... and their rows in the dataset
    task: str
    classes: np.ndarray | None
    dataset: dict  # run.json's "dataset"
    info: dict  # added to run.json's "info"
    split: dict  # split.json
    #: rank 0, with held-out rows: () -> (X_train, y_train, X_test, y_test), raw features and labels
    held_out: object = None
    held_out_scope: str = "every row of the dataset"


def shard_folder(dataset: str, data_dir=None) -> Path | None:
    """The shard layout ``--dataset`` names, if it names one: ``DATA_DIR/NAME`` or the path NAME."""
    from .data.paths import data_dir as resolve
    from .data.shards import is_shard_folder

    for candidate in (resolve(data_dir) / dataset, Path(dataset)):
        if is_shard_folder(candidate):
            return candidate
    return None


def load_whole(args, rank: int, world: int) -> RankData:
    """Every rank loads the whole dataset and keeps its part of the training rows (:func:`shard_rows`)."""
    from .commands.train import data_file_path, load_data
    from .splits import holdout_split

    ds = load_data(args.dataset, args.data_dir, args.label_columns, args.ignore_columns, args.format)
    if args.test_size:
        part = holdout_split(ds.Y, ds.task, args.seed, test_size=args.test_size)
        train, test = part.train, part.test
    else:
        train, test = np.arange(ds.n_samples), np.zeros(0, dtype=np.int64)
    rows = train[shard_rows(len(train), rank, world, args.seed)]
    targets = ds.targets()
    held_out = (lambda: (ds.X[train], ds.Y[train], ds.X[test], ds.Y[test])) if len(test) and rank == 0 else None
    return RankData(X=ds.X[rows], Y=targets.Y[rows], rows=rows, task=targets.task, classes=targets.classes,
                    dataset={"name": args.dataset, "path": data_file_path(args.dataset), "data_dir": args.data_dir,
                             "format": args.format,
                             "label_columns": args.label_columns, "ignore_columns": args.ignore_columns,
                             "n_samples": ds.n_samples}, info={},
                    split={"test_size": args.test_size, "seed": args.seed, "train_rows": train, "test_rows": test},
                    held_out=held_out)


def load_shards(args, folder: Path, rank: int, world: int) -> RankData:
    """This rank reads only its shards of the layout in ``folder`` (hraml_core.data.shards).

    The ranks agree on the layout (its id), on who reads which shard (:func:`assign_shards`, from
    the shards each rank's folder holds) and on the class list (:func:`global_classes`). With
    ``--test-size`` every shard holds out its own rows (seeded by the seed and the shard's number:
    the same rows whatever the number of ranks), and rank 0 evaluates on its shards alone.
    """
    from .data.shards import assign_shards, read_manifest, read_shards
    from .splits import holdout_split

    layout = on_every_rank(read_manifest, folder)
    seen = gather_objects((layout.id, layout.present(), socket.gethostname(), str(folder)))
    if len({s[0] for s in seen}) > 1:
        raise SetupRefused("the ranks' shard folders hold different layouts: " + "; ".join(
            f"rank {r} ({host}: {path}) layout {lid[:12]}" for r, (lid, _, host, path) in enumerate(seen)))
    try:
        assignment = assign_shards(layout.n_shards, world, [s[1] for s in seen])
    except ValueError as exc:  # the same on every rank: every rank raises it
        raise SetupRefused(f"{folder}: {exc}") from None
    mine = assignment[rank]
    data = on_every_rank(read_shards, layout, mine)

    def split():
        train, test, at = [], [], 0
        for s, size in zip(mine, data.sizes):
            part = holdout_split(data.y[at : at + size], layout.task, args.seed + s, test_size=args.test_size)
            train.append(part.train + at)
            test.append(part.test + at)
            at += size
        return np.concatenate(train), np.concatenate(test)

    if args.test_size:
        train, test = on_every_rank(split)
    else:
        train, test = np.arange(len(data.rows)), np.zeros(0, dtype=np.int64)
    classes = global_classes(data.y) if layout.task == CLASSIFICATION else None
    y = data.y[train] if len(test) else data.y
    X = data.X[train] if len(test) else data.X
    Y = one_hot(y, classes) if classes is not None else np.asarray(y, dtype=np.float32)
    held_out = None
    if len(test) and rank == 0:
        held_out = lambda: (X, y, data.X[test], data.y[test])  # noqa: E731
    rows = data.rows[train]
    return RankData(
        X=X, Y=Y, rows=rows, task=layout.task, classes=classes,
        dataset={"name": args.dataset, "data_dir": args.data_dir, "n_samples": layout.n_rows,
                 "shards": {"id": layout.id, "count": layout.n_shards, "source": layout.name, "seed": layout.seed}},
        info={"shards": assignment},
        split={"test_size": args.test_size, "seed": args.seed, "train_rows": rows, "test_rows": data.rows[test],
               "scope": "rank 0's shards", "shards": mine},
        held_out=held_out,
        held_out_scope=f"rank 0's shards ({', '.join(map(str, mine))}): {len(train)} training, {len(test)} held-out rows")


def _open_run_directory(args, rank: int, world: int, config: TrainConfig, data: RankData):
    """Rank 0's RunWriter for ``args.out`` (None on the other ranks); a refusal reaches every rank."""
    from .evaluate import PRIMARY_METRIC
    from .runs.writer import RunWriter

    writer, error = None, None
    if rank == 0:
        settings = {**config.for_task(data.task).to_dict(), "device": config.device.split(":")[0], "max_epochs": args.max_epochs,
                    "world_size": world, "cross_rank_pairs": args.cross_rank_pairs, "test_size": args.test_size}
        try:
            writer = RunWriter(args.out, config=settings, task=data.task,
                               metric=PRIMARY_METRIC[data.task] if args.test_size else None, source="torchrun",
                               info={"world_size": world, **data.info},
                               dataset={**data.dataset, "preprocessing": args.preprocessing})
            writer.write_split(data.split)
        except (OSError, ValueError) as exc:
            if writer is not None:
                writer.finish("failed", str(exc))
            error = str(exc)
    message = [error]
    dist.broadcast_object_list(message, src=0)
    if message[0] is not None:
        raise RunDirectoryRefused(message[0])
    return writer


def _train_and_save(args, rank: int, world: int, device: str) -> None:
    # A function of its own so that the run, and DDP's reducer with it, is gone before the
    # process group is destroyed (a reducer outliving its group aborts the process at exit).
    from .estimator import HRAML
    from .preprocessing import Preprocessor

    folder = shard_folder(args.dataset, args.data_dir)
    sharded = gather_objects(folder is not None)
    if len(set(sharded)) > 1:
        raise SetupRefused(f"--dataset {args.dataset} is a shard folder (with shards.json) on ranks "
                           f"{[r for r, s in enumerate(sharded) if s]} but not on ranks "
                           f"{[r for r, s in enumerate(sharded) if not s]}: every node needs its shard folder there")
    if folder is not None:
        given = [f"--{k.replace('_', '-')}" for k in ("format", "label_columns", "ignore_columns") if getattr(args, k)]
        if given:
            raise SetupRefused(f"{', '.join(given)}: for a data file; the shard folder {args.dataset} was written "
                               "with its columns chosen (hraml datasets shard)")
        data = load_shards(args, folder, rank, world)
    else:
        data = on_every_rank(load_whole, args, rank, world)
    # Every rank must feed the encoder the same transform. A PCA is fitted on rank 0's shard and
    # broadcast (a distributed PCA is beyond this module); the standardisation after it is cheap
    # to fit on all rows, and so it is.
    pre = [Preprocessor(args.preprocessing, random_state=args.seed).fit(data.X) if rank == 0 else None]
    dist.broadcast_object_list(pre, src=0)
    pre = pre[0]
    standardise_over_shards(pre, data.X, device)
    X = pre.transform(data.X)
    data.X = None  # training holds the preprocessed rows (rank 0's held-out evaluation keeps its own)
    config = _config(args).replace(device=device)
    in_folder = not args.out.endswith(".safetensors")
    writer = _open_run_directory(args, rank, world, config, data) if in_folder else None
    try:
        recorder = run_recorder(writer, X, data.Y, row_ids=data.rows, classes=data.classes) if in_folder else None
        run = fit_distributed(X, data.Y, data.task, config, args.max_epochs, args.cross_rank_pairs, recorder)
        if rank != 0:
            return
        model = HRAML.from_training_run(run, data.classes)
        if writer is None:
            model.save(args.out)
            pre.save(os.path.splitext(args.out)[0] + ".preprocess.safetensors")
        else:
            _finish_run_directory(writer, model, pre, data, run.state.step, world)
        print(f"{world} ranks, {run.state.step} steps each; saved {args.out}")
    except BaseException as exc:
        if writer is not None:
            writer.finish("failed", f"{type(exc).__name__}: {exc}")
        raise


def _finish_run_directory(writer, model, pre, data: RankData, step: int, world: int) -> None:
    """Rank 0, after training: the model folder files, the held-out metrics, status finished."""
    from .evaluate import PRIMARY_METRIC, evaluate_embedding

    writer.checkpoint(model, step)
    writer.save_model(model, pre)
    if data.held_out is not None:
        X_train, y_train, X_test, y_test = data.held_out()
        X_train, X_test = pre.transform(X_train), pre.transform(X_test)
        learned = evaluate_embedding(data.task, model.transform(X_train), y_train, model.transform(X_test), y_test)
        raw = evaluate_embedding(data.task, X_train, y_train, X_test, y_test)
        metric = PRIMARY_METRIC[data.task]
        writer.log(step, **{metric: learned[metric]})
        writer.update(raw_metric=raw[metric], results={"metrics": learned, "raw_metrics": raw, "knn_k": None,
                                                       "held_out": data.held_out_scope})
    writer.finish("finished", f"{world} ranks, {step} steps each")


def _entry_point_flag(p: params.Param) -> bool:
    """The declared parameters the entry point honours: the run's settings (each rank picks its own
    device) and the number of epochs; the estimator's fit options do not apply here."""
    return (p.config and p.name != "device") or p.name == "max_epochs"


def _config(args) -> TrainConfig:
    """The run's settings from the parsed flags (the declared hyperparameters, plus the seed)."""
    values = params.values_from_args(args, where="config")
    return TrainConfig(**values, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``torchrun ... -m hraml_core.distributed``."""
    from .commands.train import add_file_arguments

    ap = argparse.ArgumentParser(prog="python -m hraml_core.distributed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits",
                    help="a dataset name or file (every rank loads it whole), or a shard folder written by "
                         "`hraml datasets shard` (every rank reads only its shards)")
    ap.add_argument("--data-dir", default=None)
    add_file_arguments(ap)  # for a data file: read as `hraml train` reads it
    ap.add_argument("--preprocessing", default="standardize")
    ap.add_argument("--seed", type=int, default=0, help="seed of the shards and of training (default 0)")
    ap.add_argument("--cross-rank-pairs", action=argparse.BooleanOptionalAction, default=True,
                    help="pair rows across the ranks' batches (default), or only inside each rank's batch")
    ap.add_argument("--test-size", type=float, default=0.0,
                    help="held-out fraction, evaluated at the end (default 0: train on every row)")
    ap.add_argument("--out", default="model.safetensors",
                    help="a run directory to write (rank 0), or FILE.safetensors for the model alone")
    params.add_arguments(ap, helps={"batch_size": "Rows per rank and step."}, select=_entry_point_flag)
    args = ap.parse_args(argv)
    if not 0 <= args.test_size < 1:
        ap.error(f"--test-size must lie in [0, 1), got {args.test_size}")
    # Bad settings fail here, once, before any process group: not as one traceback per rank.
    try:
        config = _config(args)
    except ValueError as exc:
        ap.error(str(exc))
    if args.cross_rank_pairs and config.sampler not in CROSS_RANK_SAMPLERS:
        ap.error(f"--sampler {config.sampler} draws one pair per step and cannot pair across ranks: "
                 f"add --no-cross-rank-pairs, or use {' or '.join(CROSS_RANK_SAMPLERS)}")

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)
    status = 0
    try:
        _train_and_save(args, rank, world, device)
    except SetupRefused as exc:
        if rank == 0:
            print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        status = 2
    finally:
        close_process_group()
    return status


if __name__ == "__main__":  # pragma: no cover - launched by torchrun
    raise SystemExit(main())
