"""Settings and inputs that cannot hurt: every setting checked at construction (and again in
fit / solve), complex input refused, normalization safe at any float64 scale."""
import pathlib
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msnn import MultistagePINN, MultistageRegressor
from msnn._common import (finite_float, flag, float64_array, integers, one_of, optional_path, positive_float,
                          positive_floats, rms)
from msnn.pinn_problems import ode_3_3
from msnn.problems import eq_2_2
from msnn.si import SIMultistageRegressor
from msnn.si_features import grid_values

NAN, INF = float("nan"), float("inf")
X = np.linspace(-1, 1, 40)
Y = eq_2_2(X)


# ------------------------------------------------------------------ the validators
def test_shared_validators_accept_what_they_should():
    assert positive_float(np.float32(0.5), "lr") == 0.5 and positive_float(3, "lr") == 3.0
    assert finite_float(0, "margin", minimum=0.0) == 0.0
    assert one_of("sin", "act", ("sin", "tanh")) == "sin"
    assert one_of(torch.float64, "dtype", (torch.float64, torch.float32)) is torch.float64
    assert integers((np.int64(4), 3), "widths", 1) == (4, 3)
    assert integers(np.array([5, 6]), "widths", 1) == (5, 6)
    assert integers((), "widths", 1) == ()
    assert flag(np.bool_(True), "verbose") is True and flag(None, "progress", allow_none=True) is None
    assert optional_path(None, "checkpoint") is None
    assert optional_path(pathlib.Path("a/b.pt"), "checkpoint") == "a/b.pt"
    assert positive_floats(2, "kappa_hat") == [2.0] and positive_floats([1, np.float32(2)], "kappa_hat") == [1.0, 2.0]


