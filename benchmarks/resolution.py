"""What the data of benchmarks/beyond_1d.py resolve: a Chebyshev least-squares baseline.

``beyond_1d.py`` measures the multi-stage fits between the training points and finds
them far above round-off in 2D and on sparse 1D data. Is that the data or the fit? This
script fits the same samples with a plain linear least-squares expansion in Chebyshev
polynomials (tensor products in 2D) of degree n, on the inputs mapped to [-1, 1], and
measures it at the same places (between the grid points or samples, split into the same
inner region and outer band), for a range of n. Where a degree reaches round-off between
the points, the samples resolve the function to machine precision and what stops the
networks is their basis or their training, not the sampling.

    python benchmarks/resolution.py        # a few seconds; the table goes to stdout

The condition column is that of the 1D Chebyshev matrix, squared in 2D (a tensor fit).

``benchmarks/resolution.out.txt`` keeps the last run. numpy only, float64.
"""
from __future__ import annotations

import os

import numpy as np
from numpy.polynomial import chebyshev as C

HERE = os.path.dirname(os.path.abspath(__file__))


def _rms(e) -> float:
    return float(np.sqrt(np.mean(np.square(e))))


def line(f, lo: float, hi: float, n_pts: int, band: float, degrees) -> list[dict]:
    """1D: least squares in Chebyshev degree <= n on n_pts uniform samples of [lo, hi]."""
    x = np.linspace(lo, hi, n_pts)
    xm = (x[:-1] + x[1:]) / 2  # between the samples
    t, tm = 2 * (x - lo) / (hi - lo) - 1, 2 * (xm - lo) / (hi - lo) - 1
    ends = (xm < lo + band) | (xm > hi - band)
    rows = []
    for n in degrees:
        V = C.chebvander(t, n)
        c = np.linalg.lstsq(V, f(x), rcond=None)[0]
        e = f(xm) - C.chebval(tm, c)
        rows.append(dict(degree=n, train=_rms(f(x) - V @ c), between=_rms(e), inner=_rms(e[~ends]),
                         outer=_rms(e[ends]), cond=float(np.linalg.cond(V))))
    return rows


def grid(f, n_pts: int, degrees) -> list[dict]:
    """2D: tensor Chebyshev least squares of degree <= n per axis on an n_pts x n_pts grid of [-1, 1]^2."""
    g = np.linspace(-1, 1, n_pts)
    c = (g[:-1] + g[1:]) / 2  # the cell centres: between the grid points on both axes
    X, Y = np.meshgrid(g, g, indexing="ij")
    Xc, Yc = np.meshgrid(c, c, indexing="ij")
    inner = (np.abs(Xc) <= 0.9) & (np.abs(Yc) <= 0.9)
    rows = []
    for n in degrees:
        V, Vc = C.chebvander(g, n), C.chebvander(c, n)
        P = np.linalg.pinv(V)  # the tensor least-squares fit is P F P^T
        coef = P @ f(X, Y) @ P.T
        e = f(Xc, Yc) - Vc @ coef @ Vc.T
        rows.append(dict(degree=n, train=_rms(f(X, Y) - V @ coef @ V.T), between=_rms(e), inner=_rms(e[inner]),
                         outer=_rms(e[~inner]), cond=float(np.linalg.cond(V)) ** 2))
    return rows


CASES = {
    "2D regression, exp(-x^2 - y) sin(2x + y), 40 x 40 grid of [-1, 1]^2":
        lambda: grid(lambda x, y: np.exp(-x ** 2 - y) * np.sin(2 * x + y), 40, [10, 14, 18, 22, 26, 30]),
    "2D regression, cos(pi x y) + x^2 sin(y), 64 x 64 grid of [-1, 1]^2":
        lambda: grid(lambda x, y: np.cos(np.pi * x * y) + x ** 2 * np.sin(y), 64, [10, 14, 18, 22, 26, 30, 40]),
    "1D, 600 samples of exp(-x/4) sin(3x) on [0, 5]":
        lambda: line(lambda x: np.exp(-x / 4) * np.sin(3 * x), 0.0, 5.0, 600, 0.25, [20, 30, 40, 60, 80, 120]),
    "1D, 2000 points of exp(x) / 2 + sin(40 x) on [-1, 1]":
        lambda: line(lambda x: 0.5 * np.exp(x) + np.sin(40 * x), -1.0, 1.0, 2000, 0.1, [40, 60, 80, 100, 150, 200]),
}
COLUMNS = ["case", "degree", "train", "between", "inner", "outer", "cond"]


def main() -> None:
    lines = ["| case | degree | train | between the points | inner | outer band | condition |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, run in CASES.items():
        for i, r in enumerate(run()):
            lines.append(f"| {name if i == 0 else ''} | {r['degree']} | {r['train']:.1e} | {r['between']:.1e} | "
                         f"{r['inner']:.1e} | {r['outer']:.1e} | {r['cond']:.1e} |")
    print("\n".join(lines))
    with open(os.path.join(HERE, "resolution.out.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
