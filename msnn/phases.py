"""A stage trained by phases: first-order steps, the exact output layer, Gauss-Newton.

A stage network is linear in its output layer,

    u(x) = sum_j w_j h_j(x; theta) + b,

so for a loss that is a sum of squares of quantities affine in ``u`` (regression, a
PINN whose equation is linear in u) the best output layer for given hidden weights
``theta`` is one linear least-squares solve. This module trains a stage by a
sequence of *phases*:

``("adam", n)``
    n Adam steps on all parameters (the paper's first phase).
``("lbfgs", n)``
    at most n L-BFGS iterations (strong Wolfe, tolerances 0), the paper's second phase.
``("output-lstsq",)``
    the output layer solved exactly in float64 (SVD, singular values below
    ``rcond * s_max`` dropped), with Tikhonov weight ``mu``: min ||A w - t||^2 + mu ||w||^2.
``("lsgd", n)``
    n Adam steps on the hidden layers with the output layer re-solved every
    ``every`` steps (the hybrid least-squares / gradient-descent of Cyr et al.,
    seed 003 of the book's sources).
``("vp-lm", n)``
    at most n iterations of variable-projection Levenberg-Marquardt: the output layer
    is solved exactly inside every step, the hidden layers move by a damped
    Gauss-Newton step on Kaufman's projected Jacobian (Golub & Pereyra 2003), with
    Marquardt's column scaling and Nielsen's damping rule.
``("lm", n)``
    at most n iterations of Levenberg-Marquardt on all parameters (no projection);
    the choice for equations that are not linear in u.

Every second-order phase keeps the best parameters it saw and stops early on a
rule that depends on the losses only (never on the clock), so a run is repeatable:
``patience`` iterations without a relative gain of ``min_gain``, or a damping that
grows past 1e16.

The residual rows are given as *row groups* (:class:`RowGroup`): points, a function
of the stage network that returns one residual per point, and a weight. The loss
is ``sum_g weight_g mean(rows_g^2)`` (+ ``mu ||w||^2``). The Jacobian of all rows
with respect to all parameters comes from one backward pass: each point gets its
own copy of the parameters (row i depends on point i only), so the gradient of the
summed rows with respect to copy i is row i of the Jacobian. For a linear equation
the output-layer columns of that Jacobian are the least-squares matrix ``A``.

Everything here runs in the stage network's dtype; float64 is what machine
precision needs (float32 warns, :class:`Float32Warning`).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["Phase", "RowGroup", "PhaseReport", "RankWarning", "parse_schedule", "schedule_for",
           "solve_output_layer", "run_phases", "rows_loss", "SCHEDULES", "output_layer_norm", "round_off", "evaluate",
           "ROUND_OFF_FLOOR", "MAX_JACOBIAN_BYTES",
           "levenberg_marquardt", "jacobian_of", "least_squares"]

_KINDS = ("adam", "lbfgs", "output-lstsq", "lsgd", "vp-lm", "lm")
_SECOND_ORDER = ("vp-lm", "lm")
_OPTIONS = {
    "adam": {"lr"},
    "lbfgs": set(),
    "output-lstsq": {"mu", "rcond"},
    "lsgd": {"lr", "every", "mu", "rcond"},
    "vp-lm": {"mu", "patience", "min_gain", "damping", "rcond"},
    "lm": {"patience", "min_gain", "damping"},
}


class RankWarning(UserWarning):
    """An output-layer system is numerically rank-deficient (the solve is minimum-norm)."""


@dataclass(frozen=True)
class Phase:
    """One phase of a stage's training.

    Attributes:
        kind: "adam", "lbfgs", "output-lstsq", "lsgd", "vp-lm" or "lm".
        steps: steps or iterations (0 for "output-lstsq").
        options: per-phase options: ``lr`` (adam, lsgd; 1e-3), ``every`` (lsgd; 1),
            ``mu`` (output-lstsq, lsgd, vp-lm; 0), ``rcond`` (the SVD cut-off; 1e-15),
            ``patience`` (second-order; 25), ``min_gain`` (second-order; 1e-3),
            ``damping`` (initial Levenberg-Marquardt damping; 1e-3).
    """

    kind: str
    steps: int = 0
    options: tuple = ()

    def opt(self, name: str, default: Any):
        return dict(self.options).get(name, default)

    def __str__(self) -> str:
        extra = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in self.options)
        return f"{self.kind}" + (f" {self.steps}" if self.kind != "output-lstsq" else "") + (
            f" ({extra[2:]})" if extra else "")


def _phase(spec) -> Phase:
    if isinstance(spec, Phase):
        spec = (spec.kind,) + (() if spec.kind == "output-lstsq" else (spec.steps,)) + (dict(spec.options),)
    if isinstance(spec, str):
        spec = (spec,)
    if not isinstance(spec, (tuple, list)) or not spec:
        raise ValueError(f"a phase is a tuple such as ('adam', 1000) or ('output-lstsq',), got {spec!r}")
    kind = spec[0]
    if kind not in _KINDS:
        raise ValueError(f"unknown phase {kind!r}; the phases are {', '.join(_KINDS)}")
    rest = list(spec[1:])
    opts = {}
    if rest and isinstance(rest[-1], dict):
        opts = dict(rest.pop())
    if kind == "output-lstsq":
        if rest:
            raise ValueError(f"phase 'output-lstsq' takes no step count, got {rest!r}")
        steps = 0
    else:
        if len(rest) != 1:
            raise ValueError(f"phase {kind!r} needs one step count, e.g. ({kind!r}, 100), got {spec!r}")
        steps = rest[0]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise ValueError(f"the steps of phase {kind!r} must be an integer, got {steps!r}")
        if steps < 0:
            raise ValueError(f"the steps of phase {kind!r} must be >= 0, got {steps}")
        steps = int(steps)
    bad = set(opts) - _OPTIONS[kind]
    if bad:
        raise ValueError(f"phase {kind!r} has no option {sorted(bad)}; it takes {sorted(_OPTIONS[kind]) or 'none'}")
    for name in ("lr", "damping"):
        if name in opts and not (isinstance(opts[name], (int, float)) and math.isfinite(opts[name]) and opts[name] > 0):
            raise ValueError(f"{name} of phase {kind!r} must be a finite number > 0, got {opts[name]!r}")
    if "mu" in opts and not (isinstance(opts["mu"], (int, float)) and opts["mu"] >= 0):
        raise ValueError(f"mu of phase {kind!r} must be >= 0, got {opts['mu']!r}")
    if "rcond" in opts and not (isinstance(opts["rcond"], (int, float)) and 0 <= opts["rcond"] < 1):
        raise ValueError(f"rcond of phase {kind!r} must lie in [0, 1), got {opts['rcond']!r}")
    for name in ("every", "patience"):
        if name in opts and (isinstance(opts[name], bool) or not isinstance(opts[name], (int, np.integer))
                             or opts[name] < 1):
            raise ValueError(f"{name} of phase {kind!r} must be an integer >= 1, got {opts[name]!r}")
    if "min_gain" in opts and not (isinstance(opts["min_gain"], (int, float)) and 0 <= opts["min_gain"] < 1):
        raise ValueError(f"min_gain of phase {kind!r} must lie in [0, 1), got {opts['min_gain']!r}")
    return Phase(kind, steps, tuple(sorted((k, float(v) if isinstance(v, float) else v) for k, v in opts.items())))


def parse_schedule(schedule: str | Sequence) -> list[Phase]:
    """A list of phases from tuples, e.g. ``[("adam", 1000), ("vp-lm", 300, {"mu": 1e-16})]``.

    Raises:
        ValueError: an unknown phase, a missing, negative or non-integer step count, an
            unknown option, or a damping / learning rate <= 0.
    """
    if isinstance(schedule, (str, Phase)) or (isinstance(schedule, tuple) and schedule and isinstance(schedule[0], str)):
        raise ValueError(f"a schedule is a list of phases, e.g. [('adam', 1000), ('vp-lm', 300)], got {schedule!r}")
    phases = [_phase(s) for s in schedule]
    if not phases:
        raise ValueError("a schedule needs at least one phase")
    return phases


#: Named schedules. "paper": Adam then L-BFGS, as the papers and the authors' code.
#: "precision": Adam 1000, then variable-projection Levenberg-Marquardt; the first
#: stage keeps its output layer small with mu = 1e-19 (relative to the mean-square
#: loss, whose target has RMS 1: its round-off, see the book's chapter "Beyond the
#: papers"), later stages use mu = 1e-15, which keeps a stage from settling on a huge
#: output layer.
SCHEDULES = ("paper", "precision")


def schedule_for(name_or_phases: str | Sequence, stage: int, *, adam_steps: int = 5000, lbfgs_steps: int = 5000,
                 precision_steps: int = 300, n_stages: int | None = None) -> list[Phase]:
    """The phases of stage ``stage`` (0-based) under a named schedule or an explicit list.

    Args:
        name_or_phases: "paper", "precision", a list of phases (every stage), or a list of
            such lists (one per stage).
        stage: the stage index.
        adam_steps, lbfgs_steps: the paper schedule's budget for this stage.
        precision_steps: the variable-projection iterations of the "precision" schedule.
        n_stages: if given, a per-stage list must have exactly this many entries.

    Raises:
        ValueError: an unknown name, a bad phase, or a per-stage list of the wrong length.
    """
    if isinstance(name_or_phases, str):
        if name_or_phases == "paper":
            return parse_schedule([("adam", adam_steps), ("lbfgs", lbfgs_steps)])
        if name_or_phases == "precision":
            mu = 1e-19 if stage == 0 else 1e-15
            return parse_schedule([("adam", 1000), ("vp-lm", precision_steps, {"mu": mu})])
        raise ValueError(f"unknown schedule {name_or_phases!r}; named schedules are {SCHEDULES}, "
                         "or give a list of phases")
    sched = list(name_or_phases)
    if sched and isinstance(sched[0], (list,)) and sched[0] and not isinstance(sched[0][0], str):
        if stage >= len(sched) or (n_stages is not None and len(sched) != n_stages):
            raise ValueError(f"the schedule gives phases for {len(sched)} stage(s), "
                             f"but there are {n_stages if n_stages is not None else stage + 1}")
        return parse_schedule(sched[stage])
    return parse_schedule(sched)


# --------------------------------------------------------------------- rows
@dataclass
class RowGroup:
    """Residual rows of one kind: ``rows(u, x)`` returns one residual per point of ``x``.

    Args:
        x: the points, a tensor (N, d) in the stage network's dtype and device.
        rows: ``rows(u, x) -> (N,)``: the residual at each point given the stage
            network ``u`` (a callable x -> (N,)). Row i must depend on point i only
            (it may differentiate ``u`` with respect to ``x``, which requires grad).
        weight: the group's weight in the loss sum_g weight mean(rows^2).
        name: a label ("data", "equation", ...).
    """

    x: torch.Tensor
    rows: Callable
    weight: float = 1.0
    name: str = "rows"


@dataclass
class PhaseReport:
    """What one phase did: its kind, iterations, loss before and after, wall time, why it stopped.

    ``history`` is the loss per step (Adam), evaluation (L-BFGS), re-solve (LSGD) or
    iteration (Levenberg-Marquardt); for the last two ``times`` holds the seconds
    elapsed at each entry."""

    kind: str
    steps: int
    loss_before: float
    loss_after: float
    seconds: float
    stopped: str = "budget"
    history: list = field(default_factory=list)
    rank: int | None = None
    extra_iterations: int = 0
    times: list = field(default_factory=list)

    def summary(self) -> dict:
        """The report without its history, for stage records and tables."""
        return {"kind": self.kind, "steps": int(self.steps), "loss_before": float(self.loss_before),
                "loss_after": float(self.loss_after), "seconds": float(self.seconds), "stopped": self.stopped,
                "rank": self.rank}


# ------------------------------------------------------------ the network
def _params(net) -> list[torch.Tensor]:
    """[W_0, b_0, ..., W_L, b_L] of a single stage network, the member axis dropped."""
    if getattr(net, "n_models", 1) != 1:
        raise ValueError("second-order phases train one network, not an ensemble")
    out = []
    for w, b in zip(net.weights, net.biases):
        out += [w, b]
    return out


def _forward(net, x: torch.Tensor, params: Sequence[torch.Tensor], per_point: bool) -> torch.Tensor:
    """The stage network with the given parameters; per_point: params carry a leading point axis."""
    if x.dim() == 1:
        x = x[:, None]
    h = x * net.kappa
    n_layers = len(params) // 2
    if per_point:
        h = h[:, None, :]
    for l in range(n_layers):
        W, b = params[2 * l], params[2 * l + 1]
        if per_point:
            h = torch.baddbmm(b, h, W)
        else:
            h = h @ W[0] + b[0, 0]
        if l == 0:
            h = torch.sin(h) if net.first_activation == "sin" else torch.tanh(h)
        elif l < n_layers - 1:
            h = torch.tanh(h)
    return h[:, 0, 0] if per_point else h[:, 0]


def _rows_all(net, groups: Sequence[RowGroup], params=None) -> torch.Tensor:
    """The scaled residual vector R with loss = ||R||^2 (without mu), shared parameters."""
    ps = _params(net) if params is None else params
    out = []
    for g in groups:
        x = g.x.detach().requires_grad_(True)
        with torch.enable_grad():
            r = g.rows(lambda z: _forward(net, z, ps, False), x)
        out.append(r.detach() * math.sqrt(g.weight / x.shape[0]))
    return torch.cat(out)


#: An error at or below ROUND_OFF_FLOOR * max|u| is float64 round-off of the solution:
#: the drivers add no stage below it (it would fit rounding noise).
ROUND_OFF_FLOOR = 2 * float(np.finfo(np.float64).eps)

#: The largest Jacobian (with its per-point parameter copies) a second-order phase builds.
MAX_JACOBIAN_BYTES = 8 * 2 ** 30


def _check_jacobian_size(net, groups: Sequence[RowGroup]) -> None:
    rows = sum(int(g.x.shape[0]) for g in groups)
    n_par = sum(p.numel() for p in _params(net))
    need = 3 * rows * n_par * torch.finfo(net.dtype).bits // 8
    if need > MAX_JACOBIAN_BYTES:
        raise ValueError(
            f"the Jacobian of {rows} residual rows by {n_par} parameters needs about {need / 2 ** 30:.1f} GiB "
            f"(with the per-point parameter copies), over the {MAX_JACOBIAN_BYTES / 2 ** 30:.0f} GiB limit "
            "(msnn.phases.MAX_JACOBIAN_BYTES): use fewer points or a smaller network for this phase")


def _jacobian(net, groups: Sequence[RowGroup], which: str = "all"):
    """Scaled rows R and their Jacobian with respect to the parameters, one backward per group.

    which: "all" (every parameter) or "output" (the output layer only). Returns
    (R, J) with J of shape (M, P) (columns in _params order; for "output", W_L then b_L).
    """
    ps = _params(net)
    n_out = 2
    Rs, Js = [], []
    for g in groups:
        n = g.x.shape[0]
        if which == "output":
            leaves = [p.detach().expand((n,) + tuple(p.shape[1:])).clone().requires_grad_(True) for p in ps[-n_out:]]
            use = [p.detach().expand((n,) + tuple(p.shape[1:])) for p in ps[:-n_out]] + leaves
        else:
            use = leaves = [p.detach().expand((n,) + tuple(p.shape[1:])).clone().requires_grad_(True) for p in ps]
        x = g.x.detach().requires_grad_(True)
        with torch.enable_grad():
            r = g.rows(lambda z: _forward(net, z, use, True), x)
            grads = torch.autograd.grad(r.sum(), leaves, allow_unused=True)
        s = math.sqrt(g.weight / n)
        cols = [(torch.zeros_like(l) if gr is None else gr).reshape(n, -1) for gr, l in zip(grads, leaves)]
        Js.append(torch.cat(cols, 1) * s)
        Rs.append(r.detach() * s)
    return torch.cat(Rs), torch.cat(Js)


def _set_output(net, w: torch.Tensor) -> None:
    W, b = net.weights[-1], net.biases[-1]
    with torch.no_grad():
        W.copy_(w[:-1].reshape(W.shape))
        b.copy_(w[-1:].reshape(b.shape))


def _get_output(net) -> torch.Tensor:
    return torch.cat([net.weights[-1].detach().reshape(-1), net.biases[-1].detach().reshape(-1)])


def _hidden(net) -> list[torch.Tensor]:
    return _params(net)[:-2]


def output_layer_norm(net: torch.nn.Module) -> float:
    """||w_out||_1 of the output layer (weights and bias), which bounds the stage's round-off."""
    return float(_get_output(net).abs().sum())


