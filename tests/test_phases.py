"""Phase-scheduled stage training (msnn.phases): exact answers, schedule validation, drivers.

Every numerical check compares with an answer known in closed form (a target built from
the network's own features, a zero-residual teacher, autograd / finite differences of an
independent forward pass) and states its tolerance next to the measured value.
"""
import math
import warnings

import numpy as np
import pytest
import torch

import msnn
import msnn.pinn_problems
from msnn import Float32Warning, MultistagePINN, MultistageRegressor
from msnn import phases as P
from msnn.phases import rows as rows_module
from msnn.phases.lm import assign, flat
from msnn.phases.rows import get_output, rows_jacobian, scaled_rows, set_output, stage_params
from msnn.networks import StageNetwork
from msnn.pinn import grad
from msnn.problems import eq_2_2

torch.set_num_threads(1)

F64 = torch.float64
X201 = torch.linspace(-1, 1, 201, dtype=F64)[:, None]


def _data_group(x, t, weight=1.0):
    return P.RowGroup(x, lambda u, z: u(z) - t, weight, "data")


def _ode_group(x, weight=1.0):
    """Rows of eq. (3.3): u' - u - x (linear in u)."""
    return P.RowGroup(x, lambda u, z: grad(u(z), z, 1) - u(z) - z[:, 0], weight, "equation")


