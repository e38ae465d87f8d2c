"""Time to reach RMS error 1e-10, 1e-12, 1e-14, 3e-16: paper schedule against the default.

    OMP_NUM_THREADS=1 python benchmarks/precision.py [--problem regression|pinn|both]
        [--seeds 0 1 2] [--schedules precision paper] [--paper-budget] [--quick] [--threads 1]

Two problems, each fitted with the "precision" schedule (the default: Adam 1000, then
variable-projection Levenberg-Marquardt) and the "paper" schedule (Adam, then L-BFGS):

(a) regression of eq. (2.2), u = sin(2x + 1) + 0.2 exp(1.3x), on 4801 uniform points
    of [-1, 1], 4 stages; error = RMS of y - prediction on 8000 uniform points after
    each stage, in the units of y (``MultistageRegressor.rms_error``).
(b) the PINN of eq. (3.3), u' = u + x, u(0) = 0 on [-1, 1], 3 stages, 801 collocation
    points; error = ``records_[k].error_rms`` (and ``error_max``) against the exact
    solution e^x - x - 1 after each stage.

The time to a threshold is the cumulative training time (``stages_[k].seconds``,
``records_[k].seconds``) up to the first stage whose RMS error is at or below it;
"-" means not reached. Both schedules run in the same process, one after the other,
so their ratio is measured within one run. The paper schedule's default budget is
modest (Adam 1000 + L-BFGS 2000 per stage for (a), Adam 2000 + L-BFGS 2000/3000/4000
for (b)); ``--paper-budget`` uses the paper's (Adam 3000/5000/5000/5000, L-BFGS
3333/6666/10000/13333, widths 3x20, 3x20, 3x30, 3x30 for (a); the authors' code's Adam
5000/20000/60000 and L-BFGS 6666/13333/0 for (b), on 801 collocation points: hours
on one core). ``--quick`` runs tiny budgets as a smoke check.
Printed beside each table, as reference text (not computed here): the authors' code's
times on the same kind of 2-core CPU, from the project's notes.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from msnn import MultistagePINN, MultistageRegressor
from msnn.pinn_problems import ode_3_3
from msnn.problems import eq_2_2
from msnn.rates import time_to_reach

THRESHOLDS = (1e-10, 1e-12, 1e-14, 3e-16)

AUTHORS = {
    "regression": "authors' code, same kind of 2-core CPU (project notes): RMS 8.6e-5 / 3.8e-8 / 5.2e-10 "
                  "after stages 1-3 at 5 / 18 / 40 min; stage 4 stalled (1e-10 not reached)",
    "pinn": "authors' code, same kind of 2-core CPU (project notes): error 2.6e-7 / 5.7e-13 / 2.2e-15 "
            "after stages 1-3 at 0.5 / 4.6 / 16 min",
}


def time_to(errors, seconds, threshold):
    """Cumulative seconds up to the first stage with error <= threshold, or None."""
    return time_to_reach(errors, seconds, (threshold,))[0]


def run_regression(schedule, seed, args):
    x = np.linspace(-1, 1, 4801)
    y = eq_2_2(x)
    xe = np.linspace(-1, 1, 8000)
    ye = eq_2_2(xe)
    common = dict(n_stages=2 if args.quick else 4, seed=seed, progress=False, verbose=False)
    if schedule == "precision":
        reg = MultistageRegressor(schedule="precision", precision_steps=20 if args.quick else 300, **common)
    elif args.quick:
        reg = MultistageRegressor(adam_steps=200, lbfgs_steps=200, **common)
    elif args.paper_budget:
        reg = MultistageRegressor(adam_steps=[3000, 5000, 5000, 5000], lbfgs_steps=[3333, 6666, 10000, 13333],
                                  widths=[(20,) * 3, (20,) * 3, (30,) * 3, (30,) * 3], **common)
    else:
        reg = MultistageRegressor(adam_steps=1000, lbfgs_steps=2000, **common)
    t = time.perf_counter()
    reg.fit(x, y)
    wall = time.perf_counter() - t
    errors = [reg.rms_error(xe, ye, n_stages=k + 1) for k in range(len(reg.stages_))]
    seconds = [s.seconds for s in reg.stages_]
    return errors, None, seconds, wall


def run_pinn(schedule, seed, args):
    n = 2 if args.quick else 3
    common = dict(orders=(1,), n_stages=n, n_collocation=801, seed=seed, progress=False, device="cpu")
    if schedule == "precision":
        sol = MultistagePINN(ode_3_3(), precision_steps=20 if args.quick else 300, **common)
    elif args.quick:
        sol = MultistagePINN(ode_3_3(), adam_steps=200, lbfgs_steps=200, **common)
    elif args.paper_budget:
        sol = MultistagePINN(ode_3_3(), adam_steps=[5000, 20000, 60000], lbfgs_steps=[6666, 13333, 0], **common)
    else:
        sol = MultistagePINN(ode_3_3(), adam_steps=2000, lbfgs_steps=[2000, 3000, 4000], **common)
    t = time.perf_counter()
    sol.solve()
    wall = time.perf_counter() - t
    recs = sol.records_
    return [r.error_rms for r in recs], [r.error_max for r in recs], [r.seconds for r in recs], wall


def print_table(problem, rows):
    head = (f"{'schedule':<11}{'seed':>5}" + "".join(f"{'t<=' + format(th, '.0e'):>11}" for th in THRESHOLDS)
            + f"{'final rms':>11}" + (f"{'final max':>11}" if problem == "pinn" else "")
            + f"{'total s':>9}{'wall s':>8}  rms per stage")
    print(head)
    for sched, seed, errors, emax, seconds, wall in rows:
        cells = []
        for th in THRESHOLDS:
            t = time_to(errors, seconds, th)
            cells.append(f"{'-' if t is None else format(t, '.1f'):>11}")
        line = f"{sched:<11}{seed:>5}" + "".join(cells) + f"{errors[-1]:>11.2e}"
        if problem == "pinn":
            line += f"{emax[-1]:>11.2e}"
        line += f"{sum(seconds):>9.1f}{wall:>8.1f}  " + " ".join(f"{e:.1e}" for e in errors)
        print(line)
    # ratio within this run: paper / precision time to each threshold, same seed
    by = {(s, sd): (e, sec) for s, sd, e, _, sec, _ in rows}
    for seed in sorted({sd for _, sd, *_ in rows}):
        if ("precision", seed) in by and ("paper", seed) in by:
            (ep, sp), (eq, sq) = by[("paper", seed)], by[("precision", seed)]
            rat = []
            for th in THRESHOLDS:
                a, b = time_to(ep, sp, th), time_to(eq, sq, th)
                rat.append(f"{th:.0e}: " + (f"{a / b:.1f}x" if a is not None and b is not None else "n/a"))
            print(f"  seed {seed}: paper time / precision time to threshold -- " + ", ".join(rat))
    print("  " + AUTHORS[problem])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", choices=("regression", "pinn", "both"), default="both")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--schedules", nargs="+", choices=("precision", "paper"), default=["precision", "paper"])
    ap.add_argument("--paper-budget", action="store_true", help="the paper's full Adam / L-BFGS budgets and widths")
    ap.add_argument("--quick", action="store_true", help="tiny budgets, 2 stages: a smoke check")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
          + (", --quick" if args.quick else "") + (", --paper-budget" if args.paper_budget else ""))
    problems = ("regression", "pinn") if args.problem == "both" else (args.problem,)
    for problem in problems:
        title = ("(a) regression of eq. (2.2), 4801 training / 8000 test points, RMS error in units of y"
                 if problem == "regression" else
                 "(b) PINN of eq. (3.3), 801 collocation points, error against e^x - x - 1 (thresholds on RMS)")
        print(f"\n{title}; times are cumulative training seconds")
        rows = []
        for seed in args.seeds:
            for sched in args.schedules:
                fn = run_regression if problem == "regression" else run_pinn
                rows.append((sched, seed, *fn(sched, seed, args)))
                print(f"  done: {sched} seed {seed} ({rows[-1][-1]:.1f} s)", flush=True)
        print_table(problem, rows)


if __name__ == "__main__":
    main()