def evaluate(net: torch.nn.Module, x, dtype=np.longdouble) -> np.ndarray:
    """The stage network evaluated in numpy at ``dtype`` (default long double), shape (M,).

    ``x`` (a tensor or array, shape (M,) or (M, d)) is converted to ``dtype`` first, so a
    long-double ``x`` keeps its extra digits. On x86 numpy's longdouble is 80-bit extended
    precision (64-bit mantissa, about 1e-19), on some platforms quad precision, and on
    others (Windows, macOS on arm64) float64 itself.
    """
    ps = [p.detach().cpu().numpy()[0] for p in _params(net)]
    xx = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    h = xx.reshape(xx.shape[0], -1).astype(dtype) * net.kappa.detach().cpu().numpy().astype(dtype)
    n = len(ps) // 2
    for l in range(n):
        h = h @ ps[2 * l].astype(dtype) + ps[2 * l + 1].astype(dtype)[0]
        if l == 0:
            h = np.sin(h) if net.first_activation == "sin" else np.tanh(h)
        elif l < n - 1:
            h = np.tanh(h)
    return h[:, 0]


def round_off(net: torch.nn.Module, x: torch.Tensor) -> float:
    """RMS difference of the stage evaluated in float64 and in long double (numpy), on ``x``.

    The float64 sum sum_j w_j h_j loses about 1e-16 ||w||_1 max|h| to rounding when
    the terms cancel; this measures it (in numpy's longdouble, see :func:`evaluate`;
    where that is float64 itself it measures nothing).
    """
    with torch.no_grad():
        f64 = net(x.detach()).cpu().numpy().astype(np.longdouble)
    return float(np.sqrt(np.mean((f64 - evaluate(net, x)) ** 2)))


