"""Ensembles: many independent single-stage networks trained as one batched network.

The sweeps of Appendix A (Fig. 15: eight random initialisations per setting) and
the scale-factor scan of Fig. 4 train many small networks on the same inputs.
:func:`fit_ensemble` puts them into one :class:`~msnn.networks.StageNetwork` with
``n_models`` members (a leading member axis on every weight, batched matrix
products), so an eight-member ensemble costs a small multiple of one network.

Each member minimises its own loss, eq. (2.1) of Wang & Lai (2024),

    L_k = (1/N_d) sum_i [u_k(x_i) - y_{k,i}]^2,

with its own seed and, for the scan of Fig. 4, its own modified scale factor
``kappa_hat`` (eq. 2.8). The data are fitted as given (no normalisation), so the
unnormalised targets of Appendix B (Fig. 16) can be fitted too.

Independence: Adam's update is elementwise, so the summed loss gives every member
exactly the path it would follow alone (up to rounding in the batched products).
L-BFGS is not elementwise: its line search and curvature pairs would couple the
members. L-BFGS therefore runs member by member, on a single-network copy of each
member, and the result is copied back into the ensemble.

Used in chapters 1 (``ch-plateau``) and 3 (``ch-scale-factor``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch

from .networks import StageNetwork
from ._common import as_points, count, resolve_device
from .training import train

__all__ = ["EnsembleFit", "fit_ensemble"]


@dataclass
class EnsembleFit:
    """What :func:`fit_ensemble` returns.

    Attributes:
        net: the trained ensemble (``net(x)`` has shape (n_members, N)).
        loss: one array per member: training loss per Adam step, then per L-BFGS
            function evaluation (line-search evaluations included).
        train_rms: RMS training error of each member, shape (n_members,).
        val_rms: RMS error on the validation set (NaN without one), shape (n_members,).
        seeds: seed of each member.
        kappa_hat: modified scale factor of each member (NaN for a regular network).
        adam_steps, lbfgs_iterations: Adam steps, and L-BFGS iterations per member.
        seconds: wall time of the whole fit.
    """

    net: StageNetwork
    loss: list[np.ndarray]
    train_rms: np.ndarray
    val_rms: np.ndarray
    seeds: list[int]
    kappa_hat: np.ndarray
    adam_steps: int = 0
    lbfgs_iterations: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Every member's prediction at ``x``, shape (n_members, N), as float64 numpy."""
        xt = _as_inputs(x, "x", self.net.in_dim).to(dtype=self.net.dtype, device=self.net.device)
        with torch.no_grad():
            return self.net(xt).to(torch.float64).cpu().numpy().reshape(self.n_members, -1)

    def final_loss(self) -> np.ndarray:
        """Last recorded training loss of each member."""
        return np.array([h[-1] if len(h) else np.nan for h in self.loss])


def _as_inputs(x, name: str, in_dim: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(as_points(x, None, name))
    if t.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N,) or (N, d), got {tuple(t.shape)}")
    if in_dim is not None and t.shape[1] != in_dim:
        raise ValueError(f"{name} needs {in_dim} columns, got shape {tuple(t.shape)}")
    return t


