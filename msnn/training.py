"""Training of one stage: Adam, then L-BFGS, with the loss recorded at every step.

The schedule follows the paper and the authors' code: Adam (learning rate 1e-3)
for a fixed number of steps, then full-batch L-BFGS with a strong-Wolfe line search.
PyTorch's L-BFGS stops by default once the loss changes by less than 1e-9 or the
gradient falls below 1e-7, far above where a machine-precision stage must go; here
both tolerances are 0 and the run is bounded by its iteration count only.

History convention: one loss per Adam step, then one loss per
L-BFGS *function evaluation* (line-search evaluations included). ``iterations``
counts Adam steps plus L-BFGS iterations; ``evaluations`` counts Adam steps plus
L-BFGS evaluations, which is the length of ``loss``.

Ensembles: a loss function may return one loss per member (shape (E,)); Adam then
trains the members independently (the step is elementwise, so member k follows
exactly the path it would follow alone). L-BFGS couples members through its line
search, so it sums them; use it on single networks when exact independence matters.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from ._common import StepCounts, count, show_progress

__all__ = ["TrainHistory", "train", "merge_histories"]


@dataclass
class TrainHistory(StepCounts):
    """What one training run did.

    Attributes:
        loss: loss per Adam step then per L-BFGS evaluation; shape (n,) or (n, E).
        adam_steps: Adam steps run.
        lbfgs_iterations: L-BFGS iterations run.
        lbfgs_evaluations: L-BFGS function evaluations run.
        final_loss: loss of the returned parameters (the best seen in L-BFGS).
        seconds: wall time.
        stopped: why training ended ("budget", "target", "lbfgs-converged", "nonfinite").
    """

    loss: np.ndarray
    adam_steps: int = 0
    lbfgs_iterations: int = 0
    lbfgs_evaluations: int = 0
    final_loss: float | np.ndarray = math.nan
    seconds: float = 0.0
    stopped: str = "budget"
    extra: dict = field(default_factory=dict)


def merge_histories(parts: list[TrainHistory], *, seconds: float, stopped: str, final_loss: float,
                    extra: dict | None = None) -> TrainHistory:
    """One TrainHistory for a stage trained in several phases: losses concatenated, steps summed.

    Phases that are not Adam or L-BFGS (Levenberg-Marquardt, LSGD) give their part as a
    TrainHistory too (LSGD's Adam steps as ``adam_steps``; LM's iterations in ``extra``).
    """
    return TrainHistory(
        loss=np.concatenate([np.asarray(h.loss, dtype=float) for h in parts]) if parts else np.zeros(0),
        adam_steps=sum(h.adam_steps for h in parts), lbfgs_iterations=sum(h.lbfgs_iterations for h in parts),
        lbfgs_evaluations=sum(h.lbfgs_evaluations for h in parts), final_loss=final_loss, seconds=seconds,
        stopped=stopped, extra=dict(extra or {}))


def _check_steps(name: str, n) -> int:
    return count(n, name)


def train(
    params: Iterable[torch.Tensor] | torch.nn.Module,
    loss_fn: Callable[[], torch.Tensor],
    *,
    adam_steps: int = 5000,
    lbfgs_steps: int = 5000,
    lr: float = 1e-3,
    lr_schedule: Callable[[int], float] | None = None,
    target_loss: float | None = None,
    progress: bool | None = None,
    desc: str = "train",
    before_step: Callable[[int], None] | None = None,
    fast: bool | str = "auto",
) -> TrainHistory:
    """Adam for ``adam_steps`` steps, then L-BFGS for at most ``lbfgs_steps`` iterations.

    Args:
        params: the parameters to train (an iterable of tensors, or a module).
        loss_fn: closure returning the loss, a scalar or one value per ensemble member.
        adam_steps: Adam steps (lr ``lr``, PyTorch's default betas).
        lbfgs_steps: L-BFGS iterations (strong Wolfe, tolerances 0, history 50).
        lr: Adam learning rate (1e-3 in the paper's code).
        lr_schedule: optional factor on ``lr`` as a function of the Adam step.
        target_loss: stop as soon as the (summed) loss is at or below this value.
        progress: draw a progress bar (default: unless MSNN_PROGRESS=0).
        desc: label of the progress bar.
        before_step: called with the Adam step index before each step (e.g. to
            resample collocation points). Python code between steps cannot be
            replayed as a CUDA graph: put device-side resampling inside ``loss_fn``
            to keep the fast path.
        fast: ``"auto"`` (default) replays the Adam step as a CUDA graph when the
            parameters live on a GPU and the stage can be captured (no
            ``before_step``, no ``lr_schedule``, no ``target_loss``); otherwise, and
            always on the CPU, the eager loop runs. Which path ran is in
            ``history.extra["adam_path"]``; a stage that could not be captured says
            why once in the log. ``False`` forces eager.

    Returns:
        A :class:`TrainHistory`. L-BFGS keeps the best parameters it evaluated: if
        the last evaluation is worse than the best (or not finite), the best
        parameters are restored.
    """
    adam_steps = _check_steps("adam_steps", adam_steps)
    lbfgs_steps = _check_steps("lbfgs_steps", lbfgs_steps)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters")

    t0 = time.perf_counter()
    total = adam_steps + lbfgs_steps
    bar = None
    if show_progress(progress) and total > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, leave=False, mininterval=0.5)

    records: list[torch.Tensor] = []
    hist = TrainHistory(loss=np.zeros(0))
    stopped = "budget"

    # ---- Adam -------------------------------------------------------------
    if adam_steps:
        path, why = _choose_path(params, fast, before_step, lr_schedule, target_loss)
        hist.extra["adam_path"] = path
        if why:
            _log_once(f"msnn.train: eager Adam ({why})")
        buf = None
        if path == "cuda-graph":
            try:
                buf = _adam_cuda_graph(params, loss_fn, adam_steps, lr, bar)
                hist.adam_steps = adam_steps
            except Exception as exc:  # capture failed: fall back to eager from the same start
                _log_once(f"msnn.train: CUDA graph capture failed ({type(exc).__name__}: {exc}); eager Adam")
                hist.extra["adam_path"] = "eager"
                buf = None
        if buf is None:
            opt = torch.optim.Adam(params, lr=lr)
            for i in range(adam_steps):
                if lr_schedule is not None:
                    for g in opt.param_groups:
                        g["lr"] = lr * float(lr_schedule(i))
                if before_step is not None:
                    before_step(i)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn()
                loss.sum().backward()
                opt.step()
                val = loss.detach()
                if buf is None:
                    buf = torch.empty((adam_steps,) + tuple(val.shape), dtype=torch.float64, device=val.device)
                buf[i] = val
                hist.adam_steps = i + 1
                if bar is not None and (i % 200 == 199 or i == adam_steps - 1):
                    bar.update(200 if i % 200 == 199 else (i % 200) + 1)
                    bar.set_postfix_str(f"loss {float(val.sum()):.3e}")
                if target_loss is not None and (i % 50 == 49 or i == adam_steps - 1):
                    if float(val.sum()) <= target_loss:
                        stopped = "target"
                        break
        records.append(buf[: hist.adam_steps].cpu())

    # ---- L-BFGS -----------------------------------------------------------
    if lbfgs_steps and stopped != "target":
        lb = torch.optim.LBFGS(
            params, lr=1.0, max_iter=lbfgs_steps, max_eval=int(lbfgs_steps * 1.25) + 25,
            tolerance_grad=0.0, tolerance_change=0.0, history_size=50,
            line_search_fn="strong_wolfe",
        )
        vals: list[torch.Tensor] = []
        best = {"loss": math.inf, "params": None}
        last_bar = [0]

        def closure():
            lb.zero_grad(set_to_none=True)
            loss = loss_fn()
            total_loss = loss.sum()
            total_loss.backward()
            v = loss.detach()
            vals.append(v)
            s = float(total_loss.detach())
            if s < best["loss"]:
                best["loss"] = s
                best["params"] = [p.detach().clone() for p in params]
            if bar is not None:
                it = lb.state[lb._params[0]].get("n_iter", 0)
                if it - last_bar[0] >= 100:
                    bar.update(it - last_bar[0])
                    last_bar[0] = it
                    bar.set_postfix_str(f"loss {s:.3e}")
            if target_loss is not None and s <= target_loss:
                # zero gradient makes L-BFGS stop at its optimality check
                for p in params:
                    if p.grad is not None:
                        p.grad.zero_()
            return total_loss

        lb.step(closure)
        state = lb.state[lb._params[0]]
        hist.lbfgs_iterations = int(state.get("n_iter", 0))
        hist.lbfgs_evaluations = int(state.get("func_evals", len(vals)))
        if bar is not None:
            bar.update(max(0, hist.lbfgs_iterations - last_bar[0]))
        last = float(vals[-1].sum()) if vals else math.inf
        if best["params"] is not None and not (last <= best["loss"]):
            with torch.no_grad():
                for p, b in zip(params, best["params"]):
                    p.copy_(b)
        if target_loss is not None and best["loss"] <= target_loss:
            stopped = "target"
        elif hist.lbfgs_iterations < lbfgs_steps:
            stopped = "lbfgs-converged"
        if vals:
            records.append(torch.stack(vals).to(torch.float64).cpu())

    if bar is not None:
        bar.close()
    loss = torch.cat(records).numpy() if records else np.zeros(0)
    hist.loss = loss
    with torch.no_grad():
        fl = loss_fn().detach().to(torch.float64).cpu().numpy()
    hist.final_loss = float(fl) if fl.ndim == 0 else fl
    if not np.all(np.isfinite(fl)):
        stopped = "nonfinite"
    hist.stopped = stopped
    hist.seconds = time.perf_counter() - t0
    return hist


_LOGGED: set = set()


def _log_once(msg: str) -> None:
    if msg not in _LOGGED:
        _LOGGED.add(msg)
        print(msg, flush=True)


def _choose_path(params, fast, before_step, lr_schedule, target_loss) -> tuple[str, str]:
    """("cuda-graph" | "eager", reason for eager on a GPU or "")."""
    if fast not in (True, False, "auto"):
        raise ValueError(f"fast must be True, False or 'auto', got {fast!r}")
    on_cuda = all(p.is_cuda for p in params)
    if fast is False or not on_cuda:
        return "eager", ""
    for cond, why in ((before_step is not None, "a before_step callback runs between steps"),
                      (lr_schedule is not None, "a Python lr_schedule"),
                      (target_loss is not None, "target_loss needs the loss on the host")):
        if cond:
            return "eager", why
    return "cuda-graph", ""


def _adam_cuda_graph(params, loss_fn, steps: int, lr: float, bar) -> torch.Tensor:
    """Adam steps replayed from one captured CUDA graph (forward, backward, update).

    Warm-up steps (needed before capture) run on a side stream; parameters and
    optimizer state are then restored, so step k of the replay is step k of the
    eager loop from the same start (to rounding).
    """
    start = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=lr, capturable=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_fn().sum().backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    with torch.no_grad():
        for p, p0 in zip(params, start):
            p.copy_(p0)
        for st in opt.state.values():
            for v in st.values():
                if torch.is_tensor(v):
                    v.zero_()
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = loss_fn()
        static_loss.sum().backward()
        opt.step()
    buf = torch.empty((steps,) + tuple(static_loss.shape), dtype=torch.float64, device=static_loss.device)
    for i in range(steps):
        graph.replay()
        buf[i].copy_(static_loss.detach())
        if bar is not None and (i % 1000 == 999 or i == steps - 1):
            bar.update(1000 if i % 1000 == 999 else (i % 1000) + 1)
    torch.cuda.synchronize()
    return buf
