"""Section 4 of Wang & Lai (2024) as one driver: the Burgers profile and lambda in stages.

:class:`MultistageBurgers` runs the rounds of the Burgers inverse problem (stage 1, then
each next stage by Algorithm 4: eq. 3.9, 3.16, 3.32, and eq. 4.8's low-frequency network)
through the stage engine (:mod:`msnn.engine`): Algorithm 4's next-stage rule is its plan,
one round of :func:`msnn.burgers.train_burgers` its stage. :meth:`MultistageBurgers.branch`
trains different next stages from the same fitted ones, as chapter ``ch-burgers`` does.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch
from torch import nn

from ._common import count as _count, float64_array, per_stage, resolve_device
from .burgers import BurgersEval, BurgersRun, BurgersSolution, add_next_stage, evaluate, train_burgers
from .engine import StagedFit
from .phases import check_phases, parse_schedule
from .burgers import OFFERS, WHY_NOT

__all__ = ["MultistageBurgers", "BurgersStage", "LAMBDA_SCALES"]


#: The rules for lambda's scale in a later stage (``MultistageBurgers(lambda_scale=...)``).
LAMBDA_SCALES = ("sqrt_ls", "2_sqrt_lo")


def _first(values: Sequence, n: int, name: str, *, nested: bool = False) -> list:
    """:func:`~msnn._common.per_stage`, where a list may also be longer than ``n``: its first
    ``n`` entries are used (the rest belong to stages a warm start adds later)."""
    is_list = isinstance(values, (list, tuple, np.ndarray))
    if is_list and (not nested or (len(values) and all(isinstance(v, (list, tuple)) for v in values))):
        if len(values) < n:
            raise ValueError(f"{name} needs 1 value or at least n_stages = {n}, got {len(values)}")
        values = list(values)[:n]
    return per_stage(values, n, name, nested=nested)


def _stage_schedules(schedule, n: int) -> list:
    """One phase list (or None: Adam then L-BFGS) per stage from ``schedule``, checked."""
    if schedule is None:
        return [None] * n
    if isinstance(schedule, str) or not isinstance(schedule, (list, tuple)) or not schedule:
        raise ValueError("schedule must be None (Adam then L-BFGS with adam_steps / lbfgs_steps), a list of "
                         f"phases such as [('adam', 2000), ('lm', 200)], or one such list per stage; got {schedule!r}")

    def is_stage(e) -> bool:  # a stage's phase list (or None), not a phase such as ("adam", 20)
        return e is None or (isinstance(e, (list, tuple)) and (not e or not isinstance(e[0], str)))

    per = [is_stage(e) for e in schedule]
    if all(per):
        stages = _first(list(schedule), n, "schedule")
    elif not any(per):
        stages = [schedule] * n
    else:
        raise ValueError("schedule mixes phases and per-stage phase lists: give one list of phases for every "
                         f"stage, or one list (or None) per stage; got {schedule!r}")
    out = []
    for k, s in enumerate(stages):
        if s is None:
            out.append(None)
            continue
        try:
            phases = parse_schedule(list(s))
        except ValueError as exc:
            raise ValueError(f"schedule of stage {k + 1}: {exc}") from None
        try:
            check_phases(phases, OFFERS, "Burgers rounds", WHY_NOT)
        except ValueError as exc:
            raise ValueError(f"schedule of stage {k + 1}: {exc}") from None
        if sum(p.steps for p in phases) == 0:
            raise ValueError(f"schedule of stage {k + 1} has no steps: {[str(p) for p in phases]}")
        out.append(phases)
    return out


def _truncated(model: BurgersSolution, keep: int) -> BurgersSolution:
    """A deep copy of ``model`` with its first ``keep`` rounds, lambda as it was after round ``keep``.

    That lambda (recorded in ``model.lambdas``) is held in ``lambda_base`` with ``delta = 0``:
    the next :meth:`BurgersSolution.add_stage` starts from exactly the number it would have
    started from before the later rounds were added."""
    m = copy.deepcopy(model)
    if keep == m.n_rounds:
        return m
    idx = [i for i, g in enumerate(m.groups) if g < keep]
    m.nets = nn.ModuleList([m.nets[i] for i in idx])
    m.eps, m.groups = [m.eps[i] for i in idx], [m.groups[i] for i in idx]
    m.lambdas = m.lambdas[:keep]
    m.lambda_base = m.lambdas[-1]
    with torch.no_grad():
        m.delta.zero_()
    for net, g in zip(m.nets, m.groups):
        net.requires_grad_(g == keep - 1)  # the newest kept round is the trainable one again
    return m


@dataclass
class BurgersStage:
    """One stage of a :class:`MultistageBurgers` fit.

    Attributes:
        index: 0-based stage number.
        eps: the prefactor of the stage's (first) network.
        settings: what it was built with (``eps``, ``kappa_hat``, ``gamma``, ``eps_lambda``,
            ``lambda_scale``, ``lambda_rule``, ``lambda_network``, ``network_seed``, ``points_seed``).
        run: what training did (:class:`msnn.burgers.BurgersRun`).
        eval: the solution after the stage (:class:`msnn.burgers.BurgersEval`).
    """

    index: int
    eps: float
    settings: dict = field(default_factory=dict)
    run: BurgersRun | None = None
    eval: BurgersEval | None = None


class MultistageBurgers(StagedFit):
    """Section 4 of Wang & Lai (2024): the Burgers profile and lambda, in stages (Algorithm 4).

    Stage 1 is one odd tanh network (prefactor 1, seed ``seed``) trained with equation
    weight ``gamma1`` from lambda = ``lambda_init``. Every later stage k (1-based) is built
    by :func:`~msnn.burgers.add_next_stage` from the previous stage's :func:`~msnn.burgers.evaluate` and
    :class:`~msnn.burgers.BurgersRun` (Algorithm 4 with eq. 3.9, 3.16, 3.32): a sin-first-layer network
    with prefactor ``rms(r) / (2 pi f_d)`` and ``kappa_hat = 2 pi f_d``, optionally the
    low-frequency network ``eps_lambda U_lambda`` of eq. (4.8), and a fresh lambda
    correction on the scale that ``lambda_scale`` sets; it is trained on eq. (4.2)-(4.5)
    (plus ``gamma_o L_o``, see :func:`train_burgers`) with the gamma of eq. (3.32).
    Stage k's networks are seeded with ``seed + 10 (k - 1)`` (its eq. 4.8 network with one
    more), its collocation and smoothness points with ``seed + k - 1``; after every stage
    the solution is evaluated on ``n_grid`` points of [-2, 2].

    Why ``fit()`` and not ``solve()`` (as :class:`~msnn.multistage_pinn.MultistagePINN`
    has): this is an inverse problem, whose result is a fitted parameter (lambda) as much
    as a solution, and its stages grow as in scikit-learn's boosting estimators, whose
    ``fit`` honours ``warm_start``. There are no data (the problem is fixed), so ``fit``
    takes no arguments.

    Every per-stage argument takes one value (all stages) or a list with one per stage;
    a list may be longer than ``n_stages`` (its first ``n_stages`` entries are used), so
    that one list serves a fit that a warm start later extends. Entries for stage 1 of
    ``lambda_scale`` and ``lambda_network`` are not used (stage 1 starts lambda at
    ``lambda_init`` with scale 1, with one network).

    The defaults of lambda_init and the loss weights are those of chapter ``ch-burgers``
    (the paper gives none); the budgets and point counts are :func:`train_burgers`'s.

    Args:
        lambda_init: stage 1's starting lambda (> 0). Chapter ``ch-burgers`` starts from
            0.6: from 0.4 or 0.45 its first stage found the next smooth profile,
            lambda = 1/4.
        n_stages: the number of stages (>= 1).
        widths: hidden widths of every network (one tuple, or one per stage).
        gamma1: the equation weight of stage 1, in (0, 1) (eq. 4.2); later stages take
            eq. (3.32)'s.
        gamma_g, gamma_s, gamma_o: the gPINN, smoothness and origin-gPINN weights (>= 0,
            per stage; ``gamma_o = 0`` is the paper's loss).
        smooth_width: the smoothness points lie in |y| < smooth_width (in (0, 2]).
        adam_steps, lbfgs_steps: Adam steps and L-BFGS iterations per stage (default 2000
            each), for the stages without a ``schedule``.
        schedule: instead, the phases of every stage, e.g. ``[("adam", 2000), ("lm", 200)]``,
            or one such list per stage (None in it: Adam then L-BFGS by ``adam_steps`` /
            ``lbfgs_steps``); "adam", "lbfgs" and "lm" (see :func:`train_burgers`).
        lr: Adam's learning rate per stage.
        n_collocation: N_c per stage (>= 2; both ends are added).
        n_smooth: N_s per stage (>= 1).
        n_grid: points of the evaluation grid on [-2, 2] (>= 16).
        lambda_scale: the scale of lambda's correction in a later stage, per stage:
            "sqrt_ls" (``sqrt(L_s)`` of the previous stage, the paper's estimate of lambda's
            error), "2_sqrt_lo" (``2 sqrt(L_o)``, the Taylor argument of chapter
            ``ch-burgers``: ``|lambda - 1/2| ~ 2 |r'(0)|``), or a positive number.
        lambda_network: add eq. (4.8)'s low-frequency network ``eps_lambda U_lambda``
            (``eps_lambda = sqrt(L_s)``) to a later stage (bool, per stage).
        warm_start: :meth:`fit` keeps the stages fitted so far and trains the rest up to
            ``n_stages`` (as in scikit-learn's boosting); :meth:`branch` returns copies
            with it set.
        seed: seeds the networks and the points (>= 0).
        device: "auto", "cpu", "cuda" or a torch.device.
        progress: progress bars (default: unless MSNN_PROGRESS=0).

    Attributes:
        model_: the :class:`BurgersSolution` (this and the attributes below are set by :meth:`fit`).
        runs_: one :class:`~msnn.burgers.BurgersRun` per stage.
        evals_: one :class:`~msnn.burgers.BurgersEval` per stage (the solution after that stage).
        settings_: one dict per stage, what the stage was built with: ``eps``,
            ``kappa_hat`` (None in stage 1), ``gamma``, ``eps_lambda`` (``sqrt(L_s)`` of the
            previous stage; None in stage 1), ``lambda_scale`` (the number), ``lambda_rule``,
            ``lambda_network``, ``network_seed``, ``points_seed``.
        lambda_: lambda after the last stage.

    Raises:
        ValueError: any invalid argument, named, from the constructor (before training).

    Example (chapter ``ch-burgers``'s third stages, from one two-stage fit)::

        two = MultistageBurgers(n_stages=2, adam_steps=[500, 300, 300], lbfgs_steps=1000).fit()
        a = two.branch(n_stages=3, lambda_scale="2_sqrt_lo").fit()
        b = two.branch(n_stages=3, lambda_scale="2_sqrt_lo", lambda_network=True).fit()
        a.evals_[-1].lambda_error, b.evals_[-1].error_rms
    """

    def __init__(self, *, lambda_init: float = 0.6, n_stages: int = 3,
                 widths: Sequence[int] | Sequence[Sequence[int]] = (20, 20, 20), gamma1: float = 0.5,
                 gamma_g: float | Sequence[float] = 0.1, gamma_s: float | Sequence[float] = 1e-2,
                 gamma_o: float | Sequence[float] = 1.0, smooth_width: float = 0.1,
                 adam_steps: int | Sequence[int] | None = None, lbfgs_steps: int | Sequence[int] | None = None,
                 schedule: Sequence | None = None, lr: float | Sequence[float] = 1e-3,
                 n_collocation: int | Sequence[int] = 400, n_smooth: int | Sequence[int] = 40, n_grid: int = 2001,
                 lambda_scale: str | float | Sequence[str | float | None] = "sqrt_ls",
                 lambda_network: bool | Sequence[bool] = False, warm_start: bool = False, seed: int = 0,
                 device: str | torch.device = "auto", progress: bool | None = None) -> None:
        self._store_params(locals())
        self._validate()

    def _validate(self) -> None:
        """Check every argument; derive the per-stage lists and the device."""
        lam0 = self.lambda_init
        if isinstance(lam0, bool) or not isinstance(lam0, (int, float)) or not (math.isfinite(lam0) and lam0 > 0):
            raise ValueError(f"lambda_init must be a finite positive number, got {lam0!r}")
        n = self._n = _count(self.n_stages, "n_stages", 1)
        self._widths = []
        for w in _first(self.widths, n, "widths", nested=True):
            if (not isinstance(w, (list, tuple)) or not w
                    or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in w)):
                raise ValueError(f"widths must be non-empty tuples of positive integers, got {w!r}")
            self._widths.append(tuple(int(v) for v in w))
        if not (isinstance(self.gamma1, (int, float)) and 0 < self.gamma1 < 1):
            raise ValueError(f"gamma1 must lie in (0, 1), got {self.gamma1!r}")
        for name in ("gamma_g", "gamma_s", "gamma_o"):
            vals = _first(getattr(self, name), n, name)
            for v in vals:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
            setattr(self, "_" + name, [float(v) for v in vals])
        sw = self.smooth_width
        if isinstance(sw, bool) or not isinstance(sw, (int, float)) or not 0 < sw <= 2:
            raise ValueError(f"smooth_width must lie in (0, 2], got {sw!r}")
        self._phases = _stage_schedules(self.schedule, n)
        if all(p is not None for p in self._phases) and (self.adam_steps is not None or self.lbfgs_steps is not None):
            raise ValueError("adam_steps / lbfgs_steps are not used: every stage has a schedule "
                             "(give one or the other)")
        self._adam = [_count(v, "adam_steps") for v in _first(2000 if self.adam_steps is None else self.adam_steps,
                                                               n, "adam_steps")]
        self._lbfgs = [_count(v, "lbfgs_steps") for v in _first(2000 if self.lbfgs_steps is None
                                                                 else self.lbfgs_steps, n, "lbfgs_steps")]
        for k in range(n):
            if self._phases[k] is None and self._adam[k] + self._lbfgs[k] == 0:
                raise ValueError(f"stage {k + 1} has no training: adam_steps + lbfgs_steps must be > 0")
        self._lr = _first(self.lr, n, "lr")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0)
               for v in self._lr):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        self._n_c = [_count(v, "n_collocation", 2) for v in _first(self.n_collocation, n, "n_collocation")]
        self._n_s = [_count(v, "n_smooth", 1) for v in _first(self.n_smooth, n, "n_smooth")]
        _count(self.n_grid, "n_grid", 16)
        rules = self.lambda_scale
        rules = _first(rules, n, "lambda_scale") if isinstance(rules, (list, tuple)) else [rules] * n
        for k, r in enumerate(rules):
            ok = (r in LAMBDA_SCALES if isinstance(r, str) else
                  (r is None and k == 0) or (not isinstance(r, bool) and isinstance(r, (int, float))
                                              and math.isfinite(r) and r > 0))
            if not ok:
                raise ValueError(f"lambda_scale must be {' or '.join(repr(s) for s in LAMBDA_SCALES)} or a finite "
                                 f"positive number (a list's first entry may be None), got {r!r}")
        self._rules = rules
        self._lambda_network = _first(self.lambda_network, n, "lambda_network")
        if any(not isinstance(v, (bool, np.bool_)) for v in self._lambda_network):
            raise ValueError(f"lambda_network must be True or False (or one per stage), got {self.lambda_network!r}")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"warm_start must be True or False, got {self.warm_start!r}")
        self._seed = _count(self.seed, "seed")
        if self.progress is not None and not isinstance(self.progress, (bool, np.bool_)):
            raise ValueError(f"progress must be None, True or False, got {self.progress!r}")
        self._device = resolve_device(self.device)

    # ------------------------------------------------------------ training
    _record_type = BurgersStage
    _fit_call = "fit()"

    def fit(self) -> "MultistageBurgers":
        """Train the stages (all of them; with ``warm_start``, those after the fitted ones); returns self.

        Raises:
            ValueError: with ``warm_start``, more stages fitted than ``n_stages``; a stage
                whose lambda scale ``2 sqrt(L_o)`` is zero.
        """
        self._validate()
        if not (self.warm_start and getattr(self, "stages_", None)):
            self._start(None)  # no data: the stages solve the profile equation
            self.model_ = BurgersSolution(self.lambda_init, device=self._device)
        if len(self.stages_) > self._n:
            raise ValueError(f"n_stages = {self._n} is fewer than the {len(self.stages_)} stages already fitted "
                             "(warm_start keeps them): use branch(keep=...) for fewer")
        self._run_stages(None, len(self.stages_), self._n)
        self.lambda_ = self.model_.lambda_value
        return self

    # ----------------------------------------------------- the engine's hooks
    def _plan_stage(self, k: int) -> dict:
        """Algorithm 4's next stage (stage 1's network for k = 0), added to ``model_``."""
        return self._add_stage(k)

    def _fit_stage(self, k: int, st: dict):
        """One round of :func:`~msnn.burgers.train_burgers` on eq. (4.2)-(4.5), then the evaluation."""
        ph = self._phases[k]
        budget = (dict(adam_steps=self._adam[k], lbfgs_steps=self._lbfgs[k]) if ph is None else
                  dict(schedule=ph, adam_steps=sum(p.steps for p in ph if p.kind == "adam"),
                       lbfgs_steps=sum(p.steps for p in ph if p.kind == "lbfgs")))
        run = train_burgers(self.model_, gamma=st["gamma"], gamma_g=self._gamma_g[k], gamma_s=self._gamma_s[k],
                            gamma_o=self._gamma_o[k], n_collocation=self._n_c[k], n_smooth=self._n_s[k],
                            smooth_width=float(self.smooth_width), lr=float(self._lr[k]),
                            seed=st["points_seed"], progress=self.progress, desc=f"stage {k + 1}", **budget)
        rec = BurgersStage(index=k, eps=float(st["eps"]), settings=st, run=run,
                           eval=evaluate(self.model_, self.n_grid))
        return rec, self._round_networks(k), None

    def _round_networks(self, k: int) -> nn.ModuleList:
        return nn.ModuleList([net for net, g in zip(self.model_.nets, self.model_.groups) if g == k])

    def _describe(self, rec: BurgersStage) -> str:
        e = rec.eval
        return (f"stage {rec.index + 1}: lambda = {e.lam:.15f} (|lambda - 1/2| = {e.lambda_error:.1e}), "
                f"rms error {e.error_rms:.1e}, rms residue {e.residue_rms:.1e}")

    @property
    def runs_(self) -> list:
        """One :class:`~msnn.burgers.BurgersRun` per stage."""
        self._check_fitted()
        return [s.run for s in self.stages_]

    @property
    def evals_(self) -> list:
        """One :class:`~msnn.burgers.BurgersEval` per stage (the solution after it)."""
        self._check_fitted()
        return [s.eval for s in self.stages_]

    @property
    def settings_(self) -> list:
        """One dict per stage: what it was built with."""
        self._check_fitted()
        return [s.settings for s in self.stages_]

    def _add_stage(self, k: int) -> dict:
        """Add stage ``k`` (0-based) to ``model_``: stage 1's network, or Algorithm 4's next stage."""
        seeds = dict(network_seed=self._seed + 10 * k, points_seed=self._seed + k)
        if k == 0:
            self.model_.add_stage([dict(eps=1.0, widths=self._widths[0], seed=seeds["network_seed"])])
            return dict(eps=1.0, kappa_hat=None, gamma=float(self.gamma1), eps_lambda=None, lambda_scale=1.0,
                        lambda_rule=None, lambda_network=False, **seeds)
        run, rule = self.stages_[-1].run, self._rules[k]
        if rule == "sqrt_ls":
            scale = None  # add_next_stage's default: eps_lambda = sqrt(L_s)
        elif rule == "2_sqrt_lo":
            scale = 2 * math.sqrt(run.final["loss_o"])  # |lambda - 1/2| ~ 2 |r'(0)|
            if not scale > 0:
                raise ValueError(f"stage {k + 1}: lambda_scale '2_sqrt_lo' is 0 (L_o of stage {k} vanished)")
        else:
            scale = float(rule)
        st = add_next_stage(self.model_, self.stages_[-1].eval, run, widths=self._widths[k], seed=seeds["network_seed"],
                            lambda_network=bool(self._lambda_network[k]), lambda_scale=scale)
        return dict(st, lambda_scale=self.model_.lambda_scale, lambda_rule=rule,
                    lambda_network=bool(self._lambda_network[k]), **seeds)

    def branch(self, keep: int | None = None, **params) -> "MultistageBurgers":
        """A copy holding the first ``keep`` fitted stages, to train different next stages from.

        The copy's arguments are this one's with ``params`` changed (``warm_start`` set), so
        its :meth:`fit` trains its stages ``keep + 1, ..., n_stages`` with the changed
        settings: e.g. ``two.branch(n_stages=3, lambda_network=True).fit()`` is a third
        stage with eq. (4.8)'s two networks, and ``two.branch(1, gamma_o=0.0).fit()`` a
        second stage trained on the paper's loss from the same first stage. The kept
        stages, their records and the model are deep copies: this driver is not changed,
        and the copy's next stages are exactly those this driver's would be.

        Args:
            keep: how many fitted stages the copy keeps (default: all).
            **params: constructor arguments to change.

        Raises:
            NotFittedError: nothing fitted yet.
            ValueError: ``keep`` outside 1..(stages fitted), an unknown or invalid argument,
                ``n_stages < keep``, or ``warm_start=False``.
        """
        self._check_fitted()
        n_fit = len(self.stages_)
        keep = n_fit if keep is None else keep
        if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or not 1 <= keep <= n_fit:
            raise ValueError(f"keep must be an integer from 1 to {n_fit} (the stages fitted), got {keep!r}")
        names = self._param_names()
        bad = sorted(set(params) - set(names))
        if bad:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {bad}; its parameters are {names}")
        if params.get("warm_start", True) is not True:
            raise ValueError("a branch continues from its kept stages: warm_start cannot be False")
        new = type(self)(**{**self.get_params(), **params, "warm_start": True})
        if new._n < keep:
            raise ValueError(f"n_stages = {new._n} is fewer than the {keep} stage(s) kept")
        new._start(None)
        new.model_ = _truncated(self.model_, int(keep))
        new.stages_ = copy.deepcopy(self.stages_[:keep])
        new.networks_ = [new._round_networks(k) for k in range(keep)]
        new.lambda_ = new.model_.lambda_value
        return new

    # ------------------------------------------------------------ prediction
    def _points(self, y: ArrayLike, order: int) -> np.ndarray:
        self._check_fitted()
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= 4:
            raise ValueError(f"order must be an integer in 0..4, got {order!r}")
        return float64_array(y, "y")

    def predict(self, y: ArrayLike, n_stages: int | None = None, order: int = 0) -> np.ndarray:
        """U after ``n_stages`` stages (default: all), or its derivative of ``order`` (<= 4), float64.

        Raises:
            NotFittedError: nothing fitted yet.
            ValueError: ``n_stages`` outside 1..(stages fitted), a bad ``order`` or ``y``.
        """
        y = self._points(y, order)
        n_fit = len(self.stages_)
        k = n_fit if n_stages is None else n_stages
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_fit:
            raise ValueError(f"n_stages must be an integer from 1 to {n_fit}, got {n_stages!r}")
        return self.model_.predict(y, rounds=None if k == n_fit else list(range(k)), order=order)

    def staged_predict(self, y: ArrayLike, order: int = 0) -> Iterator[np.ndarray]:
        """U (or its derivative of ``order``) after stage 1, 2, ..., one array per stage (as in
        scikit-learn's boosting)."""
        y = self._points(y, order)
        for k in range(1, len(self.stages_) + 1):
            yield self.model_.predict(y, rounds=list(range(k)), order=order)