# ------------------------------------------------------------ least squares
def least_squares(A: torch.Tensor, t: torch.Tensor, *, mu: float = 0.0, rcond: float = 1e-15):
    """min ||A w - t||^2 + mu ||w||^2 by SVD of [A; sqrt(mu) I], in A's dtype.

    Singular values below ``rcond * s_max`` are dropped (minimum-norm solution).
    Returns (w, rank, U, s): the solution, the numerical rank, the kept left singular
    vectors (rows of A only) and all singular values."""
    m = A.shape[1]
    if mu > 0:
        A_ = torch.cat([A, math.sqrt(mu) * torch.eye(m, dtype=A.dtype, device=A.device)])
        t_ = torch.cat([t, torch.zeros(m, dtype=t.dtype, device=t.device)])
    else:
        A_, t_ = A, t
    U, s, Vh = torch.linalg.svd(A_, full_matrices=False)
    keep = s > rcond * s[0] if s.numel() and s[0] > 0 else torch.zeros_like(s, dtype=torch.bool)
    rank = int(keep.sum())
    coef = torch.where(keep, (U.T @ t_) / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
    return Vh.T @ coef, rank, U[: A.shape[0], keep], s


def _linear_check(net, groups, R, A, w) -> None:
    """Raise if the rows are not affine in the output layer (a nonlinear equation)."""
    c = R - A @ w
    dw = 1e-3 * (1.0 + w.abs()) * torch.sign(torch.sin(torch.arange(w.numel(), dtype=w.dtype, device=w.device) + 1))
    ps = _params(net)
    W, b = ps[-2].detach(), ps[-1].detach()
    w2 = w + dw
    trial = [p.detach() for p in ps[:-2]] + [w2[:-1].reshape(W.shape), w2[-1:].reshape(b.shape)]
    R2 = _rows_all(net, groups, trial)
    pred = A @ w2 + c
    err = float((R2 - pred).norm())
    scale = float(R2.norm()) + float(pred.norm()) + 1e-300
    tol = max(1e-8, 1e3 * torch.finfo(R.dtype).eps)  # 1e-8 in float64; above float32's rounding
    if err > tol * scale:
        raise ValueError(
            "the residual is not linear in u (relative misfit of its linearization in the output layer: "
            f"{err / scale:.1e}): the output layer cannot be solved exactly; use a Gauss-Newton phase "
            "on all parameters, ('lm', n), instead of 'output-lstsq', 'lsgd' or 'vp-lm'")


def solve_output_layer(net: torch.nn.Module, groups: Sequence[RowGroup], *, mu: float = 0.0, rcond: float = 1e-15,
                       check_linear: bool = True, warn_rank: bool = True) -> tuple[float, int]:
    """Set the output layer of ``net`` to the exact least-squares solution; returns (loss, rank).

    Solves min_w sum_g weight_g mean((A_g w + c_g)^2) + mu ||w||^2 by an SVD in the
    network's dtype, dropping singular values below ``rcond * s_max``.

    Raises:
        ValueError: the rows are not linear in the output layer (a nonlinear equation:
            use the "lm" phase).

    Warns:
        RankWarning: the system has lower numerical rank than columns.
    """
    R, A = _jacobian(net, groups, "output")
    w0 = _get_output(net)
    if check_linear:
        _linear_check(net, groups, R, A, w0)
    c = R - A @ w0
    w, rank, _, _ = least_squares(A, -c, mu=mu, rcond=rcond)
    if warn_rank and rank < A.shape[1]:
        warnings.warn(f"the output-layer system has numerical rank {rank} of {A.shape[1]} columns "
                      f"(rcond {rcond:g}); the solve keeps the minimum-norm solution", RankWarning, stacklevel=2)
    _set_output(net, w)
    loss = float(((A @ w + c) ** 2).sum()) + mu * float((w ** 2).sum())
    return loss, rank


# ------------------------------------------------------------ second order
def _flat(ps):
    return torch.cat([p.detach().reshape(-1) for p in ps])


def _assign(ps, vec):
    i = 0
    with torch.no_grad():
        for p in ps:
            n = p.numel()
            p.copy_(vec[i:i + n].reshape(p.shape))
            i += n


def _damped_step(Jt, R, loss: float, lam: float, nu: float, trained, evaluate):
    """One Levenberg-Marquardt step with Marquardt column scaling and Nielsen's damping rule.

    Solves the scaled augmented system [J D^-1; sqrt(lam) I] z = [-r; 0] by QR (not the
    normal equations), raising lam until the step lowers the loss. ``evaluate()`` returns
    (loss, extra) at the parameters just assigned. Returns (accepted, loss, lam, nu, extra);
    on rejection the parameters are restored.
    """
    D = Jt.norm(dim=0)
    D = torch.where(D > 0, D, torch.ones_like(D) * max(float(D.max()), 1e-300))
    Js = Jt / D
    eye = torch.eye(Js.shape[1], dtype=Js.dtype, device=Js.device)
    rhs = torch.cat([-R, torch.zeros(Js.shape[1], dtype=R.dtype, device=R.device)])[:, None]
    theta0 = _flat(trained)
    while lam <= 1e16:
        z = torch.linalg.lstsq(torch.cat([Js, math.sqrt(lam) * eye]), rhs, driver="gels").solution[:, 0]
        step = z / D
        pred = float((R ** 2).sum() - ((R + Jt @ step) ** 2).sum())
        _assign(trained, theta0 + step)
        new, extra = evaluate()
        if math.isfinite(new) and new < loss:
            rho = (loss - new) / pred if pred > 0 else 0.0
            return True, new, lam * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 2.0, extra
        _assign(trained, theta0)
        lam *= nu
        nu *= 2.0
    return False, loss, lam, nu, None


def _lm_loop(trained, kept, loss: float, steps: int, *, jacobian, evaluate, score, damping: float, patience: int,
             min_gain: float, bar, t0: float, on_accept=None):
    """The Levenberg-Marquardt iterations shared by every LM phase.

    ``jacobian()`` returns (r, J) at the current parameters, J with columns in the order
    of ``trained``; ``evaluate()`` returns (loss, extra) after a trial step, and an
    accepted step's extra goes to ``on_accept``. ``score(loss)`` says what "best" means;
    the best ``kept`` parameters are restored at the end. Stops on the budget, after
    ``patience`` steps without a relative gain of ``min_gain`` ("converged"), when no
    damping up to 1e16 lowers the loss ("damping"), or on a non-finite Jacobian.
    Returns (iterations, why it stopped, loss history, seconds at each entry).
    """
    best_theta, best = _flat(kept), score(loss)
    history, times = [loss], [time.perf_counter() - t0]
    lam, nu = float(damping), 2.0
    stopped, since_gain, ref, it = "budget", 0, best, 0
    for it in range(1, steps + 1):
        R, J = jacobian()
        if not (torch.all(torch.isfinite(J)) and torch.all(torch.isfinite(R))):
            stopped = "nonfinite"
            break
        accepted, loss, lam, nu, extra = _damped_step(J, R, loss, lam, nu, trained, evaluate)
        if accepted and on_accept is not None:
            on_accept(extra)
        history.append(loss)
        times.append(time.perf_counter() - t0)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.3e}")
        if not accepted:
            stopped = "damping"
            break
        sc = score(loss)
        if sc < best:
            best, best_theta = sc, _flat(kept)
        if sc < ref * (1.0 - min_gain):
            ref, since_gain = sc, 0
        else:
            since_gain += 1
            if since_gain >= patience:
                stopped = "converged"
                break
    _assign(kept, best_theta)
    return it, stopped, history, times


