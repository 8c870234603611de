"""``interpscore verify``: the comparison, the settings round trip, user errors, and a real
re-run on the tiny model. The committed reference is verified in `.ci/run`, against the
main job's re-run of it (`--rerun`), with a hand-edited copy that must be caught."""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from interpscore.cli import main as cli
from interpscore.errors import InterpScoreError
from interpscore.evaluation.settings import RunSettings
from interpscore.formula import BUILTIN, score
from interpscore.pytest_plugin.options import SETTINGS, SUITE_SETTINGS
from interpscore.pytest_plugin.reporting import run_block
from interpscore.results.gate import Tolerances, parse_tolerances
from interpscore.results.report import SCHEMA
from interpscore.settings import argparse_kwargs, declared, from_namespace
from interpscore.suites import REGISTRY
from interpscore.verify.command import verify_tolerances
from interpscore.verify.compare import (
    CONSISTENCY,
    compare_entries,
    consistency_row,
    names_to_verify,
)
from interpscore.verify.rerun import Rerun, check_rerun, families, formula_file, report_formula
from interpscore.verify.run_options import run_options

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


# --- the pure comparison ---------------------------------------------------------------


def _entry(lr: Any = 0.9, ci: Any = (0.88, 0.92), score: Any = 0.7, **extra: Any) -> dict:
    metric = {"value": lr, "status": "passed", "ci95": list(ci) if ci else None}
    return {
        "id": "a",
        "interp_score": score,
        "interp_score_ci95": [score - 0.01, score + 0.01] if isinstance(score, float) else None,
        "partial": False,
        "components": {"loss_recovered": lr},
        "metrics": {"loss_recovered": metric},
        **extra,
    }


def _verdicts(reported: dict, rerun: dict | None, tol: Tolerances | None = None) -> dict:
    names = ["interp_score", "loss_recovered"]
    rows = compare_entries(reported, rerun, names, tol or Tolerances())
    return {r.name: (r.agrees, r.verdict) for r in rows}


def test_value_inside_the_reported_interval_agrees():
    got = _verdicts(_entry(lr=0.90), _entry(lr=0.915, score=0.705))
    assert got == {
        "interp_score": (True, "agrees (in ci95)"),
        "loss_recovered": (True, "agrees (in ci95)"),
    }


def test_value_outside_the_interval_disagrees_and_the_row_says_by_how_much():
    got = _verdicts(_entry(lr=0.90), _entry(lr=0.95))
    assert got["interp_score"][0] is True
    agrees, verdict = got["loss_recovered"]
    assert not agrees
    assert verdict == "DISAGREES (outside ci95; re-run +0.05)"


def test_tolerance_forgives_a_difference_outside_the_interval_and_only_for_its_name():
    reported, rerun = _entry(lr=0.90, ci=None), _entry(lr=0.93)
    assert _verdicts(reported, rerun)["loss_recovered"][0] is False
    forgiving = Tolerances(per_name={"loss_recovered": 0.05})
    assert _verdicts(reported, rerun, forgiving)["loss_recovered"] == (
        True,
        "agrees (within tolerance 0.05)",
    )
    assert (
        _verdicts(reported, rerun, Tolerances(per_name={"tpp": 0.05}))["loss_recovered"][0] is False
    )
    assert _verdicts(reported, rerun, Tolerances(default=0.02))["loss_recovered"][0] is False


def test_missing_metric_sae_or_score_in_the_rerun_fails():
    rerun = _entry()
    del rerun["metrics"]["loss_recovered"], rerun["components"]["loss_recovered"]
    agrees, verdict = _verdicts(_entry(), rerun)["loss_recovered"]
    assert not agrees
    assert verdict.startswith("MISSING in re-run")
    failed = _entry(lr=None)
    failed["metrics"]["loss_recovered"] |= {"status": "failed", "error": "RuntimeError: boom"}
    agrees, verdict = _verdicts(_entry(), failed)["loss_recovered"]
    assert not agrees
    assert "RuntimeError: boom" in verdict
    assert all(not ok for ok, _ in _verdicts(_entry(), None).values())
    partial = _entry(partial=True, missing=["tpp"])
    agrees, verdict = _verdicts(_entry(), partial)["interp_score"]
    assert not agrees
    assert "only the re-run is partial: missing tpp" in verdict


