"""Small fits of every driver whose numbers must not move when the package is reorganized.

``python tests/golden.py`` writes ``tests/golden.json``: per case, the numbers a fit
produced (per-stage losses, residues, eps, the model at fixed points) as exact float
hex strings, and the machine they were computed on. ``tests/test_golden.py`` runs the
same cases and compares: to the last bit on the machine that wrote the file (same CPU,
torch and numpy), and to a relative 1e-6 elsewhere (other CPUs round differently
inside BLAS, and a few Levenberg-Marquardt steps amplify that).

A change that is meant to move these numbers regenerates the file and says so in its
commit message.
"""
from __future__ import annotations

import json
import os
import platform
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden.json")


def fingerprint() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        cpu = platform.processor()
    return {"torch": torch.__version__, "numpy": np.__version__, "cpu": cpu, "machine": platform.machine(),
            "threads": torch.get_num_threads()}


def _floats(values) -> list[float]:
    return [float(v) for v in np.ravel(np.asarray(values, dtype=np.float64))]


def case_regression_precision() -> list[float]:
    """eq. (2.2) on 1901 points: the precision schedule with its random training subset."""
    from msnn import MultistageRegressor
    from msnn.problems import eq_2_2

    x = np.linspace(-1, 1, 1901)
    reg = MultistageRegressor(n_stages=2, precision_steps=8, device="cpu", seed=0, progress=False)
    reg.fit(x, eq_2_2(x))
    out = []
    for s in reg.stages_:
        out += [s.eps, s.final_loss, s.rms_after, s.output_norm, s.n_train] + _floats(s.kappa_hat)
    return out + _floats(reg.predict(np.linspace(-1, 1, 13)))


def case_regression_paper_2d() -> list[float]:
    """A smooth 2D target on a 12 x 12 grid, the paper's Adam + L-BFGS, two stages."""
    from msnn import MultistageRegressor

    g = np.linspace(-1, 1, 12)
    X, Y = np.meshgrid(g, g, indexing="ij")
    x = np.stack([X.ravel(), Y.ravel()], 1)
    y = np.sin(2 * x[:, 0]) * np.cos(x[:, 1]) + 0.3 * x[:, 1]
    reg = MultistageRegressor(n_stages=2, widths=(10, 10), adam_steps=60, lbfgs_steps=30, device="cpu", seed=3,
                              progress=False)
    reg.fit(x, y)
    out = []
    for s in reg.stages_:
        out += [s.eps, s.final_loss, s.rms_after] + _floats(s.kappa_hat) + _floats(s.loss_history[::7])
    return out + _floats(reg.predict(x[::11]))


def case_si() -> list[float]:
    """SI stages on a 1D periodic grid: the paper's Adam and an LSGD schedule."""
    from msnn import SIMultistageRegressor

    t = np.arange(64) / 64 * 2 - 1
    u = np.sin(3 * np.pi * t) + 0.2 * np.cos(7 * np.pi * t)
    out = []
    for schedule in (None, [("adam", 30), ("lsgd", 10), ("output-lstsq",)]):
        reg = SIMultistageRegressor(n_stages=2, n_features=8, widths=(10, 10), adam_steps=40, device="cpu",
                                    seed=1, progress=False, schedule=schedule)
        reg.fit(u)
        for s in reg.stages_:
            out += [s.eps, s.final_loss, s.rms_after] + _floats(s.loss_history[::5])
        out += _floats(reg.predict(np.linspace(-1, 0.9, 7)[:, None]))
    return out


def case_pinn() -> list[float]:
    """eq. (3.3) with Algorithm 4: the paper's schedule with gPINN, and the precision schedule."""
    from msnn import MultistagePINN
    from msnn.problems import ode_3_3

    out = []
    paper = MultistagePINN(ode_3_3(), orders=(1,), n_stages=2, widths=(10, 10), adam_steps=[80, 40],
                           lbfgs_steps=[40, 40], n_collocation=41, gpinn=True, gamma=[0.3, None], n_grid=201,
                           device="cpu", progress=False, seed=0).solve()
    precise = MultistagePINN(ode_3_3(), orders=(1,), n_stages=2, widths=(10, 10), precision_steps=6,
                             n_collocation=41, n_grid=201, device="cpu", progress=False, seed=0).solve()
    for sol in (paper, precise):
        for r in sol.records_:
            out += [r.eps, r.eps_r, r.gamma, r.gamma_g, r.residue_rms, r.error_rms, r.error_max] + _floats(r.f_d)
            out += _floats(r.loss_e[::9])
        out += _floats(sol.predict(np.linspace(-1, 1, 9)[:, None]))
    return out


def case_burgers() -> list[float]:
    """Two Burgers rounds: Adam + L-BFGS, then Algorithm 4's next stage with Adam + LM."""
    from msnn.burgers import BurgersSolution, add_next_stage, evaluate, train_burgers

    m = BurgersSolution(0.6, device="cpu")
    m.add_stage([dict(eps=1.0, widths=(8, 8), seed=0)])
    run = train_burgers(m, gamma=0.5, gamma_g=0.1, gamma_s=1e-2, gamma_o=1.0, n_collocation=40, n_smooth=8,
                        adam_steps=60, lbfgs_steps=30, seed=0, progress=False)
    ev = evaluate(m, 201)
    st = add_next_stage(m, ev, run, widths=(8, 8), seed=10)
    run2 = train_burgers(m, gamma=st["gamma"], gamma_g=0.1, gamma_s=1e-2, gamma_o=1.0, n_collocation=40,
                         n_smooth=8, seed=1, progress=False, schedule=[("adam", 20), ("lm", 4)])
    ev2 = evaluate(m, 201)
    out = [ev.lam, ev.error_rms, ev.residue_rms, ev.f_d, st["eps"], st["gamma"], st["eps_lambda"]]
    out += [ev2.lam, ev2.error_rms, ev2.residue_rms, ev2.f_d] + _floats(run.loss_e[::7]) + _floats(run2.loss_e[::3])
    return out + _floats(m.predict(np.linspace(-2, 2, 9)))


CASES = {
    "regression_precision": case_regression_precision,
    "regression_paper_2d": case_regression_paper_2d,
    "si": case_si,
    "pinn": case_pinn,
    "burgers": case_burgers,
}


def run_case(name: str) -> list[float]:
    torch.manual_seed(0)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [float(v) for v in CASES[name]()]
    finally:
        torch.set_num_threads(n)


def main() -> None:
    os.environ.setdefault("MSNN_PROGRESS", "0")
    names = sys.argv[1:] or list(CASES)
    data = {}
    if os.path.exists(GOLDEN):
        with open(GOLDEN) as f:
            data = json.load(f)
    data.setdefault("cases", {})
    data["machine"] = fingerprint() | {"threads": 1}
    for name in names:
        data["cases"][name] = [v.hex() for v in run_case(name)]
        print(f"{name}: {len(data['cases'][name])} numbers")
    with open(GOLDEN, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
