"""Bad inputs and interrupted runs through the real plugin, on the tiny model.

Every case asserts what a user sees: one line naming the problem and the fix, no traceback,
pytest's exit code (usage errors 4), the other SAEs' results kept, and the report on disk
either the previous complete one or a new one that says it was interrupted.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]
REPORT = "reports/runs/interpscore.json"


@pytest.fixture
def bench(bench: list[str]) -> list[str]:
    """The shared arguments made cheaper: later options win, so these override."""
    return [
        *bench,
        "--tokens=512",
        "--bootstrap=20",
        "--no-controls",
        "-k",
        "l0 or alive or relative_reconstruction_bias",
    ]


def _no_traceback(result: pytest.RunResult) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    assert "most recent call last" not in text


def _one_line_failure(pytester: pytest.Pytester, result: pytest.RunResult) -> None:
    """The run failed in one line with the fix: either the SAE's every metric carries the
    same one-line error in the report, or pytest stopped with one usage-error line."""
    assert result.ret in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.USAGE_ERROR)
    if result.ret == pytest.ExitCode.TESTS_FAILED:
        (sae,) = json.loads((pytester.path / REPORT).read_text())["saes"]
        errors = {m.get("error") for m in sae["metrics"].values()}
        assert len(errors) == 1
        (error,) = errors
        assert "Fix:" in error
        assert "\n" not in error
    else:
        lines = [ln for ln in result.stderr.lines if ln.startswith("ERROR:")]
        assert len(lines) == 1
        assert "Fix:" in lines[0]


# SAE directories that are broken in one way, beside a good SAE -------------------------


def _edit_weights(fn: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        weights = load_file(folder / "sae_weights.safetensors")
        fn(weights)
        save_file(weights, folder / "sae_weights.safetensors")

    return edit


def _edit_cfg(fn: Callable[[dict], object]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        cfg = json.loads((folder / "cfg.json").read_text())
        out = fn(cfg)
        (folder / "cfg.json").write_text(json.dumps(cfg if out is None else out))

    return edit


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])

    return edit


def _set(key: str, value: object) -> Callable[[dict], None]:
    def edit(cfg: dict) -> None:
        if key in cfg.get("metadata", {}):
            cfg["metadata"][key] = value
        else:
            cfg[key] = value

    return edit


def _drop(key: str) -> Callable[[dict], None]:
    def edit(cfg: dict) -> None:
        cfg.pop(key, None)
        cfg.get("metadata", {}).pop(key, None)

    return edit


BROKEN_SAES = {
    "weights-truncated-half": (_truncate("sae_weights.safetensors", 0.5), "sae_weights"),
    "weights-truncated-header": (_truncate("sae_weights.safetensors", 0.001), "sae_weights"),
    "weights-empty": (_write("sae_weights.safetensors", b""), "sae_weights"),
    "weights-random-bytes": (_write("sae_weights.safetensors", os.urandom(4096)), "sae_weights"),
    "weights-nan-decoder": (_edit_weights(lambda w: w["W_dec"].fill_(float("nan"))), "NaN"),
    "weights-inf-bias": (_edit_weights(lambda w: w["b_enc"].fill_(float("inf"))), "inf"),
    "weights-wrong-shape": (
        _edit_weights(lambda w: w.__setitem__("W_enc", torch.zeros(3, 5))),
        "shape",
    ),
    "weights-missing-tensor": (_edit_weights(lambda w: w.pop("W_dec")), "W_dec"),
    "cfg-not-json": (_write("cfg.json", b"{not json"), "not valid JSON"),
    "cfg-a-list": (_write("cfg.json", b"[1, 2]"), "not a JSON object"),
    "cfg-binary": (_write("cfg.json", os.urandom(64)), "cfg.json"),
    "cfg-no-d-sae": (_edit_cfg(_drop("d_sae")), "d_sae"),
    "cfg-d-in-string": (_edit_cfg(_set("d_in", "wide")), "d_in"),
    "cfg-unknown-architecture": (_edit_cfg(_set("architecture", "mystery")), "mystery"),
    "cfg-no-hook": (_edit_cfg(_drop("hook_name")), "hook_name"),
    "cfg-hook-not-in-model": (_edit_cfg(_set("hook_name", "blocks.9.hook_resid_post")), "blocks.9"),
    "cfg-d-in-mismatch": (_edit_cfg(_set("d_in", 32)), "d_in"),
    "cfg-model-missing": (_edit_cfg(_set("model_name", "/nonexistent/model")), "/nonexistent"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_SAES))
def test_a_broken_sae_fails_alone(pytester, bench, tiny_saes, tmp_path, case):
    edit, needle = BROKEN_SAES[case]
    broken = tmp_path / case
    shutil.copytree(tiny_saes["topk"], broken)
    edit(broken)
    result = pytester.runpytest(*bench, f"--sae={broken}", f"--sae=good={tiny_saes['topk']}")
    _no_traceback(result)
    assert result.ret in (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.USAGE_ERROR)
    if result.ret == pytest.ExitCode.USAGE_ERROR:  # refused before anything ran
        (line,) = [ln for ln in result.stderr.lines if ln.startswith("ERROR:")]
        assert needle in line
        assert "Fix:" in line
        return
    saes = {s["id"]: s for s in json.loads((pytester.path / REPORT).read_text())["saes"]}
    assert saes["good"]["status"] == "ok"
    assert saes["good"]["metrics"]["l0"]["value"] == pytest.approx(8.0)
    assert saes[case]["status"] == "failed"
    errors = {m.get("error") for m in saes[case]["metrics"].values()}
    assert len(errors) == 1
    (error,) = errors
    assert needle in error
    assert "Fix:" in error
    assert "\n" not in error


def test_a_pickled_payload_is_never_loaded(pytester, bench, tiny_saes, tmp_path):
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"trainer": {"dict_class": "AutoEncoder"}}))

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (folder / "ae.pt").write_bytes(pickle.dumps({"x": Payload()}))
    result = pytester.runpytest(*bench, f"--sae={folder}", f"--sae=good={tiny_saes['topk']}")
    _no_traceback(result)
    assert not (tmp_path / "pwned").exists()
    saes = {s["id"]: s for s in json.loads((pytester.path / REPORT).read_text())["saes"]}
    assert saes["good"]["status"] == "ok"
    assert saes["dl"]["status"] == "failed"


# Models --------------------------------------------------------------------------------


def _model_variant(kind: str, tiny_llama: Path, tmp_path: Path) -> Path:
    if kind == "empty-dir":
        (tmp_path / "m").mkdir()
        return tmp_path / "m"
    if kind == "config-junk":
        shutil.copytree(tiny_llama, tmp_path / "m")
        (tmp_path / "m" / "config.json").write_text("{junk")
        return tmp_path / "m"
    if kind == "weights-truncated":
        shutil.copytree(tiny_llama, tmp_path / "m")
        weights = tmp_path / "m" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
        return tmp_path / "m"
    if kind == "gguf-junk":
        path = tmp_path / "m.gguf"
        path.write_bytes(b"GGUF" + struct.pack("<I", 3) + os.urandom(64))
        return path
    if kind == "gguf-empty":
        path = tmp_path / "m.gguf"
        path.write_bytes(b"")
        return path
    if kind == "custom-code":
        shutil.copytree(tiny_llama, tmp_path / "m")
        cfg = json.loads((tmp_path / "m" / "config.json").read_text())
        cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
        cfg["model_type"] = "x-custom"
        (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
        (tmp_path / "m" / "modeling_x.py").write_text("raise SystemExit('remote code ran')\n")
        return tmp_path / "m"
    if kind == "hub-offline":
        return Path("someone/not-cached-model")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "empty-dir",
        "config-junk",
        "weights-truncated",
        "gguf-junk",
        "gguf-empty",
        "custom-code",
        "hub-offline",
    ],
)
def test_a_bad_model_is_one_line_per_sae(pytester, bench, tiny_saes, tiny_llama, tmp_path, kind):
    model = _model_variant(kind, tiny_llama, tmp_path)
    env = {"HF_HUB_OFFLINE": "1"} if kind == "hub-offline" else {}
    for key, value in env.items():
        pytester._monkeypatch.setenv(key, value)
    result = pytester.runpytest(*bench, f"--sae={tiny_saes['topk']}", f"--model={model}")
    _no_traceback(result)
    assert "remote code ran" not in result.stdout.str() + result.stderr.str()
    _one_line_failure(pytester, result)


# Datasets ------------------------------------------------------------------------------


def _dataset(kind: str, tmp_path: Path, tiny_corpus: Path) -> Path:
    if kind == "empty-jsonl":
        path = tmp_path / "d.jsonl"
        path.write_text("")
    elif kind == "blank-lines-jsonl":
        path = tmp_path / "d.jsonl"
        path.write_text("\n\n\n")
    elif kind == "binary-jsonl":
        path = tmp_path / "d.jsonl"
        path.write_bytes(os.urandom(2048))
    elif kind == "truncated-xz":
        import lzma

        data = lzma.compress(tiny_corpus.read_bytes())
        path = tmp_path / "d.jsonl.xz"
        path.write_bytes(data[: len(data) // 2])
    elif kind == "wrong-column":
        path = tmp_path / "d.jsonl"
        path.write_text("\n".join(json.dumps({"body": "hello there"}) for _ in range(50)))
    elif kind == "not-objects":
        path = tmp_path / "d.jsonl"
        path.write_text("[1, 2]\n[3]\n")
    elif kind == "too-short":
        path = tmp_path / "d.jsonl"
        path.write_text(json.dumps({"text": "just a few words"}) + "\n")
    elif kind == "empty-txt":
        path = tmp_path / "d.txt"
        path.write_text("")
    elif kind == "bad-csv":
        path = tmp_path / "d.csv"
        path.write_text("a,b\n1,2\n3,4\n")
    elif kind == "junk-parquet":
        path = tmp_path / "d.parquet"
        path.write_bytes(b"PAR1" + os.urandom(100))
    elif kind == "unknown-suffix":
        path = tmp_path / "d.bin"
        path.write_bytes(b"x")
    elif kind == "directory":
        path = tmp_path / "dir"
        path.mkdir()
    elif kind == "missing":
        path = tmp_path / "missing.jsonl"
    else:
        raise AssertionError(kind)
    return path


DATASETS = [
    "empty-jsonl",
    "blank-lines-jsonl",
    "binary-jsonl",
    "truncated-xz",
    "wrong-column",
    "not-objects",
    "too-short",
    "empty-txt",
    "bad-csv",
    "junk-parquet",
    "unknown-suffix",
    "directory",
    "missing",
]


@pytest.mark.parametrize("kind", DATASETS)
def test_a_bad_dataset_is_one_line(pytester, bench, tiny_saes, tiny_corpus, tmp_path, kind):
    path = _dataset(kind, tmp_path, tiny_corpus)
    args = [a for a in bench if not a.startswith("--dataset=")]
    result = pytester.runpytest(*args, f"--dataset={path}", f"--sae={tiny_saes['topk']}")
    _no_traceback(result)
    _one_line_failure(pytester, result)


# Options: refused when parsed, or against the model before any metric ---------------------

BAD_OPTIONS = {
    "tokens-zero": ["--tokens=0"],
    "tokens-text": ["--tokens=many"],
    "context-len-one": ["--context-len=1"],
    "context-len-negative": ["--context-len=-5"],
    "bootstrap-negative": ["--bootstrap=-1"],
    "batch-size-zero": ["--batch-size=0"],
    "seed-text": ["--seed=abc"],
    "device-unknown": ["--device=tpu9"],
    "device-cuda-without-gpu": ["--device=cuda"],
    "formula-unknown": ["--formula=9.9.9"],
    "formula-missing-file": ["--formula=./nope.toml"],
    "model-controls-unknown": ["--model-controls=shuffled"],
    "gate-tolerance-text": ["--gate-tolerance=lots"],
    "gate-tolerance-negative": ["--gate-tolerance=-0.1"],
    "gate-tolerance-for-no-equals": ["--gate-tolerance-for=tpp"],
    "baseline-missing": ["--interpscore-baseline=./nope.json"],
    "baseline-not-json": ["--interpscore-baseline={junk}"],
    "sae-empty": ["--sae="],
    "sae-file": ["--sae={file}"],
    "sae-empty-dir": ["--sae={emptydir}"],
    "sae-zoo-unknown": ["--sae=zoo:nope"],
    "dataset-hub-offline": ["--dataset=someone/not-cached-data"],
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_a_bad_option_is_a_usage_error_before_any_model_loads(
    pytester, bench, tiny_saes, tmp_path, case
):
    (tmp_path / "junk.json").write_text("{junk")
    (tmp_path / "file").write_text("x")
    (tmp_path / "emptydir").mkdir()
    pytester._monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    names = {"junk": tmp_path / "junk.json", "file": tmp_path / "file"}
    names["emptydir"] = tmp_path / "emptydir"
    options = [o.format(**names) for o in BAD_OPTIONS[case]]
    sae = [] if any(o.startswith("--sae") for o in options) else [f"--sae={tiny_saes['topk']}"]
    result = pytester.runpytest(*bench, *sae, *options)
    _no_traceback(result)
    if case == "dataset-hub-offline":  # known only when the window is built: per SAE
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        return
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:]
    # Either pytest's own usage error for an option whose value does not parse
    # ("pytest: error: argument --tokens: …"), or the plugin's one line with the fix.
    flag = options[0].split("=")[0]
    errors = [ln for ln in result.stderr.lines if "error:" in ln.lower()]
    parse_errors = [ln for ln in errors if f"error: argument {flag}" in ln]
    assert len(parse_errors) == 1 or (len(errors) == 1 and "Fix:" in errors[0]), errors
    assert not (pytester.path / REPORT).exists()


def test_a_context_longer_than_the_model_allows_is_refused(pytester, bench, tiny_saes):
    args = [a for a in bench if not a.startswith("--context-len")]
    result = pytester.runpytest(
        *args, "--context-len=512", "--tokens=1024", f"--sae={tiny_saes['topk']}"
    )
    _no_traceback(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (sae,) = json.loads((pytester.path / REPORT).read_text())["saes"]
    (error,) = {m.get("error") for m in sae["metrics"].values()}
    assert "512" in error
    assert "256" in error  # the tiny Llama's max_position_embeddings


# Output locations: checked before the evaluation starts ---------------------------------


@pytest.mark.parametrize("kind", ["parent-is-a-file", "path-is-a-directory", "read-only-folder"])
def test_an_unusable_output_location_is_refused_before_evaluating(
    pytester, bench, tiny_saes, tmp_path, kind
):
    if kind == "parent-is-a-file":
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "interpscore.json"
    elif kind == "path-is-a-directory":
        target = tmp_path / "adir"
        target.mkdir()
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who can write to read-only folders (root)")
        target = folder / "interpscore.json"
    result = pytester.runpytest(
        *bench, f"--sae={tiny_saes['topk']}", f"--interpscore-json={target}"
    )
    _no_traceback(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [ln for ln in result.stderr.lines if ln.strip()]
    assert "--interpscore-json" in line
    assert "Fix:" in line
    assert "passed" not in result.stdout.str()  # nothing was evaluated


# Undefined values ---------------------------------------------------------------------


def test_an_undefined_value_is_not_applicable_with_the_reason(pytester, bench, tiny_saes):
    result = pytester.runpytest(*bench, f"--sae={tiny_saes['zero']}")
    _no_traceback(result)
    (sae,) = json.loads((pytester.path / REPORT).read_text())["saes"]
    rrb = sae["metrics"]["relative_reconstruction_bias"]
    assert rrb["status"] == "not_applicable"
    assert rrb["value"] is None
    assert "0/0" in rrb["details"]["reason"]
    assert sae["metrics"]["l0"]["status"] == "passed"


# Secrets ------------------------------------------------------------------------------


def test_a_credential_in_a_spec_is_redacted_everywhere(pytester, bench):
    pytester._monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    token = "hf_" + "a1B2c3D4e5F6g7H8i9J0"
    result = pytester.runpytest(*bench, f"--sae=someone/saes/{token}/layer_1")
    text = result.stdout.str() + result.stderr.str()
    assert token not in text
    for path in (pytester.path / "reports" / "runs").glob("*"):
        assert token not in path.read_text(errors="replace")


# Interruptions: the last complete report is never replaced silently ----------------------

INTERRUPT_CONFTEST = """
import os, signal
COUNT = {{"n": 0}}

