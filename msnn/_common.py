"""What every module shares: devices, per-stage settings, input checks, checkpoints, warnings,
the estimator contract.

The stage loop itself is :mod:`msnn.engine`; the optimizers are :mod:`msnn.phases`.
"""
from __future__ import annotations

import hashlib
import math
import inspect
import json
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

__all__ = ["NotFittedError", "as_points", "Float32Warning", "SparseDataWarning", "StageWarning", "show_progress", "resolve_device", "per_stage", "count", "integers", "finite_float",
           "positive_float", "positive_floats", "one_of", "flag", "optional_path", "rms", "float64_array", "settings_key",
           "StepCounts", "StageRun", "ParamsMixin", "states"]


class NotFittedError(ValueError, AttributeError):
    """A fitted attribute or a prediction was asked of an estimator before ``fit`` / ``solve``.

    A ``ValueError`` and an ``AttributeError``, as in scikit-learn, so that either
    ``except`` clause catches it."""


class Float32Warning(UserWarning):
    """Training in float32: errors cannot go below about 1e-7 (single precision)."""


class SparseDataWarning(UserWarning):
    """The data are too sparse for the residue's frequency: N_d < 6 pi f_d (eq. 2.10)."""


class StageWarning(UserWarning):
    """A fit stopped early because a stage was rejected, or gained little, on points it did
    not train on: fewer stages than asked for were kept, and the message says why."""


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
    names it if it is complex, not numeric, empty, or holds NaN or inf.

    Complex values are refused even with a zero imaginary part: casting would drop the
    imaginary part with only a warning.
    """
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if a.is_complex():
            raise ValueError(f"{name} is complex (dtype {a.dtype}): pass its real part, or fit the real and "
                             "imaginary parts separately")
        a = a.numpy()
    try:
        kind = np.asarray(a).dtype.kind
    except (TypeError, ValueError):  # ragged and the like: the conversion below says why
        kind = ""
    if kind == "c" or (kind == "O" and any(isinstance(v, complex) for v in np.asarray(a).ravel())):
        raise ValueError(f"{name} is complex: pass its real part, or fit the real and imaginary parts separately")
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def as_points(a: ArrayLike, dim: int | None, name: str, dtype: type = np.float64) -> np.ndarray:
    """Points (numpy, torch or nested lists) as a checked numpy array of shape (N, d).

    A 1-D input is N points on a line when ``dim`` is None or 1, else one point.

    Args:
        a: the points.
        dim: the number of columns they must have (None: any).
        name: what they are, for the error messages.
        dtype: the array's dtype.

    Raises:
        ValueError: not two-dimensional, ``dim`` not matched, or NaN/inf values.
    """
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=dtype)
    if a.ndim == 1:
        a = a[:, None] if dim in (None, 1) else a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d), got {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name} has {a.shape[1]} columns but the domain has dimension {dim}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (a GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch.device.

    Raises:
        ValueError: an unknown device, or a GPU asked for where torch sees none (the message
            names the parameter ``device``).
    """
    accepted = "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device"
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ValueError(f"unknown device {device!r}: device must be {accepted} ({exc})") from None
    else:
        raise ValueError(f"unknown device {device!r}: device must be {accepted}")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: device must be {accepted}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(dev)!r} was asked for but no GPU is visible to torch: use device='cpu' "
                         "or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(dev)!r} was asked for but torch sees {torch.cuda.device_count()} GPU(s)")
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
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _is_int(value: Any) -> bool:
    """An int or a numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    """A real number (int, float, numpy int or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def integers(values: Any, name: str, minimum: int = 0, *, nonempty: bool = False) -> tuple[int, ...]:
    """A sequence (tuple, list, 1-D array) of integers ``>= minimum``, as a tuple of ints.

    Integers are checked, not truncated: 2.7 and True are refused, numpy integers accepted.

    Args:
        values: the sequence.
        name: the parameter's name, for the error message.
        minimum: the smallest value allowed.
        nonempty: refuse an empty sequence.

    Raises:
        ValueError: anything else, with the name and the value.
    """
    ok = _is_sequence(values) and not (isinstance(values, np.ndarray) and values.ndim != 1)
    ok = ok and all(_is_int(v) and v >= minimum for v in values)
    if not ok or (nonempty and len(values) == 0):
        what = "a non-empty sequence" if nonempty else "a sequence"
        raise ValueError(f"{name} must be {what} of integers >= {minimum}, got {values!r}")
    return tuple(int(v) for v in values)


def finite_float(value: Any, name: str, *, minimum: float | None = None, above: float | None = None,
                 below: float | None = None, maximum: float | None = None, none: bool = False) -> float | None:
    """A finite real number (int, float, numpy scalar; not a bool, a string or a complex), as a float.

    Args:
        value: the number.
        name: the parameter's name, for the error message.
        minimum, above: ``value >= minimum``, ``value > above`` (give at most one).
        below, maximum: ``value < below``, ``value <= maximum`` (give at most one).
        none: None is allowed (and returned).

    Raises:
        ValueError: anything else, with the name, the value and what is accepted.
    """
    if none and value is None:
        return None
    ok = _is_real(value) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (above is None or value > above)
    ok = ok and (maximum is None or value <= maximum) and (below is None or value < below)
    if not ok:
        low = minimum if minimum is not None else above
        high = maximum if maximum is not None else below
        if low is not None and high is not None:
            cond = (f" in {'[' if minimum is not None else '('}{low:g}, "
                    f"{high:g}{']' if maximum is not None else ')'}")
        elif low is not None:
            cond = f" {'>=' if minimum is not None else '>'} {low:g}"
        elif high is not None:
            cond = f" {'<=' if maximum is not None else '<'} {high:g}"
        else:
            cond = ""
        raise ValueError(f"{name} must be {'None or ' if none else ''}a finite number{cond}, got {value!r}")
    return float(value)


def positive_float(value: Any, name: str) -> float:
    """A finite real number ``> 0``, as a float (see :func:`finite_float`).

    Raises:
        ValueError: anything else, with the name and the value.
    """
    return finite_float(value, name, above=0.0)


def positive_floats(value: Any, name: str) -> list[float]:
    """A finite number ``> 0``, or a non-empty 1-D sequence of them (one per input axis), as a list of floats.

    Raises:
        ValueError: anything else, with the name and the value.
    """
    if _is_sequence(value) and not (isinstance(value, np.ndarray) and value.ndim != 1):
        vals = list(value)
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        vals = [value.item()]
    else:
        vals = [value]
    if vals and all(_is_real(v) and math.isfinite(v) and v > 0 for v in vals):
        return [float(v) for v in vals]
    raise ValueError(f"{name} must be a finite number > 0 or a non-empty list of them (one per input axis), "
                     f"got {value!r}")


def one_of(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared with values of the same type only: an
    array or a list is never equal to a string).

    Raises:
        ValueError: anything else, with the name, the value and the choices.
    """
    for c in choices:
        if value is c:
            return value
        if c is not None and isinstance(value, type(c)):
            try:
                if bool(value == c):
                    return value
            except (TypeError, ValueError):
                pass
    raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")


def flag(value: Any, name: str, *, allow_none: bool = False) -> bool | None:
    """True or False (a numpy bool too), or None where ``allow_none``; 0, 1 and strings are refused.

    Raises:
        ValueError: anything else, with the name and the value.
    """
    if allow_none and value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be {'None, True or False' if allow_none else 'True or False'}, got {value!r}")


def optional_path(value: Any, name: str) -> str | None:
    """None, or a file path (a non-empty str or an os.PathLike), as a str.

    Raises:
        ValueError: anything else, with the name and the value.
    """
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"{name} must be None or a file path (a non-empty str or os.PathLike), got {value!r}")


#: Within these bounds of max|a|, RMS(a) is computed as sqrt(mean(a**2)): no square over- or
#: underflows to matter, and the result is the one fits have always used, to the last bit.
_RMS_SAFE = (1e-100, 1e100)


def rms(a: ArrayLike) -> float:
    """The root mean square of ``a``, safe at any float64 scale.

    ``sqrt(mean(a**2))`` when ``1e-100 < max|a| < 1e100`` (bit for bit what it always was),
    else ``m sqrt(mean((a / m)**2))`` with ``m = max|a|``, which neither overflows (|a| above
    about 1e154) nor underflows (below about 1e-162). 0 for an all-zero array.
    """
    a = np.asarray(a, dtype=np.float64)
    m = float(np.max(np.abs(a))) if a.size else 0.0
    if _RMS_SAFE[0] < m < _RMS_SAFE[1] or m == 0.0 or not math.isfinite(m):
        return float(np.sqrt(np.mean(a ** 2)))
    return m * float(np.sqrt(np.mean((a / m) ** 2)))


def settings_key(settings: dict, *arrays: np.ndarray) -> str:
    """A hex digest of the data and the settings: a checkpoint is resumed only under the same key."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


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