def _levenberg_marquardt(net, groups, steps: int, *, projected: bool, mu: float, patience: int,
                         min_gain: float, damping: float, rcond: float, bar=None,
                         validation: Sequence[RowGroup] | None = None) -> PhaseReport:
    t0 = time.perf_counter()
    hidden = _hidden(net)
    allp = _params(net)
    trained = hidden if projected else allp

    def projected_loss():
        """Solve the output layer for the current hidden weights; returns (loss, w)."""
        R, A = _jacobian(net, groups, "output")
        c = R - A @ _get_output(net)
        w, _, _, _ = least_squares(A, -c, mu=mu, rcond=rcond)
        r = A @ w + c
        return float((r ** 2).sum()) + mu * float((w ** 2).sum()), w

    def plain_loss():
        R = _rows_all(net, groups)
        return float((R ** 2).sum())

    if projected:
        R0, A0 = _jacobian(net, groups, "output")
        _linear_check(net, groups, R0, A0, _get_output(net))
        loss, w = projected_loss()
        _set_output(net, w)
    else:
        loss = plain_loss()
    start = loss

    def score(current: float) -> float:
        """What 'best' means: the loss on the validation rows if given (guards against a
        stage that fits the training points and aliases between them), else the loss."""
        return float((_rows_all(net, validation) ** 2).sum()) if validation else current

    def jacobian():
        R, J = _jacobian(net, groups, "all")
        if not projected:
            return R, J
        # Kaufman's variable projection on the Tikhonov-augmented system: residual
        # [A w + c; sqrt(mu) w], Jacobian [J_hidden; 0] with range([A; sqrt(mu) I]) projected out
        nh = sum(p.numel() for p in hidden)
        Jh, A = J[:, :nh], J[:, nh:]
        if mu > 0:
            m = A.shape[1]
            A = torch.cat([A, math.sqrt(mu) * torch.eye(m, dtype=A.dtype, device=A.device)])
            Jh = torch.cat([Jh, torch.zeros(m, nh, dtype=Jh.dtype, device=Jh.device)])
            R = torch.cat([R, math.sqrt(mu) * _get_output(net)])
        U, s, _ = torch.linalg.svd(A, full_matrices=False)
        U = U[:, s > 1e-13 * s[0]]
        return R, Jh - U @ (U.T @ Jh)

    it, stopped, history, times = _lm_loop(
        trained, allp, loss, steps, jacobian=jacobian,
        evaluate=projected_loss if projected else (lambda: (plain_loss(), None)),
        on_accept=(lambda w: _set_output(net, w)) if projected else None, score=score, damping=damping,
        patience=patience, min_gain=min_gain, bar=bar, t0=t0)
    final = projected_loss()[0] if projected else plain_loss()
    return PhaseReport("vp-lm" if projected else "lm", it, start, final, time.perf_counter() - t0, stopped, history,
                       times=times)


