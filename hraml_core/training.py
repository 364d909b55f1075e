"""One HRAML training run, stepped synchronously: encoder + relation + sampler + loss + optimiser.

The data flows one way: label matrix -> relation (scaled) -> sampler -> encoder -> loss -> step.
:class:`TrainingRun` owns no thread; the estimator steps it inline and the background
:class:`hraml_core.trainer.Trainer` steps it from its thread.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from . import params
from .closed_form import ClosedFormPairs
from .encoder import MLPEncoder, embedding_size, with_input_skip
from .loss import (all_pairs_alignment_loss, alignment_loss, blocked_all_pairs_alignment_loss, l2_penalty,
                   pair_block_rows, pairwise_sq_dists)
from .optim import FusedOptimizer
from .relations import get_relation, relation_max, relation_scale, unique_rows
from .rows import SparseRows, dense_chunk_rows, sparse_input_skip
from .samplers import make_sampler
from .tasks import TASKS

OPTIMIZERS = params.choices("optimizer")


class _ConfigMethods:
    """Methods of :data:`TrainConfig`, whose fields come from :data:`hraml_core.params.PARAMS`."""

    __params__: tuple[params.Param, ...] = ()

    def __post_init__(self):
        problems = []
        for p in self.__params__:
            try:
                object.__setattr__(self, p.name, p.check(getattr(self, p.name)))
            except ValueError as exc:
                problems.append(str(exc))
        problems += self._cross_checks() if not problems else []
        if problems:
            raise ValueError("; ".join(problems))

    def _cross_checks(self) -> list[str]:
        """Rules the declaration cannot state: names that are looked up in registries."""
        from .relations import RELATIONS, Relation

        problems = []
        if isinstance(self.relation, str) and self.relation not in RELATIONS:
            problems.append(f"relation must be one of {', '.join(RELATIONS)} (or a callable), got {self.relation!r}")
        elif not isinstance(self.relation, (str, Relation)) and not callable(self.relation):
            problems.append(f"relation must be a name, a Relation or a callable, got {self.relation!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            problems.append(f"device must be a torch device such as 'cpu' or 'cuda', got {self.device!r}")
        return problems

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def for_task(self, task: str) -> "TrainConfig":
        """This config with every task-dependent default (None) replaced by ``task``'s value."""
        resolved = {p.name: p.for_task(getattr(self, p.name), task) for p in self.__params__ if p.task_defaults}
        return dataclasses.replace(self, **resolved) if resolved else self

    def to_dict(self, describe_objects: bool = False) -> dict:
        """The settings as JSON-ready values (what a model folder or run directory stores); see
        :func:`hraml_core.params.config_to_dict`."""
        return params.config_to_dict(self, describe_objects=describe_objects)

    @classmethod
    def from_dict(cls, values) -> "TrainConfig":
        return params.config_from_dict(cls, values)

    def loss_check_interval(self) -> int:
        if self.check_every is not None:
            return self.check_every
        # A check saves the weights it passed as the checkpoint a divergence returns to: the
        # one-pair step does little arithmetic beside that copy, so it is checked in groups as on a GPU.
        return 1 if torch.device(self.device).type == "cpu" and self.sampler != "pairs" else 16


TrainConfig = params.config_class(params.PARAMS, _ConfigMethods, "TrainConfig", __name__)
TrainConfig.__doc__ = """Everything that defines a run: one field per ``config`` parameter of
:data:`hraml_core.params.PARAMS` (same names, defaults and checks as :class:`hraml_core.HRAML`'s).
Frozen; ``replace(**changes)`` makes a modified copy; ``to_dict`` / ``from_dict`` convert to and
from JSON-ready values."""


#: A loss this many times above the first step's (and above 1) counts as diverged. The alignment
#: term is bounded (D^2 in [0, 4], g bounded), so only exploding weights get there, e.g. Adam with
#: lr = 1e9, whose loss stays finite while the weights run off to 1e9.
DIVERGENCE_FACTOR = 1e3


