"""An on-disk store of values that do not depend on the SAE under test.

Each entry is a folder ``ROOT/KIND/DIGEST`` where ``DIGEST`` is the sha256 of a canonical
JSON of the entry's kind and key (model content hash, token ids, hook, settings, library
versions: whatever changes the stored values). An entry holds its payload, tensors in
``tensors.safetensors`` and numbers in ``data.json`` (never pickle), and a
``manifest.json`` with the full key and the sha256 and size of every payload file.

Reads verify the manifest against the key asked for and every file against its hash: an
entry that fails (truncated, edited, of another key) is reported in one warning line,
deleted and treated as a miss, so that the caller rebuilds it. Writes go to a staging
folder that is moved into place (``os.replace``), so a reader never sees half an entry.
The store keeps at most ``max_bytes``: after each write the least recently used entries
(a hit touches the manifest) are deleted until it fits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interpscore.errors import SpecError
from interpscore.subjects.models import cache_root, sha256_file

log = logging.getLogger("interpscore.cache")

#: Bump when the layout of entries changes: older entries then miss and are rebuilt.
FORMAT = 1
#: Environment variable naming the store's folder (``--cache-dir`` wins over it).
CACHE_DIR_ENV = "INTERPSCORE_VALUE_CACHE"
DEFAULT_MAX_BYTES = 10 * 10**9
MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"
DATA = "data.json"
_KIND = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_STAGING = ".staging"
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int:
    """``10GB``, ``500MiB``, ``2g`` or a number of bytes, as bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise SpecError(
            f"Cache size {text!r} is not a size.", "use e.g. 10GB, 500MB, 2GiB or a byte count."
        )
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(n_bytes: int) -> str:
    """A byte count for people (decimal units)."""
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:.1f} {unit}"
    return f"{n_bytes} B"


