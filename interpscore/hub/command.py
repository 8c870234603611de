"""``interpscore push`` and ``interpscore leaderboard-entry``: the argparse glue.

interpscore push REPORT --sae ID --repo REPO_ID [--repo-type model] [--revision BRANCH]
    [--path-in-repo DIR] [--create-pr] [--commit-message TEXT] [--allow-partial] [--dry-run]
interpscore leaderboard-entry REPORT --sae ID [--sae-repo REPO_ID] [--submitted-by NAME]
    [--notes TEXT] [--submitted-at YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING, Any

from interpscore.errors import InterpScoreError
from interpscore.results.files import dumps
from interpscore.results.gate import load_report

if TYPE_CHECKING:
    from interpscore.hub.push import Upload

REPO_TYPES = ("model", "dataset", "space")


def add_hub_parsers(sub: Any) -> None:
    """Add ``push`` and ``leaderboard-entry`` to the ``interpscore`` subcommands."""
    p = sub.add_parser(
        "push",
        help="Upload one SAE's interpscore.json and chart to a Hugging Face repo (one commit).",
        description="The token comes from HF_TOKEN or `huggingface-cli login`; HF_ENDPOINT "
        "selects the hub as for huggingface_hub.",
    )
    p.add_argument("file", metavar="REPORT", help="an interpscore.json report")
    p.add_argument("--sae", required=True, metavar="ID", help="the SAE's id in the report")
    p.add_argument("--repo", required=True, metavar="REPO_ID", help="e.g. user/my-sae")
    p.add_argument("--repo-type", default="model", choices=REPO_TYPES)
    p.add_argument("--revision", default=None, metavar="BRANCH", help="branch (default main)")
    p.add_argument("--path-in-repo", default="", metavar="DIR", help="folder (default root)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead")
    p.add_argument("--commit-message", default=None, metavar="TEXT")
    p.add_argument(
        "--allow-partial", action="store_true", help="push an SAE with missing components"
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    p.set_defaults(func=cmd_push)
    p = sub.add_parser(
        "leaderboard-entry", help="Print one SAE's line for the leaderboard's lib/leaderboard.ts."
    )
    p.add_argument("file", metavar="REPORT", help="an interpscore.json report")
    p.add_argument("--sae", required=True, metavar="ID", help="the SAE's id in the report")
    p.add_argument(
        "--sae-repo",
        default=None,
        metavar="REPO_ID",
        help="the hub repository of the SAE, REPO_ID[/PATH] (default: the report's "
        "sae_repo; needed when that is a local folder)",
    )
    p.add_argument("--submitted-by", default="", metavar="NAME")
    p.add_argument("--notes", default=None, metavar="TEXT", help="default: the run, in brief")
    p.add_argument(
        "--submitted-at",
        default=None,
        metavar="YYYY-MM-DD",
        help="default: the report's date (needed when it has none)",
    )
    p.add_argument(
        "--allow-partial", action="store_true", help="an entry for an SAE with missing components"
    )
    p.set_defaults(func=cmd_leaderboard_entry)


def _check_repo_id(repo_id: str, option: str, given: str | None = None) -> None:
    """Refuse ``repo_id`` (of the value ``given`` to ``option``) unless it is a Hugging
    Face repository id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise InterpScoreError(
            f"{option} {given or repo_id!r} is not a Hugging Face repository id.",
            "give owner/name, e.g. my-user/my-sae.",
        ) from exc


