"""Uploading files to a Hugging Face repository in one commit, through huggingface_hub.

The endpoint is the library's (``HF_ENDPOINT``, read by huggingface_hub when it is
imported), and so is the token (``HF_TOKEN``, else the token file under ``HF_HOME`` that
``huggingface-cli login`` writes). The token is handed to the library and to nothing else:
it is never printed, logged or written, and every error message is redacted as well.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from interpscore.errors import InterpScoreError, summarize

LOGIN_FIX = "run `huggingface-cli login` (or `hf auth login`), or set HF_TOKEN to a write token."


@dataclass(frozen=True)
class HubFile:
    """One file of a commit: its path in the repository and its bytes."""

    path_in_repo: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Upload:
    """Everything one commit sends (what ``--dry-run`` prints)."""

    repo_id: str
    repo_type: str
    revision: str | None
    create_pr: bool
    commit_message: str
    files: tuple[HubFile, ...]
    notes: tuple[str, ...] = ()  # said by --dry-run after the settings


@dataclass(frozen=True)
class Pushed:
    """Where the commit (and its pull request) can be seen."""

    commit_url: str
    pr_url: str | None


def repo_path(directory: str | None, name: str) -> str:
    """``name`` inside ``directory`` of the repository (``--path-in-repo``), refusing paths
    that leave the repository."""
    parts = PurePosixPath(directory or "").parts
    if (directory or "").startswith("/") or ".." in parts or "\\" in (directory or ""):
        raise InterpScoreError(
            f"--path-in-repo {directory!r} is not a relative folder of the repository.",
            "give a folder such as evals/layer12 (or nothing, for the root).",
        )
    return str(PurePosixPath(*[p for p in parts if p != "."], name))


def repo_folder(directory: str | None) -> str:
    """``--path-in-repo`` as a folder of the repository ("" for its root)."""
    folder = PurePosixPath(repo_path(directory, "file")).parent
    return "" if str(folder) == "." else str(folder)


def token_source() -> str | None:
    """Where huggingface_hub would find a token, without reading it out or contacting
    anything (an OIDC exchange or an OAuth refresh would): a name, or None."""
    from huggingface_hub import constants

    if os.environ.get("HF_OIDC_RESOURCE"):
        return "HF_OIDC_RESOURCE (exchanged for a token when pushing)"
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(name, "").strip():
            return name
    try:
        if Path(constants.HF_TOKEN_PATH).read_text(encoding="utf-8").strip():
            return "the token file under HF_HOME"
    except (OSError, UnicodeDecodeError):
        return None
    return None


def require_token() -> str:
    """The token huggingface_hub would use, or a one-line error saying how to log in."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import OIDCError

    try:
        token = get_token()
    except (OIDCError, ValueError, RuntimeError, *_transport_errors()) as exc:
        # HF_OIDC_RESOURCE without an id token, a failed OIDC exchange, the token file
        raise InterpScoreError(
            f"No Hugging Face token could be obtained ({summarize(exc)}).", LOGIN_FIX
        ) from exc
    if not token:
        raise InterpScoreError("No Hugging Face token found (HF_TOKEN, HF_HOME/token).", LOGIN_FIX)
    return token


def endpoint() -> str:
    """The hub the library talks to (``HF_ENDPOINT``, else huggingface.co)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def push(upload: Upload, token: str) -> Pushed:
    """Commit ``upload.files`` to the repository in one commit (a pull request when asked).

    The repository (and branch) is looked up first, so that a wrong id or an unreachable
    hub fails before anything is sent, and without the library's upload retries."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    where = f"{upload.repo_type} repository {upload.repo_id} on {api.endpoint}"
    try:
        api.repo_info(upload.repo_id, repo_type=upload.repo_type, revision=upload.revision)
        info = api.create_commit(
            upload.repo_id,
            [CommitOperationAdd(f.path_in_repo, f.data) for f in upload.files],
            commit_message=upload.commit_message,
            repo_type=upload.repo_type,
            revision=upload.revision,
            create_pr=upload.create_pr,
        )
    except _transport_errors() as exc:
        raise _hub_error(exc, upload, where) from exc
    except ValueError as exc:  # the library refuses an argument before sending anything
        raise InterpScoreError(
            f"Cannot commit to {where}: {summarize(exc)}.", "change the option it names."
        ) from exc
    return Pushed(commit_url=info.commit_url, pr_url=info.pr_url if upload.create_pr else None)


def _hub_error(exc: BaseException, upload: Upload, where: str) -> InterpScoreError:
    """A one-line error for what the hub (or the network) answered."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return InterpScoreError(
            "HF_HUB_OFFLINE is set, so nothing can be pushed.", "unset HF_HUB_OFFLINE."
        )
    if isinstance(exc, RevisionNotFoundError):
        return InterpScoreError(
            f"Branch {upload.revision!r} does not exist in {where}.",
            "create the branch first, or leave out --revision (main).",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return InterpScoreError(
            f"The {where} was not found, or this token cannot see it.",
            "create it first (huggingface-cli repo create), or check --repo and --repo-type.",
        )
    if isinstance(exc, HfHubHTTPError):
        status = _status(exc.response)
        said = exc.server_message or "no message"
        fix = (
            f"check that the token may write to {upload.repo_id}; {LOGIN_FIX}"
            if status in (401, 403)
            else "fix what the hub names and push again."
        )
        return InterpScoreError(
            f"The hub refused the commit to {where}: HTTP {status}: {said}", fix
        )
    return InterpScoreError(
        f"Cannot reach {where}: {summarize(exc)}.",
        "check the network and the endpoint named here, then push again.",
    )


def _status(response: Any) -> int | None:
    return getattr(response, "status_code", None)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a hub call raises for an HTTP error or a network failure: the
    library's own (OSError subclasses) and those of the HTTP client it uses."""
    found: list[type[BaseException]] = [OSError]
    for module, name in (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    ):
        try:
            found.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)
