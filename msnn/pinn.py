"""Physics-informed neural networks in stages: the problem and the solution (Wang & Lai 2024, Sec. 3).

A PINN problem is declared once, as data (:class:`PINNProblem`): the residual
``r(x, u)`` written with autograd derivatives (:func:`grad`, :func:`gradient`,
:func:`laplacian`), the boundary/initial data, the domain box and, where known, the
exact solution. A solution is a sum of stages (:class:`StagedSolution`),

    u_k^(c)(x) = u_(k-1)^(c)(x) + eps_k u_k(x; kappa_k),        eq. (3.41)-(3.42),

whose earlier stages are frozen, so that training the newest network on the
original equation is training it on the linearized higher-stage equation (3.13)
with the lower stages' residue as source. Collocation points are drawn uniformly
or by Latin hypercube sampling (:func:`sample_collocation`, Sec. 3.3.1), and
residual-based adaptive refinement is declared by :class:`RAR` (Sec. 3.3.2).

Training a stage on the loss of eq. (3.1)-(3.2) and (3.38), the settings of the next
stage read from the residue (eq. 3.9, 3.16-3.19, Algorithm 2) and the equation weight
(eq. 3.32, Algorithm 3) are in :mod:`msnn.pinn_training`; their names stay importable
from here. Algorithm 4 is :class:`msnn.MultistagePINN`; chapters 5-7 of the book show
these pieces at work.

Everything runs in the dtype of the model (float64 by default); the library never
changes global torch defaults.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch
from torch import nn

from ._common import as_points, resolve_device
from .networks import StageNetwork, points_per_chunk

__all__ = ["grad", "gradient", "laplacian", "PINNProblem", "StagedSolution", "RAR",
           "sample_collocation"]


# ---------------------------------------------------------------- derivatives
def grad(u: torch.Tensor, x: torch.Tensor, order: int = 1, axis: int = 0) -> torch.Tensor:
    """The derivative d^order u / dx_axis^order at every point, by autograd.

    ``u`` has shape (N,) and was computed pointwise from ``x`` of shape (N, d) (or
    (N,) in 1D), which must have ``requires_grad=True``. The graph is kept
    (``create_graph=True``) so that the result can be differentiated again and
    trained through. A derivative that vanishes identically (``u`` linear in
    ``x_axis``, say) comes back as zeros.

    Args:
        u: values, shape (N,).
        x: inputs with ``requires_grad``, shape (N, d) or (N,).
        order: derivative order (0 returns ``u``).
        axis: input axis to differentiate along.
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"order must be a non-negative integer, got {order!r}")
    if not x.requires_grad:
        raise ValueError("x must have requires_grad=True to take derivatives with respect to it")
    d = 1 if x.dim() == 1 else x.shape[-1]
    if not 0 <= axis < d:
        raise ValueError(f"axis {axis} out of range for inputs with {d} columns")
    out = u
    for _ in range(int(order)):
        if not out.requires_grad:
            return torch.zeros_like(u)
        g = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), create_graph=True,
                                allow_unused=True)[0]
        if g is None:
            return torch.zeros_like(u)
        out = g if x.dim() == 1 else g[..., axis]
    return out


