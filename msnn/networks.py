"""Stage networks: an MLP whose first layer carries the scale factor kappa.

The network of one stage is

    u(x) = W_L tanh( ... tanh( W_1 act(kappa * (x W_0) + b_0) + b_1) ... ) + b_L,

with ``act`` either ``tanh`` (the first stage) or ``sin`` (higher stages), see
Sections 2.2.2-2.2.3 of Wang & Lai (2024). ``kappa`` multiplies only the
first-layer weights ``W_0``, never the bias. It is given through the *modified*
scale factor ``kappa_hat`` of eq. (2.8), ``kappa = kappa_hat / sqrt(Var)``, where
``Var = 2 / (fan_in + fan_out)`` is the nominal Xavier variance of ``W_0``.

Every network here can hold an *ensemble* of ``n_models`` independent members of
one shape: the weights carry a leading member axis and the forward pass is a
batched matrix product, so eight seeds train at about the cost of one. A member
initialised from seed ``s`` is identical to a single network initialised from
``s``. Members may also carry their own scale factor (``member_kappa_hat``), so a scan
over ``kappa_hat`` (Fig. 4) is one batched network too.

The library never changes global torch defaults: dtype and device are set on the
network's own tensors (float64 unless asked otherwise).
"""
from __future__ import annotations

from numpy.typing import ArrayLike

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["StageNetwork", "FourierFeatureNetwork", "xavier_std", "kappa_from_hat", "stage_forward", "points_per_chunk"]

_ACTIVATIONS = ("tanh", "sin")


def xavier_std(fan_in: int, fan_out: int) -> float:
    """Nominal Xavier (Glorot) standard deviation sqrt(2 / (fan_in + fan_out))."""
    return math.sqrt(2.0 / (fan_in + fan_out))


def kappa_from_hat(kappa_hat: ArrayLike, fan_in: int, fan_out: int):
    """Scale factor from the modified scale factor, eq. (2.8): kappa = kappa_hat / sqrt(Var).

    Args:
        kappa_hat: modified scale factor (scalar or one value per input axis).
        fan_in, fan_out: shape of the first layer, which fixes Var = 2/(fan_in+fan_out).
    """
    return torch.as_tensor(kappa_hat, dtype=torch.float64) / xavier_std(fan_in, fan_out)


