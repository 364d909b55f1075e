"""Algorithm 1's step (one pair), differentiated by hand in numpy: the paper's eqs. 6-9.

For one pair (x_i, x_j) with relation target e = scale * g(y_i, y_j) the step minimises

    J = 1/4 (d - e)^2,   d = ||z_i - z_j||^2,   z = u / ||u||,   u = f_L(... f_1(x)),
    f_l(h) = tanh(W_l h + b_l)   (the last layer without tanh when out_activation is "none").

Backpropagation through the two rows, as eqs. 6-9 spell it out:

    dJ/dz_i = (d - e) (z_i - z_j) = -dJ/dz_j
    dJ/du   = (dJ/dz - z (z . dJ/dz)) / ||u||                  (the normalisation)
    delta_l = dJ/dh_l * (1 - h_l^2)                            (tanh)
    dJ/dW_l = sum over the two rows of delta_l h_(l-1)^T,   dJ/db_l = sum of delta_l
    dJ/dh_(l-1) = W_l^T delta_l

Why by hand: with one pair the arithmetic is a few thousand multiply-adds, and autograd's graph
(record, walk, accumulate) costs far more than that. numpy rather than torch ops: on arrays this
small a numpy call costs a fraction of a torch op's dispatch. The weights are read through numpy
views of the encoder's parameters (no copy), so the update (hraml_core.optim, in place) is seen
here and by ``embed`` at once. ``tests/test_scale_training.py`` checks the value and every
gradient against autograd on the same pair.
"""
from __future__ import annotations

import numpy as np
import torch

from .encoder import MLPEncoder

#: F.normalize's eps: z = u / max(||u||, eps).
NORM_EPS = 1e-12


class ClosedFormPairs:
    """Loss and gradients of one pair for ``encoder``, computed in numpy on views of its weights.

    The views are taken once (the step is small enough that re-deriving them would show) and
    taken again when the first parameter's storage was replaced (``encoder.to(...)``); in-place
    changes (the optimiser, ``load_state_dict``, a checkpoint restore) need nothing.
    """

    def __init__(self, encoder: MLPEncoder):
        if next(encoder.parameters()).device.type != "cpu":
            raise ValueError("the closed-form pair step runs on the CPU")
        self.encoder = encoder
        self._bind()

    def _bind(self) -> None:
        self.params = list(self.encoder.parameters())
        self.views = [p.detach().numpy() for p in self.params]
        # The gradients are written into these (torch tensors and numpy views of them), overwritten
        # by the next call: no allocation, no torch.from_numpy per step.
        self.grads = [torch.zeros_like(p, requires_grad=False) for p in self.params]
        self._grad_views = [g.numpy() for g in self.grads]
        self._ptr = self.params[0].data_ptr()
        self.tanh_out = self.encoder.out_activation == "tanh"

    def loss_and_grads(self, x2: np.ndarray, target: float) -> tuple[float, list[torch.Tensor]]:
        """(J, [dJ/dW_1, dJ/db_1, ..., dJ/dW_L, dJ/db_L]) for the rows ``x2`` (2 x d, float32) of one
        pair with relation target ``target``. The gradients follow ``encoder.parameters()``' order,
        without the weight-decay term (the optimiser adds it); they are :attr:`grads`, which the
        next call overwrites."""
        if self.params[0].data_ptr() != self._ptr:
            self._bind()
        views, gviews = self.views, self._grad_views
        n_layers = len(views) // 2
        last = n_layers - 1
        tanh_out = self.tanh_out
        hs = [x2]
        h = x2
        for l in range(n_layers):
            h = h @ views[2 * l].T
            h += views[2 * l + 1]
            if l < last or tanh_out:
                np.tanh(h, out=h)
            hs.append(h)
        norm = np.sqrt((h * h).sum(1))
        n0, n1 = max(float(norm[0]), NORM_EPS), max(float(norm[1]), NORM_EPS)
        z = h / np.array([[n0], [n1]], dtype=h.dtype)
        diff = z[0] - z[1]
        r = float(diff @ diff) - float(target)
        # dJ/dz_0 = r diff = -dJ/dz_1; through the normalisation, row i: (g - z_i (z_i . g)) / n_i
        # (below eps F.normalize divides by the constant eps: no projection).
        proj = z @ diff
        if n0 == NORM_EPS:
            proj[0] = 0.0
        if n1 == NORM_EPS:
            proj[1] = 0.0
        delta = z * proj[:, None]
        np.subtract(diff, delta, out=delta)
        delta *= np.array([[r / n0], [-r / n1]], dtype=h.dtype)
        for l in range(last, -1, -1):
            if l < last or tanh_out:
                h = hs[l + 1]
                h *= h  # h is not needed after this
                np.subtract(1.0, h, out=h)
                delta *= h
            np.matmul(delta.T, hs[l], out=gviews[2 * l])
            np.add(delta[0], delta[1], out=gviews[2 * l + 1])
            if l:
                delta = delta @ views[2 * l]
        return 0.25 * r * r, self.grads

    def squared_norm(self) -> float:
        """sum ||theta||^2 over the encoder's parameters (r(theta) of eq. 5)."""
        total = 0.0
        for a in self.views:
            total += float(np.vdot(a, a))
        return total


def pair_loss_and_grads(encoder: MLPEncoder, x2: np.ndarray, target: float) -> tuple[float, list[np.ndarray]]:
    """:meth:`ClosedFormPairs.loss_and_grads` for a one-off call."""
    return ClosedFormPairs(encoder).loss_and_grads(x2, target)