@pytest.mark.parametrize("call, match", [
    (lambda: positive_float(0.0, "lr"), r"lr must be a finite number > 0, got 0\.0"),
    (lambda: positive_float(NAN, "lr"), "lr must be a finite number > 0, got nan"),
    (lambda: positive_float(INF, "lr"), "lr must be a finite number > 0, got inf"),
    (lambda: positive_float(True, "lr"), "lr must be a finite number > 0, got True"),
    (lambda: positive_float("0.1", "lr"), "lr must be a finite number > 0, got '0.1'"),
    (lambda: positive_float(1j, "lr"), "lr must be a finite number > 0"),
    (lambda: finite_float(-1.0, "margin", minimum=0.0), "margin must be a finite number >= 0"),
    (lambda: finite_float(2.0, "gamma", above=0.0, below=1.0), r"gamma must be a finite number in \(0, 1\)"),
    (lambda: one_of("relu", "higher_activation", ("sin", "tanh")),
     "higher_activation must be one of 'sin', 'tanh', got 'relu'"),
    (lambda: one_of(["sin"], "higher_activation", ("sin", "tanh")), "higher_activation must be one of"),
    (lambda: one_of(np.array([1, 2]), "init", ("a", "b")), "init must be one of"),
    (lambda: integers((2.7,), "widths", 1), r"widths must be a sequence of integers >= 1, got \(2\.7,\)"),
    (lambda: integers((True, 3), "widths", 1), "widths must be a sequence of integers >= 1"),
    (lambda: integers(20, "widths", 1), "widths must be a sequence of integers >= 1, got 20"),
    (lambda: integers((0,), "widths", 1), "widths must be a sequence of integers >= 1"),
    (lambda: integers((), "widths", 1, nonempty=True), "widths must be a non-empty sequence of integers >= 1"),
    (lambda: flag("yes", "verbose"), "verbose must be True or False, got 'yes'"),
    (lambda: flag(1, "verbose"), "verbose must be True or False, got 1"),
    (lambda: flag("yes", "progress", allow_none=True), "progress must be None, True or False, got 'yes'"),
    (lambda: optional_path(3, "checkpoint"), "checkpoint must be None or a file path"),
    (lambda: optional_path("", "checkpoint"), "checkpoint must be None or a file path"),
    (lambda: positive_floats([], "kappa_hat"), "kappa_hat must be a finite number > 0 or a non-empty list"),
    (lambda: positive_floats([1.0, NAN], "kappa_hat"), "kappa_hat must be"),
    (lambda: positive_floats([[1.0]], "kappa_hat"), "kappa_hat must be"),
])
def test_shared_validators_name_the_parameter_the_value_and_what_is_accepted(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- the estimators
@pytest.mark.parametrize("kw, match", [
    (dict(higher_activation="relu"), "higher_activation must be one of 'sin', 'tanh', got 'relu'"),
    (dict(n_stages=2, kappa_hat=[NAN]), "kappa_hat"),
    (dict(n_stages=2, kappa_hat=[-3.0]), "kappa_hat"),
    (dict(n_stages=2, kappa_hat=[[1.0, INF]]), "kappa_hat"),
    (dict(n_stages=2, kappa_hat=5.0), "kappa_hat"),
    (dict(n_stages=2, kappa_hat=["x"]), "kappa_hat"),
    (dict(widths=(2.7,)), r"widths must be a .*integers >= 1, got \(2\.7,\)"),
    (dict(widths=(True, 4)), "widths"),
    (dict(widths=20), "widths"),
    (dict(widths=()), "widths"),
    (dict(n_stages=2, widths=[(4,), (2.5,)]), "widths"),
    (dict(seed="x"), "seed must be an integer >= 0, got 'x'"),
    (dict(seed=1.5), "seed must be an integer"),
    (dict(seed=True), "seed must be an integer"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(n_stages=True), "n_stages must be an integer"),
    (dict(lr=INF), "lr must be a finite number > 0, got inf"),
    (dict(lr=NAN), "lr must be a finite number > 0"),
    (dict(lr="0.1"), "lr must be a finite number > 0"),
    (dict(kappa_factor=INF), "kappa_factor must be a finite number > 0"),
    (dict(target_rms=NAN), "target_rms must be None or a finite number >= 0"),
    (dict(target_rms="small"), "target_rms must be None or a finite number >= 0"),
    (dict(init="he"), "init must be one of 'xavier_normal', 'xavier_truncated', got 'he'"),
    (dict(dtype="float64"), "dtype must be one of torch.float64, torch.float32"),
    (dict(dtype=torch.float16), "dtype must be one of"),
    (dict(device="tpu"), "device must be"),
    (dict(device=True), "device must be"),
    (dict(progress="yes"), "progress must be None, True or False"),
    (dict(verbose="no"), "verbose must be True or False"),
    (dict(verbose=None), "verbose must be True or False"),
    (dict(checkpoint=3), "checkpoint must be None or a file path"),
    (dict(precision_steps=2.5), "precision_steps must be an integer"),
    (dict(adam_steps=5.0), "adam_steps must be an integer"),
    (dict(stage_points="all"), "stage_points must be one of 'auto', None, got 'all'"),
])
def test_regressor_refuses_bad_settings_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        MultistageRegressor(**kw)


def test_regressor_refuses_a_setting_changed_after_construction_before_any_training():
    reg = MultistageRegressor(n_stages=2, adam_steps=3, lbfgs_steps=0, device="cpu", progress=False)
    reg.higher_activation = "relu"  # set behind the constructor's back: fit checks again, before stage 1
    with pytest.raises(ValueError, match="higher_activation"):
        reg.fit(X, Y)
    assert not hasattr(reg, "stages_")
    with pytest.raises(ValueError, match="kappa_hat"):
        reg.set_params(higher_activation="sin", kappa_hat=[NAN])


def test_regressor_kappa_hat_must_match_the_input_dimension():
    reg = MultistageRegressor(n_stages=2, adam_steps=3, lbfgs_steps=0, kappa_hat=[[3.0, 4.0, 5.0]], device="cpu",
                              progress=False)
    g = np.linspace(-1, 1, 5)
    x2 = np.stack([a.ravel() for a in np.meshgrid(g, g)], 1)
    with pytest.raises(ValueError, match="kappa_hat"):
        reg.fit(x2, x2[:, 0] + x2[:, 1] ** 2)
    assert not hasattr(reg, "stages_")


def test_regressor_accepts_numpy_scalars_and_paths(tmp_path):
    reg = MultistageRegressor(n_stages=np.int64(2), widths=(np.int32(4), 3), adam_steps=np.int64(3), lbfgs_steps=0,
                              seed=np.int64(3), kappa_hat=[np.float32(3.0)], lr=np.float32(1e-3),
                              kappa_factor=np.float64(2.0), target_rms=0, progress=np.bool_(False),
                              verbose=np.bool_(False), checkpoint=tmp_path / "ck.pt", device="cpu")
    assert reg._widths == [(4, 3), (4, 3)] and reg._seed == 3 and reg._n == 2
    assert MultistageRegressor(n_stages=2, kappa_hat=np.array([[2.0]])).kappa_hat.shape == (1, 1)
    assert MultistageRegressor(n_stages=3, kappa_hat=[[1.0, 2.0], 3])._n == 3  # per axis, or one for all axes


@pytest.mark.parametrize("kw, match", [
    (dict(widths=(2.7,)), r"widths must be a sequence of integers >= 1, got \(2\.7,\)"),
    (dict(widths=30), "widths"),
    (dict(n_features=2.5), "n_features must be an integer"),
    (dict(n_features=True), "n_features must be an integer"),
    (dict(lr=INF), "lr must be a finite number > 0"),
    (dict(lr_final=NAN), "lr_final"),
    (dict(lr_final="1e-5"), "lr_final"),
    (dict(p=INF), "p must be a finite number >= 1"),
    (dict(p="2"), "p must be a finite number >= 1"),
    (dict(loss="l1"), "loss must be one of 'mse', 'lp', got 'l1'"),
    (dict(target_rms=INF), "target_rms must be None or a finite number >= 0"),
    (dict(dtype=torch.float16), "dtype must be one of"),
    (dict(device="tpu"), "device must be"),
    (dict(seed="x"), "seed must be an integer >= 0, got 'x'"),
    (dict(max_chunk_elements=1.5), "max_chunk_elements must be an integer"),
    (dict(checkpoint=3), "checkpoint must be None or a file path"),
    (dict(progress="yes"), "progress must be None, True or False"),
    (dict(verbose=1), "verbose must be True or False"),
    (dict(adam_steps=2.5), "adam_steps must be an integer"),
])
def test_si_refuses_bad_settings_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        SIMultistageRegressor(**kw)


def test_si_accepts_numpy_scalars_and_no_hidden_layers():
    si = SIMultistageRegressor(n_stages=np.int64(2), n_features=np.int32(4), widths=(np.int64(3),), seed=np.int64(1),
                               lr=np.float32(1e-3), progress=np.bool_(False), verbose=False)
    assert si._widths == (3,) and si._seed == 1 and si._n_features == [4, 4]
    assert SIMultistageRegressor(widths=())._widths == ()


def _pinn(**kw):
    opts = dict(orders=(1,), n_stages=2, widths=(8,), adam_steps=5, device="cpu", progress=False)
    opts.update(kw)
    return MultistagePINN(ode_3_3(), **opts)


@pytest.mark.parametrize("kw, match", [
    (dict(widths=(2.7,)), r"widths must be a .*integers >= 1, got \(2\.7,\)"),
    (dict(widths=8), "widths"),
    (dict(seed="x"), "seed must be an integer >= 0, got 'x'"),
    (dict(seed=0.5), "seed must be an integer"),
    (dict(orders=(1.5,)), "orders"),
    (dict(orders=(True,)), "orders"),
    (dict(eps_beta="1"), "eps_beta must be a finite number > 0"),
    (dict(lr=INF), "lr must be a finite number > 0"),
    (dict(lr=[1e-3, NAN]), "lr must be a finite number > 0"),
    (dict(lr_schedule=3), "lr_schedule must be None or a callable"),
    (dict(n_collocation=2.5), "n_collocation must be an integer"),
    (dict(resample_every=True), "resample_every must be an integer"),
    (dict(sampler="sobol"), "sampler must be one of 'lhs', 'uniform', got 'sobol'"),
    (dict(margin=NAN), "margin must be a finite number >= 0"),
    (dict(margin=-0.1), "margin must be a finite number >= 0"),
    (dict(extra_points=[[NAN]]), "extra_points"),
    (dict(extra_points=[[0.0, 1.0]]), "extra_points"),
    (dict(extra_points="ends"), "extra_points"),
    (dict(gamma=NAN), "gamma must lie in"),
    (dict(gpinn="yes"), "gpinn must be True or False"),
    (dict(gamma_g=INF), "gamma_g must be None or a finite number >= 0"),
    (dict(gamma_g="x"), "gamma_g must be None or a finite number >= 0"),
    (dict(eps0=INF), "eps0 must be a finite number > 0"),
    (dict(kappa_hat0=NAN), "kappa_hat0"),
    (dict(kappa_hat0=-1.0), "kappa_hat0"),
    (dict(kappa_hat0=[1.0, 2.0]), "kappa_hat0"),
    (dict(factor=INF), "factor must be a finite number > 1"),
    (dict(n_grid=100.5), "n_grid must be an integer"),
    (dict(pad=True), "pad must be an integer"),
    (dict(algorithm3_n0=600.0), "algorithm3_n0 must be an integer"),
    (dict(init="he"), "init must be one of 'xavier_normal', 'xavier_truncated', got 'he'"),
    (dict(dtype="float64"), "dtype must be torch.float64, got 'float64'"),
    (dict(device="tpu"), "device must be"),
    (dict(progress="yes"), "progress must be None, True or False"),
    (dict(checkpoint=3), "checkpoint must be None or a file path"),
])
def test_pinn_refuses_bad_settings_at_construction(kw, match):
    with pytest.raises(ValueError, match=match):
        _pinn(**kw)


def test_pinn_accepts_numpy_scalars():
    s = _pinn(n_stages=np.int64(2), widths=(np.int32(8),), seed=np.int64(2), lr=np.float32(1e-3),
              kappa_hat0=np.float64(2.0), margin=np.float32(0.01), extra_points=np.array([[-1.0], [1.0]]),
              gpinn=[np.bool_(True), False], orders=np.array([1]))
    assert s._widths == [(8,), (8,)] and s._seed == 2 and s._gpinn == [True, False]


# ------------------------------------------------------------------- complex input
@pytest.mark.parametrize("value", [np.array([1.0, 2.0 + 1j]), np.array([1.0, 2.0], dtype=complex),
                                   torch.tensor([1.0 + 0j, 2.0]), [1.0, 2j]])
def test_complex_arrays_are_refused(value):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "discards the imaginary part" is not an answer
        with pytest.raises(ValueError, match="y is complex"):
            float64_array(value, "y")


def test_complex_data_are_refused_by_the_drivers():
    reg = MultistageRegressor(n_stages=1, adam_steps=1, lbfgs_steps=0, device="cpu", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="y is complex"):
            reg.fit(X, Y + 1e-3j)
        with pytest.raises(ValueError, match="x is complex"):
            reg.fit(X.astype(complex), Y)
        with pytest.raises(ValueError, match="complex"):
            grid_values(np.ones((8, 8), dtype=complex))
        si = SIMultistageRegressor(n_stages=1, n_features=4, adam_steps=1, device="cpu", progress=False)
        with pytest.raises(ValueError, match="complex"):
            si.fit(np.ones((8, 8)) * (1 + 1j))
        with pytest.raises(ValueError, match="extra_points is complex"):
            _pinn(extra_points=np.array([[-1.0 + 0j], [1.0]]))


# --------------------------------------------------------------- extreme scales
@pytest.mark.parametrize("scale", [1.0, 3.7e-5, 1e12, 2.0 ** -60])
def test_rms_is_the_plain_formula_on_ordinary_data(scale):
    a = np.random.default_rng(1).standard_normal(1001) * scale
    assert rms(a) == float(np.sqrt(np.mean(a ** 2)))  # to the last bit: fitted numbers do not move
    assert rms(a.reshape(7, 143)) == float(np.sqrt(np.mean(a ** 2)))


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300, 1e-300, 1e160, 1e-160])
def test_rms_is_safe_at_any_scale(scale):
    a = np.random.default_rng(2).standard_normal(1001)
    assert rms(a * scale) == pytest.approx(scale * rms(a), rel=1e-14)
    assert rms(np.zeros(5)) == 0.0
    assert rms(np.array([5e-324, -5e-324])) == 5e-324
    assert rms(np.array([1.7e308, -1.7e308])) == pytest.approx(1.7e308, rel=1e-15)


