"""SI-MSNN: the DFT embedding of Algorithm 1 (eq. 10), the chunked feature layer, the regressor."""
import math

import numpy as np
import pytest
import torch

from msnn.problems import si_target_2d
import msnn.si as si_module
import msnn.si_features as si_features_module
from msnn.si import (SIMultistageRegressor, SINetwork, count_primary_modes, lp_loss, si_features,
                     si_grid_features, spectral_modes, tensor_grid_points)


def periodic_grid(n, lo=-1.0, hi=1.0):
    x = lo + (hi - lo) * np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")


@pytest.mark.parametrize("n", [16, 15])
def test_all_modes_reproduce_the_grid_eq_10(n):
    X, Y = periodic_grid(n)
    u = si_target_2d(X, Y)
    modes = spectral_modes(u)
    if n % 2 == 0:
        assert len(modes) == n * n // 2 + n  # half-plane plus the Nyquist row
    net = SINetwork(modes, widths=())  # no hidden layers: the output is sum_j alpha_j cos(k_j x + theta_j)
    xy = torch.tensor(np.column_stack([X.ravel(), Y.ravel()]))
    with torch.no_grad():
        err = np.abs(net(xy).numpy() - u.ravel()).max()
    assert err <= 1e-12


def test_dropping_the_nyquist_row_breaks_the_reconstruction():
    X, Y = periodic_grid(16)
    u = si_target_2d(X, Y)
    m = spectral_modes(u)
    xy = np.column_stack([X.ravel(), Y.ravel()])
    nyq = np.isclose(m.k[:, 1], math.pi * 8)
    assert nyq.sum() == 16
    partial = np.cos(xy @ m.k[~nyq].T + m.theta[~nyq]) @ m.alpha[~nyq]
    assert np.abs(partial - u.ravel()).max() > 1e-6


def test_single_mode_gives_its_wavenumber_phase_and_amplitude():
    X, Y = periodic_grid(32, 0.0, 2 * math.pi)  # [0, 2 pi): integer wavenumbers
    u = 0.7 * np.cos(3 * X + 2 * Y + 0.4)
    m = spectral_modes(u, lo=0.0, hi=2 * math.pi)
    np.testing.assert_allclose(m.k[0], [3.0, 2.0], atol=1e-12)
    assert m.alpha[0] == pytest.approx(0.7, abs=1e-12)
    assert m.theta[0] == pytest.approx(0.4, abs=1e-12)
    assert m.alpha[1] == pytest.approx(0.0, abs=1e-12)
    # and on the normalized grid [-1, 1) the wavenumbers are pi m with the phase from x0 = -1
    Xn, Yn = periodic_grid(32)
    mn = spectral_modes(0.7 * np.cos(math.pi * (3 * Xn + 2 * Yn) + 0.4))
    np.testing.assert_allclose(mn.k[0], [3 * math.pi, 2 * math.pi], atol=1e-12)
    assert mn.theta[0] == pytest.approx(0.4, abs=1e-12)