def jacobian_of(residuals: torch.Tensor, params: Sequence[torch.Tensor], *, chunk: int = 512) -> torch.Tensor:
    """The Jacobian (M, P) of a residual vector with respect to ``params`` (columns in order).

    Uses batched reverse mode (``is_grads_batched``) ``chunk`` rows at a time, and one
    backward pass per row where an operation in the graph cannot be batched.
    """
    r = residuals.reshape(-1)
    m = r.shape[0]
    sizes = [p.numel() for p in params]
    blocks = []
    for s in range(0, m, chunk):
        k = min(chunk, m - s)
        eye = torch.zeros(k, m, dtype=r.dtype, device=r.device)
        eye[torch.arange(k), torch.arange(s, s + k)] = 1.0
        try:
            gs = torch.autograd.grad(r, params, eye, retain_graph=True, allow_unused=True, is_grads_batched=True)
        except RuntimeError:
            rows = [torch.autograd.grad(r[i], params, retain_graph=True, allow_unused=True) for i in range(s, s + k)]
            gs = [torch.stack([row[j] if row[j] is not None else torch.zeros_like(params[j]) for row in rows])
                  for j in range(len(params))]
        blocks.append(torch.cat([(torch.zeros(k, n, dtype=r.dtype, device=r.device) if g is None else g.reshape(k, n))
                                 for g, n in zip(gs, sizes)], 1))
    return torch.cat(blocks)


