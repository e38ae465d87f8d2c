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

from typing import Any

import argparse
import glob
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time

from .chapters import chapter_sources
from .context import CHECKPOINT_ENV, PROFILES

__all__ = ["BookError", "tidy_executed", "main"]

EXEC_STACK = ("papermill", "nbclient", "ipykernel", "jupytext", "nbformat")


# ------------------------------------------------------------ the executed page
_SHOWN_WARNING = re.compile(r"^\S+\.py:\d+: (\w+): (.*)\n(?:  .*\n)?", re.M)


def _strip_warning_paths(text: str) -> str:
    """Python's default warning text (``path.py:7: Category: message`` and the source line) as
    :func:`~msnn.book.context.show_warning` writes it."""
    return _SHOWN_WARNING.sub(r"\1: \2\n", text)


def tidy_executed(nb: Any) -> None:
    """What the rendered page shows of an executed chapter, set in place.

    * papermill injects the run's parameters after the cell tagged ``parameters``;
      the source's defaults are hidden (tag ``remove-cell``) so that the page shows
      one parameters cell, the values this page was executed with;
    * warnings written to stderr with Python's default format lose the file and line
      (a kernel's temporary path), as :func:`~msnn.book.context.show_warning` writes them.
    """
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if injected and "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                out["text"] = _strip_warning_paths("".join(out["text"]))


# ------------------------------------------------------------------------ the CLI
class BookError(Exception):
    """A one-line reason for a non-zero exit (2)."""


class Interrupted(BookError):
    """A run stopped with Ctrl-C: how to go on, and exit 130."""


def _one_line(text: str) -> str:
    """``text`` on one line: a chapter's error may span several."""
    return re.sub(r"\s*\n\s*", " ", str(text).strip())


def _rel(path: str | None, root: str | None) -> str:
    """``path`` relative to the book's root where it lies inside it, else as given."""
    if not path:
        return "?"
    path = os.fspath(path)
    if root:
        rel = os.path.relpath(os.path.abspath(path), root)
        if not rel.startswith(os.pardir):
            return rel
    return path


def _os_reason(exc: OSError, root: str | None) -> str:
    """What went wrong with a file, and what to do, on one line."""
    where = _rel(exc.filename, root)
    why = exc.strerror or _one_line(exc) or type(exc).__name__
    return f"{where}: {why}: check that it and its folder exist and are writable, then run again"


