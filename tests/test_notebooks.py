"""The executed notebooks must match their MyST sources (no stale pages or references).

Every chapter ``book/NN-slug.md`` needs a rendered page ``book/NN-slug.ipynb`` and an
nbval reference ``tests/notebooks/NN-slug.ipynb``, whose code cells equal the
source's (papermill's injected-parameters cell aside). Re-run
``python -m msnn.book run NN --profile quick --reference`` after editing a chapter.
"""
import glob
import json
import os

import jupytext
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = sorted(glob.glob(os.path.join(ROOT, "book", "[0-9][0-9]-*.md")))


def _code(nb):
    return [c.source.strip() for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def test_there_are_chapters():
    assert SOURCES, "no chapter sources found in book/"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: os.path.basename(p))
@pytest.mark.parametrize("where", ["book", "tests/notebooks"])
def test_executed_notebook_matches_source(src, where):
    slug = os.path.basename(src)[:-3]
    path = os.path.join(ROOT, where, f"{slug}.ipynb")
    assert os.path.exists(path), f"{where}/{slug}.ipynb is missing: run `python -m msnn.book run {slug[:2]} --reference`"
    executed = nbformat.read(path, as_version=4)
    assert _code(executed) == _code(jupytext.read(src)), f"{where}/{slug}.ipynb is stale: its code differs from {slug}.md"
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{where}/{slug}.ipynb has error outputs"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: os.path.basename(p))
def test_sources_mark_nbval_cells_with_tags(src):
    """nbval reads ``nbval-check-output`` tags; a ``# NBVAL_...`` comment would show on the page."""
    nb = jupytext.read(src)
    marked = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "code" and "NBVAL" in c.source]
    assert not marked, f"{os.path.basename(src)}: use the cell tag nbval-check-output instead of {marked}"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: os.path.basename(p))
def test_rendered_page_shows_one_parameters_cell_and_no_machine_path(src):
    slug = os.path.basename(src)[:-3]
    nb = nbformat.read(os.path.join(ROOT, "book", f"{slug}.ipynb"), as_version=4)
    shown = [c for c in nb.cells if c.cell_type == "code"
             and ({"parameters", "injected-parameters"} & set(c.metadata.get("tags", [])))
             and "remove-cell" not in c.metadata.get("tags", [])]
    assert len(shown) == 1, f"book/{slug}.ipynb shows {len(shown)} parameters cells (run it with msnn.book run)"
    paths = [o["text"] for c in nb.cells for o in c.get("outputs", [])
             if o.get("output_type") == "stream" and "/tmp/" in o.get("text", "")]
    assert not paths, f"book/{slug}.ipynb prints a machine path: {paths[0][:200]!r}"


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: os.path.basename(p))
def test_rendered_page_has_claims(src):
    slug = os.path.basename(src)[:-3]
    path = os.path.join(ROOT, "book", f"{slug}.claims.json")
    assert os.path.exists(path), f"book/{slug}.claims.json is missing"
    with open(path) as fh:
        claims = json.load(fh)
    assert claims["claims"], "no claims recorded"
    assert all(c["verdict"] in ("PASS", "FAIL", "REPORT") for c in claims["claims"])


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: os.path.basename(p))
def test_front_matter_survives_a_save_from_jupyterlab(src, tmp_path):
    """What a chapter reproduces (its front matter's ``msnn`` block, the landing page's chapter map)
    is kept when jupytext writes the notebook back to markdown, as JupyterLab does on save."""
    from msnn.book.chapters import front_matter, read_chapter

    meta = front_matter(src).get("msnn")
    if meta is None:
        pytest.skip("no msnn block in the front matter")
    saved = tmp_path / os.path.basename(src)
    jupytext.write(jupytext.read(src), str(saved), fmt="md:myst")
    assert front_matter(str(saved)).get("msnn") == meta, "add `notebook_metadata_filter: msnn` under `jupytext:`"
    assert read_chapter(str(saved)).title == read_chapter(src).title
