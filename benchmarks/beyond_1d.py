"""Machine precision beyond one dimension: the targets of the work on 2D and sparse data, measured.

The cases live in :mod:`msnn.book.beyond_1d` (chapter ``ch-beyond`` shows some of them):
each runs with the package's default settings unless its title says otherwise, in a
process of its own (one thread), so that its wall time and peak memory are its own; the
errors are measured on points the fit did not train on (between the grid points for 2D
regression, random points for PINNs, between the samples in 1D), against the exact
function, and split by region where the error is expected to gather (the outer band of
the square, the interval's ends).

    python benchmarks/beyond_1d.py                 # every case (about ten minutes on one core)
    python benchmarks/beyond_1d.py reg40 poisson1  # some of them

The table goes to stdout; ``benchmarks/beyond_1d.out.txt`` keeps the last full run.

Targets (one core, float64): 2D regression between the grid points <= 1e-12 in 5 minutes;
2D Poisson <= 1e-12 in 10 minutes and 2 GB; 1D with 600 samples over an interval of length
5 <= 1e-12 between the samples, or a fit that stops at its best held-out error and says so;
a target whose energy sits at a high frequency (sin(40 x) on [-1, 1]) not left tens of
percent behind by stage 1. In 2D the default is the "features" schedule (drawn sine
units, the output layer solved); the 1D cases marked schedule='features' ask for it.
"""
from __future__ import annotations

import os
import sys

from msnn.book.beyond_1d import CASES, rows, run_in_process

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = ["case", "stage", "train (or residue)", "held-out", "inner", "outer band", "stage stopped on", "wall",
           "peak memory"]


def _cell(v) -> str:
    return f"{v:.1e}" if isinstance(v, float) else str(v)


def main() -> None:
    names = sys.argv[1:] or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    print("\n".join(lines), flush=True)
    for name in names:
        try:
            out = run_in_process(name, "full")
        except RuntimeError as exc:
            lines.append(f"| {CASES[name]} | failed: {exc} |" + " |" * (len(COLUMNS) - 2))
            print(lines[-1], flush=True)
            continue
        for row in rows(name, out):
            lines.append("| " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |")
            print(lines[-1], flush=True)
        lines.append(f"| | why it stopped: {out.get('why') or 'all stages trained'}; warnings: "
                     f"{', '.join(out.get('warnings', [])) or '-'} |" + " |" * (len(COLUMNS) - 2))
        print(lines[-1], flush=True)
    if not sys.argv[1:]:
        with open(os.path.join(HERE, "beyond_1d.out.txt"), "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