def test_chunked_features_equal_plain_features_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 2, generator=g, dtype=torch.float64, requires_grad=True)
    B = torch.randn(11, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(11, generator=g, dtype=torch.float64, requires_grad=True)
    A = torch.rand(11, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(11, 4, generator=g, dtype=torch.float64, requires_grad=True)
    chunked = si_features(x, B, b, A, W, chunk=5)
    plain = si_features(x, B, b, A) @ W
    np.testing.assert_allclose(chunked.detach().numpy(), plain.detach().numpy(), rtol=0, atol=1e-14)
    up = torch.randn(37, 4, generator=g, dtype=torch.float64)
    g1 = torch.autograd.grad(chunked, (x, B, b, A, W), up)
    g2 = torch.autograd.grad(plain, (x, B, b, A, W), up)
    for a, c in zip(g1, g2):
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=0, atol=1e-12)
    small = [t[:6].detach().clone().requires_grad_() for t in (x,)] + [
        t[:4].detach().clone().requires_grad_() for t in (B, b, A)] + [W[:4, :2].detach().clone().requires_grad_()]
    assert torch.autograd.gradcheck(lambda *a: si_features(*a, chunk=4), tuple(small))


def test_network_paths_agree_and_only_B_b_and_dense_layers_train():
    X, Y = periodic_grid(12)
    u = si_target_2d(X, Y)
    net = SINetwork(spectral_modes(u).top(20), widths=(8, 8), seed=3)
    xy = torch.tensor(np.column_stack([X.ravel(), Y.ravel()]))
    a, c = net(xy), net(xy, chunked=False)
    assert torch.allclose(a, c, rtol=0, atol=1e-14)
    names = {n for n, p in net.named_parameters()}
    assert {"B", "b"} <= names and "A" not in names
    assert net.n_parameters() == 20 * 3 + 20 * 8 + 8 + 8 * 8 + 8 + 8 + 1


def test_lp_loss_is_the_mean_form_and_bounds_the_rms():
    r = torch.tensor([1e-9, -3e-9, 2e-9], dtype=torch.float64)
    expected = (np.mean(np.abs(r.numpy()) ** 10)) ** 0.1
    assert float(lp_loss(r, 10)) == pytest.approx(expected, rel=1e-12)
    assert float(lp_loss(r, 2)) == pytest.approx(float(torch.sqrt(torch.mean(r ** 2))), rel=1e-12)
    assert float(lp_loss(r, 10)) >= float(torch.sqrt(torch.mean(r ** 2)))
    with pytest.raises(ValueError, match="p must be"):
        lp_loss(r, 0.5)


@pytest.fixture(scope="module")
def two_si_stages():
    X, Y = periodic_grid(16)
    u = si_target_2d(X, Y)
    reg = SIMultistageRegressor(n_stages=2, n_features=[40, 60], widths=(10, 10), adam_steps=100,
                                lbfgs_steps=150, loss="lp", seed=0, progress=False).fit(u)
    return reg, u, X, Y


def test_si_regressor_bookkeeping(two_si_stages):
    reg, u, X, Y = two_si_stages
    s0, s1 = reg.stages_
    assert s0.eps_data == pytest.approx(np.sqrt(np.mean(u ** 2)), rel=1e-12)  # eps_0 = RMS(u)
    e1 = reg.residue(1)
    assert s1.eps_data == pytest.approx(np.sqrt(np.mean(e1 ** 2)), rel=1e-10)
    assert s1.eps < s0.eps and s1.rms_after < s1.eps < 0.1  # each stage shrinks the residue
    assert s0.n_features == 40 and s1.n_features == 60
    xy = np.column_stack([X.ravel(), Y.ravel()])
    parts = reg.predict_stages(xy)
    np.testing.assert_allclose(parts.sum(0), reg.predict_grid().ravel(), rtol=0, atol=1e-14)
    np.testing.assert_allclose(reg.predict(xy), parts.sum(0), rtol=0, atol=1e-15)
    assert len(s1.loss_history) == s1.adam_steps + s1.lbfgs_evaluations


def test_si_regressor_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    X, Y = periodic_grid(12)
    u = si_target_2d(X, Y)
    kw = dict(n_stages=2, n_features=20, widths=(6,), adam_steps=30, lbfgs_steps=0, seed=1, progress=False)
    ck = tmp_path / "si.pt"
    a = SIMultistageRegressor(**kw, checkpoint=ck).fit(u)

    def no_training(*args, **kwargs):
        raise AssertionError("a stage was trained again instead of being resumed")

    monkeypatch.setattr(si_module, "train", no_training)
    monkeypatch.setattr(SIMultistageRegressor, "_run_phases", no_training)
    b = SIMultistageRegressor(**kw, checkpoint=ck).fit(u)  # nothing left to train
    np.testing.assert_array_equal(a.residue(), b.residue())
    assert [s.final_loss for s in a.stages_] == [s.final_loss for s in b.stages_]
    with pytest.warns(UserWarning, match="other data or settings"), pytest.raises(AssertionError, match="trained again"):
        SIMultistageRegressor(**(kw | dict(adam_steps=31)), checkpoint=ck).fit(u)


def test_count_primary_modes():
    X, Y = periodic_grid(16)
    u = np.cos(math.pi * X) + 0.01 * np.cos(math.pi * (X + 2 * Y))
    assert count_primary_modes(u, 0.1) == 2  # the +-k pair of the k_y = 0 row
    assert count_primary_modes(u, 0.001) == 3


@pytest.mark.parametrize("bad, match", [
    (dict(u=np.full((8, 8), np.nan)), "NaN"),
    (dict(u=np.zeros((8, 8))), "identically zero"),
    (dict(u=np.ones((2, 2, 2, 2))), "expected grid values"),
    (dict(u=np.ones((8, 8)), lo=1.0, hi=-1.0), "lo < hi"),
])
def test_bad_data_raise(bad, match):
    u = bad.pop("u")
    with pytest.raises(ValueError, match=match):
        SIMultistageRegressor(n_stages=1, n_features=4, adam_steps=1, progress=False).fit(u, **bad)


@pytest.mark.parametrize("kw, match", [
    (dict(n_stages=0), "n_stages"), (dict(n_features=0), "n_features"), (dict(loss="l1"), "loss"),
    (dict(lr_final=1.0), "lr_final"), (dict(n_stages=2, adam_steps=[1, 2, 3]), "adam_steps"),
    (dict(p=0.5), "p must"), (dict(widths=(0,)), "widths"),
])
def test_bad_settings_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        SIMultistageRegressor(**kw)


def test_bad_feature_inputs_raise():
    m = spectral_modes(np.random.default_rng(0).standard_normal((8, 8)))
    with pytest.raises(ValueError, match="exceeds"):
        m.top(10_000)
    net = SINetwork(m.top(5), widths=(4,))
    with pytest.raises(ValueError, match="expected inputs"):
        net(torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="W must"):
        si_features(torch.zeros(3, 2), torch.zeros(5, 2), torch.zeros(5), torch.zeros(5), torch.zeros(4, 1))


def test_solve_output_layer_recovers_a_known_output_layer():
    X, Y = periodic_grid(12)
    u = si_target_2d(X, Y)
    net = SINetwork(spectral_modes(u).top(20), widths=(6, 6), seed=3)
    xy = torch.tensor(np.column_stack([X.ravel(), Y.ravel()]))
    with torch.no_grad():
        net.weights[-1].normal_(generator=torch.Generator().manual_seed(1))
        net.biases[-1].fill_(0.25)
        truth = net(xy).clone()
        w_true = net.weights[-1].clone()
        net.weights[-1].zero_()
        net.biases[-1].zero_()
    loss, rank = net.solve_output_layer(xy, truth)
    assert rank == 7 and loss <= 1e-28
    assert torch.allclose(net.weights[-1], w_true, rtol=0, atol=1e-10)
    assert float(net.biases[-1]) == pytest.approx(0.25, abs=1e-10)


def test_lsgd_schedule_beats_adam_alone_and_is_recorded():
    u = np.sin(3 * np.pi * np.arange(64) / 64) + 0.3 * np.cos(np.pi * np.arange(64) / 32) ** 3
    common = dict(n_stages=1, n_features=33, widths=(20, 20), lr_final=None, seed=0, progress=False)
    adam = SIMultistageRegressor(schedule=[("adam", 400)], **common).fit(u)
    lsgd = SIMultistageRegressor(schedule=[("adam", 200), ("lsgd", 200, {"every": 10})], **common).fit(u)
    # the same number of gradient steps; the exact output layer gains ~100x here (94x seed 0, 71x seed 1)
    assert lsgd.stages_[0].rms_after < 0.1 * adam.stages_[0].rms_after
    assert [r["kind"] for r in lsgd.stages_[0].phases] == ["adam", "lsgd"]
    assert lsgd.stages_[0].phases[1]["loss_after"] < lsgd.stages_[0].phases[1]["loss_before"]
    assert adam.stages_[0].adam_steps == lsgd.stages_[0].adam_steps == 400


@pytest.mark.parametrize("schedule, match", [
    ([("adam", 10), ("vp-lm", 5)], "SI stages do not take"), ([("adam", 10), ("lm", 5)], "SI stages do not take"),
    ([("nope", 1)], "unknown phase"), ([[("adam", 1)], [("adam", 1)]], "2 stage"),
])
def test_bad_si_schedules_raise(schedule, match):
    with pytest.raises(ValueError, match=match):
        SIMultistageRegressor(n_stages=3, schedule=schedule)
    with pytest.raises(ValueError, match="hidden layers"):
        SIMultistageRegressor(n_stages=1, widths=(), schedule=[("output-lstsq",)])


# ------------------------------------------------------------- the tensor-grid path
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _random_layer(g, n_f, d, m, scale=30.0):
    B = (scale * torch.randn(n_f, d, generator=g, dtype=torch.float64)).requires_grad_()
    b = (math.pi * (2 * torch.rand(n_f, generator=g, dtype=torch.float64) - 1)).requires_grad_()
    A = torch.rand(n_f, generator=g, dtype=torch.float64)
    W = torch.randn(n_f, m, generator=g, dtype=torch.float64).requires_grad_()
    return B, b, A, W


@pytest.mark.parametrize("shape, chunk", [((24, 20), None), ((24, 20), 1), ((24, 20), 7), ((24, 20), 60),
                                          ((6, 5, 4), 3), ((6, 5, 4), None)])
def test_grid_features_equal_point_features_values_and_gradients(shape, chunk):
    g = torch.Generator().manual_seed(len(shape) + (chunk or 0))
    axes = tuple(torch.sort(2 * torch.rand(n, generator=g, dtype=torch.float64) - 1).values for n in shape)
    B, b, A, W = _random_layer(g, 300, len(shape), 7)
    x = tensor_grid_points(axes)
    X = torch.meshgrid(*axes, indexing="ij")  # the order: meshgrid "ij", flattened in C order
    assert torch.equal(x, torch.stack([t.reshape(-1) for t in X], 1))
    grid = si_grid_features(axes, B, b, A, W, chunk=chunk)
    point = si_features(x, B, b, A, W)
    assert grid.shape == point.shape
    assert _rel(grid.detach(), point.detach()) <= 1e-13
    up = torch.randn(point.shape, generator=g, dtype=torch.float64)
    for a, c in zip(torch.autograd.grad(grid, (B, b, W), up), torch.autograd.grad(point, (B, b, W), up)):
        assert _rel(a, c) <= 1e-12


def test_grid_features_gradcheck():
    g = torch.Generator().manual_seed(5)
    axes = (torch.rand(3, generator=g, dtype=torch.float64), torch.rand(4, generator=g, dtype=torch.float64))
    B, b, A, W = _random_layer(g, 3, 2, 2, scale=2.0)
    A = A.clone().requires_grad_()
    # chunk 2 splits the rows of 4 points: both kinds of block are checked
    assert torch.autograd.gradcheck(lambda *p: si_grid_features(axes, *p, chunk=2), (B, b, A, W))
    assert torch.autograd.gradcheck(lambda *p: si_grid_features(axes, *p, chunk=8), (B, b, A, W))


def test_network_grid_path_equals_point_path():
    X, Y = periodic_grid(16)
    u = si_target_2d(X, Y)
    net = SINetwork(spectral_modes(u).top(100), widths=(8, 8), seed=2)
    axes = tuple(torch.tensor(-1.0 + 2.0 * np.arange(16) / 16) for _ in range(2))
    xy = torch.tensor(np.column_stack([X.ravel(), Y.ravel()]))
    assert torch.equal(tensor_grid_points(axes), xy)
    grid, point = net.forward_grid(axes), net(xy)
    assert _rel(grid.detach(), point.detach()) <= 1e-13
    assert _rel(net(axes).detach(), point.detach()) <= 1e-13
    assert _rel(net(axes, chunked=False).detach(), point.detach()) <= 1e-13
    assert _rel(net.last_hidden_grid(axes).detach(), net.last_hidden(xy).detach()) <= 1e-13
    target = torch.tensor(u.ravel())
    # 1e-11: the gradient of b is a sum over the grid that cancels ~4000-fold here; both
    # paths are within about one rounding of its terms of a long-double reference
    for a, c in zip(torch.autograd.grad(torch.mean((grid - target) ** 2), list(net.parameters())),
                    torch.autograd.grad(torch.mean((point - target) ** 2), list(net.parameters()))):
        assert _rel(a, c) <= 1e-11


def test_regressor_trains_and_evaluates_stages_by_the_grid_path(monkeypatch):
    X, Y = periodic_grid(12)
    u = si_target_2d(X, Y)

    def no_point_path(*args, **kwargs):
        raise AssertionError("the point path was used on the training grid")

    monkeypatch.setattr(si_features_module._SIFeatureLinear, "apply", no_point_path)
    schedule = [("adam", 5), ("lbfgs", 5), ("output-lstsq",), ("lsgd", 3, {"every": 2})]
    reg = SIMultistageRegressor(n_stages=2, n_features=30, widths=(6,), schedule=schedule, seed=0,
                                progress=False).fit(u)
    monkeypatch.undo()
    xy = reg.grid_points()
    np.testing.assert_allclose(reg.predict(xy), reg.predict_grid().ravel(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("axes, match", [
    ((torch.zeros(4, dtype=torch.float64),), "expected 2 axes"),
    ((torch.zeros(4, dtype=torch.float64),) * 3, "expected 2 axes"),
    ((torch.zeros(4, 1, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)), "axis 0 must be a non-empty 1-D"),
    ((torch.zeros(4, dtype=torch.float64), torch.zeros((), dtype=torch.float64)), "axis 1 must be a non-empty 1-D"),
    ((torch.zeros(4, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)), "axis 1 must be a non-empty 1-D"),
    ((torch.zeros(4, dtype=torch.float64), [0.0, 1.0]), "axis 1 must be a non-empty 1-D"),
    (torch.zeros(4, 2, dtype=torch.float64), "tuple of 1-D"),
    ((torch.zeros(4, dtype=torch.float64), torch.zeros(3, dtype=torch.float32)), "one dtype and device"),
    ((torch.zeros(4, dtype=torch.float64, requires_grad=True), torch.zeros(3, dtype=torch.float64)),
     "no gradient with respect to the axes"),
])
def test_bad_axes_raise(axes, match):
    B, b, A, W = torch.zeros(5, 2, dtype=torch.float64), *(torch.zeros(5, dtype=torch.float64),) * 2, \
        torch.zeros(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        si_grid_features(axes, B, b, A, W)
    if "gradient" not in match:
        net = SINetwork(spectral_modes(np.random.default_rng(0).standard_normal((8, 8))).top(5), widths=(4,))
        with pytest.raises(ValueError, match=match):
            net.forward_grid(axes)
