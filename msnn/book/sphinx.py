"""A Sphinx extension for the book's API page: docstrings read as their authors meant them.

Enabled in ``_config.yml`` (``sphinx.extra_extensions``: ``msnn.book.sphinx``):

* msnn's docstrings write the magnitude of a quantity the mathematician's way,
  ``|k_x|`` or ``|e_n|``. In reStructuredText that is a substitution reference and
  breaks the build. Before autodoc parses a docstring, such bars are escaped
  outside inline literals, roles and literal blocks, so they show as written.
* A property's docstring that starts "what it is: how it is computed" is prose;
  napoleon reads the part before the colon as the property's type. It is put back.
* A fitted attribute named scikit-learn style, ``model_``, is a hyperlink reference
  in reStructuredText; its underscore is escaped the same way.
* The API page's summary tables end a docstring's first sentence at "eq." or
  "Fig." no more (the abbreviations the papers' citations use).
* Docstrings refer to the public names as users import them (``msnn.train``,
  or ``StageNetwork`` from another module); those references are resolved to
  where the object is documented (``msnn.training.train``).
"""
from __future__ import annotations

from typing import Any

import re

_BARS = re.compile(r"(?<![\\\w|])\|(?=[^\s|])([^|`]*?[^\s|\\])\|(?![\w|])")
_CODE = re.compile(r"(``.*?``|`[^`]*`)")
# A fitted attribute written scikit-learn style, ``stages_``: in reStructuredText a
# trailing underscore makes a hyperlink reference.
_TRAILING = re.compile(r"(?<=\w)_(?![\w])")


def escape_bars(line: str) -> str:
    """``|x|`` -> ``\\|x\\|`` and ``name_`` -> ``name\\_`` outside backtick spans (literals, roles)."""
    parts = _CODE.split(line)
    return "".join(p if i % 2 else _TRAILING.sub(r"\\_", _BARS.sub(r"\\|\1\\|", p)) for i, p in enumerate(parts))


def _process(app, what, name, obj, options, lines: list) -> None:
    literal_indent = None  # indentation of the paragraph that opened a literal block ("::")
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not line.strip() or indent > literal_indent:
                continue
            literal_indent = None
        if line.rstrip().endswith("::"):
            literal_indent = indent
        elif line.lstrip().startswith((">>>", ".. ")):
            continue
        lines[i] = escape_bars(line)


def _untype_prose(app, what, name, obj, options, lines: list) -> None:
    """Undo napoleon's ``:type:`` for a property whose "type" is a phrase (runs after napoleon)."""
    if what not in ("property", "attribute", "data"):
        return
    for i, line in enumerate(lines):
        if line.startswith(":type: ") and " " in line[len(":type: "):].strip():
            phrase = line[len(":type: "):].strip()
            del lines[i]
            if i > 0 and not lines[i - 1].strip():
                del lines[i - 1]
            if lines:
                lines[0] = f"{phrase}: {lines[0]}"
            else:
                lines.append(phrase)
            return


def _public_name(target: str) -> str | None:
    """``msnn.train`` or ``train`` -> ``msnn.training.train`` for a name in ``msnn.__all__``."""
    import msnn

    parts = target.split(".")
    if len(parts) == 2 and parts[0] == "msnn":
        name = parts[1]
    elif len(parts) == 1:
        name = parts[0]
    else:
        return None
    if name not in msnn.__all__:
        return None
    module = getattr(getattr(msnn, name), "__module__", None)
    return f"{module}.{name}" if module and module.startswith("msnn.") else None


def _missing_reference(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    real = _public_name(node.get("reftarget", ""))
    if real is None:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], real, node, contnode)


_ABBREVIATIONS = ("eq.", "Eq.", "eqs.", "Fig.", "Figs.", "Sec.", "App.", "cf.", "vs.")


def _claims_path(srcdir: str, slug: str) -> str:
    import os

    return os.path.join(srcdir, "book", f"{slug}.claims.json")


