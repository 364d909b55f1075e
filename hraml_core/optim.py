"""The optimisers of a run (Adam, AMSGrad, SGD with momentum) as torch's fused update kernels,
called directly rather than through ``torch.optim``.

Why not ``torch.optim``:

- Building the first ``torch.optim`` optimiser in a process imports ``torch._dynamo``
  (``Optimizer.add_param_group`` is wrapped in ``torch._disable_dynamo``, which imports it on first
  call), and that import costs about as much as ``import torch`` itself: the first fit in every
  fresh process (each CLI call, each protocol worker) paid it once. Nothing else a run does imports
  it (``bench/bench_scale.py`` checks ``sys.modules``).
- ``Optimizer.step`` wraps the short update kernel in several times its cost of Python (hooks,
  profiler records, device grouping), which dominates the paper's one-pair steps (Algorithm 1).
  docs/BENCHMARKS.md, section Scale, has the measurements.

The kernels are the ones ``torch.optim.Adam(fused=True)`` / ``torch.optim.SGD(fused=True)`` call
(``torch._fused_adam_``, ``torch._fused_sgd_``; CPU and CUDA), so the update is torch's, to
rounding: ``tests/test_scale_training.py`` checks steps against ``torch.optim`` to 1e-6 for every
optimiser. Weight decay is torch's coupled (L2) form. The object mimics the parts of the
``torch.optim.Optimizer`` interface a run uses: ``param_groups[0]`` (``lr`` is read at every
step), ``state`` (per parameter, torch's key names; cleared to forget the moments),
``zero_grad`` and ``step``.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .params import choices

OPTIMIZERS = choices("optimizer")


class FusedOptimizer:
    """Adam (``kind="adam"``), AMSGrad (``"amsgrad"``) or SGD with momentum (``"sgd"``) over ``params``.

    ``weight_decay`` adds ``weight_decay * theta`` to each gradient (coupled, as torch.optim's
    ``weight_decay``). ``step(grads)`` takes the gradients as a list (one per parameter, same
    shapes) or, by default, reads each parameter's ``.grad``.
    """

    def __init__(self, params: Iterable[torch.Tensor], kind: str = "adam", lr: float = 1e-3,
                 weight_decay: float = 0.0, momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if kind not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")
        params = list(params)
        if not params:
            raise ValueError("the optimiser got no parameters")
        if len({p.device for p in params}) != 1 or len({p.dtype for p in params}) != 1:
            raise ValueError("all parameters must share one device and dtype (one fused kernel call)")
        self.kind = kind
        self.param_groups = [{
            "params": params, "lr": float(lr), "weight_decay": float(weight_decay), "momentum": float(momentum),
            "betas": (float(betas[0]), float(betas[1])), "eps": float(eps), "amsgrad": kind == "amsgrad",
        }]
        #: parameter -> its moments, under torch.optim's names; ``state.clear()`` restarts them.
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self._lists: dict[str, list[torch.Tensor]] | None = None  # the kernels' arguments
        self._n_states = 0
        self._step_np = None  # a numpy view of the CPU step counter
        self._first = True

    @property
    def params(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self, grads: Sequence[torch.Tensor] | None = None) -> None:
        if grads is None:
            grads = [p.grad for p in self.params]
            if any(g is None for g in grads):
                raise ValueError("a parameter has no gradient: call backward() first, or pass grads")
        group = self.param_groups[0]
        if self._lists is None or len(self.state) != self._n_states:
            self._init_state(group)
        lists = self._lists
        # The kernels write the parameters in place through detached aliases (same storage), which
        # need no torch.no_grad(): that context would cost a tenth of a one-pair step.
        if self.kind == "sgd":
            torch._fused_sgd_(
                lists["data"], grads if isinstance(grads, list) else list(grads), lists["momentum_buffer"], weight_decay=group["weight_decay"],
                momentum=group["momentum"], lr=float(group["lr"]), dampening=0.0, nesterov=False, maximize=False,
                is_first_step=self._first,
            )
            self._first = False
            return
        if self._step_np is not None:  # through numpy: a torch op's dispatch costs more than this
            self._step_np += 1
        else:
            lists["step"][0].add_(1)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            lists["data"], grads if isinstance(grads, list) else list(grads), lists["exp_avg"], lists["exp_avg_sq"], lists["max_exp_avg_sq"],
            lists["step"], lr=float(group["lr"]), beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
            eps=group["eps"], amsgrad=group["amsgrad"], maximize=False,
        )

    def _init_state(self, group) -> None:
        """Build the moments when the state is empty (the first step, or after ``state.clear()``),
        and the kernels' argument lists."""
        params = self.params
        if not self.state:
            if self.kind == "sgd":
                if group["momentum"]:
                    for p in params:
                        self.state[p] = {"momentum_buffer": torch.empty_like(p, requires_grad=False)}
                self._first = bool(group["momentum"])  # the kernel then copies the gradient in
            else:
                # One step counter shared by every parameter (they always step together); the fused
                # kernel reads it from the parameters' device, as torch.optim's fused Adam keeps it.
                step = torch.zeros((), dtype=torch.float32, device=params[0].device)
                for p in params:
                    st = {"step": step, "exp_avg": torch.zeros_like(p, requires_grad=False),
                          "exp_avg_sq": torch.zeros_like(p, requires_grad=False)}
                    if group["amsgrad"]:
                        st["max_exp_avg_sq"] = torch.zeros_like(p, requires_grad=False)
                    self.state[p] = st
        states = [self.state.get(p, {}) for p in params]
        self._lists = {"data": [p.detach() for p in params]}
        for key in ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"):
            self._lists[key] = [s[key] for s in states if key in s]
        self._n_states = len(self.state)
        step = self._lists["step"][0] if self._lists["step"] else None
        self._step_np = step.numpy() if step is not None and step.device.type == "cpu" else None
