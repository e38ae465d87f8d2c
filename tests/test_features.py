"""The "features" schedule: drawn sine units, the output layer solved, the scale chosen off the training points.

Exact answers: a smooth 2D function sampled on a grid (its values between the grid
points), a Poisson problem with the manufactured solution sin(pi x) sin(pi y) (the
exact solution at random points of the square), and the least-squares solve against
numpy's on the same matrix.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from msnn import MultistagePINN, MultistageRegressor, PINNProblem, laplacian
from msnn.networks import StageNetwork
from msnn.phases import FEATURE_LADDER, RowGroup, draw_features, least_squares, resolution_frequency, run_phases
from msnn.problems import boundary_points_2d


def _grid(n):
    g = np.linspace(-1, 1, n)
    x = np.stack([a.ravel() for a in np.meshgrid(g, g, indexing="ij")], 1)
    c = (g[:-1] + g[1:]) / 2
    xc = np.stack([a.ravel() for a in np.meshgrid(c, c, indexing="ij")], 1)
    return x, xc


def _f(x):
    return np.exp(-x[:, 0] ** 2 - x[:, 1]) * np.sin(2 * x[:, 0] + x[:, 1])


def test_2d_regression_defaults_to_features_and_is_exact_between_the_grid_points():
    x, xc = _grid(24)
    reg = MultistageRegressor(seed=0, progress=False).fit(x, _f(x))
    assert reg._schedule == "features"
    assert all(r.widths == (min(3 * r.n_train // 4, 1200),) for r in reg.stages_)
    assert all(r.feature_scale is not None and len(r.feature_scale) == 2 for r in reg.stages_)
    err = float(np.sqrt(np.mean((reg.predict(xc) - _f(xc)) ** 2)))
    # a 24 x 24 grid of a smooth function: between its points to 1e-11 (measured 2.9e-12)
    assert err <= 1e-11, err


def test_1d_default_stays_the_precision_schedule_and_features_is_there_on_request():
    x = np.linspace(0, 5, 200)
    y = np.exp(-x / 4) * np.sin(3 * x)
    xm = (x[1:] + x[:-1]) / 2
    assert MultistageRegressor(n_stages=1, precision_steps=5, progress=False).fit(x, y)._schedule == "precision"
    reg = MultistageRegressor(schedule="features", seed=0, progress=False).fit(x, y)
    err = float(np.max(np.abs(reg.predict(xm) - np.exp(-xm / 4) * np.sin(3 * xm))))
    assert err <= 1e-12, err  # 200 samples over 5 units resolve this function to round-off


def test_the_phase_keeps_the_lowest_scale_that_ties_with_the_best_on_validation():
    x, _ = _grid(20)
    xt = torch.as_tensor(x)
    t = torch.as_tensor(_f(x))
    tr, va = np.arange(0, len(x), 2), np.arange(1, len(x), 2)
    net = StageNetwork(2, (100,), first_activation="sin", seed=3)
    grp = [RowGroup(xt[tr], lambda u, z, t=t[tr]: u(z) - t, 1.0, "data")]
    val = [RowGroup(xt[va], lambda u, z, t=t[va]: u(z) - t, 1.0, "validation")]
    rep = run_phases(net, grp, [("features",)], progress=False, validation=val)[0]
    scores = [d["score"] for d in rep.tried]
    assert [d["fraction"] for d in rep.tried] == list(FEATURE_LADDER)
    chosen = next(i for i, s in enumerate(scores) if s <= 4 * min(scores))
    assert rep.stopped == f"best of 4 scales: {FEATURE_LADDER[chosen]:g} pi/h"
    # the first layer's frequencies lie in the chosen box
    k = (net.weights[0].detach()[0] * net.kappa.detach().reshape(2, 1)).abs().max(1).values
    box = FEATURE_LADDER[chosen] * resolution_frequency(xt[tr])
    assert torch.all(k <= box + 1e-12) and torch.all(k >= 0.9 * box)


def test_resolution_frequency_is_pi_over_the_spacing():
    x, _ = _grid(11)  # spacing 0.2 on both axes over [-1, 1]: pi * 11 / 2
    assert torch.allclose(resolution_frequency(torch.as_tensor(x)), torch.full((2,), math.pi * 11 / 2, dtype=torch.float64))


def test_equilibrated_least_squares_matches_numpy_on_badly_scaled_columns():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((60, 8)) * np.logspace(0, 6, 8)
    w_true = rng.standard_normal(8)
    b = A @ w_true
    w, rank, _, _ = least_squares(torch.as_tensor(A), torch.as_tensor(b), equilibrate=True)
    assert rank == 8
    np.testing.assert_allclose(w.numpy(), np.linalg.lstsq(A, b, rcond=None)[0], rtol=1e-9)
    np.testing.assert_allclose(w.numpy(), w_true, rtol=1e-9)


def test_the_phase_refuses_a_stage_it_cannot_draw():
    x, _ = _grid(8)
    xt = torch.as_tensor(x)
    net = StageNetwork(2, (10, 10), first_activation="sin")
    grp = [RowGroup(xt, lambda u, z: u(z) - 1.0, 1.0, "data")]
    with pytest.raises(ValueError, match="one hidden layer and a sine first activation"):
        run_phases(net, grp, [("features",)], progress=False)
    with pytest.raises(ValueError, match="takes no step count"):
        run_phases(StageNetwork(2, (10,), first_activation="sin"), grp, [("features", 10)], progress=False)


def test_draw_features_fills_the_box_and_the_phases():
    net = StageNetwork(3, (2000,), first_activation="sin", kappa_hat=0.7)
    draw_features(net, torch.tensor([1.0, 2.0, 4.0]), torch.Generator().manual_seed(0))
    k = net.weights[0].detach()[0] * net.kappa.detach().reshape(3, 1)
    np.testing.assert_allclose(k.abs().max(1).values.numpy(), [1.0, 2.0, 4.0], rtol=1e-2)
    b = net.biases[0].detach().reshape(-1)
    assert float(b.min()) >= -math.pi and float(b.max()) <= math.pi and float(b.std()) > 1.5


def _poisson(edge=21):
    xb = boundary_points_2d(edge, lo=0.0, hi=1.0)

    def exact(x):
        return np.sin(np.pi * x[:, 0]) * np.sin(np.pi * x[:, 1])

    return PINNProblem(residual=lambda x, u: -laplacian(u, x) - 2 * np.pi ** 2 * torch.sin(np.pi * x[:, 0])
                       * torch.sin(np.pi * x[:, 1]), domain=[(0.0, 1.0), (0.0, 1.0)], data_x=xb,
                       data_u=exact(xb), exact=exact, name="poisson-test"), exact


def test_a_linear_2d_pinn_defaults_to_features_and_reaches_the_exact_solution():
    problem, exact = _poisson()
    sol = MultistagePINN(problem, orders=[(2, 0), (0, 2)], n_features=300, n_grid=33, seed=0,
                         progress=False, device="cpu")
    assert sol._schedule == "features"
    sol.solve()
    assert sol.records_[0].widths == (300,) and sol.records_[0].feature_scale is not None
    xt = np.random.default_rng(1).uniform(0, 1, (2000, 2))
    err = float(np.sqrt(np.mean((sol.predict(xt) - exact(xt)) ** 2)))
    assert err <= 1e-10, err  # measured ~1e-13 with 300 units


def test_features_on_a_nonlinear_equation_is_refused_before_training():
    problem, _ = _poisson()
    bad = PINNProblem(residual=lambda x, u: -laplacian(u, x) + u ** 3, domain=problem.domain, data_x=problem.data_x,
                      data_u=problem.data_u, name="nonlinear")
    assert MultistagePINN(bad, orders=[(2, 0), (0, 2)], progress=False)._schedule == "precision"
    with pytest.raises(ValueError, match="linear in u"):
        MultistagePINN(bad, orders=[(2, 0), (0, 2)], schedule="features", progress=False)


def test_n_features_without_a_features_schedule_is_refused():
    x = np.linspace(0, 1, 50)
    with pytest.raises(ValueError, match="n_features is the width of a 'features' stage"):
        MultistageRegressor(n_features=10, progress=False).fit(x, np.sin(x))
    problem, _ = _poisson()
    with pytest.raises(ValueError, match="n_features is the width of a 'features' stage"):
        MultistagePINN(problem, orders=[(2, 0), (0, 2)], schedule="precision", n_features=10, progress=False)


def test_a_features_stage_records_the_scales_it_tried():
    x, _ = _grid(12)
    reg = MultistageRegressor(n_stages=1, seed=0, progress=False).fit(x, _f(x))
    tried = reg.stages_[0].phases[0]["tried"]
    assert [d["fraction"] for d in tried] == list(FEATURE_LADDER)
    assert all(d["score"] >= 0 and d["rank"] >= 1 for d in tried)
