"""The spectrum-informed feature layer and network of SI-MSNN (Ng, Wang & Lai 2024).

A stage of the spectrum-informed multi-stage network is a network whose first layer
is a Fourier-feature embedding initialised from the spectrum of the function it has
to fit (Algorithm 1 and Sec. 3.4 of the SI paper):

    gamma(x) = A cos(B x + b),   (A_j, B_j, b_j) = (alpha(k_j), k_j, theta(k_j)),

for the ``n_f`` largest modes ``k_j`` of the DFT ``u~(k) = a(k) exp(i theta(k))`` of
the target on its grid. ``B`` and ``b`` are trainable, ``A`` is fixed. Then come
tanh hidden layers (Xavier initialised, zero biases) and a linear output. This
module holds the spectrum (:func:`spectral_modes`), the feature layer
(:func:`si_features`, :func:`si_grid_features`), the stage network
(:class:`SINetwork`) and the L^p loss of the SI paper's Sec. 3.3 (:func:`lp_loss`);
the multi-stage driver that fits one such network per stage is
:class:`msnn.si.SIMultistageRegressor`.

DFT conventions (checked in chapter 9 of the book). On the periodic grid
``x_n = x0 + n L / N`` (``n = 0..N-1``, the right end excluded) the wavenumbers
are ``k = 2 pi m / L`` (``k = pi m`` on the normalized grid ``x_n = -1 + 2n/N``).
NumPy measures phases from ``x0``, so ``theta = arg(U_numpy) - k . x0``. By
conjugate symmetry only the half-space ``m_last >= 0`` is kept (``numpy.fft.rfftn``):
``alpha = 2 a / N^d`` for ``0 < m_last < N/2`` and ``alpha = a / N^d`` on the
self-conjugate planes ``m_last = 0`` and ``m_last = N/2`` (the Nyquist row, kept
with both signs of the other wavenumbers). With all ``N^2/2 + N`` of these modes,
``sum_j alpha_j cos(k_j . x + theta_j)`` equals the grid values (eq. 10 of the SI
paper) to rounding.

Memory. On a 512 x 512 grid with 10,000 features the feature matrix alone is
21 GB in float64. :class:`SINetwork` never stores it: the feature layer and the
first linear layer are one custom autograd function that works through the
points in chunks and recomputes the features in its backward pass.

Speed. On a tensor grid the phase ``k . x + b`` separates by axis, and cos and sin of
it follow from per-axis tables by the addition theorem (:func:`si_grid_features`):
O(n n_f) trig calls instead of O(N n_f). :class:`SINetwork` takes the axes of a grid
in place of its points, and :class:`~msnn.si.SIMultistageRegressor` evaluates its
stages on its training grid that way, 5-6x faster per Adam step on a CPU
(``benchmarks/si_grid.py``).

Chapters 9 and 10 of the book show this module at work.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ._common import float64_array
from .networks import xavier_std
from .phases import least_squares

__all__ = [
    "SpectralModes",
    "spectral_modes",
    "count_primary_modes",
    "grid_values",
    "grid_bounds",
    "si_features",
    "si_grid_features",
    "tensor_grid_points",
    "SINetwork",
    "lp_loss",
]


# ----------------------------------------------------------------------------- DFT
@dataclass(frozen=True)
class SpectralModes:
    """Half-space Fourier modes of a grid function, largest first (Algorithm 1).

    Attributes:
        k: wavenumbers, shape (M, d), in radians per unit of the grid's coordinates.
        theta: phases in [-pi, pi), shape (M,), measured from the origin of the coordinates.
        alpha: cosine amplitudes, shape (M,): 2a/N^d, or a/N^d on the self-conjugate planes.
        amplitude: the DFT magnitudes ``a = |u~(k)|``, shape (M,) (the ranking key).
        grid_shape: the grid's shape (N_1, ..., N_d).
    """

    k: np.ndarray
    theta: np.ndarray
    alpha: np.ndarray
    amplitude: np.ndarray
    grid_shape: tuple

    def __len__(self) -> int:
        return int(self.alpha.shape[0])

    def top(self, n_f: int) -> "SpectralModes":
        """The ``n_f`` largest modes."""
        n_f = _check_n_f(n_f, len(self))
        return SpectralModes(self.k[:n_f], self.theta[:n_f], self.alpha[:n_f], self.amplitude[:n_f],
                             self.grid_shape)

    def evaluate(self, x: ArrayLike) -> np.ndarray:
        """sum_j alpha_j cos(k_j . x + theta_j) at points x of shape (P, d) (eq. 10)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        return np.cos(x @ self.k.T + self.theta) @ self.alpha


