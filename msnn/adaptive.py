"""Adaptive-basis networks: Box initialization, LSGD and partition-of-unity networks.

The adaptive basis viewpoint of Cyr, Gulian, Patel, Perego & Trask (2020) and Lee,
Trask, Patel, Gulian & Cyr (2021), as presented in M. Gulian's slides "Robust
architectures, initialization, and training for deep neural networks via the adaptive
basis interpretation": a regression network is a linear
combination of basis functions that its hidden layers make, eq. (8),

    NN(x) = sum_i xi^L_i Phi_i(x; xi^H),

so its last layer is a linear least-squares problem, eq. (12). This module holds

* :func:`box_init_` and :class:`ReLUNet`: ReLU networks, plain (eq. 9) or residual
  (eq. 10), whose hidden layers get the "Box initialization" (eq. 13): each unit's cut
  plane passes through a random point of the box its inputs live in;
* :func:`lsgd`: Algorithm 1 (hybrid least squares / gradient descent), run by the
  package's registered "lsgd" phase (:mod:`msnn.phases`);
* :class:`POUnet` and :func:`fit_pou`: partition-of-unity networks, eq. (16), with an
  RBF partition, eq. (19), or a network followed by softmax, eq. (17), trained by the
  two-phase LSGD of Algorithm 2;
* :func:`gd` (the slides' plain gradient descent, the baseline of LSGD),
  :func:`basis_rank` and :func:`partition_diameter` (the measurements of chapter 12);
* :class:`MultistagePOU`: Algorithm 1 of Wang & Lai (2024) with a POUnet as every
  stage (chapter 12, "One step beyond").

Everything is float64 on the CPU; every random draw comes from a local
``torch.Generator`` seeded by a ``seed`` argument, so no global torch state changes.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ._common import count, finite_float, flag, one_of, positive_float
from .phases.lstsq import least_squares
from .phases.runner import LossTrainee, train_stage

__all__ = ["box_init_", "ReLUNet", "POUnet", "lsgd", "fit_pou", "gd", "basis_rank", "partition_diameter",
           "MultistagePOU", "POUStage"]

_DTYPE = torch.float64
#: data may lie this far outside the domain, relative to its width (round-off in the inputs)
_DOMAIN_TOL = 1e-12


# ------------------------------------------------------------------ helpers
def _domain(domain, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) as float64 tensors of shape (d,); scalars or one value per axis."""
    try:
        lo, hi = domain
    except (TypeError, ValueError):
        raise ValueError(f"domain must be a pair (lo, hi), got {domain!r}") from None
    out = []
    for v, name in ((lo, "lo"), (hi, "hi")):
        t = torch.as_tensor(v, dtype=_DTYPE).flatten()
        if t.numel() == 1:
            t = t.expand(d).clone()
        if t.numel() != d or not torch.all(torch.isfinite(t)):
            raise ValueError(f"domain {name} must be a finite number or {d} of them, got {v!r}")
        out.append(t)
    if not torch.all(out[0] < out[1]):
        raise ValueError(f"domain must have lo < hi on every axis, got lo={out[0].tolist()}, hi={out[1].tolist()}")
    return out[0], out[1]


def _points(x, d: int, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None,
            name: str = "x") -> torch.Tensor:
    """x as a float64 tensor (N, d); refused if non-finite, of the wrong width, or outside [lo, hi]."""
    x = torch.as_tensor(x, dtype=_DTYPE)
    if x.dim() == 1:
        x = x[:, None] if d == 1 else x[None, :]
    if x.dim() != 2 or x.shape[1] != d:
        raise ValueError(f"{name} must have shape (N, {d}), got {tuple(x.shape)}")
    if not torch.all(torch.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    if lo is not None:
        tol = _DOMAIN_TOL * (hi - lo)
        out = (x < lo - tol) | (x > hi + tol)
        if torch.any(out):
            i = int(torch.nonzero(out.any(1))[0])
            raise ValueError(f"{name} has {int(out.any(1).sum())} point(s) outside the domain "
                             f"[{lo.tolist()}, {hi.tolist()}], e.g. {x[i].tolist()}")
    return x


def _linear(n_in: int, n_out: int) -> nn.Linear:
    """An uninitialised float64 nn.Linear (no draw from torch's global generator)."""
    return nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=_DTYPE)


