"""Writing result files: atomically, with ordinary permissions, and never with NaN."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from interpscore.errors import InterpScoreError


def publish(tmp: str | Path, path: Path) -> None:
    """Give a finished temporary file the usual permissions and move it onto ``path``.

    mkstemp creates files readable by their owner only; a report should be as readable
    as any file the user writes (0666 less the umask).
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: Path, text: str) -> None:
    """Write text so that readers see either the old file or the whole new one."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def save_atomic(path: Path, save: Callable[[Path], None], suffix: str = "") -> None:
    """Let ``save`` write a temporary file, then move it onto ``path``."""
    with atomic_path(path, suffix) as tmp:
        save(tmp)


def dumps(data: Any) -> str:
    """JSON text; refuses NaN/inf so that none can slip into a report."""
    return json.dumps(data, indent=2, allow_nan=False, sort_keys=False) + "\n"


def check_output(path: Path, kind: str, inputs: tuple[Path, ...] = ()) -> Path:
    """Refuse an output ``path`` (a "file" or a "folder") that cannot be written, before
    anything is computed: a folder where a file goes (or the reverse), a parent that is a
    file or cannot be written, or one of the inputs. Missing folders are created later."""
    if kind == "file" and path.is_dir():
        raise InterpScoreError(f"Output {path} is a folder.", "give a file path.")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise InterpScoreError(f"Output {path} is a file, not a folder.", "give a folder path.")
    existing = path if kind == "folder" and path.exists() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InterpScoreError(
            f"Cannot create {path}: {existing} is a file, not a folder.", "choose another path."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InterpScoreError(
            f"Cannot write {path}: folder {existing} is not writable.",
            "choose a folder you can write.",
        )
    resolved = path.resolve()
    for source in inputs:
        if source.resolve() == resolved:
            raise InterpScoreError(
                f"Output {path} is the input {source}; it would be overwritten.",
                "give another output path.",
            )
    return path
