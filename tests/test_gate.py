"""The regression gate: pass on noise and identical runs, fail on real drops."""

from __future__ import annotations

import copy
import json

import pytest

from interpscore.cli import main as cli
from interpscore.errors import BaselineError
from interpscore.results.gate import Tolerances, compare, load_report, parse_tolerances
from interpscore.results.report import SCHEMA


def _report(score=0.7, lr=0.9, lr_ci=(0.88, 0.92), version="0.0.1", ids=("a",)):
    entry = {
        "interp_score": score,
        "interp_score_ci95": [score - 0.02, score + 0.02],
        "partial": False,
        "components": {"loss_recovered": lr},
        "metrics": {"loss_recovered": {"value": lr, "ci95": list(lr_ci)}},
    }
    return {
        "schema": SCHEMA,
        "formula": {"version": version, "weights": {"loss_recovered": 1.0}},
        "saes": [{"id": sid, **copy.deepcopy(entry)} for sid in ids],
    }


def test_identical_reports_pass():
    report = _report()
    assert compare(report, report, Tolerances()).passed


def test_drop_inside_the_interval_passes_by_default_and_fails_without_intervals():
    baseline, now = _report(lr=0.91), _report(lr=0.90, lr_ci=(0.88, 0.92))
    assert compare(baseline, now, Tolerances()).passed
    result = compare(baseline, now, Tolerances(use_intervals=False))
    assert [r.name for r in result.regressions] == ["loss_recovered"]


def test_raised_baseline_beyond_tolerance_fails_and_tolerance_forgives():
    baseline, now = _report(lr=0.99), _report(lr=0.90, lr_ci=(0.88, 0.92))
    result = compare(baseline, now, Tolerances())
    assert not result.passed
    (row,) = result.regressions
    assert row.change == pytest.approx(-0.09)
    assert compare(baseline, now, Tolerances(per_name={"loss_recovered": 0.1})).passed


def test_missing_and_extra_saes_are_reported_not_fatal():
    result = compare(_report(ids=("a", "gone")), _report(ids=("a", "new")), Tolerances())
    assert result.passed
    assert result.missing_saes == ["gone"]
    assert result.extra_saes == ["new"]


def test_other_formula_compares_only_shared_components_loudly():
    result = compare(_report(version="0.0.1"), _report(version="9-mine", score=0.1), Tolerances())
    assert result.passed  # the score is not compared across formulas
    assert "InterpScore not compared" in result.notes[0]
    assert {r.name for r in result.rows} == {"loss_recovered"}


def test_a_failed_component_now_is_a_regression():
    now = _report()
    now["saes"][0]["metrics"]["loss_recovered"] = {"value": None, "status": "failed"}
    now["saes"][0]["components"] = {}
    assert not compare(_report(), now, Tolerances()).passed


@pytest.mark.parametrize("bad", ["-0.1", "nan", "inf", "lots"])
def test_bad_tolerances_are_refused(bad):
    with pytest.raises(BaselineError, match="Fix:"):
        parse_tolerances(bad, [])
    with pytest.raises(BaselineError, match="Fix:"):
        parse_tolerances("0", [f"tpp={bad}"])


def test_baseline_of_another_schema_is_refused(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"version": "v0.0.1", "interp_score": 0.8}))
    with pytest.raises(BaselineError, match="has schema None"):
        load_report(path)


def test_cli_gate_exit_codes(tmp_path, capsys):
    base, now = tmp_path / "base.json", tmp_path / "now.json"
    base.write_text(json.dumps(_report(lr=0.99)))
    now.write_text(json.dumps(_report(lr=0.90)))
    assert cli(["gate", str(now), str(now)]) == 0
    assert cli(["gate", str(base), str(now)]) == 1
    assert "| a | loss_recovered | 0.9900 | 0.9000 |" in capsys.readouterr().out
    assert cli(["gate", str(base), str(now), "--tolerance", "-1"]) == 2
