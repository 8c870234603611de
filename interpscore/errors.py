"""User-facing errors: one line that names the problem and the fix.

Anything a user can cause (a bad path, a bad spec, an unknown formula version)
raises :class:`InterpScoreError`. The pytest plugin and the CLI print its message
alone, without a traceback, because the traceback would only hide the fix.
"""

from __future__ import annotations

import re

#: Credentials as they appear inside text: Hugging Face tokens, the user info of a URL,
#: and the value of ``token=…``-style assignments (the name is kept).
_SECRETS = re.compile(
    r"hf_[A-Za-z0-9]{8,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"
    r"|(?<=token=)[^\s&,;]+|(?<=password=)[^\s&,;]+|(?<=secret=)[^\s&,;]+"
    r"|(?<=api_key=)[^\s&,;]+|(?<=apikey=)[^\s&,;]+",
    re.IGNORECASE,
)
REDACTED = "<redacted>"


def redact_secrets(text: str) -> str:
    """``text`` with every credential-looking part replaced by ``<redacted>``."""
    return _SECRETS.sub(REDACTED, text)


class InterpScoreError(Exception):
    """A problem with the user's input, stated with the fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = redact_secrets(problem)
        self.fix = redact_secrets(fix) if fix else fix
        super().__init__(f"{self.problem} Fix: {self.fix}" if self.fix else self.problem)


class SpecError(InterpScoreError):
    """An SAE, model or dataset spec that cannot be resolved or loaded."""


class FormulaError(InterpScoreError):
    """An unknown formula version or an invalid formula file."""


class BaselineError(InterpScoreError):
    """A regression-gate baseline or tolerance that cannot be used."""


def summarize(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` of a library's exception, for a one-line error."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else "no detail"
    if text.endswith(":") and len(lines) > 1:  # "Error(s) in loading state_dict:" + the detail
        text = f"{text} {lines[1]}"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}"