def _tiny_fit(y):
    reg = MultistageRegressor(n_stages=2, widths=(6,), adam_steps=[40, 30], lbfgs_steps=[10, 10], kappa_hat=[6.0],
                              seed=0, device="cpu", progress=False)
    return reg.fit(X, y)


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300, 1e-300])
def test_a_fit_of_scaled_data_is_the_scaled_fit(scale):
    plain = _tiny_fit(Y)
    scaled = _tiny_fit(Y * scale)
    assert len(scaled.stages_) == len(plain.stages_) == 2
    xe = np.linspace(-1, 1, 97)
    want = scale * plain.predict(xe)
    assert np.max(np.abs(scaled.predict(xe) - want)) <= 1e-12 * np.max(np.abs(want))  # relative 1e-12
    assert scaled.y_scale_ == pytest.approx(scale * plain.y_scale_, rel=1e-14)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_an_si_fit_of_scaled_data_is_the_scaled_fit(scale):
    g = -1 + 2 * np.arange(8) / 8
    u = np.sin(np.pi * g)[:, None] * np.cos(np.pi * g)[None, :] + 0.3

    def fit(v):
        return SIMultistageRegressor(n_stages=2, n_features=4, widths=(4,), adam_steps=20, seed=0, device="cpu",
                                     progress=False).fit(v)

    plain, scaled = fit(u), fit(u * scale)
    assert len(scaled.stages_) == len(plain.stages_) == 2
    want = scale * plain.predict_grid()
    # the normalized data differ in their last bits (u * scale rounds); Adam's steps amplify that a little
    assert np.max(np.abs(scaled.predict_grid() - want)) <= 1e-10 * np.max(np.abs(want))
    assert scaled.eps0_ == pytest.approx(scale * plain.eps0_, rel=1e-14)


