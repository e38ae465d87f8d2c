"""Stage networks: kappa scaling (eq. 2.8), shapes, ensembles."""
import math

import pytest
import torch

from msnn import StageNetwork
from msnn.networks import kappa_from_hat, xavier_std


def test_kappa_scaling_eq_2_8():
    # 1 -> 20 first layer: sqrt(Var) = sqrt(2/21) = 0.3086 (PAPER.md G5)
    assert xavier_std(1, 20) == pytest.approx(0.30861, abs=1e-5)
    assert float(kappa_from_hat(35.0, 1, 20)) == pytest.approx(35.0 / math.sqrt(2 / 21))
    net = StageNetwork(1, (20, 20, 20), first_activation="sin", kappa_hat=35.0)
    assert float(net.kappa) == pytest.approx(35.0 / math.sqrt(2 / 21))


def test_default_kappa_is_one():
    net = StageNetwork(1, (30, 30, 30))
    assert float(net.kappa) == pytest.approx(1.0)


def test_first_layer_is_act_of_kappa_xw_plus_b():
    net = StageNetwork(1, (5,), first_activation="sin", kappa_hat=2.0)
    with torch.no_grad():
        net.biases[0].fill_(0.25)
    x = torch.linspace(-1, 1, 7, dtype=torch.float64)
    h = torch.sin(float(net.kappa) * x[:, None] @ net.weights[0][0] + 0.25)
    expected = (h @ net.weights[1][0] + net.biases[1][0])[:, 0]
    assert torch.allclose(net(x), expected, rtol=0, atol=1e-14)


def test_weight_counts_G7():
    assert StageNetwork(1, (20, 20, 20)).n_weights() == 840
    assert StageNetwork(1, (20, 20, 20)).n_weights(biases=True) == 901
    assert StageNetwork(1, (30, 30, 30)).n_weights() == 1860


def test_xavier_std_realised():
    net = StageNetwork(1, (200, 200), seed=3)
    w = net.weights[1][0].detach()
    assert float(w.std()) == pytest.approx(xavier_std(200, 200), rel=0.03)


def test_ensemble_member_equals_single():
    ens = StageNetwork(2, (8, 8), n_models=3, seed=10)
    single = StageNetwork(2, (8, 8), seed=11)
    x = torch.rand(50, 2, dtype=torch.float64)
    assert ens(x).shape == (3, 50)
    assert torch.allclose(ens(x)[1], single(x), rtol=0, atol=1e-14)
    assert torch.allclose(ens.member(1)(x), single(x), rtol=0, atol=1e-14)


def test_per_axis_kappa():
    net = StageNetwork(2, (4,), first_activation="sin", kappa_hat=[1.0, 3.0])
    assert net.kappa.tolist() == pytest.approx([1.0 / xavier_std(2, 4), 3.0 / xavier_std(2, 4)])


@pytest.mark.parametrize("kw,msg", [
    (dict(first_activation="relu"), "first_activation"),
    (dict(kappa_hat=-1.0), "positive"),
    (dict(kappa_hat=[1.0, 2.0, 3.0]), "1 or 1 values"),
    (dict(n_models=0), "n_models"),
])
def test_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        StageNetwork(1, (4,), **kw)


def test_float32_dtype_follows():
    net = StageNetwork(1, (4,), dtype=torch.float32)
    assert net(torch.zeros(3, 1)).dtype == torch.float32


def test_fourier_feature_network():
    import numpy as np

    from msnn.networks import FourierFeatureNetwork

    a = FourierFeatureNetwork(1, 16, sigma=5.0, widths=(8, 8), seed=3)
    b = FourierFeatureNetwork(1, 16, sigma=5.0, widths=(8, 8), seed=3)
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)
    assert a(x).shape == (11,) and torch.equal(a(x), b(x))
    assert not a.B.requires_grad and a.B.shape == (1, 16)
    assert abs(float(a.B.std()) - 5.0) < 3.0
    with pytest.raises(ValueError, match="sigma"):
        FourierFeatureNetwork(1, 16, sigma=0.0)
    with pytest.raises(ValueError, match="columns"):
        a(torch.zeros(4, 2, dtype=torch.float64))


def test_eq_2_6_derivative():
    import numpy as np

    from msnn.problems import eq_2_6, eq_2_6_dx

    x = np.linspace(-1, 1, 20001)
    fd = np.gradient(eq_2_6(x, 30), x)
    assert np.abs(fd - eq_2_6_dx(x, 30))[2:-2].max() < 1e-3