def points_per_chunk(nets, budget: int, least: int, most: int | None = None) -> int:
    """How many points to evaluate at once so that points x (widest hidden layer) stays near
    ``budget`` (memory grows with both), clamped to [least, most]; ``nets`` may hold objects
    without ``widths`` (they count as width 1)."""
    widest = max((max(n.widths) for n in nets if hasattr(n, "widths")), default=1)
    chunk = max(least, budget // max(widest, 1))
    return chunk if most is None else min(most, chunk)


def stage_forward(h, params: Sequence, first_activation: str, *, affine, sin=torch.sin, tanh=torch.tanh):
    """The stage network's layers on first-layer inputs ``h = kappa * x`` (the one forward pass).

    ``params`` is ``[W_0, b_0, ..., W_L, b_L]``; layer l computes ``affine(h, W_l, b_l)``,
    then ``act`` after layer 0 (``sin`` or ``tanh``), ``tanh`` after the hidden layers and
    nothing after the output layer. Every evaluation of a stage network goes through here,
    with the affine map that fits its layout: batched members (:class:`StageNetwork`'s ``forward``),
    one set of weights or one copy per point (the Jacobians of :mod:`msnn.phases`), or numpy
    in long double (:func:`msnn.phases.rows.evaluate`).
    """
    n_layers = len(params) // 2
    for l in range(n_layers):
        h = affine(h, params[2 * l], params[2 * l + 1])
        if l == 0:
            h = sin(h) if first_activation == "sin" else tanh(h)
        elif l < n_layers - 1:
            h = tanh(h)
    return h


def _batched(h, W, b):
    return torch.baddbmm(b, h, W)


class StageNetwork(nn.Module):
    """MLP with a scaled first layer, optionally an ensemble of independent members.

    Args:
        in_dim: number of inputs d.
        widths: hidden widths, e.g. ``(20, 20, 20)`` for the paper's 3x20 network.
        first_activation: ``"tanh"`` (stage 1) or ``"sin"`` (stages >= 2).
        kappa_hat: modified scale factor (eq. 2.8); a scalar, or one value per input
            axis (then each input axis gets its own kappa). ``kappa_hat=None`` means
            kappa = 1 (a regular network).
        member_kappa_hat: one modified scale factor per ensemble member, shape
            (n_models,) or (n_models, d); overrides ``kappa_hat`` (used by scans over
            kappa_hat that train all values as one batched ensemble, Fig. 4).
        n_models: number of ensemble members (independent networks of this shape).
        seed: seed of member 0; member k is initialised from ``seed + k`` unless
            ``seeds`` is given.
        seeds: explicit seed per member (overrides ``seed``).
        init: ``"xavier_normal"`` (default) or ``"xavier_truncated"`` (normal truncated
            at +-2 std, as in the authors' code). Biases start at zero.
        dtype, device: of the parameters (float64 by default).

    ``forward(x)`` takes x of shape (N, d) (or (N,) when d = 1) and returns shape
    (N,) for a single network or (n_models, N) for an ensemble (``n_models > 1``
    or ``ensemble=True``).
    """

    def __init__(
        self,
        in_dim: int,
        widths: Sequence[int] = (20, 20, 20),
        *,
        first_activation: str = "tanh",
        kappa_hat: ArrayLike | None = None,
        member_kappa_hat: ArrayLike | None = None,
        n_models: int = 1,
        ensemble: bool | None = None,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
        init: str = "xavier_normal",
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if in_dim < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim}")
        widths = tuple(int(w) for w in widths)
        if len(widths) < 1 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty list of positive ints, got {widths}")
        if first_activation not in _ACTIVATIONS:
            raise ValueError(f"first_activation must be one of {_ACTIVATIONS}, got {first_activation!r}")
        if init not in ("xavier_normal", "xavier_truncated"):
            raise ValueError(f"init must be 'xavier_normal' or 'xavier_truncated', got {init!r}")
        if seeds is not None:
            seeds = [int(s) for s in seeds]
            n_models = len(seeds)
        else:
            seeds = [int(seed) + k for k in range(n_models)]
        if n_models < 1:
            raise ValueError(f"n_models must be >= 1, got {n_models}")
        self.in_dim = int(in_dim)
        self.widths = widths
        self.first_activation = first_activation
        self.n_models = int(n_models)
        self.ensemble = bool(ensemble) if ensemble is not None else self.n_models > 1
        self.seeds = seeds
        self.init = init
        sizes = (self.in_dim,) + widths + (1,)
        self.sizes = sizes

        if kappa_hat is None:
            kh = torch.full((self.in_dim,), xavier_std(sizes[0], sizes[1]), dtype=torch.float64)
        else:
            kh = torch.as_tensor(kappa_hat, dtype=torch.float64).flatten()
            if kh.numel() == 1:
                kh = kh.expand(self.in_dim).clone()
            if kh.numel() != self.in_dim:
                raise ValueError(f"kappa_hat needs 1 or {self.in_dim} values, got {kh.numel()}")
            if not torch.all(torch.isfinite(kh)) or torch.any(kh <= 0):
                raise ValueError(f"kappa_hat must be finite and positive, got {kh.tolist()}")
        self.kappa_hat = kh.clone()
        kappa = kappa_from_hat(kh, sizes[0], sizes[1])
        self.member_kappa_hat = None
        if member_kappa_hat is not None:
            mk = torch.as_tensor(member_kappa_hat, dtype=torch.float64)
            if mk.dim() == 1:
                mk = mk[:, None]
            if mk.dim() != 2 or mk.shape[0] != self.n_models or mk.shape[1] not in (1, self.in_dim):
                raise ValueError(
                    f"member_kappa_hat needs shape ({self.n_models},) or ({self.n_models}, {self.in_dim}), "
                    f"got {tuple(torch.as_tensor(member_kappa_hat).shape)}")
            mk = mk.expand(self.n_models, self.in_dim).clone()
            if not torch.all(torch.isfinite(mk)) or torch.any(mk <= 0):
                raise ValueError(f"member_kappa_hat must be finite and positive, got {mk.flatten().tolist()}")
            self.member_kappa_hat = mk
            self.kappa_hat = mk[0].clone()
            # one kappa per member: shape (E, 1, d), broadcast against (N, d) inputs
            kappa = kappa_from_hat(mk, sizes[0], sizes[1])[:, None, :]
        # kappa scales the rows of W_0 (one per input axis): x W_0 -> (x * kappa) W_0.
        self.register_buffer("kappa", kappa.to(dtype=dtype, device=device))

        weights, biases = [], []
        for l in range(len(sizes) - 1):
            fan_in, fan_out = sizes[l], sizes[l + 1]
            std = xavier_std(fan_in, fan_out)
            w = torch.empty(self.n_models, fan_in, fan_out, dtype=torch.float64)
            for k, s in enumerate(seeds):
                g = torch.Generator().manual_seed(s * 1000 + l)
                if init == "xavier_normal":
                    w[k] = torch.randn(fan_in, fan_out, generator=g, dtype=torch.float64) * std
                else:
                    z = torch.randn(4 * fan_in * fan_out, generator=g, dtype=torch.float64)
                    z = z[z.abs() <= 2.0][: fan_in * fan_out]
                    w[k] = z.reshape(fan_in, fan_out) * std
            weights.append(nn.Parameter(w.to(dtype=dtype, device=device)))
            biases.append(nn.Parameter(torch.zeros(self.n_models, 1, fan_out, dtype=dtype, device=device)))
        self.weights = nn.ParameterList(weights)
        self.biases = nn.ParameterList(biases)

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    def n_weights(self, biases: bool = False) -> int:
        """Weights (and biases) of one member, e.g. 840 (901) for [1, 20, 20, 20, 1]."""
        n = sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        if biases:
            n += sum(self.sizes[1:])
        return n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            x = x[:, None]
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected inputs with {self.in_dim} columns, got shape {tuple(x.shape)}")
        h = x * self.kappa  # (N, d) or (E, N, d): kappa on W_0 only, never on the bias
        if h.dim() == 2:
            h = h.unsqueeze(0).expand(self.n_models, -1, -1)
        params = [t for wb in zip(self.weights, self.biases) for t in wb]
        out = stage_forward(h, params, self.first_activation, affine=_batched)[..., 0]  # (E, N)
        return out if self.ensemble else out[0]

    def member(self, k: int) -> "StageNetwork":
        """A single (non-ensemble) copy of member ``k`` with the same weights."""
        net = StageNetwork(
            self.in_dim, self.widths, first_activation=self.first_activation,
            kappa_hat=self.kappa_hat if self.member_kappa_hat is None else self.member_kappa_hat[k],
            seeds=[self.seeds[k]], init=self.init,
            dtype=self.dtype, device=self.device,
        )
        with torch.no_grad():
            for p, q in zip(net.parameters(), self.parameters()):
                p.copy_(q[k : k + 1])
        return net

    def extra_repr(self) -> str:
        if self.member_kappa_hat is not None:
            return (f"sizes={list(self.sizes)}, first_activation={self.first_activation}, "
                    f"member_kappa_hat={[round(v, 4) for v in self.member_kappa_hat[:, 0].tolist()]}, "
                    f"n_models={self.n_models}")
        kh = self.kappa_hat.tolist()
        return (
            f"sizes={list(self.sizes)}, first_activation={self.first_activation}, "
            f"kappa_hat={kh[0] if len(set(kh)) == 1 else kh:.4g}, n_models={self.n_models}"
            if len(set(kh)) == 1 else
            f"sizes={list(self.sizes)}, first_activation={self.first_activation}, "
            f"kappa_hat={[round(v, 4) for v in kh]}, n_models={self.n_models}"
        )


class FourierFeatureNetwork(nn.Module):
    """Random Fourier features followed by a tanh MLP (Tancik et al. 2020; Fig. 3(d)).

        gamma(x) = [cos(2 pi x B), sin(2 pi x B)],  B_ij ~ N(0, sigma^2),

    with ``B`` fixed (not trained), then ``widths`` tanh layers and a linear output.
    Wang & Lai (2024), Section 2.2.2, compare it with a sine first layer scaled by
    kappa (chapter ``ch-spectral-bias``).

    Args:
        in_dim: number of inputs d.
        n_features: number of frequencies (the features are twice as many).
        sigma: standard deviation of the frequencies, in cycles per unit of input.
        widths: hidden widths of the MLP after the features.
        seed: seeds the frequencies and the Xavier-normal weights (biases zero).
        dtype, device: of the parameters (float64 by default).

    ``forward(x)`` takes shape (N, d) or (N,) and returns shape (N,).
    """

    def __init__(self, in_dim: int = 1, n_features: int = 32, sigma: float = 5.0,
                 widths: Sequence[int] = (20, 20, 20), *, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> None:
        super().__init__()
        if in_dim < 1 or n_features < 1:
            raise ValueError(f"in_dim and n_features must be >= 1, got {in_dim}, {n_features}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be finite and positive, got {sigma}")
        widths = tuple(int(w) for w in widths)
        if len(widths) < 1 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty list of positive ints, got {widths}")
        self.in_dim, self.n_features, self.sigma, self.widths = int(in_dim), int(n_features), float(sigma), widths
        g = torch.Generator().manual_seed(int(seed) * 1000 + 999)
        B = torch.randn(self.in_dim, self.n_features, generator=g, dtype=torch.float64) * self.sigma
        self.register_buffer("B", B.to(dtype=dtype, device=device))
        sizes = (2 * self.n_features,) + widths + (1,)
        weights, biases = [], []
        for l in range(len(sizes) - 1):
            g = torch.Generator().manual_seed(int(seed) * 1000 + l)
            w = torch.randn(sizes[l], sizes[l + 1], generator=g, dtype=torch.float64) * xavier_std(sizes[l], sizes[l + 1])
            weights.append(nn.Parameter(w.to(dtype=dtype, device=device)))
            biases.append(nn.Parameter(torch.zeros(sizes[l + 1], dtype=dtype, device=device)))
        self.weights = nn.ParameterList(weights)
        self.biases = nn.ParameterList(biases)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            x = x[:, None]
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected inputs with {self.in_dim} columns, got shape {tuple(x.shape)}")
        z = 2 * math.pi * (x @ self.B)
        h = torch.cat([torch.cos(z), torch.sin(z)], dim=-1)
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = torch.tanh(h @ w + b)
        return (h @ self.weights[-1] + self.biases[-1])[..., 0]
