"""Physics-informed neural networks in stages (Section 3 of Wang & Lai 2024).

A PINN problem is declared once, as data (:class:`PINNProblem`): the residual
``r(x, u)`` written with autograd derivatives (:func:`grad`, :func:`laplacian`),
the boundary/initial data, the domain box and, where known, the exact solution.
A solution is a sum of stages (:class:`StagedSolution`),

    u_k^(c)(x) = u_(k-1)^(c)(x) + eps_k u_k(x; kappa_k),        eq. (3.41)-(3.42),

whose earlier stages are frozen, so that training the newest network on the
original equation is training it on the linearized higher-stage equation (3.13)
with the lower stages' residue as source. :func:`train_pinn` trains the newest
stage on the loss of eq. (3.1)-(3.2) and (3.38),

    L = (1 - gamma) L_d + gamma (L_e + gamma_g L_g),

with collocation points drawn uniformly or by Latin hypercube sampling and, if
asked, re-drawn every ``resample_every`` Adam steps on the model's device
("Adam with SGD", Section 3.3.1), and with residual-based adaptive refinement
(RAR, Section 3.3.2). The settings of the next stage come from the residue
(:func:`estimate_next_stage`, eq. 3.9 and 3.16-3.19, or :func:`algorithm2`); the
equation weight from eq. (3.32) (:func:`gamma_bound`) or Algorithm 3
(:func:`algorithm3`). Algorithm 4 is a loop over these pieces; chapters 5-7 of
the book show them at work.

Everything runs in the dtype of the model (float64 by default); the library never
changes global torch defaults.

Example (eq. 3.3, one stage, then the settings of a second)::

    problem = PINNProblem(residual=lambda x, u: grad(u, x, 1) - u - x[:, 0],
                          domain=[(-1, 1)], data_x=[[0.0]], data_u=[0.0])
    model = StagedSolution(1)
    model.add_stage(1.0, widths=(20, 20, 20))
    train_pinn(problem, model, gamma=0.23, n_collocation=201, adam_steps=5000, lbfgs_steps=5000)
    est = estimate_next_stage(problem, model, orders=(1,))        # eq. (3.9)
    model.add_stage(est.eps, kappa_hat=est.kappa_hat)             # eq. (3.41), sin first layer
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch
from torch import nn

from ._common import resolve_device
from .networks import StageNetwork, xavier_std
from .spectrum import dominant_frequency, dominant_frequency_2d
from .training import TrainHistory, train

__all__ = [
    "grad", "gradient", "laplacian", "PINNProblem", "StagedSolution", "PINNRun", "RAR",
    "sample_collocation", "train_pinn", "StageEstimate", "estimate_next_stage", "magnitude_estimate",
    "Algorithm2Result", "algorithm2", "Algorithm3Result", "algorithm3", "convergence_ratio",
    "gamma_bound", "gpinn_weight", "residual_grid",
]


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
def _as_points(a, dim: int | None, name: str, dtype=np.float64) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=dtype)
    if a.ndim == 1:
        a = a[:, None] if dim in (None, 1) else a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d), got {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name} has {a.shape[1]} columns but the domain has dimension {dim}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


@dataclass
class PINNProblem:
    """A differential equation with data, declared once.

    The residual is a function ``residual(x, u) -> r`` of torch tensors: ``x`` of
    shape (N, d) with ``requires_grad`` and ``u`` of shape (N,) computed from it;
    derivatives are taken with :func:`grad` (any order). The residual is written
    as ``r = N[x, u] - s(x)``, so that ``r(x, 0) = -s(x)`` for a linear operator
    (which is how :func:`algorithm2` finds the source ``s``).

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
        self.data_x = _as_points(self.data_x, self.dim, "data_x")
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
        a = _as_points(x, self.dim, "x")
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def predict(self, x: ArrayLike, n_stages: int | None = None) -> np.ndarray:
        """u^(c) at points x (numpy or torch, shape (N, d)) as a float64 numpy array."""
        with torch.no_grad():
            return self(self._tensor(x), n_stages).cpu().numpy().astype(np.float64)

    def predict_stages(self, x: ArrayLike) -> np.ndarray:
        """eps_k u_k(x) of every stage, shape (n_stages, N)."""
        xt = self._tensor(x)
        with torch.no_grad():
            return np.stack([(e * net(xt)).cpu().numpy() for e, net in zip(self.eps, self.stages)])


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