def _randomize(net, scale, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


# ----------------------------------------------------------- 1. exact output layer
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_output_lstsq_recovers_known_output_layer(seed):
    # sin first layer with kappa_hat = 8: the 11 feature columns have condition number
    # 5e1..6e2 (measured), so the weights are identifiable to ~cond * 1e-16. (The default
    # tanh init has cond 3e13..4e16: the fit is exact there, the weights are not.)
    net = StageNetwork(1, (10, 10), seed=seed, first_activation="sin", kappa_hat=8.0)
    g = torch.Generator().manual_seed(100 + seed)
    w_true = torch.randn(11, dtype=F64, generator=g)
    set_output(net, w_true)
    with torch.no_grad():
        t = net(X201).clone()
    set_output(net, torch.randn(11, dtype=F64, generator=g))
    loss, rank = P.solve_output_layer(net, [_data_group(X201, t)])
    w = get_output(net)
    assert rank == 11
    # measured: relative weight error 2e-15..4e-14, loss 2e-30..2e-29
    assert float((w - w_true).norm() / w_true.norm()) < 1e-10
    assert loss < 1e-26
    with torch.no_grad():
        assert float(torch.mean((net(X201) - t) ** 2)) < 1e-26
    assert P.output_layer_norm(net) == pytest.approx(float(w.abs().sum()), rel=1e-15)


def test_output_lstsq_tikhonov_matches_normal_equations():
    # min ||A w + c||^2 + mu ||w||^2 has w = -(A^T A + mu I)^-1 A^T c; with cond(A) ~ 50 the
    # normal equations are accurate to ~1e-13 (measured 7e-14..2e-13 relative).
    net = StageNetwork(1, (10, 10), seed=0, first_activation="sin", kappa_hat=8.0)
    t = torch.as_tensor(np.cos(3 * X201[:, 0].numpy()) + X201[:, 0].numpy() ** 3, dtype=F64)
    grp = _data_group(X201, t, weight=2.0)
    R, A = rows_jacobian(net, [grp], "output")
    c = (R - A @ get_output(net)).numpy()
    An = A.numpy()
    mu = 1e-3
    w_ref = np.linalg.solve(An.T @ An + mu * np.eye(11), -An.T @ c)
    loss, rank = P.solve_output_layer(net, [grp], mu=mu)
    w = get_output(net).numpy()
    assert np.linalg.norm(w - w_ref) / np.linalg.norm(w_ref) < 1e-10
    loss_ref = np.sum((An @ w_ref + c) ** 2) + mu * np.sum(w_ref ** 2)
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    # the loss is weight * mean(rows^2) + mu ||w||^2, evaluated on the network itself
    with torch.no_grad():
        direct = 2.0 * float(torch.mean((net(X201) - t) ** 2)) + mu * float(np.sum(w ** 2))
    assert loss == pytest.approx(direct, rel=1e-12)


# ------------------------------------------------------ 2. Jacobian of PINN rows
def _features(net, x):
    """Last hidden layer of a tanh StageNetwork(1, (w1, w2)), computed independently."""
    W0, W1 = net.weights[0][0], net.weights[1][0]
    b0, b1 = net.biases[0][0, 0], net.biases[1][0, 0]
    h = torch.tanh((x * net.kappa) @ W0 + b0)
    return torch.tanh(h @ W1 + b1)


def test_output_jacobian_of_linear_ode_is_feature_derivative_minus_feature():
    net = StageNetwork(1, (10, 10), seed=3)
    _randomize(net, 0.3, seed=4)  # non-zero biases
    x = torch.linspace(-1, 1, 41, dtype=F64)[:, None]
    weight = 0.7
    R, A = rows_jacobian(net, [_ode_group(x, weight)], "output")
    assert A.shape == (41, 11)
    s = math.sqrt(weight / 41)
    xg = x.clone().requires_grad_(True)
    H = _features(net, xg)
    dH = torch.stack([torch.autograd.grad(H[:, j].sum(), xg, retain_graph=True)[0][:, 0]
                      for j in range(10)], 1)
    expected = torch.cat([(dH - H).detach(), -torch.ones(41, 1, dtype=F64)], 1) * s
    # same float64 quantities by two autograd paths: agreement to rounding (measured ~1e-16)
    assert torch.allclose(A, expected, rtol=0, atol=1e-13 * float(expected.abs().max()))
    # rows: R = sqrt(weight / N) (u' - u - x)
    u = net(xg)
    r = grad(u, xg, 1) - u - xg[:, 0]
    assert torch.allclose(R, r.detach() * s, rtol=0, atol=1e-14)
    # the equation is linear: R = A w + R(w = 0) with R(w=0) = -x * s exactly
    assert torch.allclose(R - A @ get_output(net), -x[:, 0] * s, rtol=0, atol=1e-14)


def test_full_jacobian_rows_match_autograd_and_finite_differences():
    net = StageNetwork(1, (6, 5), seed=5)
    _randomize(net, 0.3, seed=6)
    x = torch.linspace(-1, 1, 17, dtype=F64)[:, None]
    grp = _ode_group(x)
    R, J = rows_jacobian(net, [grp], "all")
    params = stage_params(net)
    n_par = sum(p.numel() for p in params)
    assert J.shape == (17, n_par)
    s = math.sqrt(1.0 / 17)
    for i in (0, 7, 16):
        xi = x[i:i + 1].clone().requires_grad_(True)
        ui = net(xi)
        ri = grad(ui, xi, 1) - ui - xi[:, 0]
        g = torch.autograd.grad(ri.sum(), list(params))
        row = torch.cat([gi.reshape(-1) for gi in g]) * s
        assert torch.allclose(J[i], row, rtol=0, atol=1e-13 * float(row.abs().max()))
    # central differences of the loss-scaled rows, step 1e-6: truncation ~1e-12, rounding ~1e-10
    theta = flat(params)
    for k in (0, 9, 25, n_par - 2, n_par - 1):
        e = torch.zeros_like(theta)
        e[k] = 1e-6
        assign(params, theta + e)
        rp = scaled_rows(net, [grp])
        assign(params, theta - e)
        rm = scaled_rows(net, [grp])
        assign(params, theta)
        fd = (rp - rm) / 2e-6
        assert torch.allclose(J[:, k], fd, rtol=0, atol=1e-7 * max(1.0, float(fd.abs().max())))


# ---------------------------------------------------------- 3. Gauss-Newton phases
def _teacher_student(seed, scale=0.02, width=(3,), kappa_hat=4.0, n=101):
    """A zero-residual fit: targets from a teacher, a student that starts near it."""
    x = torch.linspace(-1, 1, n, dtype=F64)[:, None]
    teacher = StageNetwork(1, width, seed=seed, kappa_hat=kappa_hat)
    _randomize(teacher, 0.3, seed=7 + seed)
    with torch.no_grad():
        t = teacher(x).clone()
    student = StageNetwork(1, width, seed=seed, kappa_hat=kappa_hat)
    with torch.no_grad():
        g = torch.Generator().manual_seed(11 + seed)
        for p, q in zip(student.parameters(), teacher.parameters()):
            p.copy_(q + scale * torch.randn(p.shape, generator=g, dtype=F64))
    return x, t, student


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["lm", "vp-lm"])
def test_gauss_newton_reaches_zero_residual(seed, kind):
    # 3 tanh units, kappa_hat 4: cond(J) 4e4..1e5 at the teacher, so Gauss-Newton converges
    # to round-off (measured 3e-33..7e-31 for both, within 14..39 iterations). A (5,) teacher
    # has cond(J) 1e7..1e17 and neither method gets below ~1e-13 in 100 iterations.
    x, t, net = _teacher_student(seed)
    grp = _data_group(x, t)
    (rep,) = P.run_phases(net, [grp], [(kind, 100)], progress=False)
    assert rep.kind == kind and rep.loss_before > 1e-12
    assert rep.loss_after < 1e-20
    assert 1 <= rep.steps <= 100 and rep.stopped in ("budget", "converged", "damping")
    # the report's loss is the loss of the parameters left in the network
    with torch.no_grad():
        assert float(torch.mean((net(x) - t) ** 2)) == pytest.approx(rep.loss_after, rel=1e-6, abs=1e-30)
    assert rep.history[0] == rep.loss_before and min(rep.history) <= rep.history[-1] * (1 + 1e-12)


