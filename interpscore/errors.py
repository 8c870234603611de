"""User-facing errors: one line that names the problem and the fix.

Anything a user can cause (a bad path, a bad spec, an unknown formula version)
raises :class:`InterpScoreError`. The pytest plugin and the CLI print its message
alone, without a traceback, because the traceback would only hide the fix.
"""

from __future__ import annotations


class InterpScoreError(Exception):
    """A problem with the user's input, stated with the fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}" if fix else problem)


class SpecError(InterpScoreError):
    """An SAE, model or dataset spec that cannot be resolved or loaded."""


class FormulaError(InterpScoreError):
    """An unknown formula version or an invalid formula file."""


class BaselineError(InterpScoreError):
    """A regression-gate baseline or tolerance that cannot be used."""
