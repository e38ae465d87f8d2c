"""The precision recipe, varied one setting at a time: what each stage reaches and why.

What is measured: Algorithm 1 on eq. (2.2) (4801 uniform training points on [-1, 1],
errors on 8000 other points, in the units of y) with ``MultistageRegressor``'s
"precision" schedule, and with one change at a time:

- ``default``: Adam 1000 + variable-projection LM (300 at most) per stage, mu = 1e-19
  in stage 1 and 1e-15 later, kappa_hat = 2 pi f_d, 3x20 networks, random training
  subsets of max(1501, 12 pi f_d) points (``stage_points="auto"``);
- ``mu0``: no Tikhonov weight in any stage (the round-off of a large stage-1 output layer);
- ``paper-stage-1``: stage 1 trained the papers' way (Adam 2000 + L-BFGS 3000);
- ``kappa-1.2``: kappa_hat = 1.2 pi f_d (near the authors' code's 3Z rule);
- ``width-30``: 3x30 networks;
- ``all-points``: every stage on all 4801 points (no subset, no validation points);
- ``five-stages``: up to five stages.

One row per variant and seed: the held-out RMS after each stage, the final RMS, the
RMS in the outer 1% of the interval and inside it, the max error, and per stage the
dominant frequency f_d of its residue, the points it trained on against eq. (2.10)'s
12 pi f_d, its output layer's ||w||_1 and its round-off (float64 against long double,
times eps); the wall time. Stages stop early once the residue is at the float64
round-off of the data.

Run: ``OMP_NUM_THREADS=1 python benchmarks/stages.py [--seeds 0 1] [--variants default mu0 ...]``
(each variant takes 1-5 minutes on one core).
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from msnn import MultistageRegressor
from msnn.problems import eq_2_2

VARIANTS = {
    "default": {},
    "mu0": dict(schedule=[("adam", 1000), ("vp-lm", 300, {"mu": 0.0})]),
    "paper-stage-1": dict(schedule=[[("adam", 2000), ("lbfgs", 3000)]]
                          + [[("adam", 1000), ("vp-lm", 300, {"mu": 1e-15})]] * 2),
    "kappa-1.2": dict(kappa_factor=1.2),
    "width-30": dict(widths=(30, 30, 30)),
    "all-points": dict(stage_points=None),
    "five-stages": dict(n_stages=5),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--points", type=int, default=4801)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = np.linspace(-1, 1, args.points)
    y = eq_2_2(x)
    xe = np.linspace(-1, 1, 8000)
    ye = eq_2_2(xe)
    edge = np.abs(xe) > 0.99
    print(f"eq. (2.2), {args.points} training points, errors on 8000 others; torch {torch.__version__}, "
          f"{args.threads} thread(s)\n")
    head = (f"{'variant':14s}{'seed':>5s}  {'rms after each stage':34s}{'final':>9s}{'edge':>9s}{'inside':>9s}"
            f"{'max':>9s}{'wall s':>8s}   per stage: f_d | points (12 pi f_d) | ||w||_1 | round-off")
    print(head)
    for name in args.variants:
        for seed in args.seeds:
            opts = dict(n_stages=3, seed=seed, progress=False)
            opts.update(VARIANTS[name])
            t0 = time.perf_counter()
            reg = MultistageRegressor(**opts).fit(x, y)
            wall = time.perf_counter() - t0
            per = [reg.rms_error(xe, ye, k) for k in range(1, len(reg.stages_) + 1)]
            e = ye - reg.predict(xe)
            rms = lambda v: float(np.sqrt(np.mean(v ** 2)))  # noqa: E731
            stages = []
            for st in reg.stages_:
                f = "-" if st.f_d is None else f"{st.f_d[0]:.3g}"
                need = "-" if st.f_d is None else f"{12 * math.pi * st.f_d[0]:.0f}"
                stages.append(f"{f} | {st.n_train} ({need}) | {st.output_norm:.3g} | "
                              f"{st.round_off * reg.y_scale_:.0e}")
            print(f"{name:14s}{seed:5d}  {', '.join(f'{v:.1e}' for v in per):34s}{per[-1]:9.1e}{rms(e[edge]):9.1e}"
                  f"{rms(e[~edge]):9.1e}{np.max(np.abs(e)):9.1e}{wall:8.0f}   " + "; ".join(stages), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
