"""The landing page's chapter map and reproduction scorecard, generated from the chapters and
their claims files.

Every executed chapter leaves its claims in ``book/NN-slug.claims.json`` (see
:mod:`msnn.book.claims` and the book's ``run`` command). This module turns those
files, with what each chapter's front matter says it reproduces (see
:mod:`msnn.book.chapters`), into MyST markdown fragments that the landing page
includes, and a figure:

* ``book/_generated/chapters.md``: the map from chapters to the papers' sections,
  figures and algorithms, with a link for every chapter the table of contents holds
  and its claim counts;
* ``book/_generated/scorecard.md``: every claim, the paper's value beside ours, the
  computed verdict, and where and how each chapter was executed (profile, device,
  torch version, wall time);
* ``book/_generated/status.md``: what the landing page opens with, the best error
  reached for each headline result of the papers (:data:`HEADLINES`), the paper's,
  where it was reached, and whether it is machine precision
  (:data:`MACHINE_PRECISION`);
* ``book/_generated/headlines.png``: the same errors as a figure, every headline
  claim of every chapter against the paper's value on a log scale, drawn from the
  numbers in ``book/_generated/headlines.json``.

The fragments depend only on the chapter sources, the claims files and ``_toc.yml``
(no clock, no machine), so they are committed and a test checks that they are
current (the figure through its data file, which is rewritten, and the figure
redrawn, whenever the numbers change). The book's ``build`` and ``run`` commands
regenerate them; by hand::

    python -m msnn.book scorecard          # rewrite book/_generated/
    python -m msnn.book scorecard --check  # exit 1 if they are stale
"""
from __future__ import annotations

import glob
import json
import os
import re
import sys
from dataclasses import dataclass

from .chapters import CAUSES, read_chapter, read_chapters, toc_documents

__all__ = ["HEADLINES", "Headline", "MACHINE_PRECISION", "load_claims", "fail_causes", "cause_problems", "headline_points", "best_headlines",
           "render_chapter_map", "render_scorecard", "render_status", "draw_headlines", "write", "stale"]

GENERATED = os.path.join("book", "_generated")

#: float64's machine epsilon, 2**-52.
EPS64 = sys.float_info.epsilon
#: An error at or below this is called machine precision on the landing page: ten
#: times float64's epsilon, 2.2e-15. The headline solutions are of order one, so an
#: absolute error is also a relative one.
MACHINE_PRECISION = 10 * EPS64


@dataclass(frozen=True)
class Headline:
    """A headline result of the papers and the claims of the book that measure it.

    Attributes:
        name: a few words (``"regression"``).
        what: what is measured, as the status table says it.
        claims: ``(chapter number, claim id)`` of every claim that measures it; the
            best (smallest) error among them is the one reported.
        exact: where the claims record an inferred value rather than an error, the
            exact value; the error is then ``|measured - exact|``.
        errors: claims among ``claims`` that record the error itself even though
            ``exact`` is set (e.g. chapter 11's |lambda - 1/2|).
        paper: the paper's value as text, where the claims' ``paper`` column does not
            give the error (otherwise that column is shown).
        measured_on: where the error is measured (between training points, on the training
            grid, a parameter), as the status table says it.
        precision: claims among ``claims`` trained with msnn's precision schedule (the
            others used the papers' schedule, Adam then L-BFGS).
        off_grid: claims that measure the same kind of model between the training points,
            where ``measured_on`` is the training grid.
    """

    name: str
    what: str
    claims: tuple[tuple[str, str], ...]
    exact: float | None = None
    paper: str | None = None
    errors: tuple[tuple[str, str], ...] = ()
    measured_on: str = ""
    precision: tuple[tuple[str, str], ...] = ()
    off_grid: tuple[tuple[str, str], ...] = ()


