"""Time one Adam step of one network against an 8-member ensemble (Appendix A sweeps).

    python benchmarks/ensemble.py [--n 300] [--members 8] [--steps 300] [--dtype float32 float64] [--threads 1]

Prints the median time of one Adam step (forward, backward, update) for a single
3x20 tanh network and for an ensemble of ``--members`` such networks trained as
one batched network (msnn.ensemble), and the ratio, for each dtype. Target on a
CPU: ratio <= 3. On a CPU the ensemble is compute-bound (float64 tanh is not
vectorized there), so the ratio is lower in float32 (chapter 1's precision) than
in float64; on a GPU both are launch-bound and the ratio is close to 1.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from msnn.networks import StageNetwork


def adam_step_seconds(n_models: int, n: int, steps: int, dtype, device) -> float:
    net = StageNetwork(1, (20, 20, 20), seeds=list(range(n_models)), ensemble=True, dtype=dtype, device=device)
    x = torch.linspace(-1, 1, n, dtype=dtype, device=device)[:, None]
    y = torch.sin(2 * x[:, 0] + 1) + 0.2 * torch.exp(1.3 * x[:, 0])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 20):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((net(x) - y) ** 2, dim=1)
        loss.sum().backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 20:  # warm-up steps excluded
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="training points N_d")
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--dtype", nargs="+", choices=["float32", "float64"], default=["float32", "float64"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's own; 1 is fastest for these tiny networks)")
    a = ap.parse_args()
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    print(f"device {device.type}, N_d = {a.n}, torch threads {torch.get_num_threads()}")
    for name in a.dtype:
        dtype = getattr(torch, name)
        t1 = adam_step_seconds(1, a.n, a.steps, dtype, device)
        te = adam_step_seconds(a.members, a.n, a.steps, dtype, device)
        print(f"{name}: one network {t1 * 1e3:.3f} ms per Adam step; {a.members}-member ensemble "
              f"{te * 1e3:.3f} ms ({te / a.members * 1e3:.3f} ms per member); "
              f"ratio {te / t1:.2f} (target <= 3; separate runs: {a.members})")

if __name__ == "__main__":
    main()