def _make_folder(path: str, root: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, or a BookError that names the folder and what to do."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        # the first part of the path that is not a folder, if any: a file in the folder's place
        part, blocker = os.path.abspath(path), None
        while part and part != os.path.dirname(part):
            if os.path.exists(part) and not os.path.isdir(part):
                blocker = part
            part = os.path.dirname(part)
        if blocker == os.path.abspath(path):
            hint = "a file is in its place: move it away"
        elif blocker:
            hint = f"a file is in the way ({_rel(blocker, root)}): move it away"
        else:
            hint = "make its parent folder writable"
        raise BookError(f"cannot create the folder {_rel(path, root)} ({exc.strerror or exc}): {hint}, "
                        "then run again") from None
    if not os.access(path, os.W_OK):
        raise BookError(f"the folder {_rel(path, root)} is not writable: make it writable, then run again")


def _need(module: str):
    """Import the execution stack's ``module``, or a BookError that says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BookError(f"{module} is not installed: pip install -e '.[book]'") from None


def _root() -> str:
    d = os.path.abspath(os.environ.get("MSNN_BOOK_ROOT", os.getcwd()))
    while True:
        if os.path.exists(os.path.join(d, "_config.yml")) and os.path.isdir(os.path.join(d, "book")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            raise BookError("no _config.yml with a book/ folder here or above: run from the repository root")
        d = parent


def _select(root: str, names: list[str]) -> list[str]:
    avail = chapter_sources(root)
    if not names:
        return list(avail)
    picked = []
    for n in names:
        hits = [s for s in avail if s == n or s.startswith(n + "-") or s.split("-", 1)[0] == n.zfill(2)]
        if len(hits) != 1:
            raise BookError(f"unknown chapter {n!r}; valid: {', '.join(avail) or '(none)'}")
        picked.append(hits[0])
    return picked


def _read_source(path: str):
    jupytext = _need("jupytext")
    try:
        nb = jupytext.read(path)
    except OSError:
        raise
    except Exception as exc:  # malformed front matter or cells
        raise BookError(f"{os.path.relpath(path)} cannot be read as a notebook ({type(exc).__name__}: {exc}): "
                        "fix its front matter or cell markers") from None
    tagged = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise BookError(f"{os.path.relpath(path)} needs exactly one code cell tagged 'parameters', found {len(tagged)}")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _previous_durations(root: str, slug: str, profile: str) -> list[float] | None:
    """Seconds per code cell of the last rendered run of this chapter at this profile, if any."""
    import nbformat

    path = os.path.join(root, "book", f"{slug}.ipynb")
    if not os.path.exists(path):
        return None
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # an unreadable page only costs the estimate
        return None
    if nb.metadata.get("papermill", {}).get("parameters", {}).get("profile") != profile:
        return None
    out = [c.get("metadata", {}).get("papermill", {}).get("duration") for c in nb.cells if c.cell_type == "code"]
    return [float(d) if isinstance(d, (int, float)) else 0.0 for d in out]


class _Watcher(threading.Thread):
    """Every ``interval`` seconds, one line on how far a chapter run is: the code cell it is
    in, the last line that cell printed (the drivers print one per stage with
    ``verbose``), and the time left as estimated from the last run at the same profile.

    papermill saves the executing notebook at every cell's start and end (and every 30 s
    within a cell); the watcher only reads that file."""

    def __init__(self, slug: str, path: str, previous: list[float] | None, interval: float) -> None:
        super().__init__(daemon=True)
        self.slug, self.path, self.previous, self.interval = slug, path, previous, interval
        self.t0 = time.perf_counter()
        self.done = threading.Event()

    def status(self) -> str | None:
        import nbformat

        try:
            nb = nbformat.read(self.path, as_version=4)
        except Exception:  # being written right now: try again next time
            return None
        code = [c for c in nb.cells if c.cell_type == "code"]
        states = [c.get("metadata", {}).get("papermill", {}).get("status") for c in code]
        finished = sum(1 for st in states if st == "completed")
        running = next((i for i, st in enumerate(states) if st == "running"), None)
        elapsed = time.perf_counter() - self.t0
        # the last line printed so far: by the running cell, else by the latest cell before it
        # that printed (a driver's stage line stays in view while a silent cell runs)
        line = ""
        last = running if running is not None else finished - 1
        cell = code[running] if running is not None else (code[finished - 1] if finished else None)
        for c in reversed(code[:last + 1] if last >= 0 else []):
            text = "".join(o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream")
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if lines:
                line = lines[-1][:100]
                break
        msg = f"  {self.slug}: cell {finished + (running is not None)}/{len(code)}, {_duration(elapsed)} elapsed"
        prev = self.previous
        if prev and len(prev) == len(code):
            left = sum(prev[finished:])
            if running is not None:  # the running cell counts with what is left of its last time
                started = cell.get("metadata", {}).get("papermill", {}).get("start_time")
                left = sum(prev[running + 1:]) + max(prev[running] - self._since(started), 0.0)
            msg += f", about {_duration(left)} left (cell times of the last run)"
        elif prev:
            msg += f", about {_duration(max(sum(prev) - elapsed, 0.0))} left (the last run's total)"
        return msg + (f" | {line}" if line else "")

    @staticmethod
    def _since(stamp) -> float:
        from datetime import datetime, timezone

        try:
            return (datetime.now(timezone.utc) - datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
                    ).total_seconds()
        except ValueError:
            return 0.0

    def run(self) -> None:
        while not self.done.wait(self.interval):
            msg = self.status()
            if msg:
                print(msg, flush=True)


def _rendered_profile(root: str, slug: str) -> str | None:
    """The profile of the chapter's rendered page: from its claims, else from the page's own
    papermill parameters; None if there is no page (or neither says)."""
    import nbformat

    prof = None
    try:
        with open(os.path.join(root, "book", f"{slug}.claims.json")) as fh:
            claims = json.load(fh)
        if isinstance(claims, dict):
            run = claims.get("run") if isinstance(claims.get("run"), dict) else {}
            prof = run.get("profile", claims.get("profile"))
    except (OSError, ValueError):  # no claims, or unreadable ones: ask the page
        pass
    if prof not in PROFILES:
        try:
            page = nbformat.read(os.path.join(root, "book", f"{slug}.ipynb"), as_version=4)
            prof = page.metadata.get("papermill", {}).get("parameters", {}).get("profile")
        except Exception:  # no page, or an unreadable one: nothing to protect
            return None
    return prof if prof in PROFILES else None


def _outranks(rendered: str | None, profile: str) -> bool:
    """Whether a page rendered at ``rendered`` is a larger run than one at ``profile``."""
    return rendered is not None and PROFILES.index(rendered) > PROFILES.index(profile)


#: Set by Ctrl-C during a chapter's run: its kernel is then stopped at once (see :func:`_kernel_manager_class`).
_INTERRUPTED = threading.Event()


def _kernel_manager_class():
    """The kernel manager of a chapter's run: jupyter_client's, except that after Ctrl-C it stops the
    kernel at once instead of asking it to shut down, which a kernel in the middle of a cell answers
    with a traceback in the terminal."""
    from jupyter_client.manager import AsyncKernelManager

    class ChapterKernelManager(AsyncKernelManager):
        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            await AsyncKernelManager.shutdown_kernel(self, now=now or _INTERRUPTED.is_set(), restart=restart)

    return ChapterKernelManager


class _AfterCtrlC(logging.Filter):
    """Drops the log records that follow a Ctrl-C during a chapter's run: the executing cell's
    "kernel died" and the like say nothing the interrupt did not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _INTERRUPTED.is_set()


