"""The book's chapters: which there are, and what each reproduces, read from the chapter itself.

A chapter is one MyST markdown notebook, ``book/NN-slug.md`` (``NN`` its two-digit
number). Its title is its first level-1 heading. What it reproduces of the papers is
in its front matter, the YAML block between the ``---`` lines at the top of the file,
under the key ``msnn``::

    ---
    jupytext:
      notebook_metadata_filter: msnn   # jupytext keeps the block when JupyterLab saves the notebook
      ...
    kernelspec:
      ...
    msnn:
      paper: main                # main, si or beyond (see PAPERS)
      sections: Sec. 2.3, eq. 2.11-2.12
      figures: Figs. 1, 5, 6
      algorithm: Algorithm 1     # optional
      full: "64 x 64 grid, 2,112 features (paper: 512 x 512, 10,000)"   # what `full` runs
      fails:                     # why each claim that FAILs at full fails (see CAUSES)
        "4.3": {cause: schedule, why: "Adam + L-BFGS at the paper's budget stops at 7.6e-10; 4.3p passes"}
    ---

Every claim whose verdict is FAIL in the chapter's executed (``full`` or ``paper``)
claims file has an entry under ``fails``, and no other claim has one; the tests check
it. The chapter shows the entries under its claims table (the ``claim-causes``
directive of :mod:`msnn.book.sphinx`), and the landing page counts FAILs by cause.

The landing page's chapter map (:mod:`msnn.book.scorecard`) lists every chapter
source, and links it when the table of contents ``_toc.yml`` names it. A new chapter
is therefore this one file plus its line in ``_toc.yml``.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

__all__ = ["PAPERS", "CAUSES", "Chapter", "chapter_sources", "front_matter", "read_chapter", "read_chapters",
           "toc_documents"]

#: What the ``paper`` key of a chapter's front matter may say, and what it stands for.
PAPERS = {
    "main": "Wang & Lai (2024)",
    "si": "Ng, Wang & Lai (2024)",
    "beyond": "beyond the papers",
    "adaptive": "Gulian et al., adaptive basis (slides)",
}
#: Why a claim FAILs: the fixed list a chapter's ``fails`` entries choose from, and what each says.
CAUSES = {
    "schedule": "papers' schedule or budget (msnn's precision schedule gets there)",
    "budget": "full profile cut below the paper's (budget, grid or features)",
    "better": "better than the paper",
    "measured": "measured disagreement (an experiment shows why)",
    "open": "not understood yet",
}
_FIELDS = ("paper", "sections", "figures", "algorithm", "full", "fails")
_TEXT_FIELDS = ("sections", "figures", "algorithm", "full")


@dataclass(frozen=True)
class Chapter:
    """One chapter of the book and the part of the papers it reproduces.

    Attributes:
        slug: the file name without extension, ``04-regression``.
        path: the source ``book/NN-slug.md``.
        title: its first level-1 heading.
        paper: a key of :data:`PAPERS`, or None where the front matter has no ``msnn`` block.
        sections: the paper's sections, equations and appendices.
        figures: the paper's figures.
        algorithm: the paper's algorithm, if the chapter implements one.
        full: what the ``full`` profile runs, against the paper's settings.
        fails: ``(claim id, cause, why)`` for every claim that FAILs at ``full``, the cause
            a key of :data:`CAUSES`.
    """

    slug: str
    path: str
    title: str
    paper: str | None = None
    sections: str = ""
    figures: str = ""
    algorithm: str = ""
    full: str = ""
    fails: tuple[tuple[str, str, str], ...] = ()

    @property
    def number(self) -> str:
        """The two-digit chapter number, the prefix of the slug."""
        return self.slug[:2]


def chapter_sources(root: str) -> dict[str, str]:
    """Chapter slug -> source path, for every ``book/NN-slug.md``, in the order of the numbers."""
    out = {}
    for p in sorted(glob.glob(os.path.join(root, "book", "[0-9][0-9]-*.md"))):
        out[os.path.basename(p)[:-3]] = p
    return out


def front_matter(path: str) -> dict:
    """The YAML front matter of a MyST file, as a dict (empty when the file has none)."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    m = re.match(r"---[ \t]*\n(.*?\n)?---[ \t]*(\n|$)", text, flags=re.S)
    if not m:
        return {}
    try:
        data = yaml.safe_load(m.group(1) or "")
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: the front matter is not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the front matter is not a mapping")
    return data


def _title(path: str) -> str | None:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("# "):
                return line[2:].strip()
    return None


def read_chapter(path: str) -> Chapter:
    """A chapter source's :class:`Chapter`: its title and its front matter's ``msnn`` block.

    Raises:
        ValueError: naming the file, for an ``msnn`` block that is not a mapping, has a
            key other than ``paper``, ``sections``, ``figures``, ``algorithm``, ``full`` and
            ``fails``, lacks ``paper``, names a paper not in :data:`PAPERS`, gives a value
            that is not text, or a ``fails`` entry that is not ``{cause: <a key of CAUSES>,
            why: <text>}``.
    """
    slug = os.path.basename(path)[:-3]
    title = _title(path) or slug
    meta = front_matter(path).get("msnn")
    if meta is None:
        return Chapter(slug, path, title)
    where = f"{path}: front matter 'msnn'"
    if not isinstance(meta, dict):
        raise ValueError(f"{where} is not a mapping")
    unknown = sorted(set(meta) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; valid: {', '.join(_FIELDS)}")
    if meta.get("paper") not in PAPERS:
        raise ValueError(f"{where}: paper must be one of {', '.join(PAPERS)}, not {meta.get('paper')!r}")
    for key in _TEXT_FIELDS:
        if not isinstance(meta.get(key, ""), str):
            raise ValueError(f"{where}: {key} must be text, not {meta[key]!r}")
    fails = meta.get("fails") or {}
    if not isinstance(fails, dict):
        raise ValueError(f"{where}: fails must map claim ids to {{cause: ..., why: ...}}, not {fails!r}")
    entries = []
    for cid, entry in fails.items():
        if not isinstance(entry, dict) or set(entry) != {"cause", "why"}:
            raise ValueError(f"{where}: fails[{cid!r}] must be {{cause: ..., why: ...}}, not {entry!r}")
        if entry["cause"] not in CAUSES:
            raise ValueError(f"{where}: fails[{cid!r}]: cause must be one of {', '.join(CAUSES)}, "
                             f"not {entry['cause']!r}")
        if not isinstance(entry["why"], str) or not entry["why"].strip():
            raise ValueError(f"{where}: fails[{cid!r}]: why must be a sentence, not {entry['why']!r}")
        entries.append((str(cid), entry["cause"], " ".join(entry["why"].split())))
    fields = {k: meta[k] for k in _TEXT_FIELDS + ("paper",) if k in meta}
    return Chapter(slug, path, title, fails=tuple(entries), **fields)


def read_chapters(root: str) -> list[Chapter]:
    """Every chapter of ``book/``, in the order of the numbers (see :func:`read_chapter`)."""
    return [read_chapter(p) for p in chapter_sources(root).values()]


def toc_documents(root: str) -> set[str]:
    """The documents the table of contents ``_toc.yml`` names (``book/04-regression`` ...)."""
    path = os.path.join(root, "_toc.yml")
    if not os.path.exists(path):
        return set()
    with open(path) as fh:
        text = fh.read()
    return {re.sub(r"\.(md|ipynb)$", "", m) for m in re.findall(r"(?:file|root):\s*([^\s#]+)", text)}