def test_lm_fits_an_equation_nonlinear_in_u():
    # u^2 = t with t = teacher^2: lm (all parameters) still applies and drives the loss down
    x, t0, net = _teacher_student(1)
    t = t0 ** 2
    grp = P.RowGroup(x, lambda u, z: u(z) ** 2 - t, 1.0, "nonlinear")
    (rep,) = P.run_phases(net, [grp], [("lm", 60)], progress=False)
    assert rep.loss_after < 1e-3 * rep.loss_before  # measured: 1e-7 -> 1e-32


# ------------------------------------------------------------ 4. schedule validation
@pytest.mark.parametrize("schedule, match", [
    ([("sgd", 10)], "unknown phase 'sgd'"),
    ([("adam", -1)], "must be >= 0"),
    ([("adam", 2.5)], "must be an integer"),
    ([("lbfgs", True)], "must be an integer"),
    ([("adam",)], "needs one step count"),
    ([("lm", 5, {"damping": 0.0})], "damping of phase 'lm' must be a finite number > 0"),
    ([("vp-lm", 5, {"damping": -1e-3})], "damping"),
    ([("adam", 5, {"lr": float("nan")})], "lr of phase 'adam'"),
    ([("adam", 5, {"mu": 1e-9})], "has no option \\['mu'\\]"),
    ([("lm", 5, {"mu": 1e-9})], "has no option"),
    ([("output-lstsq", 5)], "takes no step count"),
    ([("vp-lm", 5, {"mu": -1.0})], "mu of phase 'vp-lm' must be >= 0"),
    ([("vp-lm", 5, {"patience": 0})], "patience"),
    ([("lsgd", 5, {"every": 1.5})], "every"),
    ([("output-lstsq", {"rcond": 1.0})], "rcond"),
    ([("vp-lm", 5, {"min_gain": 1.0})], "min_gain"),
    ([], "at least one phase"),
    ("adam", "a schedule is a list"),
    (("adam", 10), "a schedule is a list"),
])
def test_bad_schedules_raise(schedule, match):
    with pytest.raises(ValueError, match=match):
        P.parse_schedule(schedule)


def test_good_schedules_parse():
    ph = P.parse_schedule([("adam", np.int64(3)), ("lbfgs", 0), ["output-lstsq"],
                           ("vp-lm", 5, {"mu": 1e-15, "patience": 3}), ("lm", 2, {"damping": 1})])
    assert [p.kind for p in ph] == ["adam", "lbfgs", "output-lstsq", "vp-lm", "lm"]
    assert [p.steps for p in ph] == [3, 0, 0, 5, 2] and isinstance(ph[0].steps, int)
    assert ph[3].opt("mu", 0.0) == 1e-15 and ph[3].opt("damping", 1e-3) == 1e-3
    assert P.parse_schedule(ph[:2] + ph[3:]) == ph[:2] + ph[3:]  # Phase objects pass through


