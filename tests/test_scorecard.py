"""The pages generated from the code and the claims stay current and complete.

The landing page includes ``book/_generated/chapters.md`` and ``scorecard.md``,
written by :mod:`msnn.book.scorecard` from the chapters' front matter,
``book/*.claims.json`` and ``_toc.yml``; they
are committed, so a plain ``jupyter-book build .`` shows them, and must match what
the claims give now. The API page must document every public module and name, and
every citation of the book's pages must be in its bibliography.
"""
import json
import os
import re

import pytest

import msnn
from msnn import book as cli
from msnn.book import scorecard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_generated_pages_are_current():
    stale = [os.path.relpath(p, ROOT) for p in scorecard.stale(ROOT)]
    assert not stale, f"{stale} differ from the claims files: run `python -m msnn.book scorecard` (or `python -m msnn.book build`)"


def test_landing_page_includes_the_generated_pages():
    with open(os.path.join(ROOT, "book", "intro.md")) as fh:
        intro = fh.read()
    for name in ("status.md", "chapters.md", "scorecard.md"):
        assert re.search(rf"```{{include}}\s+_generated/{name}", intro), f"book/intro.md does not include {name}"
    assert re.search(r"```{figure}\s+_generated/headlines.png", intro), "book/intro.md does not show the headline figure"
    # the page opens with the status: before any other section
    assert intro.index("_generated/status.md") < intro.index("\n## "), "the status is not at the top of book/intro.md"


def _claim(id, verdict, paper="~1e-16", measured=1e-9, what="rms error"):
    return {"id": id, "what": what, "paper": paper, "measured": measured, "measured_text": f"{measured:.2e}",
            "tolerance": "<= 1.00e-14", "verdict": verdict, "note": ""}


def _source(paper, sections, figures, algorithm="", title="A chapter", extra=""):
    """A chapter source whose front matter says what it reproduces (``extra``: more lines of the block)."""
    alg = f"  algorithm: {algorithm}\n" if algorithm else ""
    return (f"---\njupytext:\n  notebook_metadata_filter: msnn\nmsnn:\n  paper: {paper}\n  sections: {sections}\n"
            f"  figures: {figures}\n{alg}{extra}---\n(ch-x)=\n# {title}\n")


@pytest.fixture
def book(tmp_path):
    """A tiny repository: chapters 03, 04 and 09, a table of contents with chapter 04 only, and claims
    of chapters 04 and 05 (which has no source)."""
    (tmp_path / "book").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/04-regression\n")
    (tmp_path / "book" / "03-scale.md").write_text(_source("main", "Sec. 2.2", "Fig. 4", title="Choosing kappa"))
    (tmp_path / "book" / "04-regression.md").write_text(
        _source("main", "Sec. 2.3", "Figs. 1, 5, 6", "Algorithm 1", title="Algorithm 1: regression",
                extra='  full: "64 x 64 grid (paper: 512 x 512)"\n'
                      '  fails:\n    "4.2": {cause: budget, why: "the grid is cut (section Budgets)"}\n'))
    (tmp_path / "book" / "09-si.md").write_text(_source("si", "Sec. 2-3", "Fig. 1", title="SI"))
    c4 = {"chapter": "04-regression", "profile": "full", "device": "cuda (a GPU)", "machine": None,
          "torch": "2.13.0", "claims": [_claim("4.1", "PASS", what="a | b and $x$ with *stars*"),
                                        _claim("4.2", "FAIL"), _claim("4.3", "REPORT")],
          "run": {"profile": "full", "wall_seconds": 452.4, "seed": 0, "finished": "2026-11-22 20:53 UTC"}}
    c5 = {"chapter": "05-pinn", "profile": "quick", "device": "cpu", "machine": "x86_64, 2 cores",
          "torch": "2.13.0", "claims": [_claim("5.1", "PASS")]}
    (tmp_path / "book" / "04-regression.claims.json").write_text(json.dumps(c4))
    (tmp_path / "book" / "05-pinn.claims.json").write_text(json.dumps(c5))
    return tmp_path