def levenberg_marquardt(params: Sequence[torch.Tensor], residuals: Callable[[], torch.Tensor], steps: int, *,
                        damping: float = 1e-3, patience: int = 25, min_gain: float = 1e-3,
                        score: Callable[[], float] | None = None, progress: bool | None = None,
                        desc: str = "lm", jacobian: Callable[[], tuple] | None = None) -> PhaseReport:
    """Levenberg-Marquardt on any parameters: minimize ``||residuals()||^2``.

    The general form of the "lm" phase, for models that are not one stage network
    (e.g. several networks and an unknown coefficient trained together, as in the
    Burgers problem). The Jacobian comes from :func:`jacobian_of`; each step solves
    the Marquardt-scaled augmented system by QR, with Nielsen's damping rule; the best
    parameters (by ``score()`` if given, else by the loss) are kept.

    Args:
        params: leaf tensors that require grad (the ones trained).
        residuals: returns the residual vector (M,), differentiable in ``params``.
        steps: at most this many accepted steps (>= 0).
        damping: the starting damping (> 0).
        patience, min_gain: stop after ``patience`` steps without a relative gain of
            ``min_gain`` in the score.
        score: what "best" means (e.g. a loss on validation points); default the loss.
        progress, desc: progress bar.
        jacobian: optional, returns ``(r, J)`` at the current parameters (e.g. from
            ``torch.func``), J with columns in the order of ``params``; by default
            :func:`jacobian_of` differentiates ``residuals()``.

    Returns:
        A :class:`PhaseReport` of kind "lm" (losses are ``||r||^2``).

    Raises:
        ValueError: bad steps, damping, patience or min_gain; a parameter that does not require grad.
    """
    from .training import show_progress

    steps = _phase(("lm", steps, dict(damping=damping, patience=patience, min_gain=min_gain))).steps
    params = list(params)
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("levenberg_marquardt needs a non-empty list of tensors that require grad")
    t0 = time.perf_counter()

    def evaluate():
        with torch.no_grad():
            r = residuals().detach()
        return float((r ** 2).sum()), None

    def jac():
        if jacobian is not None:
            R, J = (t.detach() for t in jacobian())
            return R.reshape(-1), J
        with torch.enable_grad():
            r = residuals().reshape(-1)
            J = jacobian_of(r, params)
        return r.detach(), J

    loss = start = evaluate()[0]
    bar = None
    if steps and show_progress(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, leave=False, mininterval=0.5)
    it, stopped, history, times = _lm_loop(
        params, params, loss, steps, jacobian=jac, evaluate=evaluate,
        score=(lambda current: score()) if score is not None else (lambda current: current), damping=damping,
        patience=int(patience), min_gain=float(min_gain), bar=bar, t0=t0)
    if bar is not None:
        bar.close()
    return PhaseReport("lm", it, start, evaluate()[0], time.perf_counter() - t0, stopped, history, times=times)


