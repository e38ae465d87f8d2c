"""The stage engine: the one loop of Algorithm 1 that every data-fitting driver runs.

Every multi-stage fit is the same loop (Wang & Lai 2024, eq. 2.3-2.5): the residue of
the stages so far, its RMS ``eps``, a rule that says whether another stage is worth
training, the next stage built from the residue and trained, kept, checkpointed, and a
rule that says whether to go on. :class:`StagedFit` runs that loop; a driver supplies
only what differs:

* ``_plan_stage(n)``: what stage ``n`` (0-based) is set up from, or why it is not
  trained (a string). By default the residue of the data and its RMS, ``(residue, eps)``,
  with ``_stop_before(n, eps)`` as the rule; a PINN plans from its equation's residue;
* ``_fit_stage(n, plan)``: the stage trained, returned as ``(record, network, part)``
  with ``part`` its values ``eps u_n`` at the training points (None where the stages are
  not fitted to data);
* ``_stop_after(record)``: why no stage follows this one, or None. This is bad news by
  definition (the stage was rejected, or gained too little, on points it did not train
  on): the engine says it in a :class:`~msnn._common.StageWarning` as well as in
  ``stopped_``. A stop before a stage (the target reached, round-off) is not warned of;
* ``_network_for(record, xt)``: an untrained network of the shape a record describes
  (to resume from a checkpoint);
* ``_checkpoint_settings()``: ``(common, per_stage, arrays)``, the settings that shape every
  stage, the per-stage settings (lists of ``n_stages`` values) and the data, from which
  stage k's checkpoint key is made (:mod:`msnn.checkpoints`);
* ``predict_stages(x)``: each stage's contribution at ``x``.

The engine keeps the fitted attributes (``stages_``, ``networks_``, ``stopped_``,
``fit_seconds_``), the float64 sum of the stages at the training points (every residue
is the data minus that sum, never a chained subtraction), the checkpoint after every
stage and the resume from it, and the staged predictions (:meth:`StagedFit.staged_predict`,
as in scikit-learn's boosting estimators).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from typing import Iterator

import numpy as np
import torch
from numpy.typing import ArrayLike

from ._common import NotFittedError, ParamsMixin, StageWarning, settings_key
from .checkpoints import StageCheckpoints

__all__ = ["StagedFit"]



class Reached(str):
    """A reason from ``_stop_after`` that is good news (the error off the training points is
    at round-off): said in ``stopped_``, not warned of."""

class StagedFit(ParamsMixin):
    """The stage loop and everything around it; a driver subclasses it (see the module docstring).

    Class attributes a driver sets: ``_record_type`` (its stage-record dataclass, for
    resuming) and ``_fit_call`` (how "not fitted" errors name its fit, e.g. ``"fit(x, y)"``).
    A driver's ``_validate`` sets ``self._n`` (stages asked for); its ``checkpoint``
    parameter (a path or None) says where the stages are saved.
    """

    _record_type: type
    _fit_call = "fit"

    # ----------------------------------------------------------- driver hooks
    def _stop_before(self, n: int, eps: float) -> str | None:
        """Why stage ``n`` is not trained (the loop ends), or None. Default: a zero residue."""
        return "the residue is exactly zero" if eps == 0.0 else None

    def _plan_stage(self, n: int):
        """``(residue, eps)`` of the data for stage ``n``, or the reason it is not trained."""
        residue = self._target - self._train_pred
        eps = float(np.sqrt(np.mean(residue ** 2)))
        return self._stop_before(n, eps) or (residue, eps)

    def _fit_stage(self, n: int, plan):  # pragma: no cover - abstract
        raise NotImplementedError

    def _part_of(self, rec, net: torch.nn.Module, xt):
        """A resumed stage's values at the training points (``eps u``), or None."""
        with torch.no_grad():
            return rec.eps * net(xt).to(torch.float64).cpu().numpy()

    def _stop_after(self, rec) -> "str | Reached | None":
        """Why no stage follows ``rec``, or None. Default: go on."""
        return None

    def _network_for(self, rec, xt) -> torch.nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _describe(self, rec) -> str:
        """The line ``verbose`` prints after a stage."""
        return f"stage {rec.index + 1}: eps = {rec.eps:.3e}"

    # -------------------------------------------------------------- the loop
    def _start(self, target: np.ndarray | None) -> None:
        """Forget any earlier fit; ``target`` is what the stages sum to (normalized, float64;
        None where the stages are not fitted to data)."""
        self._target = target
        self.stages_: list = []
        self.networks_: list = []
        self.stopped_ = ""
        self._train_pred = None if target is None else np.zeros_like(target)

    def _run_stages(self, xt, start: int | None = None, stop: int | None = None) -> None:
        """Train stages until ``n_stages`` or a stop rule, after resuming from the stages checkpointed
        under the same data and settings.

        With ``start`` (and ``stop``), train stages ``start`` .. ``stop - 1`` on top of the
        stages kept so far, without checkpoints.
        """
        ckpt = StageCheckpoints(getattr(self, "checkpoint", None)) if start is None else StageCheckpoints(None)
        ckpt.check_writable()  # before any training
        if start is None:
            self._resume(ckpt, xt)
            start = len(self.stages_)
        stop = self._n if stop is None else stop
        self.stopped_ = ""
        t_fit = time.perf_counter()
        verbose = getattr(self, "verbose", False)
        for n in range(start, stop):
            plan = self._plan_stage(n)
            if isinstance(plan, str):
                self.stopped_ = f"stage {n + 1} not trained: {plan}"
                if verbose:
                    print(self.stopped_, flush=True)
                break
            rec, net, part = self._fit_stage(n, plan)
            self._keep_stage(rec, net, part)
            if verbose:
                print(self._describe(rec), flush=True)
            self._save_checkpoint(ckpt, n)
            why = self._stop_after(rec)
            if why:
                self.stopped_ = f"stopped after stage {n + 1}: {why}"
                if n + 1 < stop and not isinstance(why, Reached):
                    warnings.warn(f"{type(self).__name__}: {self.stopped_} ({len(self.stages_)} of {stop} "
                                  "stages trained).", StageWarning, stacklevel=3)
                if verbose:
                    print(self.stopped_, flush=True)
                break
        self.fit_seconds_ = time.perf_counter() - t_fit

    def _keep_stage(self, rec, net: torch.nn.Module, part: np.ndarray) -> None:
        """Add a trained (or resumed) stage whose values at the training points are ``part``."""
        if part is not None:
            self._train_pred = self._train_pred + part
        self.stages_.append(rec)
        self.networks_.append(net)

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_settings(self) -> tuple[dict, dict, tuple]:
        """``(common, per_stage, arrays)`` that shape the stages (see the module docstring)."""
        return {}, {}, () if self._target is None else (self._target,)

    def _stage_key(self, k: int) -> str:
        """The key of stage k's checkpoint: the data and every setting that shapes stages 1..k."""
        common, per_stage, arrays = self._checkpoint_settings()
        first = {name: list(values)[: k + 1] for name, values in per_stage.items()}
        return settings_key({"driver": type(self).__name__, "common": common, "stages": first}, *arrays)

    def _save_checkpoint(self, ckpt: StageCheckpoints, k: int) -> None:
        if ckpt:
            ckpt.save(k, self._stage_key(k), asdict(self.stages_[k]), self.networks_[k].state_dict())

    def _resume(self, ckpt: StageCheckpoints, xt) -> None:
        """Keep the checkpointed stages 1, 2, ... of these data and settings, up to the first missing one."""
        for k in range(self._n):
            saved = ckpt.load(k, self._stage_key(k))
            if saved is None:
                break
            rec_d, state = saved
            rec = self._record_type(**rec_d)
            net = self._network_for(rec, xt)
            net.load_state_dict(state)
            self._keep_stage(rec, net, self._part_of(rec, net, xt))
        if self.stages_ and getattr(self, "verbose", False):
            print(f"resumed {len(self.stages_)} stage(s) from {ckpt.path}", flush=True)

    # ------------------------------------------------------------- predicting
    def _check_fitted(self) -> None:
        if not getattr(self, "networks_", None):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call {self._fit_call} first")

    def _stage_count(self, n_stages: int | None) -> int:
        k = len(self.stages_) if n_stages is None else n_stages
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self.stages_):
            raise ValueError(f"n_stages must be an integer in [1, {len(self.stages_)}], got {n_stages!r}")
        return int(k)

    def predict_stages(self, x: ArrayLike) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, x: ArrayLike, n_stages: int | None = None) -> np.ndarray:
        """The model sum_j eps_j u_j(x) in the units of the data (float64, shape (M,)).

        Args:
            x: inputs.
            n_stages: use only the first ``n_stages`` stages (default: all).
        """
        self._check_fitted()
        k = self._stage_count(n_stages)
        return self.predict_stages(x)[:k].sum(axis=0)

    def staged_predict(self, x: ArrayLike) -> Iterator[np.ndarray]:
        """The model after stage 1, 2, ..., one array (M,) per stage (a generator).

        ``list(staged_predict(x))[k - 1]`` equals ``predict(x, n_stages=k)``; the stages are
        evaluated once.
        """
        self._check_fitted()
        parts = self.predict_stages(x)
        for k in range(1, parts.shape[0] + 1):
            yield parts[:k].sum(axis=0)
