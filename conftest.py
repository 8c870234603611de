"""Repository-level pytest configuration.

The InterpScore plugin itself is registered through the ``pytest11`` entry point of the
installed package; this file only checks that it is present, so that running from a
checkout without installing it fails with the fix instead of with unknown options.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("interpscore"):
        raise pytest.UsageError(
            "The interpscore pytest plugin is not installed. Fix: pip install -e . "
            "(see README quick start)."
        )
