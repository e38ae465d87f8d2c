"""The default settings on smooth 1D problems that no chapter tunes for.

What is measured: ``MultistageRegressor()`` and ``MultistagePINN(problem, orders=(1,))``
with every option left at its default (the "precision" schedule), on problems that
appear nowhere else in the book, and the wall time each needs. The errors are RMS
and max on a dense grid that is not the training set, against exact answers:

- regression of exp(-x) sin(5x) + 0.1 x^2 on [0, 3] (2000 uniform points; the example
  of the book's "use msnn" page) and of 1 / (1 + 4 x^2) on [-1, 1] (3000 points);
- the PINN du/dx = -2u + cos(3x) on [0, 2], u(0) = 1, exact solution
  u = (2 cos 3x + 3 sin 3x) / 13 + (11 / 13) e^(-2x);
- the PINN u'' = -pi^2 sin(pi x) on [-1, 1], u(-1) = u(1) = 0, exact u = sin(pi x)
  (orders=(2,)).

Run: ``OMP_NUM_THREADS=1 python benchmarks/defaults.py [--seed 0] [--threads 1]``.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from msnn import MultistagePINN, MultistageRegressor, PINNProblem, grad


def _ode_decay() -> PINNProblem:
    def residual(x, u):
        return grad(u, x, 1) + 2 * u - torch.cos(3 * x[:, 0])

    def exact(x):
        x = np.asarray(x)[:, 0]
        return (2 * np.cos(3 * x) + 3 * np.sin(3 * x)) / 13 + 11 / 13 * np.exp(-2 * x)

    return PINNProblem(residual=residual, domain=[(0.0, 2.0)], data_x=np.zeros((1, 1)), data_u=np.ones(1),
                       exact=exact, name="u' = -2u + cos 3x")


def _poisson_1d() -> PINNProblem:
    def residual(x, u):
        return grad(u, x, 2) + math.pi ** 2 * torch.sin(math.pi * x[:, 0])

    return PINNProblem(residual=residual, domain=[(-1.0, 1.0)], data_x=np.array([[-1.0], [1.0]]),
                       data_u=np.zeros(2), exact=lambda x: np.sin(np.pi * np.asarray(x)[:, 0]),
                       name="u'' = -pi^2 sin(pi x)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), seed {args.seed}; every option at its default\n")
    print(f"{'problem':36s}{'stages':>7s}{'rms error':>11s}{'max error':>11s}{'wall s':>8s}   rms after each stage")

    regressions = {
        "exp(-x) sin 5x + 0.1 x^2 on [0, 3]": (lambda x: np.exp(-x) * np.sin(5 * x) + 0.1 * x ** 2, 0.0, 3.0, 2000),
        "1 / (1 + 4 x^2) on [-1, 1]": (lambda x: 1 / (1 + 4 * x ** 2), -1.0, 1.0, 3000),
    }
    for name, (f, lo, hi, n) in regressions.items():
        x, xe = np.linspace(lo, hi, n), np.linspace(lo, hi, 8000)
        t0 = time.perf_counter()
        reg = MultistageRegressor(seed=args.seed, progress=False).fit(x, f(x))
        wall = time.perf_counter() - t0
        per = [reg.rms_error(xe, f(xe), k) for k in range(1, len(reg.stages_) + 1)]
        e = f(xe) - reg.predict(xe)
        print(f"{name:36s}{len(reg.stages_):7d}{per[-1]:11.1e}{np.max(np.abs(e)):11.1e}{wall:8.0f}   "
              + ", ".join(f"{v:.1e}" for v in per))

    for prob, orders in ((_ode_decay(), (1,)), (_poisson_1d(), (2,))):
        t0 = time.perf_counter()
        sol = MultistagePINN(prob, orders=orders, seed=args.seed, progress=False).solve()
        wall = time.perf_counter() - t0
        last = sol.records_[-1]
        print(f"{prob.name:36s}{len(sol.records_):7d}{last.error_rms:11.1e}{last.error_max:11.1e}{wall:8.0f}   "
              + ", ".join(f"{r.error_rms:.1e}" for r in sol.records_))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
