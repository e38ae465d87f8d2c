"""Dominant frequency against exact answers (PAPER.md G4)."""
import numpy as np
import pytest

from msnn import dominant_frequency, dominant_frequency_2d
from msnn.spectrum import dominant_frequency_scattered
from msnn.problems import eq_2_6


@pytest.mark.parametrize("f", [1.0, 3.0, 7.5, 40.0])
def test_pure_sine_on_bin(f):
    # [-1, 1) periodic grid of 400 points: bin spacing 0.5, so f is a bin exactly
    x = -1 + 2 * np.arange(400) / 400
    assert dominant_frequency(np.sin(2 * np.pi * f * x + 0.3), x=x) == pytest.approx(f, abs=1e-12)


def test_sum_of_sines_picks_largest():
    x = -1 + 2 * np.arange(512) / 512
    v = 0.3 * np.sin(2 * np.pi * 2 * x) + 1.0 * np.cos(2 * np.pi * 11 * x) + 0.5 * np.sin(2 * np.pi * 30 * x)
    assert dominant_frequency(v, x[1] - x[0]) == pytest.approx(11.0, abs=1e-12)


def test_zero_padding_refines_off_bin_peak():
    x = -1 + 2 * np.arange(200) / 200  # bin spacing 0.5
    v = np.sin(2 * np.pi * 4.25 * x)
    coarse = dominant_frequency(v, x[1] - x[0])
    fine = dominant_frequency(v, x[1] - x[0], pad=16)
    assert abs(fine - 4.25) < 0.05 < abs(coarse - 4.25) + 0.2
    assert abs(fine - 4.25) <= abs(coarse - 4.25)


@pytest.mark.parametrize("m,n,expected,tol", [(30, 300, 5.48, 0.02), (30, 8000, 5.50, 0.01), (3, 300, 0.50, 0.01), (15, 300, 3.0, 0.02)])
def test_eq_2_6_frequencies(m, n, expected, tol):
    x = np.linspace(-1, 1, n)
    assert dominant_frequency(eq_2_6(x, m), x=x) == pytest.approx(expected, abs=tol)


def test_2d_per_axis():
    n = 128
    g = -1 + 2 * np.arange(n) / n
    X, Y = np.meshgrid(g, g, indexing="ij")
    s = dominant_frequency_2d(np.sin(2 * np.pi * 5 * X) * np.cos(2 * np.pi * 3 * Y), g[1] - g[0])
    assert (s.fx, s.fy) == pytest.approx((5.0, 3.0), abs=1e-12)
    assert s.norm == pytest.approx(np.hypot(5, 3))


def test_scattered_1d_close_to_uniform():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-1, 1, 2000))
    f = dominant_frequency_scattered(x, np.sin(2 * np.pi * 6 * x))
    assert f == pytest.approx(6.0, abs=0.3)


def test_scattered_2d():
    rng = np.random.default_rng(1)
    p = rng.uniform(-1, 1, (6000, 2))
    s = dominant_frequency_scattered(p, np.sin(2 * np.pi * 4 * p[:, 0]))
    assert s.fx == pytest.approx(4.0, abs=0.6) and s.fy < 1.0


@pytest.mark.parametrize("bad,msg", [([1.0, np.nan, 2.0, 3.0], "NaN"), ([1.0, 2.0], "at least 4")])
def test_bad_input(bad, msg):
    with pytest.raises(ValueError, match=msg):
        dominant_frequency(bad, 0.1)


def test_nonuniform_x_rejected():
    x = np.array([0.0, 0.1, 0.3, 0.35, 0.9])
    with pytest.raises(ValueError, match="not a uniform grid"):
        dominant_frequency(np.sin(x), x=x)
