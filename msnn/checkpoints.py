"""Stage checkpoints that hold only data: one file per stage, named by the settings it was trained under.

A fitted stage is saved as its network's tensors and a JSON header (the stage record and
the settings key), written by :func:`torch.save` and read back with
``torch.load(weights_only=True)``, which unpickles tensors and plain containers only: a
file at a checkpoint path cannot run code. The file's name carries the stage number and
the first digits of a key over the data and every setting that shapes stages 1..k
(``StageCheckpoints.file``), so

* a fit with more stages reuses the stages it has in common with an earlier one;
* a fit under other settings finds no file of its own and trains; the other run's files
  are kept, not overwritten;
* a damaged file (truncated, not a checkpoint, non-finite weights, a header that does not
  match) is moved aside with a warning that names it, and the stage is trained again.

The stage engine (:mod:`msnn.engine`) saves after every stage and resumes from here.
"""
from __future__ import annotations

import base64
import glob
import json
import os
import tempfile
import warnings
from typing import Any

import numpy as np
import torch

__all__ = ["CheckpointWarning", "StageCheckpoints", "encode", "decode"]


class CheckpointWarning(UserWarning):
    """A checkpoint was not used: damaged, or saved under other data or settings."""


def encode(value: Any) -> Any:
    """A stage record's values as JSON: arrays (exact, base64), tuples, numpy scalars."""
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        return {"__ndarray__": base64.b64encode(a.tobytes()).decode("ascii"), "dtype": a.dtype.str,
                "shape": list(a.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"a stage record holds a {type(value).__name__}, which a checkpoint cannot store as data")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            a = np.frombuffer(base64.b64decode(value["__ndarray__"]), dtype=np.dtype(value["dtype"]))
            return a.reshape(value["shape"]).copy()
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class StageCheckpoints:
    """A driver's stage checkpoints at ``path`` (a file name; the stages go beside it).

    Stage k (0-based) under settings key ``key`` is the file ``{path}.stage{k+1:02d}.{key[:16]}.pt``.
    ``path=None``: no checkpoints (every method does nothing).
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"checkpoint must be None or a file path, got {type(path).__name__}")
        self.path = os.fspath(path) if path is not None else None

    def __bool__(self) -> bool:
        return self.path is not None

    def file(self, k: int, key: str) -> str:
        return f"{self.path}.stage{k + 1:02d}.{key[:16]}.pt"

    def check_writable(self) -> None:
        """Raise before any training if the checkpoint folder cannot be written.

        Raises:
            ValueError: naming the folder and the reason.
        """
        if self.path is None:
            return
        folder = os.path.dirname(os.path.abspath(self.path)) or "."
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".msnn-write-test-"):
                pass
        except OSError as exc:
            raise ValueError(f"checkpoint {self.path}: its folder {folder} cannot be written ({exc.strerror or exc}); "
                             "give a writable path, or checkpoint=None") from None

    def save(self, k: int, key: str, record: dict, state: dict[str, torch.Tensor]) -> None:
        """Write stage k atomically: the record (JSON) and the network's tensors (on the CPU)."""
        if self.path is None:
            return
        header = json.dumps({"key": key, "stage": k, "record": encode(record)})
        tensors = {name: t.detach().cpu().clone() for name, t in state.items()}
        f = self.file(k, key)
        tmp = f + ".tmp"
        torch.save({"header": header, "tensors": tensors}, tmp)
        os.replace(tmp, f)

    def load(self, k: int, key: str) -> tuple[dict, dict] | None:
        """Stage k's ``(record, state)`` saved under ``key``, or None (no such file, or a damaged
        one, which is moved aside with a :class:`CheckpointWarning`)."""
        if self.path is None:
            return None
        f = self.file(k, key)
        if not os.path.exists(f):
            others = sorted(set(glob.glob(glob.escape(self.path) + f".stage{k + 1:02d}.*.pt")) - {f})
            if others:
                warnings.warn(f"checkpoint {self.path}: stage {k + 1} was saved for other data or settings "
                              f"({', '.join(os.path.basename(o) for o in others)}): those files are kept, and the "
                              "stage is trained again", CheckpointWarning, stacklevel=4)
            return None
        try:
            obj = torch.load(f, map_location="cpu", weights_only=True)
            header = json.loads(obj["header"])
            if header.get("key") != key or header.get("stage") != k:
                raise ValueError("its header is for another stage or other settings")
            state = obj["tensors"]
            if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
                raise ValueError("it holds no network weights")
            if not all(bool(torch.all(torch.isfinite(t))) for t in state.values() if t.is_floating_point()):
                raise ValueError("its weights are not finite")
            record = decode(header["record"])
        except Exception as exc:  # truncated, not a checkpoint, refused by weights_only, inconsistent
            bad = f + ".bad"
            try:
                os.replace(f, bad)
                where = f"moved to {bad}"
            except OSError:
                where = "left in place"
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"checkpoint {f} is damaged ({type(exc).__name__}: {reason[:200]}); {where}; the stage "
                          "is trained again", CheckpointWarning, stacklevel=4)
            return None
        return record, state
