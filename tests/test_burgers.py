"""The self-similar Burgers problem: exact profiles, Taylor-mode jets, residue derivatives, lambda."""
import copy
import math

import numpy as np
import pytest
import torch

from msnn.burgers import (BurgersSolution, add_next_stage, evaluate, exact_derivatives, exact_profile,
                          exact_residual, network_jet, next_stage_settings, odd_jet, residual_jet, split_error,
                          train_burgers)
from msnn.networks import StageNetwork

Y = np.linspace(-2.0, 2.0, 4001)


@pytest.mark.parametrize("lam", [0.5, 0.4, 0.25, 1.0])
def test_exact_profile_solves_d5_and_is_odd(lam):
    U = exact_profile(Y, lam)
    # eq. (D.5) on the exact profile: zero to round-off (|U|, |U'| <= 1 on [-2, 2])
    assert np.max(np.abs(exact_residual(Y, lam))) <= 1e-14
    # the implicit relation (D.6) with C = 1, and U(-2) = 1, U(2) = -1
    p = 1 + 1 / lam
    assert np.max(np.abs(Y + U + np.sign(U) * np.abs(U) ** p)) <= 1e-15
    assert U[0] == pytest.approx(1.0, abs=1e-15) and U[-1] == pytest.approx(-1.0, abs=1e-15)
    assert np.array_equal(exact_profile(-Y, lam), -U)  # odd: depends on |y| and sgn(y) only


def test_exact_profile_matches_cardano_at_one_half():
    q = np.cbrt(-Y / 2 + np.sqrt(Y ** 2 / 4 + 1 / 27)) + np.cbrt(-Y / 2 - np.sqrt(Y ** 2 / 4 + 1 / 27))
    assert np.max(np.abs(exact_profile(Y, 0.5) - q)) <= 2e-15


@pytest.mark.parametrize("lam", [0.5, 0.4])
def test_exact_derivatives_against_finite_differences(lam):
    y = np.linspace(0.2, 1.9, 12)
    y = np.concatenate([-y, y])
    D = exact_derivatives(y, lam)
    for k in range(1, 5):
        h = 1e-3
        fd = (exact_derivatives(y + h, lam, order=k - 1)[k - 1] - exact_derivatives(y - h, lam, order=k - 1)[k - 1]) / (2 * h)
        # central difference: error ~ h^2 |U^(k+2)| / 6
        assert np.max(np.abs(fd - D[k])) <= 1e-4 * max(1.0, np.max(np.abs(D[k])))


def test_fourth_derivative_blows_up_only_for_the_non_smooth_profile():
    y = np.array([1e-6, 1e-4, 1e-2])
    u4_04 = exact_derivatives(y, 0.4)[4]
    u4_05 = exact_derivatives(y, 0.5)[4]
    # lambda = 0.4: |U''''| ~ |y|^(-1/2), opposite signs on the two sides
    assert np.abs(u4_04[0] / u4_04[1]) == pytest.approx(10.0, rel=1e-3)
    assert np.sign(exact_derivatives(-1e-6, 0.4)[4]) == -np.sign(u4_04[0])
    # lambda = 1/2: U'''' = -360 y + O(y^3), continuous through 0
    assert u4_05[0] == pytest.approx(-360e-6, rel=1e-6)
    assert exact_derivatives(0.0, 0.5)[4] == 0.0


