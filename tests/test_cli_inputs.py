"""Every bad input to the ``interpscore`` command ends in one ``interpscore: error:`` line
with the fix, never a traceback; outputs are checked before anything is computed."""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interpscore.cli import main as cli
from interpscore.errors import BaselineError
from interpscore.results.gate import parse_tolerance_item
from interpscore.results.report import SCHEMA

Case = Callable[[Path], tuple[list[str], str]]


def report(ids: tuple[str, ...] = ("a",), **changes: Any) -> dict[str, Any]:
    """A small valid report (as tests/test_gate.py builds them), with top-level changes."""
    entry = {
        "interp_score": 0.7,
        "interp_score_ci95": [0.68, 0.72],
        "partial": False,
        "status": "ok",
        "components": {"loss_recovered": 0.7},
        "metrics": {"loss_recovered": {"value": 0.7, "status": "passed", "ci95": [0.69, 0.71]}},
        "timestamp": "2026-01-02T03:04:05+00:00",
    }
    data = {
        "schema": SCHEMA,
        "formula": {
            "version": "0.0.1",
            "weights": {"loss_recovered": 1.0},
            "expression": "1.00·loss_recovered",
            "l0_target": 80,
        },
        "run": {"timestamp": "2026-01-02T03:04:05+00:00"},
        "saes": [{"id": sid, **copy.deepcopy(entry)} for sid in ids],
    }
    data.update(changes)
    return data


def saebench_file() -> dict[str, Any]:
    """A valid SAEBench absorption file as older versions wrote it (see test_saebench)."""
    return {
        "eval_config": {"model_name": "gemma-2-2b"},
        "eval_id": "x",
        "datetime_epoch_millis": 1730000000000,
        "sae_bench_commit_hash": "abc",
        "sae_lens_id": "layer_12/width_16k/canonical",
        "sae_lens_release_id": "gemma-scope-2b-pt-res",
        "eval_result_metrics": {
            "mean": {"mean_absorption_score": 0.12, "mean_num_split_features": 1.4}
        },
    }


def saebench_report(timestamp: str | None = None, per_letter: Any = None) -> dict[str, Any]:
    """A report with every value SAEBench's files need (tests/test_saebench.py's builder)."""
    from test_saebench import _entry, _report

    entry = _entry()
    if timestamp is not None:
        entry["timestamp"] = timestamp
    if per_letter is not None:
        entry["metrics"]["absorption"]["details"]["per_letter"] = per_letter
    return _report(entry)


