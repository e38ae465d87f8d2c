"""Adam then L-BFGS: histories, tolerances and best-parameter keeping."""
import numpy as np
import pytest
import torch

from msnn import StageNetwork, train


def _problem():
    x = torch.linspace(-1, 1, 64, dtype=torch.float64)[:, None]
    y = torch.sin(3 * x[:, 0])
    net = StageNetwork(1, (10, 10), seed=0)
    return net, (lambda: torch.mean((net(x) - y) ** 2))


def test_history_lengths_and_decrease():
    net, lf = _problem()
    h = train(net, lf, adam_steps=100, lbfgs_steps=100, progress=False)
    assert h.adam_steps == 100 and 0 < h.lbfgs_iterations <= 100
    assert len(h.loss) == h.adam_steps + h.lbfgs_evaluations
    assert h.final_loss <= h.loss.min() + 1e-18
    assert h.final_loss < 1e-3 * h.loss[0]


def test_lbfgs_not_stopped_by_default_tolerances():
    # PyTorch's defaults (tolerance_grad 1e-7, tolerance_change 1e-9) stop L-BFGS early;
    # ours run the whole budget and end lower.
    x = torch.linspace(-1, 1, 64, dtype=torch.float64)[:, None]
    y = torch.sin(x[:, 0])
    net = StageNetwork(1, (10,), seed=0)
    h = train(net, lambda: torch.mean((net(x) - y) ** 2), adam_steps=0, lbfgs_steps=200, progress=False)
    ref = StageNetwork(1, (10,), seed=0)
    opt = torch.optim.LBFGS(ref.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.mean((ref(x) - y) ** 2)
        loss.backward()
        return loss

    opt.step(closure)
    assert opt.state[opt._params[0]]["n_iter"] < 200 and h.lbfgs_iterations == 200
    with torch.no_grad():
        assert h.final_loss < float(torch.mean((ref(x) - y) ** 2))


def test_target_loss_stops_early():
    net, lf = _problem()
    h = train(net, lf, adam_steps=5000, lbfgs_steps=0, target_loss=1e-2, progress=False)
    assert h.stopped == "target" and h.adam_steps < 5000


def test_ensemble_adam_matches_single_runs():
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)[:, None]
    y = torch.cos(2 * x[:, 0])
    ens = StageNetwork(1, (8, 8), n_models=3, seed=5)
    h = train(ens, lambda: torch.mean((ens(x) - y) ** 2, dim=1), adam_steps=300, lbfgs_steps=0, progress=False)
    assert h.loss.shape == (300, 3)
    single = StageNetwork(1, (8, 8), seed=6)
    train(single, lambda: torch.mean((single(x) - y) ** 2), adam_steps=300, lbfgs_steps=0, progress=False)
    assert torch.allclose(ens(x)[1], single(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kw,msg", [(dict(adam_steps=-1), "adam_steps"), (dict(lbfgs_steps=2.5), "lbfgs_steps"), (dict(lr=-1.0), "lr")])
def test_bad_arguments(kw, msg):
    net, lf = _problem()
    with pytest.raises(ValueError, match=msg):
        train(net, lf, progress=False, **kw)
