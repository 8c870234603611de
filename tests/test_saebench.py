"""SAEBench exchange: export writes SAEBench's files (checked against its schema, with the
mapping pinned), import reads them (current and older keys) into our report."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from interpscore.cli import main as cli
from interpscore.formula import get_formula
from interpscore.saebench.export import build_file, export_saebench, file_name
from interpscore.saebench.importer import import_saebench
from interpscore.saebench.mapping import FIELDS
from interpscore.saebench.schema import EVAL_TYPES, check

REPO = Path(__file__).resolve().parents[1]
STAMP = "2026-01-02T03:04:05+00:00"


def _metric(value: float, **details) -> dict:
    return {
        "value": value,
        "status": "passed",
        "ci95": [value - 0.01, value + 0.01],
        "details": details,
        "window": {"n_tokens": 1014},
    }


def _entry(sae_id: str = "org/sae-a") -> dict:
    """A report entry with a known value for every metric SAEBench's files need."""
    metrics = {
        "kl_div_score": _metric(0.96),
        "kl_div_with_ablation": _metric(11.6),
        "kl_div_with_sae": _metric(0.45),
        "ce_loss_score": _metric(1.02),
        "ce_loss_with_ablation": _metric(14.7),
        "ce_loss_with_sae": _metric(3.79),
        "ce_loss_clean": _metric(3.5),
        "explained_variance": _metric(0.76),
        "explained_variance_legacy": _metric(0.77),
        "mse_per_token": _metric(3.25),
        "cossim": _metric(0.95),
        "l2_ratio": _metric(0.947, l2_norm_in=171.6, l2_norm_out=162.3),
        "relative_reconstruction_bias": _metric(0.998),
        "l0": _metric(32.0),
        "l1": _metric(455.8),
        "alive": _metric(
            0.55,
            freq_over_1_percent=0.19,
            freq_over_10_percent=0.02,
            normalized_freq_over_1_percent=0.88,
            normalized_freq_over_10_percent=0.36,
            average_max_encoder_cosine_sim=0.27,
            average_max_decoder_cosine_sim=0.24,
        ),
        "absorption": _metric(
            0.2,
            qualifying_letters=["a", "b", "c"],
            per_letter={
                "a": {"absorption_fraction": 0.1, "full_absorption_rate": 0.0, "main_latents": [1]},
                "b": {
                    "absorption_fraction": 0.3,
                    "full_absorption_rate": 0.1,
                    "main_latents": [2, 3, 4],
                },
                "c": {
                    "absorption_fraction": 0.2,
                    "full_absorption_rate": 0.2,
                    "main_latents": [5, 6],
                },
                "z": {
                    "absorption_fraction": 0.9,
                    "full_absorption_rate": 0.9,
                    "main_latents": [],
                },  # not qualifying: left out
            },
        ),
        "absorption_full_rate": _metric(0.1),
        "absorption_split_latents": _metric(2.0),
        "tpp_saebench@20": _metric(0.25, intended=0.3, unintended=0.05, tasks=["t1"]),
        "autointerp_saebench": _metric(0.75, per_latent=[0.5, 1.0, None, 0.75]),
        "sparse_probing": _metric(0.9),  # the notebook's AUROC: never exported
        "tpp": _metric(0.2),
    }
    for k, acc in ((1, 0.61), (2, 0.65), (5, 0.8)):
        metrics[f"sparse_probing_k{k}"] = _metric(
            acc, llm_reference_accuracy=acc - 0.05, llm_dense_accuracy=0.93
        )
    return {
        "id": sae_id,
        "model": "smollm2-135m",
        "hook": "blocks.15.hook_resid_post",
        "layer": 15,
        "d_in": 576,
        "d_sae": 3072,
        "architecture": "topk",
        "k": 32.0,
        "timestamp": STAMP,
        "metrics": metrics,
    }


