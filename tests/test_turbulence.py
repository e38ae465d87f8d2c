"""The pseudo-spectral 2D vorticity solver and the angle-averaged spectrum E(k) (SI paper Sec. 4.2)."""
import math

import numpy as np
import pytest
import torch

from msnn.turbulence import (decaying_turbulence, fourier_truncate, kinetic_energy, mcwilliams_vorticity,
                             power_spectrum, solve_vorticity, spectral_centroid, spectral_match, stream_function)


def grid(n):
    x = 2 * math.pi * np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")


def test_taylor_green_decays_at_the_exact_viscous_rate():
    X, Y = grid(32)
    w0 = torch.tensor(2 * np.sin(X) * np.sin(Y))  # psi = sin x sin y: J(psi, omega) = 0
    re, t = 10.0, 1.0
    out = solve_vorticity(w0, re=re, t_end=t)
    assert out["t"] == pytest.approx(t, abs=1e-14)
    np.testing.assert_allclose(out["omega"].numpy(), w0.numpy() * math.exp(-2 * t / re), rtol=0, atol=1e-7)
    np.testing.assert_allclose(out["psi"].numpy(), np.sin(X) * np.sin(Y) * math.exp(-2 * t / re), atol=1e-7)


def test_energy_never_grows_without_forcing():
    w0 = mcwilliams_vorticity(32, seed=1)
    assert kinetic_energy(w0) == pytest.approx(0.5, rel=1e-12)
    out = solve_vorticity(w0, re=2000.0, t_end=0.5, energy_every=1)
    e = np.array([v for _, v in out["energy"]])
    assert len(e) == out["steps"] + 1
    assert np.all(np.diff(e) <= 1e-15)


@pytest.mark.parametrize("mx, my", [(1, 0), (3, 2), (0, 5), (7, -4)])
def test_poisson_inversion_is_exact_for_single_modes(mx, my):
    X, Y = grid(16)
    w = np.cos(mx * X + my * Y + 0.3)
    psi = stream_function(torch.tensor(w)).numpy()
    np.testing.assert_allclose(psi, w / (mx ** 2 + my ** 2), rtol=0, atol=1e-14)


def test_power_spectrum_puts_a_single_mode_in_its_bin():
    X, Y = grid(64)
    f = np.cos(3 * X + 4 * Y)  # |k| = 5
    k, E = power_spectrum(f, n_bins=200)
    assert k.shape == E.shape == (200,)
    j = int(np.argmax(E))
    width = k[1] - k[0]
    assert abs(k[j] - 5.0) <= width / 2 + 1e-12
    assert E.sum() == pytest.approx(np.mean(f ** 2), rel=1e-12)  # Parseval
    assert E[j] == pytest.approx(0.5, rel=1e-12)


def test_snapshot_cache_round_trip(tmp_path):
    a = decaying_turbulence(16, re=100.0, t_end=0.1, seed=2, cache_dir=tmp_path)
    b = decaying_turbulence(16, re=100.0, t_end=0.1, seed=2, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.psi, b.psi)
    assert b.metadata()["steps"] == a.steps and list(tmp_path.glob("*.json"))
    assert a.psi.shape == (16, 16) and abs(a.psi.mean()) < 1e-15


def test_fourier_truncate_and_spectral_match():
    X, Y = grid(32)
    f = np.cos(3 * X - 2 * Y) + 0.1 * np.sin(5 * X + Y)
    Xs, Ys = grid(16)
    np.testing.assert_allclose(fourier_truncate(f, 16), np.cos(3 * Xs - 2 * Ys) + 0.1 * np.sin(5 * Xs + Ys),
                               atol=1e-14)
    assert spectral_match(f, f) >= 5.1  # both modes, |k| = sqrt(13) and sqrt(26), match
    assert spectral_match(f, f + 1.0) >= 5.1  # the mean is left out
    assert spectral_match(f, np.cos(3 * X - 2 * Y)) < 5.0  # the |k| = sqrt(26) mode is missing
    assert spectral_centroid(np.cos(3 * X + 4 * Y)) == pytest.approx(5.0, abs=0.2)


@pytest.mark.parametrize("call, match", [
    (lambda: solve_vorticity(np.zeros((8, 6)), re=1.0, t_end=1.0), "square"),
    (lambda: solve_vorticity(np.zeros((7, 7)), re=1.0, t_end=1.0), "even"),
    (lambda: solve_vorticity(np.full((8, 8), np.nan), re=1.0, t_end=1.0), "NaN"),
    (lambda: solve_vorticity(np.zeros((8, 8)), re=-1.0, t_end=1.0), "re must"),
    (lambda: solve_vorticity(np.zeros((8, 8)), re=1.0, t_end=1.0, cfl=3.0), "cfl"),
    (lambda: mcwilliams_vorticity(9), "even integer"),
    (lambda: power_spectrum(np.zeros(8)), "2D grid"),
    (lambda: power_spectrum(np.zeros((8, 8)), n_bins=0), "n_bins"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
