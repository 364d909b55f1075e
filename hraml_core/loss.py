"""The relation-alignment objective of HRAML (paper, eq. 5).

    J = 1/4 * sum_(i,j) (D_ij^2 - g(y_i, y_j))^2 + lambda * sum_m (||W_m||_F^2 + ||b_m||^2)

:func:`alignment_loss` is eq. 5 to the letter (``reduction="sum"``). Training uses
``reduction="mean"``, the same objective divided by the number of pairs in the step, so that one
learning rate works for one pair (Algorithm 1) and for the 130k pairs of a 512-sample batch alike.
"""
from __future__ import annotations

import torch


def pairwise_sq_dists(Z: torch.Tensor) -> torch.Tensor:
    """A_ij = D_ij^2 = ||z_i - z_j||^2 for the rows of Z."""
    sq = Z.square().sum(1)
    # The Gram-matrix form costs one matmul; rounding leaves ~1e-7 on the diagonal, which callers
    # either mask (training) or zero (display).
    return (sq[:, None] + sq[None, :] - 2.0 * (Z @ Z.T)).clamp_min(0)


class _AllPairsAlignment(torch.autograd.Function):
    """1/4 * mean over i != j of (||z_i - z_j||^2 - G_ij)^2, with a closed-form backward.

    Written by hand because autograd's generic graph walks the B x B matrix about fifteen times
    (sub, pow, mask, clamp and their backwards) where the closed form needs two passes and one
    matrix product: with R = A - G (diagonal zeroed) and c = 1 / (4 B (B - 1)),
        dL/dZ = 8c (diag(R 1) Z - R Z).
    ``tests/test_loss_and_encoder.py`` checks it against autograd and finite differences.
    """

    @staticmethod
    def forward(ctx, Z: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        B = Z.shape[0]
        sq = Z.square().sum(1)
        R = torch.addmm(sq[:, None] + sq[None, :], Z, Z.T, alpha=-2.0).sub_(G)
        R.fill_diagonal_(0.0)
        c = 0.25 / (B * (B - 1))
        ctx.save_for_backward(Z, R)
        ctx.c = c
        return c * R.square().sum()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        Z, R = ctx.saved_tensors
        grad = torch.addmm(R.sum(1, keepdim=True) * Z, R, Z, alpha=-1.0)
        return grad.mul_(8.0 * ctx.c * grad_out), None


def all_pairs_alignment_loss(Z: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Eq. 5's alignment term averaged over every pair i < j of the rows of Z (G: B x B, symmetric)."""
    if Z.shape[0] < 2 or G.shape != (Z.shape[0], Z.shape[0]):
        raise ValueError(f"need at least 2 embeddings and a matching B x B relation, got {tuple(Z.shape)}, {tuple(G.shape)}")
    return _AllPairsAlignment.apply(Z, G.to(Z.dtype))


class _BlockedAllPairsAlignment(torch.autograd.Function):
    """:class:`_AllPairsAlignment` computed ``block`` rows at a time, never holding a B x B matrix.

    R's row block I is ``sq_I + sq^T - 2 Z_I Z^T - G_I`` (its entries (i, i) zeroed); the loss
    sums ``c * ||R_I||^2`` over the blocks and, R being symmetric, the gradient's rows I are
    ``8c (R_I 1 * Z_I - R_I Z)``. The backward recomputes each R_I (and asks ``G_rows`` for G's
    rows again) instead of keeping them: twice the arithmetic of the unblocked loss for memory in
    O(block * B) instead of O(B^2).
    """

    @staticmethod
    def forward(ctx, Z: torch.Tensor, G_rows, block: int) -> torch.Tensor:
        B = Z.shape[0]
        sq = Z.square().sum(1)
        c = 0.25 / (B * (B - 1))
        total = Z.new_zeros(())
        for s in range(0, B, block):
            R = _residual_block(Z, sq, G_rows, s, min(s + block, B))
            total += R.square().sum()
        ctx.save_for_backward(Z)
        ctx.G_rows, ctx.block, ctx.c = G_rows, block, c
        return c * total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (Z,) = ctx.saved_tensors
        B = Z.shape[0]
        sq = Z.square().sum(1)
        grad = torch.empty_like(Z)
        for s in range(0, B, ctx.block):
            e = min(s + ctx.block, B)
            R = _residual_block(Z, sq, ctx.G_rows, s, e)
            grad[s:e] = torch.addmm(R.sum(1, keepdim=True) * Z[s:e], R, Z, alpha=-1.0)
        return grad.mul_(8.0 * ctx.c * grad_out), None, None


def _residual_block(Z: torch.Tensor, sq: torch.Tensor, G_rows, s: int, e: int) -> torch.Tensor:
    """Rows s:e of R = A - G with R_ii = 0."""
    R = torch.addmm(sq[s:e, None] + sq[None, :], Z[s:e], Z.T, alpha=-2.0).sub_(G_rows(s, e).to(Z.dtype))
    R.diagonal(offset=s).fill_(0.0)
    return R


#: Bytes per entry of a step's B x B pair matrices (float32): the loss holds A - G, G, and a
#: temporary of the same size at once.
PAIR_MATRIX_BYTES = 3 * 4


def pair_block_rows(batch: int, budget_bytes: float) -> int:
    """Rows per block so that a block's pair matrices (rows x batch) fit in ``budget_bytes``;
    ``batch`` itself when the whole B x B fits (no blocking)."""
    rows = int(budget_bytes // (PAIR_MATRIX_BYTES * max(batch, 1)))
    return max(1, min(batch, rows))


def blocked_all_pairs_alignment_loss(Z: torch.Tensor, G_rows, block: int) -> torch.Tensor:
    """:func:`all_pairs_alignment_loss` in row blocks of ``block``: ``G_rows(s, e)`` returns rows s:e
    of the B x B relation (``(e - s) x B``), so G is never built whole either. Same value and
    gradient as the unblocked loss, to rounding (``tests/test_scale_training.py``)."""
    if Z.shape[0] < 2:
        raise ValueError(f"need at least 2 embeddings, got {tuple(Z.shape)}")
    if int(block) < 1:
        raise ValueError(f"block must be a positive number of rows, got {block!r}")
    return _BlockedAllPairsAlignment.apply(Z, G_rows, int(block))


def alignment_loss(d2: torch.Tensor, g: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """1/4 * sum (d2 - g)^2 over the given pairs (``"mean"`` divides by their number)."""
    if d2.shape != g.shape:
        raise ValueError(f"d2 and g must have the same shape, got {tuple(d2.shape)} and {tuple(g.shape)}")
    sq = (d2 - g).square()
    if reduction == "sum":
        return 0.25 * sq.sum()
    if reduction == "mean":
        return 0.25 * sq.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def hraml_objective(
    d2: torch.Tensor, g: torch.Tensor, encoder: torch.nn.Module, weight_decay: float, reduction: str = "sum"
) -> torch.Tensor:
    """Eq. 5: the alignment term plus lambda * (sum ||W||_F^2 + ||b||^2) over the encoder's layers."""
    loss = alignment_loss(d2, g, reduction)
    if weight_decay:
        loss = loss + weight_decay * l2_penalty(encoder)
    return loss


def l2_penalty(module: torch.nn.Module) -> torch.Tensor:
    """sum_m ||W_m||_F^2 + ||b_m||^2 over all parameters: r(theta) of eq. 5 without lambda."""
    return sum(p.square().sum() for p in module.parameters())
