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

``gloo`` serves CPUs, ``nccl`` GPUs (one per rank, chosen by LOCAL_RANK). The entry point fits the
preprocessing's PCA (if any) on rank 0's shard and its standardisation on the rows of all shards.
``--out DIR`` writes a run directory (docs/RUNS.md) as training goes, from rank 0 only: the loss of
every step averaged over the ranks, snapshots of rank 0's probe rows, and at the end the model
folder that ``hraml evaluate DIR`` reads; ``--out FILE.safetensors`` saves only the model (and
FILE.preprocess.safetensors beside it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .loss import pairwise_sq_dists
from . import params
from .relations import get_relation, relation_max, relation_scale
from .training import TrainConfig, TrainingRun, _as_float_tensor

#: Samplers whose pairs lie inside a batch, and so extend to the union of the ranks' batches.
CROSS_RANK_SAMPLERS = ("batch", "hard")


def shard_rows(n: int, rank: int, world_size: int, seed: int = 0) -> np.ndarray:
    """The rows of rank ``rank``: a seeded shuffle split into ``world_size`` near-equal parts."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(np.array_split(order, world_size)[rank])


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
        Z, Y = self.encoder(self.X[idx]), self.Y[idx]
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

    @torch.no_grad()
    def embed(self, X, chunk: int = 4096) -> np.ndarray:
        """Embeddings through the plain module, not DDP: one rank may embed alone (rank 0's
        snapshots), and a DDP forward may join collectives the other ranks never enter."""
        Xt = _as_float_tensor(X, self.device)
        out = [self.module(Xt[s : s + chunk]) for s in range(0, len(Xt), chunk)]
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.config.dim), np.float32)


def mean_over_ranks(values: list[float], device="cpu") -> list[float]:
    """Each value averaged over the ranks (a collective: every rank calls it with as many values;
    ``device``: where the group's backend reduces, a GPU for NCCL)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def global_relation_scale(config: TrainConfig, Y_shard, device) -> float:
    """The ``scale`` factor from the largest g over all shards (every rank gets the same)."""
    g_max = torch.tensor([relation_max(get_relation(config.relation), Y_shard)], device=device)
    dist.all_reduce(g_max, op=dist.ReduceOp.MAX)
    return relation_scale(config.scale, float(g_max.item()))


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


def standardise_over_shards(pre, X_shard, device) -> None:
    """Refit the standardisation step of a fitted Preprocessor on the rows of all shards.

    Two all-reduced passes (sums, then squared deviations from the global mean) give the mean and
    the population standard deviation that StandardScaler would fit on the whole set; features it
    would call constant (variance within rounding of 0) get scale 1, as there. A PCA step, if any,
    is left as fitted.
    """
    if pre.scale_ is None:
        return
    pre.scale_mean_ = pre.scale_ = None  # transform now stops before the standardisation
    Z = torch.as_tensor(pre.transform(X_shard), dtype=torch.float64, device=device)
    sums = torch.cat([Z.sum(0), Z.new_tensor([len(Z)])])
    dist.all_reduce(sums)
    n, mean = sums[-1], sums[:-1] / sums[-1]
    var = (Z - mean).square().sum(0)
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


class RunDirectoryRefused(ValueError):
    """Rank 0 could not open the run directory; every rank raises it, so that all stop together."""


def _open_run_directory(args, rank: int, world: int, config: TrainConfig, ds, task: str, train, test):
    """Rank 0's RunWriter for ``args.out`` (None on the other ranks); a refusal reaches every rank."""
    from .evaluate import PRIMARY_METRIC
    from .runs.writer import RunWriter

    writer, error = None, None
    if rank == 0:
        settings = {**config.to_dict(), "device": config.device.split(":")[0], "max_epochs": args.max_epochs,
                    "world_size": world, "cross_rank_pairs": args.cross_rank_pairs, "test_size": args.test_size}
        try:
            writer = RunWriter(args.out, config=settings, task=task, metric=PRIMARY_METRIC[task] if len(test) else None,
                               source="torchrun", info={"world_size": world},
                               dataset={"name": args.dataset, "data_dir": args.data_dir, "n_samples": ds.n_samples,
                                        "preprocessing": args.preprocessing})
            writer.write_split({"test_size": args.test_size, "seed": args.seed, "train_rows": train, "test_rows": test})
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
    from .data import load_dataset
    from .estimator import HRAML
    from .preprocessing import Preprocessor

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    if args.test_size:
        from .commands.train import split_rows

        train, test = (np.asarray(r, dtype=np.int64) for r in split_rows(ds, args.test_size, args.seed))
    else:
        train, test = np.arange(ds.n_samples), np.zeros(0, dtype=np.int64)
    rows = train[shard_rows(len(train), rank, world, args.seed)]
    # Every rank must feed the encoder the same transform. A PCA is fitted on rank 0's shard and
    # broadcast (a distributed PCA is beyond this module); the standardisation after it is cheap
    # to fit on all rows, and so it is.
    pre = [Preprocessor(args.preprocessing, random_state=args.seed).fit(ds.X[rows]) if rank == 0 else None]
    dist.broadcast_object_list(pre, src=0)
    pre = pre[0]
    standardise_over_shards(pre, ds.X[rows], device)
    X = pre.transform(ds.X[rows])
    targets = ds.targets()
    config = _config(args).replace(device=device)
    in_folder = not args.out.endswith(".safetensors")
    writer = _open_run_directory(args, rank, world, config, ds, targets.task, train, test) if in_folder else None
    try:
        recorder = run_recorder(writer, X, targets.Y[rows], row_ids=rows, classes=targets.classes) if in_folder else None
        run = fit_distributed(X, targets.Y[rows], targets.task, config, args.max_epochs, args.cross_rank_pairs, recorder)
        if rank != 0:
            return
        model = HRAML.from_training_run(run, targets.classes)
        if writer is None:
            model.save(args.out)
            pre.save(os.path.splitext(args.out)[0] + ".preprocess.safetensors")
        else:
            _finish_run_directory(writer, model, pre, ds, train, test, run.state.step, world)
        print(f"{world} ranks, {run.state.step} steps each; saved {args.out}")
    except BaseException as exc:
        if writer is not None:
            writer.finish("failed", f"{type(exc).__name__}: {exc}")
        raise


def _finish_run_directory(writer, model, pre, ds, train, test, step: int, world: int) -> None:
    """Rank 0, after training: the model folder files, the held-out metrics, status finished."""
    from .evaluate import PRIMARY_METRIC, evaluate_embedding

    writer.checkpoint(model, step)
    writer.save_model(model, pre)
    if len(test):
        X_train, X_test = pre.transform(ds.X[train]), pre.transform(ds.X[test])
        learned = evaluate_embedding(ds.task, model.transform(X_train), ds.Y[train], model.transform(X_test), ds.Y[test])
        raw = evaluate_embedding(ds.task, X_train, ds.Y[train], X_test, ds.Y[test])
        metric = PRIMARY_METRIC[ds.task]
        writer.log(step, **{metric: learned[metric]})
        writer.update(raw_metric=raw[metric], results={"metrics": learned, "raw_metrics": raw, "knn_k": None})
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
    ap = argparse.ArgumentParser(prog="python -m hraml_core.distributed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir", default=None)
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
    except RunDirectoryRefused as exc:
        if rank == 0:
            print(f"{ap.prog}: error: {exc}", file=sys.stderr)
        status = 2
    finally:
        close_process_group()
    return status


if __name__ == "__main__":  # pragma: no cover - launched by torchrun
    raise SystemExit(main())
