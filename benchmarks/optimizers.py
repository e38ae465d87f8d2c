"""One stage, five ways: L-BFGS, exact output layer, LSGD, variable projection, Levenberg-Marquardt.

What is measured: stage 1 of Algorithm 1 on eq. (2.2) (a 3x20 tanh network, float64,
uniform training points) is trained by Adam for ``--adam`` steps; from that same
state (the parameters are copied), each optimizer then runs on its own:

- ``lbfgs``: L-BFGS (strong Wolfe, tolerances 0), the papers' second phase;
- ``lbfgs+lstsq``: the same, then one exact least-squares solve of the output layer;
- ``lsgd``: Adam on the hidden layers with the output layer re-solved at every step;
- ``vp-lm``: variable-projection Levenberg-Marquardt (output layer exact, Tikhonov mu);
- ``lm``: Levenberg-Marquardt on all parameters.

It prints, for each, the training loss (mean square, normalized target) reached
after given wall times, the final loss, the held-out RMS on 8000 points, the
output layer's ||w||_1 and the stage's float64 round-off. All in one run, on one
thread by default, so the columns compare like with like on this machine.

Run: ``python benchmarks/optimizers.py [--points 1501] [--adam 1000] [--budget 30]``
(``--budget``: seconds each optimizer gets, roughly; the iteration counts are sized
from a short timing run so that each ends near it).
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from msnn.networks import StageNetwork
from msnn.phases import RowGroup, output_layer_norm, round_off, run_phases
from msnn.problems import eq_2_2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=1501)
    ap.add_argument("--adam", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per optimizer (roughly)")
    ap.add_argument("--mu", type=float, default=1e-19, help="Tikhonov weight of vp-lm and lsgd")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    x = torch.linspace(-1, 1, args.points, dtype=torch.float64)[:, None]
    y = eq_2_2(x[:, 0].numpy())
    scale = float(np.sqrt(np.mean(y ** 2)))
    t = torch.as_tensor(y / scale)
    xe = torch.linspace(-1, 1, 8000, dtype=torch.float64)[:, None]
    ye = eq_2_2(xe[:, 0].numpy()) / scale
    group = [RowGroup(x, lambda u, z: u(z) - t, 1.0, "data")]

    start = StageNetwork(1, (20, 20, 20), seed=args.seed)
    t0 = time.perf_counter()
    run_phases(start, group, [("adam", args.adam)], progress=False)
    print(f"eq. (2.2), {args.points} points, 3x20 tanh, Adam {args.adam} steps: "
          f"{time.perf_counter() - t0:.1f} s; torch {torch.__version__}, {args.threads} thread(s)")

    # iteration counts sized to the budget from a few timed iterations of each
    def rate(sched):
        net = copy.deepcopy(start)
        t1 = time.perf_counter()
        run_phases(net, group, sched, progress=False)
        return time.perf_counter() - t1

    per = {"lbfgs": rate([("lbfgs", 20)]) / 20, "lsgd": rate([("lsgd", 20)]) / 20,
           "vp-lm": rate([("vp-lm", 5, {"mu": args.mu, "patience": 1000})]) / 5,
           "lm": rate([("lm", 5, {"patience": 1000})]) / 5}
    n = {k: max(1, int(args.budget / v)) for k, v in per.items()}
    methods = {
        "lbfgs": [("lbfgs", n["lbfgs"])],
        "lbfgs+lstsq": [("lbfgs", n["lbfgs"]), ("output-lstsq",)],
        "lsgd": [("lsgd", n["lsgd"], {"mu": args.mu})],
        "vp-lm": [("vp-lm", n["vp-lm"], {"mu": args.mu, "patience": 10 ** 6})],
        "lm": [("lm", n["lm"], {"patience": 10 ** 6})],
    }
    checkpoints = [1.0, 3.0, 10.0, 30.0]
    rows = []
    for name, sched in methods.items():
        net = copy.deepcopy(start)
        reports = run_phases(net, group, sched, progress=False)
        main_rep = reports[0]
        hist = np.asarray(main_rep.history, dtype=float)
        if main_rep.times:
            times = np.asarray(main_rep.times, dtype=float)
        else:  # L-BFGS: one loss per evaluation, spread evenly over its wall time
            times = np.linspace(0, main_rep.seconds, hist.size)
        at = []
        for c in checkpoints:
            k = np.nonzero(times <= c)[0]
            at.append(np.min(hist[: k[-1] + 1]) if k.size else np.nan)
        with torch.no_grad():
            held = float(np.sqrt(np.mean((net(xe).numpy() - ye) ** 2))) * scale
        rows.append((name, sum(r.steps for r in reports), at, reports[-1].loss_after, held,
                     output_layer_norm(net), round_off(net, xe) * scale, sum(r.seconds for r in reports)))

    head = "".join(f"{'loss @' + format(c, 'g') + ' s':>13s}" for c in checkpoints)
    print(f"\n{'optimizer':12s}{'iters':>7s}{head}{'final loss':>12s}{'held-out':>10s}"
          f"{'||w||_1':>10s}{'round-off':>11s}{'wall':>8s}")
    for name, its, at, fin, held, norm, ro, secs in rows:
        print(f"{name:12s}{its:7d}" + "".join(f"{v:13.2e}" for v in at)
              + f"{fin:12.2e}{held:10.1e}{norm:10.3g}{ro:11.1e}{secs:7.0f}s")
    print("\nloss: mean square on the training points, target divided by its RMS (so it starts near 1);"
          " held-out: RMS error on 8000 points in the units of y; round-off: float64 vs long double.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