def canonical(key: Mapping[str, Any]) -> str:
    """The one JSON text of a key (sorted, compact, ASCII): what its digest is taken of."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest_of(kind: str, key: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        canonical({"format": FORMAT, "kind": kind, "key": key}).encode()
    ).hexdigest()


@dataclass
class Payload:
    """What an entry holds: named tensors and JSON data."""

    tensors: dict[str, torch.Tensor]
    data: Any


@dataclass(frozen=True)
class Entry:
    """One stored entry, as listed."""

    kind: str
    digest: str
    key: dict[str, Any]
    size: int
    last_used: float
    path: Path


class CacheError(Exception):
    """An entry that must not be used (the message says why)."""


class Store:
    """Entries under ``root``, at most ``max_bytes`` in all (least recently used go first)."""

    def __init__(self, root: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root).expanduser()
        self.max_bytes = max_bytes

    # Reading -------------------------------------------------------------------------

    def get(self, kind: str, key: Mapping[str, Any]) -> Payload | None:
        """The payload stored for ``key``, or None (a bad entry is reported and deleted)."""
        path = self._path(kind, key)
        if not path.exists():
            return None
        try:
            payload = self._read(path, kind, key)
        except CacheError as exc:
            log.warning(
                "Cache entry %s/%s is %s; deleting and rebuilding it.", kind, path.name, exc
            )
            shutil.rmtree(path, ignore_errors=True)
            return None
        with contextlib.suppress(OSError):  # a read-only cache still serves its entries
            os.utime(path / MANIFEST)  # last used, for eviction
        return payload

    def _read(self, path: Path, kind: str, key: Mapping[str, Any]) -> Payload:
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            files = manifest["files"]
            stored = {
                "format": manifest["format"],
                "kind": manifest["kind"],
                "key": manifest["key"],
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CacheError(f"unreadable (manifest: {type(exc).__name__})") from None
        if canonical(stored) != canonical({"format": FORMAT, "kind": kind, "key": dict(key)}):
            raise CacheError("of another key (mismatched manifest)")
        for name, meta in files.items():
            file = path / name
            if not file.is_file() or file.stat().st_size != meta["size"]:
                raise CacheError(f"incomplete ({name} is missing or truncated)")
            if sha256_file(file) != meta["sha256"]:
                raise CacheError(f"corrupt ({name} does not match its sha256)")
        tensors: dict[str, torch.Tensor] = {}
        data: Any = None
        try:
            if TENSORS in files:
                from safetensors.torch import load_file

                tensors = load_file(str(path / TENSORS))
            if DATA in files:
                data = json.loads((path / DATA).read_text())
        except (OSError, ValueError, RuntimeError) as exc:
            raise CacheError(f"unreadable ({type(exc).__name__})") from None
        return Payload(tensors, data)

    # Writing -------------------------------------------------------------------------

    def put(
        self,
        kind: str,
        key: Mapping[str, Any],
        tensors: Mapping[str, torch.Tensor] | None = None,
        data: Any = None,
    ) -> bool:
        """Store a payload under ``key`` (replacing any entry); False when it was not kept
        (larger than the whole store, or the folder is not writable: a warning says so)."""
        path = self._path(kind, key)
        try:
            staging_root = self.root / _STAGING
            staging_root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=staging_root))
        except OSError as exc:
            log.warning(
                "Cannot write the cache at %s (%s); fix its permissions or pass --cache-dir.",
                self.root,
                exc.strerror or exc,
            )
            return False
        try:
            if tensors:
                from safetensors.torch import save_file

                flat = {n: t.detach().to("cpu").contiguous() for n, t in tensors.items()}
                save_file(flat, str(staging / TENSORS))
            if data is not None:
                (staging / DATA).write_text(json.dumps(data, allow_nan=True))
            files = {
                p.name: {"sha256": sha256_file(p), "size": p.stat().st_size}
                for p in staging.iterdir()
            }
            if sum(f["size"] for f in files.values()) > self.max_bytes:
                log.info("Cache entry %s is larger than the cache; not kept.", kind)
                return False
            manifest = {
                "format": FORMAT,
                "kind": kind,
                "key": dict(key),
                "files": files,
                "created": time.time(),
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                shutil.rmtree(path)
            try:
                os.replace(staging, path)
            except OSError:  # another process stored the same entry first: keep theirs
                return path.exists()
        except OSError as exc:
            log.warning(
                "Cannot write the cache entry %s at %s (%s); fix the folder or pass --no-cache.",
                kind,
                self.root,
                exc.strerror or exc,
            )
            return False
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.evict(keep=path)
        return True

    # Listing, eviction, clearing -----------------------------------------------------

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Every entry (of ``kind``), least recently used first; unreadable manifests are
        listed with an empty key so that ``clear`` and eviction still see them."""
        out = []
        kinds = [kind] if kind is not None else self.kinds()
        for name in kinds:
            folder = self.root / name
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if not path.is_dir():
                    continue
                size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
                manifest = path / MANIFEST
                try:
                    key = json.loads(manifest.read_text())["key"]
                    used = manifest.stat().st_mtime
                except (OSError, ValueError, KeyError, TypeError):
                    key, used = {}, path.stat().st_mtime
                out.append(Entry(name, path.name, key, size, used, path))
        return sorted(out, key=lambda e: (e.last_used, e.kind, e.digest))

    def kinds(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _KIND.match(p.name))

    def size(self) -> int:
        """Bytes held by every entry."""
        return sum(e.size for e in self.entries())

    def evict(self, keep: Path | None = None) -> list[Entry]:
        """Delete least recently used entries until the store fits in ``max_bytes``."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        evicted = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.path == keep:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size
            evicted.append(entry)
        if evicted:
            log.info("Cache: evicted %d least recently used entries.", len(evicted))
        return evicted

    def clear(self, kind: str | None = None) -> list[Entry]:
        """Delete every entry (of ``kind``); returns what was deleted."""
        entries = self.entries(kind)
        for entry in entries:
            shutil.rmtree(entry.path, ignore_errors=True)
        if kind is None:
            shutil.rmtree(self.root / _STAGING, ignore_errors=True)
        return entries

    def _path(self, kind: str, key: Mapping[str, Any]) -> Path:
        if not _KIND.match(kind):
            raise ValueError(f"bad cache kind {kind!r}")
        return self.root / kind / digest_of(kind, key)


def default_dir() -> Path:
    """``$INTERPSCORE_VALUE_CACHE``, else ``values`` under the user cache
    (``$INTERPSCORE_CACHE``, else the XDG cache)."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else cache_root() / "values"
