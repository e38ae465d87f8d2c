"""Spectrum-informed multi-stage regression (SI-MSNN), Ng, Wang & Lai (2024).

The multi-stage driver of the SI paper (Sec. 3 and Algorithm 1): stage 0 fits the
grid values normalized by their RMS, and every later stage fits the normalized
residue of the stages before it,

    e_n = u - sum_{j<n} eps_j u_j,   eps_n = RMS(e_n),   stage n fits e_n / eps_n,

with a network whose feature layer is initialised from the spectrum of the function
that stage fits (:class:`~msnn.si_features.SINetwork`). Training is full-batch Adam
with an exponentially annealed learning rate, optionally followed by L-BFGS, on the
MSE or on the mean-form L^p loss (:func:`~msnn.si_features.lp_loss`), or a training
schedule of phases; residues are always the data minus the float64 sum of the
stages, and the stages can be checkpointed and resumed.

The spectrum, the feature layer and the stage network are in :mod:`msnn.si_features`
(with the DFT conventions and the memory and speed notes); their names stay
importable from here. Chapters 9 and 10 of the book show this module at work.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch

from ._common import (StageRun, count, finite_float, flag, float64_array, integers, one_of, optional_path, per_stage,
                      positive_float, resolve_device, rms, show_progress)
from .engine import StagedFit
from .phases import LossTrainee, check_phases, schedule_for, train_stage
from .si_features import SINetwork, SpectralModes, grid_bounds, grid_values, lp_loss, spectral_modes
from .training import TrainHistory, merge_histories, train

# Kept for the chapters' existing imports (``from msnn.si import SINetwork, spectral_modes``
# in chapters 9 and 10, and the like in the tests and the benchmarks): with the names
# imported above, every public name of msnn.si_features stays importable from here.
from .si_features import count_primary_modes, si_features, si_grid_features, tensor_grid_points  # noqa: F401

__all__ = ["SIStageRecord", "SIMultistageRegressor"]


# --------------------------------------------------------------- the regressor
@dataclass
class SIStageRecord(StageRun):
    """One stage of a fitted :class:`SIMultistageRegressor`.

    Attributes:
        index: stage number (0 = first stage).
        eps: RMS of the residue this stage fits, in units of RMS(u) (eps_0 = 1).
        eps_data: the same in the units of u (eps_0 = RMS(u), as in the SI paper).
        n_features: first-layer width n_f.
        top_modes: the norms ``|k|`` of the five largest SI wavenumbers (normalized coordinates).
        widths: hidden widths.
        loss: "mse" or "lp".
        adam_steps, lbfgs_iterations, lbfgs_evaluations, final_loss, loss_history,
            rms_after, seconds, stopped, phases: what training did (:class:`msnn._common.StageRun`);
            ``rms_after`` in units of RMS(u), ``phases`` empty for the paper's Adam + L-BFGS.
    """

    index: int
    eps: float
    eps_data: float
    n_features: int
    top_modes: list
    widths: tuple
    loss: str

    @property
    def steps(self) -> int:
        return self.adam_steps + self.lbfgs_iterations

    @property
    def error_history(self) -> np.ndarray:
        """The loss as an error of the combined model in units of RMS(u): eps sqrt(loss) (MSE)
        or eps loss (L^p, which bounds the RMS from above)."""
        h = np.maximum(np.asarray(self.loss_history, dtype=float), 0.0)
        return self.eps * (np.sqrt(h) if self.loss == "mse" else h)


class SIMultistageRegressor(StagedFit):
    """Spectrum-informed multi-stage regression on a grid (SI-MSNN, Ng, Wang & Lai 2024).

    Stage 0 fits ``u / eps_0`` with ``eps_0 = RMS(u)``; stage n fits the normalized
    residue ``e_n / eps_n`` (``e_n = u - sum_{j<n} eps_j u_j``, ``eps_n = RMS(e_n)``).
    Every stage, the first included, is an :class:`~msnn.si_features.SINetwork` whose
    feature layer is initialised from the ``n_f`` largest DFT modes of the function it
    fits (Algorithm 1 of the SI paper). Training is full-batch Adam with an
    exponentially annealed learning rate, optionally followed by L-BFGS, on the MSE or
    on the mean-form L^p loss (:func:`~msnn.si_features.lp_loss`). Residues are always
    the data minus the float64 sum of the stages.

    Why ``fit(u, lo=..., hi=...)`` and not ``fit(x, y)``: the spectrum-informed
    initialization needs the DFT of the target, so the data must be values on a
    periodic uniform grid, which the grid shape and the domain describe completely.
    The constructor arguments are stored as given (``get_params`` / ``set_params``, as
    in scikit-learn); ``fit`` validates them again.

    Example::

        reg = SIMultistageRegressor(n_stages=3, n_features=[300, 1000, 1000], adam_steps=2000)
        reg.fit(u, lo=-1, hi=1)   # u: (Nx, Ny) on the grid lo + n (hi - lo) / N
        reg.residue()             # u minus the model on the grid, (Nx, Ny)
        reg.predict(xy)           # anywhere, xy: (M, 2) in the original coordinates

    Args:
        n_stages: number of stages.
        n_features: first-layer width n_f, one int or one per stage.
        widths: hidden widths (default (30, 30, 30), the SI paper's).
        adam_steps, lbfgs_steps: per stage, an int or a list.
        lr: initial Adam learning rate (1e-3).
        lr_final: learning rate reached at the end of each stage's Adam steps
            (exponential annealing ``lr (lr_final/lr)^(i/steps)``); None for a constant lr.
        loss: "mse" or "lp" (the mean-form L^p norm with exponent ``p``).
        p: the exponent of the L^p loss (10 in the SI paper).
        target_rms: stop (a stage early, and adding stages) once the RMS residue
            relative to RMS(u) is at or below this (e.g. 1e-16 for "machine precision").
        dtype: float64 (default) or float32.
        device, seed: where to train; stage n draws its Xavier weights from seed + n.
        max_chunk_elements: points x features per chunk of the feature layer.
        checkpoint: a file; the stages are saved there after each stage and a later
            ``fit`` on the same data and settings resumes after the last saved stage.
        progress, verbose: progress bars; one line per stage.
    """

    _record_type = SIStageRecord
    _fit_call = "fit(u)"

    def __init__(self, *, n_stages: int = 3, n_features: int | Sequence[int] = 500,
                 widths: Sequence[int] = (30, 30, 30), adam_steps: int | Sequence[int] = 5000,
                 lbfgs_steps: int | Sequence[int] = 0, lr: float = 1e-3, lr_final: float | None = 1e-5,
                 loss: str = "mse", p: float = 10.0, target_rms: float | None = None,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "auto", seed: int = 0,
                 max_chunk_elements: int = 2 ** 24, checkpoint: str | os.PathLike | None = None,
                 progress: bool | None = None, verbose: bool = False, schedule: str | Sequence | None = None) -> None:
        # the arguments stored as given (get_params / clone); derived values in _validate
        self._store_params(locals())
        self._validate()

    def _validate(self) -> None:
        """Check the settings; derive the per-stage lists, the device and the checkpoint file."""
        n = count(self.n_stages, "n_stages", 1)
        self._n_features = [count(v, "n_features", 1) for v in per_stage(self.n_features, n, "n_features")]
        self._widths = integers(self.widths, "widths", 1)  # () is allowed: no hidden layers
        self._adam = [count(v, "adam_steps") for v in per_stage(self.adam_steps, n, "adam_steps")]
        self._lbfgs = [count(v, "lbfgs_steps") for v in per_stage(self.lbfgs_steps, n, "lbfgs_steps")]
        lr = positive_float(self.lr, "lr")
        finite_float(self.lr_final, "lr_final", above=0.0, maximum=lr, none=True)
        one_of(self.loss, "loss", ("mse", "lp"))
        finite_float(self.p, "p", minimum=1.0)
        finite_float(self.target_rms, "target_rms", minimum=0.0, none=True)
        one_of(self.dtype, "dtype", (torch.float64, torch.float32))
        count(self.seed, "seed")
        optional_path(self.checkpoint, "checkpoint")
        flag(self.progress, "progress", allow_none=True)
        flag(self.verbose, "verbose")
        self._phases = None
        if self.schedule is not None:
            self._phases = [schedule_for(self.schedule, k, adam_steps=self._adam[k], lbfgs_steps=self._lbfgs[k],
                                         n_stages=n) for k in range(n)]
            for k, phases in enumerate(self._phases):
                # refused here, before any stage trains, by the registry's capability check
                check_phases(phases, self._offers(), "SI stages", self._why_not(k))
        self._n = n
        self._device = resolve_device(self.device)
        self._seed = int(self.seed)
        self._chunk = count(self.max_chunk_elements, "max_chunk_elements", 1)

    # ------------------------------------------------------------------ data
    def _normalize(self, x: np.ndarray) -> np.ndarray:
        return -1.0 + 2.0 * (x - self.lo_) / (self.hi_ - self.lo_)

    def _loss_fn(self, net: SINetwork, xt: tuple[torch.Tensor, ...], target: torch.Tensor):
        if self.loss == "mse":
            return lambda: torch.mean((net(xt) - target) ** 2)
        return lambda: lp_loss(net(xt) - target, self.p)

    def _annealing(self, steps: int):
        if self.lr_final is not None and self.lr_final < self.lr and steps > 1:
            ratio = self.lr_final / self.lr
            return lambda i, r=ratio, s=steps: r ** (i / (s - 1))  # noqa: E731
        return None

    def _offers(self) -> set:
        """What an SI stage offers the phase registry: a loss, and an exact output layer if it has one."""
        return {"loss", "linear-output"} if self._widths else {"loss"}

    def _why_not(self, k: int) -> dict:
        return {
            "jacobian": (f"SI stages do not take Gauss-Newton phases: a Gauss-Newton step on an SI network's "
                         f"{self._n_features[k]} features (n_f (d + 1) + n_f x "
                         f"{self._widths[0] if self._widths else 1} parameters in the first layers) is a dense "
                         "least-squares system too large to be useful; use 'output-lstsq' or 'lsgd', which "
                         "solve the output layer exactly"),
            "linear-output": "they need hidden layers (widths=() has no output layer)",
        }

    def _run_phases(self, net: SINetwork, xt: tuple[torch.Tensor, ...], target: torch.Tensor, phases, target_loss,
                    desc: str) -> tuple[TrainHistory, list[dict]]:
        """Train one stage by ``phases`` through the package's phase runner.

        Adam anneals its learning rate within each Adam phase; "output-lstsq" sets the
        output layer to the least-squares (MSE) fit, whatever the stage's loss; "lsgd"
        runs Adam on every other parameter on the stage's loss and re-solves the output
        layer every ``every`` steps and at the end."""
        loss_fn = self._loss_fn(net, xt, target)
        t0 = time.perf_counter()

        def first_order(ph, progress, d):
            steps = ph.steps if ph.kind == "adam" else 0
            return train(net, loss_fn, adam_steps=steps, lbfgs_steps=ph.steps if ph.kind == "lbfgs" else 0,
                         lr=ph.opt("lr", self.lr), lr_schedule=self._annealing(steps), target_loss=target_loss,
                         progress=progress, desc=d)

        params = [p for p in net.parameters() if p.requires_grad]
        trainee = LossTrainee(
            params, loss_fn, first_order=first_order,
            solve_output=lambda mu, rcond: net.solve_output_layer(xt, target, mu=mu, rcond=rcond),
            hidden=params[:-2] if self._widths else None, who="SI stages", why_not=self._why_not(0), lr=self.lr,
            scaled_lsgd=False)
        reports = train_stage(trainee, phases, progress=show_progress(self.progress), desc=desc)
        first = iter(trainee.histories)
        parts = []
        for r in reports:
            if r.kind in ("adam", "lbfgs"):
                parts.append(next(first))
            elif r.kind == "lsgd":
                parts.append(TrainHistory(loss=np.asarray(r.step_losses, dtype=float), adam_steps=r.steps))
        hist = merge_histories(parts, seconds=time.perf_counter() - t0, stopped=reports[-1].stopped,
                               final_loss=trainee.loss_value())
        return hist, [r.summary() for r in reports]

    # ------------------------------------------------------------------- fit
    def fit(self, u: ArrayLike, *, lo: float | Sequence[float] = -1.0,
            hi: float | Sequence[float] = 1.0) -> "SIMultistageRegressor":
        """Fit the stages to grid values ``u`` on the periodic grid ``lo + n (hi - lo) / N``.

        Args:
            u: shape (N,) or (Nx, Ny) (axis 0 along x), numpy or torch.
            lo, hi: the domain, a number or one per axis; the right end is excluded
                from the grid. Inputs are mapped to [-1, 1) for the SI initialization.
        """
        self._validate()
        u = grid_values(u)
        if u.ndim > 2:
            raise ValueError(f"SIMultistageRegressor supports 1D and 2D grids, got shape {u.shape}")
        self.lo_, self.hi_ = grid_bounds(lo, hi, u.ndim)
        self.grid_shape_ = u.shape
        self.eps0_ = rms(u)  # sqrt(mean(u**2)), safe at any scale
        if self.eps0_ == 0.0:
            raise ValueError("u is identically zero: nothing to fit")
        un = u.ravel() / self.eps0_
        # the normalized grid as its axes: every stage is evaluated on it by the grid path
        # (SINetwork.forward with a tuple of axes), whose points are the meshgrid ("ij",
        # C order) of these axes, the order of u.ravel()
        xt = tuple(torch.as_tensor(-1.0 + 2.0 * np.arange(n) / n, dtype=self.dtype, device=self._device)
                   for n in u.shape)
        self._u = u
        self._xt = xt
        self._train_parts: list[np.ndarray] = []  # eps_j u_j on the grid, normalized units
        self._start(un)
        self._run_stages(xt)
        return self

    # ----------------------------------------------------- the engine's hooks
    def _stop_before(self, n: int, eps: float) -> str | None:
        if eps == 0.0:
            return "the residue is exactly zero"
        if n > 0 and self.target_rms is not None and eps <= self.target_rms:
            return f"the residue ({eps:.2e}) is at target_rms"
        return None

    def _describe(self, rec: "SIStageRecord") -> str:
        return (f"SI stage {rec.index + 1}: n_f = {rec.n_features}, eps = {rec.eps_data:.3e}, loss = "
                f"{rec.final_loss:.3e}, rms after / RMS(u) = {rec.rms_after:.3e} ({rec.seconds:.1f} s)")

    def _fit_stage(self, n: int, plan):
        residue, eps = plan
        xt, un = self._xt, self._target
        target_grid = (residue / eps).reshape(self.grid_shape_)
        all_modes = spectral_modes(target_grid)
        n_f = min(self._n_features[n], len(all_modes))
        modes = all_modes.top(n_f)
        net = SINetwork(modes, self._widths, seed=self._seed + n, dtype=self.dtype, device=self._device,
                        max_chunk_elements=self._chunk)
        target = torch.as_tensor(residue / eps, dtype=self.dtype, device=self._device)
        steps = self._adam[n]
        target_loss = None
        if self.target_rms is not None:
            t = self.target_rms / eps
            target_loss = t * t if self.loss == "mse" else t
        desc = f"SI stage {n + 1}/{self._n}"
        reports = []
        if self._phases is None:
            hist: TrainHistory = train(
                net, self._loss_fn(net, xt, target), adam_steps=steps, lbfgs_steps=self._lbfgs[n],
                lr=self.lr, lr_schedule=self._annealing(steps), target_loss=target_loss,
                progress=show_progress(self.progress), desc=desc)
        else:
            hist, reports = self._run_phases(net, xt, target, self._phases[n], target_loss, desc)
        with torch.no_grad():
            part = eps * net(xt).to(torch.float64).cpu().numpy()
        rms_after = float(np.sqrt(np.mean((un - (self._train_pred + part)) ** 2)))
        rec = SIStageRecord(
            index=n, eps=eps, eps_data=eps * self.eps0_, n_features=n_f,
            top_modes=[float(v) for v in np.linalg.norm(modes.k[:5], axis=1)], widths=self._widths,
            loss=self.loss, adam_steps=hist.adam_steps, lbfgs_iterations=hist.lbfgs_iterations,
            lbfgs_evaluations=hist.lbfgs_evaluations, final_loss=float(np.sum(hist.final_loss)),
            loss_history=hist.loss, rms_after=rms_after, seconds=hist.seconds, stopped=hist.stopped,
            phases=reports)
        return rec, net, part

    # --------------------------------------------------------------- predict
    def predict_stages(self, x: ArrayLike) -> np.ndarray:
        """Each stage's contribution eps_j u_j at points x (M, d) in the original
        coordinates, in the units of u; shape (n_stages, M)."""
        self._check_fitted()
        x = float64_array(x, "x")
        if x.ndim == 1 and len(self.grid_shape_) == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != len(self.grid_shape_):
            raise ValueError(f"x must have shape (M, {len(self.grid_shape_)}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or inf")
        xn = self._normalize(x)
        out = np.zeros((len(self.networks_), xn.shape[0]))
        with torch.no_grad():
            for j, (net, rec) in enumerate(zip(self.networks_, self.stages_)):
                xt = torch.as_tensor(xn, dtype=net.dtype, device=net.device)
                out[j] = net(xt).to(torch.float64).cpu().numpy() * rec.eps_data
        return out

    def predict_grid(self, n_stages: int | None = None) -> np.ndarray:
        """The model on the training grid (float64 sum of the stages), shape of u."""
        self._check_fitted()
        k = self._stage_count(n_stages)
        return (np.sum(self._train_parts[:k], axis=0) * self.eps0_).reshape(self.grid_shape_)

    def residue(self, n_stages: int | None = None) -> np.ndarray:
        """u minus the model on the training grid after ``n_stages`` stages (default: all)."""
        return self._u - self.predict_grid(n_stages)

    def grid_points(self) -> np.ndarray:
        """The training grid's points in the original coordinates, shape (N_total, d)."""
        self._check_fitted()
        axes = [lo + (hi - lo) * np.arange(n) / n for lo, hi, n in zip(self.lo_, self.hi_, self.grid_shape_)]
        return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)

    @property
    def total_steps_(self) -> int:
        self._check_fitted()
        return sum(len(s.loss_history) for s in self.stages_)

    # ------------------------------------------------------------ checkpoint
    def _checkpoint_settings(self) -> tuple[dict, dict, tuple]:
        common = dict(widths=self._widths, lr=float(self.lr), lr_final=self.lr_final, loss=self.loss,
                      p=float(self.p), dtype=str(self.dtype), seed=self._seed)
        per_stage = dict(n_f=self._n_features, adam=self._adam, lbfgs=self._lbfgs,
                         schedule=[None] * self._n if self._phases is None
                         else [[str(ph) for ph in phs] for phs in self._phases])
        grid = np.array(self.lo_.tolist() + self.hi_.tolist() + list(self.grid_shape_), dtype=np.float64)
        return common, per_stage, (self._target, grid)

    def _network_for(self, rec: "SIStageRecord", xt: tuple[torch.Tensor, ...]) -> SINetwork:
        n_f, d = rec.n_features, len(self.grid_shape_)
        dummy = SpectralModes(np.zeros((n_f, d)), np.zeros(n_f), np.zeros(n_f), np.zeros(n_f), self.grid_shape_)
        return SINetwork(dummy, tuple(rec.widths), seed=self._seed + rec.index, dtype=self.dtype,
                         device=self._device, max_chunk_elements=self._chunk)

    def _keep_stage(self, rec: "SIStageRecord", net: SINetwork, part: np.ndarray) -> None:
        self._train_parts.append(part)
        super()._keep_stage(rec, net, part)
