"""Pair samplers: which samples are embedded in a step, and which of their pairs enter the loss.

Each step, a sampler names the rows to embed (:meth:`PairSampler.batch_indices`), then, given the
current squared distances A and label relations G between those rows, the pairs that form the loss
(:meth:`PairSampler.select_pairs`; ``None`` means every pair i < j of the batch).

- ``pairs``: Algorithm 1 of the paper, one random pair per SGD step. The faithful reference, and
  the one for teaching; far slower per pair than ``batch``.
- ``batch`` (default): all B(B-1)/2 pairs inside a shuffled mini-batch, one matrix product.
- ``neighbors``: the authors' pairs. Each training sample is paired with ``partners`` partners
  among its nearest neighbours in the *input* space over the whole training set, chosen once
  (:mod:`hraml_core.partners`), and the list is stepped ``batch_size`` pairs at a time.
- ``hard``: online mining inside each mini-batch (not the authors' scheme, which is
  ``neighbors``). Per anchor, ``partners`` partners: for classes, the nearest same-class and
  nearest other-class samples of the batch in the *current* embedding, ``balance`` of them
  same-class; for multi-label sets and distributions, partners of the batch drawn with probability
  proportional to (1 / (g + 1e-6)) ** ``sampling_power`` (0 draws partners uniformly: a random
  subset of the batch's pairs).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch

from . import params
from .tasks import CLASSIFICATION

#: The sampler names, declared with the ``sampler`` parameter (hraml_core.params).
SAMPLERS = params.choices("sampler")

Pairs = tuple[torch.Tensor, torch.Tensor]


class PairSampler(ABC):
    name: str
    #: True when every pair of the batch enters the loss (select_pairs is then not consulted).
    all_pairs: bool = False

    def __init__(self, n_samples: int, generator: torch.Generator):
        if n_samples < 2:
            raise ValueError(f"pair sampling needs at least 2 samples, got {n_samples}")
        self.n_samples = n_samples
        self.generator = generator

    @property
    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Steps that make one epoch (each sample an anchor about once)."""

    @abstractmethod
    def batch_indices(self) -> torch.Tensor:
        """Indices of the training rows to embed this step."""

    def select_pairs(self, A: torch.Tensor, G: torch.Tensor) -> Pairs | None:
        """Pairs (local indices into the batch) for the loss; None for all pairs i < j."""
        return None

    def pairs_in_step(self, batch_len: int, pairs: Pairs | None) -> int:
        return batch_len * (batch_len - 1) // 2 if pairs is None else int(pairs[0].numel())


class _ShuffledBatches(PairSampler):
    """Walks a fresh permutation of the training set each epoch, ``batch_size`` rows at a time."""

    def __init__(self, n_samples: int, generator: torch.Generator, batch_size: int):
        super().__init__(n_samples, generator)
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}")
        self.batch_size = min(int(batch_size), n_samples)
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_samples / self.batch_size)

    def batch_indices(self) -> torch.Tensor:
        if self._pos >= self.n_samples:
            self._pos = 0
        if self._pos == 0:
            self._perm = torch.randperm(self.n_samples, generator=self.generator)
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        if len(idx) < 2:  # a lone leftover sample has no pair: take the epoch's last full batch
            idx = self._perm[-self.batch_size :]
        return idx


class BatchSampler(_ShuffledBatches):
    """Every pair inside each mini-batch."""

    name = "batch"
    all_pairs = True


class HardSampler(_ShuffledBatches):
    """Online hard-pair mining inside the current mini-batch, in the current embedding."""

    name = "hard"

    def __init__(
        self,
        n_samples: int,
        generator: torch.Generator,
        batch_size: int,
        task: str,
        partners: int = 4,
        balance: float = 0.5,
        sampling_power: float = 1.0,
    ):
        super().__init__(n_samples, generator, batch_size)
        if partners < 1:
            raise ValueError(f"partners must be at least 1, got {partners}")
        if not 0.0 <= balance <= 1.0:
            raise ValueError(f"balance must lie in [0, 1], got {balance}")
        if sampling_power < 0:
            raise ValueError(f"sampling_power must be >= 0, got {sampling_power}")
        self.task, self.partners = task, int(partners)
        self.balance, self.sampling_power = float(balance), float(sampling_power)

    def select_pairs(self, A: torch.Tensor, G: torch.Tensor) -> Pairs:
        B = A.shape[0]
        k = min(self.partners, B - 1)
        eye = torch.eye(B, dtype=torch.bool, device=A.device)
        if self.task == CLASSIFICATION:
            same = (G <= 1e-6) & ~eye
            n_same = int(round(self.balance * k))
            anchors, partners = [], []
            for mask, count in ((same, n_same), (~same & ~eye, k - n_same)):
                if count == 0:
                    continue
                dist = A.masked_fill(~mask, math.inf)
                nearest = dist.topk(count, dim=1, largest=False)
                ok = torch.isfinite(nearest.values)  # anchors with fewer candidates than count
                rows = torch.arange(B, device=A.device)[:, None].expand(-1, count)
                anchors.append(rows[ok])
                partners.append(nearest.indices[ok])
            return torch.cat(anchors), torch.cat(partners)
        weights = (1.0 / (G + 1e-6)).pow(self.sampling_power).masked_fill(eye, 0.0)
        # Drawn on the CPU, where the sampler's generator lives (B x B is small).
        chosen = torch.multinomial(weights.cpu(), k, replacement=False, generator=self.generator).to(A.device)
        anchors = torch.arange(B, device=A.device)[:, None].expand(-1, k)
        return anchors.reshape(-1), chosen.reshape(-1)


