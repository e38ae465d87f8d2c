"""Steps per second of one training stage: eager PyTorch against the CUDA-graph fast path.

    python benchmarks/speed.py [--device cuda] [--steps 2000]

Prints, in one run: Adam steps/s eager and fast for the regression stage (3x20 tanh
MLP, float64) at N = 300, 3,000, 30,000 with the ratio fast/eager; an 8-member
ensemble step against one network; and the wall time until the RMS error of a
multi-stage fit of eq. (2.2) is at most 1e-12. On a CPU there is no fast path and
the "fast" column repeats eager (ratio 1).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from msnn import MultistageRegressor, StageNetwork, train
from msnn.problems import eq_2_2


def steps_per_second(device, n_points, steps, fast, n_models=1):
    x = torch.linspace(-1, 1, n_points, dtype=torch.float64, device=device)[:, None]
    y = torch.sin(2 * x[:, 0] + 1) + 0.2 * torch.exp(1.3 * x[:, 0])
    net = StageNetwork(1, (20, 20, 20), n_models=n_models, ensemble=n_models > 1, device=device)
    lf = (lambda: torch.mean((net(x) - y) ** 2, dim=-1))
    train(net, lf, adam_steps=20, lbfgs_steps=0, progress=False, fast=fast)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    h = train(net, lf, adam_steps=steps, lbfgs_steps=0, progress=False, fast=fast)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t), h.extra["adam_path"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--skip-accuracy", action="store_true")
    a = ap.parse_args()
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    print(f"device: {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else 'CPU'}), torch {torch.__version__}")
    print(f"{'stage':<28}{'eager steps/s':>15}{'fast steps/s':>15}{'fast/eager':>12}  path")
    for n in (300, 3000, 30000):
        e, _ = steps_per_second(dev, n, a.steps, False)
        f, path = steps_per_second(dev, n, a.steps, "auto")
        print(f"{'regression 3x20, N=' + str(n):<28}{e:15.0f}{f:15.0f}{f / e:12.2f}  {path}")
    one, _ = steps_per_second(dev, 300, a.steps, "auto")
    eight, _ = steps_per_second(dev, 300, a.steps, "auto", n_models=8)
    print(f"8-member ensemble step / one network step at N=300: {one / eight:.2f}x the time")
    if not a.skip_accuracy:
        x = np.linspace(-1, 1, 4801)
        y = eq_2_2(x)
        xe = np.linspace(-1, 1, 8000)
        t = time.perf_counter()
        reg = MultistageRegressor(n_stages=4, widths=[(20,) * 3, (20,) * 3, (30,) * 3, (30,) * 3],
                                  adam_steps=[3000, 5000, 5000, 5000], lbfgs_steps=[3333, 6666, 10000, 13333],
                                  target_rms=1e-12 / np.sqrt(np.mean(y ** 2)), device=dev, progress=False)
        reg.fit(x, y)
        err = reg.rms_error(xe, eq_2_2(xe))
        print(f"time to rms <= 1e-12 on eq. (2.2): {time.perf_counter() - t:.1f} s "
              f"(reached {err:.2e} after {len(reg.stages_)} stages)")


if __name__ == "__main__":
    main()