def _glorot_(layer: nn.Linear, g: torch.Generator) -> None:
    nn.init.xavier_normal_(layer.weight, generator=g)
    nn.init.zeros_(layer.bias)


# ------------------------------------------------------------- Box init
def box_init_(linear: nn.Linear, lo, hi, *, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """Box-initialize a ReLU layer in place (the slides, Part II, eq. 13).

    For each unit (row of ``linear.weight``) a point ``p`` uniform in the box
    ``[lo, hi]^n_in`` and a unit normal ``n`` uniform on the sphere are drawn; the unit's
    pre-activation is ``k (x - p) . n``, i.e. ``w = k n`` and ``b = -k p . n``, so its cut
    plane (where the ReLU switches on) passes through ``p``. ``k`` is chosen so that

        max_{x in box} relu(k (x - p) . n) = scale

    (the maximum of the linear function over the box is at a vertex:
    ``sum_j max((hi_j - p_j) n_j, (lo_j - p_j) n_j)``), so every unit's output lies in
    ``[0, scale]`` on the box. The slides write ``b = k p . n``; with ``w = k n`` that
    plane passes through ``-p``, so we take the sign that makes eq. (13) hold.

    Args:
        linear: the layer (float64); its weight and bias are overwritten.
        lo, hi: the box its inputs live in: numbers or one per input.
        generator: the random source (a seeded ``torch.Generator``).
        scale: the bound on each unit's output over the box (the slides' 1).

    Returns:
        The points ``p``, shape (n_out, n_in): unit i's cut plane passes through ``p[i]``.
    """
    scale = positive_float(scale, "scale")
    n_out, n_in = linear.weight.shape
    lo, hi = _domain((lo, hi), n_in)
    p = lo + (hi - lo) * torch.rand(n_out, n_in, generator=generator, dtype=_DTYPE)
    n = torch.randn(n_out, n_in, generator=generator, dtype=_DTYPE)
    n = n / n.norm(dim=1, keepdim=True)
    reach = torch.where(n > 0, (hi - p) * n, (lo - p) * n).sum(1)  # max over the box of (x - p) . n
    k = scale / reach
    with torch.no_grad():
        linear.weight.copy_(k[:, None] * n)
        linear.bias.copy_(-k * (p * n).sum(1))
    return p


# --------------------------------------------------------------- ReLUNet
class ReLUNet(nn.Module):
    """A ReLU network with a linear output layer: eq. (8) with the hidden layers of eq. (9) or (10).

    ``features(x)`` is the basis ``Phi(x)`` (N, width) of the last hidden layer: plain,
    ``Phi = relu(T_L ... relu(T_1 x))`` (eq. 9), or residual,
    ``x_1 = relu(T_1 x)``, ``x_l = x_{l-1} + relu(T_l x_{l-1})`` (eq. 10). The output is
    ``Phi(x) . w + b``, linear in ``(w, b)`` (solved by least squares in :func:`lsgd`).

    Initializations of the hidden layers:

    * ``"box"`` (the slides, eq. 13, :func:`box_init_`): layer 1 on the box ``domain``
      with output bound 1. Plain: every later layer on ``[0, 1]^width`` (the previous
      layer's outputs lie there), bound 1. ResNet: layer l >= 2 acts on
      ``[0, m_{l-1}]^width`` and its residual branch is bounded by ``m_{l-1} / depth``, so
      ``m_l = (1 + 1/depth)^(l-1) < e``: the box each layer sees is the one its inputs
      fill, and the features stay bounded at any depth.
    * ``"he"``: ``torch.nn.init.kaiming_normal_`` (fan_in, ReLU gain: std sqrt(2/fan_in)).
    * ``"glorot"``: ``torch.nn.init.xavier_normal_`` (std sqrt(2/(fan_in + fan_out))).

    For "he" and "glorot" the biases are drawn as ``torch.nn.Linear`` draws them,
    uniform in ``+-1/sqrt(fan_in)`` (with zero biases every unit would be positively
    homogeneous in x). The output layer is Glorot-normal with a zero bias in every case.

    Args:
        d_in: the input dimension.
        width: units per hidden layer.
        depth: number of hidden layers (L).
        init: "box", "he" or "glorot".
        resnet: residual hidden layers (eq. 10) instead of plain ones (eq. 9).
        seed: seeds the local generator of every draw.
        domain: ``(lo, hi)``, the box the inputs live in (numbers or one per axis);
            it places the Box initialization's cut planes. The network is defined
            everywhere; inputs are not checked against it.

    Raises:
        ValueError: a ``d_in``, ``width`` or ``depth`` that is not a positive integer, an
            unknown ``init``, or a domain with ``lo >= hi``.
    """

    def __init__(self, d_in: int, width: int, depth: int, *, init: str = "box", resnet: bool = False, seed: int = 0,
                 domain=(0.0, 1.0)) -> None:
        super().__init__()
        self.d_in, self.width, self.depth = count(d_in, "d_in", 1), count(width, "width", 1), count(depth, "depth", 1)
        self.init = one_of(init, "init", ("box", "he", "glorot"))
        self.resnet = flag(resnet, "resnet")
        self.seed = count(seed, "seed", 0)
        self.lo, self.hi = _domain(domain, self.d_in)
        g = torch.Generator().manual_seed(self.seed)
        self.hidden = nn.ModuleList(_linear(self.d_in if l == 0 else self.width, self.width) for l in range(self.depth))
        m = 1.0  # the previous layer's outputs lie in [0, m]^width
        for l, layer in enumerate(self.hidden):
            if self.init == "box":
                if l == 0:
                    box_init_(layer, self.lo, self.hi, generator=g)
                elif not self.resnet:
                    box_init_(layer, 0.0, 1.0, generator=g)
                else:
                    box_init_(layer, 0.0, m, generator=g, scale=m / self.depth)
                    m *= 1.0 + 1.0 / self.depth
            else:
                if self.init == "he":
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=g)
                else:
                    nn.init.xavier_normal_(layer.weight, generator=g)
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=g)
        self.output = _linear(self.width, 1)
        _glorot_(self.output, g)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The basis Phi(x), shape (N, width): the last hidden layer (eq. 9 or 10)."""
        h = _points(x, self.d_in)
        for l, layer in enumerate(self.hidden):
            h = h + torch.relu(layer(h)) if self.resnet and l > 0 else torch.relu(layer(h))
        return h

    def basis(self, x: torch.Tensor) -> torch.Tensor:
        """The least-squares matrix of eq. (12): ``[Phi(x), 1]``, shape (N, width + 1)."""
        h = self.features(x)
        return torch.cat([h, torch.ones_like(h[:, :1])], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """NN(x) = Phi(x) . w + b (eq. 8), shape (N,)."""
        return self.output(self.features(x))[:, 0]

    def get_output(self) -> torch.Tensor:
        """The output layer as one vector ``[w, b]`` (the columns of :meth:`basis`)."""
        return torch.cat([self.output.weight.detach().reshape(-1), self.output.bias.detach()])

    def set_output(self, w: torch.Tensor) -> None:
        """Set the output layer from a vector ``[w, b]``."""
        with torch.no_grad():
            self.output.weight.copy_(w[:-1].reshape(1, -1))
            self.output.bias.copy_(w[-1:])

    def hidden_params(self) -> list:
        """The hidden parameters xi^H (what LSGD's gradient steps train)."""
        return list(self.hidden.parameters())


# ------------------------------------------------------------------ LSGD
def lsgd(model: nn.Module, x, y, steps: int, lr: float, *, mu: float = 0.0) -> list[float]:
    """Hybrid least squares / gradient descent (the slides, Algorithm 1; eq. 12).

    Alternates the exact least-squares solve of the output layer,
    ``min_w mean((A w - y)^2) + mu ||w||^2`` with ``A = model.basis(x)`` (an SVD in
    float64, :func:`msnn.phases.lstsq.least_squares`), with one gradient step on the
    hidden parameters ``model.hidden_params()``. It runs the package's registered
    "lsgd" phase (:mod:`msnn.phases.runner`) on a
    :class:`~msnn.phases.runner.LossTrainee`: the gradient step is an Adam step (the
    slides' GD) on the loss divided by the last solved loss (the phase's convention),
    and the output layer is re-solved after every step. Adam's steps keep their size
    at round-off, where they wander, so the model is left at the hidden parameters of
    the smallest solved loss, with their output layer.

    Args:
        model: a :class:`ReLUNet` or :class:`POUnet` (anything with ``basis``,
            ``get_output``, ``set_output``, ``hidden_params`` and ``d_in``).
        x: inputs, (N,) or (N, d).
        y: targets, (N,).
        steps: gradient steps (0: one least-squares solve).
        lr: Adam's learning rate.
        mu: the l2 weight on the output layer (0: plain least squares).

    Returns:
        The loss ``mean((NN(x) - y)^2) + mu ||w||^2`` after the first solve and after
        every re-solve (``steps + 1`` values); the model ends at their minimum.

    Raises:
        ValueError: bad ``steps``, ``lr`` or ``mu``; ``x`` and ``y`` of different
            lengths, non-finite, or (POUnet) outside the model's domain.
    """
    steps, lr, mu = count(steps, "steps", 0), positive_float(lr, "lr"), finite_float(mu, "mu", minimum=0.0)
    x = _points(x, model.d_in)  # the model's basis checks its domain, if it has one
    y = torch.as_tensor(y, dtype=_DTYPE).reshape(-1)
    if y.shape[0] != x.shape[0] or not torch.all(torch.isfinite(y)):
        raise ValueError(f"y must hold {x.shape[0]} finite values (one per point of x), got shape {tuple(y.shape)}")
    root_n = math.sqrt(x.shape[0])

    hidden = model.hidden_params()
    best = [math.inf, None]

    def solve(mu_: float, rcond: float) -> tuple[float, int]:
        with torch.no_grad():
            A = model.basis(x) / root_n
        w, rank, _, _ = least_squares(A, y / root_n, mu=mu_, rcond=rcond)
        model.set_output(w)
        val = float(((A @ w - y / root_n) ** 2).sum() + mu_ * (w ** 2).sum())
        if val < best[0]:  # keep the best hidden parameters seen
            best[:] = [val, [p.detach().clone() for p in hidden]]
        return val, rank

    def loss() -> torch.Tensor:
        w = model.get_output()
        return torch.mean((model.basis(x) @ w - y) ** 2) + mu * (w ** 2).sum()

    trainee = LossTrainee(hidden, loss, solve_output=solve, hidden=hidden, who=type(model).__name__, lr=lr)
    (report,) = train_stage(trainee, [("lsgd", steps, {"lr": lr, "mu": mu})], progress=False)
    if best[1] is not None:
        with torch.no_grad():
            for p, q in zip(hidden, best[1]):
                p.copy_(q)
        solve(mu, 1e-15)
    return [float(v) for v in report.history]


# ---------------------------------------------------------------- POUnet
def _exponents(d: int, degree: int) -> list[tuple[int, ...]]:
    """Exponents of the monomials of total degree <= degree in d variables, by degree."""
    return [e for m in range(degree + 1) for e in itertools.product(range(m + 1), repeat=d) if sum(e) == m]


class POUnet(nn.Module):
    """A partition-of-unity network, eq. (16) of the slides:

        y(x) = sum_a phi_a(x) sum_b c_ab P_b(x),

    with ``P_b`` the monomials of total degree <= ``degree`` in the scaled coordinates
    ``z = 2 (x - lo) / (hi - lo) - 1`` (the domain mapped to ``[-1, 1]^d``, which keeps
    the least-squares problem well conditioned), ``dim V = C(d + degree, d)`` of them,
    and a partition of unity ``phi`` (``phi_a >= 0``, ``sum_a phi_a = 1``):

    * ``"rbf"``: normalized Gaussian RBFs, eq. (19),
      ``phi_a = softmax_a(-|z - xi_1a|^2 / xi_2a^2)``, with learnable centres ``xi_1``
      (in z, drawn uniformly in ``[-1, 1]^d`` as in the slides) and shapes
      ``xi_2 = exp(log_shape) > 0`` (start ``shape``, the slides' 1);
    * ``"net"``: eq. (17), a Box-initialized residual :class:`ReLUNet` on z
      (``net_width`` x ``net_depth``) whose features go through a linear layer to
      ``n_part`` outputs and a softmax.

    The coefficients ``c`` (n_part, dim V) are the linear output layer:
    ``basis(x)`` is the matrix ``phi_a(x) P_b(x)``, so for fixed ``phi`` they solve a
    linear least-squares problem (eq. 18).

    Args:
        d: input dimension.
        n_part: number of partitions N_part.
        degree: the polynomial degree m (0 allowed: piecewise constants).
        partition: "rbf" or "net".
        domain: ``(lo, hi)``, numbers or one per axis; inputs outside it are refused.
        seed: seeds every draw.
        shape: the RBF shapes' starting value (> 0).
        net_width, net_depth: the partition network's size (``partition="net"``).

    Raises:
        ValueError: ``d``, ``n_part``, ``net_width`` or ``net_depth`` not a positive
            integer, ``degree`` not an integer >= 0, ``shape`` not > 0, an unknown
            ``partition``, or ``lo >= hi``.
    """

    def __init__(self, d: int, n_part: int, degree: int, *, partition: str = "rbf", domain=(-1.0, 1.0),
                 seed: int = 0, shape: float = 1.0, net_width: int = 16, net_depth: int = 2) -> None:
        super().__init__()
        self.d_in, self.n_part, self.degree = count(d, "d", 1), count(n_part, "n_part", 1), count(degree, "degree", 0)
        self.partition = one_of(partition, "partition", ("rbf", "net"))
        shape = positive_float(shape, "shape")
        self.seed = count(seed, "seed", 0)
        self.lo, self.hi = _domain(domain, self.d_in)
        self.exponents = _exponents(self.d_in, self.degree)
        self.register_buffer("_powers", torch.tensor(self.exponents, dtype=_DTYPE).reshape(-1, self.d_in))
        g = torch.Generator().manual_seed(self.seed)
        if self.partition == "rbf":
            self.centres = nn.Parameter(2 * torch.rand(self.n_part, self.d_in, generator=g, dtype=_DTYPE) - 1)
            self.log_shape = nn.Parameter(torch.full((self.n_part,), math.log(shape), dtype=_DTYPE))
        else:
            net_seed = int(torch.randint(2 ** 31, (1,), generator=g))
            self.net = ReLUNet(self.d_in, count(net_width, "net_width", 1), count(net_depth, "net_depth", 1),
                               resnet=True, seed=net_seed, domain=(-1.0, 1.0))
            self.net.output = _linear(self.net.width, self.n_part)  # its output layer makes the logits
            _glorot_(self.net.output, g)
        self.coef = nn.Parameter(torch.zeros(self.n_part, len(self.exponents), dtype=_DTYPE))

    def _scaled(self, x) -> torch.Tensor:
        return 2 * (_points(x, self.d_in, self.lo, self.hi) - self.lo) / (self.hi - self.lo) - 1

    def partitions(self, x) -> torch.Tensor:
        """phi_a(x), shape (N, n_part): nonnegative, each row sums to 1 (eq. 19 or 17)."""
        z = self._scaled(x)
        if self.partition == "rbf":
            logits = -((z[:, None, :] - self.centres) ** 2).sum(2) / torch.exp(2 * self.log_shape)
        else:
            logits = self.net.output(self.net.features(z))
        return torch.softmax(logits, dim=1)

    def polynomials(self, x) -> torch.Tensor:
        """P_b(z(x)), shape (N, dim V): the monomials of total degree <= m in the scaled coordinates."""
        z = self._scaled(x)
        return torch.prod(z[:, None, :] ** self._powers, dim=2)

    def basis(self, x) -> torch.Tensor:
        """The matrix phi_a(x) P_b(x), shape (N, n_part * dim V), column a * dim V + b (eq. 16)."""
        phi, P = self.partitions(x), self.polynomials(x)
        return (phi[:, :, None] * P[:, None, :]).reshape(phi.shape[0], -1)

    def forward(self, x) -> torch.Tensor:
        """y_POU(x) of eq. (16), shape (N,)."""
        return self.basis(x) @ self.coef.reshape(-1)

    def get_output(self) -> torch.Tensor:
        """The coefficients c as one vector (the columns of :meth:`basis`)."""
        return self.coef.detach().reshape(-1)

    def set_output(self, w: torch.Tensor) -> None:
        """Set the coefficients c from a vector."""
        with torch.no_grad():
            self.coef.copy_(w.reshape(self.coef.shape))

    def hidden_params(self) -> list:
        """The partition's parameters xi (centres and log-shapes, or the network's)."""
        return [self.centres, self.log_shape] if self.partition == "rbf" else list(self.net.parameters())


def fit_pou(model: POUnet, x, y, *, steps: Sequence[int] = (500, 500), lr: float = 1e-2,
            mu: float = 1e-1) -> dict[str, list[float]]:
    """Two-phase LSGD for a POUnet (the slides, "Training with POUnets", Algorithm 2).

    Phase 1: :func:`lsgd` with the l2 regularizer ``mu ||c||^2`` on the coefficients
    (it keeps a partition from collapsing to a small ``phi_a`` with a large ``c_a``, and
    builds localized, nearly disjoint partitions); phase 2: :func:`lsgd` without it.
    The slides give no value of the regularizer; ``mu = 0.1`` (relative to the
    mean-square loss) is our default. Their learning-rate decay and stagnation
    counter (rho, n_stag) are not used: the learning rate is fixed.

    The penalty grows with the number of partitions: near-uniform partitions at the
    start (each ``phi_a ~ 1/n_part``) need coefficients ``~ n_part`` times the target's
    size, so ``mu ||c||^2 ~ mu n_part^3``. Where it outweighs the loss, phase 1 settles
    on one partition and a constant (chapter 12 measures this on triangle waves: at
    ``mu = 0.1`` and 16 partitions the fit is the target's mean). Scale ``mu`` down
    with ``n_part`` (chapter 12 uses ``1e-4`` for 2 to 32 partitions).

    Args:
        model: the :class:`POUnet` (trained in place).
        x: inputs inside the model's domain, (N,) or (N, d).
        y: targets, (N,).
        steps: ``(phase1, phase2)`` gradient steps.
        lr: Adam's learning rate on the partition's parameters.
        mu: the phase-1 regularizer weight.

    Returns:
        ``{"phase1": [...], "phase2": [...]}``: the loss after each least-squares solve
        of each phase (phase 1's includes ``mu ||c||^2``; phase 2's is the mean-square
        error).

    Raises:
        ValueError: ``steps`` not two integers >= 0, ``lr`` not > 0, ``mu`` < 0, or data
            outside the model's domain.
    """
    if not isinstance(model, POUnet):
        raise ValueError(f"model must be a POUnet, got {type(model).__name__}")
    try:
        n1, n2 = steps
    except (TypeError, ValueError):
        raise ValueError(f"steps must be a pair (phase1, phase2), got {steps!r}") from None
    n1, n2 = count(n1, "steps[0]", 0), count(n2, "steps[1]", 0)
    mu = finite_float(mu, "mu", minimum=0.0)
    return {"phase1": lsgd(model, x, y, n1, lr, mu=mu), "phase2": lsgd(model, x, y, n2, lr)}


# ------------------------------------------------------ GD, measurements
def gd(model: nn.Module, x, y, steps: int, lr: float) -> list[float]:
    """Gradient descent on every parameter at once: the baseline the slides set LSGD against.

    Adam (the same optimizer :func:`lsgd` uses for its hidden step, so that the two differ
    only by the least-squares solve) on ``mean((NN(x) - y)^2)`` over all of
    ``model.parameters()``, hidden and output layer together, for ``steps`` steps.

    Args:
        model: a :class:`ReLUNet` or :class:`POUnet` (trained in place).
        x: inputs, (N,) or (N, d).
        y: targets, (N,).
        steps: Adam steps.
        lr: Adam's learning rate.

    Returns:
        The loss before the first step and after every step (``steps + 1`` values).

    Raises:
        ValueError: bad ``steps`` or ``lr``; ``x`` and ``y`` of different lengths or non-finite.
    """
    steps, lr = count(steps, "steps", 0), positive_float(lr, "lr")
    x = _points(x, model.d_in)
    y = torch.as_tensor(y, dtype=_DTYPE).reshape(-1)
    if y.shape[0] != x.shape[0] or not torch.all(torch.isfinite(y)):
        raise ValueError(f"y must hold {x.shape[0]} finite values (one per point of x), got shape {tuple(y.shape)}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps + 1):
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        history.append(float(loss.detach()))
        if len(history) <= steps:
            loss.backward()
            opt.step()
    return history


def basis_rank(model: nn.Module, x, rtol: float = 1e-10) -> int:
    """Numerical rank of the basis ``Phi(x)`` (a :class:`ReLUNet`'s last hidden layer, without the
    constant column): the number of singular values above ``rtol`` times the largest (0 if all vanish).

    Linearly dependent basis functions (the slides' "collapse") lower it below the width.
    """
    rtol = positive_float(rtol, "rtol")
    with torch.no_grad():
        s = torch.linalg.svdvals(model.features(x))
    return int((s > rtol * s[0]).sum()) if s[0] > 0 else 0


def partition_diameter(model: "POUnet", x, threshold: float = 0.1) -> float:
    """The largest partition's diameter on the data: ``max_a diam{x_i : phi_a(x_i) >= threshold}``.

    Eq. (20) bounds the error by ``diam(supp phi_a)^(m+1)``. A softmax partition is
    nowhere exactly zero, so its support is measured where it is at least
    ``threshold`` (Euclidean diameter of those data points; 0 for a partition with
    fewer than two of them).

    Raises:
        ValueError: ``model`` not a POUnet, ``threshold`` not in (0, 1].
    """
    if not isinstance(model, POUnet):
        raise ValueError(f"model must be a POUnet, got {type(model).__name__}")
    threshold = finite_float(threshold, "threshold", above=0.0, maximum=1.0)
    x = _points(x, model.d_in, model.lo, model.hi)
    with torch.no_grad():
        phi = model.partitions(x)
    best = 0.0
    for a in range(model.n_part):
        pts = x[phi[:, a] >= threshold]
        if pts.shape[0] > 1:
            best = max(best, float(torch.cdist(pts, pts).max()))
    return best


# ---------------------------------------------------- multi-stage POUnets
@dataclass
class POUStage:
    """One stage of a :class:`MultistagePOU`.

    Attributes:
        index: stage number (0 = the first).
        eps: RMS of the residue this stage fits, in the units of y (eps_0 = RMS(y)).
        model: the fitted :class:`POUnet` u_k (it fits residue / eps).
        rms_after: RMS of y minus the stages so far, on the training points.
        seconds: wall time of the stage's two-phase LSGD.
        history: :func:`fit_pou`'s losses, ``{"phase1": [...], "phase2": [...]}``.
    """

    index: int
    eps: float
    model: "POUnet"
    rms_after: float
    seconds: float
    history: dict = field(default_factory=dict, repr=False)


class MultistagePOU:
    """Multi-stage regression with POUnet stages (Algorithm 1 of Wang & Lai 2024, eq. 2.3-2.5).

    Stage k fits the normalized residue of the stages before it with a :class:`POUnet`
    trained by two-phase LSGD (:func:`fit_pou`):

        e_k = y - sum_{j<k} eps_j u_j,    eps_k = RMS(e_k),    u_k ~ e_k / eps_k,

    and the model is ``sum_k eps_k u_k``. Where a stage of :class:`msnn.MultistageRegressor`
    is a tanh or sine network, here it is a partition of unity times polynomials
    (eq. 16 of the adaptive-basis slides), whose partitions LSGD moves to where the
    residue needs them. Chapter 12 of the book compares the two.

    Example::

        fit = MultistagePOU(n_stages=3, n_part=16, degree=2, seed=0).fit(x, y)
        fit.predict(x_new); fit.stages_[k].eps

    Args:
        n_stages: number of stages (>= 1).
        n_part: partitions per stage, one for all or one per stage.
        degree: polynomial degree per stage, one for all or one per stage.
        partition: "rbf" or "net" (see :class:`POUnet`).
        net_width, net_depth: the partition network's size (``partition="net"``).
        steps: ``(phase1, phase2)`` LSGD steps of every stage.
        lr: Adam's learning rate on the partitions.
        mu: phase 1's regularizer (see :func:`fit_pou`).
        domain: ``(lo, hi)`` of the POUnets; default the data's bounding box.
        target_rms: stop before a stage whose residue's RMS, relative to RMS(y), is at
            or below this (None: train every stage).
        seed: stage k's POUnet uses seed + k.

    Raises:
        ValueError: a bad setting (at construction), or data that are empty, non-finite,
            of mismatched lengths, constant zero, or outside ``domain`` (in ``fit``).
    """

    def __init__(self, *, n_stages: int = 3, n_part: int | Sequence[int] = 8, degree: int | Sequence[int] = 2,
                 partition: str = "rbf", net_width: int = 16, net_depth: int = 2,
                 steps: Sequence[int] = (500, 500), lr: float = 1e-2, mu: float = 1e-1,
                 domain=None, target_rms: float | None = None, seed: int = 0) -> None:
        self.n_stages = count(n_stages, "n_stages", 1)
        self.n_part = [count(v, "n_part", 1) for v in self._per_stage(n_part, "n_part")]
        self.degree = [count(v, "degree", 0) for v in self._per_stage(degree, "degree")]
        self.partition = one_of(partition, "partition", ("rbf", "net"))
        self.net_width, self.net_depth = count(net_width, "net_width", 1), count(net_depth, "net_depth", 1)
        try:
            n1, n2 = steps
        except (TypeError, ValueError):
            raise ValueError(f"steps must be a pair (phase1, phase2), got {steps!r}") from None
        self.steps = (count(n1, "steps[0]", 0), count(n2, "steps[1]", 0))
        self.lr, self.mu = positive_float(lr, "lr"), finite_float(mu, "mu", minimum=0.0)
        self.domain = domain
        self.target_rms = finite_float(target_rms, "target_rms", minimum=0.0, none=True)
        self.seed = count(seed, "seed", 0)

    def _per_stage(self, value, name: str) -> list:
        if isinstance(value, (list, tuple)):
            if len(value) != self.n_stages:
                raise ValueError(f"{name} must be one value or {self.n_stages} (one per stage), got {value!r}")
            return list(value)
        return [value] * self.n_stages

    def fit(self, x, y) -> "MultistagePOU":
        """Fit the stages one after another to ``y`` at ``x`` ((N,) or (N, d)); returns self."""
        x = torch.as_tensor(x, dtype=_DTYPE)
        d = 1 if x.dim() == 1 else x.shape[-1]
        x = _points(x, d)
        if x.shape[0] == 0:
            raise ValueError("x holds no points")
        y = torch.as_tensor(y, dtype=_DTYPE).reshape(-1)
        if y.shape[0] != x.shape[0] or not torch.all(torch.isfinite(y)):
            raise ValueError(f"y must hold {x.shape[0]} finite values (one per point of x), got shape {tuple(y.shape)}")
        scale = float(y.pow(2).mean().sqrt())
        if scale == 0:
            raise ValueError("y is zero everywhere: there is nothing to fit")
        domain = self.domain if self.domain is not None else (x.min(0).values, x.max(0).values)
        self.d_in_ = d
        self.stages_: list[POUStage] = []
        residue = y.clone()
        for k in range(self.n_stages):
            eps = float(residue.pow(2).mean().sqrt())
            if eps == 0 or (self.target_rms is not None and eps <= self.target_rms * scale):
                break
            t0 = time.perf_counter()
            net = POUnet(d, self.n_part[k], self.degree[k], partition=self.partition, domain=domain,
                         seed=self.seed + k, net_width=self.net_width, net_depth=self.net_depth)
            hist = fit_pou(net, x, residue / eps, steps=self.steps, lr=self.lr, mu=self.mu)
            with torch.no_grad():
                residue = residue - eps * net(x)
            self.stages_.append(POUStage(k, eps, net, float(residue.pow(2).mean().sqrt()),
                                         time.perf_counter() - t0, hist))
        return self

    def predict_stages(self, x) -> torch.Tensor:
        """Every stage's contribution eps_k u_k(x), shape (n_stages_fitted, N)."""
        if not hasattr(self, "stages_"):
            raise ValueError("MultistagePOU is not fitted: call fit(x, y) first")
        x = _points(x, self.d_in_)
        with torch.no_grad():
            return torch.stack([s.eps * s.model(x) for s in self.stages_]) if self.stages_ else \
                torch.zeros(0, x.shape[0], dtype=_DTYPE)

    def predict(self, x, n_stages: int | None = None) -> torch.Tensor:
        """The model ``sum_{k < n_stages} eps_k u_k(x)`` (all fitted stages by default), shape (N,)."""
        parts = self.predict_stages(x)
        n = parts.shape[0] if n_stages is None else count(n_stages, "n_stages", 0)
        return parts[:n].sum(0)

    def rms_error(self, x, y, n_stages: int | None = None) -> float:
        """RMS of ``y - predict(x, n_stages)``."""
        y = torch.as_tensor(y, dtype=_DTYPE).reshape(-1)
        return float((y - self.predict(x, n_stages)).pow(2).mean().sqrt())
