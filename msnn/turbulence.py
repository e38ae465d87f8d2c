"""2D decaying turbulence: the data of the SI-MSNN paper's Sec. 4.2, and its spectrum.

The vorticity equation on the periodic square [0, 2 pi)^2 (eq. 11-12 of Ng, Wang & Lai 2024),

    omega_t + psi_y omega_x - psi_x omega_y = Re^-1 lap omega,     lap psi = -omega,

is solved pseudo-spectrally:

- Fourier in both directions (``torch.fft.rfft2``), so the same code runs on a GPU;
  derivatives and the Poisson inversion ``psi^ = omega^ / |k|^2`` are exact per mode
  (the mean mode of psi is set to zero);
- the Jacobian is formed in physical space and dealiased with the 2/3 rule: modes with
  ``|k_x|`` or ``|k_y|`` above ``N/3`` are zeroed in the product and in the initial
  field, so the state stays in the truncated space (where the discrete nonlinear term
  conserves energy exactly, and the viscous term only removes it);
- time stepping is the three-stage strong-stability-preserving Runge-Kutta scheme of
  Shu & Osher (SSP-RK3, third order), with viscosity treated explicitly;
- the step follows the CFL condition ``dt = C / max(|u|/dx + |v|/dy)`` (``C = 0.5``), capped by
  the explicit viscous limit and shortened so that the run ends exactly at ``t_end``.

Initial condition (McWilliams 1984, in the form of the pyqg example that reproduces
that paper): random phases with a broad-banded stream-function spectrum

    ``|psi^(k)|^2 ~ k^-1 [1 + (k/6)^4]^-1``, with ``k = |k|`` (integer wavenumbers on [0, 2 pi)),

complex Gaussian amplitudes, zero mean, scaled so that the kinetic energy
``0.5 <u^2 + v^2>`` (a spatial mean) is 0.5. The energy spectrum then peaks near k = 6.

Chapter 10 of the book fits the stream function at t = 1.25 (Re = 2000, N = 512).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
import torch

__all__ = [
    "TurbulenceSnapshot",
    "mcwilliams_vorticity",
    "solve_vorticity",
    "stream_function",
    "kinetic_energy",
    "power_spectrum",
    "decaying_turbulence",
    "fourier_truncate",
    "spectral_match",
    "spectral_centroid",
]


def _wavenumbers(n: int, dtype, device):
    kx = torch.fft.fftfreq(n, 1.0 / n, dtype=dtype, device=device)[:, None]  # axis 0 = x
    ky = torch.fft.rfftfreq(n, 1.0 / n, dtype=dtype, device=device)[None, :]  # axis 1 = y
    k2 = kx ** 2 + ky ** 2
    inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
    keep = (kx.abs() <= n / 3.0) & (ky.abs() <= n / 3.0)  # 2/3 rule
    return kx, ky, k2, inv_k2, keep


def _check_field(w, name="omega") -> torch.Tensor:
    if isinstance(w, np.ndarray):
        w = torch.as_tensor(w)
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"{name} must be a numpy array or a torch tensor")
    if w.dim() != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"{name} must be a square N x N grid, got shape {tuple(w.shape)}")
    if w.shape[0] < 4 or w.shape[0] % 2:
        raise ValueError(f"the grid size N must be even and >= 4, got {w.shape[0]}")
    if not w.is_floating_point():
        w = w.to(torch.float64)
    if not torch.all(torch.isfinite(w)):
        raise ValueError(f"{name} contains NaN or inf")
    return w


def stream_function(omega: ArrayLike) -> torch.Tensor:
    """psi from lap psi = -omega on [0, 2 pi)^2 (exact per Fourier mode; zero mean)."""
    w = _check_field(omega)
    n = w.shape[0]
    _, _, _, inv_k2, _ = _wavenumbers(n, w.dtype, w.device)
    return torch.fft.irfft2(torch.fft.rfft2(w) * inv_k2, s=(n, n))


def kinetic_energy(omega: ArrayLike) -> float:
    """Kinetic energy 0.5 <u^2 + v^2> (spatial mean) of the flow with vorticity omega."""
    w = _check_field(omega)
    n = w.shape[0]
    kx, ky, _, inv_k2, _ = _wavenumbers(n, w.dtype, w.device)
    ph = torch.fft.rfft2(w) * inv_k2
    u = torch.fft.irfft2(1j * ky * ph, s=(n, n))   # u = psi_y
    v = torch.fft.irfft2(-1j * kx * ph, s=(n, n))  # v = -psi_x
    return float(0.5 * torch.mean(u ** 2 + v ** 2))


def mcwilliams_vorticity(n: int, *, seed: int = 0, energy: float = 0.5, dtype: torch.dtype = torch.float64,
                         device: str | torch.device = "cpu") -> torch.Tensor:
    """Random initial vorticity with the McWilliams (1984) spectrum ``|psi^|^2 ~ k^-1 [1 + (k/6)^4]^-1``.

    Complex Gaussian amplitudes (drawn on the CPU from ``numpy.random.default_rng(seed)``,
    so the field is the same on every device), zero mean, kinetic energy ``energy``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4 or n % 2:
        raise ValueError(f"n must be an even integer >= 4, got {n!r}")
    if not energy > 0:
        raise ValueError(f"energy must be positive, got {energy}")
    rng = np.random.default_rng(seed)
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None]
    ky = np.fft.rfftfreq(n, 1.0 / n)[None, :]
    k = np.sqrt(kx ** 2 + ky ** 2)
    with np.errstate(divide="ignore"):
        ck = np.where(k > 0, 1.0 / np.sqrt(k * (1 + (k / 6.0) ** 4)), 0.0)
    psi_h = (rng.standard_normal(ck.shape) + 1j * rng.standard_normal(ck.shape)) * ck
    psi = np.fft.irfft2(psi_h, s=(n, n))
    psi -= psi.mean()
    w = np.fft.irfft2(np.fft.rfft2(psi) * k ** 2, s=(n, n))  # omega = -lap psi
    w *= math.sqrt(energy / kinetic_energy(torch.as_tensor(w)))
    return torch.as_tensor(w, dtype=dtype, device=device)


