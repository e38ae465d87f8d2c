"""What a chapter calls: its run's profile, device and seed, its claims table, checkpoints.

Every chapter starts with::

    from msnn.book import chapter_context, checkpoint_path
    ctx = chapter_context("04-regression", profile, device, seed)

where ``profile``, ``device`` and ``seed`` come from the chapter's cell tagged
``parameters`` (papermill replaces them when the book's ``run`` command executes the
chapter).
"""
from __future__ import annotations

from typing import Any

import os
import sys
import warnings
from dataclasses import dataclass

__all__ = ["PROFILES", "CHECKPOINT_ENV", "ChapterContext", "chapter_context", "checkpoint_path", "show_warning"]

#: The run profiles: ``quick`` (a CPU, minutes), ``full`` (the paper's settings), ``paper``.
PROFILES = ("quick", "full", "paper")
#: The environment variable that holds the folder of a run's checkpoints.
CHECKPOINT_ENV = "MSNN_CHECKPOINT_DIR"


@dataclass
class ChapterContext:
    """What a chapter knows about its run: profile, torch device, seed, claims table."""

    chapter: str
    profile: str
    device: "object"
    seed: int
    claims: "object"

    def pick(self, settings: dict) -> dict:
        """The settings of this run's profile from ``{"quick": {...}, "full": {...}}``.

        A ``paper`` run falls back to ``full`` where a chapter has no separate paper level.
        """
        if self.profile in settings:
            return settings[self.profile]
        if self.profile == "paper" and "full" in settings:
            return settings["full"]
        raise ValueError(f"chapter {self.chapter} has no settings for profile {self.profile!r}")


def chapter_context(chapter: str, profile: str, device: str = "auto", seed: int = 0) -> ChapterContext:
    """Validate a chapter's parameters and return its :class:`ChapterContext`.

    ``device="auto"`` picks CUDA when a GPU is visible, else the CPU. On the CPU the
    chapter's torch runs on one thread: the papers' networks are far too small to
    gain from more, and on a shared machine extra threads that wait on each other
    make steps ten times slower. (This is the book's setting for its own chapters;
    the ``msnn`` library itself never changes torch's global defaults.)

    Warnings are shown as ``Category: message``, without the file and line of the
    kernel's temporary copy of the cell (a path that means nothing to a reader).
    """
    import torch

    from .._common import resolve_device  # the library's rule: "auto" is CUDA when a GPU is visible
    from .claims import ClaimTable

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    dev = resolve_device(device)
    warnings.showwarning = show_warning
    if dev.type == "cpu":
        torch.set_num_threads(1)
    torch.manual_seed(seed)
    return ChapterContext(chapter, profile, dev, int(seed), ClaimTable(chapter, profile, dev.type))


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any | None = None, line: str | None = None) -> None:
    """Write a warning as ``Category: message`` (the ``warnings.showwarning`` of chapters).

    The default shows where the warning was raised, which in a notebook is a file of
    the kernel's temporary folder followed by the line of the cell.
    """
    out = sys.stderr if file is None else file
    try:
        out.write(f"{category.__name__}: {message}\n")
    except (AttributeError, OSError):  # no stream to write to (as the default does)
        pass


def checkpoint_path(name: str) -> str | None:
    """Where a long stage saves its checkpoint: a file under $MSNN_CHECKPOINT_DIR, which the
    ``run`` command sets for ``full`` and ``paper`` runs; None (no checkpoint) otherwise."""
    d = os.environ.get(CHECKPOINT_ENV)
    if not d:
        return None
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"{name}.pt")


