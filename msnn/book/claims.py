"""Claims: each quantitative statement of the papers, measured and judged.

A :class:`Claim` holds what is claimed, the paper's value (as text), the measured
value and a tolerance *rule*; the verdict (PASS / FAIL, or REPORT for numbers the
paper gives without a test) is computed from the rule, never typed. A
:class:`ClaimTable` renders the chapter's table (HTML in the book, plain text for
nbval, whose text form keeps only verdicts and orders of magnitude) and writes
the claims as JSON beside the executed notebook.
"""
from __future__ import annotations

import html
import json
import math
import os
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Claim", "ClaimTable", "at_most", "at_least", "between", "within_factor", "is_true", "report", "round_off",
    "ROUND_OFF",
    "fmt", "order_of_magnitude",
]

CLAIMS_ENV = "MSNN_CLAIMS_FILE"


def fmt(v: Any) -> str:
    """Short human form of a measured value."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if 1e-2 <= abs(v) < 1e4:
            return f"{v:.3g}"
        return f"{v:.2e}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(u) for u in v) + "]"
    return str(v)


def order_of_magnitude(v: Any) -> str:
    """The order of magnitude of a number, '1e-09' style (what nbval compares)."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, float, np.integer, np.floating)):
        v = float(v)
        if not math.isfinite(v) or v == 0:
            return str(v)
        return f"{'-' if v < 0 else ''}1e{int(math.floor(math.log10(abs(v)))):+03d}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(order_of_magnitude(u) for u in v) + "]"
    return str(v)


@dataclass(frozen=True)
class Rule:
    """A tolerance rule: ``kind`` and its numbers; ``check(value)`` gives True/False/None."""

    kind: str
    a: float | None = None
    b: float | None = None

    def check(self, v: float) -> bool | None:
        if self.kind == "report":
            return None
        if self.kind == "is_true":
            return bool(v)
        if v is None or isinstance(v, str):
            return False
        v = float(v)
        if not math.isfinite(v):
            return False
        if self.kind == "at_most":
            return v <= self.a
        if self.kind == "at_least":
            return v >= self.a
        if self.kind == "between":
            return self.a <= v <= self.b
        if self.kind == "within_factor":
            if v <= 0 or self.a <= 0:
                return False
            return max(v / self.a, self.a / v) <= self.b
        raise ValueError(f"unknown rule {self.kind}")

    def describe(self) -> str:
        f = lambda x: fmt(float(x))  # noqa: E731
        return {
            "at_most": lambda: f"<= {f(self.a)}" + (" (10 eps: round-off)" if self.a == ROUND_OFF else ""),
            "at_least": lambda: f">= {f(self.a)}",
            "between": lambda: f"in [{f(self.a)}, {f(self.b)}]",
            "within_factor": lambda: f"within x{fmt(self.b)} of {f(self.a)}",
            "is_true": lambda: "holds",
            "report": lambda: "report only",
        }[self.kind]()


def at_most(x: float) -> Rule:
    """Pass if measured <= x."""
    return Rule("at_most", float(x))


#: What a paper's "~1e-16" or "round-off" is judged by: ten times float64's machine epsilon,
#: the landing page's machine precision.
ROUND_OFF = 10 * float(np.finfo(np.float64).eps)


def round_off() -> Rule:
    """Pass if measured <= 10 float64 epsilons (2.2e-15): the paper's "~1e-16" or "round-off"."""
    return Rule("at_most", ROUND_OFF)


def at_least(x: float) -> Rule:
    """Pass if measured >= x."""
    return Rule("at_least", float(x))


def between(lo: float, hi: float) -> Rule:
    """Pass if lo <= measured <= hi."""
    if lo > hi:
        raise ValueError(f"between: lo {lo} > hi {hi}")
    return Rule("between", float(lo), float(hi))


def within_factor(ref: float, factor: float) -> Rule:
    """Pass if measured is within a multiplicative ``factor`` of ``ref``."""
    if factor < 1:
        raise ValueError(f"within_factor: factor must be >= 1, got {factor}")
    return Rule("within_factor", float(ref), float(factor))


def is_true() -> Rule:
    """Pass if the measured value (a boolean statement) holds."""
    return Rule("is_true")


def report() -> Rule:
    """No test: the paper gives a number, we report ours beside it."""
    return Rule("report")


