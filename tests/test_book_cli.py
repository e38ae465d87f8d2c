"""The book's command line: one-line reasons and non-zero exits for bad input."""
import os
import subprocess
import sys

import pytest

from msnn import book
from msnn.book.cli import tidy_executed

CHAPTER = """---
jupytext:
  notebook_metadata_filter: msnn
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
msnn:
  paper: main
  sections: Sec. 2.3
  figures: Fig. 5
---

# A chapter

```{{code-cell}} ipython3
{tags}
profile = "quick"
device = "auto"
seed = 0
```

```{{code-cell}} ipython3
{body}
```
"""


@pytest.fixture
def root(tmp_path, monkeypatch):
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / "book").mkdir()
    monkeypatch.setenv("MSNN_BOOK_ROOT", str(tmp_path))
    return tmp_path


def _chapter(root, name, body="x = 1", tagged=True):
    (root / "book" / name).write_text(CHAPTER.format(tags=":tags: [parameters]" if tagged else "", body=body))


def test_unknown_chapter_and_profile(root, capsys):
    _chapter(root, "01-a.md")
    assert book.main(["run", "07"]) == 2
    assert "unknown chapter '07'; valid: 01-a" in capsys.readouterr().err
    assert book.main(["run", "--profile", "fast"]) == 2
    assert "valid: quick, full, paper" in capsys.readouterr().err


def test_missing_parameters_cell(root, capsys):
    _chapter(root, "01-a.md", tagged=False)
    assert book.main(["run", "01"]) == 2
    assert "exactly one code cell tagged 'parameters'" in capsys.readouterr().err


def test_cuda_without_gpu(root, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    _chapter(root, "01-a.md")
    assert book.main(["run", "01", "--device", "cuda"]) == 2
    assert "no GPU is visible" in capsys.readouterr().err


def test_failing_cell_keeps_partial_and_last_good_page(root, capsys):
    _chapter(root, "01-a.md", body="raise RuntimeError('boom')")
    good = root / "book" / "01-a.ipynb"
    good.write_text("last good page")
    assert book.main(["run", "01"]) == 2
    err = capsys.readouterr().err
    assert "chapter 01-a: cell" in err and "RuntimeError" in err
    assert good.read_text() == "last good page"
    assert (root / "book" / "_failed" / "01-a.quick.ipynb").exists()


def test_successful_run_writes_page_and_claims(root):
    _chapter(root, "01-a.md", body=(
        "from msnn.book import chapter_context\nfrom msnn.claims import at_most\n"
        "ctx = chapter_context('01-a', profile, device, seed)\n"
        "ctx.claims.add('1', 'w', 'p', 0.5, at_most(1)); ctx.claims.save()"))
    assert book.main(["run", "01", "--reference"]) == 0
    assert (root / "book" / "01-a.ipynb").exists()
    assert (root / "tests" / "notebooks" / "01-a.ipynb").exists()
    import json

    claims = json.loads((root / "book" / "01-a.claims.json").read_text())
    assert claims["counts"]["PASS"] == 1 and claims["run"]["profile"] == "quick"
    # the front matter's msnn block travels with the executed page (nothing reads it there)
    import nbformat

    page = nbformat.read(str(root / "book" / "01-a.ipynb"), as_version=4)
    assert page.metadata["msnn"] == {"paper": "main", "sections": "Sec. 2.3", "figures": "Fig. 5"}


def test_checkpoint_path_only_when_asked(monkeypatch, tmp_path):
    monkeypatch.delenv(book.CHECKPOINT_ENV, raising=False)
    assert book.checkpoint_path("x") is None
    monkeypatch.setenv(book.CHECKPOINT_ENV, str(tmp_path / "ck"))
    assert book.checkpoint_path("x") == os.path.join(str(tmp_path / "ck"), "x.pt")


def test_chapter_context_rejects_bad_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        book.chapter_context("01", "fast")


def test_rendered_page_shows_the_run_parameters_once_and_warnings_without_paths(root):
    _chapter(root, "01-a.md", body=(
        "import warnings\nfrom msnn.book import chapter_context\nfrom msnn.claims import at_most\n"
        "ctx = chapter_context('01-a', profile, device, seed)\n"
        "warnings.warn('the grid is coarse', UserWarning)\n"
        "ctx.claims.add('1', 'w', 'p', 0.5, at_most(1)); ctx.claims.save()"))
    assert book.main(["run", "01"]) == 0
    import nbformat

    nb = nbformat.read(str(root / "book" / "01-a.ipynb"), as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    assert "remove-cell" in tags[0] and "parameters" in tags[0]  # the source's defaults: hidden
    assert "injected-parameters" in tags[1] and "remove-cell" not in tags[1]  # the run's values: shown
    err = "".join(o["text"] for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr")
    assert err == "UserWarning: the grid is coarse\n"


def test_default_warning_text_loses_its_path():
    nb_out = {"output_type": "stream", "name": "stderr",
              "text": "/tmp/ipykernel_1/2.py:7: SparseDataWarning: stage 2: too few points\n  reg.fit(x, y)\nnext\n"}
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[nbformat.from_dict(nb_out)])])
    tidy_executed(nb)
    assert nb.cells[0].outputs[0]["text"] == "SparseDataWarning: stage 2: too few points\nnext\n"


