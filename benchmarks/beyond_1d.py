"""Machine precision beyond one dimension: the targets of the work on 2D and sparse data, measured.

Each case runs with the package's default settings unless its row says otherwise, in a
process of its own (one thread), so that its wall time and peak memory are its own; the
errors are measured on points the fit did not train on (between the grid points for 2D
regression, a dense grid for PINNs and 1D data), against the exact function, and split by
region where the error is expected to gather (the outer band of the square, the interval's
ends).

    python benchmarks/beyond_1d.py                 # every case (about an hour on one core)
    python benchmarks/beyond_1d.py reg40 poisson1  # some of them

The table goes to stdout; ``benchmarks/beyond_1d.out.txt`` keeps the last full run.

Targets (one core, float64): 2D regression between the grid points <= 1e-12 in 5 minutes;
2D Poisson <= 1e-12 in 10 minutes and 2 GB; 1D with 600 samples over an interval of length
5 <= 1e-12 between the samples, or a fit that stops at its best held-out error and says so;
a target whose energy sits at a high frequency (sin(40 x) on [-1, 1]) not left tens of
percent behind by stage 1.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    "reg40": "2D regression, exp(-x^2 - y) sin(2x + y), 40 x 40 grid of [-1, 1]^2",
    "reg64": "2D regression, cos(pi x y) + x^2 sin(y), 64 x 64 grid of [-1, 1]^2",
    "poisson1": "Poisson -lap u = f on [0, 1]^2, u = sin(pi x) sin(pi y) (a product), 41 points per edge",
    "poisson2": "Poisson -lap u = f on [0, 1]^2, u = exp(x y) sin(x + y) (not a product), 41 points per edge",
    "sparse1d": "1D, 600 samples of exp(-x/4) sin(3x) on [0, 5]",
    "hf_tanh": "1D, 2000 points of exp(x) / 2 + sin(40 x) on [-1, 1], first_stage='tanh' (the papers' start)",
    "hf_auto": "1D, 2000 points of exp(x) / 2 + sin(40 x) on [-1, 1], defaults (stage 1 starts from the spectrum)",
}


def _reg2d(n: int, f) -> dict:
    from msnn import MultistageRegressor

    g = np.linspace(-1, 1, n)
    X, Y = np.meshgrid(g, g, indexing="ij")
    x = np.stack([X.ravel(), Y.ravel()], 1)
    reg = MultistageRegressor(device="cpu", seed=0, progress=False).fit(x, f(x))
    c = (g[:-1] + g[1:]) / 2  # the cell centres: between every pair of grid points on both axes
    XC, YC = np.meshgrid(c, c, indexing="ij")
    xc = np.stack([XC.ravel(), YC.ravel()], 1)
    inner = np.all(np.abs(xc) <= 0.9, axis=1)
    rows = []
    for k, pred in enumerate(reg.staged_predict(xc), 1):
        e = f(xc) - pred
        train = reg.rms_error(x, f(x), n_stages=k)
        rows.append(dict(stage=k, train=train, held_out=float(np.sqrt(np.mean(e ** 2))),
                         inner=float(np.sqrt(np.mean(e[inner] ** 2))), outer=float(np.sqrt(np.mean(e[~inner] ** 2))),
                         stopped=reg.stages_[k - 1].stopped))
    return dict(stages=rows, why=reg.stopped_)


def _poisson(exact, source) -> dict:
    from msnn import MultistagePINN, PINNProblem, laplacian
    from msnn.problems import boundary_points_2d

    xb = boundary_points_2d(41, lo=0.0, hi=1.0)
    problem = PINNProblem(residual=lambda x, u: -laplacian(u, x) - source(x), domain=[(0.0, 1.0), (0.0, 1.0)],
                          data_x=xb, data_u=exact(xb), exact=exact, name="poisson")
    sol = MultistagePINN(problem, orders=[(2, 0), (0, 2)], device="cpu", seed=0, progress=False).solve()
    rng = np.random.default_rng(1)
    xt = rng.uniform(0, 1, (20000, 2))
    inner = np.all((xt >= 0.05) & (xt <= 0.95), axis=1)
    rows = []
    for k, pred in enumerate(sol.staged_predict(xt), 1):
        e = exact(xt) - pred
        r = sol.records_[k - 1]
        rows.append(dict(stage=k, residue=r.residue_rms, held_out=float(np.sqrt(np.mean(e ** 2))),
                         inner=float(np.sqrt(np.mean(e[inner] ** 2))), outer=float(np.sqrt(np.mean(e[~inner] ** 2))),
                         stopped=r.phases[-1]["stopped"] if r.phases else "-"))
    return dict(stages=rows, why=sol.stopped_)


def _sparse1d() -> dict:
    from msnn import MultistageRegressor

    def f(x):
        return np.exp(-x / 4) * np.sin(3 * x)

    x = np.linspace(0, 5, 600)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = MultistageRegressor(device="cpu", seed=0, progress=False).fit(x, f(x))
    xm = (x[:-1] + x[1:]) / 2  # between the samples
    ends = (xm < 0.25) | (xm > 4.75)
    rows = []
    for k, pred in enumerate(reg.staged_predict(xm), 1):
        e = f(xm) - pred
        rows.append(dict(stage=k, train=reg.rms_error(x, f(x), n_stages=k), held_out=float(np.sqrt(np.mean(e ** 2))),
                         inner=float(np.sqrt(np.mean(e[~ends] ** 2))), outer=float(np.sqrt(np.mean(e[ends] ** 2))),
                         stopped=reg.stages_[k - 1].stopped))
    return dict(stages=rows, why=reg.stopped_, warnings=sorted({type(w.message).__name__ for w in caught}))


def _highfreq(first_stage: str) -> dict:
    from msnn import MultistageRegressor

    def f(x):
        return 0.5 * np.exp(x) + np.sin(40 * x)

    x = np.linspace(-1, 1, 2000)
    reg = MultistageRegressor(device="cpu", seed=0, progress=False, first_stage=first_stage).fit(x, f(x))
    xm = (x[:-1] + x[1:]) / 2
    ends = np.abs(xm) > 0.9
    rows = []
    for k, pred in enumerate(reg.staged_predict(xm), 1):
        e = f(xm) - pred
        rows.append(dict(stage=k, train=reg.rms_error(x, f(x), n_stages=k), held_out=float(np.sqrt(np.mean(e ** 2))),
                         inner=float(np.sqrt(np.mean(e[~ends] ** 2))), outer=float(np.sqrt(np.mean(e[ends] ** 2))),
                         stopped=reg.stages_[k - 1].stopped))
    return dict(stages=rows, why=reg.stopped_, first=reg.stages_[0].activation)


def run_case(name: str) -> dict:
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if name == "reg40":
        out = _reg2d(40, lambda x: np.exp(-x[:, 0] ** 2 - x[:, 1]) * np.sin(2 * x[:, 0] + x[:, 1]))
    elif name == "reg64":
        out = _reg2d(64, lambda x: np.cos(np.pi * x[:, 0] * x[:, 1]) + x[:, 0] ** 2 * np.sin(x[:, 1]))
    elif name == "poisson1":
        out = _poisson(lambda x: np.sin(np.pi * x[:, 0]) * np.sin(np.pi * x[:, 1]),
                       lambda x: 2 * np.pi ** 2 * torch.sin(np.pi * x[:, 0]) * torch.sin(np.pi * x[:, 1]))
    elif name == "poisson2":
        def source(x):
            a, b = x[:, 0], x[:, 1]
            e, s, c = torch.exp(a * b), torch.sin(a + b), torch.cos(a + b)
            return -e * ((a ** 2 + b ** 2) * s + 2 * (a + b) * c - 2 * s)

        out = _poisson(lambda x: np.exp(x[:, 0] * x[:, 1]) * np.sin(x[:, 0] + x[:, 1]), source)
    elif name == "sparse1d":
        out = _sparse1d()
    elif name in ("hf_tanh", "hf_auto"):
        out = _highfreq("tanh" if name == "hf_tanh" else "auto")
    else:
        raise SystemExit(f"unknown case {name!r}; the cases are {', '.join(CASES)}")
    out["seconds"] = time.perf_counter() - t0
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # kB on Linux
    return out


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(run_case(sys.argv[2])))
        return
    names = sys.argv[1:] or list(CASES)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MSNN_PROGRESS="0")
    lines = ["| case | stage | train (or residue) | held-out | inner | outer band | stage stopped on | wall | peak memory |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            lines.append(f"| {CASES[name]} | failed: {proc.stderr.strip().splitlines()[-1]} | | | | | | | |")
            print(lines[-1], flush=True)
            continue
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        mem = f"{out['peak_gb']:.2f} GB"
        for i, r in enumerate(out["stages"]):
            first = i == 0
            lines.append(f"| {CASES[name] if first else ''} | {r['stage']} | {r.get('train', r.get('residue')):.1e} | "
                         f"{r['held_out']:.1e} | {r['inner']:.1e} | {r['outer']:.1e} | {r['stopped']} | "
                         f"{out['seconds']:.0f} s | {mem if first else ''} |")
            print(lines[-1], flush=True)
        if out.get("why") or out.get("warnings"):
            lines.append(f"| | why it stopped: {out.get('why') or 'all stages trained'}; warnings: "
                         f"{', '.join(out.get('warnings', [])) or '-'} | | | | | | | |")
            print(lines[-1], flush=True)
    if not sys.argv[1:]:
        with open(os.path.join(HERE, "beyond_1d.out.txt"), "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