@pytest.mark.parametrize("bad", [math.nan, math.inf, "0.9", True])
def test_nan_or_non_number_fails_on_either_side(bad):
    agrees, verdict = _verdicts(_entry(), _entry(lr=bad))["loss_recovered"]
    assert not agrees
    assert "NOT A NUMBER" in verdict
    agrees, _ = _verdicts(_entry(lr=bad), _entry())["loss_recovered"]
    assert not agrees
    # an interval of NaNs is no interval: a NaN re-run cannot hide inside it either
    agrees, _ = _verdicts(_entry(ci=(math.nan, math.nan)), _entry(lr=0.91))["loss_recovered"]
    assert not agrees


def test_reported_value_without_rerun_value_and_both_skipped():
    skipped = {"value": None, "status": "skipped", "reason": "not among the scorers"}
    both = _entry()
    both["metrics"]["autointerp_detection"] = dict(skipped)
    rows = compare_entries(both, copy.deepcopy(both), ["autointerp_detection"], Tolerances())
    assert [(r.agrees, r.verdict) for r in rows] == [(True, "agrees (no value in either)")]
    ran = copy.deepcopy(both)
    ran["metrics"]["autointerp_detection"] = {"value": 0.6, "status": "passed", "ci95": None}
    (row,) = compare_entries(both, ran, ["autointerp_detection"], Tolerances())
    assert not row.agrees
    assert row.verdict.startswith("DISAGREES: the report has no value")


def test_names_and_families_follow_the_formula_or_every_metric():
    entry = _entry()
    entry["metrics"]["token_entropy"] = {"value": 2.0, "ci95": None}
    weights = ["loss_recovered", "alive", "l0_score", "sparse_probing", "tpp"]
    assert names_to_verify(entry, weights, "components") == ["interp_score", *weights]
    assert names_to_verify(entry, weights, "all")[-1] == "token_entropy"
    assert families(["interp_score", *weights]) == ["core", "probing", "tpp"]
    assert families(["token_entropy", "l0"]) == ["core", "abstractness"]


def test_tolerances_reuse_the_gate_and_accept_metrics_only_with_metrics_all():
    tol = verify_tolerances("0.01", ["tpp=0.1", "interp_score=0"], "components")
    assert (tol.of("tpp"), tol.of("interp_score"), tol.of("alive")) == (0.1, 0.0, 0.01)
    with pytest.raises(InterpScoreError, match="only with --metrics all"):
        verify_tolerances("0", ["token_entropy=0.1"], "components")
    assert verify_tolerances("0", ["token_entropy=0.1"], "all").of("token_entropy") == 0.1
    with pytest.raises(InterpScoreError, match="not a known name"):
        verify_tolerances("0", ["nope=0.1"], "all")
    with pytest.raises(InterpScoreError, match="finite number of 0 or more"):
        verify_tolerances("-1", [], "components")


def test_the_gate_keeps_refusing_metrics_that_verify_accepts_with_metrics_all():
    with pytest.raises(InterpScoreError, match="which the gate never compares"):
        parse_tolerances("0", ["token_entropy=0.1"])
    assert parse_tolerances("0", ["token_entropy=0.1"], extra=["token_entropy"]).of(
        "token_entropy"
    ) == pytest.approx(0.1)


def _consistent(**extra: Any) -> dict:
    """A report entry whose interp_score is v0.0.1 applied to its own components."""
    components = {"loss_recovered": 0.9, "alive": 0.8, "l0_score": 0.7, "sparse_probing": 0.6}
    components["tpp"] = 0.1
    result = score(components, BUILTIN["0.0.1"])
    ci = [result.value - 0.01, result.value + 0.01]
    entry = {"id": "a", "interp_score": result.value, "interp_score_ci95": ci}
    return entry | {"partial": False, "components": components} | extra


