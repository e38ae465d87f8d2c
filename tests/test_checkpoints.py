"""Checkpoints that cannot hurt: data only, one file per stage, damaged files moved aside, checked before training."""
import glob
import os
import pickle
import warnings

import numpy as np
import pytest
import torch

import msnn.regression as regression_module
from msnn import MultistageRegressor
from msnn.problems import eq_2_2

X = np.linspace(-1, 1, 120)
Y = eq_2_2(X)


def _reg(path, **kw):
    opts = dict(n_stages=2, adam_steps=20, lbfgs_steps=10, widths=(8, 8), progress=False, device="cpu", seed=0,
                checkpoint=path)
    return MultistageRegressor(**(opts | kw))


def _stage_files(path, stage):
    return sorted(glob.glob(f"{path}.stage{stage:02d}.*.pt"))


def _count_training(monkeypatch):
    calls = []
    real = regression_module.run_phases

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(regression_module, "run_phases", counted)
    return calls


class _Payload:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_checkpoint_runs_no_code_and_is_moved_aside(tmp_path, monkeypatch):
    path = str(tmp_path / "reg.pt")
    first = _reg(path).fit(X, Y)
    target = _stage_files(path, 1)[0]
    marker = tmp_path / "pwned"
    with open(target, "wb") as f:
        pickle.dump({"header": _Payload(str(marker)), "tensors": {}}, f)
    calls = _count_training(monkeypatch)
    with pytest.warns(UserWarning, match="damaged"):
        again = _reg(path).fit(X, Y)
    assert not marker.exists()
    assert os.path.exists(target + ".bad")
    assert len(calls) == 2  # both stages trained again (stage 2 follows stage 1)
    np.testing.assert_array_equal(first.predict(X), again.predict(X))  # the same seeds, the same stages


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "nan"])
def test_a_damaged_checkpoint_is_named_moved_aside_and_trained_again(tmp_path, damage):
    path = str(tmp_path / "reg.pt")
    first = _reg(path).fit(X, Y)
    target = _stage_files(path, 2)[0]
    if damage == "nan":
        obj = torch.load(target, weights_only=True)
        obj["tensors"] = {k: torch.full_like(v, float("nan")) for k, v in obj["tensors"].items()}
        torch.save(obj, target)
    else:
        data = open(target, "rb").read()
        with open(target, "wb") as f:
            f.write({"truncate": data[: len(data) // 2], "garbage": os.urandom(300), "empty": b""}[damage])
    with pytest.warns(UserWarning, match=f"checkpoint {target} is damaged"):
        again = _reg(path).fit(X, Y)
    assert os.path.exists(target + ".bad") and os.path.exists(target)  # rewritten after training again
    np.testing.assert_array_equal(first.predict(X), again.predict(X))


def test_more_stages_reuse_the_finished_ones(tmp_path, monkeypatch):
    path = str(tmp_path / "reg.pt")
    two = _reg(path).fit(X, Y)
    calls = _count_training(monkeypatch)
    three = _reg(path, n_stages=3).fit(X, Y)
    assert len(calls) == 1 and len(three.stages_) == 3  # only stage 3 trained
    np.testing.assert_array_equal(two.predict(X), three.predict(X, n_stages=2))


def test_a_run_with_other_settings_keeps_the_other_runs_files(tmp_path):
    path = str(tmp_path / "reg.pt")
    _reg(path).fit(X, Y)
    with pytest.warns(UserWarning, match="other data or settings"):
        _reg(path, adam_steps=21).fit(X, Y)
    assert len(_stage_files(path, 1)) == 2 and len(_stage_files(path, 2)) == 2


def test_an_unwritable_checkpoint_folder_is_refused_before_training(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    calls = _count_training(monkeypatch)
    with pytest.raises(ValueError, match="cannot be written"):
        _reg(str(blocker / "sub" / "reg.pt")).fit(X, Y)
    assert calls == []


def test_a_checkpoint_holds_only_data(tmp_path):
    path = str(tmp_path / "reg.pt")
    _reg(path).fit(X, Y)
    files = _stage_files(path, 1) + _stage_files(path, 2)
    assert len(files) == 2  # one file per stage
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            obj = torch.load(f, weights_only=True)  # refuses anything but tensors and plain containers
        assert set(obj) == {"header", "tensors"} and isinstance(obj["header"], str)
