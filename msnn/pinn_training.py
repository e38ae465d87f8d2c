"""Training a PINN stage and reading the next one's settings (Wang & Lai 2024, Sec. 3).

:func:`train_pinn` trains the newest stage of a :class:`~msnn.pinn.StagedSolution` on
the loss of eq. (3.1)-(3.2) and (3.38),

    L = (1 - gamma) L_d + gamma (L_e + gamma_g L_g),

with collocation points drawn uniformly or by Latin hypercube sampling and, if
asked, re-drawn every ``resample_every`` Adam steps on the model's device
("Adam with SGD", Sec. 3.3.1), and with residual-based adaptive refinement
(:class:`~msnn.pinn.RAR`, Sec. 3.3.2). The settings of the next stage come from the
residue (:func:`estimate_next_stage`, eq. 3.9 and 3.16-3.19, or :func:`algorithm2`,
Sec. 3.2.2); the equation weight from eq. (3.32) (:func:`gamma_bound`) or Algorithm 3
(:func:`algorithm3`, Sec. 3.2.3); the gPINN weight from eq. (3.39)-(3.40)
(:func:`gpinn_weight`). Algorithm 4 (:class:`msnn.MultistagePINN`) is a loop over
these pieces; the problem, its derivatives and the staged solution are in
:mod:`msnn.pinn`, and chapters 5-7 of the book show them at work.

Everything runs in the dtype of the model (float64 by default); the library never
changes global torch defaults.

Example (eq. 3.3, one stage, then the settings of a second)::

    from msnn.pinn import PINNProblem, StagedSolution, grad
    from msnn.pinn_training import estimate_next_stage, train_pinn

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

from .networks import points_per_chunk, xavier_std
from ._common import as_points
from .pinn import RAR, PINNProblem, StagedSolution, gradient, sample_collocation
from .spectrum import dominant_frequency, dominant_frequency_2d
from .training import TrainHistory, train

__all__ = [
    "PINNRun", "train_pinn", "residual_grid", "magnitude_estimate", "StageEstimate", "estimate_next_stage",
    "gpinn_weight", "Algorithm2Result", "algorithm2", "gamma_bound", "convergence_ratio", "Algorithm3Result",
    "algorithm3",
]


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
        model: a :class:`~msnn.pinn.StagedSolution`; only its newest stage trains.
        gamma: equation weight, 0 < gamma < 1 (eq. 3.32 or Algorithm 3).
        gamma_g: gPINN weight (eq. 3.39-3.40); 0 for a plain PINN.
        n_collocation: collocation points N_c.
        sampler: "lhs" or "uniform".
        resample_every: re-draw the points every this many Adam steps (0: never).
        adam_steps, lbfgs_steps, lr, lr_schedule: the optimizer budget (see
            :func:`msnn.train`).
        normalize: divide the loss by its initial value.
        margin: widen the sampling box by this fraction (see :func:`~msnn.pinn.sample_collocation`).
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
    extra = None if extra_points is None else torch.as_tensor(as_points(extra_points, problem.dim, "extra_points"),
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


def _residual_chunks(problem: PINNProblem, model: nn.Module | Callable, x: torch.Tensor, chunk: int | None = None,
                     grad_norm: bool = False) -> torch.Tensor:
    if chunk is None:
        # 8192 points at a time, fewer for wide stages (a 1000-unit "features" stage keeps
        # ~20 activations of points x units alive through a second derivative)
        chunk = points_per_chunk(getattr(model, "stages", None) or [], 2 ** 20, 256, 8192)
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
        pts = as_points(x, problem.dim, "x")
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
