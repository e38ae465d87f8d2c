"""Beyond one dimension: the cases chapter ``ch-beyond`` and ``benchmarks/beyond_1d.py`` measure.

Each case fits one problem with ``msnn``'s default settings (or one setting changed, as
its title says) and measures the error **off the training points** against the exact
function: between the grid points for 2D regression (the cell centres), on random
points for a 2D PINN, between the samples in 1D; and split by region, since the error
off the points gathers at the domain's edges (the outer band of the square, the ends
of an interval). :func:`run_in_process` runs a case in a process of its own, on one
thread, so that its wall time and peak memory are its own.

Profiles: ``full`` is the benchmark's size (the targets of the work on precision beyond
1D are stated for it); ``quick`` is the same problem, small, for the book's tests.

    python -m msnn.book.beyond_1d reg40 full   # one case, its result as JSON
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np

__all__ = ["CASES", "run_case", "run_in_process", "rows"]

#: case name -> its title ({n}: its size, which the profile sets).
CASES = {
    "reg40": "2D regression, exp(-x^2 - y) sin(2x + y), {n} x {n} grid of [-1, 1]^2",
    "reg64": "2D regression, cos(pi x y) + x^2 sin(y), {n} x {n} grid of [-1, 1]^2",
    "poisson1": "Poisson -lap u = f on [0, 1]^2, u = sin(pi x) sin(pi y) (a product), {n} points per edge",
    "poisson2": "Poisson -lap u = f on [0, 1]^2, u = exp(x y) sin(x + y) (not a product), {n} points per edge",
    "sparse1d": "1D, {n} samples of exp(-x/4) sin(3x) on [0, 5]",
    "sparse1d_f": "1D, {n} samples of exp(-x/4) sin(3x) on [0, 5], schedule='features'",
    "hf_tanh": "1D, {n} points of exp(x) / 2 + sin(40 x) on [-1, 1], first_stage='tanh' (the papers' start)",
    "hf_auto": "1D, {n} points of exp(x) / 2 + sin(40 x) on [-1, 1], defaults (stage 1 starts from the spectrum)",
    "hf_f": "1D, {n} points of exp(x) / 2 + sin(40 x) on [-1, 1], schedule='features'",
}

# The quick profile: the same problems, small (sizes and the settings that bound the work).
_QUICK = dict(reg=dict(n=16, fit=dict(n_stages=2)),
              poisson=dict(n=17, fit=dict(n_stages=2, n_features=200, n_grid=33)),
              sparse=dict(n=200, fit=dict(n_stages=3, precision_steps=40)),
              hf=dict(n=600, fit=dict(n_stages=2, precision_steps=40)))
_FULL = dict(reg=dict(n=None, fit={}), poisson=dict(n=41, fit={}), sparse=dict(n=600, fit={}),
             hf=dict(n=2000, fit={}))


_KIND = dict(reg40="reg", reg64="reg", poisson1="poisson", poisson2="poisson", sparse1d="sparse", sparse1d_f="sparse",
             hf_tanh="hf",
             hf_auto="hf", hf_f="hf")


def _rms(e) -> float:
    return float(np.sqrt(np.mean(np.square(e))))


def _stage_rows(staged, exact_at, train_error, inner, stopped) -> list[dict]:
    rows = []
    for k, pred in enumerate(staged, 1):
        e = exact_at - pred
        rows.append(dict(stage=k, train=train_error(k), held_out=_rms(e), inner=_rms(e[inner]),
                         outer=_rms(e[~inner]), stopped=stopped(k)))
    return rows


def _reg2d(n: int, f, fit: dict) -> dict:
    from msnn import MultistageRegressor

    g = np.linspace(-1, 1, n)
    x = np.stack([a.ravel() for a in np.meshgrid(g, g, indexing="ij")], 1)
    reg = MultistageRegressor(device="cpu", seed=0, progress=False, **fit).fit(x, f(x))
    c = (g[:-1] + g[1:]) / 2  # the cell centres: between every pair of grid points on both axes
    xc = np.stack([a.ravel() for a in np.meshgrid(c, c, indexing="ij")], 1)
    inner = np.all(np.abs(xc) <= 0.9, axis=1)
    return dict(stages=_stage_rows(reg.staged_predict(xc), f(xc), lambda k: reg.rms_error(x, f(x), n_stages=k),
                                   inner, lambda k: reg.stages_[k - 1].stopped),
                why=reg.stopped_, n_train=reg.stages_[0].n_train, n_heldout=reg.stages_[0].n_heldout)


def _poisson(exact, source, edge: int, fit: dict) -> dict:
    from msnn import MultistagePINN, PINNProblem, laplacian
    from msnn.problems import boundary_points_2d

    xb = boundary_points_2d(edge, lo=0.0, hi=1.0)
    problem = PINNProblem(residual=lambda x, u: -laplacian(u, x) - source(x), domain=[(0.0, 1.0), (0.0, 1.0)],
                          data_x=xb, data_u=exact(xb), exact=exact, name="poisson")
    sol = MultistagePINN(problem, orders=[(2, 0), (0, 2)], device="cpu", seed=0, progress=False, **fit).solve()
    xt = np.random.default_rng(1).uniform(0, 1, (20000, 2))
    inner = np.all((xt >= 0.05) & (xt <= 0.95), axis=1)
    rec = sol.records_
    return dict(stages=_stage_rows(sol.staged_predict(xt), exact(xt), lambda k: rec[k - 1].residue_rms, inner,
                                   lambda k: rec[k - 1].phases[-1]["stopped"] if rec[k - 1].phases else "-"),
                why=sol.stopped_)


def _line(x, f, fit: dict, ends) -> dict:
    from msnn import MultistageRegressor

    reg = MultistageRegressor(device="cpu", seed=0, progress=False, **fit).fit(x, f(x))
    xm = (x[:-1] + x[1:]) / 2  # between the samples
    return dict(stages=_stage_rows(reg.staged_predict(xm), f(xm), lambda k: reg.rms_error(x, f(x), n_stages=k),
                                   ~ends(xm), lambda k: reg.stages_[k - 1].stopped),
                why=reg.stopped_, first=reg.stages_[0].activation, n_train=reg.stages_[0].n_train,
                n_heldout=reg.stages_[0].n_heldout)


def _poisson2_source(x):
    import torch

    a, b = x[:, 0], x[:, 1]
    e, s, c = torch.exp(a * b), torch.sin(a + b), torch.cos(a + b)
    return -e * ((a ** 2 + b ** 2) * s + 2 * (a + b) * c - 2 * s)


def run_case(name: str, profile: str = "full") -> dict:
    """Fit case ``name`` at ``profile`` ("quick" or "full") in this process; its rows and why it stopped."""
    import torch

    if name not in CASES:
        raise ValueError(f"unknown case {name!r}; the cases are {', '.join(CASES)}")
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be 'quick' or 'full', got {profile!r}")
    P = _QUICK if profile == "quick" else _FULL
    kind = _KIND[name]
    size = P[kind]["n"] or int(name[3:])  # a full 2D grid: the size its name gives
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if name in ("reg40", "reg64"):
            f = ((lambda x: np.exp(-x[:, 0] ** 2 - x[:, 1]) * np.sin(2 * x[:, 0] + x[:, 1])) if name == "reg40"
                 else (lambda x: np.cos(np.pi * x[:, 0] * x[:, 1]) + x[:, 0] ** 2 * np.sin(x[:, 1])))
            out = _reg2d(size, f, P["reg"]["fit"])
        elif name == "poisson1":
            out = _poisson(lambda x: np.sin(np.pi * x[:, 0]) * np.sin(np.pi * x[:, 1]),
                           lambda x: 2 * np.pi ** 2 * torch.sin(np.pi * x[:, 0]) * torch.sin(np.pi * x[:, 1]),
                           size, P["poisson"]["fit"])
        elif name == "poisson2":
            out = _poisson(lambda x: np.exp(x[:, 0] * x[:, 1]) * np.sin(x[:, 0] + x[:, 1]), _poisson2_source,
                           size, P["poisson"]["fit"])
        elif name in ("sparse1d", "sparse1d_f"):
            fit = P["sparse"]["fit"]
            if name == "sparse1d_f":  # the same fit by drawn features (no Gauss-Newton steps to set)
                fit = {k: v for k, v in fit.items() if k != "precision_steps"} | {"schedule": "features"}
            out = _line(np.linspace(0, 5, size), lambda x: np.exp(-x / 4) * np.sin(3 * x),
                        fit, lambda xm: (xm < 0.25) | (xm > 4.75))
        else:
            fit = (dict(schedule="features") if name == "hf_f" else
                   dict(P["hf"]["fit"], first_stage="tanh" if name == "hf_tanh" else "auto"))
            out = _line(np.linspace(-1, 1, size), lambda x: 0.5 * np.exp(x) + np.sin(40 * x), fit,
                        lambda xm: np.abs(xm) > 0.9)
    out["title"] = CASES[name].format(n=size)
    out["warnings"] = sorted({type(w.message).__name__ for w in caught if issubclass(w.category, UserWarning)})
    out["seconds"] = time.perf_counter() - t0
    out["peak_gb"] = _peak_gb()
    return out


def _peak_gb() -> float:
    """This process's peak resident memory in GB: VmHWM on Linux (its own, from its exec on),
    else ru_maxrss, which a process started from a large one (a notebook's kernel) inherits."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2 ** 20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # kB on Linux


def run_in_process(name: str, profile: str = "full") -> dict:
    """:func:`run_case` in a fresh Python process on one thread: wall time and peak memory are the case's own.

    Raises:
        RuntimeError: the case failed; the message ends with the process's last line of output.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MSNN_PROGRESS="0")
    proc = subprocess.run([sys.executable, "-m", "msnn.book.beyond_1d", name, profile], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"case {name} ({profile}) failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows(name: str, out: dict) -> list[dict]:
    """One table row per stage of a case's result: the case, stage, errors, why it stopped, time, memory."""
    table = []
    for i, r in enumerate(out["stages"]):
        table.append({"case": out.get("title", CASES[name]) if i == 0 else "", "stage": r["stage"], "train (or residue)": r["train"],
                      "held-out": r["held_out"], "inner": r["inner"], "outer band": r["outer"],
                      "stage stopped on": r["stopped"], "wall": f"{out['seconds']:.0f} s" if i == 0 else "",
                      "peak memory": f"{out['peak_gb']:.2f} GB" if i == 0 else ""})
    return table


def _main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m msnn.book.beyond_1d CASE PROFILE  (cases: {', '.join(CASES)})")
    import torch

    torch.set_num_threads(1)
    print(json.dumps(run_case(argv[0], argv[1])))


if __name__ == "__main__":
    _main(sys.argv[1:])
