"""Many devices and machines: cost-balanced shards, per-SAE result files that a rerun
resumes from, the merge, one xdist worker per device, and the submitit launcher, on the
tiny model; the merged or parallel values must equal a serial run's."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path

import pytest
import subjects
from safetensors.torch import load_file, save_file

from interpscore.cli import main as cli
from interpscore.cluster.plan import (
    UNPLANNED_GROUP,
    Shard,
    parse_shard,
    pass_groups,
    plan_shards,
)
from interpscore.cluster.store import (
    ResultsDir,
    StoreError,
    UnitResult,
    first_difference,
    resume_reason,
    unit_path,
)
from interpscore.errors import InterpScoreError
from interpscore.results.report_shape import check_report_shape
from interpscore.subjects.loading import parse_sae_spec
from interpscore.suites import metric_names

pytest_plugins = ["pytester"]
CORE = metric_names("core")


# Plans: shards and groups, from configs alone --------------------------------------------


def _cfg_dir(root: Path, name: str, d_sae: int, hook: str = "blocks.1.hook_resid_post", **meta):
    folder = root / name
    folder.mkdir(parents=True)
    cfg = {"d_in": 64, "d_sae": d_sae, "metadata": {"model_name": "m", "hook_name": hook, **meta}}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    (folder / "sae_weights.safetensors").write_bytes(b"")
    return parse_sae_spec(str(folder))


def test_shards_take_every_sae_once_balanced_by_cost_whatever_the_order(tmp_path):
    specs = [_cfg_dir(tmp_path, "huge", 1 << 20)]
    specs += [_cfg_dir(tmp_path, f"small{i}", 256) for i in range(6)]
    plan = plan_shards(specs, 2)
    assert sorted(plan.assignment) == sorted(s.id for s in specs)
    # by count it would be 4 + 3; by cost the huge SAE is alone
    assert plan.ids_of(1) == ["huge"] or plan.ids_of(2) == ["huge"]
    shuffled = specs[:]
    random.Random(0).shuffle(shuffled)
    assert plan_shards(shuffled, 2).assignment == plan.assignment
    loads = plan_shards(specs[1:], 3).loads()
    assert max(loads) == min(loads)  # six equal SAEs in three shards: two each
    many = plan_shards(specs, 9)  # more shards than SAEs: some are empty, none is lost
    assert sorted(many.assignment) == sorted(plan.assignment)
    assert any(not many.ids_of(i) for i in range(1, 10))


def test_shards_keep_each_pass_group_whole_when_it_fits(tmp_path):
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    specs = [_cfg_dir(tmp_path, f"{n}{i}", 4096, hook=hooks[i % 2]) for n in "ab" for i in (0, 1)]
    plan = plan_shards(specs, 2)
    assert {tuple(plan.ids_of(1)), tuple(plan.ids_of(2))} == {("a0", "b0"), ("a1", "b1")}
    four = plan_shards(specs, 4)  # a group larger than a shard is split, evenly
    assert sorted(len(four.ids_of(i)) for i in range(1, 5)) == [1, 1, 1, 1]


def test_model_level_controls_stay_with_their_sae_and_its_pass_group(tmp_path):
    specs = [
        _cfg_dir(tmp_path, "a", 4096),
        _cfg_dir(tmp_path, "b", 4096),
        _cfg_dir(tmp_path, "c", 4096, hook="blocks.0.hook_resid_post"),
        _cfg_dir(tmp_path, "ctrl", 256, model_variant="rerandomized-excl-emb", control_of="a"),
        parse_sae_spec("someone/saes/layer_3"),  # a hub SAE: its config is not local
    ]
    for count in (2, 3, 4):
        plan = plan_shards(specs, count)
        assert plan.assignment["ctrl"] == plan.assignment["a"]
    groups = pass_groups(specs)
    assert groups["a"] == groups["b"] == groups["ctrl"]
    assert groups["c"] not in (groups["a"], UNPLANNED_GROUP)
    assert groups["someone-saes-layer_3"] == UNPLANNED_GROUP
    assert all("@" not in g and "]" not in g for g in groups.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [("0/2", "must lie in 1..2"), ("3/2", "must lie in 1..2"), ("1-2", "is not I/N")],
)
def test_bad_shard_is_refused_with_the_fix(text, message):
    with pytest.raises(InterpScoreError, match=message) as info:
        parse_shard(text)
    assert "Fix:" in str(info.value)
    assert parse_shard(" 2 / 4 ") == Shard(2, 4)


# The results directory --------------------------------------------------------------------


def _unit(**changes) -> UnitResult:
    base = {
        "unit": "sae:a/b c",
        "settings": {"run": {"tokens": 1024}, "libraries": {"torch": "2"}},
        "formula": {"version": "0.0.1"},
        "tests": ["test_core.py::test_core[metric=l0]"],
        "identity": {"id": "a/b c", "files": "abc"},
        "status": "ok",
        "outcomes": [
            {
                "test": "test_core.py::test_core[metric=l0]",
                "records": [{"kind": "metric", "replicates": [1.0, math.nan, -math.inf]}],
                "phases": [{"when": "call", "outcome": "passed", "n": 1}],
            }
        ],
    }
    return UnitResult(**{**base, **changes})


@pytest.mark.parametrize("root", ["local", "memory://interpscore-test/run"])
def test_result_files_round_trip_strict_json_locally_and_through_fsspec(root, tmp_path):
    store = ResultsDir(str(tmp_path / "results") if root == "local" else root)
    store.check()
    unit = _unit()
    where = store.write_unit(unit)
    text = store.read(unit_path(unit.unit))
    assert "NaN" not in text  # strict JSON on disk
    assert "Infinity" not in text
    back = store.read_unit(unit.unit)
    reps = back.outcomes[0]["records"][0]["replicates"]
    assert reps[0] == 1.0
    assert math.isnan(reps[1])
    assert reps[2] == -math.inf
    assert [p for p, _ in store.units()] == [where]
    assert "/" not in unit_path(unit.unit).split("/", 1)[1]  # the id's slash is no folder


def test_a_tampered_or_foreign_file_is_refused_with_the_fix(tmp_path):
    store = ResultsDir(str(tmp_path))
    unit = _unit()
    store.write_unit(unit)
    path = tmp_path / unit_path(unit.unit)
    data = json.loads(path.read_text())
    data["settings"]["run"]["tokens"] = 2048  # the fingerprint no longer matches
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match=r"fingerprint does not match.*Fix: delete the file"):
        store.read_unit(unit.unit)
    path.write_text("{}")
    with pytest.raises(StoreError, match="not an interpscore result file"):
        store.read_unit(unit.unit)


def test_resume_reasons():
    unit = _unit()
    same = (unit.settings, unit.tests, unit.identity)
    assert resume_reason(unit, *same) is None
    assert resume_reason(None, *same) == "no results yet"
    other = {"run": {"tokens": 2048}, "libraries": {"torch": "2"}}
    assert resume_reason(unit, other, unit.tests, unit.identity) == (
        "made with other settings: run.tokens (1024 vs 2048)"
    )
    assert "selection" in resume_reason(unit, unit.settings, [], unit.identity)
    changed = {"id": "a/b c", "files": "def"}
    assert resume_reason(unit, unit.settings, unit.tests, changed) == "the SAE's files changed"
    assert resume_reason(_unit(status="failed"), *same) == "failed before"
    assert first_difference({"a": {"b": 1}}, {"a": {}}) == "a.b (1 vs absent)"


# End to end on the tiny model -------------------------------------------------------------


@pytest.fixture(scope="module")
def four_saes(tiny_saes, tiny_llama, tmp_path_factory) -> list[str]:
    """topk, zero, identity (layer 1) and identity on layer 0: two (model, hook) groups."""
    root = tmp_path_factory.mktemp("more-saes")
    layer0 = subjects.save_sae(
        subjects.identity_sae(), root / "identity-l0", str(tiny_llama), "blocks.0.hook_resid_post"
    )
    return [str(tiny_saes[n]) for n in ("topk", "zero", "identity")] + [str(layer0)]


def _report(pytester: pytest.Pytester, name: str) -> dict:
    return json.loads((pytester.path / name).read_text())


def _without_timing(value):
    if isinstance(value, dict):
        return {
            k: _without_timing(v) for k, v in value.items() if k not in ("seconds", "timestamp")
        }
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _entries(report: dict) -> dict:
    """Every SAE's whole report entry (values, intervals, controls, InterpScore), untimed."""
    return {s["id"]: _without_timing(s) for s in report["saes"]}


