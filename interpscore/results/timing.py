"""Where a run's time went: test seconds by metric family, beside the session's wall time.

Every test's setup, call and teardown seconds are charged to the family of its module
(``benchmarks/test_core.py`` → ``core``). The language-model passes run inside the first
test that needs them, so their seconds (recorded per pass) are part of that family's; the
report lists both. With xdist the family seconds are summed over workers.
"""

from __future__ import annotations

import time
from pathlib import PurePosixPath
from typing import Any


def family_of(nodeid: str) -> str:
    """The metric family of a test id: its module's name without ``test_``."""
    module = PurePosixPath(nodeid.partition("::")[0]).stem
    return module.removeprefix("test_") or module


class PhaseTimer:
    """Accumulates test seconds by family from the session's test reports."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.by_family: dict[str, float] = {}

    def add(self, nodeid: str, seconds: float) -> None:
        family = family_of(nodeid)
        self.by_family[family] = self.by_family.get(family, 0.0) + seconds

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.by_family.items(), key=lambda kv: -kv[1])
        return {
            "wall_seconds": round(time.perf_counter() - self.started, 3),
            "by_family": {name: round(seconds, 3) for name, seconds in ordered},
        }