# ---------------------------------------------------------------- training
@dataclass
class PINNRun:
    """What one :func:`train_pinn` call did.

    Attributes:
        history: the optimizer's :class:`~msnn.training.TrainHistory` (its ``loss``
            is the normalized total loss L / L_ref).
        loss_d, loss_e, loss_g: data, equation and residual-gradient losses (eq. 3.2,
            3.38) at every Adam step and L-BFGS evaluation, unnormalized.
        loss_ref: L_ref, the total loss at the first evaluation (1 if not normalized).
        gamma, gamma_g: the weights used.
        collocation: the last collocation set (with RAR points), numpy (N_c, d).
        rar_points: the points RAR added, numpy (n, d).
    """

    history: TrainHistory
    loss_d: np.ndarray
    loss_e: np.ndarray
    loss_g: np.ndarray
    loss_ref: float
    gamma: float
    gamma_g: float
    collocation: np.ndarray
    rar_points: np.ndarray

    @property
    def loss(self) -> np.ndarray:
        """Total loss (1 - gamma) L_d + gamma (L_e + gamma_g L_g), unnormalized."""
        return (1 - self.gamma) * self.loss_d + self.gamma * (self.loss_e + self.gamma_g * self.loss_g)

    @property
    def iterations(self) -> int:
        return self.history.iterations


def _losses(problem: PINNProblem, model: StagedSolution, xc: torch.Tensor, xd: torch.Tensor,
            ud: torch.Tensor, gamma_g: float):
    x = xc.detach().requires_grad_(True)
    r = problem.residual(x, model(x))
    le = torch.mean(r ** 2)
    lg = torch.mean(gradient(r, x).pow(2).sum(-1)) if gamma_g > 0 else torch.zeros((), dtype=le.dtype,
                                                                                   device=le.device)
    ld = torch.mean((model(xd) - ud) ** 2)
    return ld, le, lg


