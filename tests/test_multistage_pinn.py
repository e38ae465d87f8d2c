"""Algorithm 4 (msnn.multistage_pinn): a two-stage PINN on eq. (3.3), frozen stages, bad inputs."""
import math

import numpy as np
import pytest
import torch

from msnn.multistage_pinn import MultistagePINN
from msnn.pinn import RAR, PINNProblem, grad
from msnn.problems import ode_3_3


def _two_stage(**kw):
    opts = dict(orders=(1,), n_stages=2, widths=(20, 20, 20), adam_steps=[200, 0], lbfgs_steps=[300, 400],
                n_collocation=101, margin=0.01, extra_points=[[-1.0], [1.0]], gamma=[0.3 / 1.3, None],
                n_grid=1001, device="cpu", progress=False, seed=0)
    opts.update(kw)
    return MultistagePINN(ode_3_3(), **opts)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # small networks on a shared CPU: one thread is much faster than two under contention
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def solved():
    torch.manual_seed(0)
    return _two_stage().solve()


def test_second_stage_gains_two_orders(solved):
    """du/dx = u + x, u(0) = 0 (exact e^x - x - 1): stage 2 lowers the rms error >= 100x."""
    e1, e2 = solved.records_[0].error_rms, solved.records_[1].error_rms
    assert e1 < 1e-3
    assert e2 <= e1 / 100, (e1, e2)
    # the error is measured against the exact solution on the dense grid
    x = np.linspace(-1, 1, 1001)[:, None]
    direct = np.sqrt(np.mean((np.exp(x[:, 0]) - x[:, 0] - 1 - solved.predict(x)) ** 2))
    assert math.isclose(direct, e2, rel_tol=1e-9)


def test_stage_settings_come_from_the_residue(solved):
    r1, r2 = solved.records_
    assert r1.eps == 1.0 and r1.kappa_hat is None and r1.gamma_source == "given"
    # eq. (3.9): eps_2 = rms(r_1) / (2 pi f_d), with r_1 the residue left by stage 1
    assert math.isclose(r2.eps, r1.residue_rms / (2 * math.pi * r2.f_d[0]), rel_tol=1e-9)
    assert math.isclose(r2.eps_r, r1.residue_rms, rel_tol=1e-9)
    assert math.isclose(r2.kappa_hat[0], 2 * math.pi * r2.f_d[0], rel_tol=1e-9)
    # eq. (3.32) with L_d ~ eps^2 and L_e ~ eps_r^2
    assert math.isclose(r2.gamma, r2.eps ** 2 / (r2.eps ** 2 + r2.eps_r ** 2), rel_tol=1e-9)
    assert r2.gamma_source == "eq. 3.32"
    assert solved.model_.n_stages == 2 and solved.n_weights_ == 2 * 901
    assert list(solved.iterations()) == [r1.iterations, r1.iterations + r2.iterations]
    assert len(r2.loss_d) == r2.evaluations


def test_earlier_stages_stay_frozen():
    """Training stage 2 leaves stage 1's parameters bit for bit unchanged (eq. 3.41)."""
    s = _two_stage(n_stages=1, adam_steps=100, lbfgs_steps=50, gamma=0.3 / 1.3).solve()
    before = [p.detach().clone() for p in s.model_.stages[0].parameters()]
    from msnn.pinn_training import estimate_next_stage, train_pinn
    est = estimate_next_stage(s.problem, s.model_, (1,))
    s.model_.add_stage(est.eps, kappa_hat=est.kappa_hat, seed=1)
    assert all(not p.requires_grad for p in s.model_.stages[0].parameters())
    assert all(p.requires_grad for p in s.model_.stages[1].parameters())
    train_pinn(s.problem, s.model_, gamma=0.01, n_collocation=51, adam_steps=30, lbfgs_steps=20, progress=False)
    for p, q in zip(before, s.model_.stages[0].parameters()):
        assert torch.equal(p, q)


def test_driver_keeps_stage_one_frozen_and_uses_gpinn():
    one = _two_stage(n_stages=1, adam_steps=60, lbfgs_steps=0, gamma=0.3 / 1.3, gpinn=True).solve()
    full = _two_stage(adam_steps=[60, 30], lbfgs_steps=[0, 0], gpinn=True).solve()
    for p, q in zip(one.model_.stages[0].parameters(), full.model_.stages[0].parameters()):
        assert torch.equal(p, q)
    # eq. (3.40): gamma_g of stage 1 is ||s||^2 / ||grad s||^2 = mean(x^2) / 1 = 1/3 for s = x
    assert math.isclose(full.records_[0].gamma_g, 1 / 3, rel_tol=1e-2)
    assert full.records_[1].gamma_g > 0


def test_checkpoint_resumes(tmp_path):
    ck = tmp_path / "ode.pt"
    a = _two_stage(adam_steps=[50, 20], lbfgs_steps=[0, 0], checkpoint=ck).solve()
    b = _two_stage(adam_steps=[50, 20], lbfgs_steps=[0, 0], checkpoint=ck).solve()
    x = np.linspace(-1, 1, 11)
    assert np.array_equal(a.predict(x), b.predict(x))
    assert b.runs_ == []  # nothing retrained