def _rhs(w_h, kx, ky, inv_k2, keep, k2, nu, n):
    """d omega^/dt = -J(psi, omega)^ (dealiased) - nu k^2 omega^."""
    psi_h = w_h * inv_k2
    s = (n, n)
    psi_x = torch.fft.irfft2(1j * kx * psi_h, s=s)
    psi_y = torch.fft.irfft2(1j * ky * psi_h, s=s)
    w_x = torch.fft.irfft2(1j * kx * w_h, s=s)
    w_y = torch.fft.irfft2(1j * ky * w_h, s=s)
    adv_h = torch.fft.rfft2(psi_y * w_x - psi_x * w_y) * keep
    return -adv_h - nu * k2 * w_h


def solve_vorticity(omega0: ArrayLike, *, re: float, t_end: float, cfl: float = 0.5, max_steps: int = 1_000_000,
                    energy_every: int = 0) -> dict:
    """Integrate the 2D vorticity equation from omega0 to t_end with SSP-RK3 (see the module doc).

    Args:
        omega0: initial vorticity, an N x N grid on [0, 2 pi)^2 (numpy or torch; the
            computation runs on its device and in its dtype).
        re: Reynolds number (nu = 1/re).
        t_end: final time.
        cfl: Courant number C in ``dt = C / max(|u|/dx + |v|/dy)``.
        max_steps: safety bound on the number of steps.
        energy_every: record the kinetic energy every this many steps (0: never).

    Returns:
        dict with ``omega`` and ``psi`` (torch, N x N), ``t``, ``steps``, ``dt_min``,
        ``dt_max`` and (if asked) ``energy`` as a list of (t, E).
    """
    w = _check_field(omega0, "omega0")
    if not re > 0 or not math.isfinite(re):
        raise ValueError(f"re must be positive and finite, got {re}")
    if not t_end >= 0 or not math.isfinite(t_end):
        raise ValueError(f"t_end must be >= 0 and finite, got {t_end}")
    if not 0 < cfl <= 1.5:
        raise ValueError(f"cfl must be in (0, 1.5], got {cfl}")
    n = w.shape[0]
    kx, ky, k2, inv_k2, keep = _wavenumbers(n, w.dtype, w.device)
    nu = 1.0 / re
    dx = 2 * math.pi / n
    dt_visc = 2.5 / (nu * float(k2.max()))  # SSP-RK3 reaches -2.51 on the real axis
    w_h = torch.fft.rfft2(w) * keep  # the state lives in the dealiased (2/3) space
    t, steps, dts, energy = 0.0, 0, [], []
    if energy_every:
        energy.append((0.0, kinetic_energy(torch.fft.irfft2(w_h, s=(n, n)))))
    while t < t_end - 1e-14 * max(1.0, t_end):
        if steps >= max_steps:
            raise RuntimeError(f"solve_vorticity: {max_steps} steps did not reach t = {t_end} (t = {t:.4g})")
        psi_h = w_h * inv_k2
        u = torch.fft.irfft2(1j * ky * psi_h, s=(n, n))
        v = torch.fft.irfft2(-1j * kx * psi_h, s=(n, n))
        speed = float((u.abs() + v.abs()).max()) / dx
        dt = min(cfl / speed if speed > 0 else math.inf, dt_visc, t_end - t)
        w1 = w_h + dt * _rhs(w_h, kx, ky, inv_k2, keep, k2, nu, n)
        w2 = 0.75 * w_h + 0.25 * (w1 + dt * _rhs(w1, kx, ky, inv_k2, keep, k2, nu, n))
        w_h = w_h / 3.0 + 2.0 / 3.0 * (w2 + dt * _rhs(w2, kx, ky, inv_k2, keep, k2, nu, n))
        t += dt
        steps += 1
        dts.append(dt)
        if energy_every and steps % energy_every == 0:
            energy.append((t, kinetic_energy(torch.fft.irfft2(w_h, s=(n, n)))))
    omega = torch.fft.irfft2(w_h, s=(n, n))
    out = {"omega": omega, "psi": torch.fft.irfft2(w_h * inv_k2, s=(n, n)), "t": t, "steps": steps,
           "dt_min": min(dts) if dts else 0.0, "dt_max": max(dts) if dts else 0.0}
    if energy_every:
        out["energy"] = energy
    return out