@pytest.fixture
def serial(pytester, bench, four_saes) -> dict:
    args = [*bench, *(f"--sae={s}" for s in four_saes)]
    pytester.runpytest(*args, "--interpscore-json=serial.json").assert_outcomes(
        passed=4 * len(CORE)
    )
    return _report(pytester, "serial.json")


def test_two_shards_and_a_merge_equal_one_serial_run(pytester, bench, four_saes, serial, capsys):
    args = [*bench, *(f"--sae={s}" for s in four_saes), "--results-dir=results"]
    ran = []
    for index in (1, 2):
        result = pytester.runpytest(*args, f"--shard={index}/2", f"--interpscore-json={index}.json")
        assert result.ret == 0
        ran.append({s["id"] for s in _report(pytester, f"{index}.json")["saes"]})
    assert ran[0]
    assert ran[1]
    assert not ran[0] & ran[1]
    assert ran[0] | ran[1] == set(_entries(serial))
    assert cli(["merge", "results", "-o", "merged.json"]) == 0
    merged = _report(pytester, "merged.json")
    assert _entries(merged) == _entries(serial)
    check_report_shape(merged, "merged.json", for_markdown=True)
    assert merged["run"]["merged"]["shards"] == ["1/2", "2/2"]
    assert str(pytester.path) not in json.dumps(merged)  # no path of this machine
    assert "4 SAE(s) from 4 result file(s)" in capsys.readouterr().out


