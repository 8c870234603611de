"""The shared results directory: one file per SAE, written whole or not at all.

Layout under ``--results-dir`` (a local folder, or an fsspec URL such as ``s3://bucket/run``)::

    plans/<plan>.json          which shard evaluates which SAE, and the run's settings
    saes/<id>.<hash>.json      one SAE's test outcomes and records (a "unit")
    run-level/<module>.<hash>.json   the results of a run-level family (ground truth)

A unit file carries the settings it was made with (the run's and every family's settings,
the formula, library versions), the tests that ran for it and what identifies the SAE (a
digest of its local files, or its hub spec). It is written only once every selected test of
its unit has finished, so its presence means complete; a rerun skips a unit whose file is
complete, passed and matches, and ``interpscore merge`` refuses files whose settings differ.
Bootstrap replicates may hold NaN: non-finite numbers are written as ``{"$float": "nan"}``
so that every file is strict JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interpscore.errors import InterpScoreError
from interpscore.jsonio import parse_json
from interpscore.results.files import check_output, write_atomic
from interpscore.subjects.loading import DICTIONARY_LEARNING_FILES, SAELENS_FILES, SAESpec

SCHEMA = "interpscore-results/1"
PLAN_SCHEMA = "interpscore-plan/1"
SAE_PREFIX = "sae:"
RUN_PREFIX = "run:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


class StoreError(InterpScoreError):
    """A results directory or result file that cannot be used."""


# Naming ---------------------------------------------------------------------------------


def sae_unit(sae_id: str) -> str:
    return f"{SAE_PREFIX}{sae_id}"


def run_unit(module: str) -> str:
    return f"{RUN_PREFIX}{module}"


def unit_path(unit: str) -> str:
    """Where a unit's file lives, relative to the results directory: a readable name and a
    hash of the exact unit (ids may hold characters a file system refuses or folds)."""
    kind, _, name = unit.partition(":")
    folder = "saes" if kind == "sae" else "run-level"
    digest = hashlib.sha256(unit.encode()).hexdigest()[:8]
    readable = _UNSAFE.sub("-", name).strip("-.")[:80] or "unit"
    return f"{folder}/{readable}.{digest}.json"


# Strict JSON with non-finite numbers ----------------------------------------------------


def encode_floats(value: Any) -> Any:
    """``value`` with NaN and infinities as ``{"$float": "nan" | "inf" | "-inf"}``."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        return {k: encode_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_floats(v) for v in value]
    return value


def decode_floats(value: Any) -> Any:
    """The inverse of :func:`encode_floats`."""
    if isinstance(value, dict):
        if set(value) == {"$float"} and value["$float"] in ("nan", "inf", "-inf"):
            return float(value["$float"])
        return {k: decode_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_floats(v) for v in value]
    return value


# Settings --------------------------------------------------------------------------------


def fingerprint(settings: dict[str, Any]) -> str:
    """A short hash of settings (canonical JSON)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """The first key path where two settings differ, with both values, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            path = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                left = _short(a[key]) if key in a else "absent"
                right = _short(b[key]) if key in b else "absent"
                return f"{path} ({left} vs {right})"
            found = first_difference(a[key], b[key], path)
            if found:
                return found
        return None
    if a != b:
        return f"{where or 'value'} ({_short(a)} vs {_short(b)})"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:59] + "…"


#: Files up to this size are hashed whole; larger weights are sampled (see sae_identity).
WHOLE_FILE_BYTES = 16 << 20
SAMPLES, SAMPLE_BYTES = 64, 64 << 10