def test_consistency_row_catches_a_score_edited_away_from_its_components():
    formula = BUILTIN["0.0.1"]
    row = consistency_row(_consistent(), formula)
    assert (row.name, row.agrees, row.verdict) == (
        CONSISTENCY,
        True,
        "agrees (follows from its components)",
    )
    edited = _consistent()
    edited["interp_score"] += 0.004  # inside any plausible 95% interval: a re-run cannot tell
    row = consistency_row(edited, formula)
    assert not row.agrees
    assert row.verdict.startswith("DISAGREES: its components give ")
    assert "reported +0.004" in row.verdict
    # the same edit of a component, score left alone, is caught the same way
    edited = _consistent()
    edited["components"]["tpp"] = 0.2
    assert not consistency_row(edited, formula).agrees
    # a missing component makes the score partial; a report that hides that is caught
    hidden = _consistent()
    hidden["components"]["tpp"] = None
    hidden["interp_score"] -= 0.15 * 0.1
    assert (
        "the components miss tpp but it is not partial" in consistency_row(hidden, formula).verdict
    )
    assert consistency_row(hidden | {"partial": True}, formula).agrees
    claimed = _consistent(partial=True)
    assert "partial but no component is missing" in consistency_row(claimed, formula).verdict
    assert "NOT A NUMBER" in consistency_row(_consistent(interp_score=None), formula).verdict


def test_consistency_reads_metrics_values_for_components_the_entry_does_not_list():
    entry = _consistent()
    value = entry["components"].pop("tpp")
    entry["metrics"] = {"tpp": {"value": value, "status": "passed"}}
    assert consistency_row(entry, BUILTIN["0.0.1"]).agrees


def test_report_formula_is_the_built_in_version_or_the_reports_own():
    assert report_formula({"formula": {"version": "0.0.1", "weights": _v001()}}) is BUILTIN["0.0.1"]
    mine = {"version": "mine", "weights": {"alive": 1.0}, "l0_target": 40, "source": "x"}
    formula = report_formula({"formula": mine})
    assert (formula.version, dict(formula.weights), formula.l0_target) == (
        "mine",
        {"alive": 1.0},
        40,
    )


# --- settings: options -> run block -> options -------------------------------------------


def _settings_types() -> list[type]:
    return [RunSettings, *(s.settings_type for s in REGISTRY.suites() if s.settings_type)]


def _block(argv: list[str]) -> dict[str, Any]:
    """The run block the plugin would record for these options (its own run_block)."""
    parser = argparse.ArgumentParser()
    for settings_type in _settings_types():
        for fld, opt in declared(settings_type):
            parser.add_argument(opt.flag, **argparse_kwargs(fld, opt))
    namespace = parser.parse_args(argv)
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[SETTINGS] = from_namespace(RunSettings, namespace)
    config.stash[SUITE_SETTINGS] = {
        s.name: from_namespace(s.settings_type, namespace)
        for s in REGISTRY.suites()
        if s.settings_type is not None
    }
    return run_block(config)


NON_DEFAULT = [
    "--dataset=corpus.jsonl",
    "--tokens=4096",
    "--context-len=64",
    "--batch-size=4",
    "--seed=3",
    "--model=smollm2-135m",
    "--trust-remote-code",
    "--no-controls",
    "--model-controls=none",
    "--model-control-metrics=all",
    "--dtype=bfloat16",
    "--bootstrap=0",
    "--probing-tasks=code_language",
    "--probing-tasks=wordnet_topic",
    "--probe-examples=300",
    "--probe-max-tokens=64",
    "--tpp-concept=code_language:python",
    "--tpp-n=10",
    "--absorption-words=100",
    "--absorption-min-letters=5",
    "--autointerp-latents=all",
    "--autointerp-tokens=2048",
    "--autointerp-model=some/model",
    "--autointerp-server=http://127.0.0.1:9/v1",
    "--autointerp-api-key-env=MY_KEY",
    "--autointerp-embedding=other-embedder",
    "--autointerp-scorers=embedding,detection",
    "--autointerp-cache=none",
    "--autointerp-concurrency=2",
    "--autointerp-timeout=12.5",
    "--autointerp-window=8",
    "--task-gt-tasks=ioi",
    "--task-gt-tasks=agreement",
]


