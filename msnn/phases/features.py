"""The "features" phase: a stage whose first layer is drawn, not trained, and whose output layer is solved.

A one-hidden-layer stage with a sine first layer,

    u(x) = sum_j w_j sin(k_j . x + b_j) + b,

is linear in its output layer. Draw the frequencies ``k_j`` uniformly in a box
``[-K, K]^d`` and the phases ``b_j`` uniformly in ``[-pi, pi]``, and the best output
layer is one least-squares solve, with no iteration at all (random Fourier features,
or an extreme learning machine with sine units; for a linear PDE the rows are the
equation applied to each feature, as local extreme learning machines and the
variable-projection networks of Dong & Yang do). What matters is the scale ``K``:
too small and the features are nearly collinear (the solve loses digits to the
condition number); too large and they oscillate between the points the rows see.
The phase tries a ladder of scales tied to the resolution of the training points,

    K = pi / h * (1/32, 1/16, 1/8, 1/4),   h = extent / N^(1/d) per axis,

(``pi / h`` is the highest frequency that N evenly spread points resolve) solves the
output layer for each (SVD with its columns scaled to unit norm, singular values
below ``rcond * s_max`` dropped) and keeps the draw that is best on the validation rows
(or, without them, on the training rows); of draws within 2x (RMS) of the best it keeps
the lowest scale: near round-off the upper scales tie on the rows, and lower
frequencies oscillate less between the points, where the error of a too-rich basis
gathers at the domain's edges. Each stage of a multi-stage fit draws anew
at the scale its residue needs: the papers' recipe (a new network on the normalized
residue, its first layer set from the residue) with the first layer's fit replaced by
a draw and a choice. ``benchmarks/beyond_1d.py`` measures it.
"""
from __future__ import annotations

import math
import time

import torch

from .registry import PhaseReport
from .rows import get_output, scaled_rows, set_output
from .runner import NetworkTrainee, register_phase
from .schedule import Phase

__all__ = ["FEATURE_LADDER", "TIE", "draw_features", "resolution_frequency"]

#: The fractions of the points' resolving frequency pi / h that the phase tries.
FEATURE_LADDER = (1 / 32, 1 / 16, 1 / 8, 1 / 4)

#: A draw whose validation loss (a mean square) is within this factor of the best one
#: counts as as good; the phase keeps the lowest such scale (2x in RMS).
TIE = 4.0


def resolution_frequency(x: torch.Tensor) -> torch.Tensor:
    """pi / h per input axis, with h = (extent of the axis) / N^(1/d): the highest angular
    frequency that N points spread evenly over the points' bounding box resolve."""
    if x.dim() == 1:
        x = x[:, None]
    n, d = x.shape
    ext = (x.max(0).values - x.min(0).values).to(torch.float64)
    if torch.any(ext <= 0):
        raise ValueError("the 'features' phase needs points that span every input axis")
    return math.pi * n ** (1.0 / d) / ext


def draw_features(net, scale: torch.Tensor, generator: torch.Generator) -> None:
    """Set the first layer of a one-hidden-layer sine stage to sin(k . x + b): every k_j
    uniform in the box [-scale_a, scale_a] per axis, b_j uniform in [-pi, pi]."""
    W, b = net.weights[0], net.biases[0]
    d, m = W.shape[1], W.shape[2]
    u = 2 * torch.rand(d, m, generator=generator, dtype=torch.float64) - 1
    k = u * scale.reshape(d, 1).to(torch.float64)
    kappa = net.kappa.reshape(-1).to(torch.float64).cpu()
    phase = math.pi * (2 * torch.rand(m, generator=generator, dtype=torch.float64) - 1)
    with torch.no_grad():
        W.copy_((k / kappa.reshape(d, 1)).reshape(W.shape).to(W.dtype))
        b.copy_(phase.reshape(b.shape).to(b.dtype))


def _check_net(net) -> None:
    if len(net.weights) != 2 or net.first_activation != "sin":
        raise ValueError("the 'features' phase draws the first layer of a stage with one hidden layer and a sine "
                         f"first activation; this stage has widths {tuple(net.widths)} and a "
                         f"{net.first_activation} first layer")


@register_phase("features", needs={"linear-output"}, options={"rcond"}, takes_steps=False, second_order=True)
def _features(t, ph: Phase, bar, progress: bool, desc: str) -> PhaseReport:
    """Draw the first layer at each scale of :data:`FEATURE_LADDER`, solve the output layer, keep the best."""
    if not isinstance(t, NetworkTrainee):
        raise ValueError("the 'features' phase trains stage networks (MultistageRegressor, MultistagePINN)")
    net = t.net
    _check_net(net)
    t0 = time.perf_counter()
    rcond = ph.opt("rcond", 1e-15)
    k_res = resolution_frequency(t.groups[0].x.detach().cpu())
    seed = int(net.seeds[0]) if getattr(net, "seeds", None) else 0
    gen = torch.Generator().manual_seed(1_000_003 * (seed + 1))
    before = t.loss_before_solve()
    history, tried, draws = [], [], []
    for frac in FEATURE_LADDER:
        draw_features(net, frac * k_res, gen)
        # from a zero output layer: the solve subtracts A w_0 from the rows, and the last
        # scale's w_0 (large where its features were nearly collinear) would cost digits
        set_output(net, torch.zeros_like(get_output(net)))
        loss, rank = t.solve_output(0.0, rcond, equilibrate=True)
        score = float((scaled_rows(net, t.validation) ** 2).sum()) if t.validation else loss
        history.append(loss)
        tried.append({"fraction": frac, "loss": loss, "score": score, "rank": rank})
        draws.append((score, loss, rank, [p.detach().clone() for p in (net.weights[0], net.biases[0])],
                       get_output(net).clone(), frac))
        if bar is not None:
            bar.update(1)
    # the lowest scale within TIE of the best score: near round-off the scores of the upper
    # scales tie, and the lower frequencies oscillate less between the points (and at the edges)
    top = min(d[0] for d in draws)
    best = next(d for d in draws if d[0] <= TIE * top)
    score, loss, rank, (W0, b0), w, frac = best
    with torch.no_grad():
        net.weights[0].copy_(W0)
        net.biases[0].copy_(b0)
    set_output(net, w)
    net.feature_scale = [float(v) for v in frac * k_res]
    return PhaseReport("features", len(FEATURE_LADDER), before, loss, time.perf_counter() - t0,
                       f"best of {len(FEATURE_LADDER)} scales: {frac:g} pi/h", history, rank, tried=tried)
