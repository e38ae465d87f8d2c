"""The papers' targets and equations, with exact solutions where they exist.

Each function cites the equation it implements. Inputs and outputs are numpy
float64 arrays.
"""
from __future__ import annotations

import numpy as np

__all__ = ["eq_2_2", "eq_2_6", "eq_2_6_dx", "code_target_1d", "si_target_2d", "uniform_grid", "grid_2d"]


def eq_2_2(x):
    """u_g(x) = sin(2x + 1) + 0.2 exp(1.3x), the 1D target of eq. (2.2) (Figs. 1, 5, 15)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sin(2 * x + 1) + 0.2 * np.exp(1.3 * x)


def eq_2_6(x, m: float):
    """u(x) = (1 - x^2/2) cos(m (x + 0.5 x^3)), the high-frequency target of eq. (2.6) (Figs. 2-4)."""
    x = np.asarray(x, dtype=np.float64)
    return (1 - x ** 2 / 2) * np.cos(m * (x + 0.5 * x ** 3))


def eq_2_6_dx(x, m: float):
    """du/dx of eq. (2.6): -x cos(m s) - (1 - x^2/2) m (1 + 1.5 x^2) sin(m s), s = x + 0.5 x^3 (Fig. 2(c))."""
    x = np.asarray(x, dtype=np.float64)
    s = x + 0.5 * x ** 3
    return -x * np.cos(m * s) - (1 - x ** 2 / 2) * m * (1 + 1.5 * x ** 2) * np.sin(m * s)


def code_target_1d(x):
    """ln(x + 2) cos(2x + x^3): the default target of the authors' regression code."""
    x = np.asarray(x, dtype=np.float64)
    return np.log(x + 2) * np.cos(2 * x + x ** 3)


def si_target_2d(x, y):
    """u_g(x, y) = [sin(2x + 1) - 0.5 x](1 - y^2), the 2D target of the SI-MSNN paper (Fig. 1 there)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return (np.sin(2 * x + 1) - 0.5 * x) * (1 - y ** 2)


def uniform_grid(n: int, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """``n`` uniform points on [lo, hi], endpoints included."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    return np.linspace(lo, hi, int(n))


def grid_2d(nx: int, ny: int | None = None, lo: float = -1.0, hi: float = 1.0):
    """A full tensor grid on [lo, hi]^2 as (X, Y) arrays of shape (nx, ny), axis 0 along x."""
    ny = nx if ny is None else ny
    return np.meshgrid(uniform_grid(nx, lo, hi), uniform_grid(ny, lo, hi), indexing="ij")