def _report(*entries: dict) -> dict:
    run = {
        "seed": 0,
        "batch_size": 8,
        "context_len": 128,
        "dataset": "bundled",
        "libraries": {"sae-lens": "6.54.12"},
        "passes": [{"x": 1}],
        "command": ["pytest"],
    }
    return {"schema": "interpscore-report/1", "run": run, "saes": list(entries) or [_entry()]}


def test_core_file_carries_the_known_values_under_saebench_paths(tmp_path):
    result = export_saebench(_report(), tmp_path)
    written = {p.relative_to(tmp_path).as_posix() for p in result.written}
    assert written == {
        f"{folder}/interpscore_org_sae-a_eval_results.json"
        for folder in ("core", "sparse_probing", "tpp", "absorption", "autointerp")
    }
    assert result.skipped == []
    doc = json.loads((tmp_path / "core" / file_name("interpscore", "org/sae-a")).read_text())
    assert check(doc, EVAL_TYPES["core"]) == []
    m = doc["eval_result_metrics"]
    assert m["model_performance_preservation"]["ce_loss_score"] == 1.02
    assert m["model_performance_preservation"]["ce_loss_without_sae"] == 3.5
    assert m["reconstruction_quality"]["mse"] == 3.25  # from mse_per_token
    assert m["shrinkage"]["l2_norm_in"] == 171.6
    assert m["misc_metrics"]["frac_alive"] == 0.55
    assert m["misc_metrics"]["average_max_decoder_cosine_sim"] == 0.24
    assert m["token_stats"]["total_tokens_eval_reconstruction"] == 1014
    assert doc["eval_type_id"] == "core"
    assert doc["datetime_epoch_millis"] == 1767323045000
    assert doc["sae_lens_id"] == "org/sae-a"
    assert doc["sae_lens_release_id"] == "interpscore"
    assert doc["sae_lens_version"] == "6.54.12"
    assert doc["sae_cfg_dict"]["d_sae"] == 3072
    assert doc["eval_config"]["batch_size_prompts"] == 8
    assert doc["eval_result_unstructured"]["ci95"]["sparsity.l0"] == [31.99, 32.01]
    fields = doc["eval_config"]["interpscore"]["fields"]
    assert fields["reconstruction_quality.explained_variance"]["same_definition"] is False
    assert "malformed total variance" in fields["reconstruction_quality.explained_variance"]["note"]
    assert fields["reconstruction_quality.mse"] == {
        "from": "mse_per_token",
        "same_definition": False,
        "note": fields["reconstruction_quality.mse"]["note"],
    }
    assert "passes" not in doc["eval_config"]["interpscore"]["run"]


def test_the_mapping_is_pinned():
    pinned = {f"{f.eval_type}:{f.path}": (f.source.split(" ")[0], f.same) for f in FIELDS}
    assert pinned["core:model_behavior_preservation.kl_div_score"] == ("kl_div_score", True)
    assert pinned["core:reconstruction_quality.explained_variance"] == ("explained_variance", False)
    assert pinned["core:reconstruction_quality.mse"] == ("mse_per_token", False)
    assert pinned["core:misc_metrics.frac_alive"] == ("alive", True)
    assert pinned["sparse_probing:sae.sae_top_5_test_accuracy"] == ("sparse_probing_k5", True)
    assert pinned["sparse_probing:llm.llm_test_accuracy"] == (
        "sparse_probing_k1.details.llm_dense_accuracy",
        True,
    )
    assert pinned["tpp:tpp_metrics.tpp_threshold_20_intended_diff_only"] == (
        "tpp_saebench@20.details.intended",
        True,
    )
    assert pinned["absorption_first_letter:mean.mean_absorption_fraction_score"] == (
        "absorption",
        True,
    )
    assert pinned["autointerp:autointerp.autointerp_score"] == ("autointerp_saebench", True)
    # The notebook's probing and TPP components are never written under SAEBench's names.
    assert not {"sparse_probing", "tpp"} & {f.metric for f in FIELDS}
    # Every field a SAEBench schema names is filled from somewhere.
    for eval_type in EVAL_TYPES.values():
        named = {f.path for f in FIELDS if f.eval_type == eval_type.id}
        assert set(eval_type.required) <= named
        assert named <= set(eval_type.required) | set(eval_type.optional)