def test_rar_in_two_dimensions_runs():
    def residual(x, u):
        return grad(u, x, 1, 0) - 0.5 * grad(u, x, 2, 1) - (1 - x[:, 1] ** 2 + x[:, 0])

    t = np.linspace(0, 1, 5)
    xb = np.concatenate([np.column_stack([np.zeros(5), np.linspace(-1, 1, 5)]),
                         np.column_stack([t, -np.ones(5)]), np.column_stack([t, np.ones(5)])])
    p = PINNProblem(residual=residual, domain=[(0, 1), (-1, 1)], data_x=xb, data_u=np.zeros(len(xb)),
                    exact=lambda x: x[:, 0] * (1 - x[:, 1] ** 2))
    s = MultistagePINN(p, orders=(0, 2), eps_beta=0.5, n_stages=2, widths=(10, 10), adam_steps=20,
                       n_collocation=64, gamma=[0.5, None], gpinn=True, rar=RAR(every=10, candidates=200, add=5),
                       n_grid=32, device="cpu", progress=False).solve()
    assert len(s.records_) == 2 and len(s.records_[1].kappa_hat) == 2
    assert np.isfinite(s.records_[1].error_rms)
    assert len(s.runs_[1].rar_points) == 5


@pytest.mark.parametrize("kw, msg", [
    (dict(n_stages=0), "n_stages"),
    (dict(adam_steps=[10, 10, 10]), "adam_steps needs"),
    (dict(gamma=1.5), "gamma must lie"),
    (dict(gamma=[0.2, "fast"]), "gamma must lie"),
    (dict(orders=(1, 0)), "orders"),
    (dict(dtype=torch.float32), "float64"),
    (dict(adam_steps=0, lbfgs_steps=0), "adam_steps \\+ lbfgs_steps"),
    (dict(eps0=-1.0), "eps0"),
    (dict(gamma_g=-1.0), "gamma_g"),
    (dict(rar="yes"), "rar"),
])
def test_bad_inputs_raise(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _two_stage(**kw)


def test_results_need_solve():
    with pytest.raises(ValueError, match="solve"):
        _two_stage().predict(np.zeros(3))


def _riccati():
    # u' + u^2 = 0, u(0) = 1 on [0, 2]: u = 1 / (1 + x); homogeneous, so r(x, 0) = 0
    return PINNProblem(residual=lambda x, u: grad(u, x, 1) + u ** 2, domain=[(0.0, 2.0)], data_x=np.zeros((1, 1)),
                       data_u=np.ones(1), exact=lambda x: 1.0 / (1.0 + np.asarray(x)[:, 0]), name="riccati")


def test_precision_schedule_on_a_nonlinear_equation_is_gauss_newton_on_every_weight():
    common = dict(orders=(1,), n_stages=1, widths=(10, 10), seed=0, progress=False)
    adam = MultistagePINN(_riccati(), schedule=[("adam", 1000)], **common).solve()
    prec = MultistagePINN(_riccati(), precision_steps=60, **common).solve()
    assert adam.records_[0].gamma_source == prec.records_[0].gamma_source == "eq. 3.32 (no residue: 1/2)"
    assert [q["kind"] for q in prec.records_[0].phases] == ["lm"]
    # the same Adam start, then 60 Gauss-Newton steps: measured 6.6e-3 -> 8.4e-6 (seed 0), 4.0e-3 -> 3.7e-6 (seed 1)
    assert prec.records_[0].error_max < 1e-2 * adam.records_[0].error_max


def test_exact_output_layer_phases_refuse_a_nonlinear_equation():
    sol = MultistagePINN(_riccati(), orders=(1,), n_stages=1, widths=(6,), schedule=[("adam", 5), ("vp-lm", 3)],
                         progress=False)
    with pytest.raises(ValueError, match=r"linear in u.*\('lm', m\)"):
        sol.solve()


def test_second_order_stages_are_validated_on_the_residue_grid(monkeypatch):
    # the next stage's eps and f_d are read on the n_grid grid, so the kept parameters must
    # not make the residue there worse: the grid is among the validation rows
    import msnn.pinn_stage as mpm

    seen = []
    real = mpm.run_phases

    def spy(net, groups, phases, validation=None, **kw):
        seen.append(validation)
        return real(net, groups, phases, validation=validation, **kw)

    monkeypatch.setattr(mpm, "run_phases", spy)
    MultistagePINN(ode_3_3(), orders=(1,), n_stages=1, widths=(8,), precision_steps=3, n_collocation=40,
                   n_grid=257, device="cpu", progress=False).solve()
    (val,) = seen
    grid = {g.name: g for g in val}["grid"]
    np.testing.assert_allclose(grid.x[:, 0].numpy(), np.linspace(-1.0, 1.0, 257))


def test_validation_grid_is_thinned_evenly_past_its_limit():
    import msnn.multistage_pinn as mpm

    def residual(x, u):
        return grad(u, x, 1, 0) - grad(u, x, 2, 1)

    p = PINNProblem(residual=residual, domain=[(0, 1), (-1, 1)], data_x=np.zeros((1, 2)), data_u=np.zeros(1))
    small = MultistagePINN(p, orders=(0, 2), n_grid=128, device="cpu")._validation_grid()
    assert small.shape == (128 * 128, 2)
    big = MultistagePINN(p, orders=(0, 2), n_grid=400, device="cpu")._validation_grid()
    assert big.shape[0] <= mpm.VALIDATION_GRID_MAX
    t = np.unique(big[:, 0].numpy())
    assert t[0] == 0.0 and len(t) == len(np.linspace(0, 1, 400)[::3])  # every 3rd of 400: 134^2 = 17956
    np.testing.assert_allclose(np.diff(t), 3 / 399)


def test_restage_with_the_settings_solve_used_reproduces_the_stage(solved):
    # the same seed, points, budget and eps: the stage trained afresh is the one solve() trained
    rec = solved.records_[1]
    again = solved.restage(2, eps=rec.eps, f_d=rec.f_d)
    assert len(again.records_) == 2 and len(solved.records_) == 2
    assert again.records_[1].gamma == pytest.approx(rec.gamma, rel=1e-12)
    assert again.records_[1].error_rms == pytest.approx(rec.error_rms, rel=1e-9)
    # stage 1 is shared as trained, frozen
    np.testing.assert_array_equal(again.predict(np.linspace(-1, 1, 7), 1), solved.predict(np.linspace(-1, 1, 7), 1))


def test_restage_uses_the_given_magnitude_and_frequency(solved):
    rec = solved.records_[1]
    other = solved.restage(2, eps=10 * rec.eps, f_d=[0.5])
    new = other.records_[1]
    assert new.eps == pytest.approx(10 * rec.eps) and new.f_d == [0.5]
    assert new.kappa_hat == [pytest.approx(2 * math.pi * 0.5)]  # factor 2: kappa_hat = 2 pi f_d
    assert new.gamma != pytest.approx(rec.gamma)  # eq. (3.32) with the new eps
    assert other.checkpoint is None


@pytest.mark.parametrize("args, kw, msg", [
    ((1,), dict(eps=1e-8), "stage must be an integer from 2 to 2"),
    ((3,), dict(eps=1e-8), "stage must be an integer from 2 to 2"),
    ((2.0,), dict(eps=1e-8), "stage must be an integer"),
    ((2,), dict(), "give eps, f_d or both"),
    ((2,), dict(eps=-1.0), "eps must be finite and positive"),
    ((2,), dict(eps=float("nan")), "eps must be finite and positive"),
    ((2,), dict(f_d=[1.0, 2.0]), "f_d needs 1 finite positive"),
    ((2,), dict(f_d=[0.0]), "f_d needs 1 finite positive"),
])
def test_restage_refuses_bad_settings(solved, args, kw, msg):
    with pytest.raises(ValueError, match=msg):
        solved.restage(*args, **kw)


def test_restage_needs_a_solved_run():
    with pytest.raises(ValueError, match="solve"):
        _two_stage().restage(2, eps=1e-8)


def test_the_residue_grid_is_sized_by_dimension():
    # 2501 points per axis in 2D would be 6.25 million points: the default follows the dimension
    from msnn.multistage_pinn import DEFAULT_N_GRID
    from msnn.problems import poisson_3_20

    one = MultistagePINN(ode_3_3(), orders=(1,), device="cpu")
    two = MultistagePINN(poisson_3_20(n_boundary=20), orders=[(2, 0), (0, 2)], device="cpu")
    assert [len(a) for a in one._grid()[0]] == [DEFAULT_N_GRID[1]] == [2501]
    assert [len(a) for a in two._grid()[0]] == [DEFAULT_N_GRID[2]] * 2 and DEFAULT_N_GRID[2] ** 2 < 10 ** 6
    assert MultistagePINN(ode_3_3(), orders=(1,), n_grid=301, device="cpu")._grid()[1].shape == (301, 1)
    assert one.get_params()["n_grid"] is None  # the argument is kept as given


def test_a_stage_that_gained_little_is_said_in_a_warning_not_only_in_stopped(solved):
    """Stage 2 of 3 that lowered the residue < 2x: the fit goes on, and a StageWarning says it."""
    import dataclasses
    import warnings

    from msnn import StageWarning

    three = _two_stage(n_stages=3, adam_steps=0, lbfgs_steps=10, gamma=None)
    rec = dataclasses.replace(solved.records_[1], stage=2, eps_r=1e-6, residue_rms=0.8e-6)
    with pytest.warns(StageWarning, match=r"stage 2 lowered the equation's residue only 1.25x"):
        assert three._stop_after(rec) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", StageWarning)  # a 100x gain, or the last stage: nothing to say
        assert three._stop_after(dataclasses.replace(rec, residue_rms=1e-8)) is None
        assert three._stop_after(dataclasses.replace(rec, stage=3)) is None
