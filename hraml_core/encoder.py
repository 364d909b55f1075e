"""The encoder f: an MLP whose output is L2-normalised (paper, section 5.1 and eq. 10)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from . import params

OUT_ACTIVATIONS = params.choices("out_activation")
INITS = params.choices("init")
#: The paper's initialisation: weights U[-0.2, 0.2], biases 0.
PAPER_INIT_RANGE = 0.2


class MLPEncoder(nn.Module):
    """x -> tanh hidden layers -> linear (optionally tanh) output -> f(x) / ||f(x)||.

    ``hidden`` lists the hidden widths (empty for a single linear layer). ``out_activation`` is
    ``"tanh"`` (the authors' code) or ``"none"``. ``init="paper"`` draws weights from U[-0.2, 0.2]
    with zero biases; ``"torch"`` keeps PyTorch's default (Kaiming-uniform) initialisation.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (256,),
        dim: int = 64,
        out_activation: str = "tanh",
        init: str = "paper",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if out_activation not in OUT_ACTIVATIONS:
            raise ValueError(f"out_activation must be one of {OUT_ACTIVATIONS}, got {out_activation!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        widths = [int(in_dim), *[int(h) for h in hidden], int(dim)]
        if any(w < 1 for w in widths):
            raise ValueError(f"layer widths must be positive, got {widths}")
        self.in_dim, self.dim, self.hidden = widths[0], widths[-1], tuple(widths[1:-1])
        self.out_activation = out_activation
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        if init == "paper":
            with torch.no_grad():
                for layer in self.layers:
                    layer.weight.uniform_(-PAPER_INIT_RANGE, PAPER_INIT_RANGE, generator=generator)
                    layer.bias.zero_()

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """The network output before normalisation."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last or self.out_activation == "tanh":
                x = torch.tanh(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # eps keeps an all-zero output (possible at a zero-bias init with zero input) finite.
        return nn.functional.normalize(self.forward_raw(x), dim=1, eps=1e-12)


def with_input_skip(x: torch.Tensor, z: torch.Tensor, weight: float) -> torch.Tensor:
    """The metric's embedding of inputs ``x`` whose encoder embedding is ``z`` (unit rows), for an
    input skip of ``weight`` s (the ``input_skip`` parameter): ``[sqrt(s) x/||x||, sqrt(1-s) z]``.

    Rows stay unit vectors, and squared distances are s times those of the inputs' directions plus
    1 - s times those of the encoder: the inputs' own geometry kept inside the learned metric.
    ``weight`` 0 returns ``z`` itself.
    """
    if not weight:
        return z
    u = nn.functional.normalize(x, dim=1, eps=1e-12)
    return torch.cat([math.sqrt(weight) * u.to(z.dtype), math.sqrt(1.0 - weight) * z], dim=1)


def embedding_size(in_dim: int, dim: int, weight: float) -> int:
    """Columns of :func:`with_input_skip`'s output."""
    return dim + (in_dim if weight else 0)
