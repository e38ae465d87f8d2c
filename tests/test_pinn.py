"""PINN core: derivatives, residuals against exact solutions, Algorithms 2-3, stages, errors."""
import math

import numpy as np
import pytest
import torch

from msnn.pinn import PINNProblem, RAR, StagedSolution, grad, gradient, laplacian, sample_collocation
from msnn.pinn_training import (algorithm2, algorithm3, convergence_ratio, estimate_next_stage, gamma_bound,
                                magnitude_estimate, residual_grid, train_pinn)
from msnn.problems import POISSON_AMPLITUDE, boundary_points_2d, ode_3_3, poisson_3_20, poisson_exact

TOL = {"float64": 1e-12, "float32": 1e-5}  # as in conftest.py


# ----------------------------------------------------------------- derivatives
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_grad_of_sine_first_and_second_order(dtype):
    x = torch.linspace(-1, 1, 50, dtype=dtype)[:, None].requires_grad_(True)
    u = torch.sin(3 * x[:, 0])
    tol = TOL[str(dtype).split(".")[1]]
    assert torch.allclose(grad(u, x, 1), 3 * torch.cos(3 * x[:, 0]), atol=10 * tol, rtol=0)
    assert torch.allclose(grad(u, x, 2), -9 * torch.sin(3 * x[:, 0]), atol=100 * tol, rtol=0)
    assert torch.allclose(grad(u, x, 3), -27 * torch.cos(3 * x[:, 0]), atol=1000 * tol, rtol=0)
    assert torch.equal(grad(u, x, 0), u)


