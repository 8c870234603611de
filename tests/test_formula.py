"""InterpScore formula: properties (hypothesis), the seed leaderboard, formula files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interpscore.errors import FormulaError
from interpscore.formula import (
    BUILTIN,
    V0_0_1,
    get_formula,
    known_components,
    load_formula_file,
    score,
)
from interpscore.metrics.l0 import l0_score

REPO = Path(__file__).resolve().parents[1]
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
components_v001 = st.fixed_dictionaries({name: unit for name in V0_0_1.weights})
positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("formula", list(BUILTIN.values()), ids=list(BUILTIN))
def test_builtin_weights_sum_to_one_over_known_components(formula):
    assert math.isclose(sum(formula.weights.values()), 1.0, abs_tol=1e-12)
    assert set(formula.weights) <= set(known_components())


@given(components_v001)
def test_score_in_unit_interval(components):
    value = score(components, V0_0_1).value
    assert -1e-12 <= value <= 1 + 1e-12


@given(components_v001, st.sampled_from(list(V0_0_1.weights)), st.floats(0, 1, allow_nan=False))
def test_score_is_monotone_in_every_component(components, name, delta):
    raised = {**components, name: min(1.0, components[name] + delta)}
    assert score(raised, V0_0_1).value >= score(components, V0_0_1).value - 1e-12


@given(positive)
def test_l0_score_peaks_at_80(l0):
    assert l0_score(l0) <= l0_score(80.0) == 1.0


@given(positive)
def test_l0_score_symmetric_in_log_l0(l0):
    assert math.isclose(l0_score(l0), l0_score(80.0 * 80.0 / l0), rel_tol=1e-9)


@given(positive)
def test_l0_score_is_exp_minus_abs_log_ratio(l0):
    assert math.isclose(l0_score(l0), math.exp(-abs(math.log(l0 / 80.0))), rel_tol=1e-9)


def test_l0_score_edge_cases():
    assert l0_score(0.0) == 0.0
    assert l0_score(-3.0) == 0.0
    assert math.isnan(l0_score(math.nan))
    assert l0_score(40.0) == 0.5
    assert l0_score(160.0) == 0.5


def test_v001_reproduces_all_seven_leaderboard_rows():
    rows = json.loads((REPO / "fixtures" / "leaderboard_v0.0.1.json").read_text())
    assert len(rows) == 7
    for row in rows:
        assert round(score(row["components"], V0_0_1).value, 3) == row["interp_score"], row["id"]
        assert math.isclose(l0_score(row["k"]), row["components"]["l0_score"], abs_tol=5e-4)


def test_partial_score_lists_missing_and_is_not_renormalised():
    result = score({"loss_recovered": 1.0, "alive": 1.0, "l0_score": 1.0}, V0_0_1)
    assert result.partial
    assert result.missing == ["sparse_probing", "tpp"]
    assert math.isclose(result.value, 0.60)


def test_non_finite_component_counts_as_missing():
    result = score(
        {
            "loss_recovered": math.nan,
            "alive": 1.0,
            "l0_score": 1.0,
            "sparse_probing": 1.0,
            "tpp": 1.0,
        },
        V0_0_1,
    )
    assert result.missing == ["loss_recovered"]
    assert math.isclose(result.value, 0.70)


def test_formula_file_toml(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'version = "0.0.2-test"\n[weights]\nloss_recovered = 0.5\nsparse_probing = 0.5\n'
    )
    formula = get_formula(str(path))
    assert formula.version == "0.0.2-test"
    assert score({"loss_recovered": 0.8, "sparse_probing": 0.6}, formula).value == pytest.approx(
        0.7
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('version = "x"\n[weights]\nloss_recovered = 0.5\nalive = 0.6\n', "sum to 1.1"),
        (
            'version = "x"\n[weights]\nloss_recovered = 0.5\nvibes = 0.5\n',
            "unknown component(s) vibes",
        ),
        ('version = "x"\n[weights]\nloss_recovered = "__import__(\'os\')"\n', "not a number"),
        ('version = "0.0.1"\n[weights]\nloss_recovered = 1.0\n', "reuses the built-in version"),
        (
            'version = "x"\n[weights]\nloss_recovered = -0.5\nalive = 1.5\n',
            "finite and non-negative",
        ),
        ("version = \n", "is not valid"),
    ],
)
def test_bad_formula_files_are_refused_with_the_reason(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(FormulaError, match="Fix:") as info:
        load_formula_file(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_version_lists_known_ones():
    with pytest.raises(FormulaError, match=r"use one of 0\.0\.1"):
        get_formula("9.9.9")
