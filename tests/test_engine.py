"""The stage engine and the phase registry from outside: a new driver needs only its loss, network and next stage.

The toy driver here solves a Fredholm integral equation of the second kind by Nystrom's
method, u(x) - lam int_0^1 x t u(t) dt = f(x) on [0, 1], whose exact solution for
f(x) = e^x - x / 2 and lam = 1/2 is u = e^x (int_0^1 t e^t dt = 1). The residue of the
equation is linear in a stage's output layer, so the registry's exact least-squares
phases apply to it although no driver of the package was written for integral equations.
"""
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from msnn._common import ParamsMixin
from msnn.engine import StagedFit
from msnn.networks import StageNetwork
from msnn.phases import LossTrainee, PHASES, register_phase, train_stage
from msnn.phases.lstsq import least_squares
from msnn.phases.registry import PhaseReport

LAM = 0.5


@dataclass
class _Record:
    index: int
    eps: float
    loss: float


class IntegralEquation(StagedFit):
    """Multi-stage Nystrom solver: each stage fits the normalized residue of the equation."""

    _record_type = _Record
    _fit_call = "fit()"

    def __init__(self, *, n_stages: int = 2, n_nodes: int = 24, schedule=(("adam", 200), ("output-lstsq",)),
                 seed: int = 0, checkpoint=None) -> None:
        self._store_params(locals())
        self._n = n_stages

    # the equation: the operator (I - lam K Q) on values at the nodes
    def fit(self):
        t, w = np.polynomial.legendre.leggauss(self.n_nodes)
        self.x_ = (t + 1) / 2
        self._op = np.eye(self.n_nodes) - LAM * np.outer(self.x_, self.x_ * w / 2)
        f = np.exp(self.x_) - self.x_ / 2
        self._xt = torch.as_tensor(2 * self.x_ - 1, dtype=torch.float64)[:, None]
        self._start(f)
        self._run_stages(self._xt)
        return self

    def _network_for(self, rec, xt):
        return StageNetwork(1, (12, 12), first_activation="tanh", seed=self.seed + rec.index)

    def _fit_stage(self, n, plan):
        residue, eps = plan
        net = self._network_for(_Record(n, eps, 0.0), self._xt)
        op = torch.as_tensor(self._op)
        target = torch.as_tensor(residue / eps)

        def hidden_out():
            h = self._xt * net.kappa
            for W, b in list(zip(net.weights, net.biases))[:-1]:
                h = torch.tanh(h @ W[0] + b[0, 0])
            return h

        def loss():
            return torch.mean((op @ net(self._xt) - target) ** 2)

        def solve_output(mu, rcond):
            with torch.no_grad():
                H = hidden_out()
                A = op @ torch.cat([H, torch.ones_like(H[:, :1])], 1) / np.sqrt(len(target))
                wo, rank, _, _ = least_squares(A, target / np.sqrt(len(target)), mu=mu, rcond=rcond)
                net.weights[-1].copy_(wo[:-1].reshape(net.weights[-1].shape))
                net.biases[-1].copy_(wo[-1:].reshape(net.biases[-1].shape))
            return float(loss().detach()), rank

        hidden = [p for pair in zip(net.weights[:-1], net.biases[:-1]) for p in pair]
        trainee = LossTrainee(list(net.parameters()), loss, solve_output=solve_output, hidden=hidden,
                              who="integral-equation stages",
                              why_not={"jacobian": "this toy driver builds no Jacobian"})
        train_stage(trainee, self.schedule, progress=False)
        with torch.no_grad():
            u = net(self._xt).numpy()
        return _Record(n, eps, trainee.loss_value()), net, eps * (self._op @ u)

    def predict_stages(self, x):
        self._check_fitted()
        xt = torch.as_tensor(2 * np.asarray(x, dtype=float) - 1)[:, None]
        with torch.no_grad():
            return np.stack([r.eps * net(xt).numpy() for r, net in zip(self.stages_, self.networks_)])


def test_a_new_driver_needs_only_its_loss_network_and_next_stage():
    sol = IntegralEquation(n_stages=3, schedule=(("adam", 300),)).fit()
    x = sol.x_
    errors = [float(np.max(np.abs(u - np.exp(x)))) for u in sol.staged_predict(x)]
    assert len(errors) == len(sol.stages_) == 3
    assert errors[2] < errors[1] < 0.5 * errors[0], errors  # each stage gains on the equation's residue
    np.testing.assert_array_equal(list(sol.staged_predict(x))[1], sol.predict(x, n_stages=2))
    # the engine's bookkeeping: eps of a stage is the RMS of the data minus the float64 sum before it
    assert sol.stages_[2].eps < sol.stages_[1].eps < 0.5 * sol.stages_[0].eps
    # the registry's exact output layer applies to this driver too: 1e-8 in one stage
    exact = IntegralEquation(n_stages=1).fit()
    assert float(np.max(np.abs(exact.predict(x) - np.exp(x)))) < 1e-8


def test_the_registry_refuses_what_a_driver_does_not_offer_before_training():
    sol = IntegralEquation(schedule=(("adam", 5), ("vp-lm", 10)))
    with pytest.raises(ValueError, match="cannot run the phase 'vp-lm'.*no Jacobian.*adam, lbfgs, output-lstsq, lsgd"):
        sol.fit()
    assert not getattr(sol, "stages_", None)


def test_a_registered_phase_runs_in_every_driver_that_offers_its_needs():
    calls = []

    @register_phase("zero-output", needs={"linear-output"}, takes_steps=False)
    def _zero(t, ph, bar, progress, desc):
        calls.append(type(t).__name__)
        before = t.loss_value()
        hidden = {id(p) for p in t.hidden()}
        with torch.no_grad():
            for p in t.params():
                if id(p) not in hidden:
                    p.zero_()
        return PhaseReport("zero-output", 0, before, t.loss_value(), 0.0, "done")

    try:
        sol = IntegralEquation(n_stages=1, schedule=(("adam", 3), ("zero-output",))).fit()
        assert calls == ["LossTrainee"] and np.all(sol.predict(sol.x_) == 0)
    finally:
        PHASES.pop("zero-output")


def test_the_engine_resumes_from_its_checkpoint(tmp_path):
    path = tmp_path / "toy.pt"
    first = IntegralEquation(n_stages=2, checkpoint=path).fit()
    again = IntegralEquation(n_stages=2, checkpoint=path).fit()  # both stages come from the file
    np.testing.assert_array_equal(first.predict(first.x_), again.predict(again.x_))
    assert [r.eps for r in again.stages_] == [r.eps for r in first.stages_]


def test_staged_predict_needs_a_fit_and_n_stages_an_integer():
    sol = IntegralEquation(n_stages=1)
    with pytest.raises(ValueError, match="not fitted"):
        next(sol.staged_predict(np.zeros(3)))
    sol.fit()
    with pytest.raises(ValueError, match="n_stages must be an integer in"):
        sol.predict(sol.x_, n_stages=1.5)
    assert isinstance(sol, ParamsMixin)
