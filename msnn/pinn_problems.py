"""The PINN test problems of Section 3 of Wang & Lai (2024), with exact solutions.

Each function returns a :class:`msnn.pinn.PINNProblem`; chapters 5-7 of the book
use them.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .pinn import PINNProblem, grad, laplacian

__all__ = ["ode_3_3", "poisson_3_20", "poisson_exact", "POISSON_AMPLITUDE", "boundary_points_2d"]

#: amplitude 1 / [2 (6 pi)^2] of the exact solution (3.21) of eq. (3.20).
POISSON_AMPLITUDE = 1.0 / (2 * (6 * math.pi) ** 2)


def ode_3_3() -> PINNProblem:
    """du/dx = u + x on [-1, 1] with u(0) = 0, eq. (3.3); exact solution e^x - x - 1.

    Residual r = u' - u - x (eq. 3.4).
    """
    def residual(x, u):
        return grad(u, x, 1) - u - x[:, 0]

    return PINNProblem(residual=residual, domain=[(-1.0, 1.0)], data_x=np.zeros((1, 1)), data_u=np.zeros(1),
                       exact=lambda x: np.exp(np.asarray(x)[:, 0]) - np.asarray(x)[:, 0] - 1, name="eq. (3.3)")


def poisson_exact(x, k: int = 6) -> np.ndarray:
    """u_g = sin(k pi x) sin(k pi y) / [2 (k pi)^2], eq. (3.21) for k = 6."""
    x = np.asarray(x, dtype=np.float64)
    return np.sin(k * np.pi * x[:, 0]) * np.sin(k * np.pi * x[:, 1]) / (2 * (k * np.pi) ** 2)


def boundary_points_2d(n_per_side: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """``n_per_side`` uniform points on each side of the square [lo, hi]^2 (corners once)."""
    if n_per_side < 2:
        raise ValueError(f"n_per_side must be >= 2, got {n_per_side}")
    t = np.linspace(lo, hi, int(n_per_side))
    pts = np.concatenate([
        np.column_stack([t, np.full_like(t, lo)]), np.column_stack([t, np.full_like(t, hi)]),
        np.column_stack([np.full(t.size - 2, lo), t[1:-1]]), np.column_stack([np.full(t.size - 2, hi), t[1:-1]]),
    ])
    return pts


def poisson_3_20(n_boundary: int = 200, k: int = 6) -> PINNProblem:
    """u_xx + u_yy = -sin(6 pi x) sin(6 pi y) on [-1, 1]^2, u = 0 on the boundary, eq. (3.20).

    Residual r = u_xx + u_yy + sin(6 pi x) sin(6 pi y); exact solution eq. (3.21),
    amplitude 1.407e-3, RMS 7.04e-4, f_d = 3 per axis. ``n_boundary`` points per side
    carry u = 0. An integer ``k`` other than 6 gives the same problem with source
    sin(k pi x) sin(k pi y) (f_d = k/2), a cheaper variant for CPU runs.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    kp = int(k) * math.pi

    def residual(x, u):
        return laplacian(u, x) + torch.sin(kp * x[:, 0]) * torch.sin(kp * x[:, 1])

    xb = boundary_points_2d(n_boundary)
    return PINNProblem(residual=residual, domain=[(-1.0, 1.0), (-1.0, 1.0)], data_x=xb,
                       data_u=np.zeros(len(xb)), exact=lambda x: poisson_exact(x, int(k)),
                       name="eq. (3.20)" if k == 6 else f"eq. (3.20) with sin({int(k)} pi x) sin({int(k)} pi y)")