def test_exact_profile_rejects_bad_input():
    with pytest.raises(ValueError, match="lambda"):
        exact_profile(Y, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        exact_profile([0.0, np.nan], 0.5)
    with pytest.raises(ValueError, match="C must"):
        exact_profile(Y, 0.5, C=-1.0)
    with pytest.raises(ValueError, match="order"):
        exact_derivatives(Y, 0.5, order=5)


def _random_biases(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in net.biases:
            b.copy_(0.3 * torch.randn(b.shape, generator=g, dtype=b.dtype))
    return net


def _autograd_derivs(f, y, order):
    out = [f(y)]
    for _ in range(order):
        out.append(torch.autograd.grad(out[-1].sum(), y, create_graph=True)[0])
    return out


@pytest.mark.parametrize("act,kh", [("tanh", None), ("sin", 6.0)])
def test_network_jet_matches_nested_autograd(act, kh):
    net = _random_biases(StageNetwork(1, (20, 20, 20), first_activation=act, kappa_hat=kh, seed=3))
    y = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    jet = network_jet(net, y, 4)
    ref = _autograd_derivs(net, y, 4)
    for k, (a, b) in enumerate(zip(jet, ref)):
        assert torch.max(torch.abs(a - b)) <= 1e-12 * max(1.0, float(torch.max(torch.abs(b.detach())))), k


def test_odd_jet_is_odd_and_matches_autograd():
    net = _random_biases(StageNetwork(1, (16, 16), seed=5), seed=1)
    y = torch.linspace(-2, 2, 33, dtype=torch.float64, requires_grad=True)
    jet = odd_jet(net, y, 4)
    ref = _autograd_derivs(lambda t: t * (net(t) + net(-t)), y, 4)
    for k, (a, b) in enumerate(zip(jet, ref)):
        assert torch.max(torch.abs(a - b)) <= 1e-12 * max(1.0, float(torch.max(torch.abs(b.detach())))), k
        # U^(k) of an odd function has parity (-1)^(k+1)
        assert torch.max(torch.abs(a + (-1) ** k * a.flip(0))) <= 1e-13 * max(1.0, float(torch.max(torch.abs(a))))
    assert float(jet[0][16]) == 0.0  # U(0) = 0 exactly


def test_residual_third_derivative_against_finite_differences():
    torch.manual_seed(0)
    model = BurgersSolution(0.45)
    model.add_stage([dict(eps=1.0, widths=(12, 12), seed=2)])
    _random_biases(model.nets[0], seed=4)
    lam = model.lam

    def r_of(y):
        U = model.jet(torch.as_tensor(y, dtype=torch.float64), 1)
        return residual_jet(U, torch.as_tensor(y, dtype=torch.float64), lam, 0)[0].detach().numpy()

    y = np.array([-1.5, -0.05, 0.03, 0.7, 1.8])
    with torch.no_grad():
        U = model.jet(torch.as_tensor(y), 4)
        r = residual_jet(U, torch.as_tensor(y), lam, 3)
    h = 1e-2
    # third derivative, central, error O(h^2)
    fd3 = (r_of(y + 2 * h) - 2 * r_of(y + h) + 2 * r_of(y - h) - r_of(y - 2 * h)) / (2 * h ** 3)
    fd1 = (r_of(y + 1e-5) - r_of(y - 1e-5)) / 2e-5
    scale = max(1.0, np.max(np.abs(r[3].numpy())))
    assert np.max(np.abs(fd3 - r[3].numpy())) <= 1e-3 * scale
    assert np.max(np.abs(fd1 - r[1].numpy())) <= 1e-7 * max(1.0, np.max(np.abs(fd1)))


def test_residual_vanishes_on_the_exact_profile_jet():
    # feed the exact lambda = 1/2 jet to residual_jet: r, r', r'', r''' all vanish
    y = np.linspace(-2, 2, 101)
    D = [torch.as_tensor(d) for d in exact_derivatives(y, 0.5)]
    r = residual_jet(D, torch.as_tensor(y), 0.5, 3)
    for k, rk in enumerate(r):
        assert float(torch.max(torch.abs(rk))) <= 1e-12 * 10 ** k, k


def test_lambda_gradient_matches_finite_differences():
    model = BurgersSolution(0.45)
    model.add_stage([dict(eps=1.0, widths=(12, 12), seed=1)])
    _random_biases(model.nets[0], seed=2)
    y = torch.linspace(-2, 2, 41, dtype=torch.float64)
    ys = torch.linspace(-0.1, 0.1, 11, dtype=torch.float64)

    def loss():
        r = residual_jet(model.jet(y, 2), y, model.lam, 1)
        rs = residual_jet(model.jet(ys, 4), ys, model.lam, 3)[3]
        return (r[0] ** 2).mean() + 0.3 * (r[1] ** 2).mean() + 0.01 * (rs ** 2).mean()

    model.delta.grad = None
    loss().backward()
    g = float(model.delta.grad)
    h = 1e-6
    with torch.no_grad():
        model.delta += h
        lp = float(loss())
        model.delta -= 2 * h
        lm = float(loss())
        model.delta += h
    assert g == pytest.approx((lp - lm) / (2 * h), rel=1e-6)
    assert abs(g) > 0


def test_lambda_scale_and_frozen_stages():
    model = BurgersSolution(0.6)
    model.add_stage([dict(eps=1.0, widths=(8, 8), seed=0)])
    with torch.no_grad():
        model.delta.fill_(-0.1)
    assert model.lambda_value == pytest.approx(0.5, abs=1e-15)
    model.add_stage([dict(eps=1e-6, kappa_hat=5.0, widths=(8, 8)), dict(eps=1e-8, widths=(8, 8))], lambda_scale=1e-10)
    assert model.lambda_value == pytest.approx(0.5, abs=1e-15) and float(model.delta) == 0.0
    with torch.no_grad():
        model.delta.fill_(0.7)
    assert model.lambda_value - 0.5 == pytest.approx(7e-11, rel=1e-5)  # a 1e-10 correction survives in float64
    assert not any(p.requires_grad for p in model.nets[0].parameters())
    trainable = model.trainable()
    assert len(trainable) == 2 * 2 * 3 + 1
    assert model.nets[1].first_activation == "sin" and model.nets[2].first_activation == "tanh"
    parts = model.parts(Y[:11])
    assert parts.shape == (3, 11)
    assert np.allclose(parts.sum(0), model.predict(Y[:11]), rtol=0, atol=1e-15)


def test_bad_settings_raise():
    model = BurgersSolution(0.5)
    with pytest.raises(ValueError, match="no stage"):
        train_burgers(model, gamma=0.5)
    with pytest.raises(ValueError, match="lambda"):
        BurgersSolution(-1.0)
    with pytest.raises(ValueError, match="at least one network"):
        model.add_stage([])
    with pytest.raises(ValueError, match="unknown network settings"):
        model.add_stage([dict(eps=1.0, width=(3,))])
    with pytest.raises(ValueError, match="eps"):
        model.add_stage([dict(eps=0.0)])
    model.add_stage([dict(eps=1.0, widths=(4,))])
    with pytest.raises(ValueError, match="gamma"):
        train_burgers(model, gamma=1.0)
    with pytest.raises(ValueError, match="gamma_s"):
        train_burgers(model, gamma=0.5, gamma_s=-1.0)
    with pytest.raises(ValueError, match="lambda_scale"):
        model.add_stage([dict(eps=1.0)], lambda_scale=0.0)
    with pytest.raises(ValueError, match="single network"):
        network_jet(StageNetwork(2, (4,)), torch.zeros(3))


def test_split_error_separates_smooth_and_oscillating_parts():
    y = np.linspace(-2, 2, 2001)
    smooth = 1e-3 * (y - 0.1 * y ** 3)
    wiggle = 1e-5 * np.sin(2 * np.pi * 4 * y)
    low, high = split_error(y, smooth + wiggle)
    assert np.sqrt(np.mean((low - smooth) ** 2)) <= 0.2 * np.sqrt(np.mean(wiggle ** 2))
    assert np.sqrt(np.mean((high - wiggle) ** 2)) <= 0.2 * np.sqrt(np.mean(wiggle ** 2))
    with pytest.raises(ValueError, match="odd"):
        split_error(y, smooth, degree=4)


def test_short_training_moves_lambda_toward_one_half():
    torch.manual_seed(0)
    model = BurgersSolution(0.6)
    model.add_stage([dict(eps=1.0, widths=(10, 10), seed=0)])
    run = train_burgers(model, gamma=0.5, gamma_g=1.0, gamma_s=1e-2, n_collocation=60, n_smooth=10,
                        adam_steps=150, lbfgs_steps=150, progress=False)
    assert len(run.loss_e) == len(run.lam) >= run.history.evaluations  # every loss evaluation is recorded
    assert run.loss_d[-1] < 1e-3 * run.loss_d[0]  # U starts at 0 (a solution of the equation, not of the data)
    ev = evaluate(model, 401)
    assert ev.lambda_error < 0.1 - 0.03  # from 0.1 away, at least 30 % closer
    st = next_stage_settings(ev, run)
    assert st["kappa_hat"] == pytest.approx(2 * math.pi * ev.f_d)
    assert 0 < st["gamma"] < 1 and st["eps"] > 0 and st["eps_lambda"] > 0


def _first_round(**kw):
    m = BurgersSolution(0.6)
    m.add_stage([dict(eps=1.0, widths=(10, 10), seed=0)])
    run = train_burgers(m, gamma=0.5, gamma_g=0.1, gamma_s=1e-2, gamma_o=1.0, n_collocation=60, n_smooth=12,
                        progress=False, **kw)
    return m, run


def test_lm_phase_rows_are_the_loss_and_it_improves_on_adam():
    # the Levenberg-Marquardt rows (and their torch.func Jacobian) must give exactly the loss that Adam
    # minimized: the LM phase starts from Adam's last loss, then lowers it by orders of magnitude
    m, run = _first_round(schedule=[("adam", 300), ("lm", 40)])
    lm = run.history.extra["lm"][0]

    def loss(i):  # the weighted loss of eq. (4.2) + L_o at the i-th recorded evaluation
        return (0.5 * run.loss_d[i] + 0.5 * (run.loss_e[i] + 0.1 * run.loss_g[i]) + 1e-2 * run.loss_s[i]
                + run.loss_o[i])

    # evaluation 300 is the loss after Adam's last step; the optimizer sees it relative to evaluation 0
    assert lm["loss_before"] == pytest.approx(loss(300) / loss(0), rel=1e-10)
    assert lm["loss_after"] < 1e-2 * lm["loss_before"]
    assert run.iterations == 300 + lm["steps"]
    assert run.settings["phases"] == ["adam 300", "lm 40"]


def test_lm_jacobian_equals_autograd():
    from msnn.burgers import _round_rows
    from msnn.phases import jacobian_of

    m = BurgersSolution(0.6)
    m.add_stage([dict(eps=1.0, widths=(8, 8), seed=0)])
    m.add_stage([dict(eps=1e-3, widths=(8, 8), kappa_hat=3.0, seed=1)], lambda_scale=1e-2)
    with torch.no_grad():
        m.delta.fill_(0.3)
    rows, rows_and_jacobian = _round_rows(m, gamma=0.3, gamma_g=0.1, gamma_s=1e-2, gamma_o=1.0,
                                          n_collocation=20, n_smooth=6, smooth_width=0.1, seed=0,
                                          smooth_in_equation=True, scale=2.0)
    R, J = rows_and_jacobian()
    with torch.enable_grad():
        Jref = jacobian_of(rows(grad=True), m.trainable())
    assert torch.allclose(R, rows(), rtol=0, atol=0)
    assert J.shape == Jref.shape and torch.allclose(J, Jref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("phase", [("vp-lm", 5), ("output-lstsq",), ("lsgd", 5)])
def test_output_layer_phases_are_refused_for_burgers(phase):
    m = BurgersSolution(0.6)
    m.add_stage([dict(eps=1.0, widths=(8,), seed=0)])
    with pytest.raises(ValueError, match=r"\('lm', n\)"):
        train_burgers(m, gamma=0.5, schedule=[("adam", 5), phase], progress=False)


def test_add_next_stage_builds_algorithm_4s_stage():
    m, run = _first_round(adam_steps=30, lbfgs_steps=0)
    ev = evaluate(m, 401)
    st = next_stage_settings(ev, run)
    b = copy.deepcopy(m)
    assert add_next_stage(m, ev, run, widths=(8, 8), seed=3) == st
    assert len(m.nets) == 2 and m.lambda_scale == st["eps_lambda"]
    assert m.nets[1].first_activation == "sin"
    add_next_stage(b, ev, run, widths=(8, 8), seed=3, lambda_network=True)  # eq. (4.8): two new networks
    assert len(b.nets) == 3 and b.nets[2].first_activation == "tanh"
    for p, q in zip(m.nets[1].parameters(), b.nets[1].parameters()):
        assert torch.equal(p, q)  # the same seed gives the same high-frequency network
    c = copy.deepcopy(b)
    add_next_stage(c, ev, run, lambda_scale=1e-9)
    assert c.lambda_scale == 1e-9
    with pytest.raises(ValueError, match="lambda_scale"):
        add_next_stage(c, ev, run, lambda_scale=-1.0)
    with pytest.raises(ValueError, match="no stage yet"):
        add_next_stage(BurgersSolution(0.6), ev, run)
