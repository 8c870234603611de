"""The bundled SAE zoo: which of its SAEs a default run evaluates."""

from __future__ import annotations

import json

from interpscore.errors import SpecError
from interpscore.subjects.loading import ZOO_PREFIX, SAESpec, parse_sae_spec
from interpscore.subjects.models import VARIANTS
from interpscore.subjects.paths import zoo_dir

DEFAULT_MODEL_CONTROLS = "rerandomized-excl-emb,rerandomized-incl-emb"


def parse_model_controls(text: str) -> set[str]:
    """``all``, ``none`` or a comma list of model variants."""
    text = text.strip()
    if text == "all":
        return set(VARIANTS)
    if text in ("none", ""):
        return set()
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(chosen - set(VARIANTS))
    if unknown:
        raise SpecError(
            f"--model-controls names unknown variant(s) {', '.join(unknown)}.",
            f"use all, none, or a comma list of {', '.join(VARIANTS)}.",
        )
    return chosen


def zoo_specs(model_controls: str = DEFAULT_MODEL_CONTROLS) -> list[SAESpec]:
    """Every zoo SAE, except model-level controls whose variant was not chosen."""
    chosen = parse_model_controls(model_controls)
    root = zoo_dir()
    dirs = sorted(p for p in root.iterdir() if (p / "cfg.json").is_file()) if root.is_dir() else []
    if not dirs:
        raise SpecError(
            f"No --sae given and the bundled zoo {root} holds no SAEs.",
            "pass --sae, or build the zoo: python fixtures/build_zoo.py",
        )
    specs = []
    for path in dirs:
        variant = (json.loads((path / "cfg.json").read_text()).get("metadata") or {}).get(
            "model_variant"
        )
        if variant is None or variant in chosen:
            specs.append(parse_sae_spec(f"{ZOO_PREFIX}{path.name}"))
    return specs
