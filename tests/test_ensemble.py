"""fit_ensemble: batched members equal single networks; per-member kappa_hat; bad input."""
import numpy as np
import pytest
import torch

from msnn.ensemble import fit_ensemble
from msnn.networks import StageNetwork
from msnn.problems import eq_2_2, eq_2_6
from msnn.training import train

X = np.linspace(-1, 1, 64)
Y = eq_2_2(X)


def _alone(seed, kappa_hat=None, act="tanh", adam=40, lbfgs=0, y=Y):
    net = StageNetwork(1, (8, 8), first_activation=act, kappa_hat=kappa_hat, seed=seed)
    xt = torch.as_tensor(X)[:, None]
    yt = torch.as_tensor(y)
    train(net, lambda: torch.mean((net(xt) - yt) ** 2), adam_steps=adam, lbfgs_steps=lbfgs, progress=False)
    with torch.no_grad():
        return net(xt).numpy()


@pytest.mark.parametrize("lbfgs", [0, 15])
def test_member_equals_network_trained_alone(lbfgs):
    fit = fit_ensemble(X, Y, widths=(8, 8), seeds=[3, 4, 5], adam_steps=40, lbfgs_steps=lbfgs, progress=False)
    pred = fit.predict(X)
    for k, s in enumerate([3, 4, 5]):
        np.testing.assert_allclose(pred[k], _alone(s, lbfgs=lbfgs), rtol=0, atol=1e-10)
    assert len(fit.loss) == 3 and all(len(h) >= 40 for h in fit.loss)


def test_per_member_kappa_hat():
    y = eq_2_6(X, 10)
    kh = [1.0, 5.0, 20.0]
    fit = fit_ensemble(X, y, widths=(8, 8), seeds=[0, 1, 2], first_activation="sin", kappa_hat=kh,
                       adam_steps=30, x_val=X, y_val=y, progress=False)
    np.testing.assert_allclose(fit.kappa_hat, kh)
    pred = fit.predict(X)
    for k in range(3):
        np.testing.assert_allclose(pred[k], _alone(k, kappa_hat=kh[k], act="sin", adam=30, y=y), atol=1e-10)
        single = fit.net.member(k)
        assert float(single.kappa_hat[0]) == kh[k]
    np.testing.assert_allclose(fit.val_rms, fit.train_rms)  # same points


def test_network_member_kappa_shapes():
    net = StageNetwork(2, (4,), member_kappa_hat=[[1.0, 2.0], [3.0, 4.0]], n_models=2)
    assert net.kappa.shape == (2, 1, 2)
    assert net(torch.zeros(5, 2, dtype=torch.float64)).shape == (2, 5)
    with pytest.raises(ValueError, match="member_kappa_hat"):
        StageNetwork(1, (4,), member_kappa_hat=[1.0, 2.0, 3.0], n_models=2)
    with pytest.raises(ValueError, match="finite and positive"):
        StageNetwork(1, (4,), member_kappa_hat=[1.0, -2.0], n_models=2)


def test_per_member_targets():
    ys = np.stack([Y, 100 * Y])
    fit = fit_ensemble(X, ys, widths=(8,), seeds=[0, 1], adam_steps=5, progress=False)
    assert fit.predict(X).shape == (2, 64)


@pytest.mark.parametrize("kw, msg", [
    (dict(y=np.r_[Y[:-1], np.nan]), "NaN"),
    (dict(y=Y[:10]), "shape"),
    (dict(seeds=[]), "at least one"),
    (dict(kappa_hat=[1.0, 2.0, 3.0]), "one value per member"),
    (dict(kappa_hat=0.0), "positive"),
    (dict(adam_steps=-1), "adam_steps"),
    (dict(lr=0.0), "lr"),
    (dict(dtype=torch.int32), "dtype"),
    (dict(x_val=X), "both"),
])
def test_bad_inputs(kw, msg):
    args = dict(y=Y, seeds=[0, 1], adam_steps=1, progress=False)
    args.update(kw)
    y = args.pop("y")
    with pytest.raises(ValueError, match=msg):
        fit_ensemble(X, y, **args)
