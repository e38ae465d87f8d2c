"""The PINN test problems of Section 3 of Wang & Lai (2024): now in :mod:`msnn.problems`.

Kept so that ``from msnn.pinn_problems import ode_3_3`` goes on working.
"""
from .problems import POISSON_AMPLITUDE, boundary_points_2d, ode_3_3, poisson_3_20, poisson_exact

__all__ = ["ode_3_3", "poisson_3_20", "poisson_exact", "POISSON_AMPLITUDE", "boundary_points_2d"]
