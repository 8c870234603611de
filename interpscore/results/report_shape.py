"""The shape of an interpscore report, checked before any command reads it.

Each spec says what one part of a report may hold; :func:`check_report_shape` walks a
report against them and names the first key that does not fit, so that a malformed but
JSON-shaped file (a baseline, a report to render or export) is a one-line error, never a
traceback. Keys not named are not read by any command and may hold anything (but never
NaN or infinity).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpscore.errors import BaselineError
from interpscore.jsonio import finite_number, first_nonfinite, shown

SCORE = "interp_score"


@dataclass(frozen=True)
class Scalar:
    """A JSON value of one of ``kinds``: "string", "number" (finite), "bool", "null"."""

    kinds: tuple[str, ...]


@dataclass(frozen=True)
class Obj:
    """An object whose listed keys, when present, fit their specs."""

    fields: dict[str, Spec]
    required: tuple[str, ...] = ()
    nullable: bool = False


@dataclass(frozen=True)
class ListOf:
    """A list of items that fit ``item`` (None: anything), of ``length`` items if given."""

    item: Spec | None
    length: int | None = None
    nullable: bool = False


@dataclass(frozen=True)
class MapOf:
    """An object whose every value fits ``value`` (None: anything)."""

    value: Spec | None
    nullable: bool = False


Spec = Scalar | Obj | ListOf | MapOf

STR, OPT_STR = Scalar(("string",)), Scalar(("string", "null"))
NUM, OPT_NUM = Scalar(("number",)), Scalar(("number", "null"))
BOOL, OPT_BOOL = Scalar(("bool",)), Scalar(("bool", "null"))
CI95 = ListOf(NUM, length=2, nullable=True)
CONTROL = Obj({"value": OPT_NUM, "difference": OPT_NUM, "difference_ci95": CI95, "kind": OPT_STR})
METRIC = Obj(
    {
        "value": OPT_NUM,
        "ci95": CI95,
        "status": STR,
        "source": OPT_STR,
        "details": MapOf(None),
        "window": Obj({"n_tokens": OPT_NUM}, nullable=True),
        "controls": MapOf(CONTROL),
    }
)
SCORE_BLOCK = Obj(
    {
        SCORE: OPT_NUM,
        "interp_score_ci95": CI95,
        "partial": OPT_BOOL,
        "missing": ListOf(STR),
        "components": MapOf(OPT_NUM),
        "contributions": MapOf(OPT_NUM),
        "kind": OPT_STR,
    }
)
SAE_ENTRY = Obj(
    {
        **SCORE_BLOCK.fields,
        "id": STR,
        "status": OPT_STR,
        "errors": ListOf(None),
        "metrics": MapOf(METRIC),
        "controls": MapOf(SCORE_BLOCK),
        "timestamp": OPT_STR,
        "weights": MapOf(NUM),
    },
    required=("id",),
)
FORMULA_BLOCK = Obj(
    {
        "version": STR,
        "weights": MapOf(NUM),
        "expression": STR,
        "l0_target": OPT_NUM,
    },
    required=("version", "weights"),
)
LM_PASS = Obj(
    {
        "sae_ids": ListOf(None),
        "seconds": NUM,
        "accumulators": ListOf(STR),
        "lm_forward_calls": MapOf(None, nullable=True),
    },
    required=("model", "hook", "sae_ids", "n_sequences", "context_len", "seconds"),
)
RUN = Obj(
    {
        "passes": ListOf(None, nullable=True),  # only the Markdown reads them: see _report_spec
        "files": ListOf(None, nullable=True),
        "timestamp": OPT_STR,
        "libraries": MapOf(OPT_STR, nullable=True),
        "timing": Obj({"wall_seconds": NUM, "by_family": MapOf(NUM)}, nullable=True),
        "probing": Obj({"tasks": ListOf(STR, nullable=True)}, nullable=True),
        "absorption": Obj({}, nullable=True),
        "autointerp": Obj({}, nullable=True),
    }
)
GATE_BLOCK = Obj(
    {
        "passed": BOOL,
        "notes": ListOf(None),
        "regressions": ListOf(
            Obj(
                {
                    "baseline": OPT_NUM,
                    "now": OPT_NUM,
                    "change": OPT_NUM,
                    "ci95": CI95,
                    "tolerance": NUM,
                },
                required=("sae", "name", "baseline", "now", "change", "ci95", "tolerance"),
            )
        ),
    },
    required=("passed", "notes", "regressions", "baseline"),
    nullable=True,
)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _shown_value(value: Any) -> str:
    kind = _kind(value)
    if kind in ("list", "object"):
        return f"a{'n' if kind == 'object' else ''} {kind}"
    text = repr(value)
    return f"{kind} {text[:40] + '…' if len(text) > 40 else text}"


def _check(value: Any, spec: Spec | None, key: str, fail: Any) -> None:
    """Raise (through ``fail(key, what)``) at the first part of ``value`` unlike ``spec``."""
    if spec is None:
        return
    kind = _kind(value)
    if isinstance(spec, Scalar):
        if kind not in spec.kinds or (kind == "number" and not finite_number(value)):
            fail(key, f"is {_shown_value(value)}, not {' or '.join(spec.kinds)}")
        return
    if value is None and spec.nullable:
        return
    wanted = "list" if isinstance(spec, ListOf) else "object"
    if kind != wanted:
        fail(key, f"is {_shown_value(value)}, not a{'n' if wanted == 'object' else ''} {wanted}")
    if isinstance(spec, ListOf):
        if spec.length is not None and len(value) != spec.length:
            fail(key, f"has {len(value)} items, not {spec.length}")
        for index, item in enumerate(value):
            _check(item, spec.item, f"{key}[{index}]", fail)
    elif isinstance(spec, MapOf):
        for name, item in value.items():
            _check(item, spec.value, f"{key}.{shown(name)}", fail)
    else:
        for name in spec.required:
            if name not in value:
                fail(f"{key}.{name}", "is missing")
        for name, sub in spec.fields.items():
            if name in value:
                _check(value[name], sub, f"{key}.{name}", fail)


def _report_spec(for_markdown: bool) -> Obj:
    """The whole report; rendering Markdown also needs the run block and the expression."""
    from interpscore.suites import REGISTRY

    formula, run = FORMULA_BLOCK, RUN
    if for_markdown:
        formula = Obj(formula.fields, (*formula.required, "expression"))
        run = Obj({**run.fields, "passes": ListOf(LM_PASS, nullable=True)})
    run_level = {s.name: ListOf(MapOf(None)) for s in REGISTRY.suites() if not s.per_sae}
    return Obj(
        {
            **run_level,
            "schema": STR,
            "formula": formula,
            "run": run,
            "saes": ListOf(SAE_ENTRY),
            "gate": GATE_BLOCK,
            "figure": OPT_STR,
        },
        required=("formula", "saes", "run") if for_markdown else ("formula", "saes"),
    )


def check_report_shape(
    data: Any,
    path: str | Path,
    role: str = "Report",
    *,
    for_markdown: bool = False,
    require: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """``data`` when it has the shape of a report, else a one-line error naming the file
    and the key. Every command that reads a report checks it here.

    ``for_markdown`` also requires what the Markdown shows (the run block, the formula's
    expression); ``require`` replaces the top-level keys required (``score`` needs only
    ``saes``). NaN and infinity are refused anywhere (a report writes null), and SAE ids
    must be unique (the gate and the exports key SAEs by id).
    """
    where = f"{role} {path}"
    fix = "regenerate it with this version of interpscore, or correct that key."

    def fail(key: str, what: str) -> None:
        raise BaselineError(f"{where}: key {key} {what}.", fix)

    if not isinstance(data, dict):
        raise BaselineError(f"{where} is {_shown_value(data)}, not a JSON object.", fix)
    bad = first_nonfinite(data)
    if bad is not None:
        raise BaselineError(
            f"{where}: key {bad} is NaN or infinite; a report holds null for a missing value.",
            fix,
        )
    spec = _report_spec(for_markdown)
    if require is not None:
        spec = Obj(spec.fields, require)
    for name in spec.required:
        if name not in data:
            fail(name, "is missing")
    for name, sub in spec.fields.items():
        if name in data:
            _check(data[name], sub, name, fail)
    seen: set[str] = set()
    for index, entry in enumerate(data.get("saes") or []):
        if entry["id"] in seen:
            fail(f"saes[{index}].id", f"repeats the id {entry['id']!r} of an earlier SAE")
        seen.add(entry["id"])
    return data
