"""The phase registry: every way of training a stage, by name, with what it needs.

A phase is registered once (:func:`register_phase`) with the capabilities it needs
from the thing it trains; a driver's trainee (:class:`msnn.phases.runner.Trainee`) says which
capabilities it offers. A schedule with a phase that a trainee cannot run is refused
before any training, by :func:`check_phases`, with the phase, what is missing and the
driver's reason. A new phase is one function here, registered by name: every driver
whose trainee offers what it needs can then run it.

The capabilities:

``"loss"``
    a differentiable loss of the trainable parameters (first-order steps);
``"linear-output"``
    an output layer in which the residual is affine, solved exactly by least squares;
``"jacobian"``
    a residual vector whose sum of squares is the loss, and its Jacobian in the
    trainable parameters (Gauss-Newton).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

__all__ = ["CAPABILITIES", "PhaseKind", "PhaseReport", "PHASES", "register_phase", "check_phases"]

#: What a trainee can offer a phase: capability name -> what it means.
CAPABILITIES = {
    "loss": "a differentiable loss of the trainable parameters",
    "linear-output": "an output layer in which the residual is linear (solved exactly by least squares)",
    "jacobian": "a residual vector and its Jacobian in the trainable parameters",
}


@dataclass(frozen=True)
class PhaseKind:
    """A registered phase.

    Attributes:
        name: the phase's name in a schedule, e.g. "vp-lm".
        needs: the capabilities a trainee must offer (keys of :data:`CAPABILITIES`).
        options: the per-phase options it accepts.
        takes_steps: whether a schedule gives it a step count, ``("adam", 1000)``.
        run: ``run(trainee, phase, bar) -> PhaseReport``.
        second_order: it builds a Jacobian or a least-squares system (size-checked first).
    """

    name: str
    needs: frozenset
    options: frozenset
    takes_steps: bool
    run: Callable
    second_order: bool = False


#: The registered phases by name, in registration order.
PHASES: dict[str, PhaseKind] = {}


def register_phase(name: str, *, needs: Iterable[str], options: Iterable[str] = (), takes_steps: bool = True,
                   second_order: bool = False) -> Callable:
    """Register ``run(trainee, phase, bar) -> PhaseReport`` as the phase ``name``."""
    needs = frozenset(needs)
    unknown = needs - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}")

    def deco(fn: Callable) -> Callable:
        PHASES[name] = PhaseKind(name, needs, frozenset(options), takes_steps, fn, second_order)
        return fn

    return deco


def check_phases(phases, offers: Iterable[str], who: str, why_not: dict | None = None) -> None:
    """Refuse, before training, a phase that needs a capability ``who`` does not offer.

    Args:
        phases: :class:`msnn.phases.schedule.Phase` objects.
        offers: the capabilities of the trainee.
        who: how the message names the driver, e.g. "SI stages".
        why_not: optional reason per missing capability, said in the message.

    Raises:
        ValueError: naming the phase, the missing capability and the reason.
    """
    offers = set(offers)
    for ph in phases:
        missing = sorted(PHASES[ph.kind].needs - offers)
        if missing:
            reasons = "; ".join((why_not or {}).get(m, f"{who} do not offer {CAPABILITIES[m]}") for m in missing)
            runnable = [k for k, v in PHASES.items() if v.needs <= offers]
            raise ValueError(f"{who} cannot run the phase {ph.kind!r}: it needs {', '.join(missing)}. {reasons}. "
                             f"Phases {who} can run: {', '.join(runnable)}")


@dataclass
class PhaseReport:
    """What one phase did: its kind, iterations, loss before and after, wall time, why it stopped.

    ``history`` is the loss per step (Adam), evaluation (L-BFGS), re-solve (LSGD) or
    iteration (Levenberg-Marquardt); for the last two ``times`` holds the seconds
    elapsed at each entry; ``step_losses`` is LSGD's loss at each of its Adam steps;
    ``tried``: the scales a "features" phase drew at, each with its loss, validation score and rank."""

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
    step_losses: list = field(default_factory=list)
    tried: list = field(default_factory=list)

    def summary(self) -> dict:
        """The report without its history, for stage records and tables ("features": with the
        scales it tried, their loss and their validation score)."""
        out = {"kind": self.kind, "steps": int(self.steps), "loss_before": float(self.loss_before),
               "loss_after": float(self.loss_after), "seconds": float(self.seconds), "stopped": self.stopped,
               "rank": self.rank}
        if self.tried:
            out["tried"] = [dict(d) for d in self.tried]
        return out