#: The papers' headline results: regression, PINNs, the Burgers exponent, turbulence.
HEADLINES: tuple[Headline, ...] = (
    Headline("regression", "Algorithm 1 on eq. (2.2): rms error",
             (("04", "4.3"), ("04", "4.3p"), ("11", "B.4")),
             measured_on="8,000 points, not the training set", precision=(("04", "4.3p"), ("11", "B.4"))),
    Headline("ODE PINN", "Algorithm 4 on eq. (3.3): max error",
             (("07", "7.2"), ("07", "7.2p"), ("11", "B.6")),
             measured_on="a 2,501-point grid, not the collocation points", precision=(("07", "7.2p"), ("11", "B.6"))),
    Headline("diffusion PINN", "Algorithm 4 on the 2D diffusion equation: rms error",
             (("07", "7.6"), ("07", "7.6p")),
             measured_on="a 128 x 128 grid, not the collocation points", precision=(("07", "7.6p"),)),
    Headline("Burgers lambda", "Sec. 4: error of the inferred exponent, |lambda - 1/2|",
             (("08", "8.8-1"), ("08", "8.8-2"), ("08", "8.8-3a"), ("08", "8.8-3b"), ("11", "B.9")), exact=0.5,
             paper="near machine precision after stage 3(b) (Fig. 14)", errors=(("11", "B.9"),),
             measured_on="an inferred parameter", precision=(("11", "B.9"),)),
    Headline("turbulence", "SI paper Sec. 4, 2D turbulence: rms residue / RMS(psi)", (("10", "10.1"),),
             measured_on="the training grid (a residue)", off_grid=(("11", "B.12"),)),
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
        rel = os.path.relpath(path, root)
        with open(path) as fh:
            try:
                data = json.load(fh)
            except ValueError as exc:
                raise ValueError(f"{rel} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
            raise ValueError(f"{rel} has no list of claims")
        if not isinstance(data.get("run", {}), dict):
            raise ValueError(f"{rel}: its 'run' is not an object")
        out[slug] = data
    return out


def fail_causes(root: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Chapter slug -> {claim id: (cause, why)}, from the ``fails`` of each chapter's front matter."""
    out = {}
    for ch in read_chapters(root):
        out[ch.slug] = {cid: (cause, why) for cid, cause, why in ch.fails}
    return out


def _with_causes(data: dict, causes: dict[str, tuple[str, str]]) -> dict:
    """``data`` (a claims file) with each FAIL's ``cause`` and ``why`` from ``causes``, and none elsewhere."""
    out = dict(data, claims=[])
    for c in data["claims"]:
        c = {k: v for k, v in c.items() if k not in ("cause", "why")}
        if c.get("verdict") == "FAIL" and c.get("id") in causes:
            c["cause"], c["why"] = causes[c["id"]]
        out["claims"].append(c)
    return out


def claims_files_with_causes(root: str) -> dict[str, dict]:
    """Path -> the claims file as it should read: each FAIL carries the ``cause`` and ``why`` of its
    chapter's front matter (where the authors write them, after the run), so that a claims file says
    by itself why a claim fails; a claim that no longer FAILs loses them."""
    causes = fail_causes(root)
    return {os.path.join(root, "book", f"{slug}.claims.json"): _with_causes(data, causes.get(slug, {}))
            for slug, data in load_claims(root).items()}


def _claims_text(data: dict) -> str:
    return json.dumps(data, indent=1)  # the layout the book's run command writes


def _read_json(path: str):
    with open(path) as fh:
        return json.load(fh)


def cause_problems(root: str) -> list[str]:
    """What is wrong between the chapters' ``fails`` and their claims files: a claim that FAILs at
    ``full`` or ``paper`` with no cause, or a cause for a claim that does not FAIL (stale)."""
    causes = fail_causes(root)
    problems = []
    for slug, data in load_claims(root).items():
        mine = causes.get(slug, {})
        profile = data.get("run", {}).get("profile", data.get("profile"))
        verdicts = {c.get("id"): c.get("verdict") for c in data["claims"]}
        if profile in ("full", "paper"):
            problems += [f"book/{slug}.md: claim {cid} FAILs at {profile} but its front matter gives no cause "
                         f"(msnn: fails: {cid!r}: {{cause: ..., why: ...}})"
                         for cid, v in verdicts.items() if v == "FAIL" and cid not in mine]
        problems += [f"book/{slug}.md: a cause is given for claim {cid}, which "
                     + ("no claims table of the chapter has" if cid not in verdicts else f"is {verdicts[cid]}, not FAIL")
                     for cid in mine if verdicts.get(cid) != "FAIL"]
    return problems


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
    """The chapter's title, ``4. Algorithm 1: ...``, from its source ``book/NN-slug.md`` (else the slug)."""
    path = os.path.join(root, "book", f"{slug}.md")
    if os.path.exists(path):
        return f"{int(slug[:2])}. {read_chapter(path).title}"
    return slug


def render_chapter_map(root: str) -> str:
    """The chapter map: each chapter of ``book/``, what it reproduces (from its front matter, see
    :mod:`msnn.book.chapters`), and its claim counts; linked when the table of contents names it."""
    docs = toc_documents(root)
    claims = load_claims(root)
    lines = [
        "<!-- Generated by msnn.book.scorecard from _toc.yml, the chapters' front matter and book/*.claims.json:"
        " do not edit. -->",
        "",
        "| # | chapter | reproduces | what `full` runs | claims |",
        "| --- | --- | --- | --- | --- |",
    ]
    for ch in read_chapters(root):
        doc = f"book/{ch.slug}"
        title = f"{{doc}}`/{doc}`" if doc in docs else f"{_md(ch.title)} *(not in the table of contents)*"
        what = "; ".join(_md(p) for p in (ch.sections, ch.figures, ch.algorithm) if p)
        if ch.paper == "si":
            what = f"SI paper: {what}"
        elif ch.paper == "beyond":
            what = f"beyond the papers: {what}"
        elif ch.paper == "adaptive":
            what = f"adaptive-basis slides: {what}"
        if ch.slug in claims:
            n = _counts(claims[ch.slug])
            score = f"{n['PASS']} pass, {n['FAIL']} fail, {n['REPORT']} reported"
        else:
            score = "-"
        lines.append(f"| {int(ch.number)} | {title} | {what or '-'} | {_md(ch.full) or '-'} | {score} |")
    return "\n".join(lines) + "\n"


def render_scorecard(root: str) -> str:
    """The scorecard: totals per chapter, where each ran, then every claim of every chapter."""
    docs = toc_documents(root)
    claims = load_claims(root)
    out = ["<!-- Generated by msnn.book.scorecard from book/*.claims.json: do not edit. -->", ""]
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
    causes = fail_causes(root)
    by_cause = {k: 0 for k in CAUSES}
    uncaused = 0
    for slug, data in claims.items():
        for c in data["claims"]:
            if c.get("verdict") == "FAIL":
                cause = causes.get(slug, {}).get(c.get("id"))
                if cause is None:
                    uncaused += 1
                else:
                    by_cause[cause[0]] += 1
    why = [f"{CAUSES[k]}: **{v}**" for k, v in by_cause.items() if v]
    if uncaused:
        why.append(f"no cause given yet: **{uncaused}**")
    out += [
        f"{n_claims} claims in {len(claims)} executed chapter{'s' if len(claims) != 1 else ''}: "
        f"**{total['PASS']} pass**, **{total['FAIL']} fail**, {total['REPORT']} reported without a test. "
        "Each verdict was computed from the claim's tolerance when the chapter ran; the chapter "
        "discusses the claims it does not reach.",
        "",
    ]
    if total["FAIL"]:
        out += ["Why the claims that fail do, by cause (each chapter gives the reason under its claims "
                "table, and below): " + "; ".join(why) + ".", ""]
    out += [
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
            f"| {_md(run.get('seed', '-'))} | {_duration(run.get('wall_seconds'))}"
            f"{' (resumed from stage checkpoints: this run only)' if run.get('resumed') else ''} "
            f"| {_md(run.get('finished', '-'))} |")
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
            "| claim | what | paper | ours | tolerance | verdict | why it fails |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in data["claims"]:
            what = _md(c.get("what", ""))
            if c.get("note"):
                what += f" *({_md(c['note'])})*"
            cause = causes.get(slug, {}).get(c.get("id"))
            if c.get("verdict") != "FAIL":
                reason = ""
            elif cause is None:
                reason = "no cause given yet"
            else:
                reason = f"**{_md(CAUSES[cause[0]])}**: {_md(cause[1])}"
            out.append(f"| {_md(c.get('id', ''))} | {what} | {_md(c.get('paper', ''))} "
                       f"| {_md(c.get('measured_text', c.get('measured', '')))} | {_md(c.get('tolerance', ''))} "
                       f"| {_badge(c.get('verdict', 'REPORT'))} | {reason} |")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------ headline results
_PAPER_NUMBER = re.compile(r"(?<![\w.])(\d(?:\.\d+)?)e(-?\d+)(?![\w.])")


def paper_number(text: str) -> float | None:
    """The first number written ``1e-16`` (or ``2.5e-11``) in a claim's paper column, else None."""
    m = _PAPER_NUMBER.search(str(text))
    return float(f"{m.group(1)}e{m.group(2)}") if m else None


def _slug(claims: dict, number: str) -> str | None:
    hits = [s for s in claims if s.startswith(f"{number}-")]
    return hits[0] if hits else None


def headline_points(claims: dict[str, dict]) -> list[dict]:
    """Every claim of :data:`HEADLINES` found in the claims files, as the error it measured.

    Each point: headline name, chapter slug, claim id, ``ours`` (the error), ``paper``
    (the paper's number from the claim's paper column, or None), the claim's text,
    and the profile and device of the run.
    """
    points = []
    for h in HEADLINES:
        for number, cid in h.claims:
            slug = _slug(claims, number)
            if slug is None:
                continue
            data = claims[slug]
            claim = next((c for c in data["claims"] if c.get("id") == cid), None)
            value = None if claim is None else claim.get("measured")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                continue
            value_is_error = h.exact is None or (number, cid) in h.errors
            ours = abs(float(value)) if value_is_error else abs(float(value) - h.exact)
            run = data.get("run", {})
            points.append({
                "headline": h.name, "chapter": slug, "claim": cid, "what": claim.get("what", ""),
                "ours": ours, "paper": None if h.paper else paper_number(claim.get("paper", "")),
                "paper_text": h.paper or claim.get("paper", ""),
                "profile": run.get("profile", data.get("profile", "-")), "device": data.get("device", "-"),
                "schedule": "precision" if (number, cid) in h.precision else "papers"})
    return points


def best_headlines(claims: dict[str, dict]) -> list[dict]:
    """Per headline (in the order of :data:`HEADLINES`), its point of smallest error, with the best
    point of each schedule (``by_schedule``: ``"papers"`` and ``"precision"``, where measured);
    headlines no executed chapter measures are left out."""
    points = headline_points(claims)
    best = []
    for h in HEADLINES:
        mine = [p for p in points if p["headline"] == h.name]
        if mine:
            b = dict(min(mine, key=lambda p: p["ours"]))
            b["headline_what"] = h.what
            b["measured_on"] = h.measured_on
            b["of"] = [p["claim"] for p in mine]
            b["by_schedule"] = {}
            for sched in ("papers", "precision"):
                ps = [p for p in mine if p["schedule"] == sched]
                if ps:
                    b["by_schedule"][sched] = min(ps, key=lambda p: p["ours"])
            b["off_grid"] = _off_grid(claims, h)
            best.append(b)
    return best


def _off_grid(claims: dict[str, dict], h: Headline) -> list[dict]:
    out = []
    for number, cid in h.off_grid:
        slug = _slug(claims, number)
        claim = None if slug is None else next((c for c in claims[slug]["claims"] if c.get("id") == cid), None)
        if claim is not None and isinstance(claim.get("measured"), (int, float)):
            out.append({"claim": cid, "chapter": slug, "ours": abs(float(claim["measured"])), "what": claim["what"]})
    return out


def _eps(err: float) -> str:
    k = err / EPS64
    if k < 10:
        return f"{k:.1f} ε"
    return f"{k:.0f} ε" if k < 1000 else f"{k:.0e} ε".replace("e+0", "e").replace("e+", "e")


def against_paper(ours: float, paper: float | None) -> str:
    """How an error compares with the paper's: within a factor of 10 either way "matches the paper",
    else "better than the paper" or "short of the paper"; "" where the paper gives no number."""
    if paper is None:
        return ""
    if ours <= MACHINE_PRECISION and paper <= MACHINE_PRECISION:
        return "matches the paper (machine precision)"
    if ours < paper / 10:
        return "better than the paper"
    return "matches the paper" if ours <= paper * 10 else "short of the paper"


_SCHEDULES = {"papers": "the papers' schedule", "precision": "msnn's precision schedule"}


def render_status(root: str) -> str:
    """The landing page's opening: per headline result, the best error with the papers' schedule
    and with msnn's precision schedule, where it is measured, the paper's value, how ours compares,
    whether it is machine precision, and the claims and runs."""
    docs = toc_documents(root)
    best = best_headlines(load_claims(root))
    out = ["<!-- Generated by msnn.book.scorecard from book/*.claims.json: do not edit. -->", ""]
    if not best:
        out.append("No chapter that measures a headline result has been executed yet.")
        return "\n".join(out) + "\n"

    def where(p):
        return f"{_chapter_link(p['chapter'], docs)}, `{_md(p['profile'])}` on {_md(p['device'])}"

    def said(b):
        rel = against_paper(b["ours"], b["paper"])
        extra = [_md(b["measured_on"])] if b["measured_on"] else []
        if rel:
            extra.append(f"{rel}, {_md(b['paper_text'])}")
        else:
            extra.append(f"the paper: {_md(b['paper_text'])}")
        return f"{_md(b['headline'])} {b['ours']:.1e} ({_SCHEDULES[b['schedule']]}; {'; '.join(extra)}; {where(b)})"

    reached = [b for b in best if b["ours"] <= MACHINE_PRECISION]
    missed = [b for b in best if b["ours"] > MACHINE_PRECISION]
    lines = []
    if reached:
        lines.append("**Machine precision reached:** " + "; ".join(said(b) for b in reached) + ".")
    if missed:
        lines.append("**Machine precision not reached:** " + "; ".join(said(b) for b in missed) + ".")

    def cell(p):
        if p is None:
            return "-"
        mp = " {bdg-success}`machine precision`" if p["ours"] <= MACHINE_PRECISION else ""
        rel = against_paper(p["ours"], p["paper"])
        return f"{p['ours']:.1e} ({_eps(p['ours'])}){mp}<br>{_md(p['claim'])}" + (f", {rel}" if rel else "")

    out += [
        *[line + "\n" for line in lines],
        f"Machine precision here means an error of at most {MACHINE_PRECISION:.1e}, ten times float64's "
        f"machine epsilon ε = {EPS64:.2e}; the solutions are of order one, so these errors are relative "
        "ones too. Each cell gives the best error over the claims of the book that measure the result with "
        "that schedule (the claim named), the papers' schedule being the papers' own way of training (Adam, then "
        "L-BFGS) and msnn's precision schedule this book's (Adam, then Gauss-Newton with the output layer solved "
        "exactly; chapter 11). \"Matches the paper\" means within a factor of 10 of the paper's value.",
        "",
        "| result | measured on | papers' schedule | msnn's precision schedule | paper | runs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for b in best:
        sched = b["by_schedule"]
        runs = "; ".join(sorted({where(p) for p in sched.values()}))
        on = _md(b["measured_on"] or "-")
        for o in b["off_grid"]:
            on += (f"; an SI model between the grid points ({_chapter_link(o['chapter'], docs)}, on chapter 9's "
                   f"target): {o['ours']:.1e} ({_md(o['claim'])})")
        out.append(f"| **{_md(b['headline'])}**: {_md(b['headline_what'])} | {on} | {cell(sched.get('papers'))} "
                   f"| {cell(sched.get('precision'))} | {_md(b['paper_text'])} | {runs} |")
    return "\n".join(out) + "\n"


def headline_data(root: str) -> str:
    """The numbers the headline figure draws, as JSON text (the figure is redrawn when it changes)."""
    pts = [{k: p[k] for k in ("headline", "chapter", "claim", "ours", "paper", "profile", "device")}
           for p in headline_points(load_claims(root))]
    return json.dumps({"machine_precision": MACHINE_PRECISION, "eps": EPS64, "points": pts}, indent=1) + "\n"


def draw_headlines(data: dict, path: str) -> None:
    """Draw every headline error (filled) against the paper's (open) per claim, grouped by chapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = data["points"]
    names = [h.name for h in HEADLINES]
    colors = dict(zip(names, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    fig, ax = plt.subplots(figsize=(8.4, 3.6), constrained_layout=True)
    x, chapters, ticks, labels = 0.0, [], [], []
    for slug in sorted({p["chapter"] for p in pts}):
        mine = [p for p in pts if p["chapter"] == slug]
        chapters.append((x, x + len(mine) - 1, slug, mine[0]["profile"]))
        for p in mine:
            c = colors.get(p["headline"], "k")
            ax.semilogy([x], [max(p["ours"], 1e-18)], "o", color=c, ms=7)
            if p["paper"] is not None:
                ax.semilogy([x], [p["paper"]], "o", mfc="none", mec=c, ms=11, mew=1.2)
            ticks.append(x)
            labels.append(p["claim"])
            x += 1
        x += 0.6
    ax.axhline(data["eps"], color="0.3", ls="--", lw=0.8)
    ax.axhline(data["machine_precision"], color="0.3", ls=":", lw=0.8)
    right = ax.get_yaxis_transform()  # x in axes fraction, y in data: labels in the right margin
    ax.text(1.01, data["eps"], "float64 ε", transform=right, va="top", fontsize=8, color="0.3")
    ax.text(1.01, data["machine_precision"], "machine precision\n(10 ε)", transform=right, va="bottom",
            fontsize=8, color="0.3")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=7, rotation=90)
    for lo, hi, slug, profile in chapters:
        ax.text((lo + hi) / 2, -0.17, f"ch. {int(slug[:2])}\n({profile})", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=8)
    ax.set_xlim(-0.7, x - 0.9)
    ax.set_ylim(1e-17, 1)
    ax.set_ylabel("error")
    handles = [plt.Line2D([], [], ls="none", marker="o", color=colors[n], label=n) for n in names
               if any(p["headline"] == n for p in pts)]
    handles += [plt.Line2D([], [], ls="none", marker="o", color="k", label="ours"),
                plt.Line2D([], [], ls="none", marker="o", mfc="none", mec="k", ms=9, label="paper")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _targets(root: str) -> dict[str, str]:
    return {
        os.path.join(root, GENERATED, "chapters.md"): render_chapter_map(root),
        os.path.join(root, GENERATED, "scorecard.md"): render_scorecard(root),
        os.path.join(root, GENERATED, "status.md"): render_status(root),
        os.path.join(root, GENERATED, "headlines.json"): headline_data(root),
    }


def _figure(root: str) -> str:
    return os.path.join(root, GENERATED, "headlines.png")


def write(root: str) -> list[str]:
    """Regenerate ``book/_generated/``: the markdown fragments, the headline data and, when that
    data changed or the figure is missing, the headline figure; return the files that changed."""
    changed = []
    for path, data in claims_files_with_causes(root).items():  # the causes first: the pages read the files
        if _read_json(path) != data:
            with open(path, "w") as fh:
                fh.write(_claims_text(data))
            changed.append(path)
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
    data_path = os.path.join(root, GENERATED, "headlines.json")
    if data_path in changed or not os.path.exists(_figure(root)):
        with open(data_path) as fh:
            draw_headlines(json.load(fh), _figure(root))
        changed.append(_figure(root))
    return changed


def stale(root: str) -> list[str]:
    """The generated files that differ from what the claims files and ``_toc.yml`` give now, and the
    claims files whose FAILs do not carry their chapter's causes."""
    out = [path for path, data in claims_files_with_causes(root).items() if _read_json(path) != data]
    for path, text in _targets(root).items():
        if not os.path.exists(path):
            out.append(path)
            continue
        with open(path) as fh:
            if fh.read() != text:
                out.append(path)
    if not os.path.exists(_figure(root)):
        out.append(_figure(root))
    return out
