"""The landing page's figure: what each stage of Algorithm 1 leaves for the next.

Run once, from the repository root, to regenerate the committed PNG::

    python -m msnn.book.landing book/figures/multistage.png

It fits four stages to the target of eq. (2.2) with short budgets (minutes on a
laptop CPU) and draws (a) the normalized residue e_n / eps_n that stage n + 1 is
trained on, which stays O(1) while its frequency grows, and (b) the RMS error after
each stage on a log scale, against the machine epsilons of float32 and float64.
"""
from __future__ import annotations

import sys

import numpy as np

from .. import plotting as mp
from ..problems import eq_2_2, uniform_grid
from ..regression import MultistageRegressor

SETTINGS = dict(n_stages=4, widths=[(20,) * 3, (20,) * 3, (30,) * 3, (30,) * 3],
                adam_steps=[500, 500, 500, 500], lbfgs_steps=[4000, 6000, 8000, 8000], seed=0)


def make(path: str, n_train: int = 2000, n_eval: int = 8000) -> dict:
    """Fit the stages, draw the figure into ``path`` and return the RMS error after each stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mp.style()
    x, xe = uniform_grid(n_train), uniform_grid(n_eval)
    reg = MultistageRegressor(device="cpu", progress=False, **SETTINGS).fit(x, eq_2_2(x))
    ye = eq_2_2(xe)
    n = len(reg.stages_)
    residues = [ye - reg.predict(xe, n_stages=k) for k in range(1, n + 1)]
    rms = [float(np.sqrt(np.mean(r ** 2))) for r in residues]
    colors = mp.stage_colors(n)

    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(7.2, 3.1), constrained_layout=True,
                                     gridspec_kw={"width_ratios": [1.6, 1]})
    for k, r in enumerate(residues[:-1]):
        ax_a.plot(xe, r / np.sqrt(np.mean(r ** 2)) - 5 * k, color=colors[k + 1], lw=0.8,
                  label=f"$e_{k + 1}/\\epsilon_{k + 1}$ (stage {k + 2} fits it)")
    ax_a.set_yticks([])
    ax_a.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax_a.set_xlabel("x")
    ax_a.set_title("(a) normalized residues")
    ax_a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8, frameon=False)
    ax_a.grid(False)
    stages = np.arange(1, n + 1)
    ax_b.semilogy(stages, rms, "o-", color="k", lw=1)
    for s, e in zip(stages, rms):
        ax_b.annotate(f"{e:.0e}", (s, e), textcoords="offset points", xytext=(6, 4), fontsize=8)
    for eps, name in ((np.finfo(np.float32).eps, "float32"), (np.finfo(np.float64).eps, "float64")):
        ax_b.axhline(eps, color="0.4", ls="--", lw=0.8)
        ax_b.text(n + 0.4, eps * 2.5, f"{name} epsilon", ha="right", fontsize=8, color="0.3")
    ax_b.set_xticks(stages)
    ax_b.set_xlim(0.6, n + 0.5)
    ax_b.set_ylim(1e-17, 1)
    ax_b.set_xlabel("stages")
    ax_b.set_ylabel("rms error")
    ax_b.set_title("(b) rms error after each stage")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"rms_after_stage": rms, "f_d": [s.f_d for s in reg.stages_]}


if __name__ == "__main__":
    out = make(sys.argv[1] if len(sys.argv) > 1 else "multistage.png")
    print(out)