def train_pinn(problem: PINNProblem, model: StagedSolution, *, gamma: float, gamma_g: float = 0.0,
               n_collocation: int = 1000, sampler: str = "lhs", resample_every: int = 100,
               adam_steps: int = 5000, lbfgs_steps: int = 0, lr: float = 1e-3, normalize: bool = True,
               margin: float = 0.0, rar: RAR | None = None, extra_points: ArrayLike | None = None, seed: int = 0,
               lr_schedule: Callable[[int], float] | None = None, progress: bool | None = None,
               desc: str = "pinn") -> PINNRun:
    """Train the newest stage of ``model`` on L = (1-gamma) L_d + gamma (L_e + gamma_g L_g).

    Implements eq. (3.1)-(3.2) and (3.38) of Wang & Lai (2024). L_d is the mean
    square misfit at the problem's data points, L_e the mean square residual at the
    collocation points, L_g the mean of |grad_x r|^2 there (gPINN; 0 unless
    ``gamma_g > 0``). With ``normalize`` the optimizer sees L / L_ref, L_ref the
    loss at the first step (the authors' code does this for higher stages), which
    keeps Adam's steps meaningful when the loss is far below 1; the recorded
    losses are in the problem's units.

    Adam runs first ("GD" on fixed points if ``resample_every`` is 0, "SGD" when
    the points are re-drawn every ``resample_every`` steps, Section 3.3.1), then
    L-BFGS on the last point set.

    Args:
        problem: the equation and its data.
        model: a :class:`StagedSolution`; only its newest stage trains.
        gamma: equation weight, 0 < gamma < 1 (eq. 3.32 or Algorithm 3).
        gamma_g: gPINN weight (eq. 3.39-3.40); 0 for a plain PINN.
        n_collocation: collocation points N_c.
        sampler: "lhs" or "uniform".
        resample_every: re-draw the points every this many Adam steps (0: never).
        adam_steps, lbfgs_steps, lr, lr_schedule: the optimizer budget (see
            :func:`msnn.train`).
        normalize: divide the loss by its initial value.
        margin: widen the sampling box by this fraction (see :func:`sample_collocation`).
        rar: residual-based adaptive refinement, or None.
        extra_points: points always in the collocation set (e.g. the endpoints).
        seed: seed of the collocation draws.

    Returns:
        A :class:`PINNRun` with the loss histories.
    """
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
    if gamma_g < 0:
        raise ValueError(f"gamma_g must be >= 0, got {gamma_g}")
    if resample_every < 0:
        raise ValueError(f"resample_every must be >= 0, got {resample_every}")
    if model.dim != problem.dim:
        raise ValueError(f"the model has {model.dim} inputs but the problem's domain has dimension {problem.dim}")
    params = model.trainable()
    if not params:
        raise ValueError("the model has no trainable stage: call add_stage first")
    dev, dt = model.device, model.dtype
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    xd = torch.as_tensor(problem.data_x, dtype=dt, device=dev)
    ud = torch.as_tensor(problem.data_u, dtype=dt, device=dev)
    extra = None if extra_points is None else torch.as_tensor(_as_points(extra_points, problem.dim, "extra_points"),
                                                              dtype=dt, device=dev)
    state = {"x": None, "rar": torch.zeros(0, problem.dim, dtype=dt, device=dev), "ref": None}
    recs: list[torch.Tensor] = []

    def draw():
        x = sample_collocation(problem.domain, n_collocation, method=sampler, generator=gen, dtype=dt,
                               device=dev, margin=margin)
        parts = [x] + ([extra] if extra is not None else []) + [state["rar"]]
        state["x"] = torch.cat(parts, 0)

    def refine():
        cand = sample_collocation(problem.domain, rar.candidates, method="uniform", generator=gen, dtype=dt,
                                  device=dev)
        r = _residual_chunks(problem, model, cand).abs()
        top = cand[torch.topk(r, min(rar.add, r.numel())).indices]
        new = torch.cat([state["rar"], top], 0)
        if rar.max_points is not None:
            new = new[-rar.max_points:]
        state["rar"] = new
        parts = [state["x"][: n_collocation + (0 if extra is None else extra.shape[0])], new]
        state["x"] = torch.cat(parts, 0)

    def before_step(i: int):
        if rar is not None and i > 0 and i % rar.every == 0:
            refine()
        if resample_every and i > 0 and i % resample_every == 0:
            draw()

    def loss_fn():
        recording = torch.is_grad_enabled()
        with torch.enable_grad():
            ld, le, lg = _losses(problem, model, state["x"], xd, ud, gamma_g)
            total = (1 - gamma) * ld + gamma * (le + gamma_g * lg)
        if recording:
            recs.append(torch.stack([ld.detach(), le.detach(), lg.detach()]))
        if state["ref"] is None:
            state["ref"] = float(total.detach()) if normalize else 1.0
            if not state["ref"] > 0:
                state["ref"] = 1.0
        return total / state["ref"]

    draw()
    hist = train(params, loss_fn, adam_steps=adam_steps, lbfgs_steps=lbfgs_steps, lr=lr, lr_schedule=lr_schedule,
                 before_step=before_step, progress=progress, desc=desc)
    comp = torch.stack(recs).cpu().numpy() if recs else np.zeros((0, 3))
    return PINNRun(history=hist, loss_d=comp[:, 0], loss_e=comp[:, 1], loss_g=comp[:, 2], loss_ref=state["ref"],
                   gamma=float(gamma), gamma_g=float(gamma_g), collocation=state["x"].detach().cpu().numpy(),
                   rar_points=state["rar"].cpu().numpy())


def _residual_chunks(problem: PINNProblem, model: nn.Module | Callable, x: torch.Tensor, chunk: int = 8192,
                     grad_norm: bool = False) -> torch.Tensor:
    outs = []
    for s in range(0, x.shape[0], chunk):
        xi = x[s:s + chunk].detach().requires_grad_(True)
        with torch.enable_grad():
            r = problem.residual(xi, model(xi))
            if grad_norm:
                r = gradient(r, xi).pow(2).sum(-1).sqrt()
        outs.append(r.detach())
    return torch.cat(outs)