@dataclass
class Claim:
    """One claim of the paper: id, what, the paper's value, ours, and the tolerance rule."""

    id: str
    what: str
    paper: str
    measured: Any
    rule: Rule
    note: str = ""

    @property
    def verdict(self) -> str:
        ok = self.rule.check(self.measured)
        return "REPORT" if ok is None else ("PASS" if ok else "FAIL")

    def to_dict(self) -> dict:
        m = self.measured
        if isinstance(m, (np.floating, np.integer, np.bool_)):
            m = m.item()
        if isinstance(m, (list, tuple)):
            m = [x.item() if hasattr(x, "item") else x for x in m]
        return {
            "id": self.id, "what": self.what, "paper": self.paper, "measured": m,
            "measured_text": fmt(self.measured), "tolerance": self.rule.describe(),
            "rule": {"kind": self.rule.kind, "a": self.rule.a, "b": self.rule.b},
            "verdict": self.verdict, "note": self.note,
        }


@dataclass
class ClaimTable:
    """The claims of one chapter run.

    Args:
        chapter: chapter slug, e.g. "04-regression".
        profile: the run's profile ("quick", "full", "paper").
        device: where it ran, e.g. "cpu" or "cuda".
    """

    chapter: str
    profile: str
    device: str
    claims: list = field(default_factory=list)

    def add(self, id: str, what: str, paper: str, measured: Any, rule: Rule, note: str = "") -> Claim:
        """Add a claim and return it."""
        if any(c.id == id for c in self.claims):
            raise ValueError(f"claim {id} is already in the table")
        c = Claim(id, what, paper, measured, rule, note)
        self.claims.append(c)
        return c

    def counts(self) -> dict:
        out = {"PASS": 0, "FAIL": 0, "REPORT": 0}
        for c in self.claims:
            out[c.verdict] += 1
        return out

    def to_dict(self) -> dict:
        import torch

        dev = self.device
        if dev.startswith("cuda"):
            try:
                dev = f"{dev} ({torch.cuda.get_device_name()})"
            except Exception:  # pragma: no cover - no GPU here
                pass
        peak = None
        if self.device.startswith("cuda") and torch.cuda.is_available():
            peak = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3)
        return {
            "chapter": self.chapter, "profile": self.profile, "device": dev, "peak_gpu_memory_gib": peak,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores" if not dev.startswith("cuda") else None,
            "torch": torch.__version__, "counts": self.counts(),
            "claims": [c.to_dict() for c in self.claims],
        }

    def save(self, path: str | os.PathLike | None = None) -> str | None:
        """Write the claims as JSON to ``path``, or to $MSNN_CLAIMS_FILE (set by the book's
        ``run`` command); without either, write nothing and return None."""
        path = path or os.environ.get(CLAIMS_ENV)
        if not path:
            return None
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=1, default=str)
        return os.fspath(path)

    def __repr__(self) -> str:
        lines = [f"claims of {self.chapter} ({self.profile}):"]
        for c in self.claims:
            lines.append(f"  {c.id:<6} {c.verdict:<6} measured ~{order_of_magnitude(c.measured)}")
        n = self.counts()
        lines.append(f"  {n['PASS']} PASS, {n['FAIL']} FAIL, {n['REPORT']} REPORT")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"PASS": "#1a7f37", "FAIL": "#cf222e", "REPORT": "#57606a"}
        rows = []
        for c in self.claims:
            note = f"<br><small>{html.escape(c.note)}</small>" if c.note else ""
            rows.append(
                f"<tr><td>{html.escape(c.id)}</td><td style='text-align:left'>{html.escape(c.what)}{note}</td>"
                f"<td>{html.escape(c.paper)}</td><td>{html.escape(fmt(c.measured))}</td>"
                f"<td>{html.escape(c.rule.describe())}</td>"
                f"<td style='color:{colour[c.verdict]};font-weight:bold'>{c.verdict}</td></tr>")
        n = self.counts()
        return (
            "<table class='msnn-claims'><thead><tr><th>claim</th><th>what</th><th>paper</th>"
            "<th>measured</th><th>tolerance</th><th>verdict</th></tr></thead><tbody>"
            + "".join(rows)
            + f"</tbody></table><p class='msnn-claims-summary'>{self.chapter}, profile "
            f"<code>{html.escape(self.profile)}</code> on <code>{html.escape(self.device)}</code>: "
            f"{n['PASS']} pass, {n['FAIL']} fail, {n['REPORT']} reported.</p>")
