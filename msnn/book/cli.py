"""The book's command line: execute chapters, build the HTML, regenerate the landing page's
scorecard, fetch wheels for offline GPU nodes.

Usage (from the repository root)::

    python -m msnn.book run [--profile quick|full|paper] [--device auto|cpu|cuda] [--resume] [--reference]
                            [--replace] [--jobs N] [CHAPTER ...]
    python -m msnn.book text [CHAPTER ...]
    python -m msnn.book build
    python -m msnn.book list
    python -m msnn.book scorecard [--check]
    python -m msnn.book wheels DIR [--python-version 3.12]

``run`` converts each chapter source ``book/NN-slug.md`` (a MyST markdown notebook)
to a notebook with jupytext, executes it with papermill (the ``parameters`` cell
receives ``profile``, ``device`` and ``seed``) and writes the executed notebook
``book/NN-slug.ipynb`` (the page the book renders) with its claims
``book/NN-slug.claims.json``. With ``--reference`` a ``quick`` run also becomes the
nbval reference ``tests/notebooks/NN-slug.ipynb``. A failing chapter keeps its
partial notebook in ``book/_failed/`` and never replaces the last good page.

A run never silently replaces a page rendered at a larger profile (quick < full <
paper): refreshing a ``quick`` nbval reference leaves the rendered ``full`` page, its
claims and the scorecard as they were, and says where the new run is
(``book/_runs/NN-slug.quick.ipynb``). ``--replace`` renders the new run anyway.

A ``full`` or ``paper`` run saves every long stage to a checkpoint under
``book/_runs/checkpoints/``; a run starts afresh (its wall time is then the whole
chapter's), and ``--resume`` continues an interrupted one from its last saved stages
(its claims record ``"resumed": true``). Every minute (``MSNN_WATCH_SECONDS``) a run
prints the cell it is in, the last line that cell printed and the time left, estimated
from the cell times of the last run at the same profile.

``--jobs N`` runs N chapters at a time, each in a process of its own with one thread
(``OMP_NUM_THREADS=1``): a line when a chapter starts and when it finishes, the
per-minute lines of every running chapter (each names its chapter), and the summary
table at the end; a failing chapter does not stop the others.

Every expected failure (a malformed chapter or claims file, a folder that cannot be
written, no Jupyter kernel, a chapter that raises) is one line on stderr that names the
file and what to do, with exit code 2. Ctrl-C stops a run with the command that
continues it (``--resume`` for full and paper runs) and exit code 130.

``text`` copies a chapter's markdown cells into its rendered page and nbval reference
when the code cells are the ones they executed (else it refuses): a corrected sentence
does not need the chapter executed again.

``scorecard`` rewrites the landing page's generated pages ``book/_generated/`` (see
:mod:`msnn.book.scorecard`); with ``--check`` it writes nothing and exits 1 if they
are stale. ``run`` and ``build`` regenerate them too.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys

from .chapters import chapter_sources, read_chapters
from .context import PROFILES
from .execute import (BookError, Interrupted, book_root, cell_shape, code_cells, duration, how_to_go_on, one_line,
                      os_reason, read_source, run_jobs, run_one, scorecard_best_effort, select, tidy_executed,
                      write_scorecard)

__all__ = ["main"]

EXEC_STACK = ("papermill", "nbclient", "ipykernel", "jupytext", "nbformat")


def cmd_run(args: argparse.Namespace) -> int:
    root = book_root()
    if args.profile not in PROFILES:
        raise BookError(f"unknown profile {args.profile!r}; valid: {', '.join(PROFILES)}")
    if args.device not in ("auto", "cpu") and not args.device.startswith("cuda"):
        raise BookError(f"unknown device {args.device!r}; valid: auto, cpu, cuda, cuda:N")
    if args.jobs < 1:
        raise BookError(f"--jobs must be an integer >= 1, got {args.jobs}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BookError(f"--device {args.device} asked for, but no GPU is visible to torch")
    if args.resume and args.profile not in ("full", "paper"):
        raise BookError("--resume continues a full or paper run from its stage checkpoints; quick runs keep none")
    if args.reference and args.profile != "quick":  # before the run, not after an hour of it
        raise BookError("--reference needs --profile quick (nbval re-executes the reference on a CPU)")
    picked = list(dict.fromkeys(select(root, args.chapters)))  # each chapter once
    for slug in picked:  # fail early on a malformed source, before hours of running
        read_source(chapter_sources(root)[slug])
    rows: list[dict] = []
    if args.jobs > 1 and len(picked) > 1:
        failures = run_jobs(root, picked, args, rows)
    else:
        failures = []
        try:
            for i, slug in enumerate(picked, 1):
                print(f"[{i}/{len(picked)}] {slug} ({args.profile}, device {args.device})", flush=True)
                rows.append(run_one(root, slug, args.profile, args.device, args.seed, args.reference, args.resume,
                                     args.replace))
        except KeyboardInterrupt:
            scorecard_best_effort(root, rows)
            raise Interrupted(how_to_go_on(args, picked[len(rows):], len(rows))) from None
        except (BookError, OSError):  # the chapters rendered so far still reach the scorecard
            scorecard_best_effort(root, rows)
            raise
    if rows or not failures:
        write_scorecard(root)  # the landing page's scorecard follows the new claims
        print("\nchapter                         profile  device      wall    pass fail report")
        for r in rows:
            c = r["counts"]
            print(f"{r['chapter']:<31} {r['profile']:<8} {str(r['device'])[:10]:<10} {r['seconds']:6.0f}s "
                  f"{c.get('PASS', 0):5d} {c.get('FAIL', 0):4d} {c.get('REPORT', 0):6d}"
                  + ("" if r["rendered"] else "  (not rendered: a larger run's page is kept)"), flush=True)
    for reason in failures:
        print(f"msnn-book: {one_line(reason)}", file=sys.stderr, flush=True)
    return 2 if failures else 0


def cmd_text(args: argparse.Namespace) -> int:
    """Copy each chapter's text (its markdown cells and front matter) into its rendered page and nbval reference,
    when its code is what they executed: a corrected sentence needs no hour-long run."""
    import nbformat

    root = book_root()
    for slug in select(root, args.chapters):
        src = read_source(chapter_sources(root)[slug])
        for path in (os.path.join(root, "book", f"{slug}.ipynb"), os.path.join(root, "tests", "notebooks", f"{slug}.ipynb")):
            rel = os.path.relpath(path, root)
            if not os.path.exists(path):
                print(f"{rel}: missing (run the chapter)", flush=True)
                continue
            page = nbformat.read(path, as_version=4)
            if code_cells(page) != code_cells(src):
                raise BookError(f"{rel} executed other code than book/{slug}.md has now: run the chapter again "
                                f"(text alone can be copied only onto the same code)")
            # the executed code cells in order, with their outputs; papermill's injected parameters
            # go after the cell tagged ``parameters``; the text and the cells' tags from the source
            code = [c for c in page.cells if c.cell_type == "code"]
            is_injected = ["injected-parameters" in c.get("metadata", {}).get("tags", []) for c in code]
            injected = [c for c, inj in zip(code, is_injected) if inj]
            executed = [c for c, inj in zip(code, is_injected) if not inj]
            cells = []
            for cell in src.cells:
                meta = dict(cell.get("metadata", {}))
                if cell.cell_type == "markdown":
                    cells.append(nbformat.v4.new_markdown_cell(cell.source, metadata=meta))
                elif cell.cell_type == "raw":
                    cells.append(nbformat.v4.new_raw_cell(cell.source, metadata=meta))
                else:
                    done = executed.pop(0)
                    tags = list(meta.get("tags", []))
                    if "parameters" in tags:  # the page hides the source's defaults (tidy_executed)
                        if injected and "remove-cell" not in tags:
                            tags.append("remove-cell")
                        cells.append(done)
                        cells.extend(injected)
                        injected = []
                    else:
                        cells.append(done)
                    done.setdefault("metadata", {})["tags"] = tags
            if executed or injected:  # cannot happen when the code matched; never drop an executed cell
                raise BookError(f"{rel}: {len(executed) + len(injected)} executed cell(s) left unplaced")
            # the front matter (what the chapter reproduces, its FAIL causes) is text too
            meta = src.metadata.get("msnn")
            same_meta = page.metadata.get("msnn") == meta
            if same_meta and cell_shape(nbformat.read(path, as_version=4).cells) == cell_shape(cells):
                print(f"{rel}: text unchanged", flush=True)
                continue
            page.cells = cells
            if meta is None:
                page.metadata.pop("msnn", None)
            else:
                page.metadata["msnn"] = meta
            nbformat.write(page, path)
            print(f"{rel}: text updated, outputs kept", flush=True)
    for path in write_scorecard(root):  # the FAIL causes in the claims files and the landing page follow the text
        print(f"updated {os.path.relpath(path, root)}", flush=True)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    root = book_root()
    for path in write_scorecard(root):  # the landing page's chapter map and scorecard, from the claims
        print(f"updated {os.path.relpath(path, root)}", flush=True)
    # The jupyter-book next to this interpreter (a virtual environment that is not activated), else on PATH.
    here = os.path.join(os.path.dirname(sys.executable), "jupyter-book")
    exe = here if os.access(here, os.X_OK) else shutil.which("jupyter-book") or shutil.which("jb")
    if not exe:
        raise BookError("jupyter-book is not installed: pip install -e '.[book]'")
    cmd = [exe, "build", root, "-W", "-n", "--keep-going"]
    if args.all:
        cmd.append("--all")
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=root)


def cmd_scorecard(args: argparse.Namespace) -> int:
    from . import scorecard

    root = book_root()
    if args.check:
        try:
            bad = scorecard.stale(root)
        except ValueError as exc:
            raise BookError(str(exc)) from None
        for p in bad:
            print(f"stale: {os.path.relpath(p, root)} (run python -m msnn.book scorecard)", file=sys.stderr)
        return 1 if bad else 0
    for p in write_scorecard(root):
        print(f"wrote {os.path.relpath(p, root)}")
    return 0


def cmd_wheels(args: argparse.Namespace) -> int:
    os.makedirs(args.dir, exist_ok=True)
    plats = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", args.python_version,
           "--implementation", "cp", "-d", args.dir]
    for p in plats:
        cmd += ["--platform", p]
    cmd += list(EXEC_STACK) + ["matplotlib", "scipy", "tqdm", "psutil"]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc == 0:
        n = len(glob.glob(os.path.join(args.dir, "*.whl")))
        print(f"{n} wheels in {args.dir}. On the GPU node (which has torch):\n"
              f"  python3 -m pip install --no-index --find-links {args.dir} papermill ipykernel jupytext\n"
              f"  python3 -m pip install --no-index --no-deps -e .\n"
              f"  python3 -m msnn.book run --profile full --device cuda")
    return rc


def cmd_list(args: argparse.Namespace) -> int:
    from .scorecard import load_claims

    root = book_root()
    try:  # every claims file checked as the scorecard checks it, before a line is printed
        claims = load_claims(root)
    except ValueError as exc:
        raise BookError(f"{exc}: run the chapter again (python -m msnn.book run NN) or delete the file") from None
    for slug, c in claims.items():
        bad = next((v for v in c["claims"] if not isinstance(v, dict)), None)
        if bad is not None:
            raise BookError(f"book/{slug}.claims.json: a claim is not an object ({bad!r}): run the chapter again "
                            "(python -m msnn.book run NN) or delete the file")
    try:
        fulls = {ch.slug: ch.full for ch in read_chapters(root)}
    except ValueError as exc:
        raise BookError(str(exc)) from None
    print(f"{'chapter':<26} {'profile':<8} {'device':<7} {'finished':<20} {'wall':>12} "
          f"{'PASS':>5} {'FAIL':>5} {'REPORT':>6}")
    for slug in chapter_sources(root):
        c = claims.get(slug)
        if c is None:
            print(f"{slug:<26} not executed")
            continue
        run = c.get("run", {})
        n = {"PASS": 0, "FAIL": 0, "REPORT": 0}
        for claim in c["claims"]:
            v = claim.get("verdict", "REPORT")
            n[v] = n.get(v, 0) + 1
        print(f"{slug:<26} {str(run.get('profile', c.get('profile', '?'))):<8} {str(c.get('device', '?')):<7} "
              f"{str(run.get('finished', '-')):<20} {duration(run.get('wall_seconds')):>12} "
              f"{n['PASS']:>5} {n['FAIL']:>5} {n['REPORT']:>6}")
        full = fulls.get(slug)
        if full:  # what the profile `full` runs, against the paper's settings (the chapter's front matter)
            print(f"{'':<4}full: {full}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="msnn-book", description="Execute and build the msnn book.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute chapters with papermill")
    r.add_argument("chapters", nargs="*", help="chapter slugs or numbers (default: all)")
    r.add_argument("--profile", default="quick",
                   help="quick (a CPU, minutes), full (the papers' settings where a claim depends on them; "
                        "at most about an hour per chapter on one CPU core), paper (the papers' sizes, for a GPU)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--reference", action="store_true", help="also write the nbval reference (quick only)")
    r.add_argument("--replace", action="store_true",
                   help="render this run even over a page from a larger profile (by default a run leaves "
                        "a page rendered at a larger profile alone: quick < full < paper)")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N chapters at a time, each in its own process with one thread (OMP_NUM_THREADS=1); "
                        "a line per chapter as it finishes, the summary table at the end")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted full/paper run from its stage checkpoints (by default a run "
                        "starts afresh, so that its wall time is the whole chapter's)")
    r.set_defaults(fn=cmd_run)
    t = sub.add_parser("text", help="copy chapters' edited text into their rendered pages and nbval references "
                                    "without executing them (their code must be unchanged)")
    t.add_argument("chapters", nargs="*", help="chapter slugs or numbers (default: all)")
    t.set_defaults(fn=cmd_text)
    b = sub.add_parser("build", help="build the HTML book (execution off)")
    b.add_argument("--all", action="store_true", help="rebuild every page")
    b.set_defaults(fn=cmd_build)
    w = sub.add_parser("wheels", help="download the execution stack as wheels for GPU nodes without a package index")
    w.add_argument("dir")
    w.add_argument("--python-version", default="3.12")
    w.set_defaults(fn=cmd_wheels)
    ls = sub.add_parser("list", help="chapters and their last execution: profile, device, date, wall time, "
                                     "PASS / FAIL / REPORT counts")
    ls.set_defaults(fn=cmd_list)
    sc = sub.add_parser("scorecard", help="rewrite the landing page's chapter map, scorecard and headline "
                                          "results (book/_generated/) from the chapters and their claims")
    sc.add_argument("--check", action="store_true", help="write nothing; exit 1 if they are stale")
    sc.set_defaults(fn=cmd_scorecard)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except Interrupted as exc:
        print(f"msnn-book: {one_line(exc)}", file=sys.stderr, flush=True)
        return 130
    except BookError as exc:
        print(f"msnn-book: {one_line(exc)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("msnn-book: interrupted", file=sys.stderr, flush=True)
        return 130
    except OSError as exc:  # a file or folder that cannot be read or written
        try:
            root = book_root()
        except BookError:
            root = None
        print(f"msnn-book: {os_reason(exc, root)}", file=sys.stderr, flush=True)
        return 2