def test_a_rerun_skips_complete_saes_and_force_redoes_them(pytester, bench, tiny_saes):
    zero = pytester.path / "zero"
    shutil.copytree(tiny_saes["zero"], zero)
    args = [*bench, f"--sae={tiny_saes['topk']}", f"--sae={zero}", "--results-dir=r"]
    pytester.runpytest(*args).assert_outcomes(passed=2 * len(CORE))
    files = {f.name.split(".")[0]: f for f in (pytester.path / "r" / "saes").glob("*.json")}
    assert sorted(files) == ["topk", "zero"]

    def stamps():
        return {k: f.stat().st_mtime_ns for k, f in files.items()}

    before = stamps()
    again = pytester.runpytest(*args)
    assert again.ret == 0
    again.assert_outcomes(deselected=2 * len(CORE))
    again.stdout.fnmatch_lines(["*0 result file(s) written; 2 unit(s) already complete*"])
    assert stamps() == before
    weights = load_file(zero / "sae_weights.safetensors")  # the SAE is retrained in place
    weights["b_enc"] += 1.0
    save_file(weights, zero / "sae_weights.safetensors")
    changed = pytester.runpytest(*args)
    changed.assert_outcomes(passed=len(CORE), deselected=len(CORE))
    changed.stdout.fnmatch_lines(["*ran again: sae:zero (the SAE's files changed)*"])
    after = stamps()
    assert after["topk"] == before["topk"]
    assert after["zero"] > before["zero"]
    forced = pytester.runpytest(*args, "--force")
    forced.assert_outcomes(passed=2 * len(CORE))
    assert all(stamp > after[k] for k, stamp in stamps().items())
    other = pytester.runpytest(*args, "--tokens=512")
    assert other.ret == pytest.ExitCode.USAGE_ERROR
    other.stderr.fnmatch_lines(
        ["*holds results made with other settings (run.tokens (1024 vs 512)*Fix:*"]
    )


def test_merge_refuses_other_settings_and_missing_shards(pytester, bench, tiny_saes, capsys):
    saes = [f"--sae={tiny_saes[n]}" for n in ("topk", "zero", "identity")]
    first = pytester.runpytest(*bench, *saes, "--shard=1/2", "--results-dir=a", "-k", "l0")
    assert first.ret == 0
    assert cli(["merge", "a", "-o", "m.json"]) == 2
    error = capsys.readouterr().err
    assert "planned SAE(s) have no results" in error
    assert "(shard 2/2 of plan" in error
    assert "Fix: run those shards again" in error
    assert cli(["merge", "a", "-o", "m.json", "--allow-partial"]) == 0
    assert _report(pytester, "m.json")["run"]["merged"]["missing"]
    bench = [a.replace("--bootstrap=100", "--bootstrap=50") for a in bench]
    pytester.runpytest(*bench, *saes, "--shard=2/2", "--results-dir=b", "-k", "l0")
    capsys.readouterr()
    assert cli(["merge", "a", "b", "-o", "m.json"]) == 2
    (error,) = capsys.readouterr().err.splitlines()  # one line, with the fix
    assert error.startswith("interpscore: error: ")
    assert "was made with other settings than" in error
    assert "run.bootstrap (100 vs 50)" in error
    assert "Fix: merge results of one run" in error


def test_unusable_results_dirs_are_refused_in_one_line(pytester, bench, tiny_saes, capsys):
    (pytester.path / "a-file").write_text("")
    result = pytester.runpytest(*bench, f"--sae={tiny_saes['zero']}", "--results-dir=a-file")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--results-dir: Output *a-file is a file, not a folder.*Fix:*"])
    result = pytester.runpytest(*bench, f"--sae={tiny_saes['zero']}", "--force")
    result.stderr.fnmatch_lines(["*--force only applies with --results-dir. Fix:*"])
    capsys.readouterr()
    assert cli(["merge", "nowhere", "-o", "m.json"]) == 2
    (error,) = capsys.readouterr().err.splitlines()
    assert "nowhere holds no interpscore results" in error
    assert "Fix: give the --results-dir of a run" in error


