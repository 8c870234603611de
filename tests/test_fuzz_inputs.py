"""Property tests: any JSON (or TOML) given to the ``interpscore`` command, arbitrary or a
near-valid mutation of a valid file, either works or ends in one ``interpscore: error:``
line; never another exception."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_cli_inputs import report, saebench_file
from test_saebench import _entry, _report

from interpscore.cli import main as cli
from interpscore.errors import InterpScoreError
from interpscore.formula import load_formula_file
from interpscore.saebench.importer import SAEBenchFileError, import_saebench, read_file

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of nested dicts and lists (for mutations)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


@st.composite
def near_valid(draw: st.DrawFn, seed: Any) -> Any:
    """``seed`` with up to three mutations: a key deleted, a value replaced by any JSON
    value (another type, NaN, a huge number), or a key added (none: the valid seed)."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(0, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(json_values)
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
    return doc


def _text(value: Any) -> str:
    """JSON text, with NaN and Infinity as Python writes them (as SAEBench may)."""
    return json.dumps(value, allow_nan=True)


def _assert_outcome(code: int, out: str, err: str, allowed: tuple[int, ...] = (0,)) -> bool:
    """True when the command succeeded; else exactly one error line with the fix."""
    assert "Traceback" not in out + err
    event(f"exit {code}")
    if code in allowed and code != 2:
        return True
    assert code == 2, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("interpscore: error:")
    assert "Fix:" in lines[0]
    return False


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = cli(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


REPORT_SEED = report(ids=("a", "b"))
report_inputs = near_valid(REPORT_SEED) | json_values


@FUZZ
@given(doc=report_inputs)
def test_gate_report_score_on_any_report(tmp_path, capsys, doc):
    path = tmp_path / "r.json"
    path.write_text(_text(doc))
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps(REPORT_SEED))
    for argv in (["gate", str(valid), str(path)], ["gate", str(path), str(valid)]):
        code, out, err = _run(capsys, argv)
        if _assert_outcome(code, out, err, allowed=(0, 1)):
            assert ("no regressions" in out) == (code == 0)
    code, out, err = _run(capsys, ["report", str(path), "--out", str(tmp_path / "r.md")])
    if _assert_outcome(code, out, err):
        assert (tmp_path / "r.md").read_text().startswith("# InterpScore report")
    code, out, err = _run(capsys, ["score", str(path), "--json"])
    if _assert_outcome(code, out, err):
        result = json.loads(out)
        for item in result if isinstance(result, list) else [result]:
            assert 0 <= item["interp_score"] <= 1 + 1e-9


@FUZZ
@given(doc=near_valid(_report(_entry())))
def test_export_on_any_near_valid_report(tmp_path, capsys, doc):
    path = tmp_path / "r.json"
    path.write_text(_text(doc))
    out_dir = tmp_path / "out"
    code, out, err = _run(capsys, ["export", str(path), "--format", "saebench", "-o", str(out_dir)])
    if code == 0:
        assert "Traceback" not in out + err
        written = [Path(line) for line in out.splitlines()]
        assert written
        assert all(json.loads(p.read_text())["eval_type_id"] for p in written)
    else:
        _assert_outcome(code, out, err)


@FUZZ
@given(
    items=st.lists(
        st.dictionaries(st.sampled_from(["alive", "tpp", "loss_recovered", "x"]), scalars),
        max_size=3,
    )
    | json_values
)
def test_score_on_any_components(tmp_path, capsys, items):
    path = tmp_path / "c.json"
    path.write_text(_text(items))
    code, out, err = _run(capsys, ["score", str(path), "--json"])
    if _assert_outcome(code, out, err):
        result = json.loads(out)
        for item in result if isinstance(result, list) else [result]:
            assert 0 <= item["interp_score"] <= 1 + 1e-9
            assert all(math.isfinite(v) for v in item["contributions"].values())


FORMULA_SEED = {"version": "mine", "weights": {"loss_recovered": 0.5, "alive": 0.5}}


def _toml_value(value: Any) -> str:
    """A TOML rendering of a JSON-like value (strings quoted as JSON strings, which TOML
    basic strings accept for printable text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None
            )
            + "}"
        )
    return '"null"'


def _toml(doc: Any) -> str:
    if not isinstance(doc, dict):
        return f"value = {_toml_value(doc)}\n"
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in doc.items() if v is not None)


@FUZZ
@given(doc=near_valid(FORMULA_SEED) | json_values, as_toml=st.booleans())
def test_formula_files_of_any_content(tmp_path, capsys, doc, as_toml):
    path = tmp_path / ("f.toml" if as_toml else "f.json")
    path.write_text(_toml(doc) if as_toml else _text(doc))
    formula, message = None, None
    try:
        formula = load_formula_file(path)
    except InterpScoreError as exc:
        message = str(exc)
    if formula is None:
        assert "\n" not in message
        assert "Fix:" in message
    else:
        assert math.isclose(math.fsum(formula.weights.values()), 1.0, abs_tol=1e-6)
        assert all(0 <= w <= 1 for w in formula.weights.values())
    _assert_outcome(*_run(capsys, ["formula", "--formula", str(path)]))


@FUZZ
@given(text=st.text(max_size=60))
def test_formula_toml_of_any_text(tmp_path, capsys, text):
    path = tmp_path / "f.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _assert_outcome(*_run(capsys, ["formula", "--formula", str(path)]))


SAEBENCH_SEED = saebench_file()
saebench_inputs = near_valid(SAEBENCH_SEED) | json_values


@FUZZ
@given(doc=saebench_inputs)
def test_saebench_files_of_any_content(tmp_path, doc):
    path = tmp_path / "a_eval_results.json"
    path.write_text(_text(doc))
    try:
        eval_type, read = read_file(path)
    except SAEBenchFileError as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert "\n" not in message
        assert "Fix:" in message
        return
    assert isinstance(read, dict)
    report_, errors = import_saebench([path], _formula(), ["x"])
    assert errors == []
    assert len(report_["saes"]) == 1
    json.dumps(report_, allow_nan=False)  # what write_reports will write
    assert eval_type in report_["saes"][0]["saebench"]


def _formula():
    from interpscore.formula import get_formula

    return get_formula(None)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=saebench_inputs)
def test_import_saebench_command_on_any_file(tmp_path, capsys, doc):
    path = tmp_path / "in" / "a_eval_results.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(_text(doc))
    out = tmp_path / "i.json"
    code, stdout, err = _run(capsys, ["import-saebench", str(path), "-o", str(out)])
    if _assert_outcome(code, stdout, err):
        assert len(json.loads(out.read_text())["saes"]) == 1