def test_scorecard_counts_and_runs(book):
    text = scorecard.render_scorecard(str(book))
    assert "4 claims in 2 executed chapters" in text
    assert "**2 pass**, **1 fail**, 1 reported" in text
    # totals per chapter, with profile and device
    assert "| {doc}`chapter 4 </book/04-regression>` | `full` | cuda (a GPU) | 1 | 1 | 1 | 3 |" in text
    # a chapter missing from the table of contents is named, not linked (a link would break the build)
    assert "`05-pinn` (not in the table of contents)" in text and "</book/05-pinn>" not in text
    # where and how: wall time, and a file written without the run block still renders
    assert "7 min 32 s" in text and "2026-11-22 20:53 UTC" in text
    assert "| `05-pinn` (not in the table of contents) | `quick` | cpu | x86\\_64, 2 cores | 2.13.0 | - | - | - |" in text
    # each claim: the paper's value, ours, the verdict as a badge; markdown in the text escaped
    assert "### 4. Algorithm 1: regression" in text
    assert "| 4.1 | a \\| b and \\$x\\$ with \\*stars\\* | \\~1e-16 | 1.00e-09 | \\<= 1.00e-14 | {bdg-success}`PASS` |" in text
    assert "{bdg-danger}`FAIL`" in text and "{bdg-secondary}`REPORT`" in text
    # a FAIL carries its cause and reason from the chapter's front matter; the causes are counted
    assert "| {bdg-danger}`FAIL` | **full profile cut below the paper's (budget, grid or features)**: the grid is cut (section Budgets) |" in text
    assert "full profile cut below the paper's (budget, grid or features): **1**" in text


def test_claims_files_carry_their_fails_causes(book):
    path = book / "book" / "04-regression.claims.json"
    assert str(path) in scorecard.stale(str(book))  # the FAIL 4.2 has a cause the file does not carry yet
    scorecard.write(str(book))
    claims = {c["id"]: c for c in json.loads(path.read_text())["claims"]}
    assert (claims["4.2"]["cause"], claims["4.2"]["why"]) == ("budget", "the grid is cut (section Budgets)")
    assert "cause" not in claims["4.1"] and "cause" not in claims["4.3"]
    assert str(path) not in scorecard.stale(str(book))
    # a claim that passes after a re-run loses its cause, though the front matter still names it
    data = json.loads(path.read_text())
    data["claims"][1]["verdict"] = "PASS"
    path.write_text(json.dumps(data))
    scorecard.write(str(book))
    assert "cause" not in json.loads(path.read_text())["claims"][1]


def test_fail_causes_are_checked_against_the_claims(book):
    assert scorecard.cause_problems(str(book)) == []
    c4 = json.loads((book / "book" / "04-regression.claims.json").read_text())
    c4["claims"][0]["verdict"] = "FAIL"  # a new FAIL without a cause
    c4["claims"][1]["verdict"] = "PASS"  # and a cause left for a claim that passes now
    (book / "book" / "04-regression.claims.json").write_text(json.dumps(c4))
    problems = scorecard.cause_problems(str(book))
    assert len(problems) == 2
    assert "claim 4.1 FAILs at full but its front matter gives no cause" in problems[0]
    assert "a cause is given for claim 4.2, which is PASS, not FAIL" in problems[1]
    assert "no cause given yet: **1**" in scorecard.render_scorecard(str(book))


@pytest.mark.parametrize("fails, match", [
    ('  fails:\n    "4.2": {cause: lazy, why: "x"}\n', "cause must be one of schedule, budget, better, measured, open"),
    ('  fails:\n    "4.2": {cause: budget}\n', r"must be \{cause: ..., why: ...\}"),
    ('  fails:\n    "4.2": {cause: budget, why: ""}\n', "why must be a sentence"),
    ('  fails: [4.2]\n', "fails must map claim ids"),
    ('  full: [1, 2]\n', "full must be text"),
])
def test_bad_fail_causes_are_named(book, fails, match):
    from msnn.book.chapters import read_chapter

    path = book / "book" / "03-scale.md"
    path.write_text(_source("main", "Sec. 2.2", "Fig. 4", extra=fails))
    with pytest.raises(ValueError, match=match):
        read_chapter(str(path))


def _headline_book(tmp_path, ode_max=1.7e-15, turbulence=6.4e-14):
    """Claims of chapters 07, 08 and 10 that measure headline results."""
    (tmp_path / "book").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/07-pinn\n"
                                       "  - file: book/08-burgers\n  - file: book/10-turb\n")
    def chapter(slug, profile, claims):
        (tmp_path / "book" / f"{slug}.claims.json").write_text(json.dumps(
            {"chapter": slug, "device": "cpu", "claims": claims, "run": {"profile": profile}}))
    chapter("07-pinn", "full", [_claim("7.2", "FAIL", paper="round-off (~1e-16)", measured=2.7e-10),
                                _claim("7.2p", "PASS", paper="round-off (~1e-16)", measured=ode_max),
                                _claim("7.6", "FAIL", paper="~1e-11", measured=5e-5)])
    chapter("08-burgers", "full", [_claim("8.8-1", "REPORT", paper="1/2", measured=0.5 + 9e-5),
                                   _claim("8.8-2", "REPORT", paper="1/2", measured=0.5 - 1.1e-9)])
    chapter("10-turb", "quick", [_claim("10.1", "PASS", measured=turbulence)])
    return tmp_path