def find_claim(srcdir: str, docname: str, cid: str) -> tuple[str, str, dict]:
    """(chapter slug, claims file, claim) for ``cid``, looked up in the document's own claims file
    first, then in every other; LookupError naming what is wrong otherwise."""
    import posixpath

    from .scorecard import load_claims

    files = load_claims(srcdir)
    own = posixpath.basename(docname)
    order = ([own] if own in files else []) + [s for s in files if s != own]
    for slug in order:
        hit = next((c for c in files[slug].get("claims", []) if c.get("id") == cid), None)
        if hit is not None:
            return slug, _claims_path(srcdir, slug), hit
    raise LookupError(f"{{claim}}`{cid}`: no claims file has claim {cid!r} (run its chapter, or fix the id)")


def claim_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{claim}`4.3``` -> the measured value of claim 4.3, as its claims file writes it."""
    from docutils import nodes

    env = inliner.document.settings.env
    try:
        slug, path, claim = find_claim(env.srcdir, env.docname, text.strip())
    except LookupError as exc:
        msg = inliner.reporter.warning(str(exc), line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    env.note_dependency(path)
    value = str(claim.get("measured_text", claim.get("measured")))
    return [nodes.inline(rawtext, value, classes=["msnn-claim"])], []


def _table(headers: list[str], rows: list[list[str]], widths: list[int]):
    from docutils import nodes

    table = nodes.table(classes=["msnn-causes"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    for part, lines in ((nodes.thead(), [headers]), (nodes.tbody(), rows)):
        for line in lines:
            row = nodes.row()
            for text in line:
                entry = nodes.entry()
                entry += nodes.paragraph(text=text)
                row += entry
            part += row
        group += part
    return table


def _causes_directive():
    from docutils import nodes
    from docutils.parsers.rst import Directive

    class ClaimCauses(Directive):
        """The chapter's FAIL claims, each with its cause and reason (front matter ``fails``)."""

        has_content = False

        def run(self):
            import os
            import posixpath

            from .chapters import CAUSES, read_chapter

            env = self.state.document.settings.env
            from .scorecard import load_claims

            slug = posixpath.basename(env.docname)
            path = _claims_path(env.srcdir, slug)
            source = os.path.join(env.srcdir, "book", f"{slug}.md")
            if not os.path.exists(path) or not os.path.exists(source):
                return [self.state.document.reporter.warning(
                    f"claim-causes: {env.docname} has no claims file or no source book/{slug}.md", line=self.lineno)]
            env.note_dependency(path)
            env.note_dependency(source)
            causes = {cid: (cause, why) for cid, cause, why in read_chapter(source).fails}
            fails = [c for c in load_claims(env.srcdir)[slug]["claims"] if c.get("verdict") == "FAIL"]
            intro = nodes.paragraph()
            if not fails:
                intro += nodes.Text("No claim of this run fails.")
                return [intro]
            intro += nodes.strong(text="Why the claims that fail do. ")
            intro += nodes.Text("Each cause is one of a fixed list, counted over the whole book on the landing page.")
            rows = []
            for c in fails:
                cause, why = causes.get(c.get("id"), (None, "no cause given yet"))
                rows.append([str(c.get("id")), str(c.get("measured_text", c.get("measured"))),
                             CAUSES.get(cause, "-"), why])
            return [intro, _table(["claim", "measured", "cause", "why"], rows, [6, 10, 24, 60])]

    return ClaimCauses


def setup(app: Any) -> dict:
    from sphinx.ext import autosummary

    extra = tuple(a for a in _ABBREVIATIONS if a not in autosummary.WELL_KNOWN_ABBREVIATIONS)
    autosummary.WELL_KNOWN_ABBREVIATIONS = tuple(autosummary.WELL_KNOWN_ABBREVIATIONS) + extra
    app.connect("autodoc-process-docstring", _process, priority=400)  # before napoleon (500)
    app.connect("autodoc-process-docstring", _untype_prose, priority=600)  # after napoleon
    app.connect("missing-reference", _missing_reference)
    app.add_role("claim", claim_role)
    app.add_directive("claim-causes", _causes_directive())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
