"""The contract every driver shares: stored arguments, get_params / set_params, clone, not fitted, devices."""
import numpy as np
import pytest
import torch

from msnn import MultistagePINN, MultistageRegressor
from msnn._common import NotFittedError, count, per_stage, resolve_device
from msnn.pinn_problems import ode_3_3
from msnn.si import SIMultistageRegressor


def _estimators():
    return [
        MultistageRegressor(n_stages=2, widths=[(8, 8), (6,)], adam_steps=[5, 6], lbfgs_steps=0, seed=3),
        MultistagePINN(ode_3_3(), orders=(1,), n_stages=2, widths=(8,), adam_steps=[5, 6], gamma=[0.3, None]),
        SIMultistageRegressor(n_stages=2, n_features=[4, 5], widths=(6,), adam_steps=7,
                              schedule=[("adam", 7), ("output-lstsq",)]),
    ]


@pytest.mark.parametrize("est", _estimators(), ids=lambda e: type(e).__name__)
def test_clone_round_trips_the_constructor_arguments(est):
    # what scikit-learn's clone does: build a new estimator from get_params(), and every
    # argument must come back as the very object that was given
    params = est.get_params()
    copy = type(est)(**params)
    again = copy.get_params()
    assert set(again) == set(params)
    for name, value in params.items():
        assert again[name] is value, name
    assert not hasattr(copy, "stages_") and not hasattr(copy, "records_")


@pytest.mark.parametrize("est", _estimators(), ids=lambda e: type(e).__name__)
def test_set_params_validates_and_applies(est):
    assert est.set_params(seed=11) is est and est.get_params()["seed"] == 11
    with pytest.raises(ValueError, match="no parameter"):
        est.set_params(not_a_parameter=1)
    with pytest.raises(ValueError, match="n_stages"):
        est.set_params(n_stages=0)
    assert est.get_params()["n_stages"] == 2  # a rejected set_params changes nothing
    assert "seed=11" in repr(est)


def test_regressor_uses_settings_changed_after_construction():
    x = np.linspace(-1, 1, 64)
    reg = MultistageRegressor(n_stages=1, adam_steps=5, lbfgs_steps=0, progress=False, device="cpu")
    reg.set_params(widths=(4,))
    reg.fit(x, np.sin(3 * x))
    assert reg.networks_[0].widths == (4,)


def test_not_fitted_is_one_error_everywhere():
    est = _estimators()
    for call in (lambda: est[0].predict(np.zeros(3)), lambda: est[1].predict(np.zeros((3, 1))),
                 lambda: est[2].predict(np.zeros((3, 1)))):
        with pytest.raises(NotFittedError):
            call()
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_device_default_is_auto_everywhere():
    import inspect

    from msnn.burgers import BurgersSolution
    from msnn.ensemble import fit_ensemble
    from msnn.pinn import StagedSolution

    for obj in (MultistageRegressor, MultistagePINN, SIMultistageRegressor, BurgersSolution, StagedSolution,
                fit_ensemble):
        fn = obj.__init__ if isinstance(obj, type) else obj
        assert inspect.signature(fn).parameters["device"].default == "auto", obj.__name__
    expect = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expect and resolve_device(None).type == expect
    assert BurgersSolution(0.5).device_.type == expect and StagedSolution(1).device.type == expect
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_per_stage_and_count():
    assert per_stage(3, 2, "a") == [3, 3] and per_stage([1, 2], 2, "a") == [1, 2]
    assert per_stage((20, 20), 2, "widths", nested=True) == [(20, 20), (20, 20)]
    assert per_stage([(8,), (6, 6)], 2, "widths", nested=True) == [(8,), (6, 6)]
    with pytest.raises(ValueError, match="needs 1 or n_stages = 2 values, got 3"):
        per_stage([1, 2, 3], 2, "a")
    assert count(np.int64(4), "n") == 4
    for bad in (True, 2.0, -1, "3"):
        with pytest.raises(ValueError, match="n must be an integer >= 0"):
            count(bad, "n")