def test_parsed_output_lstsq_phase_round_trips():
    ph = P.parse_schedule([("output-lstsq", {"mu": 1e-12})])
    assert P.parse_schedule(ph) == ph


def test_regressor_with_output_lstsq_phase_fits():
    x = np.linspace(-1, 1, 50)
    reg = MultistageRegressor(n_stages=1, widths=(5,), schedule=[("adam", 5), ("output-lstsq",)], progress=False)
    reg.fit(x, np.sin(x))
    assert reg.stages_[0].phases[-1]["kind"] == "output-lstsq"


def test_per_stage_schedule_of_the_wrong_length_raises_value_error():
    with pytest.raises(ValueError, match="phases for 2 stage"):
        MultistageRegressor(n_stages=3, schedule=[[("adam", 3)], [("adam", 3)]])
    with pytest.raises(ValueError, match="phases for 2 stage"):
        MultistageRegressor(n_stages=1, schedule=[[("adam", 3)], [("adam", 3)]])


def test_adam_phase_reports_the_true_initial_loss_of_derivative_rows():
    # (an earlier phases.py evaluated this under torch.no_grad, where grad(u) is zero: 0.780)
    net = StageNetwork(1, (5,), seed=0)
    grp = _ode_group(torch.linspace(-1, 1, 51, dtype=F64)[:, None])
    true = float((scaled_rows(net, [grp]) ** 2).sum())  # 1.007
    (rep,) = P.run_phases(net, [grp], [("adam", 1)], progress=False)
    assert rep.loss_before == pytest.approx(true, rel=1e-12)


def test_schedule_for():
    p0 = P.schedule_for("precision", 0, precision_steps=7)
    p1 = P.schedule_for("precision", 1, precision_steps=7)
    assert [(p.kind, p.steps) for p in p0] == [("adam", 1000), ("vp-lm", 7)]
    assert p0[1].opt("mu", None) == 1e-19 and p1[1].opt("mu", None) == 1e-15
    paper = P.schedule_for("paper", 2, adam_steps=11, lbfgs_steps=13)
    assert [(p.kind, p.steps) for p in paper] == [("adam", 11), ("lbfgs", 13)]
    per_stage = [[("adam", 1)], [("adam", 2), ("lm", 3)]]
    assert [(p.kind, p.steps) for p in P.schedule_for(per_stage, 1)] == [("adam", 2), ("lm", 3)]
    with pytest.raises(ValueError, match="unknown schedule 'nope'"):
        P.schedule_for("nope", 0)


def test_drivers_validate_schedules_at_construction():
    with pytest.raises(ValueError, match="unknown phase 'sgd'"):
        MultistageRegressor(schedule=[("sgd", 3)])
    with pytest.raises(ValueError, match="must be an integer"):
        MultistageRegressor(n_stages=2, schedule=[[("adam", 3)], [("adam", 0.5)]])
    with pytest.raises(ValueError, match="unknown phase 'sgd'"):
        MultistagePINN(msnn.pinn_problems.ode_3_3(), orders=(1,), schedule=[("sgd", 3)], device="cpu")


# ---------------------------------------------- 5. nonlinear rows, 6. rank, 7. float32
def test_exact_output_layer_refuses_a_nonlinear_equation():
    x, t0, net = _teacher_student(0)
    grp = P.RowGroup(x, lambda u, z: u(z) ** 2 - t0 ** 2, 1.0, "nonlinear")
    for call in (lambda: P.solve_output_layer(net, [grp]),
                 lambda: P.run_phases(net, [grp], [("output-lstsq",)], progress=False),
                 lambda: P.run_phases(net, [grp], [("vp-lm", 3)], progress=False),
                 lambda: P.run_phases(net, [grp], [("lsgd", 3)], progress=False)):
        with pytest.raises(ValueError, match="not linear in u.*'lm'"):
            call()


def test_rank_deficient_system_warns_with_its_rank():
    # all points the same: the 11 columns of A are one row repeated, rank 1
    net = StageNetwork(1, (10, 10), seed=0)
    x = torch.full((30, 1), 0.3, dtype=F64)
    with pytest.warns(P.RankWarning, match="numerical rank 1 of 11"):
        loss, rank = P.solve_output_layer(net, [_data_group(x, torch.full((30,), 2.0, dtype=F64))])
    assert rank == 1 and loss < 1e-28  # one equation, consistent: fitted exactly