def gradient(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The gradient (du/dx_1, ..., du/dx_d) at every point, shape (N, d), graph kept."""
    if not x.requires_grad:
        raise ValueError("x must have requires_grad=True to take derivatives with respect to it")
    if not u.requires_grad:
        return torch.zeros_like(x)
    g = torch.autograd.grad(u, x, grad_outputs=torch.ones_like(u), create_graph=True, allow_unused=True)[0]
    g = torch.zeros_like(x) if g is None else g
    return g[:, None] if g.dim() == 1 else g


def laplacian(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The Laplacian sum_i d^2 u / dx_i^2 at every point, shape (N,), graph kept."""
    d = 1 if x.dim() == 1 else x.shape[-1]
    return sum(grad(u, x, 2, i) for i in range(d))


# ---------------------------------------------------------------- the problem
@dataclass
class PINNProblem:
    """A differential equation with data, declared once.

    The residual is a function ``residual(x, u) -> r`` of torch tensors: ``x`` of
    shape (N, d) with ``requires_grad`` and ``u`` of shape (N,) computed from it;
    derivatives are taken with :func:`grad` (any order). The residual is written
    as ``r = N[x, u] - s(x)``, so that ``r(x, 0) = -s(x)`` for a linear operator
    (which is how :func:`~msnn.pinn_training.algorithm2` finds the source ``s``).

    Args:
        residual: the equation residue r(x, u) (eq. 3.4, 3.12).
        domain: the box, one ``(lo, hi)`` pair per input axis.
        data_x: boundary/initial data locations, shape (N_d, d).
        data_u: the values there, shape (N_d,).
        exact: optional exact solution, numpy (N, d) -> (N,), for errors.
        source: optional source s(x) as a torch function (N, d) -> (N,); by default
            ``s(x) = -r(x, 0)``.
        name: a short label.

    Raises:
        ValueError: a domain that is not one (lo, hi) pair per axis with lo < hi,
            data of another dimension, empty data, NaN/inf data, or a residual
            that does not depend on u.
    """

    residual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    domain: Sequence[Sequence[float]]
    data_x: np.ndarray
    data_u: np.ndarray
    exact: Callable[[np.ndarray], np.ndarray] | None = None
    source: Callable[[torch.Tensor], torch.Tensor] | None = None
    name: str = "pinn"

    def __post_init__(self):
        dom = np.asarray(self.domain, dtype=np.float64)
        if dom.ndim == 1 and dom.size == 2:
            dom = dom[None, :]
        if dom.ndim != 2 or dom.shape[1] != 2 or dom.shape[0] < 1:
            raise ValueError(f"domain must be one (lo, hi) pair per input axis, got shape {dom.shape}")
        if not np.all(np.isfinite(dom)) or np.any(dom[:, 1] <= dom[:, 0]):
            raise ValueError(f"domain needs finite bounds with lo < hi on every axis, got {dom.tolist()}")
        self.domain = dom
        if self.data_x is None or np.size(self.data_x) == 0:
            raise ValueError("the boundary/initial data are empty: a PINN needs at least one data point")
        self.data_x = as_points(self.data_x, self.dim, "data_x")
        u = np.asarray(self.data_u.detach().cpu() if isinstance(self.data_u, torch.Tensor) else self.data_u,
                       dtype=np.float64).reshape(-1)
        if u.size != self.data_x.shape[0]:
            raise ValueError(f"data_u has {u.size} values for {self.data_x.shape[0]} data points")
        if not np.all(np.isfinite(u)):
            raise ValueError("data_u contains NaN or inf")
        self.data_u = u
        self._check_residual()

    @property
    def dim(self) -> int:
        """Number of inputs d."""
        return int(self.domain.shape[0])

    def _check_residual(self) -> None:
        # the residual must change with u: differentiate it with respect to a scalar c in
        # u = c * phi(x), with phi smooth and not polynomial, so every derivative of u depends on c
        g = torch.Generator().manual_seed(1234)
        lo, hi = torch.as_tensor(self.domain[:, 0]), torch.as_tensor(self.domain[:, 1])
        x = (lo + (hi - lo) * torch.rand(16, self.dim, generator=g, dtype=torch.float64)).requires_grad_(True)
        c = torch.ones((), dtype=torch.float64, requires_grad=True)
        phi = torch.sin(1.3 * x + 0.4).sum(-1) + torch.exp(0.7 * x).prod(-1)
        r = self.residual(x, c * phi)
        if not isinstance(r, torch.Tensor) or r.shape != (16,):
            raise ValueError(f"residual(x, u) must return a tensor of shape (N,), got "
                             f"{getattr(r, 'shape', type(r).__name__)} for N = 16")
        dc = torch.autograd.grad(r.sum(), c, allow_unused=True)[0] if r.requires_grad else None
        if dc is None or float(dc.abs()) == 0.0:
            raise ValueError("the residual does not depend on u: write it with the u it is given "
                             "(and its derivatives), e.g. grad(u, x, 1) - u - x[:, 0]")

    def source_values(self, x: torch.Tensor) -> torch.Tensor:
        """The source s(x) of N[x, u] = s (eq. 3.22): ``source(x)`` if given, else -r(x, 0)."""
        if self.source is not None:
            return self.source(x)
        return -self.residual(x, 0.0 * x.sum(-1))


# ---------------------------------------------------------------- the solution
class StagedSolution(nn.Module):
    """The combined network u^(c) = sum_k eps_k u_k(x; kappa_k) (eq. 3.41-3.43).

    Stage 0 is a regular network (tanh first layer, eps_0 = 1 unless the problem's
    magnitude is known, as in Fig. 8); each later stage has a sin first layer and a
    prefactor eps_k from the residue. :meth:`add_stage` freezes every earlier stage,
    so only the newest network trains.

    Args:
        dim: number of inputs d.
        dtype, device: of every stage (float64 by default; device "auto": a GPU when torch
            sees one, else the CPU).
    """

    def __init__(self, dim: int, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "auto"):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.dtype = dtype
        self.device = resolve_device(device)
        self.stages = nn.ModuleList()
        self.eps: list[float] = []

    def add_stage(self, eps: float = 1.0, *, widths: Sequence[int] = (20, 20, 20), first_activation: str | None = None,
                  kappa_hat: ArrayLike | None = None, seed: int = 0, init: str = "xavier_normal") -> StageNetwork:
        """Freeze the current stages and append eps * u_k with a fresh network u_k.

        Args:
            eps: the magnitude prefactor eps_k (eq. 3.9, 3.17, 3.19 or Algorithm 2).
            widths: hidden widths of u_k.
            first_activation: "tanh" or "sin" (default: tanh for stage 0, sin after).
            kappa_hat: modified scale factor(s) of u_k's first layer (eq. 2.8), one
                per input axis or a scalar; None for kappa = 1.
            seed: initialization seed of u_k.

        Returns:
            The new network (its parameters are the trainable ones).
        """
        if not (isinstance(eps, (int, float, np.floating)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite positive number, got {eps!r}")
        for net in self.stages:
            net.requires_grad_(False)
        act = first_activation or ("tanh" if not self.stages else "sin")
        net = StageNetwork(self.dim, widths, first_activation=act, kappa_hat=kappa_hat, seed=seed, init=init,
                           dtype=self.dtype, device=self.device)
        self.stages.append(net)
        self.eps.append(float(eps))
        return net

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def trainable(self) -> list[torch.Tensor]:
        """The parameters that train: those of the newest stage."""
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor, n_stages: int | None = None) -> torch.Tensor:
        """u^(c)(x) summed over the first ``n_stages`` stages (all by default), shape (N,).

        With no stage yet, u^(c) = 0: its residue is -s(x), the source, which is how
        the first stage's magnitude and frequency can be read (eq. 3.19, Fig. 8).
        """
        if x.dim() == 1:
            x = x[:, None]
        if x.shape[-1] != self.dim:
            raise ValueError(f"expected inputs with {self.dim} columns, got shape {tuple(x.shape)}")
        n = self.n_stages if n_stages is None else int(n_stages)
        out = 0.0 * x.sum(-1)
        for eps, net in zip(self.eps[:n], self.stages[:n]):
            out = out + eps * net(x)
        return out

    def _tensor(self, x) -> torch.Tensor:
        a = as_points(x, self.dim, "x")
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def _chunk(self) -> int:
        """Points per evaluation: 65536, fewer for wide stages (memory ~ points x units)."""
        return points_per_chunk(self.stages, 2 ** 24, 1024, 65536)

    def predict(self, x: ArrayLike, n_stages: int | None = None) -> np.ndarray:
        """u^(c) at points x (numpy or torch, shape (N, d)) as a float64 numpy array."""
        xt, c = self._tensor(x), self._chunk()
        with torch.no_grad():
            return np.concatenate([self(xt[s:s + c], n_stages).cpu().numpy().astype(np.float64)
                                   for s in range(0, xt.shape[0], c)] or [np.zeros(0)])

    def predict_stages(self, x: ArrayLike) -> np.ndarray:
        """eps_k u_k(x) of every stage, shape (n_stages, N)."""
        xt, c = self._tensor(x), self._chunk()
        with torch.no_grad():
            return np.stack([np.concatenate([(e * net(xt[s:s + c])).cpu().numpy() for s in range(0, xt.shape[0], c)]
                                            or [np.zeros(0)]) for e, net in zip(self.eps, self.stages)])


# ---------------------------------------------------------------- collocation
def sample_collocation(domain: ArrayLike, n: int, *, method: str = "lhs", generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                       margin: float = 0.0) -> torch.Tensor:
    """``n`` collocation points in the box, uniformly at random or by Latin hypercube.

    Latin hypercube sampling splits every axis into ``n`` equal strata and puts
    one point in each (a random permutation per axis), as the authors' code does.
    The points are drawn on ``device`` with ``generator``, so resampling inside
    a training step never copies from the host.

    Args:
        domain: array (d, 2) of (lo, hi) per axis.
        n: number of points.
        method: "lhs" or "uniform".
        margin: widen the box by this fraction of its half-width on each side
            (the authors' 1D code samples [-1.01, 1.01] for [-1, 1]).
    """
    if method not in ("lhs", "uniform"):
        raise ValueError(f"method must be 'lhs' or 'uniform', got {method!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"need at least one collocation point, got n = {n}")
    dom = torch.as_tensor(np.asarray(domain, dtype=np.float64), dtype=dtype, device=device)
    half = (dom[:, 1] - dom[:, 0]) / 2
    lo, hi = dom[:, 0] - margin * half, dom[:, 1] + margin * half
    d = dom.shape[0]
    u = torch.rand(n, d, generator=generator, dtype=dtype, device=device)
    if method == "lhs":
        perm = torch.stack([torch.randperm(n, generator=generator, device=device) for _ in range(d)], 1)
        u = (perm.to(dtype) + u) / n
    return lo + (hi - lo) * u


@dataclass
class RAR:
    """Residual-based adaptive refinement (Section 3.3.2; Lu et al. 2021).

    Every ``every`` Adam steps, ``candidates`` random points are scored by |r| and
    the ``add`` worst are kept for good: they join every later collocation set.
    """

    every: int = 1000
    candidates: int = 10000
    add: int = 100
    max_points: int | None = None
