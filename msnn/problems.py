"""The papers' targets and equations, with exact solutions where they exist: all in one place.

* regression targets (Section 2 of Wang & Lai; the SI paper's 2D target), numpy in
  and out, float64;
* the PINN problems of Section 3 as :class:`msnn.pinn.PINNProblem` (eq. 3.3, 3.20,
  3.44), each with its exact solution;
* the self-similar Burgers profiles of Appendix D (eq. D.6) to machine precision, with
  their derivatives.

Each function cites the equation it implements. (``msnn.pinn_problems``,
``msnn.multistage_pinn`` and ``msnn.burgers`` re-export what used to live there.)
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
import torch

from ._common import count as _count
from .pinn import PINNProblem, grad, laplacian

__all__ = ["eq_2_2", "eq_2_6", "eq_2_6_dx", "code_target_1d", "si_target_2d", "uniform_grid", "grid_2d",
           "ode_3_3", "poisson_3_20", "poisson_exact", "POISSON_AMPLITUDE", "boundary_points_2d",
           "diffusion_3_44", "finite_difference_points", "exact_profile", "exact_derivatives", "exact_residual"]


def eq_2_2(x: ArrayLike, dtype=np.float64):
    """u_g(x) = sin(2x + 1) + 0.2 exp(1.3x), the 1D target of eq. (2.2) (Figs. 1, 5, 15).

    ``dtype=np.longdouble`` evaluates it in extended precision (the constants 0.2 and 1.3
    included), the reference for a float64 model's last digits.
    """
    x = np.asarray(x, dtype=dtype)
    return np.sin(2 * x + 1) + dtype("0.2") * np.exp(dtype("1.3") * x)


def eq_2_6(x: ArrayLike, m: float):
    """u(x) = (1 - x^2/2) cos(m (x + 0.5 x^3)), the high-frequency target of eq. (2.6) (Figs. 2-4)."""
    x = np.asarray(x, dtype=np.float64)
    return (1 - x ** 2 / 2) * np.cos(m * (x + 0.5 * x ** 3))


def eq_2_6_dx(x: ArrayLike, m: float):
    """du/dx of eq. (2.6): -x cos(m s) - (1 - x^2/2) m (1 + 1.5 x^2) sin(m s), s = x + 0.5 x^3 (Fig. 2(c))."""
    x = np.asarray(x, dtype=np.float64)
    s = x + 0.5 * x ** 3
    return -x * np.cos(m * s) - (1 - x ** 2 / 2) * m * (1 + 1.5 * x ** 2) * np.sin(m * s)


def code_target_1d(x: ArrayLike):
    """ln(x + 2) cos(2x + x^3): the default target of the authors' regression code."""
    x = np.asarray(x, dtype=np.float64)
    return np.log(x + 2) * np.cos(2 * x + x ** 3)


def si_target_2d(x: ArrayLike, y: ArrayLike):
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


# ---------------------------------------------------------------- PINN problems (Section 3)
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


def poisson_exact(x: ArrayLike, k: int = 6) -> np.ndarray:
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


def diffusion_3_44(n_boundary: int = 101, t_max: float = 1.0) -> PINNProblem:
    """u_t = u_xx / 2 + 1 - x^2 + t on t in [0, t_max], x in [-1, 1], eq. (3.44).

    Initial and boundary data u(0, x) = 0 and u(t, +-1) = 0 (the paper prints the
    boundary condition as "u(+-1, x) = 0"); exact solution
    u_g = t (1 - x^2), eq. (3.45). Inputs are ordered (t, x); ``n_boundary`` uniform
    points on each of the three data edges; t_max = 1 is our choice (the paper gives
    no range).
    """
    n = _count(n_boundary, "n_boundary", 2)
    if not (math.isfinite(t_max) and t_max > 0):
        raise ValueError(f"t_max must be finite and positive, got {t_max}")

    def residual(x, u):
        return grad(u, x, 1, 0) - 0.5 * grad(u, x, 2, 1) - (1 - x[:, 1] ** 2 + x[:, 0])

    xs, ts = np.linspace(-1, 1, n), np.linspace(0, t_max, n)[1:]
    xb = np.concatenate([np.column_stack([np.zeros(n), xs]), np.column_stack([ts, -np.ones(n - 1)]),
                         np.column_stack([ts, np.ones(n - 1)])])
    return PINNProblem(residual=residual, domain=[(0.0, float(t_max)), (-1.0, 1.0)], data_x=xb,
                       data_u=np.zeros(len(xb)), exact=lambda x: np.asarray(x)[:, 0] * (1 - np.asarray(x)[:, 1] ** 2),
                       name="eq. (3.44)")