_QUIET_AFTER_CTRL_C = _AfterCtrlC()


class _CtrlC:
    """While in use (in the main thread): Ctrl-C sets :data:`_INTERRUPTED`, then interrupts as always."""

    def __enter__(self) -> "_CtrlC":
        import signal

        _INTERRUPTED.clear()
        for name in ("papermill", "nbclient", "asyncio"):  # the same filter object is added once
            logging.getLogger(name).addFilter(_QUIET_AFTER_CTRL_C)
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGINT)
            previous = self.previous if callable(self.previous) else signal.default_int_handler

            def on_sigint(signum, frame):
                _INTERRUPTED.set()
                previous(signum, frame)

            signal.signal(signal.SIGINT, on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _keep_partial(root: str, slug: str, profile: str, partial: str) -> str:
    """Copy a failed run's partial notebook into ``book/_failed/``; says where it is (or why it is not)."""
    if not os.path.exists(partial):
        return "no partial notebook was written"
    keep = os.path.join(root, "book", "_failed", f"{slug}.{profile}.ipynb")
    try:
        _make_folder(os.path.dirname(keep), root)
        shutil.copy(partial, keep)
    except BookError as exc:
        return f"its partial notebook could not be kept: {exc}"
    except OSError as exc:
        return f"its partial notebook could not be kept: {_os_reason(exc, root)}"
    return f"partial notebook kept in {_rel(keep, root)}"


def _run_one(root: str, slug: str, profile: str, device: str, seed: int, reference: bool,
             resume: bool = False, replace: bool = False, progress_bar: bool | None = None) -> dict:
    """Execute one chapter and render it (see the module docstring); the row of the summary table.

    Raises:
        BookError: an expected failure (the chapter raised, no kernel, a folder that cannot be
            written, malformed claims), on one line.
        KeyboardInterrupt: the run was interrupted (the environment is restored first).
    """
    nbformat = _need("nbformat")
    pm = _need("papermill")
    from jupyter_client.kernelspec import NoSuchKernel

    src = chapter_sources(root)[slug]
    nb = _read_source(src)
    work = os.path.join(root, "book", "_runs")
    _make_folder(work, root)
    inp = os.path.join(work, f"{slug}.{profile}.input.ipynb")  # a quick and a full run may overlap
    partial = os.path.join(work, f"{slug}.{profile}.ipynb")
    claims_tmp = os.path.join(work, f"{slug}.{profile}.claims.json")
    nbformat.write(nb, inp)
    env_before = {k: os.environ.get(k) for k in ("MSNN_CLAIMS_FILE", CHECKPOINT_ENV, "MSNN_PROGRESS")}
    os.environ["MSNN_CLAIMS_FILE"] = claims_tmp
    os.environ["MSNN_PROGRESS"] = "0"
    resumed = False
    if profile in ("full", "paper"):
        ckdir = os.path.join(work, "checkpoints", f"{slug}.{profile}")
        if os.path.isdir(ckdir):
            if resume:
                resumed = any(name.endswith(".pt") for name in os.listdir(ckdir))
            else:  # a fresh run: its wall time is the whole chapter's
                shutil.rmtree(ckdir)
        os.environ[CHECKPOINT_ENV] = ckdir
    if os.path.exists(claims_tmp):
        os.remove(claims_tmp)
    watcher = _Watcher(slug, partial, _previous_durations(root, slug, profile),
                       float(os.environ.get("MSNN_WATCH_SECONDS", "60")))
    t0 = time.perf_counter()
    watcher.start()
    try:
        with _CtrlC():
            pm.execute_notebook(
                inp, partial, parameters={"profile": profile, "device": device, "seed": seed},
                kernel_name="python3", cwd=os.path.join(root, "book"),
                progress_bar=sys.stdout.isatty() if progress_bar is None else progress_bar,
                log_output=False, autosave_cell_every=10,  # the watcher reads what is saved
                kernel_manager_class=_kernel_manager_class())
    except pm.PapermillExecutionError as exc:
        raise BookError(f"chapter {slug}: cell {exc.cell_index} failed with {exc.ename}: {_one_line(exc.evalue)}"
                        f" ({_keep_partial(root, slug, profile, partial)}; the rendered page is unchanged)") from None
    except NoSuchKernel:
        raise BookError(f"chapter {slug}: no Jupyter kernel named 'python3': install one with python -m ipykernel "
                        "install --sys-prefix --name python3 (or --user), then run again") from None
    except (KeyboardInterrupt, BookError, OSError):
        raise
    except Exception as exc:  # the kernel died, did not start or timed out
        raise BookError(f"chapter {slug}: the notebook could not be executed ({type(exc).__name__}: "
                        f"{_one_line(exc)}); {_keep_partial(root, slug, profile, partial)}; the rendered page is "
                        "unchanged") from None
    finally:
        watcher.done.set()
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    wall = time.perf_counter() - t0
    claims: dict = {}
    if os.path.exists(claims_tmp):
        with open(claims_tmp) as fh:
            try:
                claims = json.load(fh)
                why = None if isinstance(claims, dict) else "is not a JSON object"
            except ValueError as exc:
                why = f"is not valid JSON ({exc})"
        if why:
            raise BookError(f"chapter {slug} wrote claims that cannot be read: {_rel(claims_tmp, root)} {why}; "
                            "fix how the chapter saves its claims, then run again (the rendered page is unchanged)")
    claims.setdefault("chapter", slug)
    claims["run"] = {"profile": profile, "wall_seconds": round(wall, 1), "seed": seed,
                     "finished": time.strftime("%Y-%m-%d %H:%M", time.gmtime()) + " UTC",
                     "resumed": resumed}
    out_nb = os.path.join(root, "book", f"{slug}.ipynb")
    executed = nbformat.read(partial, as_version=4)
    pm_meta = executed.metadata.get("papermill", {})
    pm_meta["input_path"] = f"book/{slug}.md"  # no local paths in committed notebooks
    pm_meta["output_path"] = f"book/{slug}.ipynb"
    tidy_executed(executed)
    nbformat.write(executed, partial)
    with open(claims_tmp, "w") as fh:
        json.dump(claims, fh, indent=1)
    rendered = _rendered_profile(root, slug)
    kept = _outranks(rendered, profile) and not replace
    if kept:
        print(f"  kept the rendered {rendered} page of {slug}; this {profile} run is in "
              f"{os.path.relpath(partial, root)} (--replace renders it)", flush=True)
        try:
            stale = _code_cells(nbformat.read(out_nb, as_version=4)) != _code_cells(executed)
        except Exception:  # a missing or unreadable page: it cannot have run the source's code
            stale = True
        if stale:
            print(f"  warning: the kept {rendered} page of {slug} ran other code than book/{slug}.md has now: "
                  f"run the chapter at {rendered} again", flush=True)
    else:
        shutil.copy(partial, out_nb)
        shutil.copy(claims_tmp, os.path.join(root, "book", f"{slug}.claims.json"))
    if reference:
        _make_folder(os.path.join(root, "tests", "notebooks"), root)
        shutil.copy(partial, os.path.join(root, "tests", "notebooks", f"{slug}.ipynb"))
    return {"chapter": slug, "profile": profile, "seconds": wall, "counts": claims.get("counts", {}),
            "device": claims.get("device", "?"), "rendered": not kept}


def cmd_run(args: argparse.Namespace) -> int:
    root = _root()
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
    picked = list(dict.fromkeys(_select(root, args.chapters)))  # each chapter once
    for slug in picked:  # fail early on a malformed source, before hours of running
        _read_source(chapter_sources(root)[slug])
    rows: list[dict] = []
    if args.jobs > 1 and len(picked) > 1:
        failures = _run_jobs(root, picked, args, rows)
    else:
        failures = []
        try:
            for i, slug in enumerate(picked, 1):
                print(f"[{i}/{len(picked)}] {slug} ({args.profile}, device {args.device})", flush=True)
                rows.append(_run_one(root, slug, args.profile, args.device, args.seed, args.reference, args.resume,
                                     args.replace))
        except KeyboardInterrupt:
            _scorecard_best_effort(root, rows)
            raise Interrupted(_how_to_go_on(args, picked[len(rows):], len(rows))) from None
        except (BookError, OSError):  # the chapters rendered so far still reach the scorecard
            _scorecard_best_effort(root, rows)
            raise
    if rows or not failures:
        _write_scorecard(root)  # the landing page's scorecard follows the new claims
        print("\nchapter                         profile  device      wall    pass fail report")
        for r in rows:
            c = r["counts"]
            print(f"{r['chapter']:<31} {r['profile']:<8} {str(r['device'])[:10]:<10} {r['seconds']:6.0f}s "
                  f"{c.get('PASS', 0):5d} {c.get('FAIL', 0):4d} {c.get('REPORT', 0):6d}"
                  + ("" if r["rendered"] else "  (not rendered: a larger run's page is kept)"), flush=True)
    for reason in failures:
        print(f"msnn-book: {_one_line(reason)}", file=sys.stderr, flush=True)
    return 2 if failures else 0


def _how_to_go_on(args: argparse.Namespace, left: list[str], finished: int) -> str:
    """The command that continues an interrupted run (its unfinished chapters)."""
    cmd = f"python -m msnn.book run --profile {args.profile} --device {args.device}"
    cmd += (f" --seed {args.seed}" if args.seed else "") + (" --reference" if args.reference else "")
    cmd += (" --replace" if args.replace else "") + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
    done = f"{finished} chapter(s) finished"
    if args.profile in ("full", "paper"):
        return (f"interrupted ({done}): {cmd} --resume {' '.join(left)} continues from the last saved stages")
    return (f"interrupted ({done}): quick runs keep no checkpoints (--resume is for full and paper runs); "
            f"{cmd} {' '.join(left)} runs the unfinished chapters again")


def _scorecard_best_effort(root: str, rows: list[dict]) -> None:
    """The scorecard for the chapters finished before a failure or an interrupt (best effort: the
    message about the failure matters more)."""
    if rows:
        try:
            _write_scorecard(root)
        except (BookError, OSError):
            pass


#: What a chapter's process runs (``--jobs``): ``_job(spec)`` with the chapter and the run's settings.
_JOB = "import sys\nfrom msnn.book.cli import _job\nsys.exit(_job(sys.argv[1]))"


def _job(spec: str) -> int:
    """Run one chapter in this process (``run --jobs``) and write its row or its failure to ``spec["result"]``.

    Returns the exit code: 0, 2 (a failure, written to the result file), 130 (interrupted).
    """
    s = json.loads(spec)
    root, slug = s["root"], s["slug"]
    out: dict[str, Any] = {}
    code = 0
    try:
        out["row"] = _run_one(root, slug, s["profile"], s["device"], s["seed"], s["reference"], s["resume"],
                              s["replace"], progress_bar=False)
    except KeyboardInterrupt:
        out["error"], code = f"chapter {slug}: interrupted", 130
    except BookError as exc:
        out["error"], code = str(exc), 2
    except OSError as exc:
        out["error"], code = f"chapter {slug}: {_os_reason(exc, root)}", 2
    except Exception as exc:  # a failure nobody foresaw: one line all the same
        out["error"], code = f"chapter {slug}: {type(exc).__name__}: {_one_line(exc)}", 2
    with open(s["result"], "w") as fh:
        json.dump(out, fh)
    return code


def _run_jobs(root: str, picked: list[str], args: argparse.Namespace, rows: list[dict]) -> list[str]:
    """Run the chapters in ``args.jobs`` processes at a time, each with one thread (OMP_NUM_THREADS=1).

    One line per chapter as it starts and as it finishes; every process also prints its
    chapter's per-minute status (see :class:`_Watcher`). The rows of the chapters that
    finished are appended to ``rows`` in the order of ``picked``; returns the failures' reasons.

    Raises:
        Interrupted: Ctrl-C: the running chapters are stopped (their rendered pages are unchanged).
    """
    import signal
    import tempfile

    import msnn

    jobs = min(args.jobs, len(picked))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    here = os.path.dirname(os.path.dirname(os.path.abspath(msnn.__file__)))  # this msnn, in every process
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    print(f"{len(picked)} chapters, {jobs} at a time, one thread each ({args.profile}, device {args.device})",
          flush=True)
    waiting, running, done, failures = list(picked), {}, {}, []
    tmp = tempfile.mkdtemp(prefix="msnn-book-run-")
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                slug = waiting.pop(0)
                result = os.path.join(tmp, f"{slug}.json")
                spec = json.dumps({"root": root, "slug": slug, "profile": args.profile, "device": args.device,
                                   "seed": args.seed, "reference": args.reference, "resume": args.resume,
                                   "replace": args.replace, "result": result})
                # a session of its own: Ctrl-C reaches this process only, which stops the others in order
                proc = subprocess.Popen([sys.executable, "-c", _JOB, spec], env=env, start_new_session=True)
                running[slug] = (proc, result, time.perf_counter())
                print(f"  {slug}: started", flush=True)
            time.sleep(0.2)
            for slug, (proc, result, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[slug]
                try:
                    with open(result) as fh:
                        outcome = json.load(fh)
                except (OSError, ValueError):
                    outcome = {"error": f"chapter {slug}: its process ended with exit code {proc.returncode} "
                                        "and no result (its output is above)"}
                n = len(done) + 1
                if "row" in outcome:
                    done[slug] = outcome["row"]
                    c = outcome["row"]["counts"]
                    print(f"[{n}/{len(picked)}] {slug}: done in {_duration(time.perf_counter() - t0)}, "
                          f"{c.get('PASS', 0)} pass, {c.get('FAIL', 0)} fail, {c.get('REPORT', 0)} report", flush=True)
                else:
                    done[slug] = None
                    failures.append(outcome["error"])
                    print(f"[{n}/{len(picked)}] {slug}: failed (the reason is at the end)", flush=True)
    except KeyboardInterrupt:
        for proc, _, _ in running.values():  # Ctrl-C for every running chapter: it stops its kernel and ends
            proc.send_signal(signal.SIGINT)
        for proc, _, _ in running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        rows.extend(r for r in (done.get(s) for s in picked) if r)
        _scorecard_best_effort(root, rows)
        for reason in failures:
            print(f"msnn-book: {_one_line(reason)}", file=sys.stderr, flush=True)
        left = [s for s in picked if done.get(s) is None]  # the failed ones too
        raise Interrupted(_how_to_go_on(args, left, len(rows))) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows.extend(r for r in (done.get(s) for s in picked) if r)
    return failures


def _code_cells(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def _cell_shape(cells) -> list:
    return [(c.cell_type, c.source, c.get("metadata", {}).get("tags", [])) for c in cells]


def cmd_text(args: argparse.Namespace) -> int:
    """Copy each chapter's text (its markdown cells) into its rendered page and nbval reference,
    when its code is what they executed: a corrected sentence needs no hour-long run."""
    import nbformat

    root = _root()
    for slug in _select(root, args.chapters):
        src = _read_source(chapter_sources(root)[slug])
        for path in (os.path.join(root, "book", f"{slug}.ipynb"), os.path.join(root, "tests", "notebooks", f"{slug}.ipynb")):
            rel = os.path.relpath(path, root)
            if not os.path.exists(path):
                print(f"{rel}: missing (run the chapter)", flush=True)
                continue
            page = nbformat.read(path, as_version=4)
            if _code_cells(page) != _code_cells(src):
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
            if _cell_shape(nbformat.read(path, as_version=4).cells) == _cell_shape(cells):  # tags set in place above
                print(f"{rel}: text unchanged", flush=True)
                continue
            page.cells = cells
            nbformat.write(page, path)
            print(f"{rel}: text updated, outputs kept", flush=True)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    root = _root()
    for path in _write_scorecard(root):  # the landing page's chapter map and scorecard, from the claims
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


def _write_scorecard(root: str) -> list[str]:
    """The landing page's generated pages, rewritten; a malformed chapter or claims file is a BookError."""
    from . import scorecard

    try:
        return scorecard.write(root)
    except ValueError as exc:
        raise BookError(str(exc)) from None


def cmd_scorecard(args: argparse.Namespace) -> int:
    from . import scorecard

    root = _root()
    if args.check:
        try:
            bad = scorecard.stale(root)
        except ValueError as exc:
            raise BookError(str(exc)) from None
        for p in bad:
            print(f"stale: {os.path.relpath(p, root)} (run python -m msnn.book scorecard)", file=sys.stderr)
        return 1 if bad else 0
    for p in _write_scorecard(root):
        print(f"wrote {os.path.relpath(p, root)}")
    return 0


def cmd_wheels(args: argparse.Namespace) -> int:
    os.makedirs(args.dir, exist_ok=True)
    plats = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", args.python_version,
           "--implementation", "cp", "-d", args.dir]
    for p in plats:
        cmd += ["--platform", p]
    cmd += list(EXEC_STACK) + ["matplotlib", "scipy", "tqdm"]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc == 0:
        n = len(glob.glob(os.path.join(args.dir, "*.whl")))
        print(f"{n} wheels in {args.dir}. On the GPU node (which has torch):\n"
              f"  python3 -m pip install --no-index --find-links {args.dir} papermill ipykernel jupytext\n"
              f"  python3 -m pip install --no-index --no-deps -e .\n"
              f"  python3 -m msnn.book run --profile full --device cuda")
    return rc


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    s = int(round(seconds))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def cmd_list(args: argparse.Namespace) -> int:
    from .scorecard import load_claims

    root = _root()
    try:  # every claims file checked as the scorecard checks it, before a line is printed
        claims = load_claims(root)
    except ValueError as exc:
        raise BookError(f"{exc}: run the chapter again (python -m msnn.book run NN) or delete the file") from None
    for slug, c in claims.items():
        bad = next((v for v in c["claims"] if not isinstance(v, dict)), None)
        if bad is not None:
            raise BookError(f"book/{slug}.claims.json: a claim is not an object ({bad!r}): run the chapter again "
                            "(python -m msnn.book run NN) or delete the file")
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
              f"{str(run.get('finished', '-')):<20} {_duration(run.get('wall_seconds')):>12} "
              f"{n['PASS']:>5} {n['FAIL']:>5} {n['REPORT']:>6}")
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
        print(f"msnn-book: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 130
    except BookError as exc:
        print(f"msnn-book: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("msnn-book: interrupted", file=sys.stderr, flush=True)
        return 130
    except OSError as exc:  # a file or folder that cannot be read or written
        try:
            root = _root()
        except BookError:
            root = None
        print(f"msnn-book: {_os_reason(exc, root)}", file=sys.stderr, flush=True)
        return 2