# ---------------------------------------------------------------- diagnostics
def residual_grid(problem: PINNProblem, model: StagedSolution, n: int | Sequence[int] = 256, *,
                  gradient_norm: bool = False):
    """The residue r(x, u^(c)) on a uniform grid of the domain (endpoints included).

    Args:
        problem, model: the equation and the solution.
        n: points per axis (one number or one per axis).
        gradient_norm: return |grad_x r| instead of r (for eq. 3.40).

    Returns:
        ``(axes, values)``: the 1D grids of every axis and the residue, shape
        (n,) in 1D or (n_x, n_y, ...) with axis 0 along x_1.
    """
    ns = [int(n)] * problem.dim if np.isscalar(n) else [int(v) for v in n]
    if len(ns) != problem.dim:
        raise ValueError(f"n needs 1 or {problem.dim} values, got {len(ns)}")
    axes = [np.linspace(lo, hi, k) for (lo, hi), k in zip(problem.domain, ns)]
    mesh = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([m.ravel() for m in mesh], 1)
    xt = torch.as_tensor(pts, dtype=model.dtype, device=model.device)
    r = _residual_chunks(problem, model, xt, grad_norm=gradient_norm).cpu().numpy()
    return axes, r.reshape(ns) if problem.dim > 1 else r


def magnitude_estimate(eps_r: float, f_d: Sequence[float] | float, orders: ArrayLike, eps_beta: float = 1.0) -> float:
    """The magnitude of the next stage from its residue, eq. (3.9), (3.17) and (3.19).

        eps = eps_r / (eps_beta prod_i [2 pi f_d^(r, x_i)]^(m_i)).

    Args:
        eps_r: RMS of the residue.
        f_d: its dominant frequency per input axis (cycles per unit).
        orders: the multi-index (m_1, ..., m_d) of the dominant derivative term
            (eq. 3.19), e.g. (1,) for eq. (3.3) and (2, 0) for u_xx. A list of
            multi-indices adds their terms, e.g. [(2, 0), (0, 2)] for the
            Laplacian: eps_beta sum_terms prod_i (2 pi f_i)^(m_i) (our extension:
            it counts every term of the same order, not only one).
        eps_beta: RMS of the coefficient beta_m = dN/du^(m) at u_0 (eq. 3.17); 1 for
            the paper's linear examples.
    """
    f = np.atleast_1d(np.asarray(f_d, dtype=np.float64))
    terms = [orders] if np.ndim(orders) <= 1 else list(orders)
    total = 0.0
    for m in terms:
        m = np.atleast_1d(np.asarray(m))
        if m.size != f.size:
            raise ValueError(f"orders {m.tolist()} do not match {f.size} frequencies")
        total += float(np.prod((2 * math.pi * f) ** m))
    if not (eps_r >= 0 and total > 0 and eps_beta > 0):
        raise ValueError("need eps_r >= 0, positive frequencies for the derivative axes and eps_beta > 0")
    return float(eps_r / (eps_beta * total))


@dataclass
class StageEstimate:
    """Settings of the next stage read from the residue (eq. 3.9, 3.16-3.19).

    Attributes:
        eps_r: RMS of the residue r_k.
        f_d: dominant frequency of r_k per input axis (eq. 3.16, 3.18).
        eps: the magnitude prefactor eps_k (eq. 3.19).
        kappa_hat: suggested modified scale factor per axis, ``factor * pi * f_d``
            (at least the regular value where an axis has f_d = 0).
        f_norm: |k| of the 2D peak (None in 1D).
    """

    eps_r: float
    f_d: list
    eps: float
    kappa_hat: list
    f_norm: float | None = None


