"""MultistageRegressor: Algorithm 1's bookkeeping, its gain over one stage, and input validation."""
import math
import warnings

import numpy as np
import pytest
import torch

from msnn import Float32Warning, MultistageRegressor, SparseDataWarning, StageWarning
from msnn.regression import choose_kappa_hat
from msnn.problems import eq_2_2

X = np.linspace(-1, 1, 200)
Y = eq_2_2(X)


@pytest.fixture(scope="module")
def two_stage():
    return MultistageRegressor(n_stages=2, adam_steps=200, lbfgs_steps=600, seed=0, progress=False).fit(X, Y)


def test_two_stages_beat_one_by_100x_at_equal_budget(two_stage):
    one = MultistageRegressor(n_stages=1, adam_steps=400, lbfgs_steps=1200, seed=0, progress=False).fit(X, Y)
    xe = np.linspace(-1, 1, 1001)
    ye = eq_2_2(xe)
    assert two_stage.rms_error(xe, ye) * 100 <= one.rms_error(xe, ye)


def test_model_is_sum_of_stages(two_stage):
    xe = np.linspace(-1, 1, 333)
    parts = two_stage.predict_stages(xe)
    assert parts.shape == (2, 333)
    np.testing.assert_allclose(two_stage.predict(xe), parts.sum(0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(two_stage.predict(xe, n_stages=1), parts[0], rtol=0, atol=0)


def test_long_double_prediction_is_the_same_model_without_float64_round_off(two_stage):
    from msnn.phases import evaluate

    xe = np.linspace(-1, 1, 333)
    ld = two_stage.predict_longdouble(xe)
    assert ld.dtype == np.longdouble and ld.shape == (333,)
    # the same weights: float64 and long double agree to float64's rounding of an O(1) sum
    np.testing.assert_allclose(two_stage.predict(xe), ld.astype(np.float64), rtol=0, atol=1e-14)
    # stage by stage, the sum of eps_j * y_scale * u_j with u_j from phases.evaluate; X spans [-1, 1],
    # so the normalization is the identity
    parts = [evaluate(net, xe.astype(np.longdouble)) * (np.longdouble(r.eps) * np.longdouble(two_stage.y_scale_))
             for net, r in zip(two_stage.networks_, two_stage.stages_)]
    extended = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
    tol = 1e-17 if extended else 1e-15
    np.testing.assert_allclose(two_stage.predict_longdouble(xe, n_stages=1).astype(float),
                               parts[0].astype(float), rtol=0, atol=tol)
    assert float(np.max(np.abs(ld - parts[0] - parts[1]))) <= tol
    if extended:  # the evaluations differ: float64 rounds, long double (almost) does not
        assert 0 < float(np.max(np.abs(two_stage.predict(xe) - ld))) < 1e-14
    with pytest.raises(ValueError, match="n_stages must be an integer in"):
        two_stage.predict_longdouble(xe, n_stages=3)
    with pytest.raises(ValueError, match="features"):
        two_stage.predict_longdouble(np.zeros((4, 2)))
    with pytest.raises(Exception, match="fit"):
        MultistageRegressor(n_stages=1).predict_longdouble(xe)


def test_eq_2_2_in_long_double_against_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    xs = np.linspace(-1, 1, 41)
    exact = np.array([float(mpmath.sin(2 * mpmath.mpf(v) + 1) + mpmath.mpf("0.2") * mpmath.exp(mpmath.mpf("1.3") * mpmath.mpf(v)))
                      for v in xs])
    # float64: within 4 ulps of the exact value at the same (float64) x; |u_g| < 2
    assert np.max(np.abs(eq_2_2(xs) - exact)) <= 4 * 2 * np.finfo(float).eps
    ld = eq_2_2(xs, np.longdouble)
    assert ld.dtype == np.longdouble
    if np.finfo(np.longdouble).eps < np.finfo(np.float64).eps:  # extended precision: 30 digits from mpmath
        exact_ld = np.array([mpmath.nstr(mpmath.sin(2 * mpmath.mpf(v) + 1) + mpmath.mpf("0.2")
                                         * mpmath.exp(mpmath.mpf("1.3") * mpmath.mpf(v)), 30) for v in xs])
        err = np.abs(ld - np.array([np.longdouble(e) for e in exact_ld]))
        assert float(err.max()) <= 1e-18


def test_stage_bookkeeping_eq_2_3_to_2_5(two_stage):
    s0, s1 = two_stage.stages_
    assert s0.eps == pytest.approx(1.0)  # eps_0 = 1 after normalization
    assert s0.activation == "tanh" and s1.activation == "sin"
    # eps_1 is the RMS of the residue of stage 0 at the training points
    e1 = Y - two_stage.predict(X, n_stages=1)
    assert s1.eps_data == pytest.approx(np.sqrt(np.mean(e1 ** 2)), rel=1e-10)
    assert s1.eps < s0.eps and s1.rms_after < s1.eps  # each stage's residue shrinks
    assert s1.f_d[0] > 0 and s1.kappa_hat[0] == pytest.approx(choose_kappa_hat(s1.f_d[0], 200))
    assert len(s1.loss_history) == s1.adam_steps + s1.lbfgs_evaluations
    assert two_stage.predict(X).dtype == np.float64


def test_choose_kappa_hat_window():
    assert choose_kappa_hat(5.5, 300) == pytest.approx(2 * math.pi * 5.5)  # inside (pi f_d, N/6)
    assert choose_kappa_hat(10.0, 300) == pytest.approx(50.0)  # capped at N_d / 6
    assert choose_kappa_hat(50.0, 300) == pytest.approx(math.pi * 50)  # never below pi f_d


def test_torch_inputs_and_2d_grid():
    g = np.linspace(-1, 1, 12)
    Xg, Yg = np.meshgrid(g, g, indexing="ij")
    xy = torch.tensor(np.column_stack([Xg.ravel(), Yg.ravel()]))
    z = torch.tensor(np.sin(Xg + 2 * Yg).ravel())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparseDataWarning)
        reg = MultistageRegressor(n_stages=2, adam_steps=50, lbfgs_steps=50, progress=False).fit(xy, z)
    assert reg.grid_kind_ == "uniform"
    s1 = reg.stages_[1]
    assert len(s1.f_d) == 2 and len(s1.kappa_hat) == 2
    # one kappa_hat for both axes, from the larger per-axis frequency (never ~0 on an axis)
    assert s1.kappa_hat[0] == s1.kappa_hat[1] >= math.pi * max(s1.f_d) * (1 - 1e-12)
    assert reg.predict(xy[:5]).shape == (5,)


def test_scattered_inputs_work():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 150)
    reg = MultistageRegressor(n_stages=2, adam_steps=50, lbfgs_steps=100, progress=False).fit(x, eq_2_2(x))
    assert reg.grid_kind_ == "scattered" and reg.stages_[1].f_d[0] > 0


