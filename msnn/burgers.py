"""The self-similar Burgers blow-up profile: a combined forward-inverse PINN problem.

Section 4 and Appendix D of Wang & Lai (2024). In self-similar variables the
inviscid Burgers equation becomes the profile equation (eq. 4.1, D.5)

    r(y, U) = -lambda U + [(1 + lambda) y + U] U'(y) = 0,   U odd,  U(-2) = 1,

whose solutions form the one-parameter family (D.6) with C = 1,

    y = -U - sgn(U) |U|^(1 + 1/lambda).

Only lambda = 1/(2 + 2i) gives a profile smooth at the origin; the PINN has to find
both the profile and lambda = 1/2, which a smoothness constraint on the third
derivative of the residue selects (eq. 4.2-4.5).

What is here:

* :func:`~msnn.problems.exact_profile` and :func:`~msnn.problems.exact_derivatives` (in
  :mod:`msnn.problems`): the family (D.6) to machine
  precision (a monotone Newton iteration on ``a + a^p = |y|``, which cannot miss its
  root) and its derivatives up to order four by inverse-function differentiation;
* :func:`~msnn.jets.network_jet` and :func:`~msnn.jets.odd_jet` (in :mod:`msnn.jets`):
  a stage network and the odd ansatz
  ``U = y [NN(y) + NN(-y)]`` with their first four derivatives in ``y``, computed in
  one forward pass (Taylor-mode, Faa di Bruno per layer) instead of four nested
  autograd passes; they stay differentiable in the weights;
* :func:`~msnn.jets.residual_jet`: r, r', r'', r''' from the jet of U (eq. 4.5);
* :class:`BurgersSolution`: a sum of odd stages ``sum_k eps_k U_k`` and a trainable
  lambda written as ``lambda = lambda_base + lambda_scale * delta`` (``delta`` is the
  trainable O(1) number, so a stage can learn a correction of 1e-12 in float64);
* :func:`train_burgers`: one stage on the loss of eq. (4.2)-(4.4),

    L = (1 - gamma) L_d + gamma (L_e + gamma_g L_g) + gamma_s L_s  [+ gamma_o L_o],

  with the earlier stages frozen (their jets computed once per stage); ``L_o``, a
  gPINN term at the smoothness points, is our addition (see :func:`train_burgers`);
* :func:`evaluate`: error against the exact lambda = 1/2 profile, residue, losses and
  the split of the error into a low-frequency part (least-squares odd polynomial) and
  the high-frequency rest, used by chapter ``ch-burgers``;
* :func:`next_stage_settings` and :func:`add_next_stage`: Algorithm 4's next stage
  (eq. 3.9, 3.16, 3.32) and the low-frequency network of eq. (4.8);
* the driver that runs those rounds as one estimator is
  :class:`msnn.multistage_burgers.MultistageBurgers`.

Everything runs in the model's dtype, float64 by default.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch
from torch import nn

from ._common import resolve_device
from .jets import odd_jet, residual_jet
from .networks import StageNetwork
from .phases import LossTrainee, Phase, check_phases, parse_schedule, train_stage
from .pinn import sample_collocation
from .pinn_training import gamma_bound, magnitude_estimate
from .problems import check_lambda, exact_profile
from .spectrum import dominant_frequency
from .training import TrainHistory, merge_histories, train

__all__ = ["BurgersSolution", "BurgersRun", "train_burgers", "BurgersEval", "evaluate", "split_error",
           "next_stage_settings", "add_next_stage", "LAMBDA_SMOOTH"]

LAMBDA_SMOOTH = 0.5

#: What a Burgers round offers the phase registry (:mod:`msnn.phases.registry`): a loss, and
#: residual rows with their Jacobian; and why it offers no exact output layer.
OFFERS = frozenset({"loss", "jacobian"})
WHY_NOT = {"linear-output": "the Burgers residual (U U' and lambda) is not linear in U, so no output layer can "
                            "be solved exactly: use ('lm', n) for a Gauss-Newton phase"}


# ---------------------------------------------------------------- the staged solution
class BurgersSolution(nn.Module):
    """``U = sum_k eps_k U_k`` with odd stages ``U_k = y [N_k(y) + N_k(-y)]``, and a trainable lambda.

    lambda is ``lambda_base + lambda_scale * delta`` with ``delta`` the trainable scalar;
    :meth:`add_stage` freezes the earlier networks and, unless told otherwise, moves the
    current lambda into ``lambda_base`` and restarts ``delta`` at 0 with a new scale (the
    estimate of lambda's error, e.g. sqrt(L_s), so that ``delta`` is O(1)).

    Args:
        lambda_init: the first stage's starting lambda (positive).
        dtype, device: of every network and of lambda (device "auto": a GPU when torch
            sees one, else the CPU).
    """

    def __init__(self, lambda_init: float = 0.4, *, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "auto"):
        super().__init__()
        self.dtype_, self.device_ = dtype, resolve_device(device)
        self.lambda_base = check_lambda(lambda_init)
        self.lambda_scale = 1.0
        self.delta = nn.Parameter(torch.zeros((), dtype=dtype, device=self.device_))
        self.nets = nn.ModuleList()
        self.eps: list[float] = []
        self.groups: list[int] = []  # the stage (training round) each network belongs to
        self.lambdas: list[float] = []  # lambda at the end of each round

    @property
    def lam(self) -> torch.Tensor:
        """lambda as a differentiable tensor."""
        return self.lambda_base + self.lambda_scale * self.delta

    @property
    def lambda_value(self) -> float:
        """lambda as a float64 number (base + scale * delta summed in float64)."""
        return float(self.lambda_base + self.lambda_scale * float(self.delta.detach().double()))

    @property
    def n_rounds(self) -> int:
        return (max(self.groups) + 1) if self.groups else 0

    def add_stage(self, networks: Sequence[dict], *, lambda_scale: float | None = None) -> None:
        """Start a new training round with one or more new networks.

        Args:
            networks: one dict per new network with keys ``eps`` (prefactor), and
                optionally ``widths`` (default (20, 20, 20)), ``kappa_hat`` (then the
                first layer is sin; None gives a regular tanh network), ``seed``.
            lambda_scale: the scale of lambda's correction in this round (positive);
                None keeps the current scale (first round: 1).
        """
        if not networks:
            raise ValueError("a stage needs at least one network")
        if self.nets:
            self.lambda_base = self.lambda_value
            with torch.no_grad():
                self.delta.zero_()
            for net in self.nets:
                net.requires_grad_(False)
        if lambda_scale is not None:
            if not (math.isfinite(lambda_scale) and lambda_scale > 0):
                raise ValueError(f"lambda_scale must be finite and positive, got {lambda_scale}")
            self.lambda_scale = float(lambda_scale)
        g = self.n_rounds
        for spec in networks:
            unknown = set(spec) - {"eps", "widths", "kappa_hat", "seed"}
            if unknown:
                raise ValueError(f"unknown network settings {sorted(unknown)}")
            eps = float(spec.get("eps", 1.0))
            if not (math.isfinite(eps) and eps > 0):
                raise ValueError(f"eps must be finite and positive, got {eps}")
            kh = spec.get("kappa_hat")
            net = StageNetwork(1, spec.get("widths", (20, 20, 20)), kappa_hat=kh,
                               first_activation="tanh" if kh is None else "sin",
                               seed=int(spec.get("seed", len(self.nets))), dtype=self.dtype_, device=self.device_)
            self.nets.append(net)
            self.eps.append(eps)
            self.groups.append(g)

    def forward(self, y: torch.Tensor, order: int = 0, rounds: Sequence[int] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The jet of U over ``rounds`` stacked, shape (order + 1, n), and lambda.

        A plain function of the module's parameters, so that ``torch.func`` can
        differentiate it (the Levenberg-Marquardt phase's Jacobian)."""
        return torch.stack(self.jet(y, order, rounds)), self.lam

    def trainable(self) -> list[torch.Tensor]:
        """The newest round's weights and delta."""
        g = self.n_rounds - 1
        ps = [p for net, gi in zip(self.nets, self.groups) if gi == g for p in net.parameters()]
        return ps + [self.delta]

    def jet(self, y: torch.Tensor, order: int = 4, rounds: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Jet of ``sum eps_k U_k`` over the given rounds (all by default)."""
        y = y.reshape(-1).to(dtype=self.dtype_, device=self.device_)
        total = None
        for net, eps, g in zip(self.nets, self.eps, self.groups):
            if rounds is not None and g not in rounds:
                continue
            part = [eps * d for d in odd_jet(net, y, order)]
            total = part if total is None else [a + b for a, b in zip(total, part)]
        if total is None:
            total = [torch.zeros_like(y) for _ in range(order + 1)]
        return total

    def predict(self, y: ArrayLike, rounds: Sequence[int] | None = None, order: int = 0) -> np.ndarray:
        """U (``order`` 0) or its derivatives on numpy points, float64 numpy out."""
        yt = torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=self.dtype_, device=self.device_)
        with torch.no_grad():
            d = self.jet(yt, order, rounds)
        return d[order].double().cpu().numpy()

    def parts(self, y: ArrayLike) -> np.ndarray:
        """``eps_k U_k(y)`` of every network, shape (n_networks, n)."""
        yt = torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=self.dtype_, device=self.device_)
        with torch.no_grad():
            return np.stack([(e * odd_jet(n, yt, 0)[0]).double().cpu().numpy() for n, e in zip(self.nets, self.eps)])


# ---------------------------------------------------------------- training one round
@dataclass
class BurgersRun:
    """What one training round did.

    Attributes:
        history: the optimizer's record (normalized loss, iteration counts).
        loss_d, loss_e, loss_g, loss_s, loss_o: the absolute loss terms at every loss
            evaluation (Adam steps, then L-BFGS function evaluations).
        lam: lambda at every loss evaluation.
        settings: the weights, point counts and budget of the round.
        final: the loss terms and lambda of the returned parameters.
    """

    history: TrainHistory
    loss_d: np.ndarray
    loss_e: np.ndarray
    loss_g: np.ndarray
    loss_s: np.ndarray
    loss_o: np.ndarray
    lam: np.ndarray
    settings: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)

    @property
    def iterations(self) -> int:
        """Adam steps, L-BFGS and Levenberg-Marquardt iterations."""
        return self.history.iterations + int(self.history.extra.get("lm_iterations", 0))


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return sample_collocation([(lo, hi)], n, method="uniform", generator=g)[:, 0]


def _round_points(model: "BurgersSolution", n_collocation: int, n_smooth: int, smooth_width: float, seed: int):
    """A round's collocation points (``n_collocation`` uniform in [-2, 2], then -2 and 2) and
    smoothness points (uniform in |y| < smooth_width), with the frozen rounds' jets there.

    The data point y = -2 is collocation point nc - 2; the equation needs U up to order 2
    there, the smoothness term U up to order 4 at the few points near the origin."""
    g = torch.Generator().manual_seed(int(seed))
    yc = torch.cat([_uniform(int(n_collocation), -2.0, 2.0, g), torch.tensor([-2.0, 2.0], dtype=torch.float64)])
    ys = _uniform(int(n_smooth), -smooth_width, smooth_width, g)
    yc, ys = (t.to(device=model.device_, dtype=model.dtype_) for t in (yc, ys))
    frozen = list(range(model.n_rounds - 1))
    with torch.no_grad():
        fc = model.jet(yc, 2, frozen)
        fs = model.jet(ys, 4, frozen)
    return yc, ys, fc, fs


def _rows_for(model: "BurgersSolution", yc, ys, fc, fs, *, gamma: float, gamma_g: float, gamma_s: float,
              gamma_o: float, smooth_in_equation: bool, scale: float):
    """The residual rows of eq. (4.2) + L_o whose sum of squares is the round's loss / ``scale``.

    Returns ``rows(grad=False)`` (the vector at the current parameters; with ``grad`` it
    keeps the graph to the trainable parameters) and ``rows_and_jacobian()`` (the
    vector and its Jacobian with respect to ``model.trainable()``, in that order). The
    Jacobian is one ``torch.func.jacrev`` per point, vectorized over the points: each row
    depends on one point only, which makes this ~100x faster than a backward pass per row.
    """
    last = model.n_rounds - 1
    nc = yc.shape[0]
    n_e = nc + ys.shape[0] if smooth_in_equation else nc
    w_e, w_g = math.sqrt(gamma / n_e), math.sqrt(gamma * gamma_g / n_e)
    w_s, w_o = math.sqrt(gamma_s / ys.shape[0]), math.sqrt(gamma_o / ys.shape[0])
    w_se, w_sg = (w_e, w_g) if smooth_in_equation else (0.0, 0.0)
    fc_t, fs_t = torch.stack(fc, 1), torch.stack(fs, 1)
    names = {id(p): n for n, p in model.named_parameters()}
    train_names = [names[id(p)] for p in model.trainable()]
    norm = 1.0 / math.sqrt(scale)

    def at_point(params, yi, frozen, order):
        jet, lam = torch.func.functional_call(model, params, (yi.reshape(1), order + 1, [last]))
        U = [frozen[j] + jet[j] for j in range(order + 2)]
        return residual_jet(U, yi.reshape(1), lam, order), U[0]

    def c_rows(params, yi, frozen):
        r, _ = at_point(params, yi, frozen, 1)
        return torch.cat([w_e * r[0], w_g * r[1]]) * norm

    def s_rows(params, yi, frozen):
        r, _ = at_point(params, yi, frozen, 3)
        return torch.cat([w_se * r[0], w_sg * r[1], w_s * r[3], w_o * r[1]]) * norm

    def d_row(params, yi, frozen):
        _, U0 = at_point(params, yi, frozen, 1)
        return math.sqrt(1 - gamma) * (U0 - 1.0) * norm

    groups = ((d_row, yc[nc - 2:nc - 1], fc_t[nc - 2:nc - 1]), (c_rows, yc, fc_t), (s_rows, ys, fs_t))

    def params(grad: bool):
        return {n: (p if grad else p.detach()) for n, p in model.named_parameters() if n in train_names}

    def rows(grad: bool = False) -> torch.Tensor:
        ps = params(grad)
        with torch.set_grad_enabled(grad):
            return torch.cat([torch.func.vmap(f, (None, 0, 0))(ps, y, fr).reshape(-1) for f, y, fr in groups])

    def rows_and_jacobian():
        ps = params(False)
        J = [torch.func.vmap(torch.func.jacrev(f), (None, 0, 0))(ps, y, fr) for f, y, fr in groups]
        # J[g][name]: (points, [rows per point,] *shape of the parameter), rows point-major as in rows()
        cols = [torch.cat([j[name].reshape(-1, max(ps[name].numel(), 1)) for j in J]) for name in train_names]
        return rows(), torch.cat(cols, 1)

    return rows, rows_and_jacobian


def _round_rows(model: "BurgersSolution", *, gamma: float, gamma_g: float = 0.0, gamma_s: float = 1e-3,
                gamma_o: float = 0.0, n_collocation: int = 400, n_smooth: int = 40, smooth_width: float = 0.1,
                seed: int = 0, smooth_in_equation: bool = True, scale: float = 1.0):
    """:func:`_rows_for` on the points :func:`train_burgers` would draw with these settings."""
    yc, ys, fc, fs = _round_points(model, n_collocation, n_smooth, smooth_width, seed)
    return _rows_for(model, yc, ys, fc, fs, gamma=gamma, gamma_g=gamma_g, gamma_s=gamma_s, gamma_o=gamma_o,
                     smooth_in_equation=smooth_in_equation, scale=scale)


def _train_phases(model: "BurgersSolution", phases, loss_fn, rows, rows_and_jacobian, record, *, lr: float,
                  progress, desc: str) -> TrainHistory:
    """Run a round's phases through the phase runner; one TrainHistory for all of them.

    The round offers a loss and its residual rows with their Jacobian (Gauss-Newton); its
    residual is not linear in U, so it offers no exact output layer."""
    t0 = time.perf_counter()

    def first_order(ph, progress, d):
        return train(model.trainable(), loss_fn, adam_steps=ph.steps if ph.kind == "adam" else 0,
                     lbfgs_steps=ph.steps if ph.kind == "lbfgs" else 0, lr=ph.opt("lr", lr), progress=progress,
                     desc=desc, fast=False)

    trainee = LossTrainee(model.trainable(), loss_fn, first_order=first_order, rows=rows,
                          rows_and_jacobian=rows_and_jacobian, score=record, who="Burgers rounds", lr=lr,
                          why_not=WHY_NOT)
    reports = train_stage(trainee, phases, progress=progress, desc=desc)
    first = iter(trainee.histories)
    parts, lm = [], []
    for r in reports:
        if r.kind in ("adam", "lbfgs"):
            parts.append(next(first))
        else:
            parts.append(TrainHistory(loss=np.asarray(r.history[1:], dtype=float)))
            lm.append(r)
    last = reports[-1]
    final_loss = float(trainee.histories[-1].final_loss) if last.kind in ("adam", "lbfgs") else float(last.loss_after)
    return merge_histories(parts, seconds=time.perf_counter() - t0, stopped=last.stopped, final_loss=final_loss,
                           extra={"lm_iterations": sum(r.steps for r in lm), "phases": [str(p) for p in phases],
                                  "lm": [r.summary() for r in lm]})


def train_burgers(model: BurgersSolution, *, gamma: float, gamma_g: float = 0.0, gamma_s: float = 1e-3,
                  gamma_o: float = 0.0, n_collocation: int = 400, n_smooth: int = 40, smooth_width: float = 0.1,
                  adam_steps: int = 2000, lbfgs_steps: int = 2000, lr: float = 1e-3, seed: int = 0,
                  normalize: bool = True, smooth_in_equation: bool = True, progress: bool | None = None,
                  desc: str = "stage", schedule: Sequence | None = None) -> BurgersRun:
    """Train the newest round of ``model`` on eq. (4.2)-(4.5) on [-2, 2].

    The loss is eq. (4.2) plus an optional term of ours,

        L = (1 - gamma) L_d + gamma (L_e + gamma_g L_g) + gamma_s L_s + gamma_o L_o,

    where ``L_o`` is the mean of ``(dr/dy)^2`` over the smoothness points (a gPINN
    term near the origin). Why it helps: for a smooth odd ``U = a_1 y + a_3 y^3 + ...``
    the residue has ``dr/dy(0) = a_1 (1 + a_1)`` and
    ``d^3r/dy^3(0) = 6 a_3 (2 lambda - 1 + 4 (1 + a_1))``, so an error in lambda can be
    hidden from ``L_s`` by a slope ``a_1`` slightly off -1, which only ``dr/dy`` near the
    origin reveals. ``gamma_o = 0`` is the paper's loss.

    The collocation points (``n_collocation`` uniform in [-2, 2] plus both ends) and the
    smoothness points (``n_smooth`` uniform in ``|y| < smooth_width``) are drawn once
    from ``seed``; the frozen rounds' jets there are computed once. With
    ``normalize`` the optimizer sees the loss divided by its value at the start of
    the round (higher rounds start near 1e-20 in absolute terms, where Adam's epsilon
    would otherwise dominate); the recorded losses are absolute.

    Args:
        model: the solution whose newest round is trained.
        gamma, gamma_g, gamma_s: the weights of eq. (4.2): gamma in (0, 1),
            gamma_g >= 0 (gPINN), gamma_s >= 0 (smoothness).
        gamma_o: weight of ``L_o`` (>= 0; 0 gives the paper's loss).
        smooth_in_equation: count the smoothness points in ``L_e`` and ``L_g`` too.
        normalize: divide the optimized loss by its starting value.
        seed: seeds the collocation and smoothness points.
        progress, desc: progress bar and its label.
        n_collocation, n_smooth: N_c and N_s.
        smooth_width: the smoothness points lie in |y| < smooth_width.
        adam_steps, lbfgs_steps, lr: the optimizer budget (Adam then L-BFGS).
        schedule: instead of ``adam_steps`` / ``lbfgs_steps``, the round's phases
            (:func:`msnn.phases.schedule.parse_schedule`), e.g. ``[("adam", 2000), ("lm", 200)]``:
            "adam", "lbfgs" and "lm" (Levenberg-Marquardt on all the round's weights and
            lambda together, on the residual rows whose sum of squares is the loss
            above). The residual is nonlinear in U and lambda, so the output-layer
            phases ("output-lstsq", "lsgd", "vp-lm") do not apply.

    Returns:
        A :class:`BurgersRun` with the loss terms and lambda per Adam step / L-BFGS evaluation.
    """
    if not model.nets:
        raise ValueError("the model has no stage: call add_stage first")
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
    for name, v in (("gamma_g", gamma_g), ("gamma_s", gamma_s), ("gamma_o", gamma_o)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {v}")
    if int(n_collocation) < 2 or int(n_smooth) < 1:
        raise ValueError("need n_collocation >= 2 and n_smooth >= 1")
    if not 0 < smooth_width <= 2:
        raise ValueError(f"smooth_width must lie in (0, 2], got {smooth_width}")
    phases = None if schedule is None else parse_schedule(schedule)
    if phases is not None:
        check_phases(phases, OFFERS, "Burgers rounds", WHY_NOT)
    yc, ys, fc, fs = _round_points(model, n_collocation, n_smooth, smooth_width, seed)
    last = model.n_rounds - 1
    nc = yc.shape[0]

    def terms():
        lam = model.lam
        Uc = [a + b for a, b in zip(fc, model.jet(yc, 2, [last]))]
        Us = [a + b for a, b in zip(fs, model.jet(ys, 4, [last]))]
        rc = residual_jet(Uc, yc, lam, 1)
        rs = residual_jet(Us, ys, lam, 3)
        ld = (Uc[0][nc - 2] - 1.0) ** 2
        if smooth_in_equation:  # the smoothness points are collocation points too
            le = (torch.cat([rc[0], rs[0]]) ** 2).mean()
            lg = (torch.cat([rc[1], rs[1]]) ** 2).mean()
        else:
            le = (rc[0] ** 2).mean()
            lg = (rc[1] ** 2).mean()
        ls = (rs[3] ** 2).mean()
        lo = (rs[1] ** 2).mean()
        return ld, le, lg, ls, lo

    def total(ld, le, lg, ls, lo):
        return (1 - gamma) * ld + gamma * (le + gamma_g * lg) + gamma_s * ls + gamma_o * lo

    with torch.no_grad():
        scale = float(total(*terms())) if normalize else 1.0
    if not (math.isfinite(scale) and scale > 0):
        raise FloatingPointError(f"the starting loss is {scale}: check the stage settings")
    rec: list[tuple] = []

    def loss_fn():
        t = terms()
        rec.append(tuple(float(v.detach()) for v in t) + (model.lambda_value,))
        return total(*t) / scale

    rows, rows_and_jacobian = _rows_for(model, yc, ys, fc, fs, gamma=gamma, gamma_g=gamma_g, gamma_s=gamma_s,
                                        gamma_o=gamma_o, smooth_in_equation=smooth_in_equation, scale=scale)

    def record() -> float:
        with torch.no_grad():
            t = terms()
        rec.append(tuple(float(v) for v in t) + (model.lambda_value,))
        return float(total(*t)) / scale

    if phases is None:  # the paper's schedule: one Adam + L-BFGS run
        phases = [Phase("adam", adam_steps), Phase("lbfgs", lbfgs_steps)]
        hist = train(model.trainable(), loss_fn, adam_steps=adam_steps, lbfgs_steps=lbfgs_steps, lr=lr,
                     progress=progress, desc=desc, fast=False)
    else:
        hist = _train_phases(model, phases, loss_fn, rows, rows_and_jacobian, record, lr=lr, progress=progress,
                             desc=desc)
    with torch.no_grad():
        t = terms()
    a = np.array(rec) if rec else np.zeros((0, 6))
    model.lambdas.append(model.lambda_value)
    settings = dict(gamma=gamma, gamma_g=gamma_g, gamma_s=gamma_s, gamma_o=gamma_o, n_collocation=int(n_collocation),
                    n_smooth=int(n_smooth), adam_steps=adam_steps, lbfgs_steps=lbfgs_steps,
                    phases=[str(p) for p in phases])
    final = dict(zip(("loss_d", "loss_e", "loss_g", "loss_s", "loss_o"), (float(v) for v in t)),
                 lam=model.lambda_value)
    run = BurgersRun(history=hist, loss_d=a[:, 0], loss_e=a[:, 1], loss_g=a[:, 2], loss_s=a[:, 3], loss_o=a[:, 4],
                     lam=a[:, 5], settings=settings, final=final)
    return run


# ---------------------------------------------------------------- evaluation
def split_error(y: np.ndarray, e: np.ndarray, degree: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Split an odd error into a low-frequency part and the rest.

    The low-frequency part is the least-squares fit of ``e`` by odd Chebyshev
    polynomials T_1, T_3, ..., T_degree in ``y/2`` (a smooth profile over [-2, 2]); the
    high-frequency part is what remains.
    """
    y = np.asarray(y, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    if y.shape != e.shape or y.ndim != 1:
        raise ValueError("y and e must be 1D arrays of the same length")
    if degree < 1 or degree % 2 == 0:
        raise ValueError(f"degree must be odd and >= 1, got {degree}")
    t = y / 2.0
    V = np.stack([np.polynomial.chebyshev.chebval(t, [0] * k + [1]) for k in range(1, degree + 1, 2)], axis=1)
    coef, *_ = np.linalg.lstsq(V, e, rcond=None)
    low = V @ coef
    return low, e - low


@dataclass
class BurgersEval:
    """The state of a solution on a uniform grid of [-2, 2]."""

    y: np.ndarray
    error: np.ndarray
    residue: np.ndarray
    lam: float
    lambda_error: float
    error_rms: float
    error_max: float
    residue_rms: float
    f_d: float
    low_rms: float
    high_rms: float
    high_estimate: float


def evaluate(model: BurgersSolution, n: int = 2001, rounds: Sequence[int] | None = None,
             lam: float | None = None) -> BurgersEval:
    """Error against the exact lambda = 1/2 profile, residue, and the error's two parts.

    ``high_estimate`` is eq. (3.9)'s prediction of the high-frequency error from the
    residue: ``rms(r) / (2 pi f_d)``.
    """
    if int(n) < 16:
        raise ValueError(f"n must be >= 16, got {n}")
    y = np.linspace(-2.0, 2.0, int(n))
    yt = torch.as_tensor(y, dtype=model.dtype_, device=model.device_)
    lam = model.lambda_value if lam is None else float(lam)
    with torch.no_grad():
        U = model.jet(yt, 1, rounds)
        r = residual_jet(U, yt, lam, 0)[0].double().cpu().numpy()
    e = U[0].double().cpu().numpy() - exact_profile(y, LAMBDA_SMOOTH)
    low, high = split_error(y, e)
    f_d = dominant_frequency(r, dx=y[1] - y[0])
    rr = float(np.sqrt(np.mean(r ** 2)))
    return BurgersEval(y=y, error=e, residue=r, lam=lam, lambda_error=abs(lam - LAMBDA_SMOOTH),
                       error_rms=float(np.sqrt(np.mean(e ** 2))), error_max=float(np.max(np.abs(e))),
                       residue_rms=rr, f_d=f_d, low_rms=float(np.sqrt(np.mean(low ** 2))),
                       high_rms=float(np.sqrt(np.mean(high ** 2))), high_estimate=magnitude_estimate(rr, f_d, (1,)))


def next_stage_settings(ev: BurgersEval, run: BurgersRun) -> dict:
    """The next round's settings from the last one's residue and smoothness loss (Algorithm 4, eq. 4.8).

    * ``eps``: the high-frequency network's prefactor, eq. (3.9) for a first-order
      equation, ``rms(r) / (2 pi f_d)``;
    * ``kappa_hat``: ``2 pi f_d`` for its sin first layer (eq. 3.16);
    * ``gamma``: eq. (3.32) with ``L_d ~ eps^2`` and ``L_e ~ rms(r)^2``;
    * ``eps_lambda``: the estimate of lambda's error, ``sqrt(L_s)`` (Fig. 14b inset),
      the prefactor of the low-frequency network ``U_lambda`` of eq. (4.8) and the
      scale of the next lambda correction.
    """
    eps = ev.high_estimate
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"the residue gives no usable magnitude (eps = {eps})")
    ls = run.final["loss_s"]
    return dict(eps=eps, kappa_hat=2 * math.pi * ev.f_d, gamma=gamma_bound(eps ** 2, ev.residue_rms ** 2),
                eps_lambda=math.sqrt(ls) if ls > 0 else eps)


def add_next_stage(model: BurgersSolution, ev: BurgersEval, run: BurgersRun, *,
                   widths: Sequence[int] = (20, 20, 20), seed: int = 0, lambda_network: bool = False,
                   lambda_scale: float | None = None) -> dict:
    """Add Algorithm 4's next stage to ``model`` from the last round's evaluation and run.

    The stage is one sin-first-layer network with the prefactor and ``kappa_hat`` of
    :func:`next_stage_settings` (seed ``seed``); with ``lambda_network=True`` also the
    plain low-frequency network ``eps_lambda U_lambda`` of eq. (4.8) (seed ``seed + 1``)
    for the smooth error that lambda's own error leaves. Lambda's correction in the new
    round is scaled by ``lambda_scale``, by default ``eps_lambda = sqrt(L_s)`` as the paper
    suggests (chapter 8 shows when a tighter scale, ``2 sqrt(L_o)``, is the better one).

    This is the stage sequence chapters 8 and 11 share: train a round with
    :func:`train_burgers`, :func:`evaluate` it, call this, and train the next round with
    the returned ``gamma``.

    Returns:
        the :func:`next_stage_settings` used (``eps``, ``kappa_hat``, ``gamma``, ``eps_lambda``).
    """
    if not model.nets:
        raise ValueError("the model has no stage yet: add the first with model.add_stage([dict(eps=1.0)])")
    st = next_stage_settings(ev, run)
    nets = [dict(eps=st["eps"], kappa_hat=st["kappa_hat"], widths=tuple(widths), seed=int(seed))]
    if lambda_network:
        nets.append(dict(eps=st["eps_lambda"], widths=tuple(widths), seed=int(seed) + 1))
    model.add_stage(nets, lambda_scale=st["eps_lambda"] if lambda_scale is None else lambda_scale)
    return st
