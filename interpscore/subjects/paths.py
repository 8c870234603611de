"""Where the bundled subjects (corpus, probing tasks, SAE zoo) live."""

from __future__ import annotations

import os
from pathlib import Path

from interpscore.errors import SpecError

FIXTURES_ENV = "INTERPSCORE_FIXTURES"


def fixtures_dir() -> Path:
    """The repository's ``fixtures/`` folder, or ``$INTERPSCORE_FIXTURES`` when set."""
    if os.environ.get(FIXTURES_ENV):
        path = Path(os.environ[FIXTURES_ENV])
    else:
        path = Path(__file__).resolve().parents[2] / "fixtures"
    if not path.is_dir():
        raise SpecError(
            f"The bundled fixtures folder {path} does not exist.",
            f"run from a clone of the interpscore repository, set {FIXTURES_ENV}, "
            "or pass --sae and --dataset explicitly.",
        )
    return path


def bundled_corpus() -> Path:
    """The committed evaluation slice of the bundled corpus."""
    return fixtures_dir() / "corpus" / "eval.jsonl.xz"


def zoo_dir() -> Path:
    """The folder of bundled SAEs, one sae-lens directory each."""
    return fixtures_dir() / "saes"


def tasks_dir() -> Path:
    """The folder of bundled probing tasks."""
    return fixtures_dir() / "tasks"