def test_other_files_by_hand(tmp_path):
    export_saebench(_report(), tmp_path)
    sp = json.loads(
        (tmp_path / "sparse_probing" / "interpscore_org_sae-a_eval_results.json").read_text()
    )
    assert sp["eval_result_metrics"]["llm"]["llm_test_accuracy"] == 0.93
    assert sp["eval_result_metrics"]["llm"]["llm_top_2_test_accuracy"] == pytest.approx(0.60)
    assert sp["eval_result_metrics"]["sae"] == {
        "sae_top_1_test_accuracy": 0.61,
        "sae_top_2_test_accuracy": 0.65,
        "sae_top_5_test_accuracy": 0.8,
    }
    tpp = json.loads((tmp_path / "tpp" / "interpscore_org_sae-a_eval_results.json").read_text())
    assert tpp["eval_result_metrics"]["tpp_metrics"] == {
        "tpp_threshold_20_total_metric": 0.25,
        "tpp_threshold_20_intended_diff_only": 0.3,
        "tpp_threshold_20_unintended_diff_only": 0.05,
    }
    assert tpp["eval_config"]["dataset_names"] == ["t1"]
    ab = json.loads(
        (tmp_path / "absorption" / "interpscore_org_sae-a_eval_results.json").read_text()
    )
    mean = ab["eval_result_metrics"]["mean"]
    assert mean["mean_absorption_fraction_score"] == 0.2
    assert mean["std_dev_absorption_fraction_score"] == pytest.approx(
        statistics.stdev([0.1, 0.3, 0.2])
    )
    assert mean["std_dev_num_split_features"] == pytest.approx(1.0)  # stdev of 1, 3, 2
    assert ab["eval_type_id"] == "absorption_first_letter"
    ai = json.loads(
        (tmp_path / "autointerp" / "interpscore_org_sae-a_eval_results.json").read_text()
    )
    assert ai["eval_result_metrics"]["autointerp"] == {
        "autointerp_score": 0.75,
        "autointerp_std_dev": pytest.approx(0.25),  # over the latents with a score
    }
    kinds = (sp, "sparse_probing"), (tpp, "tpp"), (ab, "absorption_first_letter")
    for doc, kind in (*kinds, (ai, "autointerp")):
        assert check(doc, EVAL_TYPES[kind]) == []


def test_a_missing_required_value_names_the_field_and_the_metric():
    entry = _entry()
    entry["metrics"]["alive"]["details"].pop("freq_over_1_percent")
    why = build_file(EVAL_TYPES["core"], entry, _report(entry), "interpscore")
    assert why == (
        "the report has no value for misc_metrics.freq_over_1_percent "
        "(from alive.details.freq_over_1_percent)"
    )
    entry["metrics"]["l0"] = {"value": None, "status": "failed", "error": "boom"}
    assert "sparsity.l0 (from l0)" in build_file(EVAL_TYPES["core"], entry, _report(entry), "x")


def test_the_schema_check_catches_what_saebench_would_refuse(tmp_path):
    export_saebench(_report(), tmp_path)
    good = json.loads((tmp_path / "core" / "interpscore_org_sae-a_eval_results.json").read_text())
    core = EVAL_TYPES["core"]
    bad = json.loads(json.dumps(good))
    del bad["eval_id"]
    bad["eval_result_metrics"]["sparsity"]["l0"] = None
    bad["eval_result_metrics"]["token_stats"]["total_tokens_eval_reconstruction"] = 10.5
    bad["eval_result_metrics"]["misc_metrics"]["frac_alive"] = True
    bad["sae_cfg_dict"] = "cfg"
    assert check(bad, core) == [
        "missing key eval_id",
        "key sae_cfg_dict has the wrong type (str)",
        "key eval_result_metrics.sparsity.l0 is None, not a number",
        "key eval_result_metrics.token_stats.total_tokens_eval_reconstruction is 10.5, "
        "not a number",
        "key eval_result_metrics.misc_metrics.frac_alive is True, not a number",
    ]
    assert check([], core) == ["the file is not a JSON object"]


