"""Spectrum-informed multi-stage networks (SI-MSNN), Ng, Wang & Lai (2024).

Each stage is a network whose first layer is a Fourier-feature embedding
initialised from the spectrum of the function it has to fit (Algorithm 1 of the
SI paper):

    gamma(x) = A cos(B x + b),   (A_j, B_j, b_j) = (alpha(k_j), k_j, theta(k_j)),

for the ``n_f`` largest modes ``k_j`` of the DFT ``u~(k) = a(k) exp(i theta(k))`` of
the target on its grid. ``B`` and ``b`` are trainable, ``A`` is fixed. Then come
tanh hidden layers (Xavier initialised, zero biases) and a linear output.

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
in place of its points, and :class:`SIMultistageRegressor` evaluates its stages on
its training grid that way, 5-6x faster per Adam step on a CPU
(``benchmarks/si_grid.py``).

Chapters 9 and 10 of the book show this module at work.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ._common import CheckpointFile, StagedFit, StageRun, count, float64_array, resolve_device, settings_key
from .networks import xavier_std
from .phases import least_squares, schedule_for
from .regression import _per_stage  # one value or one per stage, counts checked
from .training import TrainHistory, merge_histories, show_progress, train

__all__ = [
    "SpectralModes",
    "spectral_modes",
    "si_features",
    "si_grid_features",
    "tensor_grid_points",
    "SINetwork",
    "SIStageRecord",
    "SIMultistageRegressor",
    "lp_loss",
    "count_primary_modes",
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


def _grid_values(u) -> np.ndarray:
    u = float64_array(u, "the grid values")
    if u.ndim < 1 or u.ndim > 3:
        raise ValueError(f"expected grid values of shape (N,), (Nx, Ny) or (Nx, Ny, Nz), got {u.shape}")
    if min(u.shape) < 2:
        raise ValueError(f"need at least 2 grid points per axis, got shape {u.shape}")
    return u


def _bounds(lo, hi, d: int) -> tuple[np.ndarray, np.ndarray]:
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
    u = _grid_values(u)
    d = u.ndim
    lo, hi = _bounds(lo, hi, d)
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
    the order of :meth:`SIMultistageRegressor.fit` and :meth:`SIMultistageRegressor.grid_points`."""
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


# --------------------------------------------------------------- the regressor
@dataclass
class SIStageRecord(StageRun):
    """One stage of a fitted :class:`SIMultistageRegressor`.

    Attributes:
        index: stage number (0 = first stage).
        eps: RMS of the residue this stage fits, in units of RMS(u) (eps_0 = 1).
        eps_data: the same in the units of u (eps_0 = RMS(u), as in the SI paper).
        n_features: first-layer width n_f.
        top_modes: the norms ``|k|`` of the five largest SI wavenumbers (normalized coordinates).
        widths: hidden widths.
        loss: "mse" or "lp".
        adam_steps, lbfgs_iterations, lbfgs_evaluations, final_loss, loss_history,
            rms_after, seconds, stopped, phases: what training did (:class:`msnn._common.StageRun`);
            ``rms_after`` in units of RMS(u), ``phases`` empty for the paper's Adam + L-BFGS.
    """

    index: int
    eps: float
    eps_data: float
    n_features: int
    top_modes: list
    widths: tuple
    loss: str

    @property
    def steps(self) -> int:
        return self.adam_steps + self.lbfgs_iterations

    @property
    def error_history(self) -> np.ndarray:
        """The loss as an error of the combined model in units of RMS(u): eps sqrt(loss) (MSE)
        or eps loss (L^p, which bounds the RMS from above)."""
        h = np.maximum(np.asarray(self.loss_history, dtype=float), 0.0)
        return self.eps * (np.sqrt(h) if self.loss == "mse" else h)


