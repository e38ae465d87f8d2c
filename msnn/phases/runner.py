"""The one phase runner: a stage's trainee trained by a schedule of registered phases.

A driver wraps what it trains in a *trainee* that says which capabilities it offers
(:mod:`msnn.phases.registry`) and implements them:

* :class:`NetworkTrainee`: one :class:`msnn.networks.StageNetwork` and its residual
  rows (:class:`msnn.phases.rows.RowGroup`): regression and PINN stages. Offers every
  capability; "linear-output" is checked on the rows when a phase uses it.
* :class:`LossTrainee`: any parameters with a loss, and optionally an exact
  output-layer solve (SI stages) or residual rows and their Jacobian (Burgers).

:func:`train_stage` refuses a schedule the trainee cannot run (before any training)
and runs the phases one after the other. The phases themselves are registered here:
"adam", "lbfgs", "output-lstsq", "lsgd", "vp-lm", "lm".
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from .._common import Float32Warning, show_progress
from ..training import TrainHistory, train
from .lm import levenberg_marquardt, network_lm
from .lstsq import linear_check, solve_output_layer
from .registry import PHASES, PhaseReport, check_phases, register_phase
from .rows import (RowGroup, check_jacobian_size, get_output, loss_graph, rows_jacobian, scaled_rows, set_output,
                   stage_params)
from .schedule import Phase, as_phase

__all__ = ["Trainee", "NetworkTrainee", "LossTrainee", "train_stage", "run_phases"]


# ------------------------------------------------------------------ trainees
class Trainee:
    """What one stage offers the phases. Subclasses set ``offers`` and implement them.

    * "loss": :meth:`loss_graph` (differentiable), :meth:`first_order` (Adam / L-BFGS,
      the driver's way: resampling, learning-rate annealing, recorded loss terms);
    * "linear-output": :meth:`solve_output` and :meth:`hidden`;
    * "jacobian": :meth:`gauss_newton` (Levenberg-Marquardt on its rows).
    """

    offers: frozenset = frozenset()
    who: str = "this driver"
    why_not: dict = {}
    lr: float = 1e-3
    #: whether LSGD's Adam sees the loss divided by the last solved loss (see the "lsgd" phase)
    scaled_lsgd: bool = True

    def loss_value(self) -> float:
        with torch.no_grad():
            return float(self.loss_graph())

    def loss_graph(self) -> torch.Tensor:  # pragma: no cover - abstract
        """The stage's loss as a differentiable scalar ("loss")."""
        raise NotImplementedError

    def loss_before_solve(self) -> float:
        """The loss an "output-lstsq" phase reports as its starting value."""
        return self.loss_value()

    def first_order(self, phase: Phase, progress: bool, desc: str) -> PhaseReport:
        """An "adam" or "lbfgs" phase by :func:`msnn.training.train` on :meth:`loss_graph`."""
        before = self.loss_value() if phase.steps else math.nan
        h = train(self.params(), self.loss_graph, adam_steps=phase.steps if phase.kind == "adam" else 0,
                  lbfgs_steps=phase.steps if phase.kind == "lbfgs" else 0, lr=phase.opt("lr", self.lr),
                  progress=progress, desc=f"{desc} {phase.kind}")
        its = h.adam_steps + h.lbfgs_iterations
        return PhaseReport(phase.kind, phase.steps if phase.kind == "adam" else its, before, float(h.final_loss),
                           h.seconds, h.stopped, list(h.loss), None, its)

    def params(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def hidden(self) -> list:  # pragma: no cover - abstract
        """The parameters below the output layer ("linear-output"): what LSGD's Adam trains."""
        raise NotImplementedError

    def solve_output(self, mu: float, rcond: float, *, warn_rank: bool = False) -> tuple[float, int]:
        """Solve the output layer exactly by least squares ("linear-output"); return (loss, rank)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def gauss_newton(self, phase: Phase, bar, projected: bool) -> PhaseReport:
        """One Levenberg-Marquardt phase on the trainee's residual rows ("jacobian")."""
        raise NotImplementedError  # pragma: no cover - abstract


class NetworkTrainee(Trainee):
    """A :class:`msnn.networks.StageNetwork` and its residual rows (regression, PINN stages).

    Args:
        net: a single stage network (not an ensemble).
        groups: the rows it trains on.
        validation: rows it does not train on: the second-order phases keep the
            parameters that are best there, and a stage worse there than no stage at
            all is set to zero (see :func:`run_phases`).
        first_order: optional ``first_order(phase) -> (before, after, seconds, stopped,
            history, iterations)``: the driver's own Adam / L-BFGS.
    """

    offers = frozenset({"loss", "linear-output", "jacobian"})
    who = "stage networks"

    def __init__(self, net, groups: Sequence[RowGroup], *, validation: Sequence[RowGroup] | None = None,
                 first_order: Callable[[Phase], tuple] | None = None) -> None:
        self.net, self.groups, self.validation, self._first_order = net, list(groups), validation, first_order
        self._checked = False

    def params(self) -> list:
        return list(self.net.parameters())

    def hidden(self) -> list:
        return stage_params(self.net)[:-2]

    def loss_graph(self) -> torch.Tensor:
        return loss_graph(self.net, self.groups)

    def loss_before_solve(self) -> float:
        return float((scaled_rows(self.net, self.groups) ** 2).sum())

    def first_order(self, phase: Phase, progress: bool, desc: str) -> PhaseReport:
        if self._first_order is None:
            before = float(self.loss_graph().detach()) if phase.steps else math.nan
            h = train(self.net, self.loss_graph, adam_steps=phase.steps if phase.kind == "adam" else 0,
                      lbfgs_steps=phase.steps if phase.kind == "lbfgs" else 0, lr=phase.opt("lr", self.lr),
                      progress=progress, desc=f"{desc} {phase.kind}")
            its = h.adam_steps + h.lbfgs_iterations
            return PhaseReport(phase.kind, phase.steps if phase.kind == "adam" else its, before,
                               float(h.final_loss), h.seconds, h.stopped, list(h.loss), None, its)
        before, after, secs, stopped, hist, its = self._first_order(phase)
        return PhaseReport(phase.kind, phase.steps if phase.kind == "adam" else its, before, after, secs, stopped,
                           hist, None, its)

    def solve_output(self, mu: float, rcond: float, *, warn_rank: bool = False,
                     equilibrate: bool = False) -> tuple[float, int]:
        check = not self._checked
        self._checked = True
        return solve_output_layer(self.net, self.groups, mu=mu, rcond=rcond, check_linear=check, warn_rank=warn_rank,
                                  equilibrate=equilibrate)

    def check_linear(self) -> None:
        """Raise unless the rows are affine in the output layer (once per trainee)."""
        if not self._checked:
            R, A = rows_jacobian(self.net, self.groups, "output")
            linear_check(self.net, self.groups, R, A, get_output(self.net))
            self._checked = True

    def gauss_newton(self, phase: Phase, bar, projected: bool) -> PhaseReport:
        return network_lm(self.net, self.groups, phase.steps, projected=projected, mu=phase.opt("mu", 0.0),
                          patience=phase.opt("patience", 25), min_gain=phase.opt("min_gain", 1e-3),
                          damping=phase.opt("damping", 1e-3), rcond=phase.opt("rcond", 1e-15), bar=bar,
                          validation=self.validation)


class LossTrainee(Trainee):
    """Any parameters with a loss (SI stages, the Burgers rounds), and what else the driver can give.

    Args:
        params: the trainable tensors.
        loss: ``loss() -> tensor``, differentiable in ``params``.
        first_order: optional ``first_order(phase, progress, desc) -> TrainHistory``: the
            driver's Adam / L-BFGS (default :func:`msnn.training.train` on ``loss``).
        solve_output: optional ``solve_output(mu, rcond) -> (loss, rank)`` that sets the
            output layer to its exact least-squares value; with ``hidden``, the
            parameters of every other layer. Offers "linear-output".
        rows, rows_and_jacobian, score: optional residual rows (their sum of squares is
            the loss), rows with their Jacobian in ``params``, and what "best" means for
            Gauss-Newton. Offers "jacobian".
        who, why_not: how refusals name the driver and why it lacks a capability.
        lr: Adam's default learning rate.
        scaled_lsgd: whether the "lsgd" phase's Adam sees the loss divided by the last
            solved loss (the default) or the loss itself.
    """

    def __init__(self, params: Sequence[torch.Tensor], loss: Callable[[], torch.Tensor], *,
                 first_order: Callable | None = None, solve_output: Callable | None = None,
                 hidden: Sequence[torch.Tensor] | None = None, rows: Callable | None = None,
                 rows_and_jacobian: Callable | None = None, score: Callable | None = None,
                 who: str = "this driver", why_not: dict | None = None, lr: float = 1e-3,
                 scaled_lsgd: bool = True) -> None:
        self._params, self._loss, self._fo = list(params), loss, first_order
        self._solve, self._hidden = solve_output, None if hidden is None else list(hidden)
        self._rows, self._rj, self._score = rows, rows_and_jacobian, score
        self.who, self.why_not, self.lr, self.scaled_lsgd = who, dict(why_not or {}), lr, scaled_lsgd
        #: the TrainHistory of every first-order phase run, in order (the drivers merge them)
        self.histories: list[TrainHistory] = []
        offers = {"loss"}
        if solve_output is not None and hidden is not None:
            offers.add("linear-output")
        if rows is not None:
            offers.add("jacobian")
        self.offers = frozenset(offers)

    def params(self) -> list:
        return self._params

    def hidden(self) -> list:
        return self._hidden

    def loss_graph(self) -> torch.Tensor:
        return self._loss()

    def first_order(self, phase: Phase, progress: bool, desc: str) -> PhaseReport:
        if self._fo is None:
            return super().first_order(phase, progress, desc)
        # the loss before is the first one the optimizer saw: a driver's loss may record every
        # call (the Burgers rounds do), so it is not called here
        h: TrainHistory = self._fo(phase, progress, f"{desc} {phase.kind}")
        before = float(np.sum(np.asarray(h.loss)[0])) if len(h.loss) else math.nan
        self.histories.append(h)
        its = h.adam_steps + h.lbfgs_iterations
        return PhaseReport(phase.kind, its, before, float(np.sum(h.final_loss)), h.seconds, h.stopped, list(h.loss),
                           None, its)

    def solve_output(self, mu: float, rcond: float, *, warn_rank: bool = False) -> tuple[float, int]:
        return self._solve(mu, rcond)

    def gauss_newton(self, phase: Phase, bar, projected: bool) -> PhaseReport:
        return levenberg_marquardt(self._params, self._rows, phase.steps, damping=phase.opt("damping", 1e-3),
                                   patience=phase.opt("patience", 25), min_gain=phase.opt("min_gain", 1e-3),
                                   score=self._score, jacobian=self._rj, bar=bar)


# -------------------------------------------------------------------- phases
@register_phase("adam", needs={"loss"}, options={"lr"})
def _adam(t: Trainee, ph: Phase, bar, progress: bool, desc: str) -> PhaseReport:
    return t.first_order(ph, progress, desc)


@register_phase("lbfgs", needs={"loss"})
def _lbfgs(t: Trainee, ph: Phase, bar, progress: bool, desc: str) -> PhaseReport:
    return t.first_order(ph, progress, desc)


@register_phase("output-lstsq", needs={"linear-output"}, options={"mu", "rcond"}, takes_steps=False,
                second_order=True)
def _output_lstsq(t: Trainee, ph: Phase, bar, progress: bool, desc: str) -> PhaseReport:
    """The output layer solved exactly in float64 (SVD, singular values below ``rcond * s_max``
    dropped), with Tikhonov weight ``mu``: min ||A w - t||^2 + mu ||w||^2."""
    t0 = time.perf_counter()
    before = t.loss_before_solve()
    after, rank = t.solve_output(ph.opt("mu", 0.0), ph.opt("rcond", 1e-15), warn_rank=True)
    return PhaseReport("output-lstsq", 0, before, after, time.perf_counter() - t0, "solved", [before, after], rank)


@register_phase("lsgd", needs={"loss", "linear-output"}, options={"lr", "every", "mu", "rcond"}, second_order=True)
def _lsgd(t: Trainee, ph: Phase, bar, progress: bool, desc: str) -> PhaseReport:
    """Adam on the hidden layers with the output layer re-solved every ``every`` steps (Cyr et al.).

    Adam sees the loss divided by the last solved loss (``trainee.scaled_lsgd``), so its
    steps keep their size as the loss falls by orders of magnitude; SI stages take the loss
    itself, where Adam's epsilon damps the steps at small losses (on the SI test target the
    scaled steps end 2x above Adam alone, the unscaled ones 100x below). ``history``: the
    solved loss at the start and after every re-solve; ``step_losses``: the loss at every step."""
    steps, lr, every = ph.steps, ph.opt("lr", t.lr), ph.opt("every", 1)
    mu, rcond = ph.opt("mu", 0.0), ph.opt("rcond", 1e-15)
    t0 = time.perf_counter()
    if isinstance(t, NetworkTrainee):
        t.check_linear()
    start, _ = t.solve_output(mu, rcond)
    opt = torch.optim.Adam(t.hidden(), lr=lr)
    history, times, step_losses = [start], [time.perf_counter() - t0], []
    ref = None
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = t.loss_graph()
        if t.scaled_lsgd:
            ref = float(loss.detach()) if ref is None or ref <= 0 else ref
            (loss / ref).backward()
        else:
            loss.backward()
        opt.step()
        step_losses.append(float(loss.detach()))
        if (i + 1) % every == 0 or i == steps - 1:
            val, _ = t.solve_output(mu, rcond)
            history.append(val)
            times.append(time.perf_counter() - t0)
            ref = max(val, 1e-300)
        if bar is not None and (i % 50 == 49 or i == steps - 1):
            bar.update(50 if i % 50 == 49 else (i % 50) + 1)
            bar.set_postfix_str(f"loss {history[-1]:.3e}")
    final, _ = t.solve_output(mu, rcond)
    return PhaseReport("lsgd", steps, start, final, time.perf_counter() - t0, "budget", history, times=times,
                       step_losses=step_losses)


@register_phase("vp-lm", needs={"linear-output", "jacobian"}, options={"mu", "patience", "min_gain", "damping", "rcond"},
                second_order=True)
def _vp_lm(t: Trainee, ph: Phase, bar, progress: bool, desc: str) -> PhaseReport:
    """Variable-projection Levenberg-Marquardt: the output layer exact inside every step."""
    return t.gauss_newton(ph, bar, projected=True)


@register_phase("lm", needs={"jacobian"}, options={"patience", "min_gain", "damping"}, second_order=True)
def _lm(t: Trainee, ph: Phase, bar, progress: bool, desc: str) -> PhaseReport:
    """Levenberg-Marquardt on every trainable parameter (no projection)."""
    return t.gauss_newton(ph, bar, projected=False)


# -------------------------------------------------------------------- runner
def train_stage(trainee: Trainee, phases: Sequence, *, progress: bool | None = None,
                desc: str = "stage") -> list[PhaseReport]:
    """Train ``trainee`` by ``phases`` one after the other; returns one report per phase.

    Raises:
        ValueError: a phase the trainee cannot run (before any training), with the reason.
    """
    phases = [as_phase(p) for p in phases]
    check_phases(phases, trainee.offers, trainee.who, trainee.why_not)
    show = show_progress(progress)
    reports = []
    for ph in phases:
        kind = PHASES[ph.kind]
        bar = None
        if ph.kind not in ("adam", "lbfgs", "output-lstsq") and ph.steps and show:
            from tqdm.auto import tqdm

            bar = tqdm(total=ph.steps, desc=f"{desc} {ph.kind}", leave=False, mininterval=0.5)
        reports.append(kind.run(trainee, ph, bar, show, desc))
        if bar is not None:
            bar.close()
    return reports


def run_phases(net: torch.nn.Module, groups: Sequence[RowGroup], phases: Sequence[Phase], *,
               first_order: Callable[[Phase], tuple] | None = None, progress: bool | None = None,
               desc: str = "stage", validation: Sequence[RowGroup] | None = None) -> list[PhaseReport]:
    """Train a stage network ``net`` by ``phases`` on the rows ``groups``; one report per phase.

    Args:
        net: a single :class:`msnn.networks.StageNetwork` (its parameters train).
        groups: the residual rows (:class:`~msnn.phases.rows.RowGroup`).
        phases: from :func:`msnn.phases.schedule.parse_schedule`.
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
    phases = [as_phase(p) for p in phases]
    heavy = [p for p in phases if PHASES[p.kind].second_order]
    if heavy and net.dtype != torch.float64:
        warnings.warn("least-squares and Gauss-Newton phases in float32 stop near 1e-7 (single "
                      "precision); use float64", Float32Warning, stacklevel=2)
    if heavy:
        check_jacobian_size(net, list(groups) + list(validation or []))
    trainee = NetworkTrainee(net, groups, validation=validation, first_order=first_order)
    reports = train_stage(trainee, phases, progress=progress, desc=desc)
    if validation and heavy:
        # a stage that does worse on the validation rows than no stage at all is set to zero
        kept = float((scaled_rows(net, validation) ** 2).sum())
        w = get_output(net)
        set_output(net, torch.zeros_like(w))
        none = float((scaled_rows(net, validation) ** 2).sum())
        if kept <= none:
            set_output(net, w)
        else:
            reports.append(PhaseReport("rejected", 0, kept, none, 0.0, "worse than no stage on the validation rows"))
    return reports