def test_round_trip_keeps_every_same_definition_value_and_scores_partially(tmp_path):
    entry = _entry()
    export_saebench(_report(entry), tmp_path / "eval_results")
    formula = get_formula(None)
    report, errors = import_saebench(
        sorted((tmp_path / "eval_results").rglob("*.json")), formula, ["interpscore"]
    )
    assert errors == []
    (sae,) = report["saes"]
    assert sae["id"] == "interpscore/org/sae-a"
    assert sae["imported_from"] == "saebench"
    m = sae["metrics"]
    for f in FIELDS:
        if f.same and f.detail is None and f.derive is None and f.metric in entry["metrics"]:
            assert m[f.metric]["value"] == entry["metrics"][f.metric]["value"], f.path
            assert m[f.metric]["source"] == f"saebench:{f.eval_type}/{f.path}"
    assert "explained_variance" not in m  # a different definition is not filled in
    assert "mse_per_token" not in m
    recovered = (14.7 - 3.79) / (14.7 - 3.5)  # our formula on the three mean losses
    assert m["loss_recovered"]["value"] == pytest.approx(recovered)
    assert m["l0_score"]["value"] == pytest.approx(32 / 80)
    assert m["dead_fraction"]["value"] == pytest.approx(0.45)
    assert sae["partial"] is True
    assert sae["missing"] == ["sparse_probing", "tpp"]
    expected = 0.3 * recovered + 0.15 * 0.55 + 0.15 * 0.4
    assert sae["interp_score"] == pytest.approx(expected)
    assert set(sae["saebench"]) == {
        "core",
        "sparse_probing",
        "tpp",
        "absorption_first_letter",
        "autointerp",
    }