def test_duplicate_features_warn_and_give_the_minimum_norm_solution():
    # the well-conditioned features of test 1 (cond ~ 50), last-layer unit 1 := unit 0
    net = StageNetwork(1, (10, 10), seed=0, first_activation="sin", kappa_hat=8.0)
    with torch.no_grad():
        net.weights[1][0, :, 1] = net.weights[1][0, :, 0]
        net.biases[1][0, 0, 1] = net.biases[1][0, 0, 0]
    t = torch.as_tensor(np.sin(2 * X201[:, 0].numpy()), dtype=F64)
    with pytest.warns(P.RankWarning, match="numerical rank 10 of 11"):
        (rep,) = P.run_phases(net, [_data_group(X201, t)], [("output-lstsq",)], progress=False)
    assert rep.rank == 10
    w = get_output(net)
    # minimum norm splits the weight evenly between the two equal units (measured 3e-15)
    assert abs(float(w[0] - w[1])) <= 1e-10 * float(w.abs().max())


def _float32_problem():
    net = StageNetwork(1, (5,), seed=0, dtype=torch.float32)
    x = torch.linspace(-1, 1, 21, dtype=torch.float32)[:, None]
    return net, _data_group(x, torch.sin(x[:, 0]))


def test_float32_second_order_phase_warns():
    net, grp = _float32_problem()
    with pytest.warns(Float32Warning, match="use float64"):
        (rep,) = P.run_phases(net, [grp], [("lm", 3)], progress=False)
    assert rep.loss_after < rep.loss_before  # it still runs (measured 0.058 -> 8e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Float32Warning)
        P.run_phases(net, [grp], [("adam", 2)], progress=False)  # first-order only: no warning


def test_float32_output_lstsq_warns_and_runs():
    # (an earlier phases.py checked linearity to 1e-8, below float32 rounding, and raised)
    net, grp = _float32_problem()
    with pytest.warns(Float32Warning, match="use float64"):
        (rep,) = P.run_phases(net, [grp], [("output-lstsq",)], progress=False)
    assert rep.loss_after < rep.loss_before


def test_round_off_scales_with_output_norm():
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("numpy longdouble is float64 on this platform: round_off reports 0")
    net = StageNetwork(1, (10, 10), seed=0, first_activation="sin", kappa_hat=8.0)
    w = torch.randn(11, dtype=F64, generator=torch.Generator().manual_seed(5))
    for scale in (1.0, 1e8):
        set_output(net, w * scale)
        ratio = P.round_off(net, X201) / P.output_layer_norm(net)
        assert 1e-18 < ratio < 1e-15  # measured 5.5e-17 and 5.7e-17


# --------------------------------------------------------------------- determinism
def _all_phases_run():
    net = StageNetwork(1, (6, 6), seed=4)
    x = torch.linspace(-1, 1, 41, dtype=F64)[:, None]
    t = torch.sin(2 * x[:, 0] + 1)
    sched = [("adam", 30), ("lbfgs", 10), ("output-lstsq",), ("lsgd", 10, {"every": 5}),
             ("vp-lm", 5, {"mu": 1e-15}), ("lm", 5)]
    reps = P.run_phases(net, [_data_group(x, t)], sched, progress=False)
    return flat(stage_params(net)), reps


def test_every_phase_runs_and_a_rerun_is_bit_identical():
    theta1, reps1 = _all_phases_run()
    theta2, reps2 = _all_phases_run()
    assert torch.equal(theta1, theta2)
    assert [r.kind for r in reps1] == ["adam", "lbfgs", "output-lstsq", "lsgd", "vp-lm", "lm"]
    for a, b in zip(reps1, reps2):
        assert (a.loss_before, a.loss_after, a.steps, a.stopped, a.rank) == \
               (b.loss_before, b.loss_after, b.steps, b.stopped, b.rank)
        assert math.isfinite(a.loss_after)
    ols = reps1[2]
    assert ols.rank == 7 and ols.loss_after <= ols.loss_before
    for r in reps1[4:]:  # second-order phases keep their best parameters
        assert r.loss_after <= r.loss_before * (1 + 1e-12)


