"""The landing page's chapter map and reproduction scorecard, generated from the claims files.

Every executed chapter leaves its claims in ``book/NN-slug.claims.json`` (see
:mod:`msnn.claims` and the book's ``run`` command). This module turns those files
into two MyST markdown fragments that the landing page includes:

* ``book/_generated/chapters.md``: the map from chapters to the papers' sections,
  figures and algorithms, with a link for every chapter the table of contents holds
  and its claim counts;
* ``book/_generated/scorecard.md``: every claim, the paper's value beside ours, the
  computed verdict, and where and how each chapter was executed (profile, device,
  torch version, wall time).

The fragments depend only on the claims files and ``_toc.yml`` (no clock, no
machine), so they are committed and a test checks that they are current. The
book's ``build`` command regenerates them before it calls Jupyter Book; by hand::

    python -m msnn.scorecard          # rewrite book/_generated/*.md
    python -m msnn.scorecard --check  # exit 1 if they are stale
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from dataclasses import dataclass

__all__ = ["PLAN", "PlannedChapter", "load_claims", "render_chapter_map", "render_scorecard", "write", "main"]

GENERATED = os.path.join("book", "_generated")
MAIN = "Wang & Lai (2024)"
SI = "Ng, Wang & Lai (2024)"
BEYOND = "beyond the papers"


@dataclass(frozen=True)
class PlannedChapter:
    """One chapter of the book and the part of the papers it reproduces.

    Attributes:
        number: two-digit chapter number, the prefix of its file ``book/NN-slug``.
        topic: a few words, shown for a chapter that is not in the book yet.
        paper: which paper.
        sections: the paper's sections and appendices.
        figures: the paper's figures.
        algorithm: the paper's algorithm, if the chapter implements one.
    """

    number: str
    topic: str
    paper: str
    sections: str
    figures: str
    algorithm: str = ""


#: The chapters of the book, in order, with what each reproduces.
PLAN: tuple[PlannedChapter, ...] = (
    PlannedChapter("01", "Limits of single-stage training: the plateau", MAIN, "Sec. 2.1, App. A-B",
                   "Figs. 1(a,b,d), 15, 16"),
    PlannedChapter("02", "Spectral bias and the first-layer fix", MAIN, "Sec. 2.2.2, eq. 2.7", "Figs. 2, 3"),
    PlannedChapter("03", "Criteria for the scale factor", MAIN, "Sec. 2.2, eq. 2.8-2.10", "Fig. 4"),
    PlannedChapter("04", "Multi-stage regression", MAIN, "Sec. 2.3, eq. 2.11-2.12", "Figs. 1, 5, 6",
                   "Algorithm 1"),
    PlannedChapter("05", "From equation residue to error", MAIN, "Sec. 3.1, eq. 3.3-3.28", "Figs. 7, 8",
                   "Algorithm 2"),
    PlannedChapter("06", "The equation weight and other PINN settings", MAIN, "Sec. 3.2-3.3, eq. 3.29-3.40",
                   "Figs. 9, 10", "Algorithm 3"),
    PlannedChapter("07", "Multi-stage PINNs", MAIN, "Sec. 3.4-3.5", "Figs. 11-13", "Algorithm 4"),
    PlannedChapter("08", "Self-similar Burgers: a forward-inverse problem", MAIN, "Sec. 4, App. D",
                   "Figs. 14, 17"),
    PlannedChapter("09", "Spectrum-informed initialization (SI-MSNN)", SI, "Sec. 2-3", "Fig. 1", "Algorithm 1"),
    PlannedChapter("10", "SI-MSNN on 2D decaying turbulence", SI, "Sec. 4", "Figs. 2, 3"),
    PlannedChapter("11", "Beyond the papers: solving the linear part exactly", BEYOND,
                   "exact output layer, variable projection (LSGD, seed 003)", "Figs. 1, 5, 11 revisited"),
)

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|$#~{}])")


def _md(text) -> str:
    """Text as a MyST table cell: markdown's special characters escaped, one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _badge(verdict: str) -> str:
    kind = {"PASS": "success", "FAIL": "danger"}.get(verdict, "secondary")
    return f"{{bdg-{kind}}}`{verdict}`"


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def load_claims(root: str) -> dict[str, dict]:
    """Chapter slug -> the parsed ``book/NN-slug.claims.json``, for every claims file."""
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "book", "[0-9][0-9]-*.claims.json"))):
        slug = os.path.basename(path)[: -len(".claims.json")]
        with open(path) as fh:
            data = json.load(fh)
        if not isinstance(data.get("claims"), list):
            raise ValueError(f"{os.path.relpath(path, root)} has no list of claims")
        out[slug] = data
    return out