def _lsgd(net, groups, steps: int, *, lr: float, every: int, mu: float, rcond: float, bar=None) -> PhaseReport:
    t0 = time.perf_counter()
    R0, A0 = _jacobian(net, groups, "output")
    _linear_check(net, groups, R0, A0, _get_output(net))
    start, _ = solve_output_layer(net, groups, mu=mu, rcond=rcond, check_linear=False, warn_rank=False)
    hidden = _hidden(net)
    opt = torch.optim.Adam(hidden, lr=lr)
    history, times = [start], [time.perf_counter() - t0]
    ref = None
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = _plain_loss_graph(net, groups)
        ref = float(loss.detach()) if ref is None or ref <= 0 else ref
        (loss / ref).backward()
        opt.step()
        if (i + 1) % every == 0 or i == steps - 1:
            val, _ = solve_output_layer(net, groups, mu=mu, rcond=rcond, check_linear=False, warn_rank=False)
            history.append(val)
            times.append(time.perf_counter() - t0)
            ref = max(val, 1e-300)
        if bar is not None and (i % 50 == 49 or i == steps - 1):
            bar.update(50 if i % 50 == 49 else (i % 50) + 1)
            bar.set_postfix_str(f"loss {history[-1]:.3e}")
    final, _ = solve_output_layer(net, groups, mu=mu, rcond=rcond, check_linear=False, warn_rank=False)
    return PhaseReport("lsgd", steps, start, final, time.perf_counter() - t0, "budget", history, times=times)


def rows_loss(net: torch.nn.Module, groups: Sequence[RowGroup]) -> float:
    """sum_g weight_g mean(rows_g^2) at the network's current parameters."""
    return float(_plain_loss_graph(net, groups).detach())


def _plain_loss_graph(net, groups) -> torch.Tensor:
    """sum_g weight_g mean(rows_g^2) with the network's own parameters, differentiable.

    Autograd is on even inside ``torch.no_grad()``: rows may differentiate u with respect to x."""
    total = 0.0
    with torch.enable_grad():
        for g in groups:
            x = g.x.detach().requires_grad_(True)
            r = g.rows(net, x)
            total = total + g.weight * torch.mean(r ** 2)
    return total


