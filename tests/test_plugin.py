"""The pytest plugin end to end, through pytester: options, reports, failures, xdist."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from interpscore.suites import metric_names

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]
CORE = metric_names("core")
PROBING, TPP, ABSORPTION = (metric_names(s) for s in ("probing", "tpp", "absorption"))


def _report(pytester: pytest.Pytester, name: str = "reports/runs/interpscore.json") -> dict:
    return json.loads((pytester.path / name).read_text())


def test_options_are_in_their_own_help_group(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    section = text[text.index("InterpScore SAE evaluation:") :]
    for option in (
        "--sae=SPEC",
        "--model=MODEL",
        "--dataset=DATASET",
        "--tokens=N",
        "--context-len=N",
        "--batch-size=N",
        "--seed=N",
        "--device=DEVICE",
        "--formula=VERSION|FILE",
        "--interpscore-json=PATH",
    ):
        assert option in section


def test_two_saes_give_every_core_metric_and_both_reports(pytester, bench, tiny_saes):
    result = pytester.runpytest(
        *bench, f"--sae={tiny_saes['topk']}", f"--sae={tiny_saes['identity']}"
    )
    result.assert_outcomes(passed=2 * len(CORE))
    report = _report(pytester)
    assert {s["id"] for s in report["saes"]} == {"topk", "identity"}
    for sae in report["saes"]:
        assert sae["status"] == "ok"
        assert set(CORE) <= set(sae["metrics"])
        assert sae["partial"] is True
        assert sae["missing"] == ["sparse_probing", "tpp"]
        assert sae["metrics"]["alive"]["window"]["n_positions"] == 1024
        assert f"{sae['id']}#random-init" in sae["metrics"]["l0"]["controls"]
    identity = next(s for s in report["saes"] if s["id"] == "identity")
    assert identity["metrics"]["explained_variance"]["value"] == pytest.approx(1.0, abs=1e-6)
    assert identity["metrics"]["mse_per_token"]["value"] == pytest.approx(0.0, abs=1e-8)
    passes = report["run"]["passes"]
    assert len(passes) == 1  # one LM pass served both SAEs and both controls
    assert sorted(passes[0]["sae_ids"]) == [
        "identity",
        "identity#random-init",
        "topk",
        "topk#random-init",
    ]
    timing = report["run"]["timing"]
    assert list(timing["by_family"]) == ["core"]
    assert 0 < timing["by_family"]["core"] <= timing["wall_seconds"]
    assert passes[0]["seconds"] <= timing["by_family"]["core"]
    markdown = (pytester.path / "reports" / "runs" / "interpscore.md").read_text()
    assert "## Where the time went" in markdown
    # a plain run writes under reports/runs/, never over a committed reference
    assert not (pytester.path / "reports" / "interpscore.json").exists()
    assert "| # | SAE |" in markdown
    assert "### topk" in markdown


def test_one_broken_sae_does_not_lose_the_others(pytester, bench, tiny_saes, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_saes["topk"], broken)
    weights = load_file(broken / "sae_weights.safetensors")
    weights["W_enc"][0, 0] = float("inf")
    save_file(weights, broken / "sae_weights.safetensors")
    result = pytester.runpytest(*bench, f"--sae={broken}", f"--sae={tiny_saes['topk']}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*SpecError: SAE broken has NaN or inf values in W_enc*Fix:*"])
    assert "Traceback" not in result.stdout.str()
    saes = {s["id"]: s for s in _report(pytester)["saes"]}
    assert saes["broken"]["status"] == "failed"
    assert saes["broken"]["metrics"]["l0"]["status"] == "failed"
    assert saes["broken"]["metrics"]["l0"]["value"] is None
    assert saes["topk"]["status"] == "ok"
    assert saes["topk"]["metrics"]["l0"]["value"] == pytest.approx(8.0)


def test_bad_spec_is_a_one_line_usage_error(pytester, bench):
    result = pytester.runpytest(*bench, "--sae=./does/not/exist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: SAE directory ./does/not/exist does not exist. Fix: check the --sae path."]
    )


def test_unknown_formula_lists_the_known_ones(pytester, bench, tiny_saes):
    result = pytester.runpytest(*bench, f"--sae={tiny_saes['topk']}", "--formula=7.7.7")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*Unknown formula version '7.7.7'. Fix: use one of 0.0.1*"])


def test_k_selects_metrics(pytester, bench, tiny_saes):
    result = pytester.runpytest(*bench, f"--sae={tiny_saes['topk']}", "-k", "l0 and not score")
    result.assert_outcomes(passed=1)
    (sae,) = _report(pytester)["saes"]
    assert list(sae["metrics"]) == ["l0"]


def test_same_inputs_give_identical_values(pytester, bench, tiny_saes):
    values = []
    for out in ("a.json", "b.json"):
        pytester.runpytest(*bench, f"--sae={tiny_saes['topk']}", f"--interpscore-json={out}")
        values.append(
            {
                k: (m["value"], m["ci95"])
                for k, m in _report(pytester, out)["saes"][0]["metrics"].items()
            }
        )
    assert values[0] == values[1]


def test_bfloat16_model_gives_the_float32_values_within_its_precision(pytester, bench, tiny_saes):
    values = {}
    for dtype in ("float32", "bfloat16"):
        out = f"{dtype}.json"
        result = pytester.runpytest(
            *bench, f"--sae={tiny_saes['topk']}", f"--dtype={dtype}", f"--interpscore-json={out}"
        )
        result.assert_outcomes(passed=len(CORE))
        report = _report(pytester, out)
        assert report["run"]["dtype"] == dtype
        values[dtype] = {k: m["value"] for k, m in report["saes"][0]["metrics"].items()}
    assert values["bfloat16"] != values["float32"]
    for name in ("l0", "explained_variance", "loss_recovered", "kl_div_score"):
        assert values["bfloat16"][name] == pytest.approx(values["float32"][name], rel=0.05), name


def test_xdist_gives_the_same_values(pytester, bench, tiny_saes):
    args = [*bench, f"--sae={tiny_saes['topk']}", f"--sae={tiny_saes['identity']}"]
    pytester.runpytest_subprocess(*args, "--interpscore-json=serial.json").assert_outcomes(
        passed=2 * len(CORE)
    )
    pytester.runpytest_subprocess(
        *args, "-n", "2", "--interpscore-json=parallel.json"
    ).assert_outcomes(passed=2 * len(CORE))

    def values(name):
        return {
            (s["id"], k): m["value"]
            for s in _report(pytester, name)["saes"]
            for k, m in s["metrics"].items()
        }

    assert values("serial.json") == values("parallel.json")


def test_probing_and_tpp_complete_the_interpscore(pytester, bench, tiny_saes):
    for name in ("test_probing", "test_tpp"):
        pytester.makepyfile(**{name: (REPO / "benchmarks" / f"{name}.py").read_text()})
    result = pytester.runpytest(
        *bench, f"--sae={tiny_saes['topk']}", "--probe-examples=300", "--bootstrap=50"
    )
    result.assert_outcomes(passed=len(CORE) + len(PROBING) + len(TPP))
    (sae,) = _report(pytester)["saes"]
    assert sae["partial"] is False
    assert sae["missing"] == []
    assert 0.0 <= sae["interp_score"] <= 1.0
    assert sae["interp_score_ci95"] is not None
    probing = sae["metrics"]["sparse_probing"]
    assert set(probing["details"]["probing_per_task_auc"]) == {
        "wordnet_topic",
        "code_language",
        "vader_sentiment",
    }
    sizes = probing["details"]["tasks"]["wordnet_topic"]["split_sizes"]
    assert sizes == {"train": 210, "val": 30, "test": 60}
    assert probing["details"]["tasks"]["vader_sentiment"]["grouped_split"] is True
    assert sae["probing_tasks"] == ["wordnet_topic", "code_language", "vader_sentiment"]
    assert sae["tpp_concept"] == "vader_sentiment"
    assert "topk#random-init" in sae["controls"]
    assert sae["controls"]["topk#random-init"]["partial"] is False


def test_absorption_is_not_applicable_when_the_model_cannot_spell(pytester, bench, tiny_saes):
    pytester.makepyfile(test_absorption=(REPO / "benchmarks" / "test_absorption.py").read_text())
    result = pytester.runpytest(
        *bench, f"--sae={tiny_saes['topk']}", "--absorption-words=300", "test_absorption.py"
    )
    result.assert_outcomes(passed=len(ABSORPTION))
    (sae,) = _report(pytester)["saes"]
    entry = sae["metrics"]["absorption"]
    assert entry["status"] == "not_applicable"
    assert entry["value"] is None
    assert "letters have a probe F1 above 0.6" in entry["details"]["reason"]
    assert entry["details"]["probe_f1_val"]  # the measured F1 per letter is reported
    assert sae["status"] == "ok"


def test_gate_passes_on_identical_rerun_and_fails_on_raised_baseline(pytester, bench, tiny_saes):
    args = [*bench, f"--sae={tiny_saes['topk']}", "-k", "explained_variance or l0"]
    selected = [m for m in CORE if "explained_variance" in m or "l0" in m]
    pytester.runpytest(*args, "--interpscore-json=base.json").assert_outcomes(passed=len(selected))
    again = pytester.runpytest(
        *args, "--interpscore-baseline=base.json", "--interpscore-json=again.json"
    )
    assert again.ret == pytest.ExitCode.OK
    again.stdout.fnmatch_lines(["*InterpScore regression gate passed*"])
    raised = _report(pytester, "base.json")
    raised["saes"][0]["metrics"]["l0_score"]["value"] += 0.2
    (pytester.path / "raised.json").write_text(json.dumps(raised))
    failed = pytester.runpytest(
        *args, "--interpscore-baseline=raised.json", "--interpscore-json=now.json"
    )
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(
        ["*regression gate FAILED: 1 regression(s)*", "| topk | l0_score |*"]
    )
    assert _report(pytester, "now.json")["gate"]["passed"] is False


def test_gate_refuses_bad_tolerance_before_running(pytester, bench, tiny_saes):
    pytester.path.joinpath("base.json").write_text("{}")
    result = pytester.runpytest(
        *bench, f"--sae={tiny_saes['topk']}", "--interpscore-baseline=base.json"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: Baseline base.json has schema None*Fix:*"])


def test_model_level_controls_pair_with_their_sae_and_run_core_metrics(
    pytester, bench, tiny_saes, tiny_llama, tmp_path
):
    """An SAE on a re-randomized model, marked control_of, is reported as a model control."""
    from interpscore.subjects.loading import load_sae

    control = load_sae(str(tiny_saes["topk"])).sae
    control_dir = tmp_path / "ctrl"
    import subjects

    subjects.save_sae(
        control,
        control_dir,
        str(tiny_llama),
        model_variant="rerandomized-excl-emb",
        model_variant_seed=0,
        control_of="topk",
    )
    pytester.makepyfile(test_probing=(REPO / "benchmarks" / "test_probing.py").read_text())
    result = pytester.runpytest(
        *bench,
        f"--sae={tiny_saes['topk']}",
        f"--sae={control_dir}",
        "--probe-examples=200",
        "-k",
        "l0 or sparse_probing_k1",
    )
    # the core metrics named l0* run for both SAEs; sparse_probing_k1* run for topk and are
    # skipped for the control (only core families run on randomized transformers)
    n_core = len([m for m in CORE if "l0" in m])
    n_probing = len([m for m in PROBING if "sparse_probing_k1" in m])
    result.assert_outcomes(passed=2 * n_core + n_probing, skipped=n_probing)
    saes = {s["id"]: s for s in _report(pytester)["saes"]}
    assert saes["ctrl"]["model"] == f"{tiny_llama}::rerandomized-excl-emb@0"
    assert saes["ctrl"]["control_of"] == "topk"
    assert "ctrl" in saes["topk"]["metrics"]["l0"]["controls"]
    assert saes["ctrl"]["metrics"]["sparse_probing_k1"]["status"] == "skipped"
    reason = saes["ctrl"]["metrics"]["sparse_probing_k1"]["reason"]
    assert reason.startswith("ctrl reads the randomized transformer")  # the reason alone:
    assert str(REPO) not in json.dumps(_report(pytester))  # no path of this machine
    assert "skipped" in saes["topk"]["metrics"]["sparse_probing_k1"]["controls"]["ctrl"]