def toc_documents(root: str) -> set[str]:
    """The documents the table of contents ``_toc.yml`` names (``book/04-regression`` ...)."""
    path = os.path.join(root, "_toc.yml")
    if not os.path.exists(path):
        return set()
    with open(path) as fh:
        text = fh.read()
    return {re.sub(r"\.(md|ipynb)$", "", m) for m in re.findall(r"(?:file|root):\s*([^\s#]+)", text)}


def _counts(data: dict) -> dict:
    n = {"PASS": 0, "FAIL": 0, "REPORT": 0}
    for c in data["claims"]:
        n[c.get("verdict", "REPORT")] = n.get(c.get("verdict", "REPORT"), 0) + 1
    return n


def _chapter_link(slug: str, docs: set[str], text: str | None = None) -> str:
    doc = f"book/{slug}"
    if doc not in docs:
        return f"`{slug}` (not in the table of contents)"
    return f"{{doc}}`{text or f'chapter {int(slug[:2])}'} </{doc}>`"


def _title(root: str, slug: str) -> str:
    """The chapter's title: the first level-1 heading of its source ``book/NN-slug.md``."""
    path = os.path.join(root, "book", f"{slug}.md")
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                if line.startswith("# "):
                    return f"{int(slug[:2])}. {line[2:].strip()}"
    return slug


def _in_book(number: str, docs: set[str]) -> str | None:
    hits = sorted(d for d in docs if re.fullmatch(rf"book/{number}-[\w-]+", d))
    return hits[0] if hits else None


def render_chapter_map(root: str) -> str:
    """The chapter map: each planned chapter, what it reproduces, and its claim counts."""
    docs = toc_documents(root)
    claims = load_claims(root)
    lines = [
        "<!-- Generated by msnn.scorecard from _toc.yml and book/*.claims.json: do not edit. -->",
        "",
        "| # | chapter | reproduces | claims |",
        "| --- | --- | --- | --- |",
    ]
    for ch in PLAN:
        doc = _in_book(ch.number, docs)
        slug = doc.split("/", 1)[1] if doc else None
        title = f"{{doc}}`/{doc}`" if doc else f"{_md(ch.topic)} *(planned)*"
        what = "; ".join(_md(p) for p in (ch.sections, ch.figures, ch.algorithm) if p)
        if ch.paper == SI:
            what = f"SI paper: {what}"
        elif ch.paper == BEYOND:
            what = f"beyond the papers: {what}"
        if slug in claims:
            n = _counts(claims[slug])
            score = f"{n['PASS']} pass, {n['FAIL']} fail, {n['REPORT']} reported"
        else:
            score = "-"
        lines.append(f"| {int(ch.number)} | {title} | {what} | {score} |")
    return "\n".join(lines) + "\n"


