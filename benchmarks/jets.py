"""Cost of the Burgers loss's derivatives: Taylor-mode jets against nested autograd.

    python benchmarks/jets.py [--device cpu|cuda] [--repeat 30]

Chapter 8's loss needs the odd ansatz U = y [NN(y) + NN(-y)] and its derivatives up
to U'''' (the smoothness term differentiates the residue three times). This script
times one loss-and-gradient evaluation (forward and backward to the weights) both
ways, on the same points and network, and prints the ratio measured in this run,
with the largest difference between the two losses as a check that they compute the
same thing.
"""
from __future__ import annotations

import argparse
import time

import torch

from msnn.burgers import BurgersSolution
from msnn.jets import residual_jet


def autograd_loss(model, yc, ys):
    """The same loss as ``jet_loss`` with every derivative from nested autograd."""
    lam = model.lam

    def derivs(y, order):
        y = y.clone().requires_grad_(True)
        net = model.nets[0]
        out = [y * (net(y) + net(-y))]
        for _ in range(order):
            out.append(torch.autograd.grad(out[-1].sum(), y, create_graph=True)[0])
        return y, out

    yc_, Uc = derivs(yc, 2)
    ys_, Us = derivs(ys, 4)
    rc = residual_jet(Uc, yc_, lam, 1)
    rs = residual_jet(Us, ys_, lam, 3)
    return (rc[0] ** 2).mean() + 0.1 * (rc[1] ** 2).mean() + 0.01 * (rs[3] ** 2).mean()


def jet_loss(model, yc, ys):
    lam = model.lam
    rc = residual_jet(model.jet(yc, 2), yc, lam, 1)
    rs = residual_jet(model.jet(ys, 4), ys, lam, 3)
    return (rc[0] ** 2).mean() + 0.1 * (rc[1] ** 2).mean() + 0.01 * (rs[3] ** 2).mean()


def timed(fn, repeat, device):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    model = BurgersSolution(0.5, device=device)
    model.add_stage([dict(eps=1.0, widths=(20, 20, 20), seed=0)])
    with torch.no_grad():
        for b in model.nets[0].biases:
            b.normal_(0, 0.3)
    print(f"{'N_c':>6} {'N_s':>5} {'autograd ms':>12} {'jets ms':>9} {'ratio':>6} {'|loss diff|':>12}")
    for nc, ns in ((200, 30), (1000, 100), (4000, 100)):
        yc = torch.linspace(-2, 2, nc, dtype=torch.float64, device=device)
        ys = torch.linspace(-0.1, 0.1, ns, dtype=torch.float64, device=device)

        def step(f):
            model.zero_grad()
            loss = f(model, yc, ys)
            loss.backward()
            return loss

        diff = abs(float(step(autograd_loss).detach()) - float(step(jet_loss).detach()))
        ta = timed(lambda: step(autograd_loss), args.repeat, device)
        tj = timed(lambda: step(jet_loss), args.repeat, device)
        print(f"{nc:>6} {ns:>5} {1e3 * ta:>12.2f} {1e3 * tj:>9.2f} {ta / tj:>6.1f} {diff:>12.1e}")


if __name__ == "__main__":
    main()