def build_upload(args: argparse.Namespace) -> Upload:
    """The commit ``push`` would make: the SAE's JSON and chart, and where they go. A
    report's ``sae_repo`` that is a local folder is replaced by the pushed-to repository."""
    from interpscore.hub.chart import sae_chart_png
    from interpscore.hub.entry import local_sae_repo, notebook_json, select_sae
    from interpscore.hub.push import HubFile, Upload, repo_folder, repo_path

    _check_repo_id(args.repo, "--repo")
    report = load_report(args.file, require=("saes", "formula"))
    sae = select_sae(report, args.sae, args.allow_partial)
    notes: tuple[str, ...] = ()
    sae_repo = None
    if local_sae_repo(sae):
        sae_repo = "/".join(p for p in (args.repo, repo_folder(args.path_in_repo)) if p)
        notes = (f"sae_repo: {sae_repo} (the report's is a local folder, which is not uploaded)",)
    data = notebook_json(report, sae, sae_repo)
    message = args.commit_message or (
        f"Add InterpScore v{data['version']} evaluation of {sae['id']} "
        f"(interp_score {data['interp_score']:.3f})"
    )
    if not message.strip():
        raise InterpScoreError("--commit-message is empty.", "give a message or leave it out.")
    files = (
        HubFile(repo_path(args.path_in_repo, "interpscore.json"), dumps(data).encode("utf-8")),
        HubFile(repo_path(args.path_in_repo, "interpscore.png"), sae_chart_png(report, sae)),
    )
    return Upload(args.repo, args.repo_type, args.revision, args.create_pr, message, files, notes)


def describe_upload(upload: Upload, token_found: str | None, hub: str) -> list[str]:
    """What ``--dry-run`` prints: the commit's settings, each file's size and sha256, then
    the JSON content (never the token: only where one would come from)."""
    lines = [
        "dry run: nothing was sent",
        f"endpoint: {hub}",
        f"repo: {upload.repo_id}",
        f"repo type: {upload.repo_type}",
        f"revision: {upload.revision or 'main'}",
        f"create_pr: {str(upload.create_pr).lower()}",
        f"commit message: {upload.commit_message}",
        f"token: {'found in ' + token_found if token_found else 'NOT found'} (not shown)",
        *upload.notes,
    ]
    lines += [f"file: {f.path_in_repo}  {f.size} bytes  sha256 {f.sha256}" for f in upload.files]
    for f in upload.files:
        if f.path_in_repo.endswith(".json"):
            lines += [f"--- {f.path_in_repo} ---", f.data.decode("utf-8").rstrip("\n")]
    return lines


def cmd_push(args: argparse.Namespace) -> int:
    from interpscore.hub.push import LOGIN_FIX, endpoint, push, require_token, token_source

    upload = build_upload(args)
    if args.dry_run:
        print("\n".join(describe_upload(upload, token_source(), endpoint())))
        if token_source() is None:
            print(f"note: pushing needs a token: {LOGIN_FIX}")
        return 0
    token = require_token()
    pushed = push(upload, token)
    names = ", ".join(f.path_in_repo for f in upload.files)
    print(f"committed {names} to {upload.repo_type} {upload.repo_id}: {pushed.commit_url}")
    if pushed.pr_url:
        print(f"pull request: {pushed.pr_url}")
    return 0


def cmd_leaderboard_entry(args: argparse.Namespace) -> int:
    from interpscore.hub.entry import select_sae
    from interpscore.hub.leaderboard import leaderboard_entry, to_typescript

    if args.submitted_at is not None:
        try:
            date.fromisoformat(args.submitted_at)
        except ValueError as exc:
            raise InterpScoreError(
                f"--submitted-at {args.submitted_at!r} is not a date.", "give YYYY-MM-DD."
            ) from exc
    report = load_report(args.file, require=("saes", "formula"))
    sae = select_sae(report, args.sae, args.allow_partial)
    if args.sae_repo is not None:  # REPO_ID[/PATH][@REVISION], as --sae reads a hub SAE
        head = "/".join(args.sae_repo.partition("@")[0].split("/")[:2])
        _check_repo_id(head, "--sae-repo", args.sae_repo)
    entry = leaderboard_entry(
        report, sae, args.submitted_by, args.notes, args.submitted_at, args.sae_repo
    )
    print(to_typescript(entry))
    return 0