@pytest.mark.parametrize("argv", [[], NON_DEFAULT], ids=["defaults", "every-option-changed"])
def test_settings_round_trip(argv):
    block = _block(argv)
    options = run_options(block)
    again = _block([*options, f"--formula={block['formula']}"])
    assert again == block
    assert run_options(again) == options
    if argv:  # every option the run block records came back, with its value
        assert sorted(options) == sorted([*argv, "--device=cpu"])
        assert block["probing"]["tasks"] == ["code_language", "wordnet_topic"]
        assert block["autointerp"]["latents"] is None


def test_the_round_trip_covers_every_recorded_option():
    """A family that adds an option must be reproducible: NON_DEFAULT names every flag that
    reaches the run block (--device and --formula are set by verify itself)."""
    recorded = (
        {
            opt.flag
            for settings_type in _settings_types()
            for fld, opt in declared(settings_type)
            if settings_type is RunSettings or _in_block(settings_type)
        }
        - {"--device", "--formula"}
        - {text.partition("=")[0] for text in NOT_RECORDED}
    )
    given = {text.partition("=")[0] for text in NON_DEFAULT}
    assert recorded == given


#: Options that change where values come from, never what is measured: left out of the
#: run block on purpose (a cached value is the value computed without the cache).
NOT_RECORDED = ["--no-cache", "--cache-dir=/tmp/elsewhere", "--cache-max-size=1GB"]


def test_cache_options_stay_out_of_the_run_block():
    assert _block([*NON_DEFAULT, *NOT_RECORDED]) == _block(NON_DEFAULT)
    assert not {"cache", "cache_dir", "cache_max_size"} & set(_block(NOT_RECORDED))


def _in_block(settings_type: type) -> bool:
    suite = next(s for s in REGISTRY.suites() if s.settings_type is settings_type)
    return bool(suite.settings_dict(settings_type()))


def test_formula_is_named_when_built_in_and_written_when_not():
    assert formula_file({"version": "0.0.1", "weights": dict(_v001())}) is None
    mine = {"version": "mine", "weights": {"alive": 1.0}, "l0_target": 40, "source": "x.toml"}
    assert formula_file(mine) == {"version": "mine", "weights": {"alive": 1.0}, "l0_target": 40}
    with pytest.raises(InterpScoreError, match="other weights than the built-in"):
        formula_file({"version": "0.0.1", "weights": {"alive": 1.0}})


def _v001() -> dict[str, float]:
    from interpscore.formula import BUILTIN

    return dict(BUILTIN["0.0.1"].weights)


# --- user errors: one line, exit 2 -------------------------------------------------------


def _write_report(path: Path, **changes: Any) -> Path:
    report = {
        "schema": SCHEMA,
        "formula": {"version": "0.0.1", "weights": _v001()},
        "run": {"dataset": "bundled", "tokens": 256, "seed": 0},
        "saes": [_consistent(sae_repo="zoo:topk-k32") | {"id": "topk-k32"}],
    }
    path.write_text(json.dumps({**report, **changes}))
    return path


def _error(capsys, argv: list[str]) -> str:
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("interpscore: error: ")
    return err


