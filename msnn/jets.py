"""Taylor-mode jets: a stage network and its first four input derivatives in one forward pass.

The Burgers profile equation of Section 4 of Wang & Lai (2024) needs ``U`` up to its
fourth derivative (the smoothness loss of eq. 4.4 is built on the third derivative of
the residue, eq. 4.5). Nested autograd would take four backward passes through a graph
that grows with every pass; here the derivatives are pushed through the layers with
the input instead:

* :func:`network_jet`: ``[N, N', ..., N^(order)]`` of a 1D :class:`~msnn.networks.StageNetwork`
  (Faa di Bruno per layer), differentiable in the weights;
* :func:`odd_jet`: the same for the odd ansatz ``U = y [N(y) + N(-y)]`` of Appendix D;
* :func:`residual_jet`: the residue of eq. (4.5) and its first three derivatives from
  the jet of ``U``.

:mod:`msnn.burgers` builds its staged solution and its loss on these; they are
importable from there too.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .networks import StageNetwork

__all__ = ["network_jet", "odd_jet", "residual_jet"]


def _act_derivs(z: torch.Tensor, kind: str, order: int) -> list[torch.Tensor]:
    """sigma(z) and its derivatives up to ``order`` (<= 4) for tanh or sin."""
    if kind == "tanh":
        t = torch.tanh(z)
        s = 1 - t * t
        out = [t, s, -2 * t * s, s * (6 * t * t - 2), 8 * t * s * (2 - 3 * t * t)]
    else:
        sn, cs = torch.sin(z), torch.cos(z)
        out = [sn, cs, -sn, -cs, sn]
    return out[: order + 1]


def _compose(sig: list[torch.Tensor], z: list[torch.Tensor]) -> list[torch.Tensor]:
    """Derivatives of sigma(z(y)) from those of sigma and z (Faa di Bruno, orders <= 4)."""
    n = len(z) - 1
    out = [sig[0]]
    if n >= 1:
        out.append(sig[1] * z[1])
    if n >= 2:
        out.append(sig[2] * z[1] ** 2 + sig[1] * z[2])
    if n >= 3:
        out.append(sig[3] * z[1] ** 3 + 3 * sig[2] * z[1] * z[2] + sig[1] * z[3])
    if n >= 4:
        out.append(sig[4] * z[1] ** 4 + 6 * sig[3] * z[1] ** 2 * z[2]
                   + sig[2] * (3 * z[2] ** 2 + 4 * z[1] * z[3]) + sig[1] * z[4])
    return out


def network_jet(net: StageNetwork, y: torch.Tensor, order: int = 4) -> list[torch.Tensor]:
    """``[N(y), N'(y), ..., N^(order)(y)]`` of a 1D stage network, each of shape (n,).

    The derivatives are pushed through the layers with the input (Taylor mode): the
    first layer is affine in y, so its pre-activation has one nonzero derivative,
    and every tanh/sin layer maps a jet to a jet by Faa di Bruno's formula. One pass
    costs about ``order + 1`` forward passes and the result stays differentiable in
    the network's weights. Agrees with nested autograd to round-off (tested).
    """
    if not isinstance(net, StageNetwork):
        raise TypeError(f"network_jet needs a StageNetwork, got {type(net).__name__}")
    if net.in_dim != 1 or net.n_models != 1:
        raise ValueError("network_jet needs a single network with one input")
    if not (isinstance(order, (int, np.integer)) and 0 <= order <= 4):
        raise ValueError(f"order must be an integer in 0..4, got {order!r}")
    y = y.reshape(-1, 1).to(net.dtype)
    W0, b0 = net.weights[0][0], net.biases[0][0]
    k = net.kappa.reshape(-1)[0]
    z0 = (y * k) @ W0 + b0
    zeros = torch.zeros_like(z0)
    z = [z0, (k * W0).expand_as(z0)] + [zeros] * (order - 1)
    z = z[: order + 1]
    h = _compose(_act_derivs(z[0], net.first_activation, order), z)
    for W, b in zip(list(net.weights)[1:-1], list(net.biases)[1:-1]):
        z = [h[0] @ W[0] + b[0]] + [hj @ W[0] for hj in h[1:]]
        h = _compose(_act_derivs(z[0], "tanh", order), z)
    W, b = net.weights[-1][0], net.biases[-1][0]
    out = [(h[0] @ W + b)[:, 0]] + [(hj @ W)[:, 0] for hj in h[1:]]
    return out


def odd_jet(net: StageNetwork, y: torch.Tensor, order: int = 4) -> list[torch.Tensor]:
    """Jet of the odd ansatz ``U(y) = y [N(y) + N(-y)]`` (Appendix D), orders 0..``order``.

    With ``S(y) = N(y) + N(-y)``, ``S^(j)(y) = N^(j)(y) + (-1)^j N^(j)(-y)`` and, by
    Leibniz, ``U^(j) = y S^(j) + j S^(j-1)``. U is odd for any weights.
    """
    y = y.reshape(-1).to(net.dtype)
    both = network_jet(net, torch.cat([y, -y]), order)
    n = y.shape[0]
    S = [d[:n] + (-1) ** j * d[n:] for j, d in enumerate(both)]
    return [y * S[0]] + [y * S[j] + j * S[j - 1] for j in range(1, order + 1)]


def residual_jet(U: Sequence[torch.Tensor], y: torch.Tensor, lam: float | torch.Tensor,
                 order: int = 3) -> list[torch.Tensor]:
    """``[r, r', ..., r^(order)]`` of eq. (4.5) from the jet of U (needs U up to ``order + 1``).

    With ``A = (1 + lambda) y + U``: ``r = -lambda U + A U'`` and, by Leibniz,
    ``r^(j) = -lambda U^(j) + sum_i C(j, i) A^(i) U^(j-i+1)``, where ``A' = 1 + lambda + U'``
    and ``A^(i) = U^(i)`` for ``i >= 2``.
    """
    if len(U) < order + 2:
        raise ValueError(f"residual derivatives up to order {order} need U up to order {order + 1}")
    y = y.reshape(-1).to(U[0].dtype)
    A = [(1 + lam) * y + U[0], 1 + lam + U[1]] + list(U[2:])
    out = []
    for j in range(order + 1):
        r = -lam * U[j]
        for i in range(j + 1):
            r = r + math.comb(j, i) * A[i] * U[j - i + 1]
        out.append(r)
    return out
