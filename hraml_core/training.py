"""One HRAML training run, stepped synchronously: encoder + relation + sampler + loss + optimiser.

The data flows one way: label matrix -> relation (scaled) -> sampler -> encoder -> loss -> step.
:class:`TrainingRun` owns no thread; the estimator steps it inline and the background
:class:`hraml_core.trainer.Trainer` steps it from its thread.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .encoder import INITS, OUT_ACTIVATIONS, MLPEncoder
from .loss import all_pairs_alignment_loss, alignment_loss, l2_penalty, pairwise_sq_dists
from .relations import get_relation, relation_max, relation_scale
from .samplers import SAMPLERS, make_sampler
from .tasks import TASKS

#: "amsgrad" is Adam that never lets a step grow as the gradients' running scale decays: in long
#: runs, like the dashboard's, plain Adam makes sudden loss spikes after convergence (digits,
#: default settings: the loss jumps from 0.006 to 0.057 at step 2529), which AMSGrad does not
#: (largest loss after step 500: 0.010), at the same 1-NN accuracy at steps 1000, 2000 and 3000.
OPTIMIZERS = ("adam", "amsgrad", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run. The defaults are also HRAML's (tuned on digits; see tests/test_estimator.py)."""

    hidden: tuple[int, ...] = (256,)
    dim: int = 64
    out_activation: str = "tanh"
    init: str = "paper"
    relation: str = "l1"
    scale: str | float = "auto"
    sampler: str = "batch"
    batch_size: int = 256
    partners: int = 4
    balance: float = 0.5
    sampling_power: float = 1.0
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 5e-5
    seed: int | None = 0
    device: str = "cpu"
    #: Steps between reads of the loss for the divergence guard; None: every step on the CPU, every
    #: 16 on a GPU, where each read waits for the device to finish its queue (docs/BENCHMARKS.md).
    check_every: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        problems = []
        if self.out_activation not in OUT_ACTIVATIONS:
            problems.append(f"out_activation must be one of {OUT_ACTIVATIONS}, got {self.out_activation!r}")
        if self.init not in INITS:
            problems.append(f"init must be one of {INITS}, got {self.init!r}")
        if self.sampler not in SAMPLERS:
            problems.append(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if int(self.dim) < 1 or any(h < 1 for h in self.hidden):
            problems.append(f"dim and hidden sizes must be positive, got dim={self.dim}, hidden={self.hidden}")
        if int(self.batch_size) < 2:
            problems.append(f"batch_size must be at least 2, got {self.batch_size}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive finite number, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.check_every is not None and not (isinstance(self.check_every, int) and self.check_every >= 1):
            problems.append(f"check_every must be a positive int or None, got {self.check_every!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def loss_check_interval(self) -> int:
        if self.check_every is not None:
            return self.check_every
        return 1 if torch.device(self.device).type == "cpu" else 16


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
    identically initialised encoders).
    """

    #: Distinct label rows up to which the relation between them is precomputed (2048^2 floats = 16 MB).
    MAX_CACHED_ROWS = 2048

    def __init__(self, X, Y, task: str, config: TrainConfig = TrainConfig(), sampler_offset: int = 0):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        self.config, self.task = config, task
        self.device = torch.device(config.device)
        self.X = _as_float_tensor(X, self.device)
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
        rows, codes = np.unique(np.asarray(Y, dtype=np.float32), axis=0, return_inverse=True)
        if len(rows) <= self.MAX_CACHED_ROWS:
            self._codes = torch.as_tensor(codes.reshape(-1), device=self.device)
            self._G_rows = self.relation_matrix(torch.as_tensor(rows, device=self.device))
        else:
            self._codes = self._G_rows = None

        self.encoder = MLPEncoder(
            self.X.shape[1], config.hidden, config.dim, config.out_activation, config.init, self.generator
        ).to(self.device)
        params = list(self.encoder.parameters())
        # The regulariser lambda * sum ||theta||^2 of eq. 5 has gradient 2 * lambda * theta, which is
        # exactly what the optimisers' (coupled, L2) weight_decay adds: cheaper than a graph term.
        decay = 2.0 * config.weight_decay
        if config.optimizer in ("adam", "amsgrad"):
            # On a GPU a step is bound by kernel launches, not arithmetic (docs/BENCHMARKS.md): the
            # fused Adam updates every tensor in one kernel instead of a dozen per tensor.
            fused = True if self.device.type == "cuda" else None
            self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=decay, fused=fused,
                                              amsgrad=config.optimizer == "amsgrad")
        else:
            self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=decay)
        # The sampler draws on its own generator so that initialisation and sampling are separately
        # reproducible (changing the init does not change the pair sequence).
        self.sampler = make_sampler(
            config.sampler,
            n,
            torch.Generator().manual_seed(seed + 1 + sampler_offset),
            config.batch_size,
            task,
            config.partners,
            config.balance,
            config.sampling_power,
        )
        self.check_every = config.loss_check_interval()
        self._pending: list[torch.Tensor] = []  # losses of steps taken but not yet checked
        self._checkpoint = [p.detach().clone() for p in params]  # weights whose loss was checked
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
        ``state.losses`` once checked: at once on the CPU, every ``check_every`` steps otherwise
        (call :meth:`flush` before reading). Raises :class:`TrainingDiverged` from a check that
        finds a NaN, infinite or exploded loss, with the weights back at the last checked step."""
        idx = self.sampler.batch_indices()
        if self.device.type == "cuda":  # a pageable copy would wait for the GPU to drain its queue
            idx = idx.pin_memory().to(self.device, non_blocking=True)
        fit, n_pairs = self.batch_loss(idx)
        value = fit.detach()
        if self.config.weight_decay:
            with torch.no_grad():
                value = value + self.config.weight_decay * l2_penalty(self.encoder)
        self._pending.append(value)
        if len(self._pending) >= self.check_every:
            # Checked before this step's update: the current weights have a finite loss and become
            # the checkpoint that a later divergence returns to.
            self.flush()
            with torch.no_grad():
                for saved, p in zip(self._checkpoint, self.encoder.parameters()):
                    saved.copy_(p)
            self._checkpoint_state = (self.state.step, self.state.pairs_seen)
        self.optimizer.zero_grad(set_to_none=True)
        fit.backward()
        self.optimizer.step()
        self.state.step += 1
        self.state.pairs_seen += n_pairs

    def batch_loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The alignment loss of the step on training rows ``idx`` (to minimise), and its number of pairs."""
        Z = self.encoder(self.X[idx])
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
        values = torch.stack(self._pending).tolist()
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
        st = self.state
        st.step, st.pairs_seen = self._checkpoint_state
        del st.losses[st.step :]
        st.last_loss = st.losses[-1] if st.losses else math.nan

    # -- reading the model --------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, X, chunk: int = 4096) -> np.ndarray:
        """Embeddings f(x) of rows of X (numpy in, numpy out), in evaluation mode."""
        Xt = _as_float_tensor(X, self.device)
        out = [self.encoder(Xt[s : s + chunk]) for s in range(0, len(Xt), chunk)]
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.config.dim), np.float32)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.encoder.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.flush()
        self.encoder.load_state_dict(state)
        with torch.no_grad():
            for saved, p in zip(self._checkpoint, self.encoder.parameters()):
                saved.copy_(p)
        self._checkpoint_state = (self.state.step, self.state.pairs_seen)


def sequence_of_ints(value, name: str) -> tuple[int, ...]:
    """Accept ``256``, ``(256, 128)`` or ``"256,128"`` for layer sizes."""
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"{name} must be integers separated by commas, got {value!r}") from None
    if isinstance(value, (int, np.integer)):
        return (int(value),)
    if isinstance(value, Sequence):
        return tuple(int(v) for v in value)
    raise ValueError(f"{name} must be an int, a sequence of ints or a comma-separated string, got {value!r}")