def test_status_gives_the_best_error_per_headline_and_whether_it_is_machine_precision(tmp_path):
    root = _headline_book(tmp_path)
    best = {b["headline"]: b for b in scorecard.best_headlines(scorecard.load_claims(str(root)))}
    assert set(best) == {"ODE PINN", "diffusion PINN", "Burgers lambda", "turbulence"}  # no regression claims here
    assert best["ODE PINN"]["claim"] == "7.2p" and best["ODE PINN"]["ours"] == 1.7e-15
    assert best["Burgers lambda"]["claim"] == "8.8-2"
    assert abs(best["Burgers lambda"]["ours"] - 1.1e-9) < 1e-15  # |lambda - 1/2|, not lambda
    text = scorecard.render_status(str(root))
    rows = {line.split("**")[1]: line for line in text.splitlines() if line.startswith("| **")}
    cells = {k: [c.strip() for c in v.split(" | ")] for k, v in rows.items()}  # result, on, papers', precision, paper, runs
    # each schedule's best in its own column, with its claim, machine precision marked, and how it compares
    assert cells["ODE PINN"][2] == "2.7e-10 (1e6 ε)<br>7.2, short of the paper"
    assert cells["ODE PINN"][3] == "1.7e-15 (7.7 ε) {bdg-success}`machine precision`<br>7.2p, matches the paper (machine precision)"
    assert "{doc}`chapter 7 </book/07-pinn>`, `full` on cpu" in cells["ODE PINN"][5]
    assert cells["turbulence"][2].startswith("6.4e-14") and "machine precision`" not in cells["turbulence"][2]
    assert cells["turbulence"][3] == "-" and "`quick` on cpu" in cells["turbulence"][5]
    assert cells["turbulence"][1].startswith("the training grid")  # where each error is measured
    assert cells["diffusion PINN"][2] == "5.0e-05 (2e11 ε)<br>7.6, short of the paper"
    assert cells["Burgers lambda"][2].endswith("<br>8.8-2")  # the paper gives no number: no comparison
    assert text.count("**Machine precision reached:** ODE PINN 1.7e-15 (msnn's precision schedule; ") == 1
    assert "**Machine precision not reached:**" in text and "turbulence 6.4e-14 (the papers' schedule; " in text
    assert f"at most {scorecard.MACHINE_PRECISION:.1e}" in text
    # just above the threshold is not machine precision
    root2 = _headline_book(tmp_path / "b", ode_max=scorecard.MACHINE_PRECISION * 1.01)
    assert "**Machine precision reached:**" not in scorecard.render_status(str(root2))


def test_how_an_error_compares_with_the_papers():
    assert scorecard.against_paper(1.7e-11, 1e-11) == "matches the paper"  # within x10 either way
    assert scorecard.against_paper(9e-11, 1e-11) == "matches the paper"
    assert scorecard.against_paper(1.1e-10, 1e-11) == "short of the paper"
    assert scorecard.against_paper(2e-17, 1e-13) == "better than the paper"
    assert scorecard.against_paper(1.7e-15, 1e-16) == "matches the paper (machine precision)"  # both at round-off
    assert scorecard.against_paper(1e-9, None) == ""


def test_paper_numbers_are_read_from_the_claims_text():
    assert scorecard.paper_number("round-off (~1e-16)") == 1e-16
    assert scorecard.paper_number("O(1e-13)") == 1e-13
    assert scorecard.paper_number("~2.5e-11 (Fig. 3)") == 2.5e-11
    assert scorecard.paper_number("1/2") is None and scorecard.paper_number("2400 s") is None


def test_headline_figure_is_drawn_and_follows_its_data(tmp_path):
    root = _headline_book(tmp_path)
    changed = scorecard.write(str(root))
    png = root / "book" / "_generated" / "headlines.png"
    assert str(png) in changed and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((root / "book" / "_generated" / "headlines.json").read_text())
    assert {(p["claim"], p["paper"]) for p in data["points"]} >= {("7.2p", 1e-16), ("7.6", 1e-11), ("8.8-2", None)}
    assert scorecard.write(str(root)) == [] and scorecard.stale(str(root)) == []
    png.unlink()
    assert scorecard.stale(str(root)) == [str(png)]
    # new numbers: data and figure are rewritten
    claims = root / "book" / "10-turb.claims.json"
    claims.write_text(claims.read_text().replace("6.4e-14", "3.0e-16").replace("6.40e-14", "3.00e-16"))
    changed = scorecard.write(str(root))
    assert str(png) in changed and any(p.endswith("headlines.json") for p in changed)


