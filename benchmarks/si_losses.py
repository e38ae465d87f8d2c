"""SI-MSNN stages trained on the MSE against the SI paper's L^p loss, at small budgets.

    python benchmarks/si_losses.py [--threads 1] [--cache-dir DIR] [--only 9|10]

Chapters 9 and 10 train their ``quick`` profiles on the MSE and their ``full`` profiles
on the SI paper's loss, the mean-form L^p norm with p = 10. This script measures the
reason given in the chapters: at small budgets the L^p loss lowers the RMS residue,
which is what the claims measure, more slowly than the MSE. Two cases, each trained
twice from the same seed, once per loss, with everything else equal:

* chapter 9's target (``problems.si_target_2d``) on the 32 x 32 periodic grid of its
  ``quick`` profile, every half-plane mode as features (528), three stages of 300 Adam
  steps and 700 L-BFGS iterations;
* chapter 10's turbulence snapshot (512 x 512 DNS, Re = 2000, t = 1.25) truncated to the
  64 x 64 grid of its ``full`` profile, n_f = 1359 then every half-plane mode (2112),
  two stages of 300 Adam steps and 600 L-BFGS iterations.

It prints, per case and loss, the RMS residue relative to RMS(u) after each stage, the
largest |residue| relative to max |u|, and the training time. The 512 x 512 DNS is
the slow part when it is not cached; ``--cache-dir`` keeps it (chapter 10's ``full``
runs keep theirs in ``book/_runs/checkpoints/10-turbulence.full``, which is the default
when it exists).
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from msnn import problems
from msnn import turbulence as tb
from msnn.si import SIMultistageRegressor

CH10_CACHE = os.path.join("book", "_runs", "checkpoints", "10-turbulence.full")


def run(u: np.ndarray, lo: float, hi: float, loss: str, **kw) -> tuple[list[float], float, float]:
    """Per-stage relative RMS residue, final relative max residue, training seconds."""
    t = time.perf_counter()
    reg = SIMultistageRegressor(loss=loss, p=10, widths=(30, 30, 30), device="cpu", seed=0,
                                progress=False, **kw).fit(u, lo=lo, hi=hi)
    wall = time.perf_counter() - t
    rms_u = float(np.sqrt(np.mean(u ** 2)))
    rel = [float(np.sqrt(np.mean(reg.residue(k) ** 2))) / rms_u for k in range(1, len(reg.stages_) + 1)]
    rel_max = float(np.abs(reg.residue()).max() / np.abs(u).max())
    return rel, rel_max, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=CH10_CACHE if os.path.isdir(CH10_CACHE) else None)
    ap.add_argument("--only", choices=["9", "10"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), float64, hidden layers 3x30 tanh, seed 0")
    print(f"{'case':<34} {'loss':<4} {'relative RMS residue after each stage':<40} {'max':>8} {'seconds':>8}")

    cases = []
    if args.only in (None, "9"):
        n = 32
        x1 = -1 + 2 * np.arange(n) / n
        X, Y = np.meshgrid(x1, x1, indexing="ij")
        u = problems.si_target_2d(X, Y)
        n_all = n * n // 2 + n
        cases.append(("ch. 9 target, 32x32, 528 features", u, -1.0, 1.0,
                      dict(n_stages=3, n_features=[n_all] * 3, adam_steps=300, lbfgs_steps=700)))
    if args.only in (None, "10"):
        snap = tb.decaying_turbulence(512, re=2000.0, t_end=1.25, seed=0, device="cpu", cache_dir=args.cache_dir)
        n = 64
        psi = tb.fourier_truncate(snap.psi, n)
        cases.append(("ch. 10 psi, 64x64, 1359/2112 feat.", psi, 0.0, 2 * math.pi,
                      dict(n_stages=2, n_features=[1359, n * n // 2 + n], adam_steps=300, lbfgs_steps=600)))

    for name, u, lo, hi, kw in cases:
        for loss in ("mse", "lp"):
            rel, rel_max, wall = run(u, lo, hi, loss, **kw)
            stages = ", ".join(f"{r:.1e}" for r in rel)
            print(f"{name:<34} {loss:<4} {stages:<40} {rel_max:>8.1e} {wall:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
