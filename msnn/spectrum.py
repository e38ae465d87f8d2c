"""Dominant frequency of a residue (Section 2.2 of Wang & Lai 2024).

Frequencies are in *cycles per unit of the input* (``numpy.fft.rfftfreq(N, d=dx)``):
on the normalized interval [-1, 1] a residue with dominant frequency ``f_d`` holds
``2 f_d`` periods, each of length ``1 / f_d``. The recipe: sample on a
uniform grid, take the magnitude of the one-sided FFT, drop the zero bin, and read
the frequency of the largest peak. Zero padding (``pad > 1``) refines the peak's
location between bins.

Scattered (non-uniform) samples are first interpolated onto a uniform grid with
as many points as there are samples (linearly in 1D, piecewise linearly on a
Delaunay triangulation in 2D), then the same recipe applies.
"""
from __future__ import annotations

from typing import Sequence

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "dominant_frequency",
    "dominant_frequency_2d",
    "dominant_frequency_scattered",
    "amplitude_spectrum",
    "Spectrum2D",
]


def _as_1d(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"expected a 1D array of samples, got shape {v.shape}")
    if v.size < 4:
        raise ValueError(f"need at least 4 samples for a spectrum, got {v.size}")
    if not np.all(np.isfinite(v)):
        raise ValueError("samples contain NaN or inf")
    return v


def amplitude_spectrum(values: ArrayLike, dx: float, pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One-sided amplitude spectrum ``(freqs, |FFT|/N)`` of uniform samples, zero bin included.

    Args:
        values: samples on a uniform grid of spacing ``dx``.
        dx: grid spacing (in units of the input).
        pad: zero-padding factor (>= 1); the FFT length is ``pad * N``.
    """
    v = _as_1d(values)
    if not dx > 0:
        raise ValueError(f"dx must be positive, got {dx}")
    if int(pad) < 1:
        raise ValueError(f"pad must be >= 1, got {pad}")
    n = v.size * int(pad)
    amp = np.abs(np.fft.rfft(v, n=n)) / v.size
    return np.fft.rfftfreq(n, d=dx), amp


def dominant_frequency(values: ArrayLike, dx: float | None = None, *, x: ArrayLike | None = None,
                       pad: int = 1) -> float:
    """Dominant frequency f_d of uniform samples (largest one-sided FFT peak, zero bin dropped).

    Give the spacing ``dx`` or the sample locations ``x`` (which must be uniform;
    use :func:`dominant_frequency_scattered` otherwise).

    Example: ``sin(2 pi 3 x)`` sampled on [-1, 1) gives 3.0; eq. (2.6) with
    m = 30 on 300 points gives 5.48 (paper: ~5.5).
    """
    v = _as_1d(values)
    if x is not None:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != v.shape:
            raise ValueError(f"x has shape {x.shape} but values have shape {v.shape}")
        steps = np.diff(x)
        dx = float(np.mean(steps))
        if not np.allclose(steps, dx, rtol=1e-6, atol=0):
            raise ValueError("x is not a uniform grid: use dominant_frequency_scattered")
    if dx is None:
        raise ValueError("give the grid spacing dx or the sample locations x")
    f, a = amplitude_spectrum(v, dx, pad)
    return float(f[1:][np.argmax(a[1:])])


def dominant_frequency_scattered(x: ArrayLike, values: ArrayLike, n_grid: int | None = None, pad: int = 1):
    """Dominant frequency of scattered samples, per axis.

    The samples are interpolated onto a uniform grid spanning their bounding box
    (linear interpolation in 1D; for d = 2, ``scipy.interpolate.griddata`` with
    linear interpolation, nearest-neighbour at the hull's edge), then read as
    :func:`dominant_frequency` (1D, returns a float) or
    :func:`dominant_frequency_2d` (2D, returns a :class:`Spectrum2D`).

    Args:
        x: sample locations, shape (N,) or (N, d) with d in {1, 2}.
        values: samples, shape (N,).
        n_grid: grid points per axis (default N in 1D, sqrt(N) per axis in 2D).
    """
    x = np.asarray(x, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] != v.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but values has {v.shape[0]}")
    d = x.shape[1]
    if d == 1:
        order = np.argsort(x[:, 0])
        xs, vs = x[order, 0], v[order]
        n = int(n_grid or xs.size)
        grid = np.linspace(xs[0], xs[-1], n)
        return dominant_frequency(np.interp(grid, xs, vs), grid[1] - grid[0], pad=pad)
    if d == 2:
        from scipy.interpolate import griddata

        n = int(n_grid or max(8, int(np.sqrt(x.shape[0]))))
        gx = np.linspace(x[:, 0].min(), x[:, 0].max(), n)
        gy = np.linspace(x[:, 1].min(), x[:, 1].max(), n)
        X, Y = np.meshgrid(gx, gy, indexing="ij")
        g = griddata(x, v, (X, Y), method="linear")
        miss = ~np.isfinite(g)
        if miss.any():
            g[miss] = griddata(x, v, (X[miss], Y[miss]), method="nearest")
        return dominant_frequency_2d(g, (gx[1] - gx[0], gy[1] - gy[0]), pad=pad)
    raise ValueError(f"frequency estimation supports 1 or 2 input dimensions, got {d}")


@dataclass(frozen=True)
class Spectrum2D:
    """Dominant 2D frequency: per-axis |k_x|, |k_y| of the largest peak and its norm |k|."""

    fx: float
    fy: float

    @property
    def norm(self) -> float:
        return float(np.hypot(self.fx, self.fy))

    @property
    def per_axis(self) -> tuple[float, float]:
        return (self.fx, self.fy)


def dominant_frequency_2d(grid: ArrayLike, spacing: float | Sequence[float], pad: int = 1) -> Spectrum2D:
    """Dominant frequency of samples on a uniform 2D grid (eq. 3.18 reads it per axis).

    Args:
        grid: array of shape (Nx, Ny), axis 0 along x.
        spacing: ``(dx, dy)`` or one number for both.
        pad: zero-padding factor per axis.

    Returns the |k_x| and |k_y| (cycles per unit) of the largest peak of the 2D
    FFT magnitude, the zero mode dropped.
    """
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2 or min(g.shape) < 4:
        raise ValueError(f"expected a 2D grid with at least 4 points per axis, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("samples contain NaN or inf")
    dx, dy = (spacing, spacing) if np.isscalar(spacing) else spacing
    nx, ny = g.shape[0] * int(pad), g.shape[1] * int(pad)
    amp = np.abs(np.fft.rfft2(g, s=(nx, ny)))
    amp[0, 0] = 0.0
    i, j = np.unravel_index(np.argmax(amp), amp.shape)
    fx = abs(np.fft.fftfreq(nx, d=dx)[i])
    fy = np.fft.rfftfreq(ny, d=dy)[j]
    return Spectrum2D(float(fx), float(fy))
