"""Algorithm 4 of Wang & Lai (2024): multi-stage PINNs to machine precision.

The solution is built in stages (eq. 3.41-3.43),

    u_k^(c)(x) = u_(k-1)^(c)(x) + eps_k u_k(x; kappa_k),

and every stage is trained on the *original* equation with the earlier stages
frozen, which is the same as training the new network on the linearized
higher-stage equation (3.13) whose source is the previous residue. The settings of
stage k are read from the residue r_k of the stages before it, never typed in:

- the magnitude prefactor eps_k = eps_r / (eps_beta prod_i [2 pi f_d^(r, x_i)]^(m_i))
  (eq. 3.9, 3.17, 3.19; :func:`msnn.pinn_training.estimate_next_stage`);
- the scale factor kappa_hat_k = factor * pi * f_d^(r) per input axis (eq. 3.18, 2.9);
- the equation weight gamma_k from eq. (3.32), gamma <= L_d / (L_e + L_d), with the
  initial losses L_d ~ eps_k^2 and L_e ~ eps_r^2 of the new stage, or from
  Algorithm 3 (:func:`msnn.pinn_training.algorithm3`);
- the gPINN weight gamma_g = ||r||^2 / ||grad r||^2 of the residue (eq. 3.39-3.40).

:class:`MultistagePINN` is the driver; chapter ``ch-multistage-pinn`` of the book
runs it on eq. (3.3) and on the diffusion equation (3.44).

Example (eq. 3.3, two stages, a few seconds on a CPU)::

    from msnn.pinn_problems import ode_3_3
    sol = MultistagePINN(ode_3_3(), orders=(1,), n_stages=2, adam_steps=[1000, 1000],
                         lbfgs_steps=[500, 1000], gamma=[0.23, None], gpinn=True).solve()
    sol.records_[-1].error_rms      # rms error against e^x - x - 1 after two stages
"""
from __future__ import annotations

import copy
import math
import os
import time
import warnings
from typing import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch

from ._common import NotFittedError, StageWarning, count as _count, per_stage, resolve_device
from ._common import finite_float, flag, float64_array, integers, one_of, optional_path, positive_float, positive_floats
from .engine import StagedFit
from .phases import ROUND_OFF_FLOOR, output_layer_norm, round_off, schedule_for
from .pinn import RAR, PINNProblem, StagedSolution
from .pinn_stage import PINNStageRecord, is_linear, second_order_phases
from .pinn_training import algorithm3, estimate_next_stage, gamma_bound, magnitude_estimate, residual_grid, train_pinn
from .spectrum import dominant_frequency, dominant_frequency_2d

__all__ = ["MultistagePINN"]

# eq. (3.44) and its finite-difference estimate live with the other problems (msnn.problems)
from .problems import diffusion_3_44, finite_difference_points  # noqa: E402,F401  (re-exported)

#: The most points of the residue grid a second-order stage is validated on (a 2D grid of
#: 128 x 128 fits; a finer one is thinned evenly).
VALIDATION_GRID_MAX = 2 ** 15
#: The same for a "features" stage, whose 1000 units make every validation point cost 50x more.
FEATURES_GRID_MAX = 2 ** 12

#: The residue grid's points per axis when ``n_grid`` is not given, by input dimension: 2501 in
#: 1D, about 2501^(2/d) beyond (a 2D default of 2501 per axis was 6.25 million points, most of a
#: 2D stage's time and several GB of memory).
DEFAULT_N_GRID = {1: 2501, 2: 257, 3: 41}