def run_phases(net: torch.nn.Module, groups: Sequence[RowGroup], phases: Sequence[Phase], *,
               first_order: Callable[[Phase], tuple] | None = None, progress: bool | None = None,
               desc: str = "stage", validation: Sequence[RowGroup] | None = None) -> list[PhaseReport]:
    """Train ``net`` by ``phases`` on the rows ``groups``; returns one report per phase.

    Args:
        net: a single :class:`msnn.networks.StageNetwork` (its parameters train).
        groups: the residual rows (:class:`RowGroup`).
        phases: from :func:`parse_schedule`.
        first_order: how to run "adam" and "lbfgs" phases: called with the phase,
            returns ``(loss_before, loss_after, seconds, stopped, history, iterations)``. The
            drivers pass their own (resampling, loss records); by default plain
            :func:`msnn.training.train` on the rows' loss.
        progress, desc: progress bar.
        validation: rows not trained on; the second-order phases keep the parameters
            that are best on them and stop when they stop improving (a guard against
            first-layer frequencies that alias on a uniform grid). A stage that ends
            worse on them than no stage at all gets a zero output layer and a last
            report of kind "rejected".

    Raises:
        ValueError: an ensemble network; rows that are not linear in the output layer
            for "output-lstsq", "lsgd" or "vp-lm"; a Jacobian larger than
            ``MAX_JACOBIAN_BYTES`` (the message gives its size).

    Warns:
        Float32Warning: a float32 network with a least-squares or Gauss-Newton phase
            (they stop near 1e-7 there).
    """
    from .training import show_progress, train

    phases = [_phase(p) for p in phases]
    if any(p.kind not in ("adam", "lbfgs") for p in phases) and net.dtype != torch.float64:
        from .regression import Float32Warning

        warnings.warn("least-squares and Gauss-Newton phases in float32 stop near 1e-7 (single "
                      "precision); use float64", Float32Warning, stacklevel=2)
    if any(p.kind not in ("adam", "lbfgs") for p in phases):
        _check_jacobian_size(net, list(groups) + list(validation or []))
    reports = []
    for ph in phases:
        t0 = time.perf_counter()
        bar = None
        if ph.kind in ("lsgd",) + _SECOND_ORDER and ph.steps and show_progress(progress):
            from tqdm.auto import tqdm

            bar = tqdm(total=ph.steps, desc=f"{desc} {ph.kind}", leave=False, mininterval=0.5)
        if ph.kind in ("adam", "lbfgs"):
            its = ph.steps
            if first_order is not None:
                before, after, secs, stopped, hist, its = first_order(ph)
            else:
                # rows may differentiate u with respect to x: evaluate with autograd on
                before = float(_plain_loss_graph(net, groups).detach()) if ph.steps else math.nan
                h = train(net, lambda: _plain_loss_graph(net, groups),
                          adam_steps=ph.steps if ph.kind == "adam" else 0,
                          lbfgs_steps=ph.steps if ph.kind == "lbfgs" else 0,
                          lr=ph.opt("lr", 1e-3), progress=progress, desc=f"{desc} {ph.kind}")
                before, after, secs, stopped, hist = before, float(h.final_loss), h.seconds, h.stopped, list(h.loss)
                its = h.adam_steps + h.lbfgs_iterations
            steps = ph.steps if ph.kind == "adam" else its
            reports.append(PhaseReport(ph.kind, steps, before, after, secs, stopped, hist, None, its))
        elif ph.kind == "output-lstsq":
            before = float((_rows_all(net, groups) ** 2).sum())
            after, rank = solve_output_layer(net, groups, mu=ph.opt("mu", 0.0), rcond=ph.opt("rcond", 1e-15))
            reports.append(PhaseReport("output-lstsq", 0, before, after, time.perf_counter() - t0, "solved",
                                       [before, after], rank))
        elif ph.kind == "lsgd":
            reports.append(_lsgd(net, groups, ph.steps, lr=ph.opt("lr", 1e-3), every=ph.opt("every", 1),
                                 mu=ph.opt("mu", 0.0), rcond=ph.opt("rcond", 1e-15), bar=bar))
        else:
            reports.append(_levenberg_marquardt(
                net, groups, ph.steps, projected=ph.kind == "vp-lm", mu=ph.opt("mu", 0.0),
                patience=ph.opt("patience", 25), min_gain=ph.opt("min_gain", 1e-3),
                damping=ph.opt("damping", 1e-3), rcond=ph.opt("rcond", 1e-15), bar=bar, validation=validation))
        if bar is not None:
            bar.close()
    if validation and any(p.kind in ("output-lstsq", "lsgd") + _SECOND_ORDER for p in phases):
        # a stage that does worse on the validation rows than no stage at all is set to zero
        kept = float((_rows_all(net, validation) ** 2).sum())
        w = _get_output(net)
        _set_output(net, torch.zeros_like(w))
        none = float((_rows_all(net, validation) ** 2).sum())
        if kept <= none:
            _set_output(net, w)
        else:
            reports.append(PhaseReport("rejected", 0, kept, none, 0.0, "worse than no stage on the validation rows"))
    return reports
