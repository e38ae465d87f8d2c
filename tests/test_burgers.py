"""The self-similar Burgers problem: exact profiles, Taylor-mode jets, residue derivatives, lambda, the driver."""
import copy
import math

import numpy as np
import pytest
import torch

from msnn import NotFittedError
from msnn.burgers import BurgersSolution, add_next_stage, evaluate, next_stage_settings, split_error, train_burgers
from msnn.jets import network_jet, odd_jet, residual_jet
from msnn.multistage_burgers import MultistageBurgers
from msnn.problems import exact_derivatives, exact_profile, exact_residual
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


# ---------------------------------------------------------------- the driver (MultistageBurgers)
WEIGHTS = dict(gamma_g=0.1, gamma_s=1e-2, smooth_width=0.1)  # chapter 8's, with gamma_o given per case
TINY = dict(widths=(8, 8), n_smooth=8, n_grid=401, device="cpu", progress=False)


def _hand_round(model, k, gamma, *, gamma_o=1.0, n_c=40, **budget):
    """One round as the chapters write it: train_burgers with points seed k, then evaluate."""
    run = train_burgers(model, gamma=gamma, gamma_o=gamma_o, n_collocation=n_c, n_smooth=8, seed=k, progress=False,
                        **WEIGHTS, **budget)
    return run, evaluate(model, 401)


def _assert_same(hand: list, drv, stages=None):
    """Bit-for-bit: lambda, errors and every loss history of (run, eval) pairs against a driver's."""
    stages = range(len(hand)) if stages is None else stages
    assert len(drv.runs_) == len(hand)
    for k in stages:
        (r, e), rd, ed = hand[k], drv.runs_[k], drv.evals_[k]
        assert ed.lam == e.lam and ed.lambda_error == e.lambda_error, k
        assert ed.error_rms == e.error_rms and ed.residue_rms == e.residue_rms and ed.f_d == e.f_d, k
        for key in ("loss_d", "loss_e", "loss_g", "loss_s", "loss_o", "lam"):
            assert np.array_equal(getattr(rd, key), getattr(r, key)), (k, key)
        assert np.array_equal(rd.history.loss, r.history.loss) and rd.final == r.final, k
    assert drv.lambda_ == hand[-1][1].lam


def test_driver_is_the_hand_written_rounds_bit_for_bit():
    # chapter 11's loop with Adam + L-BFGS: stage 1, then Algorithm 4's next stage twice, per-stage budgets
    adam, lbfgs, n_c = [60, 30, 30], [20, 20, 15], [40, 48, 48]
    m = BurgersSolution(0.6, device="cpu")
    m.add_stage([dict(eps=1.0, widths=(8, 8), seed=0)])
    hand, sts = [], []
    for k in range(3):
        gamma = 0.5
        if k:
            sts.append(add_next_stage(m, hand[-1][1], hand[-1][0], widths=(8, 8), seed=10 * k))
            gamma = sts[-1]["gamma"]
        hand.append(_hand_round(m, k, gamma, n_c=n_c[k], adam_steps=adam[k], lbfgs_steps=lbfgs[k]))
    drv = MultistageBurgers(n_stages=3, adam_steps=adam, lbfgs_steps=lbfgs, n_collocation=n_c + [99], gamma_o=1.0,
                            **WEIGHTS, **TINY).fit()
    _assert_same(hand, drv)
    for st, sd in zip(sts, drv.settings_[1:]):
        assert {k: sd[k] for k in st} == st and sd["lambda_scale"] == st["eps_lambda"]
    assert drv.settings_[2]["network_seed"] == 20 and drv.settings_[2]["points_seed"] == 2
    assert [r.settings["n_collocation"] for r in drv.runs_] == n_c  # a longer list: its first n_stages entries
    y = np.linspace(-2, 2, 17)
    staged = list(drv.staged_predict(y))
    assert len(staged) == 3 and np.array_equal(staged[-1], m.predict(y)) and np.array_equal(drv.predict(y), staged[-1])
    assert np.array_equal(drv.predict(y, n_stages=1), m.predict(y, rounds=[0]))
    assert np.array_equal(drv.predict(y, order=1), m.predict(y, order=1))
    assert np.array_equal(list(drv.staged_predict(y, order=2))[1], m.predict(y, rounds=[0, 1], order=2))


