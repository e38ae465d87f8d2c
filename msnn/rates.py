"""Fits of the convergence laws the paper reports (Section 2.3, eq. 2.11-2.12).

- the power law f_d = f_0 eps^(-alpha) between a residue's magnitude and its dominant
  frequency (eq. 2.11, read with eps in place of the misprinted e);
- the multi-stage rate eps ~ exp(-n^(1/p) / c) (p = 2 in 1D, Fig. 5c; p = 3 in 2D, Fig. 6f);
- the single-stage decay eps ~ n^slope (the paper's 1/n, Fig. 5c inset).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["power_law_exponent", "root_rate", "loglog_slope", "iterations_to_reach", "time_to_reach"]


def power_law_exponent(eps: ArrayLike, f_d: ArrayLike) -> tuple[float, float]:
    """Least-squares fit of log f_d = log f_0 - alpha log eps; returns (alpha, f_0)."""
    eps = np.asarray(eps, dtype=float)
    f_d = np.asarray(f_d, dtype=float)
    if eps.shape != f_d.shape or eps.size < 2:
        raise ValueError("need at least two (eps, f_d) pairs of equal length")
    if np.any(eps <= 0) or np.any(f_d <= 0):
        raise ValueError("eps and f_d must be positive")
    slope, icpt = np.polyfit(np.log(eps), np.log(f_d), 1)
    return float(-slope), float(math.exp(icpt))


def root_rate(n: ArrayLike, eps: ArrayLike, p: int = 2) -> dict:
    """Fit log eps = a - n^(1/p) / c; returns c (base e), c10 (eps ~ 10^(-n^(1/p)/c10)), a, r2."""
    n = np.asarray(n, dtype=float)
    eps = np.asarray(eps, dtype=float)
    if n.size < 2 or np.any(eps <= 0):
        raise ValueError("need at least two points with eps > 0")
    s = n ** (1.0 / p)
    slope, a = np.polyfit(s, np.log(eps), 1)
    pred = a + slope * s
    ss = np.sum((np.log(eps) - pred) ** 2)
    tot = np.sum((np.log(eps) - np.log(eps).mean()) ** 2)
    c = -1.0 / slope if slope < 0 else math.inf
    return {"c": float(c), "c10": float(c / math.log(10)) if math.isfinite(c) else math.inf,
            "a": float(a), "p": p, "r2": float(1 - ss / tot) if tot > 0 else 1.0}


def loglog_slope(n: ArrayLike, eps: ArrayLike, last_fraction: float = 0.5) -> float:
    """Slope of log eps against log n over the last ``last_fraction`` of the points."""
    n = np.asarray(n, dtype=float)
    eps = np.asarray(eps, dtype=float)
    k = max(2, int(len(n) * last_fraction))
    sl, _ = np.polyfit(np.log(n[-k:]), np.log(eps[-k:]), 1)
    return float(sl)


def iterations_to_reach(target: float, *, rate: dict | None = None, power: tuple[float, float] | None = None) -> float:
    """Iterations until eps = target, from a root_rate fit or from eps = A n^slope (power=(A, slope))."""
    if rate is not None:
        s = (rate["a"] - math.log(target)) * rate["c"]
        return float(max(s, 0.0) ** rate["p"])
    if power is not None:
        A, slope = power
        if slope >= 0:
            return math.inf
        try:
            return float((target / A) ** (1.0 / slope))
        except OverflowError:
            return math.inf
    raise ValueError("give rate= or power=")


def time_to_reach(errors: ArrayLike, seconds: ArrayLike, thresholds: ArrayLike) -> list:
    """Cumulative wall time until the error is at or below each threshold (None: never).

    Args:
        errors: the error after each stage (or any sequence of checkpoints).
        seconds: the wall time of each stage.
        thresholds: the error levels, e.g. (1e-10, 1e-12, 1e-14, 3e-16).

    Returns:
        One entry per threshold: the summed seconds of the stages up to and including
        the first one whose error is at or below it, or None if none is.
    """
    errors, seconds = np.asarray(errors, dtype=float), np.asarray(seconds, dtype=float)
    if errors.shape != seconds.shape or errors.ndim != 1:
        raise ValueError(f"errors and seconds need the same 1D shape, got {errors.shape} and {seconds.shape}")
    if np.any(seconds < 0):
        raise ValueError("seconds must be >= 0")
    cum = np.cumsum(seconds)
    out = []
    for t in thresholds:
        hit = np.nonzero(errors <= t)[0]
        out.append(float(cum[hit[0]]) if hit.size else None)
    return out