def test_sparse_data_warning():
    x = np.linspace(-1, 1, 40)
    y = np.sin(2 * np.pi * 6 * x)  # 40 < 6 pi 6 = 113
    with pytest.warns(SparseDataWarning, match=r"stage 2: .*eq. 2.10") as rec:
        MultistageRegressor(n_stages=2, adam_steps=20, lbfgs_steps=0, progress=False).fit(x, y)
    assert len([w for w in rec if issubclass(w.category, SparseDataWarning)]) == 1


def test_sparse_data_warning_is_said_once_for_every_axis():
    g = np.linspace(-1, 1, 12)
    X2, Y2 = np.meshgrid(g, g, indexing="ij")
    x = np.stack([X2.ravel(), Y2.ravel()], 1)
    y = np.sin(2 * np.pi * 1.5 * x[:, 0]) * np.sin(2 * np.pi * 1.5 * x[:, 1])  # 12 < 6 pi 1.4 on both axes
    with pytest.warns(SparseDataWarning, match="axis 1: .*axis 2: ") as rec:
        MultistageRegressor(n_stages=2, widths=(6,), adam_steps=10, lbfgs_steps=0, progress=False).fit(x, y)
    assert len([w for w in rec if issubclass(w.category, SparseDataWarning)]) == 1


def test_scattered_points_in_three_dimensions_fit_when_kappa_hat_is_given():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 3))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    reg = MultistageRegressor(n_stages=2, widths=(8,), adam_steps=30, lbfgs_steps=10, kappa_hat=[3.0],
                              progress=False).fit(x, y)
    assert len(reg.stages_) == 2 and reg.stages_[1].f_d is None and reg.stages_[1].kappa_hat == [3.0] * 3
    with pytest.raises(ValueError, match="pass kappa_hat explicitly"):  # without it, no frequency estimate in 3D
        MultistageRegressor(n_stages=2, widths=(8,), adam_steps=30, lbfgs_steps=10, progress=False).fit(x, y)