def test_driver_with_an_lm_schedule_is_the_hand_written_rounds():
    sched = [("adam", 20), ("lm", 4)]
    m = BurgersSolution(0.6, device="cpu")
    m.add_stage([dict(eps=1.0, widths=(8, 8), seed=3)])
    hand = [_hand_round(m, 3, 0.5, schedule=sched)]
    st = add_next_stage(m, hand[0][1], hand[0][0], widths=(8, 8), seed=13)
    hand.append(_hand_round(m, 4, st["gamma"], schedule=sched))
    drv = MultistageBurgers(n_stages=2, schedule=sched, n_collocation=40, seed=3, gamma_o=1.0, **WEIGHTS,
                            **TINY).fit()
    _assert_same(hand, drv)
    assert drv.runs_[1].settings["phases"] == ["adam 20", "lm 4"]
    # one phase list per stage, None for Adam then L-BFGS (the golden Burgers case's mixture)
    mixed = MultistageBurgers(n_stages=2, schedule=[None, sched], adam_steps=20, lbfgs_steps=5, n_collocation=40,
                              seed=3, **WEIGHTS, **TINY).fit()
    assert mixed.runs_[0].settings["phases"] == ["adam 20", "lbfgs 5"]
    assert mixed.runs_[1].settings["phases"] == ["adam 20", "lm 4"]


def test_driver_branches_are_chapter_8s_deep_copies():
    # chapter 8: stage 1; stage 2 with and without L_o from the same stage 1; stages 3a (lambda scale
    # 2 sqrt(L_o)), 3b (the same and eq. 4.8's second network) and 3c (scale sqrt(L_s)) from the same two stages
    budget = dict(adam_steps=30, lbfgs_steps=15)
    m = BurgersSolution(0.6, device="cpu")
    m.add_stage([dict(eps=1.0, widths=(8, 8), seed=0)])
    h1 = _hand_round(m, 0, 0.5, **budget)
    paper = copy.deepcopy(m)
    st2 = add_next_stage(m, h1[1], h1[0], widths=(8, 8), seed=10)
    h2 = _hand_round(m, 1, st2["gamma"], **budget)
    add_next_stage(paper, h1[1], h1[0], widths=(8, 8), seed=10)
    h2p = _hand_round(paper, 1, st2["gamma"], gamma_o=0.0, **budget)
    ma, mb, mc = m, copy.deepcopy(m), copy.deepcopy(m)
    scale_o = 2 * math.sqrt(h2[0].final["loss_o"])
    st3 = add_next_stage(ma, h2[1], h2[0], widths=(8, 8), seed=20, lambda_scale=scale_o)
    add_next_stage(mb, h2[1], h2[0], widths=(8, 8), seed=20, lambda_network=True, lambda_scale=scale_o)
    add_next_stage(mc, h2[1], h2[0], widths=(8, 8), seed=20)
    h3a, h3b, h3c = (_hand_round(x, 2, st3["gamma"], **budget) for x in (ma, mb, mc))

    one = MultistageBurgers(n_stages=1, n_collocation=40, gamma_o=1.0, **budget, **WEIGHTS, **TINY).fit()
    p = one.branch(n_stages=2, gamma_o=0.0).fit()
    two = one.branch(n_stages=2).fit()
    a = two.branch(n_stages=3, lambda_scale="2_sqrt_lo").fit()
    b = two.branch(n_stages=3, lambda_scale="2_sqrt_lo", lambda_network=True).fit()
    c = two.branch(n_stages=3).fit()
    _assert_same([h1], one)
    _assert_same([h1, h2p], p)
    _assert_same([h1, h2], two)
    _assert_same([h1, h2, h3a], a)
    _assert_same([h1, h2, h3b], b)
    _assert_same([h1, h2, h3c], c)
    assert a.settings_[2]["lambda_scale"] == scale_o and a.settings_[2]["eps"] == st3["eps"]
    assert len(b.model_.nets) == 4 and b.settings_[2]["lambda_network"]
    assert p.runs_[1].settings["gamma_o"] == 0.0 and p.runs_[0].settings["gamma_o"] == 1.0
    assert len(one.runs_) == 1 and len(two.runs_) == 2 and one.model_.n_rounds == 1  # branching changes nothing
    # a branch that drops a fitted stage trains the same next stage as one taken before it
    c2 = a.branch(2, lambda_scale="sqrt_ls").fit()
    _assert_same([h1, h2, h3c], c2)
    # and a warm start extends in place, as a branch would
    two.set_params(n_stages=3, warm_start=True).fit()
    _assert_same([h1, h2, h3c], two)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lambda_init=0.0), "lambda_init"),
    (dict(n_stages=0), "n_stages"),
    (dict(widths=(8, 0)), "widths"),
    (dict(widths=[(8,), (8,)], n_stages=3), "widths"),
    (dict(gamma1=1.0), "gamma1"),
    (dict(gamma_g=-0.1), "gamma_g"),
    (dict(gamma_s=math.nan), "gamma_s"),
    (dict(gamma_o=[1.0, -1.0, 1.0]), "gamma_o"),
    (dict(smooth_width=3.0), "smooth_width"),
    (dict(adam_steps=-1), "adam_steps"),
    (dict(lbfgs_steps=1.5), "lbfgs_steps"),
    (dict(adam_steps=0, lbfgs_steps=0), "no training"),
    (dict(schedule="paper"), "schedule"),
    (dict(schedule=[("adam", 10), ("vp-lm", 5)]), "schedule of stage 1"),
    (dict(schedule=[("adam", -3)]), "schedule of stage 1"),
    (dict(schedule=[[("adam", 10)], [("adam", 10)]], n_stages=3), "schedule"),
    (dict(schedule=[("adam", 10)], adam_steps=5), "adam_steps"),
    (dict(lr=0.0), "lr"),
    (dict(n_collocation=1), "n_collocation"),
    (dict(n_smooth=0), "n_smooth"),
    (dict(n_grid=8), "n_grid"),
    (dict(lambda_scale="sqrt_lo"), "lambda_scale"),
    (dict(lambda_scale=-1e-3), "lambda_scale"),
    (dict(lambda_scale=[None, None, "sqrt_ls"]), "lambda_scale"),
    (dict(lambda_network="yes"), "lambda_network"),
    (dict(warm_start=1), "warm_start"),
    (dict(seed=-1), "seed"),
    (dict(device="tpu"), "device"),
    (dict(progress="no"), "progress"),
])
def test_driver_refuses_bad_settings_before_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultistageBurgers(**kwargs)


