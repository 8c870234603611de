"""Speed benchmarks (marker ``speed``, ``benchmarks/speed``) run on demand only.

Without ``--speed`` every speed-marked test is deselected (reported as deselected, not
skipped), so ``pytest benchmarks`` (the main job) never starts one. With ``--speed-n 1,4``
only the tests parametrized with those numbers of SAEs (``n_saes``) stay.
"""

from __future__ import annotations

import pytest

SPEED_MARKER = "speed"


def _wanted(config: pytest.Config, item: pytest.Item) -> bool:
    if item.get_closest_marker(SPEED_MARKER) is None:
        return True
    if not config.getoption("speed", False):
        return False
    chosen = config.getoption("speed_n", None)
    params = getattr(getattr(item, "callspec", None), "params", {})
    return chosen is None or "n_saes" not in params or params["n_saes"] in chosen


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    drop = [item for item in items if not _wanted(config, item)]
    if drop:
        dropped = set(drop)
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in dropped]
