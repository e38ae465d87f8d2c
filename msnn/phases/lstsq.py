"""The output layer solved exactly: least squares, and LSGD (Adam on the hidden layers around it).

A stage network is linear in its output layer, ``u(x) = sum_j w_j h_j(x; theta) + b``,
so for rows affine in ``u`` the best output layer for given hidden weights is one
linear least-squares solve (the hybrid least-squares / gradient-descent of Cyr et al.
2020, the third source of the book).
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch

from .rows import RowGroup, get_output, rows_jacobian, scaled_rows, set_output, stage_params

__all__ = ["RankWarning", "least_squares", "linear_check", "solve_output_layer"]


class RankWarning(UserWarning):
    """An output-layer system is numerically rank-deficient (the solve is minimum-norm)."""




def least_squares(A: torch.Tensor, t: torch.Tensor, *, mu: float = 0.0, rcond: float = 1e-15,
                  equilibrate: bool = False):
    """min ||A w - t||^2 + mu ||w||^2 by SVD of [A; sqrt(mu) I], in A's dtype.

    Singular values below ``rcond * s_max`` are dropped (minimum-norm solution).
    ``equilibrate``: solve for the columns scaled to unit norm (then ``mu`` weighs the
    scaled unknowns), so that a column far larger than the others (a feature of high
    frequency under a second derivative) does not set the cut-off for all of them.
    Returns (w, rank, U, s): the solution, the numerical rank, the kept left singular
    vectors (rows of A only) and all singular values."""
    if equilibrate:
        norms = torch.linalg.vector_norm(A, dim=0)
        norms = torch.where(norms > 0, norms, torch.ones_like(norms))
        w, rank, U, s = least_squares(A / norms, t, mu=mu, rcond=rcond)
        return w / norms, rank, U, s
    m = A.shape[1]
    if mu > 0:
        A_ = torch.cat([A, math.sqrt(mu) * torch.eye(m, dtype=A.dtype, device=A.device)])
        t_ = torch.cat([t, torch.zeros(m, dtype=t.dtype, device=t.device)])
    else:
        A_, t_ = A, t
    U, s, Vh = torch.linalg.svd(A_, full_matrices=False)
    keep = s > rcond * s[0] if s.numel() and s[0] > 0 else torch.zeros_like(s, dtype=torch.bool)
    rank = int(keep.sum())
    coef = torch.where(keep, (U.T @ t_) / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
    return Vh.T @ coef, rank, U[: A.shape[0], keep], s


def linear_check(net, groups, R, A, w) -> None:
    """Raise if the rows are not affine in the output layer (a nonlinear equation)."""
    c = R - A @ w
    dw = 1e-3 * (1.0 + w.abs()) * torch.sign(torch.sin(torch.arange(w.numel(), dtype=w.dtype, device=w.device) + 1))
    ps = stage_params(net)
    W, b = ps[-2].detach(), ps[-1].detach()
    w2 = w + dw
    trial = [p.detach() for p in ps[:-2]] + [w2[:-1].reshape(W.shape), w2[-1:].reshape(b.shape)]
    R2 = scaled_rows(net, groups, trial)
    pred = A @ w2 + c
    err = float((R2 - pred).norm())
    scale = float(R2.norm()) + float(pred.norm()) + 1e-300
    tol = max(1e-8, 1e3 * torch.finfo(R.dtype).eps)  # 1e-8 in float64; above float32's rounding
    if err > tol * scale:
        raise ValueError(
            "the residual is not linear in u (relative misfit of its linearization in the output layer: "
            f"{err / scale:.1e}): the output layer cannot be solved exactly; use a Gauss-Newton phase "
            "on all parameters, ('lm', n), instead of 'output-lstsq', 'lsgd' or 'vp-lm'")


def solve_output_layer(net: torch.nn.Module, groups: Sequence[RowGroup], *, mu: float = 0.0, rcond: float = 1e-15,
                       check_linear: bool = True, warn_rank: bool = True, equilibrate: bool = False
                       ) -> tuple[float, int]:
    """Set the output layer of ``net`` to the exact least-squares solution; returns (loss, rank).

    Solves min_w sum_g weight_g mean((A_g w + c_g)^2) + mu ||w||^2 by an SVD in the
    network's dtype, dropping singular values below ``rcond * s_max`` (of the columns
    scaled to unit norm with ``equilibrate``, see :func:`least_squares`).

    Raises:
        ValueError: the rows are not linear in the output layer (a nonlinear equation:
            use the "lm" phase).

    Warns:
        RankWarning: the system has lower numerical rank than columns.
    """
    R, A = rows_jacobian(net, groups, "output")
    w0 = get_output(net)
    if check_linear:
        linear_check(net, groups, R, A, w0)
    c = R - A @ w0
    w, rank, _, _ = least_squares(A, -c, mu=mu, rcond=rcond, equilibrate=equilibrate)
    if warn_rank and rank < A.shape[1]:
        warnings.warn(f"the output-layer system has numerical rank {rank} of {A.shape[1]} columns "
                      f"(rcond {rcond:g}); the solve keeps the minimum-norm solution", RankWarning, stacklevel=2)
    set_output(net, w)
    loss = float(((A @ w + c) ** 2).sum()) + (0.0 if equilibrate else mu * float((w ** 2).sum()))
    return loss, rank