def power_spectrum(field: ArrayLike, *, length: float = 2 * math.pi, n_bins: int = 200, k_max: float | None = None):
    """Angle-averaged power spectrum ``E(k) = sum_{|k| in bin} |f~(k)|^2`` (eq. 13 of the SI paper).

    ``f~ = FFT(f) / N^2`` (so that sum E = mean f^2, Parseval); the bins split
    ``[0, k_max]`` into ``n_bins`` equal bands (default ``k_max`` = the largest ``|k|`` on
    the grid, so each bin holds all modes within half a band of its centre).

    Args:
        field: an N_x x N_y grid (numpy or torch) on a periodic square of side ``length``.
        length: side of the domain (2 pi: integer wavenumbers).
        n_bins: number of wavenumber bins (200 in the SI paper).
        k_max: upper edge of the last bin.

    Returns:
        (k, E): bin centres and the summed power per bin, numpy arrays of length n_bins.
    """
    if isinstance(field, torch.Tensor):
        field = field.detach().cpu().numpy()
    f = np.asarray(field, dtype=np.float64)
    if f.ndim != 2 or min(f.shape) < 2:
        raise ValueError(f"field must be a 2D grid, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("field contains NaN or inf")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if not length > 0:
        raise ValueError(f"length must be positive, got {length}")
    nx, ny = f.shape
    F = np.fft.fft2(f) / (nx * ny)
    kx = 2 * np.pi * np.fft.fftfreq(nx, length / nx)[:, None]
    ky = 2 * np.pi * np.fft.fftfreq(ny, length / ny)[None, :]
    kk = np.sqrt(kx ** 2 + ky ** 2).ravel()
    k_max = float(kk.max()) if k_max is None else float(k_max)
    if not k_max > 0:
        raise ValueError(f"k_max must be positive, got {k_max}")
    edges = np.linspace(0.0, k_max, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, kk, side="right") - 1, 0, n_bins - 1)
    inside = kk <= k_max
    E = np.bincount(idx[inside], weights=(np.abs(F) ** 2).ravel()[inside], minlength=n_bins)
    return 0.5 * (edges[1:] + edges[:-1]), E


@dataclass(frozen=True)
class TurbulenceSnapshot:
    """A cached snapshot of 2D decaying turbulence: psi (and omega) on [0, 2 pi)^2 at time t."""

    psi: np.ndarray
    omega: np.ndarray
    n: int
    re: float
    t: float
    seed: int
    cfl: float
    steps: int
    seconds: float
    device: str

    def metadata(self) -> dict:
        d = asdict(self)
        d.pop("psi")
        d.pop("omega")
        return d