class NeighborSampler(PairSampler):
    """The authors' scheme: a fixed list of (anchor, partner) pairs chosen once in the input space
    (:func:`hraml_core.partners.input_space_pairs`), stepped ``pairs_per_step`` pairs at a time in a
    fresh order each epoch; a step embeds the rows of its pairs and its loss is over those pairs
    only. An epoch is one pass over the list."""

    name = "neighbors"

    def __init__(self, n_samples: int, generator: torch.Generator, anchors, partners, pairs_per_step: int):
        super().__init__(n_samples, generator)
        self.anchors = torch.as_tensor(np.asarray(anchors), dtype=torch.long)
        self.partners = torch.as_tensor(np.asarray(partners), dtype=torch.long)
        if len(self.anchors) == 0 or len(self.anchors) != len(self.partners):
            raise ValueError("the neighbors sampler needs a non-empty list of (anchor, partner) pairs")
        if pairs_per_step < 1:
            raise ValueError(f"pairs per step must be at least 1, got {pairs_per_step}")
        self.pairs_per_step = min(int(pairs_per_step), len(self.anchors))
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0
        self._local: Pairs | None = None

    @property
    def n_pairs(self) -> int:
        return len(self.anchors)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_pairs / self.pairs_per_step)

    def batch_indices(self) -> torch.Tensor:
        if self._pos >= self.n_pairs:
            self._pos = 0
        if self._pos == 0:
            self._order = torch.randperm(self.n_pairs, generator=self.generator)
        take = self._order[self._pos : self._pos + self.pairs_per_step]
        self._pos += self.pairs_per_step
        rows, local = torch.unique(torch.cat([self.anchors[take], self.partners[take]]), return_inverse=True)
        self._local = (local[: len(take)], local[len(take):])
        return rows

    def select_pairs(self, A: torch.Tensor, G: torch.Tensor) -> Pairs:
        a, b = self._local
        return a.to(A.device), b.to(A.device)


class SinglePairSampler(PairSampler):
    """Algorithm 1: one uniformly random pair (i != j) per step; an epoch is n steps.

    Pairs are drawn from the generator ``block`` at a time and handed out one by one: a torch call
    per pair would cost a sizeable part of the closed-form step (hraml_core.closed_form)."""

    name = "pairs"
    _PAIR = (torch.tensor([0]), torch.tensor([1]))

    def __init__(self, n_samples: int, generator: torch.Generator, block: int = 1024):
        super().__init__(n_samples, generator)
        self.block = int(block)
        self._pending: list[tuple[int, int]] = []

    @property
    def steps_per_epoch(self) -> int:
        return self.n_samples

    def draw_pair(self) -> tuple[int, int]:
        """The next pair (i, j), i != j, as Python ints."""
        if not self._pending:
            n, g = self.n_samples, self.generator
            i = torch.randint(n, (self.block,), generator=g)
            j = (i + 1 + torch.randint(n - 1, (self.block,), generator=g)) % n  # uniform over j != i
            self._pending = list(zip(i.tolist(), j.tolist()))
            self._pending.reverse()  # pop() from the end hands them out in drawing order
        return self._pending.pop()

    def batch_indices(self) -> torch.Tensor:
        return torch.tensor(self.draw_pair())

    def select_pairs(self, A: torch.Tensor, G: torch.Tensor) -> Pairs:
        return self._PAIR


def make_sampler(
    name: str,
    n_samples: int,
    generator: torch.Generator,
    batch_size: int = 256,
    task: str = CLASSIFICATION,
    partners: int = 4,
    balance: float = 0.5,
    sampling_power: float = 1.0,
    pairs=None,
) -> PairSampler:
    """The sampler ``name``; ``neighbors`` takes its pair list ``(anchors, partners)`` in ``pairs``
    (see :func:`hraml_core.partners.input_space_pairs`) and steps ``batch_size`` pairs at a time."""
    if name == "neighbors":
        if pairs is None:
            raise ValueError("the neighbors sampler needs its input-space pairs")
        return NeighborSampler(n_samples, generator, pairs[0], pairs[1], batch_size)
    if name == "batch":
        return BatchSampler(n_samples, generator, batch_size)
    if name == "hard":
        return HardSampler(n_samples, generator, batch_size, task, partners, balance, sampling_power)
    if name == "pairs":
        return SinglePairSampler(n_samples, generator)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
