"""InterpScore: versioned composite formulas kept as data, never as code.

A formula is a set of non-negative weights over named components that sum to 1,
plus the L0 target of ``l0_score``. Version 0.0.1 is the seed leaderboard's:

    0.30·loss_recovered + 0.15·alive + 0.15·l0_score + 0.25·sparse_probing + 0.15·tpp

Users add versions from TOML or JSON files of weights; the file is parsed, validated
against the known component names and never evaluated. A score over an incomplete set
of components is marked partial and lists what is missing: the missing terms count as
zero (so the value is a lower bound), and the weights are never renormalised.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interpscore.errors import FormulaError
from interpscore.jsonio import finite_number, parse_json, read_bytes, shown
from interpscore.metrics.l0 import DEFAULT_L0_TARGET

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

WEIGHT_SUM_TOLERANCE = 1e-6


def known_components() -> dict[str, str]:
    """Metrics a formula may weight: the registered metrics declared as components."""
    # Imported when needed: the suites pull in torch and scikit-learn, which reading or
    # scoring a built-in formula does not need.
    from interpscore.suites import REGISTRY

    return REGISTRY.components()


def check_components(formula: Formula) -> Formula:
    """Refuse a formula that weights something no registered suite declares a component."""
    known = known_components()
    unknown = sorted(set(formula.weights) - set(known))
    if unknown:
        named = ", ".join(shown(n) for n in unknown)
        raise FormulaError(
            f"Formula {formula.version!r} names unknown component(s) {named}.",
            f"use only: {', '.join(known)}.",
        )
    return formula


def _validate_weights(version: str, weights: dict[str, Any]) -> None:
    if not weights:
        raise FormulaError(f"Formula {version!r} has no weights.", "give at least one component.")
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise FormulaError(
                f"Formula {version!r}: weight of {shown(name)} is {weight!r}, not a number.",
                "write each weight as a plain number.",
            )
        if not finite_number(weight) or weight < 0:
            raise FormulaError(
                f"Formula {version!r}: weight of {shown(name)} is {weight!r}.",
                "weights must be finite and non-negative.",
            )
        if weight > 1:
            raise FormulaError(
                f"Formula {version!r}: weight of {shown(name)} is {weight!r}, more than 1.",
                "rescale the weights so they sum to 1.",
            )
    total = math.fsum(float(w) for w in weights.values())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise FormulaError(
            f"Formula {version!r}: weights sum to {total:.6g}, not 1.",
            "rescale the weights so they sum to 1.",
        )


@dataclass(frozen=True)
class Formula:
    """One InterpScore version: weights over components and the L0 target."""

    version: str
    weights: Mapping[str, float]
    l0_target: float = DEFAULT_L0_TARGET
    description: str = ""
    source: str = "builtin"

    def __post_init__(self) -> None:
        _validate_weights(self.version, dict(self.weights))
        if not (finite_number(self.l0_target) and self.l0_target > 0):
            raise FormulaError(
                f"Formula {self.version!r} has l0_target={self.l0_target!r}.",
                "set l0_target to a positive number (the seed uses 80).",
            )

    @property
    def components(self) -> list[str]:
        """Component names in the order the weights were given."""
        return list(self.weights)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the formula (what the report embeds)."""
        return {
            "version": self.version,
            "weights": dict(self.weights),
            "l0_target": self.l0_target,
            "description": self.description,
            "source": self.source,
            "expression": self.expression(),
        }

    def expression(self) -> str:
        """The formula as text, e.g. ``0.30·loss_recovered + 0.15·alive + …``."""
        return " + ".join(f"{w:.2f}·{name}" for name, w in self.weights.items())