def test_laplacian_2d_and_mixed_gradient():
    x = (torch.rand(40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    x.requires_grad_(True)
    u = torch.sin(2 * x[:, 0]) * torch.exp(x[:, 1]) + x[:, 0] ** 2 * x[:, 1]
    lap = -4 * torch.sin(2 * x[:, 0]) * torch.exp(x[:, 1]) + torch.sin(2 * x[:, 0]) * torch.exp(x[:, 1]) + 2 * x[:, 1]
    assert torch.allclose(laplacian(u, x), lap, atol=1e-12, rtol=0)
    g = gradient(u, x)
    assert g.shape == (40, 2)
    assert torch.allclose(g[:, 1], torch.sin(2 * x[:, 0]) * torch.exp(x[:, 1]) + x[:, 0] ** 2, atol=1e-12)
    # a derivative that vanishes identically comes back as zeros, not an error
    lin = 3 * x[:, 0]
    assert torch.count_nonzero(grad(lin, x, 2, 0)) == 0


def test_grad_gradcheck():
    x = torch.rand(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)

    def f(x):
        u = torch.sin(x[:, 0] * x[:, 1]) + torch.tanh(x[:, 1]) ** 2
        return grad(u, x, 2, 1) + grad(u, x, 1, 0)

    assert torch.autograd.gradcheck(f, (x,))


def test_grad_through_a_network_matches_finite_differences():
    m = StagedSolution(1)
    m.add_stage(1.0, widths=(8, 8), seed=3)
    x = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)[:, None].requires_grad_(True)
    d2 = grad(m(x), x, 2).detach()
    h = 1e-4
    with torch.no_grad():
        fd = (m(x + h) - 2 * m(x) + m(x - h)) / h ** 2
    assert torch.allclose(d2, fd, atol=1e-6)


# ----------------------------------------------------------------- problems
def test_poisson_exact_solution_has_zero_residual():
    P = poisson_3_20(20)

    def exact(x):
        return POISSON_AMPLITUDE * torch.sin(6 * math.pi * x[:, 0]) * torch.sin(6 * math.pi * x[:, 1])

    x = sample_collocation(P.domain, 500, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    r = P.residual(x, exact(x))
    assert float(r.detach().abs().max()) < 1e-10
    assert np.abs(poisson_exact(P.data_x)).max() < 1e-15  # the boundary data are the exact solution's


def test_ode_exact_solution_has_zero_residual():
    P = ode_3_3()
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None].requires_grad_(True)
    r = P.residual(x, torch.exp(x[:, 0]) - x[:, 0] - 1)
    assert float(r.abs().max()) < 1e-13


def test_short_pinn_training_approaches_the_ode_solution():
    P = ode_3_3()
    m = StagedSolution(1)
    m.add_stage(1.0, widths=(16, 16), seed=0)
    run = train_pinn(P, m, gamma=0.3, n_collocation=64, resample_every=50, adam_steps=300, lbfgs_steps=200,
                     lr=5e-3, progress=False)
    x = np.linspace(-1, 1, 201)[:, None]
    err = np.sqrt(np.mean((m.predict(x) - P.exact(x)) ** 2))
    assert err < 1e-3
    assert run.loss_e[-1] < 1e-3 * run.loss_e[0]
    assert len(run.loss_d) == run.history.adam_steps + run.history.lbfgs_evaluations


def test_losses_follow_eq_3_38_and_gpinn_term():
    P = ode_3_3()
    m = StagedSolution(1)
    m.add_stage(1.0, widths=(8,), seed=0)
    run = train_pinn(P, m, gamma=0.2, gamma_g=0.1, n_collocation=32, adam_steps=3, normalize=False, progress=False)
    assert np.all(run.loss_g > 0)
    total = 0.8 * run.loss_d + 0.2 * (run.loss_e + 0.1 * run.loss_g)
    np.testing.assert_allclose(run.loss, total)
    np.testing.assert_allclose(run.history.loss, total, rtol=1e-12)


# ----------------------------------------------------------------- sampling, RAR
@pytest.mark.parametrize("method", ["lhs", "uniform"])
def test_collocation_in_box(method):
    x = sample_collocation([(-1, 1), (0, 2)], 100, method=method, generator=torch.Generator().manual_seed(0))
    assert x.shape == (100, 2) and x.dtype == torch.float64
    assert bool((x[:, 0] >= -1).all() and (x[:, 0] <= 1).all() and (x[:, 1] >= 0).all() and (x[:, 1] <= 2).all())
    if method == "lhs":  # one point per stratum on every axis
        for k, lo in enumerate((-1.0, 0.0)):
            strata = torch.floor((x[:, k] - lo) / 2 * 100).long()
            assert sorted(strata.tolist()) == list(range(100))


def test_rar_adds_points_where_the_residual_is_large():
    P = ode_3_3()
    m = StagedSolution(1)
    m.add_stage(1.0, widths=(8,), seed=0)
    run = train_pinn(P, m, gamma=0.3, n_collocation=20, adam_steps=21, rar=RAR(every=10, candidates=200, add=5),
                     progress=False)
    assert run.rar_points.shape == (10, 1)
    assert run.collocation.shape[0] == 30


# ----------------------------------------------------------------- stages
def test_stage_ansatz_keeps_earlier_stages_frozen():
    P = ode_3_3()
    m = StagedSolution(1)
    m.add_stage(1.0, widths=(8, 8), seed=0)
    train_pinn(P, m, gamma=0.3, n_collocation=32, adam_steps=50, progress=False)
    before = [p.detach().clone() for p in m.stages[0].parameters()]
    m.add_stage(1e-2, widths=(8, 8), kappa_hat=5.0, seed=1)
    assert m.stages[1].first_activation == "sin"
    new_before = [p.detach().clone() for p in m.stages[1].parameters()]
    train_pinn(P, m, gamma=0.3, n_collocation=32, adam_steps=30, lbfgs_steps=10, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, m.stages[0].parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(new_before, m.stages[1].parameters()))
    x = np.linspace(-1, 1, 11)[:, None]
    np.testing.assert_allclose(m.predict(x), m.predict_stages(x).sum(0), atol=1e-14)


def test_estimate_next_stage_on_a_known_residue():
    # a model whose residue is r = 2 pi 3 * 0.01 * cos(2 pi 3 x) - ... : use u = u_g + e with e = 0.01 sin(6 pi x)
    P = ode_3_3()

    class Fake(torch.nn.Module):
        dim, dtype, device = 1, torch.float64, torch.device("cpu")

        def forward(self, x):
            x = x[:, 0]
            return torch.exp(x) - x - 1 - 0.01 * torch.sin(6 * math.pi * x)

    est = estimate_next_stage(P, Fake(), orders=(1,), n_grid=2001)
    assert est.f_d[0] == pytest.approx(3.0, abs=0.05)
    true_rms = 0.01 / math.sqrt(2)
    assert est.eps == pytest.approx(true_rms, rel=0.05)  # eq. (3.9): eps_r / (2 pi f_d)
    assert est.kappa_hat[0] == pytest.approx(2 * math.pi * est.f_d[0])


def test_magnitude_estimate_eq_3_19():
    assert magnitude_estimate(1.0, 1.5, (1,)) == pytest.approx(1 / (2 * math.pi * 1.5))
    assert magnitude_estimate(0.5, (3, 3), (2, 0)) == pytest.approx(0.5 / (6 * math.pi) ** 2)
    assert magnitude_estimate(0.5, (3, 3), [(2, 0), (0, 2)]) == pytest.approx(0.5 / (2 * (6 * math.pi) ** 2))
    assert magnitude_estimate(1.0, 2.0, (1,), eps_beta=2.0) == pytest.approx(1 / (2 * 2 * math.pi * 2))


# ----------------------------------------------------------------- Algorithms 2 and 3
def test_algorithm2_on_poisson():
    res = algorithm2(poisson_3_20(10), n_grid=64)
    assert res.converged and len(res.ratios) == 2  # eta = 1 lands on R = 1 in one update
    assert res.alpha == pytest.approx(1 / (2 * (6 * math.pi) ** 2), rel=1e-9)  # 1.407e-3 (PAPER.md I9)
    assert res.eps == pytest.approx(res.alpha * res.eps_s)
    assert res.eps_s == pytest.approx(0.5, rel=0.05)
    slow = algorithm2(poisson_3_20(10), n_grid=32, eta=0.5)
    assert slow.converged and len(slow.ratios) > 2 and 0.1 < slow.ratios[-1] < 10


def test_gamma_bound_eq_3_32():
    assert gamma_bound(POISSON_AMPLITUDE ** 2, 1.0) == pytest.approx(1.98e-6, rel=0.01)


def test_algorithm3_moves_gamma_towards_balance():
    P = ode_3_3()

    def make():
        m = StagedSolution(1)
        m.add_stage(1.0, widths=(8,), seed=0)
        return m

    res = algorithm3(P, make, gamma0=0.999, n0=40, eta=0.5, max_rounds=3, n_collocation=32, progress=False)
    assert 1 <= len(res.rounds) <= 3
    assert all({"gamma", "C_d", "C_e", "R_c"} <= set(r) for r in res.rounds)
    assert 0 < res.gamma < 1
    if len(res.rounds) > 1:  # gamma <- gamma R_c^eta
        r0 = res.rounds[0]
        assert res.rounds[1]["gamma"] == pytest.approx(min(r0["gamma"] * r0["R_c"] ** 0.5, 1 - 1e-9))


def test_empty_solution_is_zero_and_its_residue_is_the_source():
    P = poisson_3_20(5)
    m = StagedSolution(2)
    assert np.all(m.predict(np.zeros((3, 2))) == 0)
    est = estimate_next_stage(P, m, orders=(2, 0), n_grid=128)
    assert est.f_d == pytest.approx([3.0, 3.0], abs=0.05)
    assert est.eps == pytest.approx(0.5 / (6 * math.pi) ** 2, rel=0.02)  # eq. (3.19), paper's form


def test_residual_grid_shapes():
    P = poisson_3_20(5)
    m = StagedSolution(2)
    m.add_stage(1e-3, widths=(4,))
    axes, r = residual_grid(P, m, (8, 6))
    assert r.shape == (8, 6) and len(axes) == 2


# ----------------------------------------------------------------- errors
def test_residual_that_ignores_u_is_rejected():
    with pytest.raises(ValueError, match="does not depend on u"):
        PINNProblem(residual=lambda x, u: x[:, 0] ** 2, domain=[(-1, 1)], data_x=[[0.0]], data_u=[0.0])


def test_empty_boundary_data_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        PINNProblem(residual=lambda x, u: grad(u, x, 1) - u, domain=[(-1, 1)], data_x=np.zeros((0, 1)),
                    data_u=np.zeros(0))


def test_wrong_domain_dimension_is_rejected():
    with pytest.raises(ValueError, match="dimension"):
        PINNProblem(residual=lambda x, u: laplacian(u, x), domain=[(-1, 1)], data_x=boundary_points_2d(4),
                    data_u=np.zeros(12))
    with pytest.raises(ValueError, match="lo < hi"):
        PINNProblem(residual=lambda x, u: u, domain=[(1, -1)], data_x=[[0.0]], data_u=[0.0])
    m = StagedSolution(1)
    m.add_stage(1.0, widths=(4,))
    with pytest.raises(ValueError, match="dimension"):
        train_pinn(poisson_3_20(4), m, gamma=0.1, adam_steps=1)


def test_nan_inputs_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        PINNProblem(residual=lambda x, u: u, domain=[(-1, 1)], data_x=[[float("nan")]], data_u=[0.0])
    with pytest.raises(ValueError, match="NaN"):
        PINNProblem(residual=lambda x, u: u, domain=[(-1, 1)], data_x=[[0.0]], data_u=[float("nan")])
    m = StagedSolution(1)
    m.add_stage(1.0, widths=(4,))
    with pytest.raises(ValueError, match="NaN"):
        m.predict(np.array([[0.0], [np.nan]]))


def test_bad_weights_are_rejected():
    m = StagedSolution(1)
    m.add_stage(1.0, widths=(4,))
    with pytest.raises(ValueError, match="gamma"):
        train_pinn(ode_3_3(), m, gamma=1.5, adam_steps=1)
    with pytest.raises(ValueError, match="eps"):
        m.add_stage(0.0)
