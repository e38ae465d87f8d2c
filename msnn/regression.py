"""Algorithm 1 of Wang & Lai (2024): multi-stage regression to machine precision.

Stage 0 fits the normalized data with a regular tanh network. Every later stage
n fits the normalized residue ``e_n / eps_n`` of the stages before it (eq. 2.3-2.5),

    e_n = u_g - sum_{j<n} eps_j u_j,     eps_n = RMS(e_n),

with a network whose first layer is ``sin(kappa x W_0 + b_0)`` and whose modified
scale factor ``kappa_hat`` comes from the residue's dominant frequency f_d
(eq. 2.9-2.10: pi f_d < kappa_hat < N_d / 6). The model is ``sum_j eps_j u_j``,
evaluated in float64. Chapter 4 of the book shows it at work.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch

from ._common import (Float32Warning, SparseDataWarning, StageRun, count, finite_float, flag, integers, one_of,
                      optional_path, per_stage, positive_float, positive_floats, resolve_device, rms, show_progress)
from ._common import float64_array as _to_numpy
from .engine import Reached, StagedFit
from .networks import StageNetwork
from .spectrum import dominant_frequency, dominant_frequency_2d, dominant_frequency_scattered
from .phases import ROUND_OFF_FLOOR, Phase, RowGroup, evaluate, output_layer_norm, round_off, run_phases, schedule_for
from .training import TrainHistory, train

__all__ = ["MultistageRegressor", "StageRecord", "choose_kappa_hat"]


@dataclass
class StageRecord(StageRun):
    """One stage of a fitted :class:`MultistageRegressor`.

    Attributes:
        index: stage number (0 = first stage, as u_0 in the paper).
        eps: RMS of the residue this stage fits, in normalized units (eps_0 = 1).
        eps_data: the same in the units of y.
        f_d: dominant frequency of the residue per input axis (cycles per unit of
            the normalized input), None for a tanh stage 1 (which uses kappa = 1).
        kappa_hat: modified scale factor per input axis (eq. 2.8).
        kappa: the scale factor kappa = kappa_hat / sqrt(Var) per input axis.
        activation: first-layer activation ("tanh" or "sin").
        widths: hidden widths.
        adam_steps, lbfgs_iterations, lbfgs_evaluations, final_loss, loss_history,
            rms_after, seconds, stopped, phases: what training did (:class:`msnn._common.StageRun`);
            the loss is on the normalized target e_n / eps_n.
        output_norm: ||w_out||_1 of the stage's output layer (weights and bias).
        round_off: estimated round-off of eps * u in float64 at the training points
            (normalized units): float64 against long-double evaluation of the stage.
        n_train: the points the stage trained on (see ``stage_points`` and ``holdout``).
        n_heldout: the points the stage was judged on and did not train on (0: none).
        heldout_before, heldout_after: RMS of the residue on those points before and after
            the stage, relative to RMS(y) (NaN where there were none): the stage's gain off
            its training points is their ratio.
        feature_scale: for a "features" stage, the box [-K, K] per axis its first-layer
            frequencies were drawn from (normalized input), else None.
    """

    index: int
    eps: float
    eps_data: float
    f_d: list | None
    kappa_hat: list
    kappa: list
    activation: str
    widths: tuple
    output_norm: float = math.nan
    round_off: float = math.nan
    n_train: int = 0
    n_heldout: int = 0
    heldout_before: float = math.nan
    heldout_after: float = math.nan
    feature_scale: list | None = None

    @property
    def heldout_gain(self) -> float:
        """heldout_before / heldout_after (NaN without held-out points; inf if the error vanished)."""
        if not self.n_heldout:
            return math.nan
        return self.heldout_before / self.heldout_after if self.heldout_after > 0 else math.inf

    @property
    def steps(self) -> int:
        """Adam steps plus L-BFGS iterations plus second-order iterations."""
        return self.adam_steps + self.lbfgs_iterations + sum(
            p["steps"] for p in self.phases if p["kind"] in ("lsgd", "vp-lm", "lm"))

    @property
    def rms_history(self) -> np.ndarray:
        """RMS error of the combined model during this stage: eps * sqrt(loss) (normalized units)."""
        return self.eps * np.sqrt(np.maximum(self.loss_history, 0.0))


def choose_kappa_hat(f_d: float, n_points: int, factor: float = 2.0) -> float:
    """Modified scale factor for a residue of dominant frequency ``f_d`` (eq. 2.9-2.10).

    ``kappa_hat = factor * pi * f_d`` (default 2 pi f_d, the size of the residue's
    normalized slope: Fig. 3's kappa_hat = 35 for f_d = 5.5), kept below the
    overfitting bound N_d / 6 but never below the underfitting bound pi f_d.
    """
    if not f_d > 0:
        raise ValueError(f"f_d must be positive, got {f_d}")
    upper = n_points / 6.0
    return float(min(factor * math.pi * f_d, max(math.pi * f_d, upper)))


def _per_stage(value, n: int, name: str, check_int: bool = True) -> list:
    """One value per stage (see msnn._common.per_stage); step counts checked as integers >= 0."""
    vals = per_stage(value, n, name, nested=name == "widths")
    return [count(v, name) for v in vals] if check_int else vals


#: An RMS error off the training points at or below this times max |y| (relative to RMS(y))
#: is float64 round-off: 16 ulps, where a sum of a few stages evaluated in float64 lands.
HELDOUT_ROUND_OFF = 16 * float(np.finfo(np.float64).eps)


class _Grid:
    """How to read residues on the training points as a uniform grid (or not)."""

    def __init__(self, xn: np.ndarray):
        self.n, self.d = xn.shape
        self.kind = "scattered"
        self.order = None
        if self.d == 1:
            order = np.argsort(xn[:, 0], kind="stable")
            steps = np.diff(xn[order, 0])
            if np.all(steps > 0) and np.allclose(steps, steps.mean(), rtol=1e-6):
                self.kind, self.order, self.spacing = "uniform", order, float(steps.mean())
                self.shape = (self.n,)
        elif self.d == 2:
            ux, uy = np.unique(xn[:, 0]), np.unique(xn[:, 1])
            if ux.size * uy.size == self.n and ux.size >= 4 and uy.size >= 4:
                sx, sy = np.diff(ux), np.diff(uy)
                if np.allclose(sx, sx.mean(), rtol=1e-6) and np.allclose(sy, sy.mean(), rtol=1e-6):
                    order = np.lexsort((xn[:, 1], xn[:, 0]))  # x-major, then y
                    self.kind, self.order = "uniform", order
                    self.spacing = (float(sx.mean()), float(sy.mean()))
                    self.shape = (ux.size, uy.size)
        self.points_per_axis = (
            list(self.shape) if self.kind == "uniform"
            else [int(round(self.n ** (1.0 / self.d)))] * self.d
        )

    def frequency(self, xn: np.ndarray, r: np.ndarray) -> list:
        if self.kind == "uniform":
            g = r[self.order].reshape(self.shape)
            if self.d == 1:
                return [dominant_frequency(g, self.spacing)]
            return list(dominant_frequency_2d(g, self.spacing).per_axis)
        if self.d > 2:
            raise ValueError(
                "frequency estimation for scattered inputs supports d <= 2; "
                "pass kappa_hat explicitly for higher dimensions")
        f = dominant_frequency_scattered(xn, r)
        return [f] if self.d == 1 else list(f.per_axis)


class MultistageRegressor(StagedFit):
    """Multi-stage neural network regression (Algorithm 1 of Wang & Lai 2024).

    Example::

        reg = MultistageRegressor(n_stages=4, adam_steps=5000, lbfgs_steps=5000, seed=0)
        reg.fit(x, y)          # x: (N,) or (N, d); y: (N,)
        y_hat = reg.predict(x_new)
        reg.stages_            # list of StageRecord

    Inputs are mapped affinely to [-1, 1] per axis; outputs are divided by their
    RMS, so that eps_0 = 1. Each stage trains with Adam then L-BFGS on its
    normalized residue; from the second stage on, the first layer is ``sin`` with
    ``kappa_hat`` from the residue's dominant frequency (:func:`choose_kappa_hat`;
    in 2D the frequency is read per axis and the largest sets one ``kappa_hat`` for
    all axes). On uniform data (a 1D grid or a full 2D tensor grid, in any
    order) the frequency is read from the FFT of the residue at the training
    points; on scattered data the residue is first interpolated linearly onto a
    uniform grid with as many points (see :mod:`msnn.spectrum`).

    Args:
        n_stages: number of stages (>= 1).
        widths: hidden widths, one tuple for all stages or one per stage
            (default (20, 20, 20), the paper's 3x20 network).
        adam_steps: Adam steps of the paper's schedule, an int or one per stage (5000).
        lbfgs_steps: L-BFGS iterations of the paper's schedule, an int or one per stage (5000).
        schedule: how each stage trains (:mod:`msnn.phases`). ``"precision"``: Adam 1000
            then variable-projection Levenberg-Marquardt (output layer solved exactly,
            Tikhonov weight 1e-19 in stage 1, 1e-15 later), which reaches ~1e-15 on
            smooth 1D targets in minutes on one core; ``"paper"``: Adam ``adam_steps``
            then L-BFGS ``lbfgs_steps``, as the papers; or a list of phases such as
            ``[("adam", 1000), ("lbfgs", 2000), ("output-lstsq",)]`` (one list for
            every stage, or one list per stage). Default: "paper" when ``adam_steps``
            or ``lbfgs_steps`` is given; else "features" for inputs in two or more
            dimensions (unless ``widths`` or ``precision_steps`` is set), "precision" in one. ``"features"``: each stage is one hidden layer
            of ``n_features`` sine units whose frequencies are drawn at random in a box at
            the scale (among four tied to the data's resolution) that is best on the
            held-out points, and whose output layer is solved exactly (no iteration,
            :mod:`msnn.phases.features`); on a 40 x 40 grid it reaches ~1e-14 between
            the grid points in seconds, where the precision schedule stops near 1e-7.
        n_features: the hidden width of a "features" stage (default: three quarters of the
            points it trains on, at most 1200; on a 24 x 24 grid half as many units end
            200 times higher between the points).
        precision_steps: the variable-projection iterations of the "precision"
            schedule (at most; it stops earlier when the loss stops falling).
        stage_points: ``"auto"`` (default): on 1D data on a uniform grid, a stage whose
            schedule has least-squares or Gauss-Newton phases trains on a random
            subset of the data with max(1501, 12 pi f_d) points, all of the outer 2% of the
            normalized interval among them (eq. 2.10 with
            kappa_hat = 2 pi f_d), since their cost grows with the points, and keeps
            the parameters that are best on other data points; the residue and eps
            always use all the data. ``None``: every stage trains on all the data
            (and ``holdout`` is not used).
        holdout: where ``stage_points`` holds no points out (2D grids, scattered
            points, 1D data too few to subsample) and the schedule has least-squares or
            Gauss-Newton phases: the share of the points (default 0.1) that no stage
            trains on, drawn at random once per fit among the points inside the data's
            bounding box. Every stage is judged on them: its second-order phases keep
            the parameters best there, a stage worse there than no stage is rejected,
            and a stage after the first that lowers their RMS error less than
            ``min_gain`` times ends the fit (a :class:`~msnn._common.StageWarning` says so): later stages would
            fit the points, not the function between them. 0: every stage trains on
            every point, judged on nothing.
        min_gain: the least factor by which a stage must lower the error on the points it
            did not train on for the fit to go on (default 2).
        lr: Adam learning rate (1e-3, as in the authors' code).
        kappa_factor: kappa_hat = kappa_factor * pi * f_d (default 2), see
            :func:`choose_kappa_hat`.
        kappa_hat: override the rule: one value (or per-axis list) per higher stage,
            i.e. a list of n_stages - 1 entries.
        higher_activation: first-layer activation of stages >= 2 ("sin").
        first_stage: how stage 1 starts. ``"tanh"``: a regular tanh network (kappa = 1),
            as in the papers; ``"sin"``: a sine first layer with ``kappa_hat`` from the
            data's dominant frequency, as a later stage; ``"auto"`` (default): ``"sin"``
            when the data's dominant frequency is above ``sin_above`` cycles per unit of
            the normalized input (a target whose energy sits at a frequency a tanh
            network's spectral bias would leave behind), else ``"tanh"``.
        sin_above: the frequency (cycles per unit of the input mapped to [-1, 1]) above
            which ``first_stage="auto"`` starts with a sine layer (default 1.5, three
            periods over the data's range: on sin(2 pi f x) over 2000 points a tanh
            stage 1 is as good at f = 1 and 200 times worse at f = 2;
            ``benchmarks/beyond_1d.py`` measures it).
        target_rms: stop adding stages once the training RMS residue, relative to RMS(y)
            (the fit works on y / RMS(y)), is at or below this value.
        dtype: torch.float64 (default). torch.float32 is allowed (Fig. 1 uses it)
            but its errors stop near 1e-7; a :class:`Float32Warning` says so.
        device: "auto" (default: a GPU when torch sees one, else the CPU), "cpu",
            "cuda" or a torch.device.
        seed: seed of the first stage; stage n uses seed + n.
        init: "xavier_normal" or "xavier_truncated" (the authors' code).
        progress: progress bars (default: unless MSNN_PROGRESS=0).
        checkpoint: a file path; after each stage the fitted stages are saved there,
            and a later ``fit`` on the same data and settings resumes from it.
        verbose: print one line per stage.
    """

    _record_type = StageRecord
    _fit_call = "fit(x, y)"

    def __init__(
        self,
        *,
        n_stages: int = 4,
        widths: Sequence[int] | Sequence[Sequence[int]] = (20, 20, 20),
        adam_steps: int | Sequence[int] | None = None,
        lbfgs_steps: int | Sequence[int] | None = None,
        schedule: str | Sequence | None = None,
        n_features: int | None = None,
        precision_steps: int | Sequence[int] = 300,
        stage_points: str | None = "auto",
        holdout: float = 0.1,
        min_gain: float = 2.0,
        lr: float = 1e-3,
        kappa_factor: float = 2.0,
        kappa_hat: ArrayLike | None = None,
        higher_activation: str = "sin",
        first_stage: str = "auto",
        sin_above: float = 1.5,
        target_rms: float | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "auto",
        seed: int = 0,
        init: str = "xavier_normal",
        progress: bool | None = None,
        checkpoint: str | os.PathLike | None = None,
        verbose: bool = False,
    ) -> None:
        # scikit-learn's contract: the arguments are stored as given (get_params / clone
        # round-trip); what is derived from them lives in private attributes, made by
        # _validate here (so bad settings fail at once) and again in fit (after set_params)
        self._store_params(locals())
        self._validate()
        if dtype == torch.float32:
            warnings.warn(
                "MultistageRegressor in float32: errors cannot go below about 1e-7 "
                "(single precision); use float64 for machine precision.", Float32Warning, stacklevel=2)
            if self._device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
                warnings.warn(
                    "TF32 matmuls are on (torch.backends.cuda.matmul.allow_tf32): float32 "
                    "errors will stop near 1e-3, not 1e-7.", Float32Warning, stacklevel=2)

    def _validate(self) -> None:
        """Check the settings and derive the per-stage lists, the device and the phases."""
        n = count(self.n_stages, "n_stages", 1)
        one_of(self.stage_points, "stage_points", ("auto", None))
        finite_float(self.holdout, "holdout", minimum=0.0)
        if not self.holdout < 0.5:
            raise ValueError(f"holdout must lie in [0, 0.5), got {self.holdout!r}")
        finite_float(self.min_gain, "min_gain", minimum=1.0)
        schedule = self.schedule
        if schedule is None:
            schedule = "paper" if (self.adam_steps is not None or self.lbfgs_steps is not None) else "precision"
        self._schedule = schedule
        if self.n_features is not None:
            count(self.n_features, "n_features", 1)
        self._adam = _per_stage(5000 if self.adam_steps is None else self.adam_steps, n, "adam_steps")
        self._lbfgs = _per_stage(5000 if self.lbfgs_steps is None else self.lbfgs_steps, n, "lbfgs_steps")
        self._precision = _per_stage(self.precision_steps, n, "precision_steps")
        # every stage's phases, so a bad schedule fails before any training
        self._phases = [schedule_for(schedule, k, adam_steps=self._adam[k], lbfgs_steps=self._lbfgs[k],
                                     precision_steps=self._precision[k], n_stages=n) for k in range(n)]
        # one tuple of hidden widths for every stage, or one per stage; integers >= 1, not truncated
        self._widths = [integers(w, "widths", 1, nonempty=True)
                        for w in per_stage(self.widths, n, "widths", nested=True)]
        positive_float(self.lr, "lr")
        positive_float(self.kappa_factor, "kappa_factor")
        kh = self.kappa_hat
        if kh is not None:
            if (not isinstance(kh, (list, tuple, np.ndarray)) or (isinstance(kh, np.ndarray) and kh.ndim == 0)
                    or len(kh) != n - 1):
                raise ValueError(f"kappa_hat must be None or a list of one entry per higher stage (n_stages - 1 = "
                                 f"{n - 1}), each a number or one per input axis, got {kh!r}")
            for k in kh:
                positive_floats(k, "every entry of kappa_hat")
        one_of(self.higher_activation, "higher_activation", ("sin", "tanh"))
        one_of(self.first_stage, "first_stage", ("auto", "tanh", "sin"))
        positive_float(self.sin_above, "sin_above")
        finite_float(self.target_rms, "target_rms", minimum=0.0, none=True)
        one_of(self.dtype, "dtype", (torch.float64, torch.float32))
        count(self.seed, "seed")
        one_of(self.init, "init", ("xavier_normal", "xavier_truncated"))
        flag(self.progress, "progress", allow_none=True)
        optional_path(self.checkpoint, "checkpoint")
        flag(self.verbose, "verbose")
        self._n = n
        self._device = resolve_device(self.device)
        self._seed = int(self.seed)

    # ------------------------------------------------------------------ data
    def _normalize_x(self, x: np.ndarray) -> np.ndarray:
        return 2.0 * (x - self.x_min_) / (self.x_max_ - self.x_min_) - 1.0

    def _check_x(self, x, name="x") -> np.ndarray:
        x = _to_numpy(x, name)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"{name} must have shape (N,) or (N, d), got {x.shape}")
        return x

    # ------------------------------------------------------------------- fit
    def fit(self, x: ArrayLike, y: ArrayLike) -> "MultistageRegressor":
        """Fit the stages to data ``y`` at inputs ``x`` (numpy or torch, any float dtype)."""
        self._validate()
        x = self._check_x(x)
        y = _to_numpy(y, "y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must have shape (N,), got {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} points but y has {y.shape[0]}")
        if x.shape[0] < 4:
            raise ValueError(f"need at least 4 data points, got {x.shape[0]}")
        self.x_min_, self.x_max_ = x.min(axis=0), x.max(axis=0)
        if np.any(self.x_max_ <= self.x_min_):
            raise ValueError("every input axis must take at least two distinct values")
        if not np.all(np.isfinite(2.0 * (self.x_max_ - self.x_min_))):
            raise ValueError("x spans more than float64 can normalize (max - min overflows on an axis): rescale x")
        if self.kappa_hat is not None:
            for k in self.kappa_hat:
                if len(positive_floats(k, "every entry of kappa_hat")) not in (1, x.shape[1]):
                    raise ValueError(f"every entry of kappa_hat must be one number or one per input axis "
                                     f"({x.shape[1]}), got {k!r}")
        self.y_scale_ = rms(y)  # sqrt(mean(y**2)), safe at any scale
        if self.y_scale_ == 0.0:
            raise ValueError("y is identically zero: nothing to fit")
        self.n_features_in_ = x.shape[1]
        if (self.schedule is None and self._schedule == "precision" and x.shape[1] >= 2
                and all(tuple(w) == (20, 20, 20) for w in self._widths) and self.precision_steps == 300):
            # beyond one dimension the default is the "features" schedule (see schedule); widths
            # or precision_steps set by hand ask for the trained networks of "precision"
            self._schedule = "features"
            self._phases = [schedule_for("features", k) for k in range(self._n)]
        if self.n_features is not None and not any(p.kind == "features" for ph in self._phases for p in ph):
            raise ValueError(f"n_features is the width of a 'features' stage, but this fit's schedule is "
                             f"{self._schedule!r}: pass schedule='features' (in 1D, or with widths or "
                             "precision_steps set, the default is 'precision')")
        xn = self._normalize_x(x)
        yn = y / self.y_scale_
        grid = _Grid(xn)
        self.grid_kind_ = grid.kind

        self._grid, self._xn = grid, xn
        self._heldout = self._draw_heldout(xn)
        self._xt = xt = torch.as_tensor(xn, dtype=self.dtype, device=self._device)
        self._start(yn)  # the stages sum to yn; residues are yn minus their float64 sum
        self._run_stages(xt)
        return self

    # ----------------------------------------------------- the engine's hooks
    def _stop_before(self, n: int, eps: float) -> str | None:
        if n > 0 and self.target_rms is not None and eps <= self.target_rms:
            return f"the residue ({eps:.2e}) is at target_rms"
        if eps == 0.0:
            return "the residue is exactly zero"
        if n > 0 and eps <= ROUND_OFF_FLOOR * float(np.max(np.abs(self._target))):
            # the residue is at the float64 round-off of the data: a stage would fit noise
            return f"the residue ({eps:.2e}) is at float64 round-off"
        return None

    def _stop_after(self, rec: "StageRecord") -> str | None:
        where = f"the {rec.n_heldout} points it did not train on"
        later_differs = rec.index == 0 and rec.activation != self.higher_activation
        if rec.phases and rec.phases[-1]["kind"] == "rejected" and not later_differs:
            # the stage could not improve on its residue: the next one would see the same (unless it
            # is stage 2 after a tanh stage 1, set up from the residue's spectrum instead)
            return (f"rejected, worse than no stage on {where} (RMS {rec.heldout_before:.2e} without it); "
                    "the data resolve no more")
        gain = rec.heldout_gain
        # stage 1 is not judged by its gain: a stage 1 that fitted little (a tanh network on a fast
        # target) leaves a residue that a later stage, set up from its spectrum, can fit
        if rec.index > 0 and rec.n_heldout and gain < self.min_gain:
            if rec.heldout_after <= HELDOUT_ROUND_OFF * float(np.max(np.abs(self._target))):
                # the same stop, but good news: nothing is left between the points but rounding
                return Reached(f"the error on {where} ({rec.heldout_after:.2e} relative to RMS(y)) is at float64 "
                               f"round-off (at most {HELDOUT_ROUND_OFF / np.finfo(np.float64).eps:.0f} ulps of max |y|); "
                               f"the last stage lowered it {gain:.3g}x")
            return (f"it lowered the error on {where} only {gain:.3g}x ({rec.heldout_before:.2e} -> "
                    f"{rec.heldout_after:.2e}, min_gain = {self.min_gain:g}): later stages would fit the "
                    "points, not the function between them; more data, or target_rms, would say where to stop")
        return None

    def _describe(self, rec: "StageRecord") -> str:
        fd = "-" if rec.f_d is None else ", ".join(f"{f:.3g}" for f in rec.f_d)
        return (f"stage {rec.index + 1}: eps = {rec.eps:.3e}, f_d = {fd}, kappa_hat = "
                f"{', '.join(f'{k:.3g}' for k in rec.kappa_hat)}, loss = {rec.final_loss:.3e}, "
                f"RMS after = {rec.rms_after:.3e}, ||w_out||_1 = {rec.output_norm:.3g} ({rec.seconds:.1f} s)")

    def _stage_frequency(self, n: int, residue: np.ndarray):
        """(first activation, f_d per axis, kappa_hat per axis) of stage n (eq. 2.9-2.10)."""
        grid, xn = self._grid, self._xn
        if n == 0:
            if self.first_stage == "tanh" or (self.first_stage == "auto" and grid.kind == "scattered"
                                              and grid.d > 2):
                return "tanh", None, None
            f_d = grid.frequency(xn, residue)
            if self.first_stage == "auto" and max(f_d) <= self.sin_above:
                return "tanh", None, None
            kh = [choose_kappa_hat(max(f_d), min(grid.points_per_axis), self.kappa_factor)] * len(f_d)
            return "sin", f_d, kh
        if self.kappa_hat is not None:
            kh = np.broadcast_to(np.asarray(self.kappa_hat[n - 1], dtype=float), (xn.shape[1],)).tolist()
            # scattered points in d >= 3 have no frequency estimate; with kappa_hat given none is needed
            f_d = grid.frequency(xn, residue) if grid.kind == "uniform" or grid.d <= 2 else None
        else:
            f_d = grid.frequency(xn, residue)
            # one kappa_hat for every axis, from the largest per-axis frequency: a
            # residue whose peak lies on an axis (f_x = 0, say) still varies along
            # that axis at other modes, and kappa_hat ~ 0 would make it unlearnable
            f_max = max(max(f_d), 1e-12)
            kh = [choose_kappa_hat(f_max, min(grid.points_per_axis), self.kappa_factor)] * len(f_d)
        sparse = [(a, f, npts) for a, (f, npts) in enumerate(zip(f_d or [], grid.points_per_axis))
                  if npts < 6 * math.pi * f]
        if sparse:  # one warning per stage, naming every axis it concerns
            axes = "; ".join((f"axis {a + 1}: " if len(f_d) > 1 else "") + f"{npts} points per axis for f_d = "
                             f"{f:.3g} (eq. 2.10 asks N_d > 6 pi f_d = {6 * math.pi * f:.0f})" for a, f, npts in sparse)
            warnings.warn(f"stage {n + 1}: the data are too sparse for the residue's dominant frequency ({axes}); "
                          "the stage may overfit between the points.", SparseDataWarning, stacklevel=5)
        return self.higher_activation, f_d, kh

    def _fit_stage(self, n: int, plan):
        residue, eps = plan
        grid, xn, xt, yn = self._grid, self._xn, self._xt, self._target
        phases = self._phases[n]
        target = torch.as_tensor(residue / eps, dtype=self.dtype, device=self._device)
        drawn = any(p.kind == "features" for p in phases)
        if drawn:
            # a "features" stage: one hidden layer of sine units, drawn by the phase
            act, f_d, kh = "sin", None, None
            xs, ts, xv, tv = self._stage_subset(grid, xt, target, phases, f_d)
            widths = (self.n_features or max(1, min(3 * xs.shape[0] // 4, 1200)),)
        else:
            act, f_d, kh = self._stage_frequency(n, residue)
            xs, ts, xv, tv = self._stage_subset(grid, xt, target, phases, f_d)
            widths = self._widths[n]
        net = StageNetwork(
            xn.shape[1], widths, first_activation=act, kappa_hat=kh,
            seed=self._seed + n, init=self.init, dtype=self.dtype, device=self._device)

        group = RowGroup(xs, lambda u, z, t=ts: u(z) - t, 1.0, "data")
        val = None if xv is None else [RowGroup(xv, lambda u, z, t=tv: u(z) - t, 1.0, "validation")]
        reports = run_phases(net, [group], phases, progress=show_progress(self.progress),
                             desc=f"stage {n + 1}/{self._n}", validation=val,
                             first_order=lambda ph, net=net, target=target: _first_order(
                                 ph, net, lambda: torch.mean((net(xs) - ts) ** 2), self.lr, self.progress,
                                 f"stage {n + 1}/{self._n}"))
        with torch.no_grad():
            un = net(xt).to(torch.float64).cpu().numpy()
            final = float(torch.mean((net(xs) - ts) ** 2))
            if xv is not None:
                held = (eps * float(torch.sqrt(torch.mean(tv.double() ** 2))),
                        eps * float(torch.sqrt(torch.mean((tv - net(xv)).double() ** 2))))
        rms_after = float(np.sqrt(np.mean((yn - (self._train_pred + eps * un)) ** 2)))
        hist_loss = np.concatenate([np.asarray(r.history, dtype=np.float64).reshape(-1) for r in reports
                                    if r.kind in ("adam", "lbfgs")] or [np.zeros(0)])
        rec = StageRecord(
            index=n, eps=eps, eps_data=eps * self.y_scale_, f_d=f_d,
            kappa_hat=net.kappa_hat.tolist(), kappa=net.kappa.double().cpu().tolist(),
            activation=act, widths=widths,
            adam_steps=sum(r.steps for r in reports if r.kind == "adam"),
            lbfgs_iterations=sum(r.extra_iterations for r in reports if r.kind == "lbfgs"),
            lbfgs_evaluations=sum(len(r.history) for r in reports if r.kind == "lbfgs"),
            final_loss=final, loss_history=hist_loss,
            rms_after=rms_after, seconds=sum(r.seconds for r in reports), stopped=reports[-1].stopped,
            phases=[r.summary() for r in reports], output_norm=output_layer_norm(net),
            round_off=eps * round_off(net, xt), n_train=int(xs.shape[0]),
            n_heldout=0 if xv is None else int(xv.shape[0]),
            heldout_before=math.nan if xv is None else held[0], heldout_after=math.nan if xv is None else held[1],
            feature_scale=getattr(net, "feature_scale", None) if drawn else None)
        return rec, net, eps * un

    def _stage_subset(self, grid, xt, target, phases, f_d):
        """(x, target) a stage trains on and (x, target) it validates on (None: no validation).

        ``stage_points="auto"``, 1D uniform data, a schedule with second-order phases, and
        at least 1.25x the points the stage needs: max(1501, 12 pi f_d) points train (every
        point in the outer 2% of [-1, 1], the rest drawn at random) and up to half as many
        of the others validate. Random, not evenly spaced: on an evenly spaced subset a sine first layer
        can fit the points with frequencies that alias between them."""
        heavy = any(p.kind not in ("adam", "lbfgs") for p in phases)
        if self.stage_points != "auto" or not heavy:
            return xt, target, None, None
        f = 0.0 if f_d is None or grid.kind != "uniform" or grid.d != 1 else max(f_d)
        want = max(1501, int(math.ceil(12 * math.pi * f)) + 1)
        if grid.kind != "uniform" or grid.d != 1 or grid.n < want + max(want // 4, 2):
            if self._heldout is None:
                return xt, target, None, None
            ti, vi = (torch.as_tensor(i, device=xt.device) for i in self._heldout)
            return xt[ti], target[ti], xt[vi], target[vi]
        # a random subset (endpoints always in): on an evenly spaced subset a sine first
        # layer can fit the points with frequencies that alias between them
        # and every point in the outer 2% of the interval (where the error of a stage is largest)
        rng = np.random.default_rng(self._seed + 7919 * (1 + len(self.stages_)))
        xs = xt[grid.order, 0].detach().cpu().numpy()
        edge = np.abs(xs) >= 0.98
        inner = grid.order[~edge]
        pick = rng.permutation(inner.size)
        n_tr = max(want - int(edge.sum()), 1)
        tr = np.sort(np.concatenate([grid.order[edge], inner[np.sort(pick[:n_tr])]]))
        va = inner[np.sort(pick[n_tr:n_tr + max(want // 2, 1)])]
        dev = xt.device
        ti, vi = torch.as_tensor(tr, device=dev), torch.as_tensor(va, device=dev)
        return xt[ti], target[ti], xt[vi], target[vi]

    def _draw_heldout(self, xn: np.ndarray):
        """(train, held-out) indices for ``holdout``, or None: a random share of the points
        strictly inside the data's bounding box (so that the held-out points lie between
        training points), the same for every stage of one fit."""
        if self.stage_points != "auto" or self.holdout == 0:
            return None
        inside = np.flatnonzero(np.all(np.abs(xn) < 1.0 - 1e-12, axis=1))
        n_out = int(round(self.holdout * xn.shape[0]))
        n_out = min(n_out, inside.size)
        if n_out < 8 or xn.shape[0] - n_out < 4:
            return None
        rng = np.random.default_rng(self._seed + 104729)
        out = np.sort(rng.choice(inside, n_out, replace=False))
        return np.setdiff1d(np.arange(xn.shape[0]), out), out

    # --------------------------------------------------------------- predict
    def predict_stages(self, x: ArrayLike) -> np.ndarray:
        """Each stage's contribution eps_j u_j(x) in the units of y, shape (n_stages, M)."""
        x = self._fitted_x(x)
        xn = self._normalize_x(x)
        out = np.zeros((len(self.networks_), xn.shape[0]))
        with torch.no_grad():
            for j, (net, rec) in enumerate(zip(self.networks_, self.stages_)):
                for s in range(0, xn.shape[0], 65536):
                    xt = torch.as_tensor(xn[s:s + 65536], dtype=net.dtype, device=net.device)
                    out[j, s:s + 65536] = net(xt).to(torch.float64).cpu().numpy()
                out[j] *= rec.eps * self.y_scale_
        return out

    def _fitted_x(self, x: ArrayLike) -> np.ndarray:
        """``x`` checked against a fitted model: shape (M, d) with the fitted d."""
        self._check_fitted()
        x = self._check_x(x)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"x has {x.shape[1]} features but the model was fitted on {self.n_features_in_}")
        return x

    def predict_longdouble(self, x: ArrayLike, n_stages: int | None = None) -> np.ndarray:
        """The model evaluated in numpy's long double, shape (M,), dtype ``np.longdouble``.

        The same weights as :meth:`~msnn.engine.StagedFit.predict`, with every operation (the input's
        normalization included) in extended precision, so ``predict(x) -
        predict_longdouble(x)`` is the round-off of evaluating the model in its dtype
        (float64, or float32 for a float32 model) and ``predict_longdouble(x) - y`` the
        model's error without it. On x86 numpy's longdouble is 80-bit (about 1e-19), on
        some platforms quad precision; where it is float64 itself (Windows, macOS on arm64)
        the two differ only by the order of operations, and measure nothing.
        """
        x = self._fitted_x(x)
        k = self._stage_count(n_stages)
        ld = np.longdouble
        lo, hi = np.asarray(self.x_min_, dtype=ld), np.asarray(self.x_max_, dtype=ld)
        xn = ld(2) * (x.astype(ld) - lo) / (hi - lo) - ld(1)
        out = np.zeros(x.shape[0], dtype=ld)
        for net, rec in zip(self.networks_[:k], self.stages_[:k]):
            out += evaluate(net, xn, ld) * (ld(rec.eps) * ld(self.y_scale_))
        return out

    def rms_error(self, x: ArrayLike, y: ArrayLike, n_stages: int | None = None) -> float:
        """RMS of y - predict(x) in the units of y."""
        y = _to_numpy(y, "y")
        return rms(y - self.predict(x, n_stages))

    def power_law_points(self, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``(eps, f_d)`` of every residue, for the power law f_d ~ eps^(-alpha) (eq. 2.11, Fig. 5e).

        The residues fed to stages 2, 3, ... (their RMS ``eps_data`` and the dominant
        frequency each stage was built from), then the residue ``y - predict(x)`` left
        after the last stage, its RMS and its dominant frequency. ``x`` must be a uniform
        1D grid (its spacing is ``x[1] - x[0]``); the counterpart for PINNs is
        :meth:`msnn.multistage_pinn.MultistagePINN.power_law_points`.

        Raises:
            ValueError: 2D inputs, or fewer than two points.
        """
        self._check_fitted()
        x = self._check_x(x)
        if x.shape[1] != 1 or x.shape[0] < 2:
            raise ValueError(f"power_law_points needs a uniform 1D grid, got inputs of shape {x.shape}")
        eps = [s.eps_data for s in self.stages_[1:]]
        fds = [s.f_d[0] for s in self.stages_[1:]]
        res = _to_numpy(y, "y") - self.predict(x)
        eps.append(float(np.sqrt(np.mean(res ** 2))))
        fds.append(dominant_frequency(res, x[1, 0] - x[0, 0]))
        return np.array(eps), np.array(fds)

    @property
    def n_weights_(self) -> int:
        """Total weights (no biases) over the fitted stages."""
        self._check_fitted()
        return sum(net.n_weights() for net in self.networks_)

    def summary(self) -> list[dict]:
        """One dict per stage (eps, f_d, kappa_hat, steps, loss), for tables."""
        self._check_fitted()
        rows = []
        for r in self.stages_:
            d = asdict(r)
            d.pop("loss_history")
            d["steps"] = r.steps
            rows.append(d)
        return rows

    # ------------------------------------------------------------ checkpoint
    def _checkpoint_settings(self) -> tuple[dict, dict, tuple]:
        common = dict(lr=self.lr, kf=self.kappa_factor, act=self.higher_activation, dtype=str(self.dtype),
                      seed=self._seed, init=self.init, stage_points=self.stage_points, holdout=self.holdout,
                      first=self.first_stage, sin_above=self.sin_above)
        kh = [None] + ([None] * (self._n - 1) if self.kappa_hat is None else list(self.kappa_hat))
        per_stage = dict(widths=self._widths, adam=self._adam, lbfgs=self._lbfgs, kappa_hat=kh,
                         phases=[[str(p) for p in ph] for ph in self._phases])
        if self.n_features is not None:  # (only then: other checkpoints keep their keys)
            common["n_features"] = self.n_features
        return common, per_stage, (self._xn, self._target)

    def _network_for(self, rec: "StageRecord", xt: torch.Tensor) -> StageNetwork:
        return StageNetwork(xt.shape[1], tuple(rec.widths), first_activation=rec.activation, kappa_hat=rec.kappa_hat,
                            seed=self._seed + rec.index, init=self.init, dtype=self.dtype, device=self._device)


def _first_order(ph: Phase, net, loss_fn, lr: float, progress, desc: str) -> tuple:
    """An "adam" or "lbfgs" phase through :func:`msnn.training.train` (the paper's optimizers)."""
    h: TrainHistory = train(net, loss_fn, adam_steps=ph.steps if ph.kind == "adam" else 0,
                            lbfgs_steps=ph.steps if ph.kind == "lbfgs" else 0, lr=ph.opt("lr", lr),
                            progress=show_progress(progress), desc=desc)
    before = float(h.loss[0]) if len(h.loss) else math.nan
    return before, float(np.sum(h.final_loss)), h.seconds, h.stopped, h.loss, h.lbfgs_iterations