# ----------------------------------------------------------- property-based
_DTYPES = ("float64", "float64", "float64", "object", "float32", "float16", "int64", "int32", "complex128")
_SHAPES = ("n", "n", "n", "n1", "n2", "n3", "1n", "nn")
#: decades of the data: the extremes (where a plain RMS overflows or underflows) often, any decade sometimes
_DECADES = st.one_of(st.sampled_from((-300, -200, -160, 0, 160, 200, 300)), st.integers(-300, 300))


def _arrays(draw, n: int, kind: str):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    scale = 10.0 ** draw(_DECADES)
    shape = {"n": (n,), "n1": (n, 1), "n2": (n, 2), "n3": (n, 3), "1n": (1, n), "nn": (n, n)}[kind]
    a = rng.uniform(-1, 1, shape) * scale
    dtype = draw(st.sampled_from(_DTYPES))
    with np.errstate(all="ignore"):
        if dtype.startswith("int"):
            a = np.round(rng.uniform(-100, 100, shape)).astype(dtype)
        elif dtype == "object":
            a = a.astype(object)
        else:
            a = a.astype(dtype)
    place = draw(st.sampled_from(("none", "none", "none", "none", "none", "nan", "inf", "-inf")))
    if place != "none" and a.dtype.kind in "fc":
        a.flat[draw(st.integers(0, a.size - 1))] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[place]
    return a


