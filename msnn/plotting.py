"""Figure helpers, so that every chapter looks the same.

Errors and losses on log axes, lowercase axis labels, the paper's panel layout
where it has one. Each helper draws into given axes (or makes its own figure)
and returns the figure or axes.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["style", "stage_colors", "plot_loss_histories", "plot_rms_histories", "plot_spectrum",
           "plot_stage_fits", "plot_power_law", "iteration_axis", "plot_seed_errorbars",
           "plot_member_losses", "plot_kappa_scan"]


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


def iteration_axis(stages: ArrayLike) -> list[np.ndarray]:
    """Cumulative iteration axis (Adam steps + L-BFGS evaluations) for each stage's history."""
    out, start = [], 0
    for s in stages:
        n = len(s.loss_history)
        out.append(start + np.arange(1, n + 1))
        start += n
    return out


def plot_loss_histories(ax: Any, stages: ArrayLike, scale: float = 1.0, label: str = "stage",
                        colors: Sequence | None = None):
    """Loss of each stage over the cumulative iterations, in data units (loss * (eps * scale)^2)."""
    xs = iteration_axis(stages)
    colors = colors or stage_colors(len(stages))
    for k, (s, x) in enumerate(zip(stages, xs)):
        ax.semilogy(x, s.loss_history * (s.eps * scale) ** 2, color=colors[k], lw=1, label=f"{label} {k + 1}")
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    return ax


def plot_rms_histories(ax: Any, stages: ArrayLike, scale: float = 1.0, colors: Sequence | None = None):
    """RMS error of the combined model over the cumulative iterations."""
    xs = iteration_axis(stages)
    colors = colors or stage_colors(len(stages))
    for k, (s, x) in enumerate(zip(stages, xs)):
        ax.semilogy(x, s.rms_history * scale, color=colors[k], lw=1, label=f"stage {k + 1}")
    ax.set_xlabel("iterations")
    ax.set_ylabel("rms error")
    return ax


def plot_spectrum(ax: Any, values: ArrayLike, dx: float, f_d: float | None = None, color: Any = "k",
                  label: str | None = None):
    """One-sided amplitude spectrum of uniform samples, with the dominant frequency marked."""
    from .spectrum import amplitude_spectrum

    f, a = amplitude_spectrum(values, dx)
    ax.loglog(f[1:], a[1:], color=color, lw=1, label=label)
    if f_d is not None:
        ax.axvline(f_d, color=color, ls=":", lw=1)
    ax.set_xlabel("frequency (cycles per unit)")
    ax.set_ylabel("|fft|")
    return ax


def plot_stage_fits(axes: Any, x: ArrayLike, residues: ArrayLike, contributions: ArrayLike, spectra_dx: float,
                    f_ds: ArrayLike):
    """Per stage: the residue e_n and the stage network eps_n u_n (left), the residue's spectrum (right)."""
    for k, (ax_l, ax_r) in enumerate(axes):
        ax_l.plot(x, residues[k], color="tab:blue", lw=1.5, label=f"$e_{k + 1}$")
        ax_l.plot(x, contributions[k], "--", color="tab:red", lw=1, label=rf"$\epsilon_{k + 1} u_{k + 1}$")
        ax_l.set_ylabel(f"stage {k + 2}")
        ax_l.legend(loc="upper right")
        plot_spectrum(ax_r, residues[k], spectra_dx, f_ds[k])
    axes[-1][0].set_xlabel("x")
    return axes


def plot_power_law(ax: Any, eps: ArrayLike, f_d: ArrayLike, alpha: float, f0: float, label: str = "stages",
                   color: Any = "k"):
    """Dominant frequency against magnitude of the residues, with the fitted f_d = f0 eps^(-alpha)."""
    eps = np.asarray(eps, dtype=float)
    ax.loglog(eps, f_d, "o", color=color, label=label)
    e = np.logspace(np.log10(eps.min()) - 0.5, np.log10(eps.max()) + 0.5, 50)
    ax.loglog(e, f0 * e ** (-alpha), "--", color=color, lw=1, label=rf"$f_d \propto \epsilon^{{-{alpha:.3f}}}$")
    ax.set_xlabel(r"$\epsilon$ (rms of residue)")
    ax.set_ylabel(r"$f_d$")
    ax.invert_xaxis()
    return ax


def plot_seed_errorbars(ax: Any, values: ArrayLike, rms: ArrayLike, xlabel: str, color: Any = "k",
                        label: str | None = None, logx: bool = False):
    """Mean +- std over seeds of an rms error against a swept setting (cf. Fig. 15(a-c)).

    ``rms`` has shape (len(values), n_seeds).
    """
    rms = np.asarray(rms, dtype=float)
    ax.errorbar(values, rms.mean(axis=1), yerr=rms.std(axis=1), fmt="o-", color=color, capsize=3,
                lw=1, label=label)
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rms error")
    return ax


def plot_member_losses(ax: Any, losses: ArrayLike, color: Any = "k", label: str | None = None, lw: float = 0.8,
                       alpha: float = 0.6):
    """Training loss of every ensemble member over its iterations (one label for all)."""
    for k, h in enumerate(losses):
        ax.semilogy(np.arange(1, len(h) + 1), h, color=color, lw=lw, alpha=alpha,
                    label=label if k == 0 else None)
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    return ax


def plot_kappa_scan(ax: Any, kappa_hat: ArrayLike, val_rms: ArrayLike, train_rms: ArrayLike | None = None,
                    f_d: float | None = None,
                    n_d: int | None = None):
    """Validation (and training) rms error against kappa_hat, with pi f_d and N_d/6 (cf. Fig. 4(c)).

    ``val_rms`` and ``train_rms`` have shape (len(kappa_hat), n_seeds).
    """
    kappa_hat = np.asarray(kappa_hat, dtype=float)
    v = np.asarray(val_rms, dtype=float)
    ax.errorbar(kappa_hat, v.mean(axis=1), yerr=v.std(axis=1), fmt="o-", color="k", capsize=3, lw=1,
                label="validation (dense grid)")
    if train_rms is not None:
        t = np.asarray(train_rms, dtype=float)
        ax.plot(kappa_hat, t.mean(axis=1), "s--", color="tab:gray", lw=1, ms=4, label="training points")
    if f_d is not None:
        ax.axvline(np.pi * f_d, color="tab:blue", ls=":", lw=1.2, label=r"$\pi f_d$")
    if n_d is not None:
        ax.axvline(n_d / 6, color="tab:red", ls=":", lw=1.2, label=r"$N_d/6$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\hat\kappa$")
    ax.set_ylabel("rms error")
    return ax