def test_chapter_map_lists_every_chapter_and_links_those_in_the_book(book):
    text = scorecard.render_chapter_map(str(book))
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 3  # one per chapter source; chapter 05 has claims but no source
    assert rows[1] == ("| 4 | {doc}`/book/04-regression` | Sec. 2.3; Figs. 1, 5, 6; Algorithm 1 "
                       "| 64 x 64 grid (paper: 512 x 512) | 1 pass, 1 fail, 1 reported |")
    # a chapter that the table of contents does not name is shown by its title, not linked
    assert rows[0] == "| 3 | Choosing kappa *(not in the table of contents)* | Sec. 2.2; Fig. 4 | - | - |"
    assert rows[2].split("|")[3].strip() == "SI paper: Sec. 2-3; Fig. 1"


def test_a_new_chapter_is_one_file_and_one_toc_line(book):
    """What a chapter reproduces comes from its own front matter: no list in the code to extend."""
    (book / "book" / "12-new.md").write_text(
        _source("beyond", "exact output layer", "Fig. 5 revisited", title="Something new"))
    (book / "_toc.yml").write_text((book / "_toc.yml").read_text() + "  - file: book/12-new\n")
    rows = [line for line in scorecard.render_chapter_map(str(book)).splitlines() if line.startswith("| 12 |")]
    assert rows == ["| 12 | {doc}`/book/12-new` | beyond the papers: exact output layer; Fig. 5 revisited | - | - |"]
    # executed: its claims are counted, and the scorecard names it by its title
    c12 = {"chapter": "12-new", "device": "cpu", "claims": [_claim("12.1", "PASS")]}
    (book / "book" / "12-new.claims.json").write_text(json.dumps(c12))
    assert "| 1 pass, 0 fail, 0 reported |" in scorecard.render_chapter_map(str(book)).splitlines()[-1]
    assert "### 12. Something new" in scorecard.render_scorecard(str(book))


def test_no_claims_yet(tmp_path):
    (tmp_path / "book").mkdir()
    assert "No chapter has been executed yet" in scorecard.render_scorecard(str(tmp_path))


def test_write_then_check(book, monkeypatch, capsys):
    monkeypatch.setenv("MSNN_BOOK_ROOT", str(book))
    assert cli.main(["scorecard", "--check"]) == 1
    assert "stale: book/_generated/chapters.md (run python -m msnn.book scorecard)" in capsys.readouterr().err
    # chapter 4's claims file (its FAIL gets the front matter's cause), chapters, scorecard, status,
    # the figure's data and the figure
    assert len(scorecard.write(str(book))) == 6
    assert cli.main(["scorecard", "--check"]) == 0
    assert scorecard.write(str(book)) == []
    assert cli.main(["scorecard"]) == 0 and capsys.readouterr().out == ""  # nothing to rewrite


