"""The evidence behind a formula: which components separate trained SAEs from controls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interpscore.cli import main
from interpscore.formula import get_formula, shipped_formulas
from interpscore.results.evidence import evidence_markdown, evidence_rows, separation

REFERENCE = Path(__file__).resolve().parents[1] / "reports" / "interpscore.json"


def _comparison(low: float, high: float, kind: str = "random-init") -> dict:
    return {
        "kind": kind,
        "value": 0.5,
        "difference": (low + high) / 2,
        "difference_ci95": [low, high],
    }


def _sae(sid: str, **metrics: dict) -> dict:
    return {"id": sid, "control_of": None, "status": "ok", "metrics": metrics}


def _report() -> dict:
    above = {"value": 0.9, "controls": {"a#random-init": _comparison(0.1, 0.3)}}
    below = {"value": 0.2, "controls": {"b#random-init": _comparison(-0.3, -0.1)}}
    inside = {"value": 0.5, "controls": {"b#random-init": _comparison(-0.1, 0.1)}}
    skipped = {"kind": "model", "skipped": "only core runs on model controls"}
    return {
        "formula": {"version": "0.0.1", "weights": {"good": 0.5, "bad": 0.5}},
        "saes": [
            _sae(
                "a",
                good=above,
                bad=above,
                unmeasured={"value": 0.4, "controls": {"control-x": skipped}},
            ),
            _sae("b", good=above, bad=below, flat=inside),
            {"id": "control-x", "control_of": "a", "status": "ok", "metrics": {"good": above}},
            {"id": "broken", "control_of": None, "status": "error", "metrics": {"bad": above}},
        ],
    }


def test_direction_matters_and_unrun_controls_do_not_count():
    by_name = {s.component: s for s in separation(_report(), ["good", "bad", "flat", "unmeasured"])}
    assert by_name["good"].separates
    assert by_name["good"].values == {"a": 0.9, "b": 0.9}  # controls and failed SAEs left out
    # b is significantly *below* its control: two-sided "distinguishes" would count it.
    assert not by_name["bad"].separates
    assert by_name["bad"].controls["random-init"].cell() == "1/2"
    assert not by_name["flat"].separates
    assert by_name["unmeasured"].controls["x"].cell() == "1 not run"
    assert not by_name["unmeasured"].separates  # no control measured: no evidence


def test_rows_name_the_formula_weights_and_render_as_markdown():
    rows = evidence_rows(_report(), components=["good", "bad"])
    assert rows[0] == {
        "component": "good",
        "v0.0.1": "0.5",
        "trained SAEs": "2",
        "above random-init": "2/2",
        "separates": "yes",
    }
    text = evidence_markdown(rows)
    assert (
        text.splitlines()[0]
        == "| component | v0.0.1 | trained SAEs | above random-init | separates |"
    )
    assert "| bad | 0.5 | 2 | 1/2 | no |" in text


def test_the_shipped_proposal_uses_only_components_that_separate_in_the_reference():
    """The claim the proposal's file makes, checked against the committed reference run."""
    report = json.loads(REFERENCE.read_text())
    proposal = get_formula("0.0.2-controls")
    for sep in separation(report, list(proposal.weights)):
        assert sep.separates, sep
        assert len(sep.values) == 5
    # and v0.0.1 carries components that do not: the reason for the proposal
    v001 = {
        s.component: s.separates for s in separation(report, list(get_formula("0.0.1").weights))
    }
    assert not v001["sparse_probing"]
    assert not v001["alive"]


def test_shipped_formulas_are_named_by_version_and_recorded_without_machine_paths(capsys):
    assert "0.0.2-controls" in shipped_formulas()
    formula = get_formula("0.0.2-controls")
    assert formula.source == "interpscore/formulas/0.0.2-controls.toml"
    assert main(["formula"]) == 0
    assert "v0.0.2-controls" in capsys.readouterr().out


