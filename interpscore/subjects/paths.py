"""Where the bundled subjects (corpus, probing tasks, SAE zoo) live.

The corpus and the tasks are package data of ``interpscore.bundled`` (the repository's
``fixtures/`` folders, mapped there by ``pyproject.toml``). The zoo is its own distribution,
``interpscore-zoo`` (module ``interpscore_zoo``, built from ``fixtures/saes``); a checkout
uses its ``fixtures/saes`` folder directly. ``$INTERPSCORE_FIXTURES`` points all three at
another folder laid out like ``fixtures/``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from interpscore.errors import SpecError

FIXTURES_ENV = "INTERPSCORE_FIXTURES"
ZOO_MODULE = "interpscore_zoo"
CHECKOUT_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _override(part: str) -> Path | None:
    """``$INTERPSCORE_FIXTURES/part`` when the variable is set (an error if it is missing)."""
    if not os.environ.get(FIXTURES_ENV):
        return None
    path = Path(os.environ[FIXTURES_ENV]) / part
    if not path.is_dir():
        raise SpecError(
            f"${FIXTURES_ENV}/{part} ({path}) does not exist.",
            f"point {FIXTURES_ENV} at a folder laid out like the repository's fixtures/, "
            "or unset it.",
        )
    return path


def package_dir(module: str) -> Path | None:
    """The folder of an installed package (regular or namespace), or None if absent."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled(part: str) -> Path:
    override = _override(part)
    if override is not None:
        return override
    path = package_dir(f"interpscore.bundled.{part}")
    if path is None or not path.is_dir():
        raise SpecError(
            f"The bundled {part} (package interpscore.bundled.{part}) is not installed.",
            "reinstall interpscore (pip install interpscore, or pip install -e . in a clone).",
        )
    return path


def bundled_corpus() -> Path:
    """The committed evaluation slice of the bundled corpus."""
    return _bundled("corpus") / "eval.jsonl.xz"


def tasks_dir() -> Path:
    """The folder of bundled probing tasks."""
    return _bundled("tasks")


def zoo_dir() -> Path:
    """The folder of bundled SAEs, one sae-lens directory each: ``$INTERPSCORE_FIXTURES``,
    else a checkout's ``fixtures/saes``, else the installed ``interpscore-zoo``."""
    override = _override("saes")
    if override is not None:
        return override
    if (CHECKOUT_FIXTURES / "saes").is_dir():
        return CHECKOUT_FIXTURES / "saes"
    path = package_dir(ZOO_MODULE)
    if path is None:
        raise SpecError(
            "No --sae given and the bundled SAE zoo is not installed.",
            "pass --sae, or pip install interpscore-zoo (built from fixtures/saes in a clone).",
        )
    return path