def decaying_turbulence(n: int = 512, *, re: float = 2000.0, t_end: float = 1.25, seed: int = 0,
                        cfl: float = 0.5, energy: float = 0.5, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float64,
                        cache_dir: str | os.PathLike | None = None) -> TurbulenceSnapshot:
    """The SI paper's data: a snapshot of 2D decaying turbulence (McWilliams initial field).

    Runs :func:`solve_vorticity` from :func:`mcwilliams_vorticity` and returns the
    stream function at ``t_end``. With ``cache_dir`` the fields are stored as
    ``.npy`` files with a JSON of the settings next to them, and loaded from there
    when the same settings are asked again.
    """
    dev = torch.device(device)
    tag = f"turb2d_n{n}_re{re:g}_t{t_end:g}_seed{seed}_cfl{cfl:g}_E{energy:g}_{str(dtype).split('.')[-1]}"
    if cache_dir is not None:
        base = os.path.join(os.fspath(cache_dir), tag)
        if os.path.exists(base + ".json") and os.path.exists(base + ".psi.npy"):
            with open(base + ".json") as fh:
                meta = json.load(fh)
            return TurbulenceSnapshot(psi=np.load(base + ".psi.npy"), omega=np.load(base + ".omega.npy"), **meta)
    t0 = time.perf_counter()
    w0 = mcwilliams_vorticity(n, seed=seed, energy=energy, dtype=dtype, device=dev)
    out = solve_vorticity(w0, re=re, t_end=t_end, cfl=cfl)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    snap = TurbulenceSnapshot(
        psi=out["psi"].cpu().numpy(), omega=out["omega"].cpu().numpy(), n=int(n), re=float(re), t=float(out["t"]),
        seed=int(seed), cfl=float(cfl), steps=int(out["steps"]), seconds=round(time.perf_counter() - t0, 2),
        device=dev.type)
    if cache_dir is not None:
        os.makedirs(os.fspath(cache_dir), exist_ok=True)
        np.save(base + ".psi.npy", snap.psi)
        np.save(base + ".omega.npy", snap.omega)
        with open(base + ".json", "w") as fh:
            json.dump(snap.metadata(), fh, indent=1)
    return snap


def fourier_truncate(field: ArrayLike, n: int) -> np.ndarray:
    """The field resampled on an n x n grid by keeping its Fourier modes ``|m_x|, |m_y| < n/2``.

    For a field whose spectrum lies inside that band this is exact (spectral
    interpolation); otherwise it is the band-limited part of the field.
    """
    if isinstance(field, torch.Tensor):
        field = field.detach().cpu().numpy()
    f = np.asarray(field, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != f.shape[1]:
        raise ValueError(f"field must be a square grid, got shape {f.shape}")
    N = f.shape[0]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2 or n > N or n % 2:
        raise ValueError(f"n must be an even integer in [2, {N}], got {n!r}")
    F = np.fft.fft2(f) / N ** 2
    m = np.fft.fftfreq(N, 1.0 / N)
    keep = np.abs(m) < n // 2
    G = F[np.ix_(keep, keep)]
    mk = m[keep]
    out = np.zeros((n, n), dtype=complex)
    idx = (mk % n).astype(int)
    out[np.ix_(idx, idx)] = G
    return np.real(np.fft.ifft2(out)) * n ** 2


def spectral_match(target: ArrayLike, model: ArrayLike, *, rel_tol: float = 0.01, length: float = 2 * math.pi,
                   n_bins: int = 200) -> float:
    """Largest k such that E(k) of ``model`` is within ``rel_tol`` of the target's in every
    bin up to k (eq. 13 spectra, :func:`power_spectrum`); 0 if the first such bin misses.

    The mean (k = 0) is left out, and so are bins where the target holds no power above
    double-precision rounding (below 1e-28 of its total: e.g. the modes a dealiased
    simulation leaves empty).
    """
    t = np.asarray(target, dtype=np.float64)
    m = np.asarray(model, dtype=np.float64)
    if t.shape != m.shape:
        raise ValueError(f"target and model must have the same shape, got {t.shape} and {m.shape}")
    k, Et = power_spectrum(t - t.mean(), length=length, n_bins=n_bins)
    _, Em = power_spectrum(m - m.mean(), length=length, n_bins=n_bins)
    floor = 1e-28 * Et.sum()
    k_ok = 0.0
    for kk, a, b in zip(k, Et, Em):
        if a <= floor:
            continue
        if abs(b - a) > rel_tol * a:
            break
        k_ok = float(kk)
    return k_ok


def spectral_centroid(field: ArrayLike, *, length: float = 2 * math.pi) -> float:
    """Power-weighted mean wavenumber sum k E(k) / sum E(k) of a field (where its energy sits)."""
    k, E = power_spectrum(field, length=length, n_bins=200)
    if E.sum() == 0:
        raise ValueError("the field is zero: no spectral centroid")
    return float(np.sum(k * E) / np.sum(E))
