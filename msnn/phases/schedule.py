"""Schedules: the phases a stage trains by, parsed and checked against the registry.

A schedule is a list of phases, ``[("adam", 1000), ("vp-lm", 300, {"mu": 1e-16})]``, or
a named one (:data:`SCHEDULES`); :func:`schedule_for` gives the phases of one stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .registry import PHASES

__all__ = ["Phase", "as_phase", "parse_schedule", "schedule_for", "SCHEDULES"]


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
        return f"{self.kind}" + (f" {self.steps}" if PHASES[self.kind].takes_steps else "") + (
            f" ({extra[2:]})" if extra else "")


def as_phase(spec) -> Phase:
    """A :class:`Phase` from a tuple such as ``("vp-lm", 300, {"mu": 1e-16})`` (or a Phase), checked."""
    if isinstance(spec, Phase):
        spec = (spec.kind,) + ((spec.steps,) if PHASES[spec.kind].takes_steps else ()) + (dict(spec.options),)
    if isinstance(spec, str):
        spec = (spec,)
    if not isinstance(spec, (tuple, list)) or not spec:
        raise ValueError(f"a phase is a tuple such as ('adam', 1000) or ('output-lstsq',), got {spec!r}")
    kind = spec[0]
    if kind not in PHASES:
        raise ValueError(f"unknown phase {kind!r}; the phases are {', '.join(PHASES)}")
    rest = list(spec[1:])
    opts = {}
    if rest and isinstance(rest[-1], dict):
        opts = dict(rest.pop())
    if not PHASES[kind].takes_steps:
        if rest:
            raise ValueError(f"phase {kind!r} takes no step count, got {rest!r}")
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
    bad = set(opts) - PHASES[kind].options
    if bad:
        raise ValueError(f"phase {kind!r} has no option {sorted(bad)}; it takes {sorted(PHASES[kind].options) or 'none'}")
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
    phases = [as_phase(s) for s in schedule]
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
        name_or_phases: "paper", "precision", "features", a list of phases (every stage), or a list of
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
        if name_or_phases == "features":
            return parse_schedule([("features",)])
        raise ValueError(f"unknown schedule {name_or_phases!r}; named schedules are {SCHEDULES}, "
                         "or give a list of phases")
    sched = list(name_or_phases)
    if sched and isinstance(sched[0], (list,)) and sched[0] and not isinstance(sched[0][0], str):
        if stage >= len(sched) or (n_stages is not None and len(sched) != n_stages):
            raise ValueError(f"the schedule gives phases for {len(sched)} stage(s), "
                             f"but there are {n_stages if n_stages is not None else stage + 1}")
        return parse_schedule(sched[stage])
    return parse_schedule(sched)

