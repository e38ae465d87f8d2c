"""Figure helpers, so that every chapter looks the same.

Errors and losses on log axes, lowercase axis labels, the paper's panel layout
where it has one. Each helper draws into given axes (or makes its own figure)
and returns the figure or axes.
"""
from __future__ import annotations

import numpy as np

__all__ = ["style", "stage_colors", "plot_loss_histories", "plot_rms_histories", "plot_spectrum",
           "plot_stage_fits", "plot_power_law", "iteration_axis"]


def style() -> None:
    """Matplotlib defaults for the book (sizes, grid, PNG output)."""
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.dpi": 90, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10,
        "legend.fontsize": 8, "axes.titlesize": 10, "figure.autolayout": False,
    })
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except Exception:  # pragma: no cover - outside IPython
        pass


def stage_colors(n: int):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    return [cmap(0.1 + 0.8 * k / max(n - 1, 1)) for k in range(n)]


def iteration_axis(stages) -> list[np.ndarray]:
    """Cumulative iteration axis (Adam steps + L-BFGS evaluations) for each stage's history."""
    out, start = [], 0
    for s in stages:
        n = len(s.loss_history)
        out.append(start + np.arange(1, n + 1))
        start += n
    return out


def plot_loss_histories(ax, stages, scale: float = 1.0, label: str = "stage", colors=None):
    """Loss of each stage over the cumulative iterations, in data units (loss * (eps * scale)^2)."""
    xs = iteration_axis(stages)
    colors = colors or stage_colors(len(stages))
    for k, (s, x) in enumerate(zip(stages, xs)):
        ax.semilogy(x, s.loss_history * (s.eps * scale) ** 2, color=colors[k], lw=1, label=f"{label} {k + 1}")
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    return ax


def plot_rms_histories(ax, stages, scale: float = 1.0, colors=None):
    """RMS error of the combined model over the cumulative iterations."""
    xs = iteration_axis(stages)
    colors = colors or stage_colors(len(stages))
    for k, (s, x) in enumerate(zip(stages, xs)):
        ax.semilogy(x, s.rms_history * scale, color=colors[k], lw=1, label=f"stage {k + 1}")
    ax.set_xlabel("iterations")
    ax.set_ylabel("rms error")
    return ax


def plot_spectrum(ax, values, dx: float, f_d: float | None = None, color="k", label=None):
    """One-sided amplitude spectrum of uniform samples, with the dominant frequency marked."""
    from .spectrum import amplitude_spectrum

    f, a = amplitude_spectrum(values, dx)
    ax.loglog(f[1:], a[1:], color=color, lw=1, label=label)
    if f_d is not None:
        ax.axvline(f_d, color=color, ls=":", lw=1)
    ax.set_xlabel("frequency (cycles per unit)")
    ax.set_ylabel("|fft|")
    return ax


def plot_stage_fits(axes, x, residues, contributions, spectra_dx: float, f_ds):
    """Per stage: the residue e_n and the stage network eps_n u_n (left), the residue's spectrum (right)."""
    for k, (ax_l, ax_r) in enumerate(axes):
        ax_l.plot(x, residues[k], color="tab:blue", lw=1.5, label=f"$e_{k + 1}$")
        ax_l.plot(x, contributions[k], "--", color="tab:red", lw=1, label=rf"$\epsilon_{k + 1} u_{k + 1}$")
        ax_l.set_ylabel(f"stage {k + 2}")
        ax_l.legend(loc="upper right")
        plot_spectrum(ax_r, residues[k], spectra_dx, f_ds[k])
    axes[-1][0].set_xlabel("x")
    return axes


def plot_power_law(ax, eps, f_d, alpha: float, f0: float, label: str = "stages", color="k"):
    """Dominant frequency against magnitude of the residues, with the fitted f_d = f0 eps^(-alpha)."""
    eps = np.asarray(eps, dtype=float)
    ax.loglog(eps, f_d, "o", color=color, label=label)
    e = np.logspace(np.log10(eps.min()) - 0.5, np.log10(eps.max()) + 0.5, 50)
    ax.loglog(e, f0 * e ** (-alpha), "--", color=color, lw=1, label=rf"$f_d \propto \epsilon^{{-{alpha:.3f}}}$")
    ax.set_xlabel(r"$\epsilon$ (rms of residue)")
    ax.set_ylabel(r"$f_d$")
    ax.invert_xaxis()
    return ax