# --------------------------------------------------------------------- 8. regression
@pytest.fixture(scope="module")
def three_stage():
    # Stages 1 and 2 train by Adam only, so stage 3 (sin first layer, kappa from the
    # residue) gets a resolvable residue and its vp-lm phase has room to gain. Measured:
    # eps 1, 0.25, 0.0155; stage 3 leaves 5.4e-6 (gain 2.9e3), ~4 s on one core. (With
    # vp-lm in every stage, stage 3 starts at 1e-11..1e-7 near eq. 2.10's sampling bound
    # and gains 2..17x only.)
    x = np.linspace(-1, 1, 301)
    y = eq_2_2(x)
    sched = [[("adam", 300)], [("adam", 300)], [("adam", 200), ("vp-lm", 40)]]
    reg = MultistageRegressor(n_stages=3, widths=(10, 10), schedule=sched, seed=0, progress=False)
    return reg.fit(x, y), x, y


def test_three_stage_regression_third_stage_gains(three_stage):
    reg, x, y = three_stage
    s = reg.stages_
    assert len(s) == 3
    assert [r.activation for r in s] == ["tanh", "sin", "sin"]
    for a, b in zip(s[:-1], s[1:]):  # eps_{n+1} is the RMS residue left by stage n
        assert b.eps == pytest.approx(a.rms_after, rel=1e-12)
    assert s[2].eps / s[2].rms_after >= 100  # the issue asks >= 10x; measured 2.9e3
    assert s[1].eps / s[1].rms_after >= 5  # measured 16
    assert [p["kind"] for p in s[2].phases] == ["adam", "vp-lm"]
    assert s[2].phases[-1]["loss_after"] < 1e-5  # measured 1.2e-7


def test_three_stage_regression_is_sum_of_stages_with_finite_records(three_stage):
    reg, x, y = three_stage
    # an independent sum of eps_n * u_n over the stage networks, in the units of y
    xn = torch.as_tensor(2 * (x - x.min()) / (x.max() - x.min()) - 1, dtype=F64)[:, None]
    with torch.no_grad():
        total = sum(r.eps * reg.y_scale_ * net(xn).numpy() for r, net in zip(reg.stages_, reg.networks_))
    np.testing.assert_allclose(reg.predict(x), total, rtol=0, atol=1e-14)
    np.testing.assert_allclose(reg.predict_stages(x).sum(0), reg.predict(x), rtol=0, atol=1e-15)
    # the training residue recorded during fit agrees with predict
    assert reg.rms_error(x, y) == pytest.approx(reg.stages_[-1].rms_after * reg.y_scale_, rel=1e-6)
    for r in reg.stages_:
        assert math.isfinite(r.output_norm) and r.output_norm > 0
        assert math.isfinite(r.round_off) and r.round_off >= 0
        assert isinstance(r.phases, list) and r.phases
        assert all({"kind", "steps", "loss_before", "loss_after", "seconds", "stopped"} <= set(p)
                   for p in r.phases)


# -------------------------------------------------------------------------- 9. PINN
def test_pinn_precision_schedule_one_stage():
    # default widths (3x20), Adam 1000 + vp-lm 40 on 201 collocation points: measured
    # error_rms 2.3e-12 (error_max 7.5e-12) in ~5 s; the tolerance leaves a factor ~400
    sol = MultistagePINN(msnn.pinn_problems.ode_3_3(), orders=(1,), n_stages=1, precision_steps=40,
                         n_collocation=201, progress=False, device="cpu").solve()
    (rec,) = sol.records_
    assert rec.error_rms < 1e-9
    assert [p["kind"] for p in rec.phases] == ["vp-lm"]
    assert rec.phases[0]["loss_after"] < 1e-3 * rec.phases[0]["loss_before"]
    assert math.isfinite(rec.output_norm) and math.isfinite(rec.round_off)
    xe = np.linspace(-1, 1, 101)
    assert np.max(np.abs(sol.predict(xe[:, None]) - (np.exp(xe) - xe - 1))) < 1e-8