def pytest_runtest_{phase}(item):
    COUNT["n"] += 1
    if COUNT["n"] == {at}:
        os.kill(os.getpid(), signal.{signal})
"""


@pytest.mark.parametrize(
    ("sig", "phase", "at"),
    [
        ("SIGINT", "call", 1),
        ("SIGINT", "call", 3),
        ("SIGINT", "setup", 2),
        ("SIGTERM", "call", 2),
        ("SIGTERM", "teardown", 1),
    ],
)
def test_an_interrupted_run_keeps_the_last_complete_report(
    pytester, bench, tiny_saes, sig, phase, at
):
    first = pytester.runpytest_subprocess(*bench, f"--sae={tiny_saes['topk']}")
    assert first.ret == pytest.ExitCode.OK
    complete = (pytester.path / REPORT).read_text()
    pytester.makeconftest(INTERRUPT_CONFTEST.format(phase=phase, at=at, signal=sig))
    result = pytester.runpytest_subprocess(*bench, f"--sae={tiny_saes['topk']}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert (pytester.path / REPORT).read_text() == complete
    partial = pytester.path / "reports" / "runs" / "interpscore.interrupted.json"
    if (phase, at) == ("call", 1):  # stopped inside the first test: nothing to report
        assert not partial.exists()
        return
    report = json.loads(partial.read_text())
    assert report["run"]["interrupted"] is True
    (sae,) = report["saes"]
    assert sae["metrics"]  # what finished before the signal is kept
    result.stdout.fnmatch_lines(["*InterpScore (interrupted: partial results)*"])


def test_two_runs_writing_the_same_report_leave_one_complete_file(tmp_path):
    from interpscore.results.files import write_atomic

    target = tmp_path / "interpscore.json"
    code = (
        "import sys, json; from pathlib import Path; "
        "from interpscore.results.files import write_atomic; "
        "[write_atomic(Path(sys.argv[1]), json.dumps({'w': sys.argv[2], 'pad': 'x' * 200000})) "
        "for _ in range(30)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), str(i)]) for i in range(3)]
    assert all(p.wait() == 0 for p in procs)
    assert json.loads(target.read_text())["w"] in {"0", "1", "2"}
    assert [p.name for p in tmp_path.iterdir()] == ["interpscore.json"]
    write_atomic(target, "{}")
    assert target.read_text() == "{}"


def test_an_output_that_breaks_during_the_run_does_not_lose_the_results(pytester, bench, tiny_saes):
    """The location was fine when checked, then became unusable (here: a folder appears at
    the report's path): the report is saved in a temporary folder and the run says where."""
    pytester.makeconftest(
        "from pathlib import Path\n"
        "def pytest_runtest_teardown(item):\n"
        f"    Path({str(pytester.path / REPORT)!r}).mkdir(parents=True, exist_ok=True)\n"
    )
    result = pytester.runpytest(*bench, f"--sae={tiny_saes['topk']}")
    _no_traceback(result)
    (line,) = [ln for ln in result.stdout.lines if "could not write" in ln]
    saved = Path(line.split("the report was saved to ")[1].removesuffix(" instead."))
    report = json.loads(saved.read_text())
    assert report["saes"][0]["metrics"]["l0"]["value"] == pytest.approx(8.0)
    shutil.rmtree(saved.parent)