def _saebench_file(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _older_files(root: Path) -> list[Path]:
    """Files as older SAEBench versions wrote them: no eval_type_id, no sae_cfg_dict,
    ``mean_absorption_score``, SCR ``shift_metrics``."""
    base = {
        "eval_config": {"model_name": "gemma-2-2b"},
        "eval_id": "x",
        "datetime_epoch_millis": 1730000000000,
        "sae_bench_commit_hash": "abc",
        "sae_lens_id": "layer_12/width_16k/canonical",
        "sae_lens_release_id": "gemma-scope-2b-pt-res",
    }
    absorption = {
        **base,
        "eval_result_metrics": {
            "mean": {"mean_absorption_score": 0.12, "mean_num_split_features": 1.4}
        },
    }
    scr = {**base, "eval_result_metrics": {"shift_metrics": {"scr_metric_threshold_10": 0.3}}}
    return [
        _saebench_file(root / "absorption" / "a_eval_results.json", absorption),
        _saebench_file(root / "scr" / "b_eval_results.json", scr),
    ]


def test_older_files_import_with_their_key_names(tmp_path):
    report, errors = import_saebench(_older_files(tmp_path), get_formula(None), ["x"])
    assert errors == []
    (sae,) = report["saes"]
    assert sae["id"] == "gemma-scope-2b-pt-res/layer_12/width_16k/canonical"
    assert sae["model"] == "gemma-2-2b"
    assert sae["metrics"]["absorption"]["value"] == 0.12
    assert sae["metrics"]["absorption"]["source"] == (
        "saebench:absorption_first_letter/mean.mean_absorption_fraction_score"
    )
    assert sae["saebench"]["scr"]["eval_result_metrics"] == {
        "shift_metrics": {"scr_metric_threshold_10": 0.3}
    }
    assert sae["interp_score"] is None or sae["partial"] is True


def test_cli_import_reports_bad_files_in_one_line_and_keeps_the_others(tmp_path, capsys):
    files = _older_files(tmp_path / "in")
    _saebench_file(
        tmp_path / "in" / "core" / "broken_eval_results.json",
        {
            "eval_type_id": "core",
            "eval_config": {},
            "eval_id": "x",
            "datetime_epoch_millis": 1,
            "sae_bench_commit_hash": "h",
            "sae_lens_id": "s",
            "sae_lens_release_id": "r",
            "eval_result_metrics": {"model_behavior_preservation": {"kl_div_score": "high"}},
        },
    )
    _saebench_file(
        tmp_path / "in" / "x" / "odd_eval_results.json",
        {
            "eval_type_id": "ravel",
            "eval_result_metrics": {},
        },
    )
    (tmp_path / "in" / "y_eval_results.json").write_text("{not json")
    out = tmp_path / "imported.json"
    assert cli(["import-saebench", str(tmp_path / "in"), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert err[0] == (
        "interpscore: error: broken_eval_results.json (core): key eval_result_metrics."
        "model_behavior_preservation.kl_div_score is 'high', not a number. "
        "Fix: pass an unmodified SAEBench result file."
    )
    assert "odd_eval_results.json: eval_type_id 'ravel' is not one this version reads" in err[1]
    assert "y_eval_results.json is not JSON" in err[2]
    report = json.loads(out.read_text())
    assert [s["id"] for s in report["saes"]] == [
        "gemma-scope-2b-pt-res/layer_12/width_16k/canonical"
    ]
    assert out.with_suffix(".md").is_file()
    assert len(files) == 2


def test_cli_export_and_gate_an_imported_report(tmp_path, capsys):
    report_path = tmp_path / "interpscore.json"
    report_path.write_text(json.dumps(_report()))
    assert cli(["export", str(report_path), "--format", "saebench", "-o", str(tmp_path / "e")]) == 0
    printed = capsys.readouterr()
    assert len(printed.out.strip().splitlines()) == 5
    assert printed.err == ""
    imported = tmp_path / "imported.json"
    assert cli(["import-saebench", str(tmp_path / "e"), "-o", str(imported)]) == 0
    # an imported report gates against itself like any other
    assert cli(["gate", str(imported), str(imported)]) == 0


def test_the_committed_reference_exports_to_valid_files(tmp_path):
    report = json.loads((REPO / "reports" / "interpscore.json").read_text())
    result = export_saebench(report, tmp_path)
    kinds = {p.parent.name for p in result.written}
    assert {"core", "sparse_probing", "tpp", "absorption"} <= kinds
    folder_to_type = {e.folder: e for e in EVAL_TYPES.values()}
    for path in result.written:
        assert check(json.loads(path.read_text()), folder_to_type[path.parent.name]) == []
        assert str(REPO) not in path.read_text()  # no paths of this machine


def test_loss_recovered_is_not_the_clipped_ratio_where_ablation_does_not_hurt(tmp_path):
    """Measured on the zoo's control-rerand-excl-emb: CE_abl 17.58 < CE_clean 22.64 gives
    ce_loss_score 1.059, which clipped reads as full recovery; ours is 0."""
    entry = _entry()
    for name, value in (("ce_loss_clean", 22.64), ("ce_loss_with_ablation", 17.58),
                        ("ce_loss_with_sae", 22.94), ("ce_loss_score", 1.0593)):  # fmt: skip
        entry["metrics"][name] = _metric(value)
    export_saebench(_report(entry), tmp_path)
    report, _ = import_saebench(sorted(tmp_path.rglob("*.json")), get_formula(None), ["x"])
    assert report["saes"][0]["metrics"]["loss_recovered"]["value"] == 0.0