def write(path: Path, content: Any) -> Path:
    """``content`` as JSON (or bytes / text as given) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content))
    return path


def entry_with(**changes: Any) -> dict[str, Any]:
    data = report()
    data["saes"][0].update(changes)
    return data


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = cli(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(code: int, out: str, err: str, expected: int = 2) -> str:
    """Exit status, exactly one error line with the fix, no traceback; the line."""
    assert code == expected, err
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("interpscore: error:")
    assert "Fix:" in lines[0]
    return lines[0]


def _score(content: Any, *extra: str) -> Case:
    return lambda tmp: (["score", str(write(tmp / "c.json", content)), *extra], "")


def _formula_file(name: str, content: Any) -> Case:
    return lambda tmp: (["formula", "--formula", str(write(tmp / name, content))], "")


def _report_cmd(content: Any) -> Case:
    return lambda tmp: (["report", str(write(tmp / "r.json", content))], "")


def _gate(base: Any, now: Any, *extra: str) -> Case:
    def case(tmp: Path) -> tuple[list[str], str]:
        return [
            "gate",
            str(write(tmp / "b.json", base)),
            str(write(tmp / "n.json", now)),
            *extra,
        ], ""

    return case


def _export(content: Any, *extra: str) -> Case:
    def case(tmp: Path) -> tuple[list[str], str]:
        source = write(tmp / "r.json", content)
        return ["export", str(source), "--format", "saebench", "-o", str(tmp / "out"), *extra], ""

    return case


def _import(content: Any, *extra: str) -> Case:
    def case(tmp: Path) -> tuple[list[str], str]:
        source = write(tmp / "in" / "a_eval_results.json", content)
        return ["import-saebench", str(source), "-o", str(tmp / "i.json"), *extra], ""

    return case


def _metrics(**metrics: Any) -> dict[str, Any]:
    doc = saebench_file()
    doc["eval_result_metrics"] = {"mean": metrics}
    return doc


CODE = "__import__('os').system('touch PWNED')"
VALID_TOML = 'version = "mine"\n[weights]\nloss_recovered = 0.5\nalive = 0.5\n'

CASES: dict[str, tuple[Case, str]] = {
    # score
    "score-missing-file": (lambda t: (["score", str(t / "nope.json")], ""), "Cannot read"),
    "score-directory": (lambda t: (["score", str(t)], ""), "Cannot read"),
    "score-empty-file": (_score(""), "is empty"),
    "score-binary": (_score(b"\x89PNG\r\n\x1a\n\xff\xfe\x00"), "not UTF-8"),
    "score-not-json": (_score("{loss_recovered: 1"), "is not JSON"),
    "score-list-of-numbers": (_score([1, 2]), "is not a JSON object"),
    "score-above-one": (_score({"alive": 1.5}), "component alive is 1.5, outside [0, 1]"),
    "score-negative": (_score({"tpp": -0.1}), "component tpp is -0.1, outside [0, 1]"),
    "score-nan": (_score('{"alive": NaN}'), "component alive is nan, not a finite"),
    "score-infinity": (_score('{"alive": Infinity}'), "component alive is inf"),
    "score-string": (_score({"alive": "high"}), "component alive is 'high', not a number"),
    "score-bool": (_score({"alive": True}), "component alive is True"),
    "score-huge-int": (_score('{"alive": 1' + "0" * 400 + "}"), "not a finite number"),
    "score-empty-list": (_score([]), "holds no SAE"),
    "score-duplicate-key": (_score('{"alive": 0.5, "alive": 0.9}'), "'alive' twice"),
    "score-report-saes-number": (_score({"schema": SCHEMA, "saes": 5}), "key saes is number 5"),
    "score-report-entry-not-object": (
        _score({"schema": SCHEMA, "saes": ["a"]}),
        "key saes[0] is string 'a', not an object",
    ),
    "score-report-components-list": (
        _score(entry_with(components=[0.5])),
        "key saes[0].components is a list",
    ),
    "score-deep-nesting": (_score("[" * 150 + "]" * 150), "over 100 deep"),
    "score-unknown-formula": (_score({"alive": 0.5}, "--formula", "9.9.9"), "Unknown formula"),
    "score-missing-formula-file": (
        lambda t: (["score", str(write(t / "c.json", {})), "--formula", str(t / "f.toml")], ""),
        "Cannot read formula file",
    ),
    # formula files
    "formula-weights-wrong-type": (
        _formula_file("f.toml", 'version = "x"\nweights = "alive"\n'),
        "has no [weights] table",
    ),
    "formula-weight-is-a-list": (
        _formula_file("f.toml", 'version = "x"\n[weights]\nalive = [1]\n'),
        "weight of alive is [1], not a number",
    ),
    "formula-negative-weight": (
        _formula_file("f.toml", 'version = "x"\n[weights]\nalive = -0.5\ntpp = 1.5\n'),
        "finite and non-negative",
    ),
    "formula-unknown-component": (
        _formula_file("f.toml", 'version = "x"\n[weights]\nvibes = 1.0\n'),
        "unknown component(s) vibes",
    ),
    "formula-sum-not-one": (
        _formula_file("f.toml", 'version = "x"\n[weights]\nalive = 0.5\ntpp = 0.4\n'),
        "sum to 0.9, not 1",
    ),
    "formula-code-weight": (
        _formula_file("f.toml", f'version = "x"\n[weights]\nalive = "{CODE}"\n'),
        "not a number",
    ),
    "formula-code-json": (
        _formula_file("f.json", {"version": "x", "weights": {"alive": CODE}}),
        "not a number",
    ),
    "formula-code-as-key": (
        _formula_file("f.toml", f'version = "x"\n[weights]\n"{CODE}" = 1.0\n'),
        "unknown component(s)",
    ),
    "formula-json-list": (_formula_file("f.json", [1]), "is not a table"),
    "formula-toml-syntax": (_formula_file("f.toml", "version = \n"), "is not valid TOML"),
    "formula-toml-binary": (_formula_file("f.toml", b"\xff\xfe\x00junk"), "is not valid TOML"),
    "formula-l0-target-string": (
        _formula_file("f.toml", VALID_TOML.replace("[weights]", 'l0_target = "80"\n[weights]')),
        "l0_target is '80', not a positive number",
    ),
    "formula-unknown-key": (
        _formula_file("f.toml", "exec = 1\n" + VALID_TOML),
        "unknown key(s) exec",
    ),
    "formula-description-table": (
        _formula_file("f.json", {"version": "x", "weights": {"alive": 1}, "description": {}}),
        "description is dict, not text",
    ),
    "formula-json-nan-weight": (
        _formula_file("f.json", '{"version": "x", "weights": {"alive": NaN}}'),
        "weight of alive is nan",
    ),
    "formula-path-is-directory": (
        lambda t: (["formula", "--formula", str((t / "d.toml").mkdir() or t / "d.toml")], ""),
        "Cannot read formula file",
    ),
    # report
    "report-saes-number": (_report_cmd(report(saes=5)), "key saes is number 5, not a list"),
    "report-no-formula": (
        _report_cmd({k: v for k, v in report().items() if k != "formula"}),
        "key formula is missing",
    ),
    "report-metrics-list": (_report_cmd(entry_with(metrics=[1])), "key saes[0].metrics is a list"),
    "report-score-string": (
        _report_cmd(entry_with(interp_score="0.7")),
        "key saes[0].interp_score is string '0.7'",
    ),
    "report-nan": (
        _report_cmd(json.dumps(report()).replace('"interp_score": 0.7', '"interp_score": NaN')),
        "key saes[0].interp_score is NaN",
    ),
    "report-duplicate-ids": (_report_cmd(report(ids=("a", "a"))), "repeats the id 'a'"),
    "report-other-schema": (_report_cmd(report(schema="interpscore-report/0")), "has schema"),
    "report-ci-of-three": (
        _report_cmd(entry_with(interp_score_ci95=[0.1, 0.2, 0.3])),
        "key saes[0].interp_score_ci95 has 3 items, not 2",
    ),
    "report-weight-string": (
        _report_cmd(report(formula={"version": "x", "weights": {"a": "1"}, "expression": ""})),
        "key formula.weights.a is string '1'",
    ),
    "report-out-is-directory": (
        lambda t: (["report", str(write(t / "r.json", report())), "--out", str(t)], ""),
        "is a folder",
    ),
    "report-out-under-a-file": (
        lambda t: (
            ["report", str(write(t / "r.json", report())), "--out", str(t / "r.json" / "x.md")],
            "",
        ),
        "is a file, not a folder",
    ),
    "report-out-is-the-input": (
        lambda t: (["report", str(write(t / "r.md", report()))], ""),
        "it would be overwritten",
    ),
    # gate
    "gate-no-common-sae": (
        _gate(report(ids=("a", "b", "c", "d")), report(ids=("x",))),
        "No SAE is in both baseline",
    ),
    "gate-misspelt-tolerance": (
        _gate(report(), report(), "--tolerance-for", "los_recovered=0.1"),
        "did you mean loss_recovered",
    ),
    "gate-metric-not-component": (
        _gate(report(), report(), "--tolerance-for", "l0=0.1"),
        "a metric that is not a formula component",
    ),
    "gate-tolerance-nan": (_gate(report(), report(), "--tolerance", "nan"), "--tolerance is nan"),
    "gate-tolerance-text": (_gate(report(), report(), "--tolerance", "lots"), "not a number"),
    "gate-tolerance-no-equals": (
        _gate(report(), report(), "--tolerance-for", "tpp"),
        "is not NAME=VALUE",
    ),
    "gate-tolerance-given-twice": (
        _gate(report(), report(), "--tolerance-for", "tpp=0.1", "--tolerance-for", "tpp=0.2"),
        "two tolerances",
    ),
    "gate-baseline-entries-not-objects": (
        _gate(report(saes=[1]), report()),
        "Baseline",
    ),
    "gate-metric-value-string": (
        _gate(
            report(),
            entry_with(metrics={"loss_recovered": {"value": "0.7", "status": "passed"}}),
        ),
        "key saes[0].metrics.loss_recovered.value is string '0.7'",
    ),
    "gate-missing-current": (
        lambda t: (["gate", str(write(t / "b.json", report())), str(t / "nope.json")], ""),
        "Cannot read report",
    ),
    "gate-baseline-empty-file": (_gate("", report()), "is empty"),
    "gate-baseline-missing-formula": (
        _gate({k: v for k, v in report().items() if k != "formula"}, report()),
        "key formula is missing",
    ),
    "gate-missing-argument": (lambda t: (["gate", str(t / "b.json")], ""), "required: current"),
    # export
    "export-bad-format": (_export(report(), "--format", "csv"), "invalid choice: 'csv'"),
    "export-no-format": (
        lambda t: (["export", str(write(t / "r.json", report())), "-o", str(t / "o")], ""),
        "required: --format",
    ),
    "export-out-is-a-file": (
        lambda t: (
            [
                "export",
                str(write(t / "r.json", report())),
                "--format",
                "saebench",
                "-o",
                str(write(t / "f.txt", "x")),
            ],
            "",
        ),
        "is a file, not a folder",
    ),
    "export-saes-number": (_export(report(saes=5)), "key saes is number 5"),
    "export-bad-timestamp": (
        lambda t: _export(saebench_report(timestamp="yesterday"))(t),
        "key timestamp 'yesterday' is not an ISO date",
    ),
    "export-absorption-details-malformed": (
        lambda t: _export(saebench_report(per_letter={"a": 1}))(t),
        "key metrics.absorption cannot be read",
    ),
    "export-details-not-object": (
        _export(entry_with(metrics={"l0": {"value": 3.0, "status": "passed", "details": []}})),
        "key saes[0].metrics.l0.details is a list",
    ),
    # import-saebench
    "import-missing-path": (
        lambda t: (["import-saebench", str(t / "nope"), "-o", str(t / "i.json")], ""),
        "does not exist",
    ),
    "import-empty-folder": (
        lambda t: (["import-saebench", str(t), "-o", str(t / "i.json")], ""),
        "holds no *_eval_results.json",
    ),
    "import-not-json": (_import("{not json"), "is not JSON"),
    "import-binary": (_import(b"\xff\x00\xfe"), "not UTF-8"),
    "import-json-list": (_import([saebench_file()]), "is not a JSON object"),
    "import-nan": (_import(json.dumps(_metrics(mean_absorption_score=float("nan")))), "NaN"),
    "import-out-of-bounds": (
        _import(_metrics(mean_absorption_score=1.5)),
        "mean.mean_absorption_fraction_score is 1.5, outside [0.0, 1.0]",
    ),
    "import-unknown-eval-type": (
        _import({**saebench_file(), "eval_type_id": "ravel"}),
        "eval_type_id 'ravel' is not one",
    ),
    "import-release-is-object": (
        _import({**saebench_file(), "sae_lens_release_id": {"a": 1}}),
        "key sae_lens_release_id has the wrong type",
    ),
    "import-epoch-too-large": (
        _import({**saebench_file(), "datetime_epoch_millis": 10**30}),
        "datetime_epoch_millis is",
    ),
    "import-no-sae-id": (
        _import({k: v for k, v in saebench_file().items() if k != "sae_lens_id"}),
        "sae_lens_id",
    ),
    "import-out-not-json": (
        lambda t: (
            [
                "import-saebench",
                str(write(t / "a_eval_results.json", saebench_file())),
                "-o",
                str(t / "r.md"),
            ],
            "",
        ),
        "does not end in .json",
    ),
    "import-out-is-directory": (
        lambda t: (
            [
                "import-saebench",
                str(write(t / "a_eval_results.json", saebench_file())),
                "-o",
                str((t / "d.json").mkdir() or t / "d.json"),
            ],
            "",
        ),
        "is a folder",
    ),
    "import-out-is-the-input": (
        lambda t: (
            ["import-saebench", str(write(t / "a.json", saebench_file())), "-o", str(t / "a.json")],
            "",
        ),
        "it would be overwritten",
    ),
    "import-bad-formula": (_import(saebench_file(), "--formula", "nope"), "Unknown formula"),
    # the command line itself
    "unknown-command": (lambda t: (["frobnicate"], ""), "invalid choice: 'frobnicate'"),
    "no-command": (lambda t: ([], ""), "required: command"),
    "unknown-option": (lambda t: (["formula", "--nope"], ""), "unrecognized arguments"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_with_the_fix(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case, expected = CASES[name]
    argv, _ = case(tmp_path)
    line = assert_one_error(*run(capsys, argv))
    assert expected in line
    assert not (tmp_path / "PWNED").exists()  # code in a file is never executed


def test_score_accepts_the_bounds_and_nulls(tmp_path, capsys):
    path = write(tmp_path / "c.json", [{"alive": 0, "tpp": 1, "l0_score": None}])
    code, out, err = run(capsys, ["score", str(path), "--json"])
    assert (code, err) == (0, "")
    (result,) = json.loads(out)
    assert result["interp_score"] == pytest.approx(0.15)
    assert "l0_score" in result["missing"]


def test_score_reads_a_report(tmp_path, capsys):
    code, out, _ = run(capsys, ["score", str(write(tmp_path / "r.json", report(ids=("a", "b"))))])
    assert code == 0
    assert out.splitlines()[0].startswith("a: 0.210")  # 0.30 · 0.7, partial


def test_gate_error_lists_a_few_ids_of_each(tmp_path, capsys):
    line = assert_one_error(
        *run(capsys, _gate(report(ids=tuple("abcde")), report(ids=("x",)))(tmp_path)[0])
    )
    assert "(a, b, c and 2 more)" in line
    assert "(x)" in line
    assert "nothing was compared, so the gate fails" in line


def test_gate_with_a_common_sae_still_passes_and_fails(tmp_path, capsys):
    low = report()
    low["saes"][0]["metrics"]["loss_recovered"] = {"value": 0.5, "status": "passed"}
    low["saes"][0]["interp_score"] = 0.5
    assert run(capsys, _gate(report(), report())(tmp_path)[0])[0] == 0
    assert run(capsys, _gate(report(), low, "--ignore-intervals")(tmp_path)[0])[0] == 1


def test_misspelt_tolerance_is_refused_by_the_pytest_option_parser_too():
    with pytest.raises(BaselineError, match="did you mean loss_recovered") as info:
        parse_tolerance_item("los_recovered=0.1")
    assert "--gate-tolerance-for names 'los_recovered', which the gate never compares" in str(
        info.value
    )
    assert parse_tolerance_item("tpp=0.05") == ("tpp", 0.05)


def test_outputs_are_checked_before_the_inputs_are_read(tmp_path, capsys):
    missing = str(tmp_path / "missing.json")
    line = assert_one_error(*run(capsys, ["report", missing, "--out", str(tmp_path)]))
    assert "is a folder" in line
    afile = str(write(tmp_path / "f.txt", "x"))
    line = assert_one_error(*run(capsys, ["export", missing, "--format", "saebench", "-o", afile]))
    assert "is a file, not a folder" in line


def test_import_creates_missing_folders_as_the_readme_shows(tmp_path, capsys):
    source = write(tmp_path / "a_eval_results.json", saebench_file())
    out = tmp_path / "new" / "deeper" / "r.json"
    code, _, err = run(capsys, ["import-saebench", str(source), "-o", str(out)])
    assert (code, err) == (0, "")
    assert json.loads(out.read_text())["saes"][0]["id"].endswith("canonical")


def test_export_refuses_two_saes_with_the_same_file_name(tmp_path, capsys):
    from test_saebench import _entry, _report

    path = write(tmp_path / "r.json", _report(_entry("org/a"), _entry("org_a")))
    line = assert_one_error(
        *run(capsys, ["export", str(path), "--format", "saebench", "-o", str(tmp_path / "o")])
    )
    assert "both give the file" in line
    assert not (tmp_path / "o" / "core").exists()  # nothing written before the refusal


@pytest.mark.parametrize("command", ["report", "export", "import-saebench"])
def test_read_only_folder_is_refused(tmp_path, capsys, command):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        if command == "report":
            argv = ["report", str(write(tmp_path / "r.json", report())), "--out",
                    str(locked / "r.md")]  # fmt: skip
        elif command == "export":
            argv = ["export", str(write(tmp_path / "r.json", report())), "--format", "saebench",
                    "-o", str(locked / "out")]  # fmt: skip
        else:
            source = write(tmp_path / "a_eval_results.json", saebench_file())
            argv = ["import-saebench", str(source), "-o", str(locked / "r.json")]
        line = assert_one_error(*run(capsys, argv))
        assert "is not writable" in line
    finally:
        locked.chmod(stat.S_IRWXU)