def _check_n_f(n_f, available: int) -> int:
    if isinstance(n_f, bool) or not isinstance(n_f, (int, np.integer)):
        raise ValueError(f"n_f must be an integer, got {n_f!r}")
    if n_f < 1:
        raise ValueError(f"n_f must be >= 1, got {n_f}")
    if n_f > available:
        raise ValueError(f"n_f = {n_f} exceeds the {available} half-space modes of this grid "
                         f"(N^2/2 + N for an even N x N grid)")
    return int(n_f)


def grid_values(u: ArrayLike) -> np.ndarray:
    """Grid values as a float64 array, checked: shape (N,), (Nx, Ny) or (Nx, Ny, Nz), 2+ points per axis.

    Raises:
        ValueError: another shape, fewer than 2 points on an axis, or values that are complex
            (refused, not cast: casting would drop the imaginary part), not numeric, empty, or
            hold NaN or inf.
    """
    u = float64_array(u, "the grid values")  # refuses complex values too
    if u.ndim < 1 or u.ndim > 3:
        raise ValueError(f"expected grid values of shape (N,), (Nx, Ny) or (Nx, Ny, Nz), got {u.shape}")
    if min(u.shape) < 2:
        raise ValueError(f"need at least 2 grid points per axis, got shape {u.shape}")
    return u


def grid_bounds(lo: float | Sequence[float], hi: float | Sequence[float], d: int) -> tuple[np.ndarray, np.ndarray]:
    """The bounds of a d-dimensional grid as two float64 arrays of shape (d,).

    Args:
        lo, hi: a number for every axis, or one per axis.
        d: the number of axes.

    Raises:
        ValueError: a bound that is not finite, or ``hi <= lo`` on some axis.
    """
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (d,)).copy()
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (d,)).copy()
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))) or np.any(hi <= lo):
        raise ValueError(f"need finite lo < hi on every axis, got lo={lo.tolist()}, hi={hi.tolist()}")
    return lo, hi