def test_user_errors_name_the_problem_and_the_fix(tmp_path, capsys):
    no_run = _write_report(tmp_path / "norun.json", run={})
    assert "has no run block" in _error(capsys, ["verify", str(no_run)])
    good = _write_report(tmp_path / "r.json")
    err = _error(capsys, ["verify", str(good), "--sae", "nope"])
    assert "no SAE 'nope'" in err
    assert "Fix: use --sae with one of its ids: topk-k32" in err
    bad_spec = _write_report(
        tmp_path / "spec.json", saes=[_entry(sae_repo="zoo:nope") | {"id": "x"}]
    )
    err = _error(capsys, ["verify", str(bad_spec)])
    assert "SAE x: its spec 'zoo:nope' does not resolve here" in err
    assert "Fix:" in err
    missing = tmp_path / "gone.jsonl"
    far = _write_report(tmp_path / "far.json", run={"dataset": str(missing)})
    err = _error(capsys, ["verify", str(far)])
    assert f"dataset {str(missing)!r} cannot be read here" in err
    assert "Fix:" in err
    err = _error(capsys, ["verify", str(good), "--tolerance-for", "tpp=x"])
    assert "is not a number" in err
    err = _error(capsys, ["verify", str(good), "--keep", str(tmp_path), "--rerun", str(good)])
    assert "--keep and --rerun" in err


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"imported_from": "saebench", "files": ["x.json"]}, "was imported from saebench:"),
        ({"dataset": None}, "the run block's dataset is None, not a name"),
        ({"dataset": ["a"]}, "the run block's dataset is ['a'], not a name"),
        ({"device": 0}, "the run block's device is 0, not a name"),
    ],
)
def test_imported_or_mistyped_run_blocks_are_one_line_errors(tmp_path, capsys, run, message):
    path = _write_report(tmp_path / "r.json", run=run)
    err = _error(capsys, ["verify", str(path)])
    assert message in err
    if "imported_from" in run:
        assert "only reports made by `pytest benchmarks`" in err
        assert "Fix: verify them by re-running SAEBench" in err
    err = _error(capsys, ["verify", str(path), "--rerun", str(path)])  # refused there too
    assert message in err


def test_keep_never_touches_the_input_nor_an_earlier_report(tmp_path, capsys):
    kept = tmp_path / "kept"
    kept.mkdir()
    for name in ("interpscore.json", "formula.json", "verify.log"):
        report = _write_report(kept / name)
        before = report.read_bytes()
        err = _error(capsys, ["verify", str(report), "--keep", str(kept)])
        assert f"Output {kept / name} is the input" in err
        assert report.read_bytes() == before
        report.unlink()
    earlier = _write_report(kept / "interpscore.json")
    before = earlier.read_bytes()
    report = _write_report(tmp_path / "r.json")
    err = _error(capsys, ["verify", str(report), "--keep", str(kept)])
    assert f"--keep folder {kept} already holds a interpscore.json" in err
    assert "Fix: give a new or empty folder" in err
    assert earlier.read_bytes() == before
    err = _error(capsys, ["verify", str(report), "--keep", str(report)])
    assert "is a file, not a folder" in err


def test_a_hand_edited_score_fails_without_any_rerun(tmp_path, capsys):
    """A report compared with itself (--rerun) agrees, unless its score was edited."""
    good = _write_report(tmp_path / "good.json")
    status, out = _verify(capsys, [str(good), "--rerun", str(good)])
    assert status == 0, out
    assert "topk-k32  interp_score (from its components)" in out
    report = json.loads(good.read_text())
    report["saes"][0]["interp_score"] += 0.005  # the re-run would still agree (in its ci95)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(report))
    status, out = _verify(capsys, [str(edited), "--rerun", str(good)])
    assert status == 1
    failing = [line for line in out.splitlines() if "DISAGREES" in line]
    assert len(failing) == 1, out
    assert CONSISTENCY in failing[0]
    (rerun_row,) = [line for line in out.splitlines() if "  interp_score  " in line]
    assert rerun_row.endswith("agrees (in ci95)")  # a re-run cannot tell this edit from noise


def test_a_rerun_that_cannot_evaluate_is_a_user_error_not_a_disagreement():
    entries = [_entry()]
    argparse_refusal = (  # pytest's own words for a refused option
        "ERROR: usage: python -m pytest [options] [file_or_dir] [file_or_dir] [...]\n"
        "python -m pytest: error: argument --device: cuda:7 was asked for, but torch sees no "
        "CUDA device on this machine; use --device cpu\n  inifile: None\n"
    )
    with pytest.raises(InterpScoreError, match="refused its options: argument --device: cuda:7"):
        check_rerun(Rerun(None, 4, argparse_refusal), entries, None)
    plugin_refusal = "ERROR: --sae zoo:nope: no SAE 'nope'. Fix: use one of zoo:topk-k32.\n"
    with pytest.raises(InterpScoreError, match="refused its options: --sae zoo:nope") as exc:
        check_rerun(Rerun(None, 4, plugin_refusal), entries, None)
    assert exc.value.fix == "use one of zoo:topk-k32."
    with pytest.raises(InterpScoreError, match=r"wrote no report \(pytest exit 3; last line: b"):
        check_rerun(Rerun(None, 3, "a\nb\n\n"), entries, None)
    failed = _entry(lr=None, errors=["SpecError: Cannot load model 'm'. Fix: download it."])
    failed["metrics"]["loss_recovered"]["status"] = "failed"
    report = {"saes": [failed]}
    with pytest.raises(InterpScoreError, match="could not evaluate it: Cannot load model"):
        check_rerun(Rerun(report, 1, ""), entries, None)
    # a metric that failed on a bug (not a user error) is left to the comparison
    failed["errors"] = ["RuntimeError: boom"]
    assert check_rerun(Rerun(report, 1, ""), entries, None) is report


