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

Why by hand: with one pair the arithmetic is about a hundred thousand multiply-adds, and
autograd's graph (record, walk, accumulate) and torch.optim's step cost several times that. numpy rather than torch ops: on arrays this
small a numpy call costs a fraction of a torch op's dispatch. The weights are read through numpy
views of the encoder's parameters (no copy), so the update (hraml_core.optim, in place) is seen
here and by ``embed`` at once. ``tests/test_scale_training.py`` checks the value and every
gradient against autograd on the same pair.
"""
from __future__ import annotations

import math

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
        # The normalisation and the pair's distance through the 2 x 2 Gram matrix of the outputs
        # (scalars in Python): with m_i = max(||u_i||, eps), z_i = u_i / m_i and p_i = z_i . (z_0 - z_1),
        #   d = ||z_0 - z_1||^2,  dJ/du_0 = r/m_0 (z_0 (1 - p_0) - z_1),  dJ/du_1 = r/m_1 (z_1 (1 + p_1) - z_0)
        # (p_i = 0 below eps, where F.normalize divides by the constant eps): delta = A u, A 2 x 2.
        (g00, g01), (g10, g11) = (h @ h.T).tolist()
        m0, m1 = max(math.sqrt(g00), NORM_EPS), max(math.sqrt(g11), NORM_EPS)
        a00, a11, a01 = g00 / (m0 * m0), g11 / (m1 * m1), g01 / (m0 * m1)
        r = a00 + a11 - 2.0 * a01 - float(target)
        p0 = a00 - a01 if m0 > NORM_EPS else 0.0
        p1 = a01 - a11 if m1 > NORM_EPS else 0.0
        cross = -r / (m0 * m1)
        A = np.array([[r * (1.0 - p0) / (m0 * m0), cross], [cross, r * (1.0 + p1) / (m1 * m1)]], dtype=h.dtype)
        delta = A @ h
        for l in range(last, -1, -1):
            if l < last or tanh_out:
                h = hs[l + 1]
                np.multiply(h, h, out=h)  # the layer's output is not needed after this
                np.subtract(1.0, h, out=h)
                delta *= h
            np.matmul(delta.T, hs[l], out=gviews[2 * l])
            np.add(delta[0], delta[1], out=gviews[2 * l + 1])  # the two rows' sum
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
