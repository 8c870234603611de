"""Speed benchmarks (marker ``speed``) run only with ``--speed``: deselected otherwise, so
the main job (``pytest benchmarks``) never starts one; ``--speed-n`` picks numbers of SAEs."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SPEED_MODULE = """
import pytest

@pytest.mark.speed
@pytest.mark.parametrize("n_saes", [1, 4, 10])
def test_speed(n_saes):
    pass

def test_plain():
    pass
"""


def test_speed_tests_are_deselected_without_the_option(pytester: pytest.Pytester):
    pytester.makepyfile(test_bench=SPEED_MODULE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, deselected=3)


def test_speed_option_runs_them_and_speed_n_chooses(pytester: pytest.Pytester):
    pytester.makepyfile(test_bench=SPEED_MODULE)
    pytester.runpytest("--speed").assert_outcomes(passed=4)
    result = pytester.runpytest("--speed", "--speed-n=1,10", "-v")
    result.assert_outcomes(passed=3, deselected=1)
    result.stdout.fnmatch_lines(["*test_speed?1?*PASSED*", "*test_speed?10?*PASSED*"])


def test_speed_n_must_be_positive_integers(pytester: pytest.Pytester):
    result = pytester.runpytest("--speed", "--speed-n=0,x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--speed-n*comma list of positive integers*"])
