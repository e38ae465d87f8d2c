"""What every module shares: devices, per-stage settings, input checks, checkpoints, warnings,
the estimator contract.

The stage loop itself is :mod:`msnn.engine`; the optimizers are :mod:`msnn.phases`.
"""
from __future__ import annotations

import hashlib
import math
import inspect
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import torch

__all__ = ["NotFittedError", "Float32Warning", "SparseDataWarning", "show_progress", "resolve_device", "per_stage", "count", "float64_array", "settings_key", "CheckpointFile",
           "StepCounts", "StageRun", "ParamsMixin", "states"]


class NotFittedError(ValueError, AttributeError):
    """A fitted attribute or a prediction was asked of an estimator before ``fit`` / ``solve``.

    A ``ValueError`` and an ``AttributeError``, as in scikit-learn, so that either
    ``except`` clause catches it."""


class Float32Warning(UserWarning):
    """Training in float32: errors cannot go below about 1e-7 (single precision)."""


class SparseDataWarning(UserWarning):
    """The data are too sparse for the residue's frequency: N_d < 6 pi f_d (eq. 2.10)."""


def show_progress(progress: bool | None = None) -> bool:
    """Whether to draw progress bars: ``progress`` if given, else not when MSNN_PROGRESS=0."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("MSNN_PROGRESS", "1") not in ("0", "false", "no")


class StepCounts:
    """``iterations`` and ``evaluations`` of a record with ``adam_steps``, ``lbfgs_iterations``
    and ``lbfgs_evaluations`` (a training history, a stage record)."""

    @property
    def iterations(self) -> int:
        """Adam steps plus L-BFGS iterations (line-search evaluations not counted)."""
        return self.adam_steps + self.lbfgs_iterations

    @property
    def evaluations(self) -> int:
        """Adam steps plus L-BFGS function evaluations (the length of the loss histories)."""
        return self.adam_steps + self.lbfgs_evaluations


@dataclass(kw_only=True)
class StageRun(StepCounts):
    """What training did in one stage of a data-fitting driver (regression, SI); the
    driver's record adds what the stage was built from.

    Attributes:
        adam_steps, lbfgs_iterations, lbfgs_evaluations: steps run.
        final_loss: the stage's loss on its normalized target.
        loss_history: the loss per Adam step and L-BFGS evaluation.
        rms_after: RMS of the residue left after this stage (normalized units).
        seconds: wall time of the stage; stopped: why it ended.
        phases: one summary per training phase (kind, steps, loss before / after,
            seconds, why it stopped), see :mod:`msnn.phases`.
    """

    adam_steps: int
    lbfgs_iterations: int
    lbfgs_evaluations: int
    final_loss: float
    loss_history: np.ndarray = field(repr=False)
    rms_after: float = math.nan
    seconds: float = 0.0
    stopped: str = "budget"
    phases: list = field(default_factory=list)


def float64_array(a: Any, name: str) -> np.ndarray:
    """``a`` (array-like or tensor) as a float64 numpy array, refused with a ValueError that
    names it if it is not numeric, empty, or holds NaN or inf."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (a GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch.device.

    Raises:
        ValueError: an unknown device, or a GPU asked for where torch sees none.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no GPU is visible to torch")
    return dev


def _is_sequence(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def per_stage(value: Any, n: int, name: str, *, nested: bool = False) -> list:
    """One value for every stage, or a list of exactly ``n`` values.

    ``nested``: a single value is itself a sequence (e.g. ``widths=(20, 20)``); a list
    of sequences then gives one per stage.

    Raises:
        ValueError: a list whose length is not ``n``.
    """
    if _is_sequence(value) and (not nested or (len(value) and all(_is_sequence(v) for v in value))):
        vals = list(value)
        if len(vals) != n:
            raise ValueError(f"{name} needs 1 or n_stages = {n} values, got {len(vals)}")
        return vals
    return [value] * n


def count(value: Any, name: str, minimum: int = 0) -> int:
    """An integer (not a bool) ``>= minimum``; numpy integers accepted.

    Raises:
        ValueError: anything else, with the name and the value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def settings_key(settings: dict, *arrays: np.ndarray) -> str:
    """A hex digest of the data and the settings: a checkpoint is resumed only under the same key."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


class CheckpointFile:
    """A driver's per-stage checkpoint: one file, written atomically after every stage.

    ``save(key, payload)`` stores a dict under the key; ``load(key)`` returns it, or
    None when there is no file, or (with a warning) when the file holds another key.
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = os.fspath(path) if path is not None else None

    def __bool__(self) -> bool:
        return self.path is not None

    def save(self, key: str, payload: dict) -> None:
        if self.path is None:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)) or ".", exist_ok=True)
        tmp = self.path + ".tmp"
        torch.save({"key": key, **payload}, tmp)
        os.replace(tmp, self.path)

    def load(self, key: str, map_location: Any | None = None) -> dict | None:
        if self.path is None or not os.path.exists(self.path):
            return None
        ck = torch.load(self.path, map_location=map_location, weights_only=False)
        if ck.get("key") != key:
            warnings.warn(f"checkpoint {self.path} is for other data or settings: ignored", stacklevel=3)
            return None
        return ck


def states(networks: Iterable[torch.nn.Module]) -> list[dict]:
    """The networks' state dicts on the CPU (what a checkpoint stores)."""
    return [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in networks]


class ParamsMixin:
    """``get_params`` / ``set_params`` in scikit-learn's shape, from the ``__init__`` signature.

    An estimator stores every ``__init__`` argument unchanged under its own name, so
    that ``type(est)(**est.get_params())`` builds an equal, unfitted copy (what
    scikit-learn's ``clone`` does), without scikit-learn as a dependency.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def _store_params(self, given: dict) -> None:
        """Store every constructor argument as given: ``self._store_params(locals())`` in ``__init__``."""
        for name in self._param_names():
            setattr(self, name, given[name])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "ParamsMixin":
        """Set constructor arguments (validated as the constructor does); returns self.

        Raises:
            ValueError: an argument the constructor does not take, or an invalid value.
        """
        names = self._param_names()
        bad = sorted(set(params) - set(names))
        if bad:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {bad}; its parameters are {names}")
        merged = self.get_params() | params
        fresh = type(self)(**merged)  # validates
        for name in names:
            setattr(self, name, getattr(fresh, name))
        for name, value in vars(fresh).items():
            if name.startswith("_") and not name.endswith("_"):
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = []
        for name in self._param_names():
            default = sig.parameters[name].default
            value = getattr(self, name)
            try:
                same = default is not inspect.Parameter.empty and bool(value == default)
            except Exception:  # arrays, tensors: show them
                same = False
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"
