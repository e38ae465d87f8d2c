"""One stage of Algorithm 4: its record, and its rows for the least-squares and Gauss-Newton phases.

:class:`msnn.multistage_pinn.MultistagePINN` sets a stage up from the residue of the
stages before it and trains it by Adam and L-BFGS (:func:`msnn.pinn_training.train_pinn`);
the phases after those (:mod:`msnn.phases`) see the stage as residual rows: the equation
at collocation points, the data, and with gPINN the residual's gradient
(:func:`second_order_phases`). For an equation linear in u the rows are affine in the
stage's output layer, which the exact least-squares phases solve.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ._common import StepCounts
from .phases import Phase, RowGroup, rows_loss, run_phases
from .pinn import PINNProblem, StagedSolution, grad, sample_collocation

__all__ = ["PINNStageRecord", "second_order_phases", "is_linear"]


@dataclass
class PINNStageRecord(StepCounts):
    """What stage k of Algorithm 4 was given and what it did.

    Attributes:
        stage: 1-based stage number.
        eps: the magnitude prefactor eps_k the stage was built with (eq. 3.19; eps_0 for stage 1).
        eps_r: RMS of the residue r_k the stage was set up from (the source for stage 1).
        f_d: dominant frequency of that residue per input axis (eq. 3.16, 3.18).
        kappa_hat: the modified scale factor per axis of the stage's first layer (None: regular).
        gamma, gamma_g: equation and gPINN weights used (eq. 3.32 / Algorithm 3, eq. 3.40).
        gamma_source: where gamma came from ("given", "eq. 3.32", "algorithm 3").
        widths: hidden widths of the stage network.
        n_weights: weights and biases of the stage network.
        loss_d, loss_e, loss_g: data, equation and residual-gradient losses per Adam step
            and L-BFGS evaluation (unnormalized).
        adam_steps, lbfgs_iterations, lbfgs_evaluations: the optimizer's work.
        residue_rms: RMS of the residue after the stage, on a uniform grid.
        residue_f_d: dominant frequency of that residue per axis.
        error_rms: RMS error of u^(c) against the exact solution after the stage
            (NaN if the problem has none), on the same grid.
        error_max: max |error| there.
        error_f_d: dominant frequency of the error per axis (NaN without exact solution).
        seconds: wall time of the stage (training and diagnostics).
        feature_scale: for a "features" stage, the box [-K, K] per axis its first-layer
            frequencies were drawn from, else None.
    """

    stage: int
    eps: float
    eps_r: float
    f_d: list
    kappa_hat: list | None
    gamma: float
    gamma_g: float
    gamma_source: str
    widths: tuple
    n_weights: int
    loss_d: np.ndarray = field(repr=False)
    loss_e: np.ndarray = field(repr=False)
    loss_g: np.ndarray = field(repr=False)
    adam_steps: int = 0
    lbfgs_iterations: int = 0
    lbfgs_evaluations: int = 0
    residue_rms: float = math.nan
    residue_f_d: list = field(default_factory=list)
    error_rms: float = math.nan
    error_max: float = math.nan
    error_f_d: list = field(default_factory=list)
    seconds: float = 0.0
    phases: list = field(default_factory=list)
    output_norm: float = math.nan
    round_off: float = math.nan
    feature_scale: list | None = None


def second_order_phases(problem: PINNProblem, model: StagedSolution, k: int, net, run, phases: Sequence[Phase], *,
                    gamma_g: float, kappa_hat, n_collocation: int, seed: int, named_schedule: bool,
                    validation_grid: torch.Tensor, progress: bool | None = None) -> list:
    """The least-squares / Gauss-Newton phases of stage k, after its Adam and L-BFGS phases.

    Rows: the equation at the collocation points and the data, each as a mean square of
    weight 1, and with gPINN the residual's gradient per axis (weight gamma_g), all
    divided by their initial sum so that the loss the phases see starts at 1. Not eq.
    (3.32)'s gamma: that balances first-order training; a least-squares solve with
    gamma ~ 1e-5 on the equation would leave the residue to the Tikhonov term."""
    rest = [ph for ph in phases if ph.kind not in ("adam", "lbfgs")]
    if not rest:
        return []
    p, m, eps = problem, model, model.eps[k]
    dev, dt = model.device, model.dtype
    val = None
    # Random points, not a uniform grid: on a grid a Gauss-Newton stage can fit the points
    # with first-layer frequencies that alias between them. A fresh draw of half as
    # many points validates (the parameters kept are the best there).
    # At least twice as many points as the stage has parameters: a least-squares stage with
    # fewer rows than unknowns fits the points and nothing between them.
    gen = torch.Generator(device=dev).manual_seed(10_000 + seed + k)
    n_min = 2 * net.n_weights(biases=True)
    if all(ph.kind == "features" for ph in rest):
        # only the output layer is solved: three rows per unknown (random features fit the
        # points and little between them with fewer)
        n_min = 3 * (net.widths[-1] + 1)
    if p.dim == 1:
        kh = 0.0 if kappa_hat is None else float(np.max(np.atleast_1d(kappa_hat)))
        n = max(n_collocation, int(math.ceil(12 * kh)) + 1, n_min)
        ends = torch.as_tensor(p.domain[0], dtype=dt, device=dev)[:, None]
        xc = torch.cat([ends, sample_collocation(p.domain, n - 2, method="lhs", generator=gen, dtype=dt,
                                                 device=dev)])
    else:
        xc = torch.as_tensor(run.collocation, dtype=dt, device=dev)
        if xc.shape[0] < n_min:
            xc = torch.cat([xc, sample_collocation(p.domain, n_min - xc.shape[0], method="lhs", generator=gen,
                                                   dtype=dt, device=dev)])
        n = xc.shape[0]
    xv = sample_collocation(p.domain, max(n // 2, 1), method="lhs", generator=gen, dtype=dt, device=dev)
    xd = torch.as_tensor(p.data_x, dtype=dt, device=dev)
    ud = torch.as_tensor(p.data_u, dtype=dt, device=dev)

    # For an equation linear in u, r(u_prev + eps u) = r(u_prev) + eps (r(u) - r(0)): the
    # previous residue is computed once and the stage's part is never added to the O(1)
    # solution before it is differentiated, which would round it to 1e-16 |u| absolute.
    def r_prev(x):
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            r = p.residual(xg, m(xg, k)) if k > 0 else p.residual(xg, 0.0 * xg.sum(-1))
            gr = [grad(r, xg, 1, a).detach() for a in range(p.dim)] if gamma_g > 0 else []
        return r.detach(), gr

    def lin(u, x):
        return p.residual(x, u(x)) - p.residual(x, 0.0 * x.sum(-1))

    linear = is_linear(p)
    if not linear:
        if named_schedule:  # the named schedule: Gauss-Newton on every weight
            rest = [Phase("lm", ph.steps, tuple(o for o in ph.options if o[0] in ("patience", "min_gain",
                                                                                   "damping")))
                    if ph.kind == "vp-lm" else ph for ph in rest]
        if any(ph.kind != "lm" for ph in rest):
            raise ValueError(f"'output-lstsq', 'lsgd' and 'vp-lm' solve the output layer exactly, which needs "
                             f"an equation linear in u; {p.name} is not: use Gauss-Newton phases "
                             "[('adam', n), ('lm', m)] or schedule='paper'")

    def previous(x):
        return m(x, k) if k > 0 else 0.0 * x.sum(-1)

    rc, grc = r_prev(xc) if linear else (None, None)
    with torch.no_grad():
        d0 = (m(xd, k) if k > 0 else torch.zeros_like(ud)) - ud
    if linear:
        eq_rows = RowGroup(xc, lambda u, x: rc + eps * lin(u, x), 1.0, "equation")
    else:
        eq_rows = RowGroup(xc, lambda u, x: p.residual(x, previous(x) + eps * u(x)), 1.0, "equation")
    data_rows = RowGroup(xd, lambda u, x: d0 + eps * u(x), 1.0, "data")
    groups = [eq_rows, data_rows]
    if gamma_g > 0:
        for a in range(p.dim):
            if linear:
                groups.append(RowGroup(xc, lambda u, x, a=a: grc[a] + eps * grad(lin(u, x), x, 1, a),
                                       gamma_g, f"gPINN axis {a}"))
            else:
                groups.append(RowGroup(xc, lambda u, x, a=a: grad(eq_rows.rows(u, x), x, 1, a),
                                       gamma_g, f"gPINN axis {a}"))
    ref = rows_loss(net, groups)
    ref = ref if ref > 0 and math.isfinite(ref) else 1.0
    for g in groups:
        g.weight /= ref
    if xv is not None:
        # The validation rows: the second random draw, the data, and the uniform grid on which
        # the next stage's eps and f_d are read (eq. 3.18-3.19). Random points alone can miss
        # a thin ridge where a saturated neuron turns into a step: u barely changes, but its
        # second derivative puts an O(1) spike into the residue of the grid (seen on eq. 3.44,
        # where it set the next stage's eps to 1e-2 against an error of 2e-9).
        xg = validation_grid
        if linear:
            rv, _ = r_prev(xv)
            rg, _ = r_prev(xg)
            val = [RowGroup(xv, lambda u, x: rv + eps * lin(u, x), 1.0 / ref, "validation"),
                   RowGroup(xg, lambda u, x: rg + eps * lin(u, x), 1.0 / ref, "grid")]
        else:
            val = [RowGroup(xv, eq_rows.rows, 1.0 / ref, "validation"),
                   RowGroup(xg, eq_rows.rows, 1.0 / ref, "grid")]
        val.append(RowGroup(xd, data_rows.rows, 1.0 / ref, "data"))
    return run_phases(net, groups, rest, progress=progress, desc=f"stage {k + 1}", validation=val)


def is_linear(problem: PINNProblem) -> bool:
    """Whether r(x, u) is affine in u: r(a phi) - 2 r(phi) + r(0)... tested at a = 0, 1, 2 on 16 points."""
    g = torch.Generator().manual_seed(99)
    lo, hi = torch.as_tensor(problem.domain[:, 0]), torch.as_tensor(problem.domain[:, 1])
    x = (lo + (hi - lo) * torch.rand(16, problem.dim, generator=g, dtype=torch.float64)).requires_grad_(True)
    with torch.enable_grad():
        phi = torch.sin(1.3 * x + 0.4).sum(-1) + torch.exp(0.7 * x).prod(-1)
        r0, r1, r2 = (problem.residual(x, a * phi).detach() for a in (0.0, 1.0, 2.0))
    return float((r2 - 2 * r1 + r0).norm()) <= 1e-10 * (float((r1 - r0).norm()) + 1e-300)