class SIMultistageRegressor(StagedFit):
    """Spectrum-informed multi-stage regression on a grid (SI-MSNN, Ng, Wang & Lai 2024).

    Stage 0 fits ``u / eps_0`` with ``eps_0 = RMS(u)``; stage n fits the normalized
    residue ``e_n / eps_n`` (``e_n = u - sum_{j<n} eps_j u_j``, ``eps_n = RMS(e_n)``).
    Every stage, the first included, is an :class:`SINetwork` whose feature layer is
    initialised from the ``n_f`` largest DFT modes of the function it fits
    (Algorithm 1 of the SI paper). Training is full-batch Adam with an exponentially
    annealed learning rate, optionally followed by L-BFGS, on the MSE or on the
    mean-form L^p loss (:func:`lp_loss`). Residues are always the data minus the
    float64 sum of the stages.

    Why ``fit(u, lo=..., hi=...)`` and not ``fit(x, y)``: the spectrum-informed
    initialization needs the DFT of the target, so the data must be values on a
    periodic uniform grid, which the grid shape and the domain describe completely.
    The constructor arguments are stored as given (``get_params`` / ``set_params``, as
    in scikit-learn); ``fit`` validates them again.

    Example::

        reg = SIMultistageRegressor(n_stages=3, n_features=[300, 1000, 1000], adam_steps=2000)
        reg.fit(u, lo=-1, hi=1)   # u: (Nx, Ny) on the grid lo + n (hi - lo) / N
        reg.residue()             # u minus the model on the grid, (Nx, Ny)
        reg.predict(xy)           # anywhere, xy: (M, 2) in the original coordinates

    Args:
        n_stages: number of stages.
        n_features: first-layer width n_f, one int or one per stage.
        widths: hidden widths (default (30, 30, 30), the SI paper's).
        adam_steps, lbfgs_steps: per stage, an int or a list.
        lr: initial Adam learning rate (1e-3).
        lr_final: learning rate reached at the end of each stage's Adam steps
            (exponential annealing ``lr (lr_final/lr)^(i/steps)``); None for a constant lr.
        loss: "mse" or "lp" (the mean-form L^p norm with exponent ``p``).
        p: the exponent of the L^p loss (10 in the SI paper).
        target_rms: stop (a stage early, and adding stages) once the RMS residue
            relative to RMS(u) is at or below this (e.g. 1e-16 for "machine precision").
        dtype: float64 (default) or float32.
        device, seed: where to train; stage n draws its Xavier weights from seed + n.
        max_chunk_elements: points x features per chunk of the feature layer.
        checkpoint: a file; the stages are saved there after each stage and a later
            ``fit`` on the same data and settings resumes after the last saved stage.
        progress, verbose: progress bars; one line per stage.
    """

    _record_type = SIStageRecord
    _fit_call = "fit(u)"

    def __init__(self, *, n_stages: int = 3, n_features: int | Sequence[int] = 500,
                 widths: Sequence[int] = (30, 30, 30), adam_steps: int | Sequence[int] = 5000,
                 lbfgs_steps: int | Sequence[int] = 0, lr: float = 1e-3, lr_final: float | None = 1e-5,
                 loss: str = "mse", p: float = 10.0, target_rms: float | None = None,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "auto", seed: int = 0,
                 max_chunk_elements: int = 2 ** 24, checkpoint: str | os.PathLike | None = None,
                 progress: bool | None = None, verbose: bool = False, schedule: str | Sequence | None = None) -> None:
        # the arguments stored as given (get_params / clone); derived values in _validate
        self._store_params(locals())
        self._validate()

    def _validate(self) -> None:
        """Check the settings; derive the per-stage lists, the device and the checkpoint file."""
        n = count(self.n_stages, "n_stages", 1)
        self._n_features = [count(v, "n_features", 1) for v in _per_stage(self.n_features, n, "n_features")]
        self._widths = tuple(int(w) for w in self.widths)
        if any(w < 1 for w in self._widths):
            raise ValueError(f"widths must be positive integers, got {self._widths}")
        self._adam = _per_stage(self.adam_steps, n, "adam_steps")
        self._lbfgs = _per_stage(self.lbfgs_steps, n, "lbfgs_steps")
        lr, lr_final = self.lr, self.lr_final
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if lr_final is not None and not 0 < lr_final <= lr:
            raise ValueError(f"lr_final must be in (0, lr], got {lr_final}")
        if self.loss not in ("mse", "lp"):
            raise ValueError(f"loss must be 'mse' or 'lp', got {self.loss!r}")
        if not self.p >= 1:
            raise ValueError(f"p must be >= 1, got {self.p}")
        if self.target_rms is not None and not self.target_rms >= 0:
            raise ValueError(f"target_rms must be >= 0, got {self.target_rms}")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float64 or torch.float32, got {self.dtype}")
        self._phases = None
        if self.schedule is not None:
            self._phases = [schedule_for(self.schedule, k, adam_steps=self._adam[k], lbfgs_steps=self._lbfgs[k],
                                         n_stages=n) for k in range(n)]
            for k, phases in enumerate(self._phases):
                kinds = {ph.kind for ph in phases}
                bad = sorted(kinds - {"adam", "lbfgs", "output-lstsq", "lsgd"})
                if bad:
                    raise ValueError(
                        f"SI stages do not take the phases {bad}: a Gauss-Newton step on an SI network's "
                        f"{self._n_features[k]} features (n_f (d + 1) + n_f x "
                        f"{self._widths[0] if self._widths else 1} parameters in the first layers) is a dense "
                        "least-squares system too large to be useful; use 'output-lstsq' or 'lsgd', which "
                        "solve the output layer exactly")
                if kinds & {"output-lstsq", "lsgd"} and not self._widths:
                    raise ValueError("'output-lstsq' and 'lsgd' need hidden layers (widths=() has no output layer)")
        self._n = n
        self._device = resolve_device(self.device)
        self._seed = int(self.seed)
        self._chunk = count(self.max_chunk_elements, "max_chunk_elements", 1)
        self._ckpt = CheckpointFile(self.checkpoint)

    # ------------------------------------------------------------------ data
    def _settings(self) -> dict:
        return dict(n_stages=self._n, n_f=self._n_features, widths=self._widths, adam=self._adam,
                    lbfgs=self._lbfgs, lr=float(self.lr), lr_final=self.lr_final, loss=self.loss, p=float(self.p),
                    dtype=str(self.dtype), seed=self._seed, target=self.target_rms,
                    schedule=None if self._phases is None else [[str(ph) for ph in phs] for phs in self._phases])

    def _normalize(self, x: np.ndarray) -> np.ndarray:
        return -1.0 + 2.0 * (x - self.lo_) / (self.hi_ - self.lo_)

    def _loss_fn(self, net: SINetwork, xt: tuple[torch.Tensor, ...], target: torch.Tensor):
        if self.loss == "mse":
            return lambda: torch.mean((net(xt) - target) ** 2)
        return lambda: lp_loss(net(xt) - target, self.p)

    def _annealing(self, steps: int):
        if self.lr_final is not None and self.lr_final < self.lr and steps > 1:
            ratio = self.lr_final / self.lr
            return lambda i, r=ratio, s=steps: r ** (i / (s - 1))  # noqa: E731
        return None

    def _run_phases(self, net: SINetwork, xt: tuple[torch.Tensor, ...], target: torch.Tensor, phases, target_loss,
                    desc: str) -> tuple[TrainHistory, list[dict]]:
        """Train one stage by ``phases``; Adam anneals its learning rate within each Adam phase.

        "output-lstsq" sets the output layer to the least-squares (MSE) fit, whatever the
        stage's loss; "lsgd" runs Adam on every other parameter on the stage's loss and
        re-solves the output layer every ``every`` steps and at the end."""
        loss_fn = self._loss_fn(net, xt, target)
        progress = show_progress(self.progress)
        t0 = time.perf_counter()
        parts, reports = [], []
        stopped = "budget"

        def current() -> float:
            with torch.no_grad():
                return float(loss_fn())

        for ph in phases:
            t1, before = time.perf_counter(), current()
            if ph.kind in ("adam", "lbfgs"):
                steps = ph.steps if ph.kind == "adam" else 0
                h = train(net, loss_fn, adam_steps=steps, lbfgs_steps=ph.steps if ph.kind == "lbfgs" else 0,
                          lr=ph.opt("lr", self.lr), lr_schedule=self._annealing(steps), target_loss=target_loss,
                          progress=progress, desc=f"{desc} {ph.kind}")
                parts.append(h)
                stopped, done = h.stopped, h.adam_steps + h.lbfgs_iterations
            elif ph.kind == "output-lstsq":
                net.solve_output_layer(xt, target, mu=ph.opt("mu", 0.0), rcond=ph.opt("rcond", 1e-15))
                stopped, done = "solved", 0
            else:  # lsgd
                every, mu, rcond = ph.opt("every", 1), ph.opt("mu", 0.0), ph.opt("rcond", 1e-15)
                net.solve_output_layer(xt, target, mu=mu, rcond=rcond)
                hidden = [p for p in net.parameters() if p.requires_grad][:-2]
                opt = torch.optim.Adam(hidden, lr=ph.opt("lr", self.lr))
                rec = []
                for i in range(ph.steps):
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn()
                    loss.backward()
                    opt.step()
                    rec.append(float(loss.detach()))
                    if (i + 1) % every == 0 or i == ph.steps - 1:
                        net.solve_output_layer(xt, target, mu=mu, rcond=rcond)
                parts.append(TrainHistory(loss=np.asarray(rec, dtype=float), adam_steps=ph.steps))
                stopped, done = "budget", ph.steps
            reports.append({"kind": ph.kind, "steps": int(done), "loss_before": before, "loss_after": current(),
                            "seconds": time.perf_counter() - t1, "stopped": stopped})
        hist = merge_histories(parts, seconds=time.perf_counter() - t0, stopped=stopped, final_loss=current())
        return hist, reports

    # ------------------------------------------------------------------- fit
    def fit(self, u: ArrayLike, *, lo: float | Sequence[float] = -1.0,
            hi: float | Sequence[float] = 1.0) -> "SIMultistageRegressor":
        """Fit the stages to grid values ``u`` on the periodic grid ``lo + n (hi - lo) / N``.

        Args:
            u: shape (N,) or (Nx, Ny) (axis 0 along x), numpy or torch.
            lo, hi: the domain, a number or one per axis; the right end is excluded
                from the grid. Inputs are mapped to [-1, 1) for the SI initialization.
        """
        self._validate()
        u = _grid_values(u)
        if u.ndim > 2:
            raise ValueError(f"SIMultistageRegressor supports 1D and 2D grids, got shape {u.shape}")
        self.lo_, self.hi_ = _bounds(lo, hi, u.ndim)
        self.grid_shape_ = u.shape
        self.eps0_ = float(np.sqrt(np.mean(u ** 2)))
        if self.eps0_ == 0.0:
            raise ValueError("u is identically zero: nothing to fit")
        un = u.ravel() / self.eps0_
        # the normalized grid as its axes: every stage is evaluated on it by the grid path
        # (SINetwork.forward with a tuple of axes), whose points are the meshgrid ("ij",
        # C order) of these axes, the order of u.ravel()
        xt = tuple(torch.as_tensor(-1.0 + 2.0 * np.arange(n) / n, dtype=self.dtype, device=self._device)
                   for n in u.shape)
        self._u = u
        self.stages_: list[SIStageRecord] = []
        self.networks_: list[SINetwork] = []
        self._train_parts: list[np.ndarray] = []  # eps_j u_j on the grid, normalized units
        self._train_pred = np.zeros_like(un)
        key = self._checkpoint_key(un)
        self._resume(key, xt)
        t_fit = time.perf_counter()
        for n in range(len(self.stages_), self._n):
            residue = un - self._train_pred
            eps = float(np.sqrt(np.mean(residue ** 2)))
            if eps == 0.0 or (n > 0 and self.target_rms is not None and eps <= self.target_rms):
                break
            target_grid = (residue / eps).reshape(u.shape)
            all_modes = spectral_modes(target_grid)
            n_f = min(self._n_features[n], len(all_modes))
            modes = all_modes.top(n_f)
            net = SINetwork(modes, self._widths, seed=self._seed + n, dtype=self.dtype, device=self._device,
                            max_chunk_elements=self._chunk)
            target = torch.as_tensor(residue / eps, dtype=self.dtype, device=self._device)
            steps = self._adam[n]
            target_loss = None
            if self.target_rms is not None:
                t = self.target_rms / eps
                target_loss = t * t if self.loss == "mse" else t
            desc = f"SI stage {n + 1}/{self._n}"
            reports = []
            if self._phases is None:
                hist: TrainHistory = train(
                    net, self._loss_fn(net, xt, target), adam_steps=steps, lbfgs_steps=self._lbfgs[n],
                    lr=self.lr, lr_schedule=self._annealing(steps), target_loss=target_loss,
                    progress=show_progress(self.progress), desc=desc)
            else:
                hist, reports = self._run_phases(net, xt, target, self._phases[n], target_loss, desc)
            with torch.no_grad():
                part = eps * net(xt).to(torch.float64).cpu().numpy()
            rms_after = float(np.sqrt(np.mean((un - (self._train_pred + part)) ** 2)))
            rec = SIStageRecord(
                index=n, eps=eps, eps_data=eps * self.eps0_, n_features=n_f,
                top_modes=[float(v) for v in np.linalg.norm(modes.k[:5], axis=1)], widths=self._widths,
                loss=self.loss, adam_steps=hist.adam_steps, lbfgs_iterations=hist.lbfgs_iterations,
                lbfgs_evaluations=hist.lbfgs_evaluations, final_loss=float(np.sum(hist.final_loss)),
                loss_history=hist.loss, rms_after=rms_after, seconds=hist.seconds, stopped=hist.stopped,
                phases=reports)
            self._keep_stage(rec, net, part)
            if self.verbose:
                print(f"SI stage {n + 1}: n_f = {n_f}, eps = {rec.eps_data:.3e}, loss = {rec.final_loss:.3e}, "
                      f"rms after / RMS(u) = {rms_after:.3e} ({hist.seconds:.1f} s)", flush=True)
            self._save_checkpoint(key)
        self.fit_seconds_ = time.perf_counter() - t_fit
        return self

    # --------------------------------------------------------------- predict
    def predict_stages(self, x: ArrayLike) -> np.ndarray:
        """Each stage's contribution eps_j u_j at points x (M, d) in the original
        coordinates, in the units of u; shape (n_stages, M)."""
        self._check_fitted()
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and len(self.grid_shape_) == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != len(self.grid_shape_):
            raise ValueError(f"x must have shape (M, {len(self.grid_shape_)}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or inf")
        xn = self._normalize(x)
        out = np.zeros((len(self.networks_), xn.shape[0]))
        with torch.no_grad():
            for j, (net, rec) in enumerate(zip(self.networks_, self.stages_)):
                xt = torch.as_tensor(xn, dtype=net.dtype, device=net.device)
                out[j] = net(xt).to(torch.float64).cpu().numpy() * rec.eps_data
        return out

    def predict(self, x: ArrayLike, n_stages: int | None = None) -> np.ndarray:
        """The model sum_j eps_j u_j at points x (M, d), in the units of u."""
        parts = self.predict_stages(x)
        k = parts.shape[0] if n_stages is None else int(n_stages)
        if not 1 <= k <= parts.shape[0]:
            raise ValueError(f"n_stages must be in [1, {parts.shape[0]}], got {n_stages}")
        return parts[:k].sum(0)

    def predict_grid(self, n_stages: int | None = None) -> np.ndarray:
        """The model on the training grid (float64 sum of the stages), shape of u."""
        self._check_fitted()
        k = len(self._train_parts) if n_stages is None else int(n_stages)
        if not 1 <= k <= len(self._train_parts):
            raise ValueError(f"n_stages must be in [1, {len(self._train_parts)}], got {n_stages}")
        return (np.sum(self._train_parts[:k], axis=0) * self.eps0_).reshape(self.grid_shape_)

    def residue(self, n_stages: int | None = None) -> np.ndarray:
        """u minus the model on the training grid after ``n_stages`` stages (default: all)."""
        return self._u - self.predict_grid(n_stages)

    def grid_points(self) -> np.ndarray:
        """The training grid's points in the original coordinates, shape (N_total, d)."""
        self._check_fitted()
        axes = [lo + (hi - lo) * np.arange(n) / n for lo, hi, n in zip(self.lo_, self.hi_, self.grid_shape_)]
        return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)

    @property
    def total_steps_(self) -> int:
        self._check_fitted()
        return sum(len(s.loss_history) for s in self.stages_)

    # ------------------------------------------------------------ checkpoint
    def _checkpoint_key(self, un) -> str:
        grid = np.array(self.lo_.tolist() + self.hi_.tolist() + list(self.grid_shape_), dtype=np.float64)
        return settings_key(self._settings(), un, grid)

    def _network_for(self, rec: "SIStageRecord", xt: tuple[torch.Tensor, ...]) -> SINetwork:
        n_f, d = rec.n_features, len(self.grid_shape_)
        dummy = SpectralModes(np.zeros((n_f, d)), np.zeros(n_f), np.zeros(n_f), np.zeros(n_f), self.grid_shape_)
        return SINetwork(dummy, tuple(rec.widths), seed=self._seed + rec.index, dtype=self.dtype,
                         device=self._device, max_chunk_elements=self._chunk)

    def _keep_stage(self, rec: "SIStageRecord", net: SINetwork, part: np.ndarray) -> None:
        self._train_parts.append(part)
        super()._keep_stage(rec, net, part)