def test_score_reads_components_another_formula_weights_from_the_metrics(tmp_path, capsys):
    entry = {
        "id": "s",
        "components": {"loss_recovered": 0.9},
        "metrics": {
            "tpp": {"value": 0.5},
            "sparse_probing_k5": {"value": None},
            "l0": {"value": 9},
        },
    }
    path = tmp_path / "one.json"
    path.write_text(json.dumps(entry))
    formula = tmp_path / "f.toml"
    formula.write_text(
        'version = "t"\n[weights]\nloss_recovered = 0.5\ntpp = 0.25\nsparse_probing_k5 = 0.25\n'
    )
    assert main(["score", str(path), "--formula", str(formula), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["interp_score"] == pytest.approx(0.5 * 0.9 + 0.25 * 0.5)
    assert result["missing"] == ["sparse_probing_k5"]


def test_a_later_report_adds_the_controls_an_earlier_one_skipped(tmp_path, capsys):
    skipped = {"kind": "model", "skipped": "only core runs on model controls"}
    measured = _comparison(0.05, 0.2, kind="model")
    below = _comparison(-0.2, -0.05, kind="model")
    main_run = {"saes": [_sae("a", tpp={"value": 0.3, "controls": {"control-x": skipped}})]}
    extra_run = {"saes": [_sae("a", tpp={"value": 0.3, "controls": {"control-x": measured}})]}
    (sep,) = separation([main_run, extra_run], ["tpp"])
    assert sep.controls["x"].cell() == "1/1"
    assert sep.separates
    # a measured comparison is never replaced by a skipped one, whatever the order
    (sep,) = separation([extra_run, main_run], ["tpp"])
    assert sep.controls["x"].cell() == "1/1"
    # and the first measured one stands
    worse = {"saes": [_sae("a", tpp={"value": 0.3, "controls": {"control-x": below}})]}
    (sep,) = separation([worse, extra_run], ["tpp"])
    assert not sep.separates
    paths = []
    for index, report in enumerate((main_run, extra_run)):
        paths.append(tmp_path / f"r{index}.json")
        paths[-1].write_text(json.dumps({"schema": "interpscore-report/1", **report}))
    assert main(["evidence", *map(str, paths), "--formula", "0.0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| component | v0.0.1 | trained SAEs | above x |")
    assert "| tpp | 0.15 | 1 | 1/1 | yes |" in lines


def test_evidence_of_a_missing_report_is_one_line(tmp_path, capsys):
    assert main(["evidence", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "none.json" in err


def test_margins_score_each_sae_and_its_random_init_control_by_hand():
    from interpscore.formula import Formula
    from interpscore.results.evidence import margin_rows

    def metric(value: float, control: float) -> dict:
        return {
            "value": value,
            "controls": {"a#random-init": {"kind": "random-init", "value": control}},
        }

    formula = Formula("t", {"tpp": 0.5, "alive": 0.5})
    report = {"saes": [_sae("a", tpp=metric(0.8, 0.2), alive=metric(1.0, 1.0))]}
    (row,) = margin_rows(report, [formula])
    assert row == {"SAE": "a", "vt": "0.900", "vt random-init": "0.600", "vt margin": "+0.300"}
    partial = {"saes": [_sae("a", tpp=metric(0.8, 0.2))]}
    (row,) = margin_rows(partial, [formula])
    assert row == {"SAE": "a", "vt": "≥0.400", "vt random-init": "≥0.100", "vt margin": ""}


def test_a_broken_or_unpaired_control_is_no_evidence_either_way():
    above = _comparison(0.1, 0.3)
    broken = {"kind": "model", "error": "RuntimeError: boom"}
    unpaired = {"kind": "model", "value": 0.1, "difference": 0.8, "difference_ci95": None}
    report = {
        "saes": [
            _sae("a", m={"value": 0.9, "controls": {"a#random-init": above, "control-x": broken}}),
            _sae(
                "b", m={"value": 0.9, "controls": {"b#random-init": above, "control-x": unpaired}}
            ),
        ]
    }
    (sep,) = separation(report, ["m"])
    assert sep.controls["x"].cell() == "2 failed"
    assert sep.controls["random-init"].cell() == "2/2"
    assert not sep.separates


def test_evidence_for_named_metrics_and_a_one_line_error_for_an_unknown_one(capsys):
    assert main(["evidence", str(REFERENCE), "--metric", "kl_div_score"]) == 0
    out = capsys.readouterr().out
    assert "| kl_div_score |  |  | 5 | 5/5 | 1/1 | 1/1 | yes |" in out
    assert main(["evidence", str(REFERENCE), "--metric", "kl_div"]) == 2
    assert "--metric kl_div is not a metric" in capsys.readouterr().err