def estimate_next_stage(problem: PINNProblem, model: StagedSolution, orders: ArrayLike, *, n_grid: int = 512,
                        eps_beta: float = 1.0, factor: float = 2.0, widths: Sequence[int] = (20, 20, 20),
                        pad: int = 1) -> StageEstimate:
    """Magnitude and frequency of the next stage from the current residue (Algorithm 4, step 4).

    Samples r on a uniform grid, reads its dominant frequency per axis
    (eq. 3.16, 3.18), and applies eq. (3.19) through :func:`magnitude_estimate`.
    The scale factor is ``kappa_hat = factor * pi * f_d`` per axis (``factor = 2``
    by default, inside pi f_d < kappa_hat of eq. 2.9).

    Args:
        orders: the dominant derivative's multi-index (see :func:`magnitude_estimate`).
        n_grid: grid points per axis.
        widths: the next network's widths (fix the regular scale of an axis whose f_d = 0).
    """
    axes, r = residual_grid(problem, model, n_grid)
    eps_r = float(np.sqrt(np.mean(r ** 2)))
    spacing = [a[1] - a[0] for a in axes]
    if problem.dim == 1:
        f = [dominant_frequency(r, spacing[0], pad=pad)]
        fn = None
    elif problem.dim == 2:
        s = dominant_frequency_2d(r, tuple(spacing), pad=pad)
        f, fn = list(s.per_axis), s.norm
    else:
        raise ValueError(f"frequency estimation supports 1 or 2 input dimensions, got {problem.dim}")
    eps = magnitude_estimate(eps_r, f, orders, eps_beta)
    regular = xavier_std(problem.dim, widths[0])
    kh = [factor * math.pi * v if v > 0 else regular for v in f]
    return StageEstimate(eps_r=eps_r, f_d=f, eps=eps, kappa_hat=kh, f_norm=fn)


def gpinn_weight(problem: PINNProblem, model: StagedSolution, n_grid: int = 256) -> float:
    """gamma_g = ||r||^2 / ||grad r||^2 on a uniform grid, eq. (3.39)-(3.40) (~ (2 pi f_d)^-2)."""
    _, r = residual_grid(problem, model, n_grid)
    _, g = residual_grid(problem, model, n_grid, gradient_norm=True)
    return float(np.sum(r ** 2) / np.sum(g ** 2))


# ---------------------------------------------------------------- Algorithm 2
@dataclass
class Algorithm2Result:
    """Algorithm 2: alpha, eps = alpha RMS(s), and the ratios R met on the way.

    The paper's quoted 1.41e-3 for eq. (3.20) is ``alpha``; eq. (3.28) returns
    ``eps = alpha * eps_s`` = 7.0e-4 there. Both are kept.
    """

    alpha: float
    eps: float
    eps_s: float
    ratios: list
    alphas: list
    converged: bool


def algorithm2(problem: PINNProblem, x: ArrayLike | None = None, *, n_grid: int = 128, eta: float = 1.0,
               alpha0: float = 1.0, band: tuple[float, float] = (0.1, 10.0), max_iter: int = 100,
                                                                 dtype: torch.dtype = torch.float64,
               device: str | torch.device = "cpu") -> Algorithm2Result:
    """Algorithm 2: the magnitude of the solution of a linear equation with a high-frequency source.

    Writes the equation as N[x, u] = s(x) (eq. 3.22), guesses u_s = alpha s (eq. 3.23),
    computes N_s = r(x, u_s) + s (eq. 3.25) and R = ||N_s|| / ||s|| (eq. 3.26), and
    updates alpha <- alpha / R^eta (eq. 3.27) until band[0] < R < band[1]. Returns
    alpha and eps = alpha RMS(s) (eq. 3.28).

    Args:
        problem: the equation; its source s is ``problem.source`` or -r(x, 0).
        x: evaluation points (N, d); default a uniform ``n_grid``-per-axis grid of
            the domain.
        eta: the update's learning rate.
        alpha0: the first guess of alpha.
    """
    if not eta > 0:
        raise ValueError(f"eta must be positive, got {eta}")
    if x is None:
        axes = [np.linspace(lo, hi, n_grid) for lo, hi in problem.domain]
        pts = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], 1)
    else:
        pts = _as_points(x, problem.dim, "x")
    xt = torch.as_tensor(pts, dtype=dtype, device=device).requires_grad_(True)
    s = problem.source_values(xt)
    s_norm = float(torch.linalg.vector_norm(s.detach()))
    if not s_norm > 0:
        raise ValueError("the source s(x) is zero at every point: Algorithm 2 needs a source")
    eps_s = s_norm / math.sqrt(s.numel())
    alpha, ratios, alphas, ok = float(alpha0), [], [], False
    for _ in range(max_iter):
        ns = problem.residual(xt, alpha * s) + s
        R = float(torch.linalg.vector_norm(ns.detach())) / s_norm
        ratios.append(R)
        alphas.append(alpha)
        if band[0] < R < band[1]:
            ok = True
            break
        if not R > 0:
            raise ValueError("N[alpha s] vanishes: the operator annihilates the source")
        alpha = alpha / R ** eta
    return Algorithm2Result(alpha=alpha, eps=alpha * eps_s, eps_s=eps_s, ratios=ratios, alphas=alphas, converged=ok)


