"""Claims: verdicts are computed from the rules; JSON and text forms."""
import json
import math

import pytest

from msnn.claims import ClaimTable, at_least, at_most, between, is_true, order_of_magnitude, report, within_factor


@pytest.mark.parametrize("rule,value,verdict", [
    (at_most(1e-14), 3e-15, "PASS"), (at_most(1e-14), 2e-14, "FAIL"),
    (at_least(2), 2.0, "PASS"), (at_least(2), 1.99, "FAIL"),
    (between(0.1, 0.25), 0.17, "PASS"), (between(0.1, 0.25), 0.3, "FAIL"),
    (within_factor(150, 2), 75.0, "PASS"), (within_factor(150, 2), 301.0, "FAIL"), (within_factor(150, 2), -1.0, "FAIL"),
    (is_true(), True, "PASS"), (is_true(), False, "FAIL"),
    (report(), 1.0, "REPORT"), (at_most(1.0), math.nan, "FAIL"),
])
def test_verdicts(rule, value, verdict):
    t = ClaimTable("x", "quick", "cpu")
    assert t.add("1", "w", "p", value, rule).verdict == verdict


def test_table_json_and_repr(tmp_path, monkeypatch):
    t = ClaimTable("04-regression", "quick", "cpu")
    t.add("4.1", "error", "1e-7", 3.2e-8, at_most(1e-6))
    t.add("4.2", "gap", "6", 1.0, at_least(2))
    with pytest.raises(ValueError, match="already"):
        t.add("4.1", "again", "", 0, report())
    assert t.save() is None  # no path, no env: nothing written
    p = tmp_path / "c.json"
    monkeypatch.setenv("MSNN_CLAIMS_FILE", str(p))
    t.save()
    d = json.loads(p.read_text())
    assert d["counts"] == {"PASS": 1, "FAIL": 1, "REPORT": 0}
    assert d["claims"][0]["verdict"] == "PASS" and d["claims"][0]["measured"] == 3.2e-8
    assert "4.1    PASS" in repr(t) and "1e-08" in repr(t)
    assert "FAIL" in t._repr_html_()


def test_order_of_magnitude():
    assert order_of_magnitude(3.2e-10) == "1e-10"
    assert order_of_magnitude(0.5) == "1e-01"
    assert order_of_magnitude(150.0) == "1e+02"
