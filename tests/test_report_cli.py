"""Reports (atomic, no NaN, secrets redacted, Markdown) and the interpscore command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interpscore.cli import main as cli
from interpscore.errors import SpecError
from interpscore.results.files import dumps, write_atomic
from interpscore.results.markdown import render_markdown
from interpscore.results.report import redact

REPO = Path(__file__).resolve().parents[1]


def test_nan_can_never_be_written():
    with pytest.raises(ValueError, match="Out of range float values"):
        dumps({"value": float("nan")})


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "r.json"
    write_atomic(target, "old")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


def test_credentials_are_redacted_from_the_recorded_command():
    argv = [
        "pytest",
        "--sae=org/repo",
        "HF_TOKEN=hf_abcdefghijklmnop",
        "--token=secret",
        "hf_zzzzzzzzzzzzzz",
    ]
    assert redact(argv) == ["pytest", "--sae=org/repo", "<redacted>", "<redacted>", "<redacted>"]
    # the program's path is the machine's: only its name is recorded
    assert redact(["/home/someone/.venv/bin/pytest", "benchmarks"]) == ["pytest", "benchmarks"]


def test_zoo_saes_are_recorded_by_name_wherever_the_zoo_lives(monkeypatch, tmp_path):
    from interpscore.subjects.loading import parse_sae_spec
    from interpscore.subjects.zoo import zoo_specs

    monkeypatch.chdir(tmp_path)
    specs = zoo_specs("none")
    assert specs
    assert all(s.text == f"zoo:{s.id}" for s in specs)
    assert Path(specs[0].location).is_dir()
    with pytest.raises(SpecError, match=r"no SAE 'nope'.*use one of zoo:"):
        parse_sae_spec("zoo:nope")
    assert parse_sae_spec("mine=zoo:topk-k32").id == "mine"


def test_cli_score_reproduces_the_leaderboard(capsys):
    assert cli(["score", str(REPO / "fixtures" / "leaderboard_v0.0.1.json")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    scores = [float(line.rsplit(":", 1)[1]) for line in lines]
    assert scores == [0.871, 0.864, 0.805, 0.779, 0.773, 0.760, 0.751]


def test_cli_score_json_marks_partial(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"loss_recovered": 1.0, "alive": 1.0}))
    assert cli(["score", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["partial"] is True
    assert result["missing"] == ["l0_score", "sparse_probing", "tpp"]
    assert result["interp_score"] == pytest.approx(0.45)


def test_cli_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"loss_recovered": "high"}))
    assert cli(["score", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "component loss_recovered is 'high', not a number" in err


def test_cli_formula_lists_versions_and_validates_files(tmp_path, capsys):
    assert cli(["formula"]) == 0
    assert "0.30·loss_recovered + 0.15·alive" in capsys.readouterr().out
    bad = tmp_path / "f.toml"
    bad.write_text('version = "x"\n[weights]\nalive = 0.5\n')
    assert cli(["formula", "--formula", str(bad)]) == 2


def test_cli_report_rerenders_markdown(tmp_path):
    report = {
        "formula": {
            "version": "0.0.1",
            "weights": {"alive": 1.0},
            "expression": "1.00·alive",
            "l0_target": 80,
        },
        "run": {
            "dataset": "bundled",
            "tokens": 10,
            "context_len": 5,
            "seed": 0,
            "bootstrap": 0,
            "timestamp": "t",
        },
        "saes": [
            {
                "id": "x",
                "interp_score": 0.5,
                "partial": False,
                "components": {"alive": 0.5},
                "status": "ok",
            }
        ],
    }
    path = tmp_path / "interpscore.json"
    path.write_text(json.dumps(report))
    assert cli(["report", str(path)]) == 0
    text = (tmp_path / "interpscore.md").read_text()
    assert "| 1 | x |" in text
    assert render_markdown(report) == text