class MultistagePINN(StagedFit):
    """Algorithm 4: a PINN solved in stages, each set up from the previous residue.

    Implements Algorithm 4 of Wang & Lai (2024), eq. (3.41)-(3.43). Stage 1 is a
    regular network (tanh first layer) scaled by ``eps0``; stage k >= 2 has a sin
    first layer with kappa_hat_k and prefactor eps_k from the residue of the stages
    before it (eq. 3.18-3.19), and only its own parameters train.

    Every per-stage option takes one value (all stages) or a list of ``n_stages``.
    Fewer stages are trained when the next stage's eps (eq. 3.19) reaches the float64
    round-off of the solution, or when a stage did worse on its validation points than
    no stage at all (it is kept with a zero output layer).

    Why ``solve()`` and not ``fit(x, y)``: there are no data to fit, the problem
    (equation, boundary data, domain) is given to the constructor and the collocation
    points are drawn by the solver. The constructor arguments are stored as given
    (``get_params`` / ``set_params``, as in scikit-learn); ``solve`` validates them again.

    Args:
        problem: the equation (:class:`msnn.pinn.PINNProblem`), normalized so that its
            largest term is O(1) (Algorithm 4's prerequisite).
        orders: multi-index of the dominant derivative for eq. (3.19), e.g. ``(1,)`` for
            eq. (3.3) and ``(0, 2)`` for u_xx with inputs (t, x) (see
            :func:`msnn.pinn_training.magnitude_estimate`).
        eps_beta: RMS of the dominant derivative's coefficient (eq. 3.17), e.g. 0.5 for
            (1/2) u_xx.
        n_stages: number of stages.
        widths: hidden widths per stage (one tuple, or one per stage).
        adam_steps, lbfgs_steps: the paper schedule's budget per stage (Adam first, then
            L-BFGS; 5000 and 0 by default).
        schedule: ``"paper"`` (Adam then L-BFGS), ``"precision"`` (Adam 1000 on the
            PINN loss, then variable-projection Levenberg-Marquardt with the output layer
            solved exactly for an equation linear in u, or Levenberg-Marquardt on every
            weight for a nonlinear one; in 1D on
            ``max(n_collocation, 12 kappa_hat, 2 n_parameters)`` collocation points drawn
            at random, the ends included, in nD on the stage's last collocation set topped
            up to 2 n_parameters; the parameters kept are the best on a second random
            draw and on the residue grid of ``n_grid`` points per axis), or a list of phases (see
            :mod:`msnn.phases`; "adam" and "lbfgs" phases run first, through
            :func:`msnn.pinn_training.train_pinn`), or ``"features"`` for an equation linear
            in u: each stage is one hidden layer of ``n_features`` sine units whose
            frequencies are drawn at random in a box, at the scale (among four tied to the
            collocation points' resolution) that is best on the validation points, and
            whose output layer is solved exactly on at least 3 n_features collocation
            points (no iteration; :mod:`msnn.phases.features`). Default: "paper" when
            ``adam_steps`` or ``lbfgs_steps`` is given; else "features" for a linear
            equation in two or more dimensions (unless ``widths``, ``precision_steps`` or
            ``kappa_hat0`` is set, which shape trained stages), "precision" otherwise.
        precision_steps: the Levenberg-Marquardt iterations of the "precision" schedule
            (at most; it stops when the loss stops falling).
        n_features: the hidden width of a "features" stage (default 1000).
        lr: Adam learning rate per stage.
        lr_schedule: optional factor on lr per Adam step (one callable or one per stage).
        n_collocation: collocation points per stage.
        resample_every: re-draw the points every this many Adam steps (0: never).
        sampler: "lhs" or "uniform".
        margin: widen the sampling box by this fraction (the authors' 1D code: 0.01).
        extra_points: points always in the collocation set (e.g. the endpoints).
        gamma: equation weight per stage in (0, 1); ``None`` for eq. (3.32) with the new
            stage's initial losses L_d ~ eps_k^2 and L_e ~ eps_r^2; ``"algorithm3"`` for
            Algorithm 3 (``algorithm3_n0`` Adam steps per round).
        gpinn: use the gradient-enhanced loss (eq. 3.38); per stage.
        gamma_g: gPINN weight per stage; ``None`` for eq. (3.40) on the current residue.
        rar: residual-based adaptive refinement per stage (:class:`msnn.pinn.RAR` or None).
        eps0: magnitude prefactor of stage 1 (1 for a normalized equation).
        kappa_hat0: modified scale factor of stage 1 (None: a regular network).
        factor: kappa_hat = factor * pi * f_d (2 by default, inside eq. 2.9's bound).
        n_grid: points per axis of the uniform grid for residues, spectra and errors; None
            (the default) sizes it by dimension (``DEFAULT_N_GRID``: 2501 in 1D, 257 in 2D,
            41 in 3D), so that the grid stays near 10^6 points or below.
        pad: zero-padding factor of the spectra.
        init: weight initialization of the stage networks.
        dtype: float64 (the default; machine precision needs it).
        device: "auto", "cpu", "cuda" or a torch.device.
        seed: seed of stage 1's network and collocation draws (stage k uses seed + k - 1).
        progress: progress bars (default: unless MSNN_PROGRESS=0).
        checkpoint: a file; after every stage the solution is saved there, and a run
            with the same settings resumes from it.

    Fitted attributes (after :meth:`solve`), kept by the stage engine (:mod:`msnn.engine`):
        model_: the :class:`msnn.pinn.StagedSolution`.
        stages_: one :class:`~msnn.pinn_stage.PINNStageRecord` per stage trained (``records_`` is the same list).
        networks_: the stage networks (those of ``model_``).
        stopped_: why fewer than ``n_stages`` stages were trained ("" if all were).
        runs_: the :class:`msnn.pinn_training.PINNRun` of every stage trained in this process.

    Raises:
        ValueError: non-positive counts, a per-stage list of the wrong length, gamma outside
            (0, 1), a float32 dtype, or orders that do not match the problem's dimension.
    """

    def __init__(self, problem: PINNProblem, *, orders: Sequence[int] | Sequence[Sequence[int]],
                 eps_beta: float = 1.0, n_stages: int = 3,
                 widths: Sequence[int] | Sequence[Sequence[int]] = (20, 20, 20),
                 adam_steps: int | Sequence[int] | None = None, lbfgs_steps: int | Sequence[int] | None = None,
                 schedule: str | Sequence | None = None, precision_steps: int | Sequence[int] = 300,
                 n_features: int | None = None, lr: float | Sequence[float] = 1e-3,
                 lr_schedule: Callable[[int], float] | Sequence[Callable[[int], float] | None] | None = None,
                 n_collocation: int | Sequence[int] = 201, resample_every: int | Sequence[int] = 100,
                 sampler: str = "lhs", margin: float = 0.0, extra_points: np.ndarray | None = None,
                 gamma: float | str | Sequence[float | str | None] | None = None,
                 gpinn: bool | Sequence[bool] = False, gamma_g: float | Sequence[float | None] | None = None,
                 rar: RAR | Sequence[RAR | None] | None = None, eps0: float = 1.0,
                 kappa_hat0: float | Sequence[float] | None = None, factor: float = 2.0, n_grid: int | None = None,
                 pad: int = 1, algorithm3_n0: int = 500, init: str = "xavier_normal",
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "auto", seed: int = 0,
                 progress: bool | None = None, checkpoint: str | os.PathLike | None = None) -> None:
        # the arguments stored as given (get_params / clone); derived values in _validate
        self._store_params(locals())
        self._validate()

    def _validate(self) -> None:
        """Check the settings; derive the per-stage lists, the phases, the device and the checkpoint file."""
        problem, orders, eps_beta, n_stages = self.problem, self.orders, self.eps_beta, self.n_stages
        widths, adam_steps, lbfgs_steps, schedule = self.widths, self.adam_steps, self.lbfgs_steps, self.schedule
        precision_steps, lr, lr_schedule, n_collocation = (self.precision_steps, self.lr, self.lr_schedule,
                                                           self.n_collocation)
        resample_every, sampler, gamma, gpinn, gamma_g, rar = (self.resample_every, self.sampler, self.gamma,
                                                               self.gpinn, self.gamma_g, self.rar)
        eps0, factor, dtype = self.eps0, self.factor, self.dtype
        if not isinstance(problem, PINNProblem):
            raise ValueError(f"problem must be a PINNProblem, got {type(problem).__name__}")
        n = _count(n_stages, "n_stages", 1)
        self._n = n
        try:
            m = np.atleast_1d(np.asarray(orders))
            terms = [orders] if np.ndim(orders) <= 1 else list(orders)
        except ValueError:  # ragged
            raise ValueError(f"orders must be a multi-index of integers >= 0 (one per input axis) or a list of "
                             f"them, got {orders!r}") from None
        for t in terms:
            if np.atleast_1d(np.asarray(t)).size != problem.dim:
                raise ValueError(f"orders {list(np.atleast_1d(t))} need one entry per input axis ({problem.dim})")
            integers(np.atleast_1d(np.asarray(t)).tolist(), "orders (every multi-index)", 0)
        if m.size == 0 or np.any(np.asarray(terms) < 0) or np.sum(terms) <= 0:
            raise ValueError(f"orders must be non-negative with at least one derivative, got {orders!r}")
        self._eps_beta = positive_float(eps_beta, "eps_beta")
        if not (isinstance(dtype, torch.dtype) and dtype == torch.float64):
            raise ValueError(f"dtype must be torch.float64, got {dtype!r}: MultistagePINN runs in float64 (machine "
                             "precision is not reachable in a lower precision: errors stop near its epsilon)")
        self._widths = [integers(w, "widths", 1, nonempty=True) for w in per_stage(widths, n, "widths", nested=True)]
        if schedule is None:
            trained = (any(tuple(w) != (20, 20, 20) for w in self._widths) or precision_steps != 300
                       or self.kappa_hat0 is not None)  # set by hand: they shape trained stages
            schedule = "paper" if (adam_steps is not None or lbfgs_steps is not None) else (
                "features" if problem.dim >= 2 and not trained and is_linear(problem) else "precision")
        self._schedule = schedule
        self._n_features = 1000 if self.n_features is None else _count(self.n_features, "n_features", 1)
        if schedule == "features" and not is_linear(problem):
            raise ValueError(f"schedule='features' solves each stage's output layer exactly, which needs an equation "
                             f"linear in u; {problem.name} is not: use schedule='precision' (Gauss-Newton on every "
                             "weight) or 'paper'")
        self._adam = [_count(v, "adam_steps") for v in per_stage(5000 if adam_steps is None else adam_steps,
                                                                        n, "adam_steps")]
        self._lbfgs = [_count(v, "lbfgs_steps") for v in per_stage(0 if lbfgs_steps is None else lbfgs_steps,
                                                                          n, "lbfgs_steps")]
        self._precision = [_count(v, "precision_steps") for v in per_stage(precision_steps, n,
                                                                                 "precision_steps")]
        self._phases = [schedule_for(schedule, k, adam_steps=self._adam[k], lbfgs_steps=self._lbfgs[k],
                                     precision_steps=self._precision[k], n_stages=n) for k in range(n)]
        for k, ph in enumerate(self._phases):
            first = [p.kind for p in ph if p.kind in ("adam", "lbfgs")]
            if first != sorted(first) or any(p.kind in ("adam", "lbfgs") for p in ph[len(first):]):
                raise ValueError("in a PINN stage the 'adam' and 'lbfgs' phases come first (they run through "
                                 f"train_pinn), then the least-squares phases; stage {k + 1} has {[str(p) for p in ph]}")
            if sum(p.steps for p in ph) == 0 and not any(p.kind in ("output-lstsq", "features") for p in ph):
                raise ValueError("every stage needs some training: adam_steps + lbfgs_steps > 0, or phases with steps")
        for k, ph in enumerate(self._phases):
            self._adam[k] = sum(p.steps for p in ph if p.kind == "adam")
            self._lbfgs[k] = sum(p.steps for p in ph if p.kind == "lbfgs")
        if self.n_features is not None and not any(p.kind == "features" for ph in self._phases for p in ph):
            raise ValueError(f"n_features is the width of a 'features' stage, but the schedule is {schedule!r}: "
                             "pass schedule='features' (the default only for a linear equation in two or more "
                             "dimensions with widths, precision_steps and kappa_hat0 left alone)")
        self._lr = [positive_float(v, "lr") for v in per_stage(lr, n, "lr")]
        self._lr_schedule = per_stage(lr_schedule, n, "lr_schedule")
        for f in self._lr_schedule:
            if f is not None and not callable(f):
                raise ValueError(f"lr_schedule must be None or a callable (Adam step -> factor on lr), one or one "
                                 f"per stage, got {f!r}")
        self._n_c = [_count(v, "n_collocation", 1) for v in per_stage(n_collocation, n, "n_collocation")]
        self._resample = [_count(v, "resample_every") for v in per_stage(resample_every, n, "resample_every")]
        one_of(sampler, "sampler", ("lhs", "uniform"))
        self._margin = finite_float(self.margin, "margin", minimum=0.0)
        if self.extra_points is not None:
            pts = float64_array(self.extra_points, "extra_points")
            if not (pts.ndim == 2 and pts.shape[1] == problem.dim) and not (pts.ndim == 1 and problem.dim == 1):
                raise ValueError(f"extra_points must be None or points of shape (M, {problem.dim}), got shape "
                                 f"{pts.shape}")
        self._gammas = per_stage(gamma, n, "gamma")
        for g in self._gammas:
            if g is None or (isinstance(g, str) and g == "algorithm3"):
                continue
            try:
                finite_float(g, "gamma", above=0.0, below=1.0)
            except ValueError:
                raise ValueError(f"gamma must lie in (0, 1), be None (eq. 3.32) or 'algorithm3', got {g!r}") from None
        self._gpinn = [flag(v, "gpinn") for v in per_stage(gpinn, n, "gpinn")]
        self._gamma_g = per_stage(gamma_g, n, "gamma_g")
        for g in self._gamma_g:
            finite_float(g, "gamma_g", minimum=0.0, none=True)  # None: eq. (3.40)
        self._rar = per_stage(rar, n, "rar")
        for r in self._rar:
            if r is not None and not isinstance(r, RAR):
                raise ValueError(f"rar must be a msnn.pinn.RAR or None, got {type(r).__name__}")
        self._eps0 = positive_float(eps0, "eps0")
        if self.kappa_hat0 is not None and len(positive_floats(self.kappa_hat0, "kappa_hat0")) not in (1, problem.dim):
            raise ValueError(f"kappa_hat0 must be None, a finite number > 0 or one per input axis ({problem.dim}), "
                             f"got {self.kappa_hat0!r}")
        self._factor = finite_float(factor, "factor", above=1.0)  # kappa_hat > pi f_d (eq. 2.9)
        self._n_grid = (DEFAULT_N_GRID.get(self.problem.dim, 17) if self.n_grid is None
                        else _count(self.n_grid, "n_grid", 16))
        _count(self.pad, "pad", 1)
        _count(self.algorithm3_n0, "algorithm3_n0", 10)
        one_of(self.init, "init", ("xavier_normal", "xavier_truncated"))
        _count(self.seed, "seed")
        flag(self.progress, "progress", allow_none=True)
        optional_path(self.checkpoint, "checkpoint")
        self._device = resolve_device(self.device)
        self._seed = int(self.seed)

    # ------------------------------------------------------------ diagnostics
    def _grid(self, stride: int = 1):
        """The uniform residue grid (every ``stride``-th point per axis): axes and points."""
        axes = [np.linspace(lo, hi, self._n_grid)[::stride] for lo, hi in self.problem.domain]
        pts = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], 1)
        return axes, pts

    def _validation_grid(self, most: int = VALIDATION_GRID_MAX) -> torch.Tensor:
        """The residue grid of :meth:`_grid` as a tensor, every s-th point per axis so that at
        most ``most`` points remain (the whole grid in the chapters' settings)."""
        s = 1
        while len(range(0, self._n_grid, s)) ** self.problem.dim > most:
            s += 1
        _, pts = self._grid(s)
        return torch.as_tensor(pts, dtype=self.dtype, device=self._device)

    def _frequency(self, values: np.ndarray, axes) -> list:
        spacing = [a[1] - a[0] for a in axes]
        if self.problem.dim == 1:
            return [dominant_frequency(values.ravel(), spacing[0], pad=self.pad)]
        if self.problem.dim == 2:
            return list(dominant_frequency_2d(values.reshape(len(axes[0]), len(axes[1])), tuple(spacing),
                                              pad=self.pad).per_axis)
        raise ValueError(f"frequencies need 1 or 2 input dimensions, got {self.problem.dim}")

    def error(self, n_stages: int | None = None):
        """``(axes, e)``: the error u_g - u^(c) on the uniform grid (shape (n,) or (n, n)).

        Raises ValueError if the problem has no exact solution.
        """
        self._check_fitted()
        if self.problem.exact is None:
            raise ValueError("the problem has no exact solution")
        axes, pts = self._grid()
        e = self.problem.exact(pts) - self.model_.predict(pts, n_stages)
        return axes, e.reshape([len(a) for a in axes]) if self.problem.dim > 1 else e

    def residue(self, n_stages: int | None = None):
        """``(axes, r)``: the equation residue of the first ``n_stages`` stages on the uniform grid."""
        self._check_fitted()
        if n_stages is None or n_stages == self.model_.n_stages:
            return residual_grid(self.problem, self.model_, self._n_grid)
        return residual_grid(self.problem, _Truncated(self.model_, n_stages), self._n_grid)

    _record_type = PINNStageRecord
    _fit_call = "solve()"

    @property
    def records_(self) -> list:
        """The stage records (the engine's ``stages_``)."""
        if not hasattr(self, "stages_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call {self._fit_call} first")
        return self.stages_

    # ------------------------------------------------------------ the loop
    def _gamma(self, k: int, eps: float, eps_r: float, run_kwargs: dict) -> tuple[float, str]:
        g = self._gammas[k]
        if g is None:
            # eq. (3.32): the new stage starts with L_d ~ eps_k^2 (its own output scale at the
            # data points) and L_e ~ eps_r^2 (the residue it has to cancel)
            if eps_r == 0.0:  # a homogeneous equation at u = 0: the bound is 1, any gamma in (0, 1) meets it
                return 0.5, "eq. 3.32 (no residue: 1/2)"
            return gamma_bound(eps ** 2, eps_r ** 2), "eq. 3.32"
        if g == "algorithm3":
            spec = self._stage_spec(k)

            def fresh():
                m = self._rebuild(k)  # earlier stages as trained, a fresh stage k
                m.add_stage(spec["eps"], widths=self._widths[k], kappa_hat=spec["kappa_hat"], seed=self._seed + k,
                            init=self.init)
                return m

            a3 = algorithm3(self.problem, fresh, gamma0=gamma_bound(eps ** 2, eps_r ** 2), n0=self.algorithm3_n0,
                            **{kk: v for kk, v in run_kwargs.items() if kk not in ("adam_steps", "lbfgs_steps")})
            return a3.gamma, "algorithm 3"
        return float(g), "given"

    def _estimate(self, k: int):
        """eq. (3.18)-(3.19) on the current residue; an axis of the dominant derivative whose
        f_d reads 0 (a residue with no oscillation along it) takes the largest frequency of the
        other axes, so that eq. (3.19) stays finite."""
        try:
            return estimate_next_stage(self.problem, self.model_, self.orders, n_grid=self._n_grid,
                                       eps_beta=self._eps_beta, factor=self._factor, widths=self._widths[k], pad=self.pad)
        except ValueError:
            est = estimate_next_stage(self.problem, self.model_, [0] * self.problem.dim, n_grid=self._n_grid,
                                      eps_beta=1.0, factor=self._factor, widths=self._widths[k], pad=self.pad)
            if max(est.f_d) <= 0:
                # no oscillation on any axis (a residue of rounding noise, whose spectrum peaks
                # at zero): one cycle over the domain, the lowest frequency the grid reads
                est.f_d = [1.0 / float(hi - lo) for lo, hi in self.problem.domain]
            est.eps = _magnitude(est.eps_r, est.f_d, self.orders, self._eps_beta)
            return est

    def _stage_spec(self, k: int) -> dict:
        return self._specs[k]

    def _rebuild(self, k: int) -> StagedSolution:
        """A copy of the first k trained stages (frozen), on the same device."""
        m = StagedSolution(self.problem.dim, dtype=self.dtype, device=self._device)
        for j in range(k):
            rec = self.records_[j]
            m.add_stage(rec.eps, widths=rec.widths, kappa_hat=rec.kappa_hat, seed=self._seed + j, init=self.init)
        m.load_state_dict({kk: v for kk, v in self.model_.state_dict().items()
                           if int(kk.split(".")[1]) < k})
        for net in m.stages:
            net.requires_grad_(False)
        return m

    def solve(self) -> "MultistagePINN":
        """Run Algorithm 4 for ``n_stages`` stages; returns ``self``."""
        self._validate()
        self._start(None)  # the stages are fitted to an equation, not to data
        self.model_ = StagedSolution(self.problem.dim, dtype=self.dtype, device=self._device)
        self.runs_, self._specs, self._given = [], {}, None
        self._diagnostics()
        self._run_stages(None)
        return self

    def restage(self, stage: int, *, eps: float | None = None, f_d: Sequence[float] | None = None) -> "MultistagePINN":
        """A copy of this solution with stage ``stage`` trained afresh from given settings.

        The stages before it are kept as trained (frozen), the later ones are dropped, and
        the new stage gets the magnitude ``eps`` and/or the dominant frequency ``f_d`` (one
        value per input axis; kappa_hat = factor * pi * f_d) in place of those read off the
        residue (eq. 3.18-3.19). Everything else (seed, budget, gamma from eq. 3.32 with the
        new eps, gamma_g, points) is as in :meth:`solve`. Meant for experiments on what a
        stage should be given, e.g. a magnitude from the error the residue implies
        (chapter 7). The copy has no checkpoint.

        Raises:
            ValueError: not solved, ``stage`` outside 2..(stages trained), neither setting
                given, a non-positive or non-finite eps, or f_d of the wrong length or sign.
        """
        self._check_fitted()
        n_done = len(self.records_)
        if isinstance(stage, bool) or not isinstance(stage, (int, np.integer)) or not 2 <= stage <= n_done:
            raise ValueError(f"stage must be an integer from 2 to {n_done} (the stages trained), got {stage!r}")
        if eps is None and f_d is None:
            raise ValueError("give eps, f_d or both (otherwise the stage would be the one solve() trained)")
        if eps is not None and not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be finite and positive, got {eps}")
        if f_d is not None:
            f_d = [float(v) for v in np.atleast_1d(np.asarray(f_d, dtype=np.float64))]
            if len(f_d) != self.problem.dim or not all(math.isfinite(v) and v > 0 for v in f_d):
                raise ValueError(f"f_d needs {self.problem.dim} finite positive frequencies, got {f_d}")
        k = int(stage) - 1
        new = type(self)(**{**self.get_params(), "checkpoint": None})
        new._validate()
        new._start(None)
        new.model_ = self._rebuild(k)
        new.stages_, new.networks_ = copy.deepcopy(self.records_[:k]), list(new.model_.stages)
        new.runs_, new._specs, new._given = [], {}, {"eps": eps, "f_d": f_d}
        new._diagnostics()
        new._run_stages(None, k, k + 1)
        return new

    # ----------------------------------------------------- the engine's hooks
    def _diagnostics(self) -> None:
        """The residue grid (axes, points) and the exact solution there, once per solve."""
        p = self.problem
        self._axes, self._pts = self._grid()
        self._exact = p.exact(self._pts) if p.exact is not None else None

    def _plan_stage(self, k: int):
        """Steps 3-4 of Algorithm 4: the residue of the stages so far (the source for stage 1)
        sets eps_k and kappa_k (eq. 3.18-3.19); ``_given`` replaces them (:meth:`restage`)."""
        pts = self._pts
        u_max = float(np.max(np.abs(self.model_.predict(pts)))) if k > 0 else 0.0
        t0 = time.perf_counter()
        est = self._estimate(k)
        given = self._given
        if given is not None:
            if given["eps"] is not None:
                est.eps = float(given["eps"])
            if given["f_d"] is not None:
                est.f_d = list(given["f_d"])
                est.kappa_hat = [self._factor * math.pi * v for v in est.f_d]
        if k == 0:
            eps, kh = self._eps0, self.kappa_hat0
        else:
            eps, kh = est.eps, list(est.kappa_hat)
            if eps <= ROUND_OFF_FLOOR * u_max:
                # the next stage's error magnitude (eq. 3.19) is at the float64 round-off of
                # the solution: its residue is rounding noise, and a stage would fit noise
                return (f"its eps = {eps:.1e} is at the float64 round-off of the solution "
                        f"(max |u| = {u_max:.2g})")
        self._specs[k] = {"eps": eps, "kappa_hat": kh}
        return est, eps, kh, t0

    def _fit_stage(self, k: int, plan):
        """Steps 5-8 of Algorithm 4: the weights, the ansatz with earlier stages frozen, training."""
        est, eps, kh, t0 = plan
        p = self.problem
        axes, pts, exact = self._axes, self._pts, self._exact
        # step 7: gPINN weight from eq. (3.40) on the current residue
        if self._gpinn[k]:
            gg = self._gamma_g[k]
            if gg is None:
                _, r = residual_grid(p, self.model_, self._n_grid)
                _, gr = residual_grid(p, self.model_, self._n_grid, gradient_norm=True)
                gg = float(np.sum(r ** 2) / max(np.sum(gr ** 2), 1e-300))
            gg = float(gg)
        else:
            gg = 0.0
        run_kwargs = dict(gamma_g=gg, n_collocation=self._n_c[k], sampler=self.sampler,
                          resample_every=self._resample[k], adam_steps=self._adam[k],
                          lbfgs_steps=self._lbfgs[k], lr=self._lr[k], margin=self._margin,
                          rar=self._rar[k], extra_points=self.extra_points, seed=self._seed + k,
                          lr_schedule=self._lr_schedule[k], progress=self.progress)
        gamma, source = self._gamma(k, eps, est.eps_r, run_kwargs)
        # steps 5-6: the ansatz u_k^(c) = u_(k-1)^(c) + eps_k u_k(x; kappa_k), earlier stages frozen
        drawn = self._drawn(k)
        if drawn:  # one hidden layer of sine units, drawn by the "features" phase
            net = self.model_.add_stage(eps, widths=(self._n_features,), first_activation="sin", seed=self._seed + k,
                                        init=self.init)
        else:
            net = self.model_.add_stage(eps, widths=self._widths[k], kappa_hat=kh, seed=self._seed + k,
                                        init=self.init)
        # step 8: train on the original equation
        run = train_pinn(p, self.model_, gamma=gamma, desc=f"stage {k + 1}", **run_kwargs)
        reports = self._second_order(k, net, run, gamma, gg, kh)
        self.runs_.append(run)
        _, r = residual_grid(p, self.model_, self._n_grid)
        rec = PINNStageRecord(
            stage=k + 1, eps=float(eps), eps_r=est.eps_r, f_d=[float(v) for v in est.f_d],
            kappa_hat=None if kh is None else [float(v) for v in np.atleast_1d(kh)],
            gamma=float(gamma), gamma_g=gg, gamma_source=source, widths=tuple(net.widths),
            n_weights=net.n_weights(biases=True), loss_d=run.loss_d, loss_e=run.loss_e, loss_g=run.loss_g,
            adam_steps=run.history.adam_steps, lbfgs_iterations=run.history.lbfgs_iterations,
            lbfgs_evaluations=run.history.lbfgs_evaluations,
            residue_rms=float(np.sqrt(np.mean(r ** 2))), residue_f_d=self._frequency(r, axes),
            phases=[rep.summary() for rep in reports], output_norm=output_layer_norm(net),
            round_off=float(eps) * round_off(net, torch.as_tensor(pts, dtype=self.dtype, device=self._device)),
            feature_scale=getattr(net, "feature_scale", None) if drawn else None)
        if exact is not None:
            e = exact - self.model_.predict(pts)
            rec.error_rms = float(np.sqrt(np.mean(e ** 2)))
            rec.error_max = float(np.max(np.abs(e)))
            rec.error_f_d = self._frequency(e, axes)
        rec.seconds = time.perf_counter() - t0
        return rec, net, None

    def _stop_after(self, rec) -> str | None:
        if rec.phases and rec.phases[-1]["kind"] == "rejected":
            # the stage did worse than none on its validation points and contributes zero;
            # the next stage would be set up from the same residue
            return "rejected, worse than no stage on its validation points"
        if 2 <= rec.stage < self._n and rec.residue_rms > rec.eps_r / 2:
            # kept, and the fit goes on (the next stage sees another residue), but not silently
            warnings.warn(f"MultistagePINN: stage {rec.stage} lowered the equation's residue only "
                          f"{rec.eps_r / max(rec.residue_rms, 1e-300):.3g}x ({rec.eps_r:.2e} -> {rec.residue_rms:.2e} "
                          "on the residue grid).", StageWarning, stacklevel=4)
        return None

    def _describe(self, rec) -> str:
        return (f"stage {rec.stage}: eps = {rec.eps:.3e}, gamma = {rec.gamma:.3g} ({rec.gamma_source}), "
                f"residue rms {rec.residue_rms:.3e}, error rms {rec.error_rms:.3e} ({rec.seconds:.1f} s)")

    def _network_for(self, rec, xt):
        if rec.feature_scale is not None:
            return self.model_.add_stage(rec.eps, widths=tuple(rec.widths), first_activation="sin",
                                         seed=self._seed + rec.stage - 1, init=self.init)
        return self.model_.add_stage(rec.eps, widths=tuple(rec.widths), kappa_hat=rec.kappa_hat,
                                     seed=self._seed + rec.stage - 1, init=self.init)

    def _part_of(self, rec, net, xt):
        return None

    def _drawn(self, k: int) -> bool:
        """Whether stage k is a "features" stage (drawn sine units, see :mod:`msnn.phases.features`)."""
        return any(ph.kind == "features" for ph in self._phases[k])

    def _second_order(self, k: int, net, run, gamma: float, gamma_g: float, kappa_hat) -> list:
        """The least-squares / Gauss-Newton phases of stage k (:func:`msnn.pinn_stage.second_order_phases`)."""
        return second_order_phases(self.problem, self.model_, k, net, run, self._phases[k], gamma_g=gamma_g,
                                   kappa_hat=kappa_hat, n_collocation=self._n_c[k], seed=self._seed,
                                   named_schedule=self._schedule == "precision",
                                   validation_grid=self._validation_grid(
                                       FEATURES_GRID_MAX if self._drawn(k) else VALIDATION_GRID_MAX),
                                   progress=self.progress)

    # ------------------------------------------------------------ results
    def predict(self, x: ArrayLike, n_stages: int | None = None) -> np.ndarray:
        """u^(c) at points x of shape (N, d) (or (N,) in 1D), float64 numpy."""
        self._check_fitted()
        return self.model_.predict(x, n_stages)

    def predict_stages(self, x: ArrayLike) -> np.ndarray:
        """eps_k u_k(x) of every stage, shape (n_stages, N) (for :meth:`~msnn.engine.StagedFit.staged_predict`)."""
        self._check_fitted()
        return self.model_.predict_stages(x)

    @property
    def n_weights_(self) -> int:
        """Weights and biases of all stages together."""
        self._check_fitted()
        return int(sum(r.n_weights for r in self.records_))

    def iterations(self) -> np.ndarray:
        """Cumulative iterations (Adam steps + L-BFGS iterations) at the end of every stage."""
        return np.cumsum([r.iterations for r in self.records_])

    def history(self, key: str = "loss_e") -> tuple[np.ndarray, np.ndarray]:
        """``(n, values)``: a loss over the cumulative evaluations (Adam steps + L-BFGS evaluations)."""
        vals = [getattr(r, key) for r in self.records_]
        return np.arange(1, sum(len(v) for v in vals) + 1), np.concatenate(vals) if vals else np.zeros(0)

    def power_law_points(self, source: str = "residue") -> tuple[np.ndarray, np.ndarray]:
        """``(eps, f_d)`` of the errors after every stage, for the power law f_d ~ eps^(-alpha) (eq. 2.11).

        ``source="residue"``: the error magnitude read from the residue by eq. (3.19) and
        the residue's dominant frequency (what Algorithm 4 sees: the eps_k and f_d of
        every stage >= 2, then the estimate from the last residue). ``source="error"``: the
        rms and dominant frequency of the true error u_g - u^(c) after each stage. In 2D,
        f_d is |k|.
        """
        self._check_fitted()
        norm = lambda f: float(np.hypot(*f)) if len(f) > 1 else float(f[0])  # noqa: E731
        if source == "error":
            if self.problem.exact is None:
                raise ValueError("the problem has no exact solution")
            return (np.array([r.error_rms for r in self.records_]),
                    np.array([norm(r.error_f_d) for r in self.records_]))
        if source != "residue":
            raise ValueError(f"source must be 'residue' or 'error', got {source!r}")
        eps = [r.eps for r in self.records_[1:]]
        fd = [norm(r.f_d) for r in self.records_[1:]]
        last = self.records_[-1]
        eps.append(_magnitude(last.residue_rms, last.residue_f_d, self.orders, self._eps_beta))
        fd.append(norm(last.residue_f_d))
        return np.array(eps), np.array(fd)

    def summary(self) -> list[dict]:
        """One row per stage: the estimates it was built from and what it reached."""
        out = []
        for r in self.records_:
            out.append({"stage": r.stage, "eps": r.eps, "eps_r": r.eps_r, "f_d": r.f_d, "kappa_hat": r.kappa_hat,
                        "gamma": r.gamma, "gamma_g": r.gamma_g, "iterations": r.iterations,
                        "residue_rms": r.residue_rms, "error_rms": r.error_rms})
        return out

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_settings(self) -> tuple[dict, dict, tuple]:
        p = self.problem
        common = {"name": p.name, "orders": np.asarray(self.orders).tolist(), "eps_beta": self._eps_beta,
                  "eps0": self._eps0, "factor": self._factor, "init": self.init, "n_grid": self._n_grid,
                  "pad": self.pad, "seed": self._seed, "sampler": self.sampler, "margin": self._margin,
                  "kappa_hat0": None if self.kappa_hat0 is None else np.asarray(self.kappa_hat0).tolist(),
                  "algorithm3_n0": self.algorithm3_n0, "schedule": str(self._schedule)}
        if self._schedule == "features":  # (only here: the checkpoints of other schedules keep their keys)
            common["n_features"] = self._n_features
        per_stage = {"widths": self._widths, "adam": self._adam, "lbfgs": self._lbfgs,
                     "phases": [[str(ph) for ph in phs] for phs in self._phases], "lr": self._lr,
                     "n_c": self._n_c, "resample": self._resample, "gpinn": self._gpinn,
                     "gamma": [str(g) for g in self._gammas], "gamma_g": [str(g) for g in self._gamma_g],
                     "rar": [None if r is None else repr(r) for r in self._rar]}
        extra = np.zeros((0, p.dim)) if self.extra_points is None else np.asarray(self.extra_points, dtype=np.float64)
        return common, per_stage, (np.asarray(p.data_x, dtype=np.float64), np.asarray(p.data_u, dtype=np.float64),
                                   extra)


def _magnitude(eps_r: float, f_d, orders, eps_beta: float) -> float:
    """eq. (3.19) via magnitude_estimate, with a zero frequency replaced by the largest one."""
    f = np.asarray(f_d, dtype=np.float64)
    f = np.where(f > 0, f, f.max()) if f.max() > 0 else np.ones_like(f)
    return magnitude_estimate(eps_r, f, orders, eps_beta)


class _Truncated(torch.nn.Module):
    """The first ``n`` stages of a StagedSolution, as a callable model for residual_grid."""

    def __init__(self, model: StagedSolution, n: int):
        super().__init__()
        self.inner, self.n = model, int(n)
        self.dtype, self.device, self.dim = model.dtype, model.device, model.dim

    def forward(self, x):
        return self.inner(x, self.n)