def finite_difference_points(target: float = 1e-11) -> dict:
    """The paper's estimate of a finite-difference grid for eq. (3.44) at error ``target`` (Section 3.5).

    Central differences in x (error ~ h_x^2) need h_x ~ target^(1/2); fourth-order
    Runge-Kutta in t (error ~ h_t^4) needs h_t ~ target^(1/4). The grid has
    (2 / h_x) (1 / h_t) points on [-1, 1] x [0, 1]. The paper rounds h_x to 1e-5
    and h_t to 1e-3 and quotes 1e6 x 1e3 = 1e9 points.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must lie in (0, 1), got {target}")
    hx, ht = math.sqrt(target), target ** 0.25
    return {"h_x": hx, "h_t": ht, "n_x": 2 / hx, "n_t": 1 / ht, "points": 2 / (hx * ht)}


# ---------------------------------------------------------------- Burgers profiles (Appendix D)
def check_lambda(lam: float) -> float:
    lam = float(lam)
    if not (math.isfinite(lam) and lam > 0):
        raise ValueError(f"lambda must be finite and positive, got {lam}")
    return lam


def exact_profile(y: ArrayLike, lam: float = 0.5, C: float = 1.0) -> np.ndarray:
    """The odd self-similar profile U(y) of eq. (D.6), ``y = -U - C sgn(U) |U|^(1+1/lambda)``.

    With ``a = |U|`` and ``p = 1 + 1/lambda`` the relation is ``a + C a^p = |y|``, whose
    left side is increasing and convex in ``a``; Newton's method started above the
    root at ``min(|y|, (|y|/C)^(1/p))`` therefore decreases monotonically onto it, for
    every ``y``. ``U = -sgn(y) a``. C = 1 is the boundary condition U(2) = -1.

    Args:
        y: points (any shape), float64.
        lam: lambda > 0 (1/2 is the first smooth profile).
        C: positive constant of the family.

    Returns:
        U(y), same shape as ``y``, float64, accurate to a few ulp.
    """
    lam = check_lambda(lam)
    if not (math.isfinite(C) and C > 0):
        raise ValueError(f"C must be finite and positive, got {C}")
    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf")
    p = 1.0 + 1.0 / lam
    s = np.abs(y)
    a = np.minimum(s, (s / C) ** (1.0 / p))
    for _ in range(200):
        h = a + C * a ** p - s
        step = h / (1.0 + C * p * a ** (p - 1.0))
        a_new = np.where(a > 0, a - step, 0.0)
        a_new = np.maximum(a_new, 0.0)
        if np.all(a_new >= a):  # monotone from above: no further decrease means converged
            break
        a = np.minimum(a, a_new)
    return -np.sign(y) * a


def exact_derivatives(y: ArrayLike, lam: float = 0.5, C: float = 1.0, order: int = 4) -> np.ndarray:
    """U and its derivatives up to ``order`` (<= 4) along the profile (D.6), shape (order+1, ...).

    With ``y(U) = -U - C sgn(U)|U|^p`` explicit, the derivatives of the inverse
    function follow from those of ``y(U)``:

        U' = 1/y',  U'' = -y''/y'^3,  U''' = (3 y''^2 - y' y''')/y'^5,
        U'''' = (10 y' y'' y''' - 15 y''^3 - y'^2 y'''')/y'^7.

    For lambda = 1/2 (p = 3) every term is a polynomial in U: smooth. For lambda = 0.4
    (p = 3.5), y''' ~ |U|^(1/2) puts a cusp into U''' at the origin and y'''' ~
    sgn(U)|U|^(-1/2) makes U'''' unbounded there, with opposite signs on the two sides
    (Fig. 17). At ``y = 0`` a negative power is evaluated as inf.
    """
    if not (isinstance(order, (int, np.integer)) and 0 <= order <= 4):
        raise ValueError(f"order must be an integer in 0..4, got {order!r}")
    U = exact_profile(y, lam, C)
    p = 1.0 + 1.0 / lam
    a, sg = np.abs(U), np.sign(U)
    with np.errstate(divide="ignore", invalid="ignore"):
        def pw(e):
            return np.where(a > 0, a ** e, 0.0 if e > 0 else (1.0 if e == 0 else np.inf))
        y1 = -1.0 - C * p * pw(p - 1)
        y2 = -C * p * (p - 1) * sg * pw(p - 2)
        y3 = -C * p * (p - 1) * (p - 2) * pw(p - 3)
        y4 = -C * p * (p - 1) * (p - 2) * (p - 3) * sg * pw(p - 4)
        if p == 3.0:  # polynomial case: y''' = -6 C, y'''' = 0 exactly (no 0 * inf at the origin)
            y3 = np.full_like(a, -6.0 * C)
            y4 = np.zeros_like(a)
        d = [U, 1.0 / y1, -y2 / y1 ** 3, (3 * y2 ** 2 - y1 * y3) / y1 ** 5,
             (10 * y1 * y2 * y3 - 15 * y2 ** 3 - y1 ** 2 * y4) / y1 ** 7]
    return np.stack(d[: order + 1])


def exact_residual(y: ArrayLike, lam: float = 0.5, C: float = 1.0) -> np.ndarray:
    """The residue of eq. (D.5) evaluated on the exact profile: zero up to round-off."""
    U, U1 = exact_derivatives(y, lam, C, order=1)
    y = np.asarray(y, dtype=np.float64)
    return -lam * U + ((1 + lam) * y + U) * U1