class TrainingDiverged(FloatingPointError):
    """The loss became NaN, infinite or exploded; the weights were restored to the last checked step."""


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op torch threads (process-wide in torch), then restore."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def usable_device(name) -> torch.device:
    """``torch.device(name)``, refused with a ValueError when this machine cannot run it (a saved
    config may name a GPU another machine had; torch's own error for it is an AssertionError)."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} is not available here: torch finds no CUDA device "
                         "(torch.cuda.is_available() is False); use device='cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} is not available here: torch finds {torch.cuda.device_count()} CUDA device(s)")
    return device


def _as_float_tensor(a, device) -> torch.Tensor:
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not a.flags.writeable:  # torch cannot share a read-only buffer (it warns): copy it
        a = a.copy()
    return torch.as_tensor(a, device=device)


@dataclass
class RunState:
    step: int = 0
    pairs_seen: int = 0
    last_loss: float = math.nan
    losses: list[float] = field(default_factory=list)  # one per step, once checked (TrainingRun.flush)


class TrainingRun:
    """A run on one training set: call :meth:`step` as often as you like.

    ``X`` is (n, d) float, ``Y`` the (n, L) label matrix of ``task`` (see hraml_core.tasks).
    ``sampler_offset`` shifts the sampler's seed (data-parallel ranks draw different batches from
    identically initialised encoders). ``config``'s task-dependent defaults are resolved for
    ``task`` (:meth:`TrainConfig.for_task`); ``self.config`` holds the values used.
    """

    #: Distinct label rows up to which the relation between them is precomputed (2048^2 floats = 16 MB).
    MAX_CACHED_ROWS = 2048
    #: Whether a step involves this process alone. The closed-form pair step
    #: (hraml_core.closed_form) and CUDA graph capture (hraml_core.cuda_graph) need it; a
    #: data-parallel run, whose steps all-gather and all-reduce, sets it False.
    local_step = True

    def __init__(self, X, Y, task: str, config: TrainConfig = TrainConfig(), sampler_offset: int = 0,
                 closed_form: bool | None = None):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        config = config.for_task(task)
        self.config, self.task = config, task
        self.device = usable_device(config.device)
        # Sparse features stay sparse: each step reads its batch's rows dense (hraml_core.rows).
        self.X = SparseRows(X, self.device) if sp.issparse(X) else _as_float_tensor(X, self.device)
        self.Y = _as_float_tensor(Y, self.device)
        n = self.X.shape[0]
        if self.Y.shape[0] != n:
            raise ValueError(f"X has {n} rows but Y has {self.Y.shape[0]}")
        seed = config.seed if config.seed is not None else int(torch.seed() % 2**31)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

        self.relation = get_relation(config.relation)
        self.g_max = relation_max(self.relation, Y, seed=seed)
        self.scale = relation_scale(config.scale, self.g_max)
        # Classes and most label-set collections have few distinct rows: g between the distinct rows
        # is computed once, and a batch's B x B block is two index_selects instead of a cdist.
        rows, codes = unique_rows(Y)
        if len(rows) <= self.MAX_CACHED_ROWS:
            self._codes = torch.as_tensor(codes.reshape(-1), device=self.device)
            self._G_rows = self.relation_matrix(torch.as_tensor(rows, device=self.device))
        else:
            self._codes = self._G_rows = None

        self.encoder = MLPEncoder(
            self.X.shape[1], config.hidden, config.dim, config.out_activation, config.init, self.generator
        ).to(self.device)
        #: Standard deviation of the noise added to each step's inputs (config.input_noise), in input units.
        self.noise_std = 0.0
        if config.input_noise:
            self.noise_std = float(config.input_noise) * nearest_neighbour_scale(X, seed)
            self._noise_generator = torch.Generator(device=self.device).manual_seed(seed + 3 + sampler_offset)
        params = list(self.encoder.parameters())
        # The regulariser lambda * sum ||theta||^2 of eq. 5 has gradient 2 * lambda * theta, which is
        # exactly what the optimisers' (coupled, L2) weight_decay adds: cheaper than a graph term.
        # torch's fused update kernels, without torch.optim (hraml_core.optim says why): one kernel
        # for every tensor, on a GPU too, where a step is bound by kernel launches (docs/BENCHMARKS.md).
        self.optimizer = FusedOptimizer(params, config.optimizer, lr=config.lr, weight_decay=2.0 * config.weight_decay,
                                        momentum=config.momentum)
        # The sampler draws on its own generator so that initialisation and sampling are separately
        # reproducible (changing the init does not change the pair sequence).
        pairs = None
        if config.sampler == "neighbors":  # chosen once, in the input space, over the whole set
            from .partners import input_space_pairs

            pairs = input_space_pairs(X, np.asarray(Y), task, self.relation, config.partners, config.balance,
                                      config.sampling_power, seed=seed + 2 + sampler_offset)
        self.sampler = make_sampler(
            config.sampler,
            n,
            torch.Generator().manual_seed(seed + 1 + sampler_offset),
            config.batch_size,
            task,
            config.partners,
            config.balance,
            config.sampling_power,
            pairs=pairs,
        )
        self.check_every = config.loss_check_interval()
        # The learning-rate drop (config.lr_drop_epoch): the step from which lr / 10 applies.
        self._lr_drop_step = (None if config.lr_drop_epoch is None
                              else config.lr_drop_epoch * self.sampler.steps_per_epoch)
        # Algorithm 1 on the CPU steps by the closed-form gradient, without autograd or torch.optim
        # (hraml_core.closed_form); closed_form=False keeps the autograd step (for comparison).
        auto = config.sampler == "pairs" and self.device.type == "cpu" and self.local_step
        if closed_form and not auto:
            raise ValueError("closed_form needs the pairs sampler on the CPU in a single-process run")
        self.closed_form = auto if closed_form is None else bool(closed_form)
        if self.closed_form:
            self._pair_step = ClosedFormPairs(self.encoder)
            self._X_np = None if isinstance(self.X, SparseRows) else self.X.numpy()
            self._G_np = None if self._G_rows is None else self._G_rows.cpu().numpy()
            self._codes_np = None if self._codes is None else self._codes.cpu().numpy()
            self._noise_np = np.random.default_rng(seed + 3 + sampler_offset) if self.noise_std else None
        self._pair_block = pair_block_rows(config.batch_size, config.pair_memory_mb * 2**20)
        self._graph = None
        # A captured step would replay one draw of the input noise: noisy steps are not captured.
        if (config.cuda_graphs and self.device.type == "cuda" and config.sampler == "batch" and self.local_step
                and not self.noise_std and not isinstance(self.X, SparseRows)):
            from .cuda_graph import GraphedStep

            self._graph = GraphedStep(self)
        self._pending: list = []  # losses of steps taken but not yet checked (tensors, or floats)
        self._checkpoint = [p.detach().clone() for p in params]  # weights whose loss was checked
        if self.closed_form:
            self._checkpoint_np = [t.numpy() for t in self._checkpoint]
        self._checkpoint_state = (0, 0)  # (step, pairs_seen) of those weights
        self._divergence_limit = math.inf
        self.state = RunState()

    # -- training ---------------------------------------------------------------------------
    @property
    def epoch(self) -> float:
        return self.state.step / self.sampler.steps_per_epoch

    def relation_matrix(self, Ya, Yb=None) -> torch.Tensor:
        """E = scale * g(Ya, Yb): the targets D^2 is trained to match."""
        return self.scale * self.relation(Ya, Yb)

    def batch_relation(self, idx: torch.Tensor) -> torch.Tensor:
        """E between the training rows ``idx`` (B x B)."""
        if self._G_rows is None:
            return self.relation_matrix(self.Y[idx])
        c = self._codes[idx]
        return self._G_rows.index_select(0, c).index_select(1, c)

    def step(self) -> None:
        """One optimisation step. Its objective (eq. 5, averaged over its pairs) joins
        ``state.losses`` once checked: every ``check_every`` steps (each step on the CPU, except
        for the one-pair ``pairs`` step; call :meth:`flush` before reading). Raises
        :class:`TrainingDiverged` from a check that finds a NaN, infinite or exploded loss, with the
        weights back at the last checked step."""
        if self._lr_drop_step is not None:
            self._schedule_lr()
        if self.closed_form:
            self._closed_form_step()
            return
        idx = self.sampler.batch_indices()
        if self._graph is not None and self._graph.step(idx):
            return
        if self.device.type == "cuda":  # a pageable copy would wait for the GPU to drain its queue
            idx = idx.pin_memory().to(self.device, non_blocking=True)
        self._autograd_step(idx)

    def current_lr(self) -> float:
        """The learning rate of the next step: ``config.lr``, divided by ten from the end of epoch
        ``config.lr_drop_epoch`` on."""
        if self._lr_drop_step is not None and self.state.step >= self._lr_drop_step:
            return self.config.lr / 10.0
        return self.config.lr

    def _schedule_lr(self) -> None:
        """Set the optimiser's learning rate for the next step (it reads ``param_groups[0]["lr"]`` at
        every step); from the step count, so that a restore to an earlier step restores the rate too."""
        group = self.optimizer.param_groups[0]
        lr = self.current_lr()
        if group["lr"] != lr:
            group["lr"] = lr
            if self._graph is not None:
                self._graph.reset()  # the captured update holds the old rate: capture again

    def _autograd_step(self, idx: torch.Tensor) -> None:
        """The step on the rows ``idx`` (on the run's device): loss, check, backward, update."""
        fit, n_pairs = self.batch_loss(idx)
        value = fit.detach()
        if self.config.weight_decay:
            with torch.no_grad():
                value = value + self.config.weight_decay * l2_penalty(self.encoder)
        self._record(value)
        self.optimizer.zero_grad(set_to_none=True)
        fit.backward()
        self.optimizer.step()
        self.state.step += 1
        self.state.pairs_seen += n_pairs

    def _record(self, value) -> None:
        """Queue a step's loss, before its update; check the queue when it is ``check_every`` long."""
        self._pending.append(value)
        if len(self._pending) >= self.check_every:
            # Checked before this step's update: the current weights have a finite loss and become
            # the checkpoint that a later divergence returns to.
            self.flush()
            self._save_checkpoint()

    def _save_checkpoint(self) -> None:
        if self.closed_form:  # numpy's copy: torch's copy_ dispatch would be a tenth of the step
            for saved, p in zip(self._checkpoint_np, self._pair_step.views):
                np.copyto(saved, p)
        else:
            with torch.no_grad():
                for saved, p in zip(self._checkpoint, self.encoder.parameters()):
                    saved.copy_(p)
        self._checkpoint_state = (self.state.step, self.state.pairs_seen)

    def _closed_form_step(self) -> None:
        """Algorithm 1's step by the paper's closed-form gradient (the autograd step's maths; see
        hraml_core.closed_form), and the fused optimiser update."""
        i, j = self.sampler.draw_pair()
        if self._G_np is not None:
            target = float(self._G_np[self._codes_np[i], self._codes_np[j]])
        else:
            target = float(self.relation_matrix(self.Y[i : i + 1], self.Y[j : j + 1]))
        x2 = self._X_np.take((i, j), axis=0) if self._X_np is not None else self.X[[i, j]].numpy()
        if self._noise_np is not None:  # config.input_noise, as batch_inputs adds it to a batch
            x2 = x2 + np.float32(self.noise_std) * self._noise_np.standard_normal(x2.shape, dtype=np.float32)
        fit, grads = self._pair_step.loss_and_grads(x2, target)
        if self.config.weight_decay:
            fit += self.config.weight_decay * self._pair_step.squared_norm()
        self._record(fit)
        self.optimizer.step(grads)
        self.state.step += 1
        self.state.pairs_seen += 1

    def batch_inputs(self, idx: torch.Tensor) -> torch.Tensor:
        """The step's inputs: training rows ``idx``, plus fresh noise with ``config.input_noise``."""
        Xb = self.X[idx]
        if self.noise_std:
            Xb = Xb + self.noise_std * torch.randn(Xb.shape, generator=self._noise_generator, device=self.device)
        return Xb

    def batch_loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The alignment loss of the step on training rows ``idx`` (to minimise), and its number of pairs."""
        Z = self.encoder(self.batch_inputs(idx))
        if self.sampler.all_pairs and len(idx) > self._pair_block:
            # The B x B matrices would pass config.pair_memory_mb: rows of G on demand, in blocks.
            if self._G_rows is None:
                Yb = self.Y[idx]
                rows = lambda s, e: self.relation_matrix(Yb[s:e], Yb)  # noqa: E731
            else:
                c = self._codes[idx]
                rows = lambda s, e: self._G_rows.index_select(0, c[s:e]).index_select(1, c)  # noqa: E731
            return blocked_all_pairs_alignment_loss(Z, rows, self._pair_block), self.sampler.pairs_in_step(len(idx), None)
        G = self.batch_relation(idx)
        if self.sampler.all_pairs:
            return all_pairs_alignment_loss(Z, G), self.sampler.pairs_in_step(len(idx), None)
        A = pairwise_sq_dists(Z)
        pairs = self.sampler.select_pairs(A.detach(), G)
        return alignment_loss(A[pairs], G[pairs], reduction="mean"), self.sampler.pairs_in_step(len(idx), pairs)

    def flush(self) -> None:
        """Read the losses of the steps not yet checked (one wait for the device) and check them.

        Raises :class:`TrainingDiverged` for a NaN, infinite or exploded loss, after restoring the
        weights, the step count and the record of the last checked step (the optimiser's moments
        are cleared: those built from the failed steps are poisoned too)."""
        if not self._pending:
            return
        if isinstance(self._pending[0], torch.Tensor):
            values = torch.stack(self._pending).tolist()
        else:
            values = [float(v) for v in self._pending]
        self._pending.clear()
        st = self.state
        if not st.losses:
            first = values[0]
            self._divergence_limit = DIVERGENCE_FACTOR * max(first, 1.0) if math.isfinite(first) else -math.inf
        if not self._losses_ok(values):
            bad = next((i for i, v in enumerate(values) if not (math.isfinite(v) and v <= self._divergence_limit)), 0)
            value, at = values[bad], len(st.losses) + bad + 1
            start = (st.losses or values)[0]
            self._restore_checkpoint()
            what = f"became {value}" if not math.isfinite(value) else f"exploded from {start:.3g} to {value:.3g}"
            raise TrainingDiverged(
                f"the loss {what} at step {at}: the learning rate ({self.config.lr:g}) is too large; "
                f"weights restored to step {st.step}"
            )
        st.losses.extend(values)
        st.last_loss = values[-1]

    def _losses_ok(self, values: list[float]) -> bool:
        """Whether every loss is finite and below the divergence limit (a distributed run makes every rank agree)."""
        return all(math.isfinite(v) and v <= self._divergence_limit for v in values)

    def _restore_checkpoint(self) -> None:
        with torch.no_grad():
            for saved, p in zip(self._checkpoint, self.encoder.parameters()):
                p.copy_(saved)
        self.optimizer.state.clear()
        if self._graph is not None:
            self._graph.reset()  # it captured the moments just dropped
        st = self.state
        st.step, st.pairs_seen = self._checkpoint_state
        del st.losses[st.step :]
        st.last_loss = st.losses[-1] if st.losses else math.nan

    # -- reading the model --------------------------------------------------------------------
    @property
    def network(self) -> MLPEncoder:
        """The encoder as a plain module (a data-parallel run wraps ``encoder`` for training)."""
        return self.encoder

    @torch.no_grad()
    def embed(self, X, chunk: int = 4096) -> np.ndarray:
        """The metric's embeddings of rows of X (numpy in, numpy out): f(x), with the input skip
        (config.input_skip) when there is one; for a scipy.sparse X with an input skip, a CSR matrix."""
        skip, f = self.config.input_skip, self.network
        if sp.issparse(X):  # f of dense row chunks; the input skip's part stays sparse (rows.sparse_input_skip)
            rows, step = SparseRows(X, self.device), dense_chunk_rows(X.shape[1], chunk)
            parts = [f(rows[s : s + step]) for s in range(0, len(rows), step)]
            Z = torch.cat(parts).cpu().numpy() if parts else np.zeros((0, self.config.dim), np.float32)
            return sparse_input_skip(X, Z, skip)
        Xt = _as_float_tensor(X, self.device)
        out = [with_input_skip(x, f(x), skip) for x in (Xt[s : s + chunk] for s in range(0, len(Xt), chunk))]
        width = embedding_size(Xt.shape[1], self.config.dim, skip)
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, width), np.float32)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.encoder.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.flush()
        self.encoder.load_state_dict(state)
        with torch.no_grad():
            for saved, p in zip(self._checkpoint, self.encoder.parameters()):
                saved.copy_(p)
        self._checkpoint_state = (self.state.step, self.state.pairs_seen)


def nearest_neighbour_scale(X, seed: int = 0, max_rows: int = 1024) -> float:
    """(median distance from a row to its nearest other row) / sqrt(d), over a seeded sample of at
    most ``max_rows`` rows searched against all rows: noise of this standard deviation per feature
    moves a row by about one nearest-neighbour distance."""
    from sklearn.neighbors import NearestNeighbors

    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
    else:
        X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    if n < 2:
        return 0.0
    rows = np.arange(n)
    if n > max_rows:
        rows = np.random.default_rng(seed).choice(n, max_rows, replace=False)
    distances, _ = NearestNeighbors(n_neighbors=2).fit(X).kneighbors(X[rows])
    return float(np.median(distances[:, 1]) / np.sqrt(X.shape[1]))
