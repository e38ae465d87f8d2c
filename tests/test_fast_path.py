"""The CUDA-graph fast path of train(): same parameters as the eager loop (GPU), fallbacks (CPU)."""
import pytest
import torch

from msnn import StageNetwork, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def _setup(device, seed=0):
    x = torch.linspace(-1, 1, 300, dtype=torch.float64, device=device)[:, None]
    y = torch.sin(2 * x[:, 0] + 1) + 0.2 * torch.exp(1.3 * x[:, 0])
    net = StageNetwork(1, (20, 20, 20), seed=seed, device=device)
    return net, (lambda: torch.mean((net(x) - y) ** 2))


def test_cpu_uses_eager():
    net, lf = _setup("cpu")
    h = train(net, lf, adam_steps=5, lbfgs_steps=0, progress=False)
    assert h.extra["adam_path"] == "eager"


def test_bad_fast_value():
    net, lf = _setup("cpu")
    with pytest.raises(ValueError, match="fast"):
        train(net, lf, adam_steps=5, lbfgs_steps=0, progress=False, fast="yes")


@cuda
def test_graph_equals_eager_after_1000_steps():
    a, la = _setup("cuda")
    b, lb = _setup("cuda")
    ha = train(a, la, adam_steps=1000, lbfgs_steps=0, progress=False, fast=True)
    hb = train(b, lb, adam_steps=1000, lbfgs_steps=0, progress=False, fast=False)
    assert ha.extra["adam_path"] == "cuda-graph" and hb.extra["adam_path"] == "eager"
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12)
    assert abs(ha.loss[-1] - hb.loss[-1]) <= 1e-9 * hb.loss[-1]


@cuda
def test_graph_falls_back_with_callbacks():
    net, lf = _setup("cuda")
    h = train(net, lf, adam_steps=10, lbfgs_steps=0, progress=False, before_step=lambda i: None)
    assert h.extra["adam_path"] == "eager"