def test_a_jacobian_too_large_for_memory_is_refused_with_its_size(monkeypatch):
    monkeypatch.setattr(rows_module, "MAX_JACOBIAN_BYTES", 1000)
    net = StageNetwork(1, (5,), seed=0)
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)[:, None]
    grp = P.RowGroup(x, lambda u, z: u(z) - torch.sin(z[:, 0]))
    with pytest.raises(ValueError, match=r"50 residual rows by 16 parameters needs about .* GiB"):
        P.run_phases(net, [grp], [("vp-lm", 2)], progress=False)
    P.run_phases(net, [grp], [("adam", 2)], progress=False)  # first-order phases build no Jacobian


def test_a_stage_worse_than_none_on_the_validation_rows_is_rejected():
    # train on rows that say "sin(8x)" and validate on rows that say "0": no stage is better
    net = StageNetwork(1, (10,), first_activation="sin", kappa_hat=8.0, seed=0)
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None]
    xv = torch.linspace(-0.99, 0.99, 50, dtype=torch.float64)[:, None]
    train = P.RowGroup(x, lambda u, z: u(z) - torch.sin(8 * z[:, 0]))
    val = P.RowGroup(xv, lambda u, z: u(z))
    reps = P.run_phases(net, [train], [("output-lstsq",)], progress=False, validation=[val])
    assert reps[-1].kind == "rejected" and reps[-1].loss_after < reps[-1].loss_before
    assert float(get_output(net).abs().max()) == 0.0
    # with rows that agree, the stage is kept
    net2 = StageNetwork(1, (10,), first_activation="sin", kappa_hat=8.0, seed=0)
    val2 = P.RowGroup(xv, lambda u, z: u(z) - torch.sin(8 * z[:, 0]))
    reps2 = P.run_phases(net2, [train], [("output-lstsq",)], progress=False, validation=[val2])
    assert reps2[-1].kind == "output-lstsq"


# ------------------------------------------------- Levenberg-Marquardt on any parameters
def test_general_levenberg_marquardt_finds_a_known_nonlinear_minimum():
    from msnn.phases import levenberg_marquardt

    x = torch.linspace(0, 2, 50, dtype=torch.float64)
    y = 2.5 * torch.exp(-1.3 * x) + 0.7  # zero-residual minimum at (2.5, -1.3, 0.7)
    p = torch.tensor([1.0, -0.5, 0.0], dtype=torch.float64, requires_grad=True)
    rep = levenberg_marquardt([p], lambda: p[0] * torch.exp(p[1] * x) + p[2] - y, 100, progress=False)
    assert rep.kind == "lm" and rep.loss_after < 1e-26 < rep.loss_before
    assert torch.allclose(p.detach(), torch.tensor([2.5, -1.3, 0.7], dtype=torch.float64), rtol=0, atol=1e-12)


def test_jacobian_of_matches_the_analytic_jacobian():
    from msnn.phases import jacobian_of

    x = torch.linspace(-1, 1, 700, dtype=torch.float64)  # more rows than one chunk
    a = torch.tensor([0.3, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    J = jacobian_of(a[0] * torch.sin(a[1] * x) + b * x ** 2, [a, b], chunk=256)
    exact = torch.stack([torch.sin(2.0 * x), 0.3 * x * torch.cos(2.0 * x), x ** 2], 1)
    assert J.shape == (700, 3)
    assert torch.allclose(J, exact, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kw, match", [
    (dict(steps=-1), "steps"), (dict(steps=2.5), "integer"), (dict(damping=0.0), "damping"),
    (dict(patience=0), "patience"), (dict(min_gain=1.0), "min_gain"),
])
def test_general_levenberg_marquardt_rejects_bad_settings(kw, match):
    from msnn.phases import levenberg_marquardt

    p = torch.ones(2, dtype=torch.float64, requires_grad=True)
    args = dict(steps=5) | kw
    with pytest.raises(ValueError, match=match):
        levenberg_marquardt([p], lambda: p - 1.0, args.pop("steps"), progress=False, **args)
    with pytest.raises(ValueError, match="require grad"):
        levenberg_marquardt([p.detach()], lambda: p - 1.0, 5, progress=False)
