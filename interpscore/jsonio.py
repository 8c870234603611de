"""Reading the JSON files users hand us (reports, baselines, formula files, SAEBench
results): one-line errors naming the file, no NaN or infinity, no repeated keys, no
unbounded nesting, and names shown safely in messages."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from interpscore.errors import InterpScoreError

#: Deepest nesting of lists and objects read from a user's JSON (reports nest about 8 deep).
MAX_JSON_DEPTH = 100


def finite_number(value: Any) -> bool:
    """True for a JSON number (int or float, not a bool) that is finite as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_json(
    data: bytes | str, where: str, error: type[InterpScoreError] = InterpScoreError
) -> Any:
    """JSON of a user's file, or one-line ``error`` naming ``where`` (never a traceback).

    Refuses text that is not UTF-8, empty, nested too deeply, or has a key twice in one
    object (the second would silently replace the first). NaN and Infinity are parsed, so
    that the caller can name the key that holds them and refuse it.
    """
    fix = "give a JSON file (check the path and the file's contents)."
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not UTF-8 text (byte {exc.start} is invalid).", fix) from exc
    if not text.strip():
        raise error(f"{where} is empty.", fix)
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey as exc:
        raise error(
            f"{where} has the key {exc.key!r} twice in one object.", "keep one of the two."
        ) from exc
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not JSON ({exc.msg}, line {exc.lineno}).", fix) from exc
    except RecursionError as exc:
        raise error(f"{where} is nested too deeply to read.", fix) from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise error(f"{where} is not JSON we can read ({str(exc)[:80]}).", fix) from exc
    if _depth(data) > MAX_JSON_DEPTH:
        raise error(f"{where} nests lists and objects over {MAX_JSON_DEPTH} deep.", fix)
    return data


def _depth(data: Any) -> int:
    """How deep lists and objects nest in parsed JSON (iterative)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return deepest


def read_bytes(path: Path, what: str, error: type[InterpScoreError] = InterpScoreError) -> bytes:
    """The bytes of a user's file, or one-line ``error`` saying why it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise error(
            f"Cannot read {what} {path}: {exc.strerror or exc}.", "check the path."
        ) from exc


def first_nonfinite(data: Any) -> str | None:
    """The key path (``saes[0].metrics.l0.value``) of the first NaN or infinity in parsed
    JSON, or None. Iterative, so that deep nesting cannot overflow the stack."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return key or "(the whole file)"
        if isinstance(value, dict):
            items = [(f"{key}.{k}" if key else str(k), v) for k, v in value.items()]
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{key}[{i}]", v) for i, v in enumerate(value)]))
    return None


def shown(name: str) -> str:
    """A user's name in a one-line message: as is when plain, quoted (escaped) otherwise."""
    plain = name.isprintable() and name.strip() == name and " " not in name and bool(name)
    return name if plain else repr(name)
