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
    the third source of the book).
``("vp-lm", n)``
    at most n iterations of variable-projection Levenberg-Marquardt: the output layer
    is solved exactly inside every step, the hidden layers move by a damped
    Gauss-Newton step on Kaufman's projected Jacobian (Golub & Pereyra 2003), with
    Marquardt's column scaling and Nielsen's damping rule.
``("lm", n)``
    at most n iterations of Levenberg-Marquardt on all parameters (no projection);
    the choice for equations that are not linear in u.
``("features",)``
    a one-hidden-layer sine stage whose first layer is drawn at random (frequencies
    uniform in a box, at the scale among a ladder tied to the points' resolution that
    is best on the validation rows) and whose output layer is solved exactly
    (:mod:`msnn.phases.features`); no iteration. The named schedule "features".

The phases are registered by name with the capabilities they need
(:mod:`msnn.phases.registry`); a driver wraps its stage in a trainee that says what it
offers (:mod:`msnn.phases.runner`), and a phase it cannot run is refused before
training, with the reason. The package's parts: ``schedule`` (phases and named
schedules), ``registry``, ``rows`` (row groups, the stage network's Jacobian),
``lstsq`` (the exact output layer), ``lm`` (Levenberg-Marquardt), ``runner`` (the
trainees, the registered phases, :func:`~msnn.phases.runner.train_stage` and :func:`~msnn.phases.runner.run_phases`).

Every second-order phase keeps the best parameters it saw and stops early on a
rule that depends on the losses only (never on the clock), so a run is repeatable:
``patience`` iterations without a relative gain of ``min_gain``, or a damping that
grows past 1e16.

The residual rows are given as *row groups* (:class:`~msnn.phases.rows.RowGroup`): points, a function
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

from . import features as _features  # registers the "features" phase
from .features import FEATURE_LADDER, draw_features, resolution_frequency
from .lm import jacobian_of, levenberg_marquardt
from .lstsq import RankWarning, least_squares, solve_output_layer
from .registry import CAPABILITIES, PHASES, PhaseReport, check_phases, register_phase
from .rows import MAX_JACOBIAN_BYTES, ROUND_OFF_FLOOR, RowGroup, evaluate, output_layer_norm, round_off, rows_loss
from .runner import LossTrainee, NetworkTrainee, Trainee, run_phases, train_stage
from .schedule import SCHEDULES, Phase, parse_schedule, schedule_for

__all__ = ["Phase", "RowGroup", "PhaseReport", "RankWarning", "parse_schedule", "schedule_for", "SCHEDULES",
           "solve_output_layer", "run_phases", "train_stage", "rows_loss", "output_layer_norm", "round_off",
           "evaluate", "ROUND_OFF_FLOOR", "MAX_JACOBIAN_BYTES", "levenberg_marquardt", "jacobian_of", "least_squares",
           "FEATURE_LADDER", "draw_features", "resolution_frequency",
           "CAPABILITIES", "PHASES", "register_phase", "check_phases", "Trainee", "NetworkTrainee", "LossTrainee"]
