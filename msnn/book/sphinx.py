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


def setup(app: Any) -> dict:
    from sphinx.ext import autosummary

    extra = tuple(a for a in _ABBREVIATIONS if a not in autosummary.WELL_KNOWN_ABBREVIATIONS)
    autosummary.WELL_KNOWN_ABBREVIATIONS = tuple(autosummary.WELL_KNOWN_ABBREVIATIONS) + extra
    app.connect("autodoc-process-docstring", _process, priority=400)  # before napoleon (500)
    app.connect("autodoc-process-docstring", _untype_prose, priority=600)  # after napoleon
    app.connect("missing-reference", _missing_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