@dataclass(frozen=True)
class Score:
    """An InterpScore with every term shown and what, if anything, was missing."""

    value: float
    formula_version: str
    contributions: dict[str, float]
    components: dict[str, float]
    missing: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when some component was absent or not finite (the value is a lower bound)."""
        return bool(self.missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "interp_score": self.value,
            "formula_version": self.formula_version,
            "partial": self.partial,
            "missing": list(self.missing),
            "contributions": dict(self.contributions),
        }


def score(components: Mapping[str, float | None], formula: Formula) -> Score:
    """Weighted sum of the formula's components.

    Components that are absent, None or not finite are listed in ``missing`` and add
    nothing; the weights of the others are left as they are.
    """
    present: dict[str, float] = {}
    contributions: dict[str, float] = {}
    missing: list[str] = []
    for name, weight in formula.weights.items():
        value = components.get(name)
        if value is None or not math.isfinite(float(value)):
            missing.append(name)
            continue
        present[name] = float(value)
        contributions[name] = weight * float(value)
    return Score(
        value=math.fsum(contributions.values()),
        formula_version=formula.version,
        contributions=contributions,
        components=present,
        missing=missing,
    )


V0_0_1 = Formula(
    version="0.0.1",
    weights={
        "loss_recovered": 0.30,
        "alive": 0.15,
        "l0_score": 0.15,
        "sparse_probing": 0.25,
        "tpp": 0.15,
    },
    description="Seed formula of the public InterpScore leaderboard (LIVE v0.0.1).",
)

BUILTIN: dict[str, Formula] = {V0_0_1.version: V0_0_1}
DEFAULT_VERSION = V0_0_1.version


def load_formula_file(path: str | Path, source: str | None = None) -> Formula:
    """Read a formula from a TOML or JSON file (parsed as data, never executed).

    The file holds ``version`` (str), ``weights`` (table of component -> number) and
    optionally ``l0_target`` and ``description``. ``source`` is what reports record as its
    origin (default: the path as given).
    """
    path = Path(path)
    raw = read_bytes(path, "formula file", FormulaError)
    where = f"Formula file {path}"
    if path.suffix.lower() == ".json":
        data = parse_json(raw, where, FormulaError)
    else:
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise FormulaError(
                f"{where} is not valid TOML: {str(exc).splitlines()[0] if str(exc) else exc}.",
                "fix the syntax (see README: 'Adding a formula version').",
            ) from exc
        except (RecursionError, ValueError) as exc:  # nesting or a number tomllib refuses
            raise FormulaError(
                f"{where} cannot be read as TOML ({type(exc).__name__}).",
                "fix the file (see README: 'Adding a formula version').",
            ) from exc
    if not isinstance(data, dict):
        raise FormulaError(f"Formula file {path} is not a table.", "see README for the format.")
    extra = sorted(set(data) - {"version", "weights", "l0_target", "description"})
    if extra:
        raise FormulaError(
            f"Formula file {path} has unknown key(s) {', '.join(shown(k) for k in extra)}.",
            "use only version, weights, l0_target, description.",
        )
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise FormulaError(f"Formula file {path} has no version string.", 'add version = "…".')
    shipped = shipped_formulas().get(version)
    if version in BUILTIN or (shipped is not None and shipped.resolve() != path.resolve()):
        raise FormulaError(
            f"Formula file {path} reuses the {'built-in' if version in BUILTIN else 'shipped'} "
            f"version {version!r}.",
            "give your formula a new version name.",
        )
    weights = data.get("weights")
    if not isinstance(weights, dict):
        raise FormulaError(f"Formula file {path} has no [weights] table.", "add one.")
    l0_target = data.get("l0_target", DEFAULT_L0_TARGET)
    if not finite_number(l0_target) or l0_target <= 0:
        raise FormulaError(
            f"Formula file {path}: l0_target is {l0_target!r}, not a positive number.",
            "set l0_target to a positive number (the seed uses 80).",
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise FormulaError(
            f"Formula file {path}: description is {type(description).__name__}, not text.",
            'write description = "…" or leave it out.',
        )
    formula = Formula(
        version=version,
        weights={str(k): v for k, v in weights.items()},
        l0_target=float(l0_target),
        description=description,
        source=source or str(path),
    )
    return check_components(formula)


def shipped_formulas() -> dict[str, Path]:
    """Version -> file of the proposals shipped in ``interpscore/formulas`` (never default)."""
    folder = Path(__file__).with_name("formulas")
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def all_formulas() -> list[Formula]:
    """The built-in versions, then the shipped proposals."""
    return [*BUILTIN.values(), *(get_formula(version) for version in shipped_formulas())]


def entry_components(entry: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The values a formula over ``names`` reads from a report entry: its ``components``,
    and for names it does not list, the values of its ``metrics`` (another formula may
    weight components the report's own formula did not list). Values are as stored (None
    or a non-number is for the caller to judge)."""
    names = set(names)
    metrics = entry.get("metrics")
    from_metrics = {
        name: block.get("value")
        for name, block in (metrics.items() if isinstance(metrics, Mapping) else ())
        if name in names and isinstance(block, Mapping)
    }
    components = entry.get("components")
    return {**from_metrics, **(components if isinstance(components, Mapping) else {})}


def get_formula(version_or_path: str | None) -> Formula:
    """A built-in or shipped version by name, or a formula file by path; None: the default."""
    if version_or_path is None:
        return BUILTIN[DEFAULT_VERSION]
    if version_or_path in BUILTIN:
        return BUILTIN[version_or_path]
    shipped = shipped_formulas().get(version_or_path)
    if shipped is not None:
        return load_formula_file(shipped, source=f"interpscore/formulas/{shipped.name}")
    candidate = Path(version_or_path)
    if candidate.suffix.lower() in {".toml", ".json"} or candidate.exists():
        return load_formula_file(candidate)
    raise FormulaError(
        f"Unknown formula version {version_or_path!r}.",
        f"use one of {', '.join([*BUILTIN, *shipped_formulas()])} or a path to a .toml/.json "
        "formula file.",
    )
