"""Executing chapters: jupytext, papermill, the per-minute watcher, Ctrl-C, parallel jobs.

What ``python -m msnn.book run`` does for one chapter (:func:`run_one`) or for several in
parallel processes (:func:`run_jobs`), and the plumbing the other commands share with it
(:class:`BookError`, the repository root, chapter selection, one-line error reasons, the
executed page's tidying). The command line itself is :mod:`msnn.book.cli`.
"""
from __future__ import annotations

from typing import Any

import argparse
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

__all__ = ["tidy_executed", "BookError", "Interrupted", "one_line", "os_reason", "book_root", "select", "read_source", "run_one", "how_to_go_on", "scorecard_best_effort", "JOB_SCRIPT", "run_job", "run_jobs", "code_cells", "cell_shape", "write_scorecard", "duration"]


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


def one_line(text: str) -> str:
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


def os_reason(exc: OSError, root: str | None) -> str:
    """What went wrong with a file, and what to do, on one line."""
    where = _rel(exc.filename, root)
    why = exc.strerror or one_line(exc) or type(exc).__name__
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


def book_root() -> str:
    d = os.path.abspath(os.environ.get("MSNN_BOOK_ROOT", os.getcwd()))
    while True:
        if os.path.exists(os.path.join(d, "_config.yml")) and os.path.isdir(os.path.join(d, "book")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            raise BookError("no _config.yml with a book/ folder here or above: run from the repository root")
        d = parent


def select(root: str, names: list[str]) -> list[str]:
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


def read_source(path: str):
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
        msg = f"  {self.slug}: cell {finished + (running is not None)}/{len(code)}, {duration(elapsed)} elapsed"
        prev = self.previous
        if prev and len(prev) == len(code):
            left = sum(prev[finished:])
            if running is not None:  # the running cell counts with what is left of its last time
                started = cell.get("metadata", {}).get("papermill", {}).get("start_time")
                left = sum(prev[running + 1:]) + max(prev[running] - self._since(started), 0.0)
            msg += f", about {duration(left)} left (cell times of the last run)"
        elif prev:
            msg += f", about {duration(max(sum(prev) - elapsed, 0.0))} left (the last run's total)"
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
        return f"its partial notebook could not be kept: {os_reason(exc, root)}"
    return f"partial notebook kept in {_rel(keep, root)}"


def run_one(root: str, slug: str, profile: str, device: str, seed: int, reference: bool,
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
    nb = read_source(src)
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
    already = {p.pid for p in _descendants(os.getpid())}
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
        raise BookError(f"chapter {slug}: cell {exc.cell_index} failed with {exc.ename}: {one_line(exc.evalue)}"
                        f" ({_keep_partial(root, slug, profile, partial)}; the rendered page is unchanged)") from None
    except NoSuchKernel:
        raise BookError(f"chapter {slug}: no Jupyter kernel named 'python3': install one with python -m ipykernel "
                        "install --sys-prefix --name python3 (or --user), then run again") from None
    except KeyboardInterrupt:
        # the kernel is stopped at once on Ctrl-C; should a slow machine interrupt the stopping
        # itself, no kernel this run started outlives it (holding the terminal's output)
        _stop([p for p in _descendants(os.getpid()) if p.pid not in already])
        raise
    except (BookError, OSError):
        raise
    except Exception as exc:  # the kernel died, did not start or timed out
        raise BookError(f"chapter {slug}: the notebook could not be executed ({type(exc).__name__}: "
                        f"{one_line(exc)}); {_keep_partial(root, slug, profile, partial)}; the rendered page is "
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
            stale = code_cells(nbformat.read(out_nb, as_version=4)) != code_cells(executed)
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


def how_to_go_on(args: argparse.Namespace, left: list[str], finished: int) -> str:
    """The command that continues an interrupted run (its unfinished chapters)."""
    cmd = f"python -m msnn.book run --profile {args.profile} --device {args.device}"
    cmd += (f" --seed {args.seed}" if args.seed else "") + (" --reference" if args.reference else "")
    cmd += (" --replace" if args.replace else "") + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
    done = f"{finished} chapter(s) finished"
    if args.profile in ("full", "paper"):
        return (f"interrupted ({done}): {cmd} --resume {' '.join(left)} continues from the last saved stages")
    return (f"interrupted ({done}): quick runs keep no checkpoints (--resume is for full and paper runs); "
            f"{cmd} {' '.join(left)} runs the unfinished chapters again")


def scorecard_best_effort(root: str, rows: list[dict]) -> None:
    """The scorecard for the chapters finished before a failure or an interrupt (best effort: the
    message about the failure matters more)."""
    if rows:
        try:
            write_scorecard(root)
        except (BookError, OSError):
            pass


#: What a chapter's process runs (``--jobs``): ``run_job(spec)`` with the chapter and the run's settings.
JOB_SCRIPT = "import sys\nfrom msnn.book.execute import run_job\nsys.exit(run_job(sys.argv[1]))"


def run_job(spec: str) -> int:
    """Run one chapter in this process (``run --jobs``) and write its row or its failure to ``spec["result"]``.

    Returns the exit code: 0, 2 (a failure, written to the result file), 130 (interrupted).
    """
    s = json.loads(spec)
    root, slug = s["root"], s["slug"]
    out: dict[str, Any] = {}
    code = 0
    try:
        out["row"] = run_one(root, slug, s["profile"], s["device"], s["seed"], s["reference"], s["resume"],
                              s["replace"], progress_bar=False)
    except KeyboardInterrupt:
        out["error"], code = f"chapter {slug}: interrupted", 130
    except BookError as exc:
        out["error"], code = str(exc), 2
    except OSError as exc:
        out["error"], code = f"chapter {slug}: {os_reason(exc, root)}", 2
    except Exception as exc:  # a failure nobody foresaw: one line all the same
        out["error"], code = f"chapter {slug}: {type(exc).__name__}: {one_line(exc)}", 2
    with open(s["result"], "w") as fh:
        json.dump(out, fh)
    return code


def run_jobs(root: str, picked: list[str], args: argparse.Namespace, rows: list[dict]) -> list[str]:
    """Run the chapters in ``args.jobs`` processes at a time, each with one thread (OMP_NUM_THREADS=1).

    One line per chapter as it starts and as it finishes; every process also prints its
    chapter's per-minute status (see ``_Watcher``). The rows of the chapters that
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
                proc = subprocess.Popen([sys.executable, "-c", JOB_SCRIPT, spec], env=env, start_new_session=True)
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
                    print(f"[{n}/{len(picked)}] {slug}: done in {duration(time.perf_counter() - t0)}, "
                          f"{c.get('PASS', 0)} pass, {c.get('FAIL', 0)} fail, {c.get('REPORT', 0)} report", flush=True)
                else:
                    done[slug] = None
                    failures.append(outcome["error"])
                    print(f"[{n}/{len(picked)}] {slug}: failed (the reason is at the end)", flush=True)
    except KeyboardInterrupt:
        # the kernels of the running chapters, known before anything stops: a chapter process
        # killed below leaves its kernel behind (a session of its own) unless it is stopped too
        kernels = [k for proc, _, _ in running.values() for k in _descendants(proc.pid)]
        for proc, _, _ in running.values():  # Ctrl-C for every running chapter: it stops its kernel and ends
            proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20  # for all of them together, not each in turn
        for proc, _, _ in running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _stop(kernels)
        rows.extend(r for r in (done.get(s) for s in picked) if r)
        scorecard_best_effort(root, rows)
        for reason in failures:
            print(f"msnn-book: {one_line(reason)}", file=sys.stderr, flush=True)
        left = [s for s in picked if done.get(s) is None]  # the failed ones too
        raise Interrupted(how_to_go_on(args, left, len(rows))) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows.extend(r for r in (done.get(s) for s in picked) if r)
    return failures


def _descendants(pid: int) -> list:
    """The processes started by ``pid`` and theirs (psutil, which ipykernel depends on; none without it)."""
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing, or the process already gone: nothing to stop
        return []


def _stop(processes: list) -> None:
    """Kill those of ``processes`` (psutil) still running, and wait a little for them."""
    alive = []
    for p in processes:
        try:
            p.kill()
            alive.append(p)
        except Exception:  # already ended
            pass
    if alive:
        import psutil

        psutil.wait_procs(alive, timeout=5)


def code_cells(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def cell_shape(cells) -> list:
    return [(c.cell_type, c.source, c.get("metadata", {}).get("tags", [])) for c in cells]


def write_scorecard(root: str) -> list[str]:
    """The landing page's generated pages, rewritten; a malformed chapter or claims file is a BookError."""
    from . import scorecard

    try:
        return scorecard.write(root)
    except ValueError as exc:
        raise BookError(str(exc)) from None


def duration(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    s = int(round(seconds))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"
