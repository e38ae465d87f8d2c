"""A stage network's residual rows: the points, the functional forward, the Jacobian.

The rows of a stage are given as *row groups* (:class:`RowGroup`): points, a function
of the stage network that returns one residual per point, and a weight. The loss is
``sum_g weight_g mean(rows_g^2)``. The Jacobian of all rows with respect to all
parameters comes from one backward pass: each point gets its own copy of the
parameters (row i depends on point i only), so the gradient of the summed rows with
respect to copy i is row i of the Jacobian. For a linear equation the output-layer
columns of that Jacobian are the least-squares matrix ``A``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..networks import points_per_chunk, stage_forward

__all__ = ["RowGroup", "ROUND_OFF_FLOOR", "MAX_JACOBIAN_BYTES", "stage_params", "forward_with", "scaled_rows",
           "check_jacobian_size", "rows_jacobian", "set_output", "get_output", "hidden_params", "output_layer_norm",
           "evaluate", "round_off", "rows_loss", "loss_graph"]


@dataclass
# --------------------------------------------------------------------- rows
@dataclass
class RowGroup:
    """Residual rows of one kind: ``rows(u, x)`` returns one residual per point of ``x``.

    Args:
        x: the points, a tensor (N, d) in the stage network's dtype and device.
        rows: ``rows(u, x) -> (N,)``: the residual at each point given the stage
            network ``u`` (a callable x -> (N,)). Row i must depend on point i only
            (it may differentiate ``u`` with respect to ``x``, which requires grad).
        weight: the group's weight in the loss sum_g weight mean(rows^2).
        name: a label ("data", "equation", ...).
    """

    x: torch.Tensor
    rows: Callable
    weight: float = 1.0
    name: str = "rows"




# ------------------------------------------------------------ the network
def stage_params(net) -> list[torch.Tensor]:
    """[W_0, b_0, ..., W_L, b_L] of a single stage network, the member axis dropped."""
    if getattr(net, "n_models", 1) != 1:
        raise ValueError("second-order phases train one network, not an ensemble")
    out = []
    for w, b in zip(net.weights, net.biases):
        out += [w, b]
    return out


def _shared(h, W, b):
    return h @ W[0] + b[0, 0]


def _per_point(h, W, b):
    return torch.baddbmm(b, h, W)


def _numpy(h, W, b):
    return h @ W + b[0]


def forward_with(net, x: torch.Tensor, params: Sequence[torch.Tensor], per_point: bool) -> torch.Tensor:
    """The stage network with the given parameters; per_point: params carry a leading point axis."""
    if x.dim() == 1:
        x = x[:, None]
    h = x * net.kappa
    if per_point:
        return stage_forward(h[:, None, :], params, net.first_activation, affine=_per_point)[:, 0, 0]
    return stage_forward(h, params, net.first_activation, affine=_shared)[:, 0]


def scaled_rows(net, groups: Sequence[RowGroup], params=None) -> torch.Tensor:
    """The scaled residual vector R with loss = ||R||^2 (without mu), shared parameters."""
    ps = stage_params(net) if params is None else params
    out = []
    for g in groups:
        x = g.x.detach().requires_grad_(True)
        with torch.enable_grad():
            r = g.rows(lambda z: forward_with(net, z, ps, False), x)
        out.append(r.detach() * math.sqrt(g.weight / x.shape[0]))
    return torch.cat(out)


#: An error at or below ROUND_OFF_FLOOR * max|u| is float64 round-off of the solution:
#: the drivers add no stage below it (it would fit rounding noise).
ROUND_OFF_FLOOR = 2 * float(np.finfo(np.float64).eps)

#: The largest Jacobian (with its per-point parameter copies) a second-order phase builds.
MAX_JACOBIAN_BYTES = 8 * 2 ** 30


def check_jacobian_size(net, groups: Sequence[RowGroup]) -> None:
    rows = sum(int(g.x.shape[0]) for g in groups)
    n_par = sum(p.numel() for p in stage_params(net))
    need = 3 * rows * n_par * torch.finfo(net.dtype).bits // 8
    if need > MAX_JACOBIAN_BYTES:
        raise ValueError(
            f"the Jacobian of {rows} residual rows by {n_par} parameters needs about {need / 2 ** 30:.1f} GiB "
            f"(with the per-point parameter copies), over the {MAX_JACOBIAN_BYTES / 2 ** 30:.0f} GiB limit "
            "(msnn.phases.rows.MAX_JACOBIAN_BYTES): use fewer points or a smaller network for this phase")


def rows_jacobian(net, groups: Sequence[RowGroup], which: str = "all"):
    """Scaled rows R and their Jacobian with respect to the parameters, one backward per group.

    which: "all" (every parameter) or "output" (the output layer only). Returns
    (R, J) with J of shape (M, P) (columns in stage_params order; for "output", W_L then b_L).
    """
    ps = stage_params(net)
    n_out = 2
    Rs, Js = [], []
    for g in groups:
        n = g.x.shape[0]
        if which == "output":
            leaves = [p.detach().expand((n,) + tuple(p.shape[1:])).clone().requires_grad_(True) for p in ps[-n_out:]]
            use = [p.detach().expand((n,) + tuple(p.shape[1:])) for p in ps[:-n_out]] + leaves
        else:
            use = leaves = [p.detach().expand((n,) + tuple(p.shape[1:])).clone().requires_grad_(True) for p in ps]
        x = g.x.detach().requires_grad_(True)
        with torch.enable_grad():
            r = g.rows(lambda z: forward_with(net, z, use, True), x)
            grads = torch.autograd.grad(r.sum(), leaves, allow_unused=True)
        s = math.sqrt(g.weight / n)
        cols = [(torch.zeros_like(l) if gr is None else gr).reshape(n, -1) for gr, l in zip(grads, leaves)]
        Js.append(torch.cat(cols, 1) * s)
        Rs.append(r.detach() * s)
    return torch.cat(Rs), torch.cat(Js)


def set_output(net, w: torch.Tensor) -> None:
    W, b = net.weights[-1], net.biases[-1]
    with torch.no_grad():
        W.copy_(w[:-1].reshape(W.shape))
        b.copy_(w[-1:].reshape(b.shape))


def get_output(net) -> torch.Tensor:
    return torch.cat([net.weights[-1].detach().reshape(-1), net.biases[-1].detach().reshape(-1)])


def hidden_params(net) -> list[torch.Tensor]:
    return stage_params(net)[:-2]


def output_layer_norm(net: torch.nn.Module) -> float:
    """||w_out||_1 of the output layer (weights and bias), which bounds the stage's round-off."""
    return float(get_output(net).abs().sum())