# --- real re-runs -----------------------------------------------------------------------


def _shifted(report: dict, sid: str, name: str) -> dict:
    """A hand-edited copy: ``name`` of ``sid`` (value, interval, component) moved past its
    own interval, towards the middle of [0, 1]."""
    edited = copy.deepcopy(report)
    entry = next(e for e in edited["saes"] if e["id"] == sid)
    metric = entry["metrics"][name]
    low, high = metric["ci95"]
    shift = max(0.05, high - low + 0.01) * (-1 if metric["value"] > 0.5 else 1)
    metric["value"] += shift
    metric["ci95"] = [low + shift, high + shift]
    entry["components"][name] = metric["value"]
    return edited


def _verify(capsys, argv: list[str]) -> tuple[int, str]:
    status = cli(["verify", *argv])
    return status, capsys.readouterr().out


def test_verify_a_tiny_report_and_catch_an_edit(pytester, bench, tiny_saes, tmp_path, capsys):
    for name in ("test_probing", "test_tpp"):
        pytester.makepyfile(**{name: (REPO / "benchmarks" / f"{name}.py").read_text()})
    made = tmp_path / "made.json"
    result = pytester.runpytest_subprocess(
        *bench, f"--sae=topk={tiny_saes['topk']}", "--probe-examples=300",
        f"--interpscore-json={made}",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-2000:]
    report = json.loads(made.read_text())
    assert "topk#random-init" in report["saes"][0]["controls"]  # made with controls

    status, out = _verify(capsys, [str(made), "--keep", str(tmp_path / "rerun")])
    assert status == 0, out
    assert out.strip().endswith("all 7 agree")
    rerun = json.loads((tmp_path / "rerun" / "interpscore.json").read_text())
    (entry,) = rerun["saes"]
    assert entry["controls"] == {}  # re-run without controls …
    # … and the SAE's own values are the same: controls do not change them
    before = report["saes"][0]["metrics"]
    assert set(entry["metrics"]) == set(before)
    for name, metric in entry["metrics"].items():
        assert metric["value"] == before[name]["value"], name
        assert metric.get("ci95") == before[name].get("ci95"), name

    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(_shifted(report, "topk", "loss_recovered")))
    status, out = _verify(
        capsys, [str(edited), "--rerun", str(tmp_path / "rerun" / "interpscore.json")]
    )
    assert status == 1
    failing = [line for line in out.splitlines() if "DISAGREES" in line or "MISSING" in line]
    # the re-run catches the value; the score no longer follows from the edited component
    assert [line.split()[:2] for line in failing] == [
        ["topk", "interp_score"],
        ["topk", "loss_recovered"],
    ], out
    assert CONSISTENCY in failing[0]


def test_a_setting_added_after_the_report_counts_as_its_default():
    """A report written before ``--dtype`` existed lacks the key: a re-run at the default
    agrees with it, a re-run at another value does not."""
    from interpscore.verify.rerun import same_settings

    report = json.loads(
        (Path(__file__).resolve().parents[1] / "reports/interpscore.json").read_text()
    )
    old = copy.deepcopy(report)
    old["run"].pop("dtype", None)
    rerun = copy.deepcopy(report)
    rerun["run"]["dtype"] = "float32"
    same_settings(old, rerun, "rerun.json")
    rerun["run"]["dtype"] = "bfloat16"
    with pytest.raises(InterpScoreError, match="--dtype=bfloat16"):
        same_settings(old, rerun, "rerun.json")