@st.composite
def _data(draw):
    n = draw(st.integers(1, 40))
    x = _arrays(draw, n, draw(st.sampled_from(_SHAPES)))
    y = _arrays(draw, draw(st.sampled_from((n, n, n, n + 1))), draw(st.sampled_from(("n", "n", "n", "n1", "n2"))))
    return x, y


def _fittable(x, y) -> bool:
    """What MultistageRegressor must fit (anything else it must refuse with a ValueError): real
    finite values, x of shape (N,) or (N, d) with two distinct values on every axis, y of shape
    (N,) or (N, 1) and not all zero, N >= 4."""
    if np.iscomplexobj(x) or np.iscomplexobj(y):
        return False
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return False
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    return (x.ndim == 2 and y.ndim == 1 and x.shape[0] == y.shape[0] >= 4
            and bool(np.all(x.max(axis=0) > x.min(axis=0))) and bool(np.any(y != 0)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_data())
def test_any_data_give_a_clear_error_or_a_sound_fit(data):
    x, y = data
    reg = MultistageRegressor(n_stages=1, widths=(4,), schedule=[("adam", 5)], progress=False, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        try:
            reg.fit(x, y)
        except ValueError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, msg
            assert not _fittable(x, y), f"fittable data refused: {msg}"
            return
    assert _fittable(x, y)
    assert len(reg.stages_) == 1, reg.stopped_
    pred = reg.predict(x)
    yf = np.asarray(y, dtype=np.float64).reshape(-1)
    assert pred.shape == yf.shape and np.all(np.isfinite(pred))
    m = float(np.max(np.abs(yf)))
    err = np.sqrt(np.mean((pred / m - yf / m) ** 2) / np.mean((yf / m) ** 2))  # relative training error, any scale
    assert err < 10.0, err