def evaluate(net: torch.nn.Module, x, dtype=np.longdouble) -> np.ndarray:
    """The stage network evaluated in numpy at ``dtype`` (default long double), shape (M,).

    ``x`` (a tensor or array, shape (M,) or (M, d)) is converted to ``dtype`` first, so a
    long-double ``x`` keeps its extra digits. On x86 numpy's longdouble is 80-bit extended
    precision (64-bit mantissa, about 1e-19), on some platforms quad precision, and on
    others (Windows, macOS on arm64) float64 itself.
    """
    ps = [p.detach().cpu().numpy()[0] for p in stage_params(net)]
    xx = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    h = xx.reshape(xx.shape[0], -1).astype(dtype) * net.kappa.detach().cpu().numpy().astype(dtype)
    ps = [p.astype(dtype) for p in ps]
    return stage_forward(h, ps, net.first_activation, affine=_numpy, sin=np.sin, tanh=np.tanh)[:, 0]


def round_off(net: torch.nn.Module, x: torch.Tensor) -> float:
    """RMS difference of the stage evaluated in float64 and in long double (numpy), on ``x``.

    The float64 sum sum_j w_j h_j loses about 1e-16 ||w||_1 max|h| to rounding when
    the terms cancel; this measures it (in numpy's longdouble, see :func:`evaluate`;
    where that is float64 itself it measures nothing).
    """
    x = x.detach()
    chunk = points_per_chunk([net], 2 ** 22, 1024)  # memory ~ points x units, in long double
    total = 0.0
    for s in range(0, x.shape[0], chunk):
        with torch.no_grad():
            f64 = net(x[s:s + chunk]).cpu().numpy().astype(np.longdouble)
        total += float(np.sum((f64 - evaluate(net, x[s:s + chunk])) ** 2))
    return math.sqrt(total / max(x.shape[0], 1))




def rows_loss(net: torch.nn.Module, groups: Sequence[RowGroup]) -> float:
    """sum_g weight_g mean(rows_g^2) at the network's current parameters."""
    return float(loss_graph(net, groups).detach())


def loss_graph(net, groups) -> torch.Tensor:
    """sum_g weight_g mean(rows_g^2) with the network's own parameters, differentiable.

    Autograd is on even inside ``torch.no_grad()``: rows may differentiate u with respect to x."""
    total = 0.0
    with torch.enable_grad():
        for g in groups:
            x = g.x.detach().requires_grad_(True)
            r = g.rows(net, x)
            total = total + g.weight * torch.mean(r ** 2)
    return total