# ---------------------------------------------------------------- Algorithm 3
def gamma_bound(loss_d: float, loss_e: float) -> float:
    """The equation weight bound of eq. (3.32): gamma <= L_d / (L_e + L_d)."""
    if loss_d < 0 or loss_e < 0 or loss_d + loss_e <= 0:
        raise ValueError(f"losses must be non-negative and not both 0, got {loss_d}, {loss_e}")
    return float(loss_d / (loss_e + loss_d))


def convergence_ratio(run: PINNRun, n0: int | None = None) -> dict:
    """C_d, C_e and R_c = C_d / C_e of the first ``n0`` steps of a run (eq. 3.33-3.36).

    C = L^(0) / L^(m), with L^(m) the least loss over the last 0.1 n0 of the n0 steps.
    """
    n0 = len(run.loss_d) if n0 is None else min(int(n0), len(run.loss_d))
    if n0 < 2:
        raise ValueError("need at least two recorded steps")
    n1 = max(1, int(round(0.1 * n0)))
    ld, le = run.loss_d[:n0], run.loss_e[:n0]
    cd = ld[0] / max(ld[n0 - n1:].min(), 1e-300)
    ce = le[0] / max(le[n0 - n1:].min(), 1e-300)
    return {"C_d": float(cd), "C_e": float(ce), "R_c": float(cd / ce)}


@dataclass
class Algorithm3Result:
    """Algorithm 3: the accepted gamma and every round (gamma, C_d, C_e, R_c)."""

    gamma: float
    rounds: list
    converged: bool


def algorithm3(problem: PINNProblem, make_model: Callable[[], StagedSolution], *, gamma0: float = 0.5,
               n0: int = 500, eta: float = 0.5, band: tuple[float, float] = (0.1, 10.0), max_rounds: int = 12,
               **train_kwargs) -> Algorithm3Result:
    """Algorithm 3: the equation weight from the convergence rates of a short pre-training.

    For a trial gamma, pre-train a fresh model for ``n0`` Adam steps, compute
    C_d = L_d^(0) / L_d^(m), C_e likewise (eq. 3.33-3.35) and R_c = C_d / C_e; if R_c
    is outside ``band`` (eq. 3.36) set gamma <- gamma R_c^eta (eq. 3.37) and retrain
    from scratch.

    Args:
        problem: the equation.
        make_model: returns a fresh model (same seed every call, so rounds compare).
        gamma0: first trial (kept inside (0, 1)).
        n0: pre-training steps (the paper: 500).
        eta: the update's learning rate.
        train_kwargs: passed to :func:`train_pinn` (adam_steps is set to n0).
    """
    if not 0 < gamma0 < 1:
        raise ValueError(f"gamma0 must lie in (0, 1), got {gamma0}")
    train_kwargs = {**train_kwargs, "adam_steps": int(n0), "lbfgs_steps": 0}
    gamma, rounds = float(gamma0), []
    for _ in range(max_rounds):
        run = train_pinn(problem, make_model(), gamma=gamma, **train_kwargs)
        c = convergence_ratio(run, n0)
        rounds.append({"gamma": gamma, **c})
        if band[0] < c["R_c"] < band[1]:
            return Algorithm3Result(gamma=gamma, rounds=rounds, converged=True)
        gamma = float(min(max(gamma * c["R_c"] ** eta, 1e-14), 1 - 1e-9))
    best = min(rounds, key=lambda r: abs(math.log(max(r["R_c"], 1e-300))))
    return Algorithm3Result(gamma=best["gamma"], rounds=rounds, converged=False)