def _as_targets(y, name: str, n_points: int, n_members: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y.detach().cpu() if torch.is_tensor(y) else y, dtype=np.float64))
    if t.dim() == 1:
        t = t[None, :]
    if t.dim() != 2 or t.shape[1] != n_points or t.shape[0] not in (1, n_members):
        raise ValueError(f"{name} must have shape ({n_points},) or ({n_members}, {n_points}), got {tuple(t.shape)}")
    if not torch.all(torch.isfinite(t)):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def fit_ensemble(
    x: ArrayLike,
    y: ArrayLike,
    *,
    widths: Sequence[int] = (20, 20, 20),
    seeds: Sequence[int] = (0,),
    first_activation: str = "tanh",
    kappa_hat: ArrayLike | None = None,
    adam_steps: int = 5000,
    lbfgs_steps: int = 0,
    lr: float = 1e-3,
    x_val: ArrayLike | None = None,
    y_val: ArrayLike | None = None,
    init: str = "xavier_normal",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    desc: str = "ensemble",
) -> EnsembleFit:
    """Train ``len(seeds)`` independent networks of one shape as one batched ensemble.

    Args:
        x: training inputs, shape (N,) or (N, d).
        y: targets, shape (N,) (the same for every member) or (n_members, N) (one
            target per member, e.g. the magnitudes of Fig. 16).
        widths: hidden widths, e.g. ``(20, 20, 20)``.
        seeds: one seed per member; member k is initialised exactly as a single
            :class:`StageNetwork` with ``seed=seeds[k]``.
        first_activation: ``"tanh"`` or ``"sin"`` (first layer only).
        kappa_hat: ``None`` (regular network, kappa = 1), a scalar (every member), or
            one modified scale factor per member (eq. 2.8; a scan as in Fig. 4).
        adam_steps: Adam steps, all members at once (learning rate ``lr``).
        lbfgs_steps: L-BFGS iterations afterwards, member by member (see module doc).
        lr: Adam learning rate (1e-3 in the authors' code).
        x_val, y_val: optional validation set (a dense grid).
        init: ``"xavier_normal"`` or ``"xavier_truncated"``.
        dtype, device: of the network and the data (float64 by default; device "auto": a
            GPU when torch sees one, else the CPU).
        progress: draw progress bars (default: unless MSNN_PROGRESS=0).
        desc: label of the progress bar.

    Returns:
        An :class:`EnsembleFit`.

    Raises:
        ValueError: on NaN/inf data, mismatched shapes, no seeds, a ``kappa_hat`` of
            the wrong length, or a non-float dtype.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    adam_steps = count(adam_steps, "adam_steps")
    lbfgs_steps = count(lbfgs_steps, "lbfgs_steps")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    E = len(seeds)
    xt = _as_inputs(x, "x")
    N, d = xt.shape
    yt = _as_targets(y, "y", N, E)
    member_kh = None
    if kappa_hat is not None:
        kh = np.asarray(kappa_hat, dtype=np.float64)
        if kh.ndim == 0:
            kh = np.full(E, float(kh))
        if kh.ndim != 1 or kh.shape[0] != E:
            raise ValueError(f"kappa_hat must be a scalar or one value per member ({E}), got shape {kh.shape}")
        if not np.all(np.isfinite(kh)) or np.any(kh <= 0):
            raise ValueError(f"kappa_hat must be finite and positive, got {kh.tolist()}")
        member_kh = kh
    has_val = x_val is not None or y_val is not None
    if has_val:
        if x_val is None or y_val is None:
            raise ValueError("give both x_val and y_val, or neither")
        xv = _as_inputs(x_val, "x_val", d)
        yv = _as_targets(y_val, "y_val", xv.shape[0], E)

    t0 = time.perf_counter()
    net = StageNetwork(d, widths, first_activation=first_activation,
                       member_kappa_hat=member_kh, seeds=seeds, ensemble=True, init=init,
                       dtype=dtype, device=resolve_device(device))
    dev = net.device
    xt = xt.to(dtype=dtype, device=dev)
    yt = yt.to(dtype=dtype, device=dev)

    def loss_fn():
        return torch.mean((net(xt) - yt) ** 2, dim=1)  # (E,): members stay independent under Adam

    histories = [np.zeros(0) for _ in range(E)]
    if adam_steps:
        h = train(net, loss_fn, adam_steps=adam_steps, lbfgs_steps=0, lr=lr, progress=progress, desc=desc)
        loss = h.loss.reshape(len(h.loss), E)
        histories = [loss[:, k].copy() for k in range(E)]
    lbfgs_iters = [0] * E
    if lbfgs_steps:
        for k in range(E):
            single = net.member(k)
            yk = yt[k if yt.shape[0] > 1 else 0]

            def loss_k(single=single, yk=yk):
                return torch.mean((single(xt) - yk) ** 2)

            hk = train(single, loss_k, adam_steps=0, lbfgs_steps=lbfgs_steps, progress=progress,
                       desc=f"{desc} L-BFGS {k + 1}/{E}")
            with torch.no_grad():
                for p, q in zip(net.parameters(), single.parameters()):
                    p[k : k + 1].copy_(q)
            histories[k] = np.concatenate([histories[k], hk.loss.reshape(-1)])
            lbfgs_iters[k] = hk.lbfgs_iterations

    with torch.no_grad():
        pred = net(xt).to(torch.float64)
        train_rms = torch.sqrt(torch.mean((pred - yt.to(torch.float64)) ** 2, dim=1)).cpu().numpy()
        if has_val:
            pv = net(xv.to(dtype=dtype, device=dev)).to(torch.float64)
            val_rms = torch.sqrt(torch.mean((pv - yv.to(dtype=torch.float64, device=dev)) ** 2, dim=1)).cpu().numpy()
        else:
            val_rms = np.full(E, np.nan)
    return EnsembleFit(
        net=net, loss=histories, train_rms=train_rms, val_rms=val_rms, seeds=seeds,
        kappa_hat=member_kh if member_kh is not None else np.full(E, np.nan),
        adam_steps=int(adam_steps), lbfgs_iterations=lbfgs_iters, seconds=time.perf_counter() - t0,
    )
