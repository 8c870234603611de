"""What may be shown in public (the site, a hub repository, the leaderboard line): names,
never a path of this machine."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

#: Prefixes of SAE sources that name something rather than a folder of this machine.
NAMED_SOURCES = ("zoo:", "saebench:")


def public_repo(repo: Any) -> str | None:
    """``sae_repo`` without a machine path: an absolute local path becomes its last part."""
    if not isinstance(repo, str):
        return None
    for kind in (PurePosixPath, PureWindowsPath):
        path = kind(repo)
        if path.is_absolute() or (kind is PurePosixPath and repo.startswith("~")):
            return path.name or repo
    return repo


def is_machine_path(text: str) -> bool:
    """``text`` is written as a local path: absolute (POSIX or Windows), under ``~``, or
    starting with ``./`` or ``../``."""
    return (
        text.startswith(("/", "~", "./", "../", ".\\", "..\\"))
        or text in (".", "..")
        or PureWindowsPath(text).is_absolute()
    )


def is_local_source(repo: str) -> bool:
    """An ``sae_repo`` that is a folder of the machine that ran the evaluation, not a hub
    repository, a sae-lens release or a named source (``zoo:``, ``saebench:``): written as a
    path, a single name (which the loader reads only as a folder), or a folder here."""
    if repo.startswith(NAMED_SOURCES):
        return False
    if is_machine_path(repo) or ("/" not in repo and ":" not in repo):
        return True
    try:
        return Path(repo).expanduser().exists()
    except OSError:
        return False


def last_part(text: str) -> str:
    """The file or folder name at the end of a path (the text itself when it has none)."""
    return PureWindowsPath(text).name or text


def public_path(text: str, check_disk: bool = False) -> str:
    """``text`` with a local path reduced to its last part (``file:PATH`` keeps its prefix);
    ``check_disk`` also reduces a relative path that exists here."""
    prefix, sep, rest = text.partition("file:")
    if sep and not prefix:
        return "file:" + public_path(rest, check_disk)
    if is_machine_path(text):
        return last_part(text)
    if check_disk and "/" in text:
        try:
            if Path(text).exists():
                return last_part(text)
        except OSError:
            return text
    return text
