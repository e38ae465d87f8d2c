"""Every driver gives the numbers it gave before the package was reorganized (tests/golden.py)."""
import json

import numpy as np
import pytest
import torch

import golden


with open(golden.GOLDEN) as _f:
    _DATA = json.load(_f)


def _same_machine() -> bool:
    here = golden.fingerprint() | {"threads": 1}
    return all(here[k] == _DATA["machine"].get(k) for k in ("torch", "numpy", "cpu", "machine"))


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_driver_numbers_do_not_move(name):
    want = np.array([float.fromhex(v) for v in _DATA["cases"][name]])
    got = np.array(golden.run_case(name))
    assert got.shape == want.shape, f"{name}: {got.size} numbers, the golden file has {want.size}"
    if _same_machine():
        diff = np.flatnonzero(~((got == want) | (np.isnan(got) & np.isnan(want))))
        assert diff.size == 0, (f"{name}: {diff.size} of {got.size} numbers differ in their last bits, first at "
                                f"{diff[0]}: {got[diff[0]]!r} against {want[diff[0]]!r}")
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-300,
                                   err_msg=f"{name} (another machine than the golden file's: relative 1e-6)")
