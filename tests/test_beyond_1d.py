"""The cases beyond one dimension (msnn.book.beyond_1d): errors off the training points, by region."""
import numpy as np
import pytest

from msnn.book.beyond_1d import CASES, rows, run_case


@pytest.fixture(scope="module")
def sparse():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_case("sparse1d", "quick")
    finally:
        torch.set_num_threads(n)


def test_a_case_reports_every_stage_off_its_training_points(sparse):
    st = sparse["stages"]
    assert [r["stage"] for r in st] == list(range(1, len(st) + 1))
    for r in st:
        # the error between the samples is split into the interval's ends and the rest
        assert 0 < min(r["inner"], r["outer"]) <= r["held_out"] <= max(r["inner"], r["outer"])
        assert np.isfinite(r["train"]) and r["train"] > 0
    # stage 1 of an O(1) target leaves a small fraction of it, and the fit says why it stopped (or trained all)
    assert st[0]["held_out"] < 1e-2
    assert sparse["n_heldout"] == 20 and sparse["n_train"] == 180  # 10 % of 200 samples held out
    assert sparse["seconds"] > 0 and sparse["peak_gb"] > 0


def test_rows_carry_the_case_title_and_time_once(sparse):
    table = rows("sparse1d", sparse)
    assert table[0]["case"] == CASES["sparse1d"].format(n=200) == "1D, 200 samples of exp(-x/4) sin(3x) on [0, 5]"
    assert all(r["case"] == "" for r in table[1:])
    assert table[0]["wall"].endswith(" s") and table[0]["peak memory"].endswith(" GB")


def test_unknown_case_or_profile_is_refused():
    with pytest.raises(ValueError, match="unknown case 'reg3'; the cases are reg40"):
        run_case("reg3")
    with pytest.raises(ValueError, match="profile must be"):
        run_case("reg40", "paper")


def test_a_case_process_reports_its_own_peak_memory_not_its_parents():
    """A notebook's kernel is large; a case it starts must not report the kernel's memory as its own."""
    import subprocess
    import sys

    big = np.ones(2 ** 27)  # 1 GB resident in this process, the case's parent
    big[::4096] = 2.0
    out = subprocess.run([sys.executable, "-c", "from msnn.book.beyond_1d import _peak_gb; print(_peak_gb())"],
                         capture_output=True, text=True, check=True)
    assert float(out.stdout) < 0.8, out.stdout  # importing msnn and torch takes a few hundred MB
    del big