def test_float32_allowed_with_warning():
    with pytest.warns(Float32Warning, match="1e-7"):
        reg = MultistageRegressor(n_stages=1, adam_steps=10, lbfgs_steps=0, dtype=torch.float32, progress=False)
    reg.fit(X, Y)
    assert reg.networks_[0].dtype == torch.float32 and reg.predict(X).dtype == np.float64


def _no_training(*args, **kwargs):
    raise AssertionError("a stage was trained again instead of being resumed")


def test_checkpoint_resume(tmp_path, monkeypatch):
    import msnn.regression as R

    ck = tmp_path / "ck.pt"
    a = MultistageRegressor(n_stages=2, adam_steps=30, lbfgs_steps=30, progress=False, checkpoint=ck).fit(X, Y)
    monkeypatch.setattr(R, "train", _no_training)
    monkeypatch.setattr(R, "run_phases", _no_training)
    b = MultistageRegressor(n_stages=2, adam_steps=30, lbfgs_steps=30, progress=False, checkpoint=ck).fit(X, Y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert [s.final_loss for s in a.stages_] == [s.final_loss for s in b.stages_]
    # other settings: the checkpoint is not used (and says so), and training runs
    with pytest.warns(UserWarning, match="other data or settings"), pytest.raises(AssertionError, match="trained again"):
        MultistageRegressor(n_stages=2, adam_steps=31, lbfgs_steps=30, progress=False, checkpoint=ck).fit(X, Y)


def _grid(n):
    g = np.linspace(-1, 1, n)
    a, b = np.meshgrid(g, g, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], 1)


def test_a_2d_grid_is_judged_on_points_no_stage_trained_on():
    x = _grid(16)
    y = np.exp(-x[:, 0] ** 2) * np.sin(2 * x[:, 0] + x[:, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SparseDataWarning, StageWarning))
        reg = MultistageRegressor(n_stages=2, widths=(10, 10), precision_steps=30, seed=0, progress=False).fit(x, y)
    held = round(0.1 * len(x))  # 10 % of the points, none on the edge of the square
    for r in reg.stages_:
        assert r.n_heldout == held and r.n_train == len(x) - held
        # stage 1 starts from y itself: RMS(y) / RMS(y) on the held-out points is O(1)
        assert 0 < r.heldout_after < r.heldout_before and r.heldout_gain == r.heldout_before / r.heldout_after
    assert 0.3 < reg.stages_[0].heldout_before < 3
    # the held-out error after stage 1 is the error of the fit at points it never saw
    idx = reg._heldout[1]
    assert np.all(np.abs(x[idx]) < 1)
    err = np.sqrt(np.mean((y[idx] - reg.predict(x[idx], n_stages=1)) ** 2)) / np.sqrt(np.mean(y ** 2))
    assert err == pytest.approx(reg.stages_[0].heldout_after, rel=1e-9)


def test_noisy_data_stop_where_stages_gain_nothing_off_the_points_and_say_so():
    rng = np.random.default_rng(3)
    x = np.linspace(-1, 1, 300)
    y = np.sin(3 * x) + 1e-3 * rng.standard_normal(x.size)  # the noise sets the best error: 1e-3
    with pytest.warns(StageWarning, match="did not train on") as caught:
        reg = MultistageRegressor(n_stages=4, widths=(16, 16), precision_steps=60, seed=0, progress=False).fit(x, y)
    assert len([w for w in caught if issubclass(w.category, StageWarning)]) == 1
    assert len(reg.stages_) < 4 and "did not train on" in reg.stopped_
    last = reg.stages_[-1]
    assert last.index > 0 and (last.heldout_gain < 2 or last.phases[-1]["kind"] == "rejected")
    # no kept stage made the error off the training points worse
    assert all(r.heldout_after <= r.heldout_before for r in reg.stages_)


def test_a_first_stage_starts_from_the_data_spectrum_when_its_energy_is_at_a_high_frequency():
    x = np.linspace(-1, 1, 400)
    y = np.sin(2 * np.pi * 3 * x + 0.3)  # 3 cycles per unit: a tanh network's spectral bias leaves it
    fit = dict(n_stages=1, widths=(20,), schedule=[("adam", 200), ("output-lstsq",)], seed=0, progress=False)
    auto = MultistageRegressor(**fit).fit(x, y).stages_[0]
    assert auto.activation == "sin" and auto.f_d[0] == pytest.approx(3, abs=0.02)  # the FFT peak of the sine
    assert auto.kappa_hat == [choose_kappa_hat(auto.f_d[0], 400)]
    tanh = MultistageRegressor(first_stage="tanh", **fit).fit(x, y).stages_[0]
    assert tanh.activation == "tanh" and tanh.f_d is None
    # at the same budget the sine start fits the target, the tanh start does not
    assert auto.rms_after < 0.02 and tanh.rms_after > 0.5
    # a slow target (eq. 2.2's f_d is 0.5) starts as the papers do
    low = MultistageRegressor(**fit).fit(X, Y).stages_[0]
    assert low.activation == "tanh" and low.f_d is None


