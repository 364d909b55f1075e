"""The `batch` sampler's step captured in a CUDA graph (``TrainConfig(cuda_graphs=True)``).

On a GPU a small-batch step is bound by launching its ~60 kernels from Python one at a time, not
by arithmetic (docs/BENCHMARKS.md, section GPU). A CUDA graph records the whole step (forward,
the closed-form backward, the fused optimiser update and the loss value) once and replays it
with one launch. Shapes must not change between replays, so only full batches
(``config.batch_size`` rows) replay; the short last batch of an epoch takes the ordinary step.

This follows torch's "whole network capture" recipe (torch.cuda.graphs): warm-up steps on a side
stream, gradients set to None before capture so that the backward allocates them from the graph's
pool, then ``copy_`` of each step's batch indices into a static input before ``replay()``.
The divergence guard keeps its meaning: the weights before a checked step are kept aside (one
device copy) and become the checkpoint once the check passes. A restore clears the optimiser's
moments, which the graph had captured, so the graph is captured again afterwards.

Not measured on a GPU yet (none was lent when it was written): off by default.
``tests/test_scale_training.py::test_cuda_graph_step_matches_the_eager_step`` runs where CUDA is.
"""
from __future__ import annotations

import torch

from .loss import l2_penalty

#: Eager steps on a side stream before capture (torch's recipe asks for a few; they train too).
WARMUP_STEPS = 3


class GraphedStep:
    """Replays one captured step of ``run`` (a :class:`~hraml_core.training.TrainingRun`)."""

    def __init__(self, run):
        if run.device.type != "cuda" or not run.sampler.all_pairs:
            raise ValueError("CUDA graphs capture the batch sampler's step on a GPU")
        self.run = run
        self.rows = run.sampler.batch_size
        self.graph = None
        self._warm = 0
        self._idx = torch.zeros(self.rows, dtype=torch.long, device=run.device)
        # Two pinned staging buffers used in turn: a buffer is refilled only once its previous
        # asynchronous copy to the device has finished (its event), without waiting for the GPU.
        self._pinned = [torch.zeros(self.rows, dtype=torch.long).pin_memory() for _ in range(2)]
        self._copied = [None, None]
        self._turn = 0

    def reset(self) -> None:
        """Forget the capture (after a restore replaced what it had recorded)."""
        self.graph = None
        self._warm = 0

    def step(self, idx: torch.Tensor) -> bool:
        """Take the step on rows ``idx`` through the graph; False when it cannot (the caller then
        takes the ordinary step): a short batch, or the warm-up steps before capture."""
        run = self.run
        if len(idx) != self.rows:
            return False
        if self.graph is None:
            if self._warm < WARMUP_STEPS:
                self._warm += 1
                side = torch.cuda.Stream(device=run.device)
                side.wait_stream(torch.cuda.current_stream(run.device))
                with torch.cuda.stream(side):
                    run._autograd_step(idx.to(run.device))
                torch.cuda.current_stream(run.device).wait_stream(side)
                return True
            self._capture()
        k, self._turn = self._turn, 1 - self._turn
        if self._copied[k] is not None:
            self._copied[k].synchronize()
        self._pinned[k].copy_(idx)
        self._idx.copy_(self._pinned[k], non_blocking=True)
        self._copied[k] = torch.cuda.Event()
        self._copied[k].record()
        checked = len(run._pending) + 1 >= run.check_every
        if checked:  # the weights this step's loss is computed from: the checkpoint if it passes
            before = [p.detach().clone() for p in run.encoder.parameters()]
        self.graph.replay()
        run._pending.append(self._value.clone())
        if checked:
            run.flush()  # raises TrainingDiverged (weights restored) if a loss is bad
            run._checkpoint = before
            run._checkpoint_state = (run.state.step, run.state.pairs_seen)
        run.state.step += 1
        run.state.pairs_seen += self._pairs
        return True

    def _capture(self) -> None:
        run = self.run
        run.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fit, n_pairs = run.batch_loss(self._idx)
            value = fit.detach()
            if run.config.weight_decay:
                value = value + run.config.weight_decay * l2_penalty(run.encoder).detach()
            fit.backward()
            run.optimizer.step()
        self.graph, self._value, self._pairs = graph, value, n_pairs