def spectral_modes(u: ArrayLike, *, lo: float | Sequence[float] = -1.0,
                   hi: float | Sequence[float] = 1.0) -> SpectralModes:
    """All half-space Fourier modes of grid values ``u``, sorted by DFT magnitude (Algorithm 1).

    Args:
        u: values on the periodic grid ``x_n = lo + n (hi - lo) / N`` per axis (the
            right end excluded), shape (N,) in 1D or (Nx, Ny) in 2D (axis 0 along x).
        lo, hi: the grid's bounds, a number or one per axis. The default [-1, 1) is
            the normalized domain of the SI paper, where ``k = pi m``.

    Returns:
        :class:`SpectralModes` with every mode of the half-space ``m_last >= 0``
        (``N^2/2 + N`` of them for an even N x N grid), largest ``|u~(k)|`` first.
        Ties keep NumPy's order, so the ranking is deterministic.
    """
    u = grid_values(u)
    d = u.ndim
    lo, hi = grid_bounds(lo, hi, d)
    shape = u.shape
    U = np.fft.rfftn(u)  # last axis: m = 0 .. N//2
    ms = [np.fft.fftfreq(n, 1.0 / n) for n in shape[:-1]] + [np.arange(shape[-1] // 2 + 1, dtype=float)]
    grids = np.meshgrid(*ms, indexing="ij")
    m = np.stack([g.ravel() for g in grids], axis=1)  # (M, d) integer wavenumbers
    k = 2 * np.pi * m / (hi - lo)
    Uf = U.ravel()
    amp = np.abs(Uf)
    theta = np.angle(Uf) - k @ lo
    theta = np.mod(theta + np.pi, 2 * np.pi) - np.pi  # wrapped to [-pi, pi)
    last = m[:, -1]
    weight = np.full(last.shape, 2.0)
    weight[last == 0] = 1.0
    if shape[-1] % 2 == 0:
        weight[last == shape[-1] // 2] = 1.0  # the Nyquist plane is its own conjugate
    alpha = weight * amp / float(np.prod(shape))
    order = np.argsort(-amp, kind="stable")
    return SpectralModes(k[order], theta[order], alpha[order], amp[order], tuple(shape))


def count_primary_modes(u: ArrayLike, rel_threshold: float) -> int:
    """Number of half-space modes whose DFT magnitude is at least ``rel_threshold`` times the largest.

    One reading of the SI paper's "primary Fourier modes" (its n_f = 1359 for the
    turbulence snapshot); the paper does not define the threshold.
    """
    if not 0 < rel_threshold < 1:
        raise ValueError(f"rel_threshold must be in (0, 1), got {rel_threshold}")
    modes = spectral_modes(u)
    return int(np.sum(modes.amplitude >= rel_threshold * modes.amplitude[0]))


# ------------------------------------------------------------------ feature layer
class _SIFeatureLinear(torch.autograd.Function):
    """out = (A * cos(x B^T + b)) W, computed chunk by chunk over the points.

    The N x n_f feature matrix is never stored: the backward pass recomputes each
    chunk's features. Memory is O(chunk * n_f) instead of O(N * n_f).
    """

    @staticmethod
    def forward(ctx, x, B, b, A, W, chunk: int):
        n = x.shape[0]
        out = x.new_empty((n, W.shape[1]))
        for s in range(0, n, chunk):
            phi = torch.addmm(b, x[s:s + chunk], B.t())
            out[s:s + chunk] = torch.mm(torch.cos(phi).mul_(A), W)
        ctx.save_for_backward(x, B, b, A, W)
        ctx.chunk = chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, B, b, A, W = ctx.saved_tensors
        need = ctx.needs_input_grad
        gx = torch.zeros_like(x) if need[0] else None
        gB = torch.zeros_like(B) if need[1] else None
        gb = torch.zeros_like(b) if need[2] else None
        gA = torch.zeros_like(A) if need[3] else None
        gW = torch.zeros_like(W) if need[4] else None
        chunk = ctx.chunk
        for s in range(0, x.shape[0], chunk):
            xc, gc = x[s:s + chunk], g[s:s + chunk]
            phi = torch.addmm(b, xc, B.t())
            gfeat = torch.mm(gc, W.t())  # d out / d gamma, (chunk, n_f)
            if gW is not None or gA is not None:
                c = torch.cos(phi)
                if gA is not None:
                    gA += (gfeat * c).sum(0)
                if gW is not None:
                    gW += torch.mm(c.mul_(A).t(), gc)
                del c
            if gx is not None or gB is not None or gb is not None:
                gphi = torch.sin(phi).mul_(gfeat).mul_(-A)
                if gB is not None:
                    gB += torch.mm(gphi.t(), xc)
                if gb is not None:
                    gb += gphi.sum(0)
                if gx is not None:
                    gx[s:s + chunk] = torch.mm(gphi, B)
        return gx, gB, gb, gA, gW, None


def si_features(x: torch.Tensor, B: torch.Tensor, b: torch.Tensor, A: torch.Tensor,
                W: torch.Tensor | None = None, *, chunk: int | None = None,
                max_chunk_elements: int = 2 ** 24) -> torch.Tensor:
    """The feature layer ``A cos(x B^T + b)``, optionally followed by a linear map ``W``.

    Args:
        x: points, shape (N, d).
        B: wavenumbers, shape (n_f, d).
        b: phases, shape (n_f,).
        A: amplitudes, shape (n_f,).
        W: optional (n_f, m) matrix. Without it the plain features (N, n_f) are
            returned (autograd stores them); with it, ``gamma(x) W`` (N, m) comes
            from the chunked, memory-lean function that recomputes the features in
            its backward pass.
        chunk: points per chunk (default: ``max_chunk_elements // n_f``).
    """
    if x.dim() != 2 or B.dim() != 2 or x.shape[1] != B.shape[1]:
        raise ValueError(f"x must be (N, d) and B (n_f, d), got {tuple(x.shape)} and {tuple(B.shape)}")
    if b.shape != (B.shape[0],) or A.shape != (B.shape[0],):
        raise ValueError(f"b and A must have shape ({B.shape[0]},), got {tuple(b.shape)} and {tuple(A.shape)}")
    if W is None:
        return A * torch.cos(torch.addmm(b, x, B.t()))
    if W.dim() != 2 or W.shape[0] != B.shape[0]:
        raise ValueError(f"W must have shape ({B.shape[0]}, m), got {tuple(W.shape)}")
    if chunk is None:
        chunk = max(1, int(max_chunk_elements) // B.shape[0])
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return _SIFeatureLinear.apply(x, B, b, A, W, int(chunk))


# Points x features per chunk of the grid path (unless max_chunk_elements is smaller).
# Its work per element is a few multiplies and a share of three small matrix products,
# so chunks near the size of the CPU's caches run faster than ones streamed through
# memory (and much smaller ones lose to Python's overhead and small products): on a
# 2-core EPYC, 2**17 to 2**19 elements (1-4 MB per buffer) were best, 2**24 2-3.5x slower.
_GRID_CACHE_ELEMENTS = 2 ** 18


def _grid_blocks(shape: tuple[int, ...], chunk: int):
    """Split the points of a tensor grid (C order) into contiguous blocks of about ``chunk``
    points: whole rows of the first axis if a row holds at most ``chunk`` points, else
    slices of the second axis within one row. Yields (first point, rows slice, slice of axis 1)."""
    n0, n1 = shape[0], shape[1]
    per1 = math.prod(shape[2:])  # points per index of axis 1 within a row
    row = n1 * per1
    if chunk >= row:
        rows = chunk // row
        for a in range(0, n0, rows):
            yield a * row, slice(a, min(a + rows, n0)), slice(0, n1)
    else:
        cols = max(1, chunk // per1)
        for a in range(n0):
            for j in range(0, n1, cols):
                yield a * row + j * per1, slice(a, a + 1), slice(j, min(j + cols, n1))


def _grid_block_points(shape: tuple[int, ...], chunk: int) -> int:
    """The most points in one block of :func:`_grid_blocks` (the size of its buffers)."""
    per1 = math.prod(shape[2:])
    row = shape[1] * per1
    if chunk >= row:
        return min(chunk // row, shape[0]) * row
    return min(max(1, chunk // per1), shape[1]) * per1


def _grid_trig(tables, rows: slice, cols: slice, out_c: torch.Tensor, out_s: torch.Tensor | None):
    """cos (and sin) of ``sum_i k_i x_i + b`` on a block of the grid (``rows`` of the first
    axis, ``cols`` of the second, all of the others), by the addition theorem from the
    per-axis tables; written into the leading rows of ``out_c`` and ``out_s`` and returned
    as views of shape (rows, cols, n_2, ..., n_{d-1}, n_f).

    The outputs go to preallocated buffers: on a CPU a fresh megabyte-sized tensor per
    chunk can cost more in page faults than the arithmetic that fills it."""
    d = len(tables)
    c, sn = tables[0][0][rows], tables[0][1][rows]
    for i in range(1, d):
        ci, si = tables[i]
        if i == 1:
            ci, si = ci[cols], si[cols]
        c1, s1 = c.unsqueeze(-2), sn.unsqueeze(-2)
        shape = c1.shape[:-2] + ci.shape
        last = i == d - 1
        new_c = out_c[:math.prod(shape[:-1])].view(shape) if last else c1.new_empty(shape)
        torch.mul(c1, ci, out=new_c).addcmul_(s1, si, value=-1.0)  # cos(p + q) = cos p cos q - sin p sin q
        new_s = None
        if not last or out_s is not None:
            new_s = out_s[:math.prod(shape[:-1])].view(shape) if last else c1.new_empty(shape)
            torch.mul(s1, ci, out=new_s).addcmul_(c1, si)  # sin(p + q) = sin p cos q + cos p sin q
        c, sn = new_c, new_s
    return c, sn


def _axis_tables(axes, B, b):
    """Per axis i, cos and sin of ``x_i k_i`` (the phases ``b`` go with the last axis), each (n_i, n_f)."""
    d = len(axes)
    tables = []
    for i, ax in enumerate(axes):
        arg = torch.outer(ax, B[:, i])
        if i == d - 1:
            arg = arg + b
        tables.append((torch.cos(arg), torch.sin(arg)))
    return tables


class _SIGridFeatureLinear(torch.autograd.Function):
    """out = (A * cos(x B^T + b)) W at the points x of a tensor grid (d >= 2), chunk by chunk.

    On a tensor grid the phase separates, ``k . x + b = sum_i k_i x_i + b``, so the
    addition theorem builds cos (and, for the backward pass, sin) of every point's
    phase from per-axis tables of O(n n_f) trig values: the N x n_f trig calls of
    :class:`_SIFeatureLinear`, which dominate its cost, become a few elementwise
    multiplies. The features are as accurate as the point path's (each trig argument
    is smaller, each value takes two more roundings; they agree to ~1e-15). The
    backward pass rebuilds each chunk's features from the (saved) tables, so memory
    stays O(chunk * n_f).

    What is left is three matrix products of N x n_f x m per step (forward, d/dW and
    d/dgamma). They are arranged so that the long n_f dimension is contiguous in the
    result or in both factors (``W^T gamma^T`` rather than ``gamma W``): on a CPU that
    runs them 1.3-1.6x faster than the plain layout for m = 30.
    """

    @staticmethod
    def forward(ctx, B, b, A, W, chunk: int, *axes):
        tables = _axis_tables(axes, B, b)
        shape = tuple(ax.shape[0] for ax in axes)
        WAt = (W * A[:, None]).t().contiguous()  # (m, n_f)
        out_t = W.new_empty((W.shape[1], math.prod(shape)))  # out^T, returned transposed
        buf = W.new_empty((_grid_block_points(shape, chunk), B.shape[0]))
        for p, rows, cols in _grid_blocks(shape, chunk):
            c, _ = _grid_trig(tables, rows, cols, buf, None)
            c = c.reshape(-1, c.shape[-1])
            out_t[:, p:p + c.shape[0]] = torch.mm(WAt, c.t())
        ctx.save_for_backward(B, b, A, W, *axes, *(t for pair in tables for t in pair))
        ctx.chunk, ctx.d = chunk, len(axes)
        return out_t.t()

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        saved = ctx.saved_tensors
        d = ctx.d
        B, b, A, W = saved[:4]
        axes = saved[4:4 + d]
        flat = saved[4 + d:]
        tables = [(flat[2 * i], flat[2 * i + 1]) for i in range(d)]
        shape = tuple(ax.shape[0] for ax in axes)
        need = ctx.needs_input_grad
        need_phase = need[0] or need[1]
        n_f = B.shape[0]
        # (C^T g)^T with the unscaled features C = cos(phi): gives d/dW and d/dA
        GtC = W.new_zeros((W.shape[1], n_f)) if need[2] or need[3] else None
        # [sum_p T_pj, sum_p x_p T_pj] for T = -d out / d phi: minus the gradients of b and B
        TX = W.new_zeros((d + 1, n_f)) if need_phase else None
        X1 = torch.cat([torch.ones_like(axes[0][:1]).expand(1, math.prod(shape)),
                        tensor_grid_points(axes).t()]) if need_phase else None  # (d + 1, N)
        WAt = (W * A[:, None]).t().contiguous()  # (m, n_f)
        size = (_grid_block_points(shape, ctx.chunk), n_f)
        buf_c = W.new_empty(size)
        buf_s, buf_g = (W.new_empty(size), W.new_empty(size)) if need_phase else (None, None)
        for p, rows, cols in _grid_blocks(shape, ctx.chunk):
            c, sn = _grid_trig(tables, rows, cols, buf_c, buf_s)
            c = c.reshape(-1, n_f)
            gc = g[p:p + c.shape[0]]
            if GtC is not None:
                GtC.addmm_(gc.t(), c)
            if need_phase:
                # T = A sin(phi) * (g W^T) = -d out / d phi
                T = sn.reshape(-1, n_f).mul_(torch.mm(gc, WAt, out=buf_g[:c.shape[0]]))
                TX.addmm_(X1[:, p:p + c.shape[0]], T)  # one read of T for all d + 1 sums
        gB = gb = gA = gW = None
        if need[0]:
            gB = -TX[1:].t()
        if need[1]:
            gb = -TX[0]
        if need[2]:
            gA = (W.t() * GtC).sum(0)
        if need[3]:
            gW = GtC.t() * A[:, None]
        return (gB, gb, gA, gW, None) + (None,) * d


def tensor_grid_points(axes: Sequence[torch.Tensor]) -> torch.Tensor:
    """The points of the tensor grid spanned by 1-D ``axes``, shape (prod n_i, d): their
    meshgrid with ``indexing="ij"`` flattened in C order (the last axis varies fastest),
    the order of :meth:`msnn.si.SIMultistageRegressor.fit` and :meth:`msnn.si.SIMultistageRegressor.grid_points`."""
    axes = _check_axes(axes)
    return torch.stack([g.reshape(-1) for g in torch.meshgrid(*axes, indexing="ij")], dim=1)


def _check_axes(axes, d: int | None = None) -> tuple[torch.Tensor, ...]:
    if isinstance(axes, torch.Tensor) or not isinstance(axes, (tuple, list)):
        raise ValueError(f"axes must be a tuple of 1-D coordinate tensors, one per dimension, "
                         f"got {type(axes).__name__}")
    axes = tuple(axes)
    if d is not None and len(axes) != d:
        raise ValueError(f"expected {d} axes (one per input dimension), got {len(axes)}")
    if not axes:
        raise ValueError("axes must hold at least one coordinate tensor")
    for i, ax in enumerate(axes):
        if not isinstance(ax, torch.Tensor) or ax.dim() != 1 or ax.shape[0] < 1:
            shape = tuple(ax.shape) if isinstance(ax, torch.Tensor) else type(ax).__name__
            raise ValueError(f"axis {i} must be a non-empty 1-D tensor, got {shape}")
        if ax.dtype != axes[0].dtype or ax.device != axes[0].device:
            raise ValueError(f"all axes must share one dtype and device, axis {i} has {ax.dtype} on {ax.device}")
    return axes


def si_grid_features(axes: Sequence[torch.Tensor], B: torch.Tensor, b: torch.Tensor, A: torch.Tensor,
                     W: torch.Tensor | None = None, *, chunk: int | None = None,
                     max_chunk_elements: int = 2 ** 24) -> torch.Tensor:
    """:func:`si_features` at the points of a tensor grid, from per-axis trig tables.

    The result equals ``si_features(tensor_grid_points(axes), B, b, A, W)`` to rounding, in
    the same row order, but with ``W`` it costs O(n n_f) trig calls instead of
    O(N n_f) (N = n_1 ... n_d points): the phase ``k . x + b`` separates on a tensor
    grid and the addition theorem assembles cos and sin of it from the axes' values
    (``_SIGridFeatureLinear``). In 1D there is nothing to separate and the point
    path is used.

    Args:
        axes: d 1-D coordinate tensors (dtype and device of ``B``); the points are their
            meshgrid with ``indexing="ij"``, flattened in C order (:func:`tensor_grid_points`).
            They are constants: no gradient flows to them.
        B, b, A, W: as in :func:`si_features`.
        chunk: points per chunk (default: ``min(max_chunk_elements, 2**18) // n_f``, a
            block of points x features that fits a CPU's L2 cache). Chunks are whole rows of
            the first axis or, if a row holds more points, slices of the second axis; a
            chunk holds at least one index of the second axis (in 3D, one x-y line).
    """
    if B.dim() != 2:
        raise ValueError(f"B must be (n_f, d), got {tuple(B.shape)}")
    axes = _check_axes(axes, B.shape[1])
    if any(ax.requires_grad for ax in axes):
        raise ValueError("the grid path gives no gradient with respect to the axes; pass points to si_features "
                         "for gradients with respect to x")
    if W is None or len(axes) == 1:
        return si_features(tensor_grid_points(axes), B, b, A, W, chunk=chunk, max_chunk_elements=max_chunk_elements)
    n_f = B.shape[0]
    if b.shape != (n_f,) or A.shape != (n_f,):
        raise ValueError(f"b and A must have shape ({n_f},), got {tuple(b.shape)} and {tuple(A.shape)}")
    if W.dim() != 2 or W.shape[0] != n_f:
        raise ValueError(f"W must have shape ({n_f}, m), got {tuple(W.shape)}")
    if axes[0].dtype != B.dtype or axes[0].device != B.device:
        raise ValueError(f"the axes must have B's dtype and device ({B.dtype} on {B.device}), "
                         f"got {axes[0].dtype} on {axes[0].device}")
    if chunk is None:
        chunk = max(1, min(int(max_chunk_elements), _GRID_CACHE_ELEMENTS) // n_f)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return _SIGridFeatureLinear.apply(B, b, A, W, int(chunk), *axes)


class SINetwork(nn.Module):
    """One SI-MSNN stage: ``A cos(B x + b)``, then tanh hidden layers, then a linear output.

    Implements the network of Sec. 3.4 and Algorithm 1 of Ng, Wang & Lai (2024).
    ``B`` (the wavenumbers ``k_j``) and ``b`` (the phases ``theta_j``) are trainable;
    ``A`` (the amplitudes ``alpha_j``) is a fixed buffer. The other layers use the
    nominal Xavier normal initialisation ``Var = 2 / (fan_in + fan_out)`` with zero
    biases, seeded as :class:`msnn.StageNetwork` (layer ``l`` from ``seed * 1000 + l``).

    With ``widths=()`` there are no hidden layers and the output is the plain sum of
    the features, ``sum_j alpha_j cos(k_j . x + theta_j)``: with all the grid's modes
    this reproduces the grid values (eq. 10 of the SI paper).

    Args:
        modes: the :class:`SpectralModes` to embed (e.g. ``spectral_modes(u).top(n_f)``).
        widths: hidden widths (the paper: (30, 30, 30)).
        seed: seed of the Xavier draws.
        dtype, device: of the parameters (float64 by default).
        max_chunk_elements: points x features per chunk of the feature layer.
    """

    def __init__(self, modes: SpectralModes, widths: Sequence[int] = (30, 30, 30), *, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                 max_chunk_elements: int = 2 ** 24) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if any(w < 1 for w in widths):
            raise ValueError(f"widths must be positive integers, got {widths}")
        if int(max_chunk_elements) < 1:
            raise ValueError(f"max_chunk_elements must be >= 1, got {max_chunk_elements}")
        k = torch.as_tensor(np.asarray(modes.k), dtype=dtype, device=device)
        self.in_dim = int(k.shape[1])
        self.n_features = int(k.shape[0])
        self.widths = widths
        self.seed = int(seed)
        self.max_chunk_elements = int(max_chunk_elements)
        self.B = nn.Parameter(k.clone())
        self.b = nn.Parameter(torch.as_tensor(np.asarray(modes.theta), dtype=dtype, device=device).clone())
        self.register_buffer("A", torch.as_tensor(np.asarray(modes.alpha), dtype=dtype, device=device).clone())
        sizes = (self.n_features,) + widths + (1,)
        self.sizes = sizes
        weights, biases = [], []
        if widths:
            for l in range(len(sizes) - 1):
                g = torch.Generator().manual_seed(self.seed * 1000 + l)
                w = torch.randn(sizes[l], sizes[l + 1], generator=g, dtype=torch.float64)
                w *= xavier_std(sizes[l], sizes[l + 1])
                weights.append(nn.Parameter(w.to(dtype=dtype, device=device)))
                biases.append(nn.Parameter(torch.zeros(sizes[l + 1], dtype=dtype, device=device)))
        else:
            self.register_buffer("_ones", torch.ones(self.n_features, 1, dtype=dtype, device=device))
        self.weights = nn.ParameterList(weights)
        self.biases = nn.ParameterList(biases)

    @property
    def dtype(self) -> torch.dtype:
        return self.B.dtype

    @property
    def device(self) -> torch.device:
        return self.B.device

    def features(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """The plain feature matrix ``A cos(x B^T + b)``, shape (N, n_f) (stored by autograd)."""
        x = self._check(x)
        if isinstance(x, tuple):
            x = tensor_grid_points(x)
        return si_features(x, self.B, self.b, self.A)

    def _check(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Points (N, d), or a tuple of ``in_dim`` 1-D axes (a tensor grid) checked and kept as a tuple."""
        if isinstance(x, (tuple, list)):
            return _check_axes(x, self.in_dim)
        if x.dim() == 1 and self.in_dim == 1:
            x = x[:, None]
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected inputs of shape (N, {self.in_dim}), got {tuple(x.shape)}")
        return x

    def _first_layer(self, x, W0: torch.Tensor) -> torch.Tensor:
        """``gamma(x) W0`` by the chunked function: on the tensor grid when x is a tuple of axes."""
        if isinstance(x, tuple):
            return si_grid_features(x, self.B, self.b, self.A, W0, max_chunk_elements=self.max_chunk_elements)
        return si_features(x, self.B, self.b, self.A, W0, max_chunk_elements=self.max_chunk_elements)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor], *, chunked: bool = True) -> torch.Tensor:
        """Network output, shape (N,). ``chunked=False`` uses the plain (memory-hungry) path.

        ``x`` is either points (N, d) or a tuple of d 1-D coordinate tensors: then the
        output is at the points of their tensor grid (:func:`tensor_grid_points`: the
        meshgrid with ``indexing="ij"`` flattened in C order), computed from per-axis
        trig tables (:func:`si_grid_features`), which is several times faster in 2D."""
        x = self._check(x)
        W0 = self.weights[0] if self.widths else self._ones
        if chunked:
            h = self._first_layer(x, W0)
        else:
            h = self.features(x) @ W0
        if not self.widths:
            return h[:, 0]
        h = torch.tanh(h + self.biases[0])
        for w, bb in zip(self.weights[1:-1], self.biases[1:-1]):
            h = torch.tanh(torch.addmm(bb, h, w))
        return torch.addmm(self.biases[-1], h, self.weights[-1])[:, 0]

    def forward_grid(self, axes: Sequence[torch.Tensor]) -> torch.Tensor:
        """The output at the points of the tensor grid spanned by ``axes`` (d 1-D tensors),
        in the order of ``forward(tensor_grid_points(axes))``; shape (N,)."""
        return self(tuple(_check_axes(axes, self.in_dim)))

    def last_hidden(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """The last hidden layer's output (N, widths[-1]), on which the output layer is linear.

        ``x``: points (N, d) or a tuple of d 1-D axes (a tensor grid), as in :meth:`forward`."""
        if not self.widths:
            raise ValueError("a network without hidden layers has no output layer to solve")
        x = self._check(x)
        h = self._first_layer(x, self.weights[0])
        h = torch.tanh(h + self.biases[0])
        for w, bb in zip(self.weights[1:-1], self.biases[1:-1]):
            h = torch.tanh(torch.addmm(bb, h, w))
        return h

    def last_hidden_grid(self, axes: Sequence[torch.Tensor]) -> torch.Tensor:
        """:meth:`last_hidden` at the points of the tensor grid spanned by ``axes``."""
        return self.last_hidden(tuple(_check_axes(axes, self.in_dim)))

    def solve_output_layer(self, x: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor, *,
                           mu: float = 0.0, rcond: float = 1e-15) -> tuple[float, int]:
        """Set the output layer to the least-squares fit of ``target`` (float64 SVD).

        Minimizes mean((net(x) - target)^2) + mu ||w||^2 over the output weights and
        bias; returns (that loss, the numerical rank). ``x``: points or a tuple of axes."""
        with torch.no_grad():
            H = self.last_hidden(x)
            A = torch.cat([H, torch.ones_like(H[:, :1])], 1) / math.sqrt(H.shape[0])
            t = target.reshape(-1) / math.sqrt(H.shape[0])
            w, rank, _, _ = least_squares(A, t, mu=mu, rcond=rcond)
            self.weights[-1].copy_(w[:-1, None])
            self.biases[-1].copy_(w[-1:])
            loss = float(((A @ w - t) ** 2).sum()) + mu * float((w ** 2).sum())
        return loss, rank

    def n_parameters(self) -> int:
        """Trainable parameters (B, b and the dense layers)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, in_dim={self.in_dim}, widths={list(self.widths)}"


# ---------------------------------------------------------------------- losses
def lp_loss(r: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """Mean-form L^p norm ``(1/N sum |r|^p)^(1/p)`` (SI paper Sec. 3.3, with a 1/N that the paper omits).

    Computed as ``s (mean |r/s|^p)^(1/p)`` with ``s = max|r|`` (detached) so that
    ``|r|^p`` neither overflows nor underflows; the value and its gradient are
    those of the plain formula. For p = 2 it is the RMS, and it is never below the RMS.
    """
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p}")
    s = r.detach().abs().max().clamp_min(torch.finfo(r.dtype).tiny)
    return s * torch.mean((r / s).abs() ** p) ** (1.0 / p)