def _file_digest(path: Path) -> str:
    """sha256 of a file's size and content: all of it up to WHOLE_FILE_BYTES, else 64
    evenly spaced 64 KiB blocks (first and last included): retrained or re-exported weights
    change everywhere, and a 20 GB SAE is not read whole on every rerun of every shard."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode() + b"\0")
    with path.open("rb") as handle:
        if size <= WHOLE_FILE_BYTES:
            digest.update(handle.read())
        else:
            step = (size - SAMPLE_BYTES) // (SAMPLES - 1)
            for index in range(SAMPLES):
                handle.seek(index * step)
                digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def sae_identity(spec: SAESpec) -> dict[str, Any]:
    """What identifies an SAE's weights: digests of its local files (wherever the folder
    is), or the hub or release spec (pin a revision with ``@REV`` for reruns to be exact)."""
    if spec.kind not in ("saelens-dir", "dictionary-learning-dir"):
        return {"id": spec.id, "spec": spec.text}
    names = SAELENS_FILES if spec.kind == "saelens-dir" else DICTIONARY_LEARNING_FILES
    try:
        files = {name: _file_digest(Path(spec.location) / name) for name in sorted(names)}
    except OSError:
        return {"id": spec.id, "files": None}  # it will fail to load; never counts as done
    return {"id": spec.id, "files": files}


# Unit files ------------------------------------------------------------------------------


@dataclass
class UnitResult:
    """One unit's results: every phase of every test, with the records the tests attached.

    ``outcomes`` holds, per test, its ``records`` (those of its last report: records are only
    ever appended) and its ``phases``, each with ``when``, ``outcome``, how many records it
    carried (``n``) and the failure or skip ``message``: enough to replay the test reports
    into a :class:`~interpscore.results.collect.ResultCollector`.
    """

    unit: str
    settings: dict[str, Any]
    formula: dict[str, Any]
    tests: list[str]
    identity: dict[str, Any] | None
    status: str
    outcomes: list[dict[str, Any]]
    shard: str | None = None
    plan: str | None = None
    worker: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.settings)

    def to_json(self) -> str:
        data = {
            "schema": SCHEMA,
            "unit": self.unit,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "formula": self.formula,
            "tests": self.tests,
            "identity": self.identity,
            "shard": self.shard,
            "plan": self.plan,
            "worker": self.worker,
            "seconds": round(self.seconds, 3),
            "outcomes": self.outcomes,
        }
        return json.dumps(encode_floats(data), allow_nan=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> UnitResult:
        data = parse_json(text, where, StoreError)
        fix = "delete the file; the next run of its shard writes it again."
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise StoreError(f"{where} is not an interpscore result file ({SCHEMA}).", fix)
        shapes = {
            "unit": str,
            "status": str,
            "settings": dict,
            "formula": dict,
            "tests": list,
            "outcomes": list,
        }
        for key, kind in shapes.items():
            if not isinstance(data.get(key), kind):
                raise StoreError(f"{where}: {key!r} is missing or not {kind.__name__}.", fix)
        if data.get("fingerprint") != fingerprint(data["settings"]):
            raise StoreError(f"{where}: its fingerprint does not match its settings.", fix)
        for index, test in enumerate(data["outcomes"]):
            if not (
                isinstance(test, dict)
                and isinstance(test.get("records"), list)
                and isinstance(test.get("phases"), list)
                and all(
                    isinstance(p, dict) and "when" in p and "outcome" in p for p in test["phases"]
                )
            ):
                raise StoreError(f"{where}: outcomes[{index}] is malformed.", fix)
        return cls(
            unit=data["unit"],
            settings=data["settings"],
            formula=data["formula"],
            tests=[str(t) for t in data["tests"]],
            identity=data.get("identity"),
            status=data["status"],
            outcomes=decode_floats(data["outcomes"]),
            shard=data.get("shard"),
            plan=data.get("plan"),
            worker=data.get("worker") or {},
            seconds=float(data.get("seconds") or 0.0),
        )


def resume_reason(
    existing: UnitResult | None,
    settings: dict[str, Any],
    tests: list[str],
    identity: dict[str, Any] | None,
) -> str | None:
    """Why a unit must run (None: its results are complete, passed and made the same way)."""
    if existing is None:
        return "no results yet"
    difference = first_difference(existing.settings, settings)
    if difference:
        return f"made with other settings: {difference}"
    if existing.tests != tests:
        return "made with another selection of tests"
    if existing.identity != identity or (identity and identity.get("files", "") is None):
        return "the SAE's files changed"
    if existing.status != "ok":
        return "failed before"
    return None


# The directory ---------------------------------------------------------------------------


class ResultsDir:
    """A results directory: a local folder, or any fsspec URL (``s3://``, ``gs://``, …)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") or "/"
        self.is_url = "://" in root and not root.startswith("file://")
        if root.startswith("file://"):
            self.root = root.removeprefix("file://")

    def __str__(self) -> str:
        return self.root

    def where(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _fs(self) -> Any:
        import fsspec

        try:
            fs, _ = fsspec.core.url_to_fs(self.root)
        except (ImportError, ValueError) as exc:
            protocol = self.root.partition("://")[0]
            raise StoreError(
                f"Results directory {self.root}: no file system for {protocol}:// "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}).",
                "install its fsspec backend (e.g. pip install s3fs for s3://, gcsfs for "
                "gs://), or give a folder on a shared file system.",
            ) from exc
        return fs

    def check(self) -> None:
        """Refuse a directory that cannot be written, before anything is computed."""
        if self.is_url:
            self._fs()
        else:
            check_output(Path(self.root), "folder")

    def read(self, rel: str) -> str | None:
        """A file's text, or None when it does not exist."""
        try:
            if self.is_url:
                return self._fs().cat_file(self.where(rel)).decode("utf-8")
            return Path(self.where(rel)).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(
                f"Cannot read {self.where(rel)} ({type(exc).__name__}: {exc}).",
                "check the results directory's permissions and storage.",
            ) from exc

    def write(self, rel: str, text: str) -> None:
        """Write a file whole: a temporary file moved onto the name, so readers (other
        shards, a merge) see the old file or the new one, never part of one."""
        path = self.where(rel)
        try:
            if not self.is_url:
                write_atomic(Path(path), text)
                return
            fs = self._fs()
            parent, _, name = path.rpartition("/")
            fs.makedirs(parent, exist_ok=True)
            tmp = f"{parent}/.{name}.{hashlib.sha256(text.encode()).hexdigest()[:8]}.tmp"
            fs.pipe_file(tmp, text.encode("utf-8"))
            fs.mv(tmp, path)
        except OSError as exc:
            raise StoreError(
                f"Cannot write {path} ({type(exc).__name__}: {exc}).",
                "check that the results directory is writable from this machine.",
            ) from exc

    def names(self, folder: str) -> list[str]:
        """The JSON files of a sub-folder, sorted (temporary files left out)."""
        path = self.where(folder)
        try:
            if self.is_url:
                listed = [p.rsplit("/", 1)[-1] for p in self._fs().ls(path, detail=False)]
            else:
                listed = [p.name for p in Path(path).iterdir()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(
                f"Cannot list {path} ({type(exc).__name__}: {exc}).",
                "check the results directory's permissions and storage.",
            ) from exc
        return sorted(n for n in listed if n.endswith(".json") and not n.startswith("."))

    # Units and plans --------------------------------------------------------------------

    def read_unit(self, unit: str) -> UnitResult | None:
        """A unit's results, None when absent; an unreadable file raises StoreError."""
        rel = unit_path(unit)
        text = self.read(rel)
        if text is None:
            return None
        result = UnitResult.from_json(text, self.where(rel))
        if result.unit != unit:
            raise StoreError(
                f"{self.where(rel)} holds {result.unit!r}, not {unit!r}.",
                "delete the file; the next run of its shard writes it again.",
            )
        return result

    def write_unit(self, result: UnitResult) -> str:
        rel = unit_path(result.unit)
        self.write(rel, result.to_json())
        return self.where(rel)

    def units(self) -> list[tuple[str, UnitResult]]:
        """Every unit file, as (its path, its results)."""
        out = []
        for folder in ("saes", "run-level"):
            for name in self.names(folder):
                rel = f"{folder}/{name}"
                text = self.read(rel)
                if text is not None:
                    out.append((self.where(rel), UnitResult.from_json(text, self.where(rel))))
        return out

    def plans(self) -> list[tuple[str, dict[str, Any]]]:
        """Every plan file, as (its path, its contents)."""
        out = []
        for name in self.names("plans"):
            rel = f"plans/{name}"
            text = self.read(rel)
            if text is None:
                continue
            data = parse_json(text, self.where(rel), StoreError)
            if not (
                isinstance(data, dict)
                and data.get("schema") == PLAN_SCHEMA
                and isinstance(data.get("saes"), dict)
                and isinstance(data.get("settings"), dict)
            ):
                raise StoreError(
                    f"{self.where(rel)} is not an interpscore plan ({PLAN_SCHEMA}).",
                    "delete it; every shard writes its plan again when it starts.",
                )
            out.append((self.where(rel), data))
        return out

    def write_plan(self, plan: dict[str, Any], settings: dict[str, Any]) -> None:
        """Record which shard evaluates each SAE (every shard writes the same file)."""
        data = {"schema": PLAN_SCHEMA, **plan, "settings": settings}
        text = json.dumps(data, indent=1, allow_nan=False) + "\n"
        rel = f"plans/{plan['plan']}.json"
        if self.read(rel) != text:
            self.write(rel, text)