def test_one_worker_per_device_gives_the_serial_values(pytester, bench, four_saes, serial):
    args = [*bench, *(f"--sae={s}" for s in four_saes), "--results-dir=r"]
    result = pytester.runpytest_subprocess(*args, "--devices=0,1", "--interpscore-json=par.json")
    result.assert_outcomes(passed=4 * len(CORE))
    parallel = _report(pytester, "par.json")
    assert _entries(parallel) == _entries(serial)
    passes = [(p["hook"], sorted(p["sae_ids"])) for p in parallel["run"]["passes"]]
    assert sorted(passes) == sorted(
        (p["hook"], sorted(p["sae_ids"])) for p in serial["run"]["passes"]
    )
    assert len(passes) == 2  # one pass per (model, hook), each on one worker
    seen = {}
    for path in (pytester.path / "r" / "saes").glob("*.json"):
        data = json.loads(path.read_text())
        seen[data["unit"]] = data["worker"]
    layer1 = {seen[f"sae:{n}"]["visible_devices"] for n in ("topk", "zero", "identity")}
    assert len(layer1) == 1  # one (model, hook) group: one worker, one device
    assert layer1 | {seen["sae:identity-l0"]["visible_devices"]} == {"0", "1"}


def test_devices_refuses_a_second_device_index(pytester, bench, tiny_saes):
    result = pytester.runpytest(*bench, f"--sae={tiny_saes['zero']}", "--devices=0,0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*names a device twice*Fix:*"])


# The launcher, with submitit's local executor -----------------------------------------------

HOLD = """
import time
from pathlib import Path

SHARD = []


def pytest_configure(config):
    SHARD.append(str(config.getoption("shard")))


def pytest_runtest_logfinish(nodeid, location):
    # Test-only: shard 2 stops after its first SAE is written, until the test kills it.
    hold = Path("hold-2")
    if SHARD == ["2/2"] and hold.exists() and any(
        '"shard":"2/2"' in p.read_text() for p in Path("results/saes").glob("*.json")
    ):
        while hold.exists():
            time.sleep(0.2)
"""


def test_launch_two_local_shards_one_killed_and_resumed_merges_to_serial(
    pytester, bench, four_saes, serial
):
    pytest.importorskip("submitit")
    from interpscore.cluster.launch import LaunchSettings, failure_lines, submit, wait

    pytester.makeconftest(HOLD)
    (pytester.path / "hold-2").write_text("")
    settings = LaunchSettings(
        pytest_args=(*bench, *(f"--sae={s}" for s in four_saes)),
        shards=2,
        results_dir=str(pytester.path / "results"),
        log_dir=pytester.path / "results" / "logs",
        cwd=pytester.path,
        executor="local",
        timeout_min=10,
    )
    start = time.monotonic()
    handles = submit(settings)
    saes = pytester.path / "results" / "saes"
    while not any('"shard":"2/2"' in p.read_text() for p in saes.glob("*.json")):
        assert time.monotonic() - start < 150, "shard 2 wrote nothing"
        assert not handles[1].job.done(), "shard 2 ended before it was killed"
        time.sleep(0.5)
    handles[1].job.cancel()  # SIGINT, as a scheduler's cancel: shard 2 stops midway
    statuses = wait(handles, lambda line: None, poll_s=0.5)
    assert statuses[0].ok
    assert not statuses[1].ok
    done_by_2 = {p: p.stat().st_mtime_ns for p in saes.glob("*.json") if '"2/2"' in p.read_text()}
    plan = json.loads(next((pytester.path / "results" / "plans").glob("*.json")).read_text())
    assert 0 < len(done_by_2) < sum(1 for v in plan["saes"].values() if v["shard"] == 2)
    lines = failure_lines([statuses[1]], 2, ["interpscore", "launch", "--shards", "2", "--", "x"])
    assert lines[0].startswith("shard 2/2 (job ")
    assert "failed" in lines[0]
    assert lines[1].startswith("  log: ")
    assert "_log.err" in lines[1]
    assert lines[-1] == "  resubmit it alone: interpscore launch --shards 2 --only 2 -- x"
    (pytester.path / "hold-2").unlink()
    code = cli(
        [
            "launch",
            "--shards=2",
            "--only=2",
            "--executor=local",
            "--timeout-min=10",
            f"--results-dir={settings.results_dir}",
            "-o",
            "launched.json",
            "--",
            *settings.pytest_args,
        ]
    )
    assert code == 0
    # the resumed shard kept what it had written and did the rest
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in done_by_2.items())
    assert _entries(_report(pytester, "launched.json")) == _entries(serial)