def test_a_malformed_chapter_is_named_in_one_line(book, monkeypatch, capsys):
    monkeypatch.setenv("MSNN_BOOK_ROOT", str(book))
    (book / "book" / "06-x.md").write_text(_source("the main one", "Sec. 3", "Fig. 9"))
    assert cli.main(["scorecard"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msnn-book: ") and "06-x.md" in err and "paper must be one of main, si, beyond" in err


def test_a_malformed_claims_file_is_named(book):
    (book / "book" / "06-x.claims.json").write_text(json.dumps({"chapter": "06-x"}))
    with pytest.raises(ValueError, match="06-x.claims.json"):
        scorecard.render_scorecard(str(book))


# ------------------------------------------------------------------ the API page
def _api_page() -> str:
    with open(os.path.join(ROOT, "book", "api.md")) as fh:
        return fh.read()


def _is_alias(module) -> bool:
    """A module kept for an old import path: every public name of it is defined elsewhere."""
    # constants (numbers, strings) carry no __module__ and say nothing either way
    names = [n for n in getattr(module, "__all__", []) if hasattr(getattr(module, n), "__module__")]
    return bool(names) and all(getattr(module, n).__module__ != module.__name__ for n in names)


def test_api_page_documents_every_public_module():
    import importlib
    import pkgutil

    modules = [m.name for m in pkgutil.walk_packages(msnn.__path__, "msnn.")
               if not m.name.rsplit(".", 1)[1].startswith("_")]
    page = _api_page()
    missing = [m for m in modules if f".. automodule:: {m}\n" not in page and not _is_alias(importlib.import_module(m))]
    assert not missing, f"book/api.md has no `.. automodule::` for {missing}"
    assert ".. automodule:: msnn.claims\n" not in page  # the alias would document every claim twice


def test_api_page_lists_every_public_name():
    listed = set(re.findall(r"^   (\w+)$", _api_page(), flags=re.M))
    missing = sorted(set(msnn.__all__) - listed)
    assert not missing, f"the summary at the top of book/api.md misses msnn.{missing}"


def test_docstring_bars_are_escaped_outside_code():
    from msnn.book.sphinx import _process, escape_bars

    assert escape_bars("the |k_x| of the peak") == r"the \|k_x\| of the peak"
    assert escape_bars("``|k|`` and :math:`|x|`") == "``|k|`` and :math:`|x|`"
    assert escape_bars("a | b | c") == "a | b | c"
    assert escape_bars("model_: the fit, not ``model_``") == r"model\_: the fit, not ``model_``"
    lines = ["Example::", "", "    y = |x|", "", "Then |x| again."]
    _process(None, "function", "f", None, {}, lines)
    assert lines[2] == "    y = |x|" and lines[4] == r"Then \|x\| again."


def test_every_citation_is_in_the_bibliography():
    """Each {cite}, {cite:t} or {cite:p} key of the book's pages is an entry of book/references.bib."""
    with open(os.path.join(ROOT, "book", "references.bib")) as fh:
        keys = set(re.findall(r"^@\w+\{([^,\s]+),", fh.read(), flags=re.M))
    missing = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "book"))):
        if name.endswith(".md"):
            with open(os.path.join(ROOT, "book", name)) as fh:
                for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", fh.read()):
                    for key in (k.strip() for k in group.split(",")):
                        if key not in keys:
                            missing.setdefault(name, []).append(key)
    assert not missing, f"citation keys not in book/references.bib: {missing}"


def test_use_msnn_examples_match_the_api():
    """The static examples of book/use-msnn.md parse, their imports exist, and every keyword
    they pass to an msnn function or class is one of its parameters (a cheap guard against
    drift; running them takes minutes)."""
    import ast
    import inspect
    import textwrap

    with open(os.path.join(ROOT, "book", "use-msnn.md")) as fh:
        blocks = re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S)
    assert blocks, "book/use-msnn.md has no python example"
    for code in blocks:
        tree = ast.parse(textwrap.dedent(code))  # an example inside a list item is indented
        names = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "msnn":
                module = __import__(node.module, fromlist=["_"])
                for alias in node.names:
                    names[alias.asname or alias.name] = getattr(module, alias.name)
        staged = names.get("StagedSolution") or names.get("BurgersSolution")
        methods = {"add_stage": getattr(staged, "add_stage", None),
                   "fit": getattr(names.get("MultistageRegressor"), "fit", None),
                   "rms_error": getattr(names.get("MultistageRegressor"), "rms_error", None)}
        # keywords collected in a dict(...) and passed on as **name are checked as well
        dicts = {t.id: [k.arg for k in node.value.keywords]
                 for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "dict"
                 for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            target = names.get(f.id) if isinstance(f, ast.Name) else methods.get(getattr(f, "attr", None))
            if target is None:
                continue
            params = inspect.signature(target).parameters
            if any(p.kind == p.VAR_KEYWORD for p in params.values()):
                continue
            for kw in node.keywords:
                if kw.arg is None:  # **name
                    name = getattr(kw.value, "id", None)
                    assert name in dicts, f"book/use-msnn.md passes **{name}, not a dict(...) of the example"
                    for arg in dicts[name]:
                        assert arg in params, f"book/use-msnn.md passes {arg}= (via **{name}) to {target.__qualname__}"
                    continue
                assert kw.arg in params, f"book/use-msnn.md passes {kw.arg}= to {target.__qualname__}"


def test_every_chapter_of_the_book_says_what_it_reproduces():
    from msnn.book.chapters import read_chapters

    chapters = read_chapters(ROOT)
    assert len(chapters) >= 11
    missing = [c.slug for c in chapters if c.paper is None or not c.sections]
    assert not missing, f"chapters without an msnn block (paper, sections) in their front matter: {missing}"