def test_list_shows_profile_device_date_wall_and_counts(root, capsys):
    import json

    _chapter(root, "01-a.md")
    _chapter(root, "02-b.md")
    (root / "book" / "01-a.claims.json").write_text(json.dumps({
        "device": "cpu", "claims": [{"verdict": "PASS"}, {"verdict": "FAIL"}, {"verdict": "REPORT"},
                                    {"verdict": "PASS"}],
        "run": {"profile": "full", "wall_seconds": 1077.7, "finished": "2026-12-01 17:50 UTC"}}))
    assert book.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["chapter", "profile", "device", "finished", "wall", "PASS", "FAIL", "REPORT"]
    assert out[1].split() == ["01-a", "full", "cpu", "2026-12-01", "17:50", "UTC", "17", "min", "58", "s",
                              "2", "1", "1"]
    assert out[2].split() == ["02-b", "not", "executed"]


def test_python_m_msnn_book_shows_its_commands():
    out = subprocess.run([sys.executable, "-m", "msnn.book", "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "build", "list", "scorecard", "wheels"):
        assert command in out.stdout
    bad = subprocess.run([sys.executable, "-m", "msnn.book", "fly"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'fly'" in bad.stderr


def test_chapters_import_what_they_always_did():
    """A chapter's first cell imports ``msnn.book`` and ``msnn.claims``; both stay where they were."""
    import msnn.claims
    from msnn.book import chapter_context, checkpoint_path
    from msnn.book import claims

    assert callable(chapter_context) and callable(checkpoint_path)
    assert msnn.claims.at_most is claims.at_most and msnn.claims.ClaimTable is claims.ClaimTable
    assert set(msnn.claims.__all__) == set(claims.__all__)


_STAGE_BODY = (
    "import os, time\nfrom msnn.book import chapter_context, checkpoint_path\nfrom msnn.claims import report\n"
    "ctx = chapter_context('01-a', profile, device, seed)\n"
    "ck = checkpoint_path('stage')\n"
    "resumed = os.path.exists(ck)\n"
    "if not resumed:\n"
    "    open(ck, 'w').write('trained')\n"
    "print('stage 1: done' if not resumed else 'stage 1: resumed')\n"
    "time.sleep(float(os.environ.get('SLEEP', '0')))\n"
    "ctx.claims.add('1', 'resumed', '-', resumed, report()); ctx.claims.save()")


def test_full_runs_start_afresh_and_resume_only_when_asked(root, capsys):
    import json

    _chapter(root, "01-a.md", body=_STAGE_BODY)
    ck = root / "book" / "_runs" / "checkpoints" / "01-a.full" / "stage.pt"

    def run(*extra):
        assert book.main(["run", "01", "--profile", "full", "--device", "cpu", *extra]) == 0
        return json.loads((root / "book" / "01-a.claims.json").read_text())

    first = run()
    assert ck.exists() and first["claims"][0]["measured"] is False and first["run"]["resumed"] is False
    again = run()  # a plain run deletes the stale checkpoints: the stage trains again
    assert again["claims"][0]["measured"] is False and again["run"]["resumed"] is False
    resumed = run("--resume")  # continues from the saved stage
    assert resumed["claims"][0]["measured"] is True and resumed["run"]["resumed"] is True
    assert book.main(["run", "01", "--resume"]) == 2  # quick runs keep no checkpoints
    assert "--resume continues a full or paper run" in capsys.readouterr().err


def test_long_runs_report_cell_last_line_and_time_left(root, capsys, monkeypatch):
    # the stage's line is printed by one cell; a silent cell runs after it
    _chapter(root, "01-a.md", body=_STAGE_BODY.replace(
        "time.sleep(", "```\n\n```{code-cell} ipython3\nimport os, time\ntime.sleep("))
    monkeypatch.setenv("SLEEP", "3")
    assert book.main(["run", "01", "--profile", "full", "--device", "cpu"]) == 0  # the run the estimate uses
    capsys.readouterr()
    monkeypatch.setenv("MSNN_WATCH_SECONDS", "0.5")
    assert book.main(["run", "01", "--profile", "full", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    # four code cells: the source's parameters, papermill's injected ones, the stage, the silent one
    lines = [ln for ln in out.splitlines() if ln.startswith("  01-a: cell 4/4")]
    assert lines, out
    assert any("left (cell times of the last run)" in ln and ln.endswith("| stage 1: done") for ln in lines), lines


_CLAIM_BODY = (
    "from msnn.book import chapter_context\nfrom msnn.claims import report\n"
    "ctx = chapter_context('01-a', profile, device, seed)\n"
    "ctx.claims.add('1', 'profile', '-', profile, report()); ctx.claims.save()")


def test_a_quick_run_keeps_a_rendered_full_page_unless_told(root, capsys):
    import json

    _chapter(root, "01-a.md", body=_CLAIM_BODY)
    page, claims = root / "book" / "01-a.ipynb", root / "book" / "01-a.claims.json"
    assert book.main(["run", "01", "--profile", "full", "--device", "cpu"]) == 0
    full_page, full_claims = page.read_text(), claims.read_text()
    assert json.loads(full_claims)["run"]["profile"] == "full"
    capsys.readouterr()
    # refreshing the nbval reference: the reference is written, the full page and its claims stay
    assert book.main(["run", "01", "--profile", "quick", "--reference"]) == 0
    out = capsys.readouterr().out
    assert "kept the rendered full page of 01-a" in out and "book/_runs/01-a.quick.ipynb" in out
    assert "not rendered" in out
    assert page.read_text() == full_page and claims.read_text() == full_claims
    assert "warning" not in out  # the kept page ran the source's code
    # a kept page whose code is no longer the source's is named as stale
    src = root / "book" / "01-a.md"
    src.write_text(src.read_text().replace("report()); ctx.claims.save()", "report())\nctx.claims.save()"))
    assert book.main(["run", "01", "--profile", "quick"]) == 0
    assert "warning: the kept full page of 01-a ran other code" in capsys.readouterr().out
    import nbformat

    ref = nbformat.read(str(root / "tests" / "notebooks" / "01-a.ipynb"), as_version=4)
    assert ref.metadata["papermill"]["parameters"]["profile"] == "quick"
    assert json.loads((root / "book" / "_runs" / "01-a.quick.claims.json").read_text())["run"]["profile"] == "quick"
    # --replace renders it; a full run always replaces a quick page
    assert book.main(["run", "01", "--profile", "quick", "--replace"]) == 0
    assert json.loads(claims.read_text())["run"]["profile"] == "quick"
    assert book.main(["run", "01", "--profile", "full", "--device", "cpu"]) == 0
    assert json.loads(claims.read_text())["run"]["profile"] == "full"


def test_a_page_without_usable_claims_is_judged_by_its_own_parameters(root, capsys):
    import json

    _chapter(root, "01-a.md", body=_CLAIM_BODY)
    assert book.main(["run", "01", "--profile", "full", "--device", "cpu"]) == 0
    claims = root / "book" / "01-a.claims.json"
    full_page = (root / "book" / "01-a.ipynb").read_text()
    for broken, why in (('{"run": null, "claims": []}', "its 'run' is not an object"), ("not json", "not valid JSON")):
        claims.write_text(broken)
        assert book.main(["run", "01", "--profile", "quick"]) == 2  # the page is kept; the scorecard names the file
        assert why in capsys.readouterr().err
        assert (root / "book" / "01-a.ipynb").read_text() == full_page
    claims.unlink()
    assert book.main(["run", "01", "--profile", "quick"]) == 0
    assert (root / "book" / "01-a.ipynb").read_text() == full_page
    assert json.loads((root / "book" / "_runs" / "01-a.quick.claims.json").read_text())["run"]["profile"] == "quick"


def test_reference_is_refused_before_a_long_run(root, capsys):
    _chapter(root, "01-a.md", body="raise RuntimeError('must not run')")
    assert book.main(["run", "01", "--profile", "full", "--reference"]) == 2
    assert "--reference needs --profile quick" in capsys.readouterr().err
    assert not (root / "book" / "_runs").exists() and not (root / "book" / "_failed").exists()


def test_text_copies_edited_prose_onto_the_executed_page_and_refuses_changed_code(root, capsys):
    import nbformat

    _chapter(root, "01-a.md", body=_CLAIM_BODY + "\nprint('computed once')")
    assert book.main(["run", "01", "--reference"]) == 0
    src = root / "book" / "01-a.md"
    page_path, ref_path = root / "book" / "01-a.ipynb", root / "tests" / "notebooks" / "01-a.ipynb"
    before = nbformat.read(str(page_path), as_version=4)
    capsys.readouterr()
    assert book.main(["text", "01"]) == 0  # nothing to copy
    assert "text unchanged" in capsys.readouterr().out
    # a corrected heading and a new paragraph between the code cells
    src.write_text(src.read_text().replace("# A chapter", "# A better chapter\n\nWhat it shows, explained.")
                   .replace("```{code-cell} ipython3\nfrom", "A new paragraph.\n\n```{code-cell} ipython3\nfrom"))
    # the reference as papermill writes it when no cell is tagged: its injected parameters first
    ref = nbformat.read(str(ref_path), as_version=4)
    inj = next(i for i, c in enumerate(ref.cells) if "injected-parameters" in c.metadata.get("tags", []))
    ref.cells.insert(0, ref.cells.pop(inj))
    nbformat.write(ref, str(ref_path))
    # and a tag added to the body cell
    src.write_text(src.read_text().replace("```{code-cell} ipython3\nfrom",
                                           "```{code-cell} ipython3\n:tags: [nbval-check-output]\nfrom"))
    assert book.main(["text", "01"]) == 0
    assert capsys.readouterr().out.count("text updated, outputs kept") == 2
    for path in (page_path, ref_path):
        nb = nbformat.read(str(path), as_version=4)
        kinds = [(c.cell_type, c.metadata.get("tags", [])) for c in nb.cells]
        # heading, parameters (hidden), papermill's injected parameters, the new paragraph, the body
        assert kinds == [("markdown", []), ("code", ["parameters", "remove-cell"]),
                         ("code", ["injected-parameters"]), ("markdown", []), ("code", ["nbval-check-output"])]
        md = [c.source for c in nb.cells if c.cell_type == "markdown"]
        assert md[0].startswith("# A better chapter") and "What it shows, explained." in md[0]
        assert md[1] == "A new paragraph."
        # the executed cells, outputs and papermill's injected parameters are the ones that ran
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.source for c in code] == [c.source for c in before.cells if c.cell_type == "code"]
        assert "computed once" in "".join(o.get("text", "") for o in code[-1].outputs)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in code)
        nbformat.validate(nb)
    # the front matter is text too: a FAIL cause written after the run reaches both notebooks
    text = src.read_text()
    assert "  figures: Fig. 5\n---" in text
    src.write_text(text.replace("  figures: Fig. 5\n---", "  figures: Fig. 5\n  fails:\n"
                                "    \"1.1\": {cause: open, why: \"not known yet\"}\n---", 1))
    assert book.main(["text", "01"]) == 0
    assert capsys.readouterr().out.count("text updated, outputs kept") == 2
    for path in (page_path, ref_path):
        meta = nbformat.read(str(path), as_version=4).metadata["msnn"]
        assert meta["fails"] == {"1.1": {"cause": "open", "why": "not known yet"}}
    # changed code needs a run
    src.write_text(src.read_text().replace("print('computed once')", "print('computed twice')"))
    assert book.main(["text", "01"]) == 2
    assert "executed other code" in capsys.readouterr().err
    assert "computed once" in page_path.read_text()


# ------------------------------------------------ expected failures: one line, exit 2
def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("msnn-book: "), err
    return lines[0]


@pytest.mark.parametrize("text, why", [
    ("not json", "not valid JSON"),
    ('{"run": null, "claims": []}', "its 'run' is not an object"),
    ('{"claims": ["PASS"]}', "not an object"),
    ('[1, 2]', "has no list of claims"),
])
def test_list_names_a_malformed_claims_file_in_one_line(root, capsys, text, why):
    _chapter(root, "01-a.md")
    (root / "book" / "01-a.claims.json").write_text(text)
    assert book.main(["list"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "book/01-a.claims.json" in line and why in line and "run the chapter again" in line


def test_python_m_list_with_a_malformed_claims_file_shows_no_traceback(root):
    _chapter(root, "01-a.md")
    (root / "book" / "01-a.claims.json").write_text("{")
    env = dict(os.environ, MSNN_BOOK_ROOT=str(root))
    out = subprocess.run([sys.executable, "-m", "msnn.book", "list"], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert "book/01-a.claims.json" in _one_line(out.stderr)


def test_a_file_where_the_runs_folder_goes_is_one_line(root, capsys):
    _chapter(root, "01-a.md")
    (root / "book" / "_runs").write_text("in the way")
    assert book.main(["run", "01"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "book/_runs" in line and "a file is in its place" in line


def test_a_file_where_the_failed_folder_goes_is_one_line(root, capsys):
    _chapter(root, "01-a.md", body="raise RuntimeError('boom')")
    (root / "book" / "_failed").write_text("in the way")
    assert book.main(["run", "01"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "chapter 01-a: cell" in line and "RuntimeError: boom" in line
    assert "book/_failed" in line and "a file is in its place" in line


def test_an_unwritable_page_is_one_line(root, capsys, monkeypatch):
    _chapter(root, "01-a.md")
    real_copy = book.cli.shutil.copy

    def copy(src, dst, *a, **k):
        if str(dst).endswith(os.path.join("book", "01-a.ipynb")):
            raise PermissionError(13, "Permission denied", str(dst))
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(book.cli.shutil, "copy", copy)
    assert book.main(["run", "01"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "book/01-a.ipynb" in line and "Permission denied" in line and "writable" in line


def test_a_missing_kernel_is_one_line(root, capsys, monkeypatch):
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel

    def no_kernel(*a, **k):
        raise NoSuchKernel("python3")

    _chapter(root, "01-a.md")
    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    assert book.main(["run", "01"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "no Jupyter kernel named 'python3'" in line and "ipykernel install" in line


def test_a_chapter_raising_a_multiline_error_is_one_line(root, capsys):
    _chapter(root, "01-a.md", body="raise ValueError('first line\\nsecond line')")
    assert book.main(["run", "01"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "ValueError: first line second line" in line and "book/_failed/01-a.quick.ipynb" in line


def test_a_chapter_writing_malformed_claims_is_one_line(root, capsys):
    _chapter(root, "01-a.md", body="import os\nopen(os.environ['MSNN_CLAIMS_FILE'], 'w').write('{')")
    assert book.main(["run", "01"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "01-a.quick.claims.json" in line and "not valid JSON" in line


def test_an_interrupted_run_says_how_to_resume_and_exits_130(root, capsys, monkeypatch):
    import papermill

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    _chapter(root, "01-a.md")
    _chapter(root, "02-b.md")
    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    assert book.main(["run", "--profile", "full", "--device", "cpu"]) == 130
    line = _one_line(capsys.readouterr().err)
    assert "interrupted" in line
    assert "python -m msnn.book run --profile full --device cpu --resume 01-a 02-b" in line
    assert book.main(["run", "01"]) == 130  # a quick run has nothing to resume: it is run again
    line = _one_line(capsys.readouterr().err)
    assert "python -m msnn.book run --profile quick --device auto 01-a" in line and "--resume is for full" in line


def _as_in_a_terminal():
    """Ctrl-C as a terminal delivers it: a test suite started in the background by a
    non-interactive shell ignores SIGINT, and a child would inherit that and never see it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_on_a_real_run_exits_130_with_the_resume_command(root):
    import signal
    import time

    _chapter(root, "01-a.md", body="import time\nprint('working', flush=True)\ntime.sleep(60)")
    env = dict(os.environ, MSNN_BOOK_ROOT=str(root), MSNN_WATCH_SECONDS="0.3")
    proc = subprocess.Popen([sys.executable, "-m", "msnn.book", "run", "01", "--profile", "full", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_as_in_a_terminal)
    t0 = time.time()
    for line in proc.stdout:  # the watcher's line: the chapter's last cell is running
        if "01-a: cell 3/3" in line or time.time() - t0 > 60:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # the kernel's own start-up warning aside (every run shows it), one line and no traceback
    ours = "\n".join(ln for ln in err.splitlines() if not ln.startswith("[IPKernelApp] WARNING"))
    assert "--resume 01-a" in _one_line(ours)


# ---------------------------------------------------------------- run --jobs N
_THREADS_BODY = (
    "import os\nfrom msnn.book import chapter_context\nfrom msnn.claims import report\n"
    "ctx = chapter_context('{slug}', profile, device, seed)\n"
    "ctx.claims.add('1', 'threads', '-', os.environ.get('OMP_NUM_THREADS'), report())\n"
    "ctx.claims.add('2', 'pid', '-', os.getppid(), report()); ctx.claims.save()")


def test_jobs_run_chapters_in_processes_of_one_thread(root, capfd):
    import json

    for slug in ("01-a", "02-b", "03-c"):
        _chapter(root, f"{slug}.md", body=_THREADS_BODY.format(slug=slug))
    assert book.main(["run", "--jobs", "2", "--device", "cpu"]) == 0
    out = capfd.readouterr().out
    claims = {s: json.loads((root / "book" / f"{s}.claims.json").read_text()) for s in ("01-a", "02-b", "03-c")}
    assert all(c["claims"][0]["measured"] == "1" for c in claims.values())  # OMP_NUM_THREADS=1 in every kernel
    parents = {c["claims"][1]["measured"] for c in claims.values()}  # every kernel's parent: its chapter's process
    assert len(parents) == 3 and os.getpid() not in parents
    # every chapter reports as it finishes, then the summary table lists them all
    for slug in ("01-a", "02-b", "03-c"):
        assert any(ln.startswith("[") and f"] {slug}: done" in ln for ln in out.splitlines()), out
    table = out[out.index("chapter                         profile"):]
    assert all(s in table for s in ("01-a", "02-b", "03-c"))
    assert (root / "book" / "_generated").is_dir()  # the scorecard, written once at the end


def test_jobs_finish_the_other_chapters_and_name_every_failure(root, capfd):
    _chapter(root, "01-a.md", body="raise RuntimeError('boom')")
    _chapter(root, "02-b.md", body=_THREADS_BODY.format(slug="02-b"))
    assert book.main(["run", "--jobs", "2"]) == 2
    cap = capfd.readouterr()
    assert (root / "book" / "02-b.ipynb").exists() and not (root / "book" / "01-a.ipynb").exists()
    assert (root / "book" / "_failed" / "01-a.quick.ipynb").exists()
    err = [ln for ln in cap.err.splitlines() if ln.startswith("msnn-book: ")]
    assert len(err) == 1 and "chapter 01-a: cell" in err[0] and "RuntimeError: boom" in err[0], cap.err
    assert "Traceback" not in cap.err
    assert "02-b" in cap.out[cap.out.index("chapter                         profile"):]


def test_ctrl_c_on_jobs_stops_every_chapter_and_says_how_to_resume(root):
    import signal
    import time

    for slug in ("01-a", "02-b"):
        _chapter(root, f"{slug}.md", body="import time\nprint('working', flush=True)\ntime.sleep(60)")
    env = dict(os.environ, MSNN_BOOK_ROOT=str(root), MSNN_WATCH_SECONDS="0.5")
    proc = subprocess.Popen([sys.executable, "-m", "msnn.book", "run", "--jobs", "2", "--profile", "full",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_as_in_a_terminal)
    t0, running = time.time(), set()
    for line in proc.stdout:  # both chapters in their last cell
        running |= {s for s in ("01-a", "02-b") if f"{s}: cell 3/3" in line}
        if running == {"01-a", "02-b"} or time.time() - t0 > 60:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    ours = "\n".join(ln for ln in err.splitlines() if not ln.startswith("[IPKernelApp] WARNING"))
    assert "--jobs 2 --resume 01-a 02-b" in _one_line(ours)
    assert not (root / "book" / "01-a.ipynb").exists() and not (root / "book" / "02-b.ipynb").exists()


def test_jobs_must_be_a_positive_integer(root, capsys):
    _chapter(root, "01-a.md")
    assert book.main(["run", "--jobs", "0"]) == 2
    assert "--jobs must be an integer >= 1, got 0" in _one_line(capsys.readouterr().err)


def test_a_chapter_process_killed_on_ctrl_c_does_not_leave_its_kernel_running():
    """A kernel runs in a session of its own: killing its chapter's process would orphan it (and
    with it the run's stdout), so run --jobs stops the processes each chapter started as well."""
    import time

    psutil = pytest.importorskip("psutil")
    from msnn.book.execute import _descendants, _stop

    # a "chapter process" that starts a "kernel" in a new session, as jupyter_client does
    code = ("import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
            "time.sleep(120)")
    chapter = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        t0 = time.time()
        while not _descendants(chapter.pid) and time.time() - t0 < 30:
            time.sleep(0.1)
        kernels = _descendants(chapter.pid)
        assert len(kernels) == 1
        chapter.kill()
        chapter.wait()
        assert kernels[0].is_running()  # orphaned, as before the fix
        _stop(kernels)
        assert not kernels[0].is_running() or kernels[0].status() == psutil.STATUS_ZOMBIE
    finally:
        if chapter.poll() is None:
            chapter.kill()