def render_scorecard(root: str) -> str:
    """The scorecard: totals per chapter, where each ran, then every claim of every chapter."""
    docs = toc_documents(root)
    claims = load_claims(root)
    out = ["<!-- Generated by msnn.scorecard from book/*.claims.json: do not edit. -->", ""]
    if not claims:
        out.append("No chapter has been executed yet, so there are no claims to show.")
        return "\n".join(out) + "\n"

    total = {"PASS": 0, "FAIL": 0, "REPORT": 0}
    rows = []
    for slug, data in claims.items():
        n = _counts(data)
        for k in total:
            total[k] += n.get(k, 0)
        run = data.get("run", {})
        rows.append(f"| {_chapter_link(slug, docs)} | `{_md(run.get('profile', data.get('profile', '-')))}` "
                    f"| {_md(data.get('device', '-'))} | {n['PASS']} | {n['FAIL']} | {n['REPORT']} "
                    f"| {sum(n.values())} |")
    n_claims = sum(total.values())
    out += [
        f"{n_claims} claims in {len(claims)} executed chapter{'s' if len(claims) != 1 else ''}: "
        f"**{total['PASS']} pass**, **{total['FAIL']} fail**, {total['REPORT']} reported without a test. "
        "Each verdict was computed from the claim's tolerance when the chapter ran; the chapter "
        "discusses the claims it does not reach.",
        "",
        "| chapter | profile | device | pass | fail | reported | claims |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        f"| **all** | | | **{total['PASS']}** | **{total['FAIL']}** | **{total['REPORT']}** | **{n_claims}** |",
        "",
        "### Where and how the pages were executed",
        "",
        "| chapter | profile | device | machine | torch | seed | wall time | finished |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for slug, data in claims.items():
        run = data.get("run", {})
        out.append(
            f"| {_chapter_link(slug, docs)} | `{_md(run.get('profile', data.get('profile', '-')))}` "
            f"| {_md(data.get('device', '-'))} | {_md(data.get('machine') or '-')} | {_md(data.get('torch', '-'))} "
            f"| {_md(run.get('seed', '-'))} | {_duration(run.get('wall_seconds'))} | {_md(run.get('finished', '-'))} |")
    walls = [d.get("run", {}).get("wall_seconds") for d in claims.values()]
    walls = [w for w in walls if isinstance(w, (int, float))]
    if len(walls) > 1:
        out.append(f"| **all** | | | | | | **{_duration(sum(walls))}** | |")

    for slug, data in claims.items():
        run = data.get("run", {})
        n = _counts(data)
        out += [
            "",
            f"### {_md(_title(root, slug))}",
            "",
            f"{_chapter_link(slug, docs, 'The chapter')}, profile `{_md(run.get('profile', data.get('profile', '-')))}` "
            f"on {_md(data.get('device', '-'))}: {n['PASS']} pass, {n['FAIL']} fail, {n['REPORT']} reported.",
            "",
            "| claim | what | paper | ours | tolerance | verdict |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for c in data["claims"]:
            what = _md(c.get("what", ""))
            if c.get("note"):
                what += f" *({_md(c['note'])})*"
            out.append(f"| {_md(c.get('id', ''))} | {what} | {_md(c.get('paper', ''))} "
                       f"| {_md(c.get('measured_text', c.get('measured', '')))} | {_md(c.get('tolerance', ''))} "
                       f"| {_badge(c.get('verdict', 'REPORT'))} |")
    return "\n".join(out) + "\n"


def _targets(root: str) -> dict[str, str]:
    return {
        os.path.join(root, GENERATED, "chapters.md"): render_chapter_map(root),
        os.path.join(root, GENERATED, "scorecard.md"): render_scorecard(root),
    }


def write(root: str) -> list[str]:
    """Regenerate ``book/_generated/chapters.md`` and ``scorecard.md``; return the files that changed."""
    changed = []
    for path, text in _targets(root).items():
        old = None
        if os.path.exists(path):
            with open(path) as fh:
                old = fh.read()
        if old != text:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(text)
            changed.append(path)
    return changed


def stale(root: str) -> list[str]:
    """The generated files that differ from what the claims files and ``_toc.yml`` give now."""
    out = []
    for path, text in _targets(root).items():
        if not os.path.exists(path):
            out.append(path)
            continue
        with open(path) as fh:
            if fh.read() != text:
                out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m msnn.scorecard [--check] [--root DIR]``."""
    ap = argparse.ArgumentParser(prog="python -m msnn.scorecard", description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="repository root (default: current directory)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the generated pages are stale, write nothing")
    args = ap.parse_args(argv)
    root = os.path.abspath(args.root)
    if args.check:
        bad = stale(root)
        for p in bad:
            print(f"stale: {os.path.relpath(p, root)} (run python -m msnn.scorecard)", file=sys.stderr)
        return 1 if bad else 0
    for p in write(root):
        print(f"wrote {os.path.relpath(p, root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