def test_a_first_stage_that_gained_little_does_not_end_the_fit():
    """A tanh stage 1 on a fast target lowers the held-out error little; stage 2, set up from the
    residue's spectrum, is the one that fits it, so the gain rule judges stages 2, 3, ... only."""
    x = np.linspace(-1, 1, 400)
    y = np.sin(2 * np.pi * 5 * x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SparseDataWarning, StageWarning))
        reg = MultistageRegressor(n_stages=2, widths=(20,), schedule=[("adam", 100), ("output-lstsq",)],
                                  first_stage="tanh", seed=0, progress=False).fit(x, y)
    assert reg.stages_[0].heldout_gain < 2 and len(reg.stages_) == 2  # stage 1 gained nothing (or was rejected)
    assert reg.stages_[1].activation == "sin"


def test_holdout_zero_trains_every_stage_on_every_point():
    x = _grid(12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparseDataWarning)
        reg = MultistageRegressor(n_stages=1, widths=(6,), precision_steps=5, holdout=0, progress=False).fit(
            x, np.sin(x[:, 0] + x[:, 1]))
    r = reg.stages_[0]
    assert r.n_train == len(x) and r.n_heldout == 0 and math.isnan(r.heldout_gain)


@pytest.mark.parametrize("kw,msg", [
    (dict(holdout=0.5), r"holdout must lie in \[0, 0.5\)"),
    (dict(holdout=-0.1), "holdout"),
    (dict(min_gain=0.5), "min_gain"),
    (dict(first_stage="relu"), "first_stage"),
    (dict(sin_above=0), "sin_above"),
    (dict(n_stages=0), "n_stages"),
    (dict(n_stages=1.5), "n_stages"),
    (dict(adam_steps=-1), "adam_steps"),
    (dict(lbfgs_steps=-5), "lbfgs_steps"),
    (dict(n_stages=2, adam_steps=[1, 2, 3]), "adam_steps needs 1 or n_stages = 2 values, got 3"),
    (dict(lr=0), "lr"),
    (dict(dtype=torch.float16), "dtype"),
    (dict(device="tpu"), "device"),
])
def test_bad_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        MultistageRegressor(**kw)


@pytest.mark.parametrize("x,y,msg", [
    (X, np.where(X > 0.5, np.nan, Y), "NaN or inf"),
    (np.where(X > 0.5, np.inf, X), Y, "NaN or inf"),
    (X[:-1], Y, "points but y has"),
    (np.array([]), np.array([]), "empty"),
    (np.zeros(20), np.ones(20), "distinct values"),
    (X, np.zeros_like(X), "identically zero"),
    (X, np.stack([Y, Y], 1), "shape"),
])
def test_bad_data(x, y, msg):
    with pytest.raises(ValueError, match=msg):
        MultistageRegressor(n_stages=1, adam_steps=1, lbfgs_steps=0, progress=False).fit(x, y)


def test_predict_before_fit_and_wrong_features(two_stage):
    from msnn._common import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        MultistageRegressor().predict(X)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    with pytest.raises(ValueError, match="features"):
        two_stage.predict(np.zeros((3, 2)))


def test_power_law_points_are_the_residues_of_every_stage(two_stage):
    from msnn import dominant_frequency

    eps, fd = two_stage.power_law_points(X, Y)
    # the residue stage 2 was built from, then the one left after stage 2
    assert eps.shape == fd.shape == (2,)
    assert eps[0] == two_stage.stages_[1].eps_data and fd[0] == two_stage.stages_[1].f_d[0]
    assert eps[1] == pytest.approx(two_stage.rms_error(X, Y), rel=1e-15)
    assert fd[1] == dominant_frequency(Y - two_stage.predict(X), X[1] - X[0])
    with pytest.raises(ValueError, match="uniform 1D grid"):
        two_stage.power_law_points(np.zeros((5, 2)), np.zeros(5))
