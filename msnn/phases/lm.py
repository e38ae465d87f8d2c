"""Levenberg-Marquardt: on any parameters, and on a stage network with variable projection.

Every step solves the Marquardt-scaled augmented system by QR (not the normal
equations), with Nielsen's damping rule; the best parameters seen are kept, and a run
stops on a rule that depends on the losses only (never on the clock), so it is
repeatable. Variable projection (Golub & Pereyra 2003) solves the output layer exactly
inside every step and moves the hidden layers on Kaufman's projected Jacobian.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch

from .._common import show_progress
from .lstsq import least_squares, linear_check
from .registry import PhaseReport
from .rows import RowGroup, get_output, hidden_params, rows_jacobian, scaled_rows, set_output, stage_params
from .schedule import as_phase

__all__ = ["flat", "assign", "lm_loop", "network_lm", "jacobian_of", "levenberg_marquardt"]


def flat(ps):
    return torch.cat([p.detach().reshape(-1) for p in ps])


def assign(ps, vec):
    i = 0
    with torch.no_grad():
        for p in ps:
            n = p.numel()
            p.copy_(vec[i:i + n].reshape(p.shape))
            i += n


def damped_step(Jt, R, loss: float, lam: float, nu: float, trained, evaluate):
    """One Levenberg-Marquardt step with Marquardt column scaling and Nielsen's damping rule.

    Solves the scaled augmented system [J D^-1; sqrt(lam) I] z = [-r; 0] by QR (not the
    normal equations), raising lam until the step lowers the loss. ``evaluate()`` returns
    (loss, extra) at the parameters just assigned. Returns (accepted, loss, lam, nu, extra);
    on rejection the parameters are restored.
    """
    D = Jt.norm(dim=0)
    D = torch.where(D > 0, D, torch.ones_like(D) * max(float(D.max()), 1e-300))
    Js = Jt / D
    eye = torch.eye(Js.shape[1], dtype=Js.dtype, device=Js.device)
    rhs = torch.cat([-R, torch.zeros(Js.shape[1], dtype=R.dtype, device=R.device)])[:, None]
    theta0 = flat(trained)
    while lam <= 1e16:
        z = torch.linalg.lstsq(torch.cat([Js, math.sqrt(lam) * eye]), rhs, driver="gels").solution[:, 0]
        step = z / D
        pred = float((R ** 2).sum() - ((R + Jt @ step) ** 2).sum())
        assign(trained, theta0 + step)
        new, extra = evaluate()
        if math.isfinite(new) and new < loss:
            rho = (loss - new) / pred if pred > 0 else 0.0
            return True, new, lam * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 2.0, extra
        assign(trained, theta0)
        lam *= nu
        nu *= 2.0
    return False, loss, lam, nu, None


def lm_loop(trained, kept, loss: float, steps: int, *, jacobian, evaluate, score, damping: float, patience: int,
             min_gain: float, bar, t0: float, on_accept=None):
    """The Levenberg-Marquardt iterations shared by every LM phase.

    ``jacobian()`` returns (r, J) at the current parameters, J with columns in the order
    of ``trained``; ``evaluate()`` returns (loss, extra) after a trial step, and an
    accepted step's extra goes to ``on_accept``. ``score(loss)`` says what "best" means;
    the best ``kept`` parameters are restored at the end. Stops on the budget, after
    ``patience`` steps without a relative gain of ``min_gain`` ("converged"), when no
    damping up to 1e16 lowers the loss ("damping"), or on a non-finite Jacobian.
    Returns (iterations, why it stopped, loss history, seconds at each entry).
    """
    best_theta, best = flat(kept), score(loss)
    history, times = [loss], [time.perf_counter() - t0]
    lam, nu = float(damping), 2.0
    stopped, since_gain, ref, it = "budget", 0, best, 0
    for it in range(1, steps + 1):
        R, J = jacobian()
        if not (torch.all(torch.isfinite(J)) and torch.all(torch.isfinite(R))):
            stopped = "nonfinite"
            break
        accepted, loss, lam, nu, extra = damped_step(J, R, loss, lam, nu, trained, evaluate)
        if accepted and on_accept is not None:
            on_accept(extra)
        history.append(loss)
        times.append(time.perf_counter() - t0)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.3e}")
        if not accepted:
            stopped = "damping"
            break
        sc = score(loss)
        if sc < best:
            best, best_theta = sc, flat(kept)
        if sc < ref * (1.0 - min_gain):
            ref, since_gain = sc, 0
        else:
            since_gain += 1
            if since_gain >= patience:
                stopped = "converged"
                break
    assign(kept, best_theta)
    return it, stopped, history, times


def network_lm(net, groups, steps: int, *, projected: bool, mu: float, patience: int,
                         min_gain: float, damping: float, rcond: float, bar=None,
                         validation: Sequence[RowGroup] | None = None) -> PhaseReport:
    t0 = time.perf_counter()
    hidden = hidden_params(net)
    allp = stage_params(net)
    trained = hidden if projected else allp

    def projected_loss():
        """Solve the output layer for the current hidden weights; returns (loss, w)."""
        R, A = rows_jacobian(net, groups, "output")
        c = R - A @ get_output(net)
        w, _, _, _ = least_squares(A, -c, mu=mu, rcond=rcond)
        r = A @ w + c
        return float((r ** 2).sum()) + mu * float((w ** 2).sum()), w

    def plain_loss():
        R = scaled_rows(net, groups)
        return float((R ** 2).sum())

    if projected:
        R0, A0 = rows_jacobian(net, groups, "output")
        linear_check(net, groups, R0, A0, get_output(net))
        loss, w = projected_loss()
        set_output(net, w)
    else:
        loss = plain_loss()
    start = loss

    def score(current: float) -> float:
        """What 'best' means: the loss on the validation rows if given (guards against a
        stage that fits the training points and aliases between them), else the loss."""
        return float((scaled_rows(net, validation) ** 2).sum()) if validation else current

    def jacobian():
        R, J = rows_jacobian(net, groups, "all")
        if not projected:
            return R, J
        # Kaufman's variable projection on the Tikhonov-augmented system: residual
        # [A w + c; sqrt(mu) w], Jacobian [J_hidden; 0] with range([A; sqrt(mu) I]) projected out
        nh = sum(p.numel() for p in hidden)
        Jh, A = J[:, :nh], J[:, nh:]
        if mu > 0:
            m = A.shape[1]
            A = torch.cat([A, math.sqrt(mu) * torch.eye(m, dtype=A.dtype, device=A.device)])
            Jh = torch.cat([Jh, torch.zeros(m, nh, dtype=Jh.dtype, device=Jh.device)])
            R = torch.cat([R, math.sqrt(mu) * get_output(net)])
        U, s, _ = torch.linalg.svd(A, full_matrices=False)
        U = U[:, s > 1e-13 * s[0]]
        return R, Jh - U @ (U.T @ Jh)

    it, stopped, history, times = lm_loop(
        trained, allp, loss, steps, jacobian=jacobian,
        evaluate=projected_loss if projected else (lambda: (plain_loss(), None)),
        on_accept=(lambda w: set_output(net, w)) if projected else None, score=score, damping=damping,
        patience=patience, min_gain=min_gain, bar=bar, t0=t0)
    final = projected_loss()[0] if projected else plain_loss()
    return PhaseReport("vp-lm" if projected else "lm", it, start, final, time.perf_counter() - t0, stopped, history,
                       times=times)


def jacobian_of(residuals: torch.Tensor, params: Sequence[torch.Tensor], *, chunk: int = 512) -> torch.Tensor:
    """The Jacobian (M, P) of a residual vector with respect to ``params`` (columns in order).

    Uses batched reverse mode (``is_grads_batched``) ``chunk`` rows at a time, and one
    backward pass per row where an operation in the graph cannot be batched.
    """
    r = residuals.reshape(-1)
    m = r.shape[0]
    sizes = [p.numel() for p in params]
    blocks = []
    for s in range(0, m, chunk):
        k = min(chunk, m - s)
        eye = torch.zeros(k, m, dtype=r.dtype, device=r.device)
        eye[torch.arange(k), torch.arange(s, s + k)] = 1.0
        try:
            gs = torch.autograd.grad(r, params, eye, retain_graph=True, allow_unused=True, is_grads_batched=True)
        except RuntimeError:
            rows = [torch.autograd.grad(r[i], params, retain_graph=True, allow_unused=True) for i in range(s, s + k)]
            gs = [torch.stack([row[j] if row[j] is not None else torch.zeros_like(params[j]) for row in rows])
                  for j in range(len(params))]
        blocks.append(torch.cat([(torch.zeros(k, n, dtype=r.dtype, device=r.device) if g is None else g.reshape(k, n))
                                 for g, n in zip(gs, sizes)], 1))
    return torch.cat(blocks)


def levenberg_marquardt(params: Sequence[torch.Tensor], residuals: Callable[[], torch.Tensor], steps: int, *,
                        damping: float = 1e-3, patience: int = 25, min_gain: float = 1e-3,
                        score: Callable[[], float] | None = None, progress: bool | None = None,
                        desc: str = "lm", jacobian: Callable[[], tuple] | None = None, bar=None) -> PhaseReport:
    """Levenberg-Marquardt on any parameters: minimize ``||residuals()||^2``.

    The general form of the "lm" phase, for models that are not one stage network
    (e.g. several networks and an unknown coefficient trained together, as in the
    Burgers problem). The Jacobian comes from :func:`jacobian_of`; each step solves
    the Marquardt-scaled augmented system by QR, with Nielsen's damping rule; the best
    parameters (by ``score()`` if given, else by the loss) are kept.

    Args:
        params: leaf tensors that require grad (the ones trained).
        residuals: returns the residual vector (M,), differentiable in ``params``.
        steps: at most this many accepted steps (>= 0).
        damping: the starting damping (> 0).
        patience, min_gain: stop after ``patience`` steps without a relative gain of
            ``min_gain`` in the score.
        score: what "best" means (e.g. a loss on validation points); default the loss.
        progress, desc: progress bar.
        jacobian: optional, returns ``(r, J)`` at the current parameters (e.g. from
            ``torch.func``), J with columns in the order of ``params``; by default
            :func:`jacobian_of` differentiates ``residuals()``.
        bar: a progress bar to update instead of drawing one.

    Returns:
        A :class:`~msnn.phases.registry.PhaseReport` of kind "lm" (losses are ``||r||^2``).

    Raises:
        ValueError: bad steps, damping, patience or min_gain; a parameter that does not require grad.
    """
    steps = as_phase(("lm", steps, dict(damping=damping, patience=patience, min_gain=min_gain))).steps
    params = list(params)
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("levenberg_marquardt needs a non-empty list of tensors that require grad")
    t0 = time.perf_counter()

    def evaluate():
        with torch.no_grad():
            r = residuals().detach()
        return float((r ** 2).sum()), None

    def jac():
        if jacobian is not None:
            R, J = (t.detach() for t in jacobian())
            return R.reshape(-1), J
        with torch.enable_grad():
            r = residuals().reshape(-1)
            J = jacobian_of(r, params)
        return r.detach(), J

    loss = start = evaluate()[0]
    own_bar = bar is None and steps and show_progress(progress)
    if own_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, leave=False, mininterval=0.5)
    it, stopped, history, times = lm_loop(
        params, params, loss, steps, jacobian=jac, evaluate=evaluate,
        score=(lambda current: score()) if score is not None else (lambda current: current), damping=damping,
        patience=int(patience), min_gain=float(min_gain), bar=bar, t0=t0)
    if own_bar:
        bar.close()
    return PhaseReport("lm", it, start, evaluate()[0], time.perf_counter() - t0, stopped, history, times=times)