def test_driver_contract():
    drv = MultistageBurgers(n_stages=2, lambda_scale=[None, 1e-3], lambda_network=[False, True], **TINY)
    params = drv.get_params()
    assert type(drv)(**params).get_params() == params and params["lambda_scale"] == [None, 1e-3]
    assert "n_stages=2" in repr(drv)
    with pytest.raises(ValueError, match="n_collocation"):
        drv.set_params(n_collocation=0)
    with pytest.raises(NotFittedError):
        drv.predict([0.0])
    with pytest.raises(NotFittedError):
        drv.branch()
    drv = MultistageBurgers(n_stages=1, adam_steps=5, lbfgs_steps=0, n_collocation=20, **TINY).fit()
    assert drv.settings_[0]["kappa_hat"] is None and drv.lambda_ == drv.model_.lambda_value
    with pytest.raises(ValueError, match="keep"):
        drv.branch(2)
    with pytest.raises(ValueError, match="no parameter"):
        drv.branch(n_stage=2)
    with pytest.raises(ValueError, match="warm_start"):
        drv.branch(warm_start=False)
    with pytest.raises(ValueError, match="n_stages"):
        drv.predict([0.0], n_stages=2)
    with pytest.raises(ValueError, match="order"):
        drv.predict([0.0], order=5)
    with pytest.raises(ValueError, match="NaN"):
        drv.predict([math.nan])
    b = drv.branch(n_stages=2, adam_steps=5)
    assert b.warm_start and b.model_ is not drv.model_ and len(b.runs_) == 1
    with pytest.raises(ValueError, match="fewer"):
        b.set_params(n_stages=2).fit().set_params(n_stages=1).fit()
