"""The book's machinery, apart from the method: what chapters call, their claims, the
landing page, the command line.

The method is the rest of ``msnn``; this subpackage only runs and presents the
book (``book/`` with ``_toc.yml`` and ``_config.yml``):

* :mod:`msnn.book.context`: what a chapter calls first, ``chapter_context`` (its
  profile, device, seed and claims table) and ``checkpoint_path``, both importable
  from ``msnn.book``;
* :mod:`msnn.book.claims`: the papers' claims, measured and judged (chapters import
  it as ``msnn.claims``);
* :mod:`msnn.book.chapters`: the chapters of ``book/`` and what each reproduces,
  read from each chapter's front matter;
* :mod:`msnn.book.scorecard`: the landing page's chapter map, scorecard and headline
  results, generated from the chapters and their claims;
* :mod:`msnn.book.cli`: the command line, ``python -m msnn.book run | text | build |
  list | scorecard | wheels``;
* :mod:`msnn.book.execute`: executing chapters (papermill, the watcher, Ctrl-C, jobs);
* :mod:`msnn.book.sphinx`: the Sphinx extension of the API page;
* :mod:`msnn.book.landing`: the landing page's figure of Algorithm 1;
* :mod:`msnn.book.beyond_1d`: the 2D and sparse-data cases of chapter ``ch-beyond`` and
  ``benchmarks/beyond_1d.py``.
"""
from .cli import main
from .context import CHECKPOINT_ENV, PROFILES, ChapterContext, chapter_context, checkpoint_path, show_warning

__all__ = ["CHECKPOINT_ENV", "PROFILES", "ChapterContext", "chapter_context", "checkpoint_path", "show_warning", "main"]
