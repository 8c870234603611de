"""`interpscore push` and `interpscore leaderboard-entry`.

The push goes through the real huggingface_hub client to a stand-in for the hub on
127.0.0.1: the endpoints that HfApi.repo_info and HfApi.create_commit call in the installed
huggingface_hub (repo info, preupload, commit; with every file answered as "regular", no
LFS upload is asked for), each request recorded. huggingface_hub also asks, without the
token, for its agent-harness registry (``/api/agent-harnesses``, for its user agent); the
stand-in answers 404, which the library treats as "no registry".
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import string
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from huggingface_hub import constants

from interpscore.cli import main
from interpscore.hub.chart import sae_chart_png
from interpscore.hub.entry import HARNESS_KEY, NOTEBOOK_KEYS, notebook_json, run_settings
from interpscore.hub.leaderboard import human_tokens
from interpscore.results.files import dumps
from interpscore.results.gate import load_report

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "reports" / "interpscore.json"
SAE = "topk-k80"
HUB_REPO = "someone/my-sae"
REGISTRY = "/api/agent-harnesses"
ROUTE = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
    r"(?:/(?P<op>preupload|commit|revision)/(?P<rev>[^/]+))?$"
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class HubStub:
    """What the stand-in hub answers, and what it received."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    repo_missing: bool = False
    commit_status: int | None = None
    commit_error: str = ""

    def repo_requests(self) -> list[Request]:
        """The requests about the repository (all but the library's registry look-up)."""
        return [r for r in self.requests if r.path != REGISTRY]

    def routes(self, op: str | None) -> list[Request]:
        return [r for r in self.requests if (m := ROUTE.match(r.path)) and m["op"] == op]


def _handler(stub: HubStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            stub.requests.append(
                Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
            match = ROUTE.match(parts.path)
            if match is None:
                self._reply(404, {"error": "no such route"})
                return
            if stub.repo_missing:
                self._reply(
                    404,
                    {"error": "Repository not found"},
                    {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                )
                return
            op, repo = match["op"], match["repo"]
            if self.command == "GET" and op in (None, "revision"):
                self._reply(200, {"id": repo, "sha": "a" * 40, "siblings": []})
            elif self.command == "POST" and op == "preupload":
                files = json.loads(body)["files"]
                self._reply(
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                            for f in files
                        ],
                        "commitOid": "a" * 40,
                    },
                )
            elif self.command == "POST" and op == "commit":
                if stub.commit_status:
                    self._reply(stub.commit_status, {"error": stub.commit_error})
                    return
                oid = hashlib.sha1(body).hexdigest()
                pr = "create_pr" in parse_qs(parts.query)
                self._reply(
                    200,
                    {
                        "commitUrl": f"{stub.url}/{repo}/commit/{oid}",
                        "commitOid": oid,
                        "pullRequestUrl": f"{stub.url}/{repo}/discussions/1" if pr else None,
                    },
                )
            else:
                self._reply(404, {"error": "no such route"})

        do_GET = _handle
        do_POST = _handle

    return Handler


@pytest.fixture(autouse=True)
def _hub_logger_restored() -> Iterator[None]:
    """huggingface_hub gives its logger a StreamHandler on first use, bound to the sys.stderr
    of that moment: inside these tests a capture file that pytest closes afterwards, so any
    later test's hub warning would fail to log with a traceback. Undo it after each test."""
    logger = logging.getLogger("huggingface_hub")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture
def hub() -> Iterator[HubStub]:
    stub = HubStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()


def _token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "hf_" + "".join(secrets.choice(alphabet) for _ in range(34))


def _use_endpoint(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """HF_ENDPOINT as huggingface_hub would have read it at import."""
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hub: HubStub) -> dict[str, Any]:
    """An empty HF_HOME, HF_TOKEN set to a fresh token, HF_ENDPOINT the stub's."""
    home = tmp_path / "hf_home"
    home.mkdir()
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _use_endpoint(monkeypatch, hub.url)
    token = _token()
    monkeypatch.setenv("HF_TOKEN", token)
    return {"token": token, "home": home}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _push(capsys: pytest.CaptureFixture[str], *extra: str, report: Path = REPORT):
    return _run(capsys, "push", report, "--sae", SAE, "--repo", HUB_REPO, *extra)


def _no_token_anywhere(token: str, root: Path, *texts: str, skip: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert token not in text
    for path in root.rglob("*"):
        if path.is_file() and path not in skip:
            assert token.encode() not in path.read_bytes(), path


def _one_error_line(code: int, out: str, err: str) -> str:
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("interpscore: error: ")
    return lines[0]


def _commit_files(request: Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    items = [json.loads(line) for line in request.body.decode().splitlines()]
    assert items[0]["key"] == "header"
    files = {}
    for item in items[1:]:
        assert item["key"] == "file"
        assert item["value"]["encoding"] == "base64"
        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
    return items[0]["value"], files


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return load_report(REPORT)


def _sae(report: dict[str, Any], sae_id: str = SAE) -> dict[str, Any]:
    return next(s for s in report["saes"] if s["id"] == sae_id)


# --- push -------------------------------------------------------------------------------


def test_push_uploads_json_and_chart_in_one_commit(
    env: dict[str, Any],
    hub: HubStub,
    report: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level("DEBUG")
    code, out, err = _push(capsys)
    assert code == 0, err
    commits = hub.routes("commit")
    assert len(commits) == 1
    assert [r.path for r in hub.repo_requests()] == [
        f"/api/models/{HUB_REPO}",
        f"/api/models/{HUB_REPO}/preupload/main",
        f"/api/models/{HUB_REPO}/commit/main",
    ]
    for request in hub.requests:
        if request.path == REGISTRY:  # the library's own look-up, sent without the token
            assert "authorization" not in request.headers
        else:
            assert request.headers["authorization"] == f"Bearer {env['token']}"
    assert "create_pr" not in commits[0].query
    header, files = _commit_files(commits[0])
    assert header["summary"] == "Add InterpScore v0.0.1 evaluation of topk-k80 (interp_score 0.853)"
    assert set(files) == {"interpscore.json", "interpscore.png"}

    sent = json.loads(files["interpscore.json"])
    assert list(sent)[: len(NOTEBOOK_KEYS)] == list(NOTEBOOK_KEYS)
    assert set(sent) - set(NOTEBOOK_KEYS) == {HARNESS_KEY}
    sae = _sae(report)
    for key in NOTEBOOK_KEYS:
        assert sent[key] == sae[key], key
    assert sent["k"] == 80
    assert isinstance(sent["k"], int)
    assert sent["interp_score"] == pytest.approx(0.8530918079999807, abs=0)
    extra = sent[HARNESS_KEY]
    assert extra["intervals"]["interp_score"] == sae["interp_score_ci95"]
    assert extra["intervals"]["components"]["tpp"] == sae["metrics"]["tpp"]["ci95"]
    control = extra["controls"]["components"]["tpp"]["topk-k80#random-init"]
    assert control == {
        "kind": "random-init",
        "value": sae["metrics"]["tpp"]["controls"]["topk-k80#random-init"]["value"],
        "difference": sae["metrics"]["tpp"]["controls"]["topk-k80#random-init"]["difference"],
        "difference_ci95": sae["metrics"]["tpp"]["controls"]["topk-k80#random-init"][
            "difference_ci95"
        ],
        "distinguishes": True,
    }
    assert extra["formula"]["expression"] == report["formula"]["expression"]
    assert "command" not in extra["run"]
    assert "passes" not in extra["run"]
    assert extra["run"]["tokens"] == report["run"]["tokens"]

    assert files["interpscore.png"].startswith(b"\x89PNG\r\n\x1a\n")
    assert files["interpscore.png"] == sae_chart_png(report, sae)
    assert f"{hub.url}/{HUB_REPO}/commit/" in out
    assert "pull request" not in out
    _no_token_anywhere(env["token"], tmp_path, out, err, caplog.text)


def test_push_honours_create_pr_folder_branch_and_type(
    env: dict[str, Any], hub: HubStub, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = _push(
        capsys,
        "--create-pr",
        "--path-in-repo",
        "evals/layer15/",
        "--repo-type",
        "dataset",
        "--commit-message",
        'InterpScore "run" 1',
    )
    assert code == 0, err
    (commit,) = hub.routes("commit")
    assert commit.path == f"/api/datasets/{HUB_REPO}/commit/main"
    assert commit.query["create_pr"] == ["1"]
    assert hub.routes("preupload")[0].query["create_pr"] == ["1"]
    header, files = _commit_files(commit)
    assert header["summary"] == 'InterpScore "run" 1'
    assert set(files) == {"evals/layer15/interpscore.json", "evals/layer15/interpscore.png"}
    assert f"pull request: {hub.url}/{HUB_REPO}/discussions/1" in out
    _no_token_anywhere(env["token"], tmp_path, out, err)


def test_push_to_a_branch_checks_the_branch(
    env: dict[str, Any], hub: HubStub, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _push(capsys, "--revision", "evals")
    assert code == 0, err
    assert hub.repo_requests()[0].path == f"/api/models/{HUB_REPO}/revision/evals"
    assert hub.routes("commit")[0].path == f"/api/models/{HUB_REPO}/commit/evals"


def test_push_reads_endpoint_and_token_file_as_the_library_does(
    hub: HubStub, tmp_path: Path
) -> None:
    """A separate process: HF_ENDPOINT and HF_HOME/token read by huggingface_hub itself."""
    home = tmp_path / "home"
    home.mkdir()
    token = _token()
    (home / "token").write_text(token)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(HF_HOME=str(home), HF_ENDPOINT=hub.url, NO_PROXY="127.0.0.1,localhost")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "interpscore.cli",
            "push",
            str(REPORT),
            "--sae",
            "relu-l1",
            "--repo",
            HUB_REPO,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(hub.routes("commit")) == 1
    assert {r.headers["authorization"] for r in hub.repo_requests()} == {f"Bearer {token}"}
    _no_token_anywhere(token, tmp_path, done.stdout, done.stderr, skip=(home / "token",))


def test_missing_token_is_one_line(
    env: dict[str, Any],
    hub: HubStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    assert list(env["home"].iterdir()) == []
    line = _one_error_line(*_push(capsys))
    assert "No Hugging Face token" in line
    assert "huggingface-cli login" in line
    assert "HF_TOKEN" in line
    assert hub.requests == []


def test_unknown_repo_is_one_line(
    env: dict[str, Any], hub: HubStub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.repo_missing = True
    code, out, err = _push(capsys)
    line = _one_error_line(code, out, err)
    assert f"model repository {HUB_REPO} on {hub.url} was not found" in line
    assert hub.routes("commit") == []
    assert env["token"] not in err


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "You don't have the rights to create a commit in this repo"),
        (422, "Invalid file path: interpscore.json is not allowed here"),
    ],
)
def test_rejected_commit_is_one_line(
    env: dict[str, Any],
    hub: HubStub,
    capsys: pytest.CaptureFixture[str],
    status: int,
    message: str,
) -> None:
    hub.commit_status, hub.commit_error = status, message
    line = _one_error_line(*_push(capsys))
    assert f"The hub refused the commit to model repository {HUB_REPO}" in line
    assert f"HTTP {status}: {message}" in line
    assert ("may write to" in line) == (status == 403)
    assert len(hub.routes("commit")) == 1
    assert env["token"] not in line


def test_unreachable_hub_is_one_line(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _use_endpoint(monkeypatch, f"http://127.0.0.1:{port}")
    line = _one_error_line(*_push(capsys))
    assert f"Cannot reach model repository {HUB_REPO} on http://127.0.0.1:{port}" in line
    assert "check the network and the endpoint named here" in line
    assert "<redacted>" not in line


# --- dry run ------------------------------------------------------------------------------


def test_dry_run_contacts_nothing_and_lists_what_would_be_sent(
    env: dict[str, Any],
    hub: HubStub,
    report: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, out, err = _push(capsys, "--dry-run", "--path-in-repo", "evals", "--create-pr")
    assert code == 0, err
    assert hub.requests == []
    sae = _sae(report)
    sent_json = dumps(notebook_json(report, sae)).encode()
    png = sae_chart_png(report, sae)
    assert f"repo: {HUB_REPO}" in out
    assert "repo type: model" in out
    assert "revision: main" in out
    assert "create_pr: true" in out
    assert "commit message: Add InterpScore v0.0.1 evaluation of topk-k80" in out
    for path, data in (("evals/interpscore.json", sent_json), ("evals/interpscore.png", png)):
        sha = hashlib.sha256(data).hexdigest()
        assert f"file: {path}  {len(data)} bytes  sha256 {sha}" in out
    shown = out.split("--- evals/interpscore.json ---\n", 1)[1]
    assert json.loads(shown) == json.loads(sent_json)
    assert "token: found in HF_TOKEN (not shown)" in out
    _no_token_anywhere(env["token"], tmp_path, out, err)


def test_dry_run_says_when_no_token_is_found(
    env: dict[str, Any],
    hub: HubStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    code, out, _ = _push(capsys, "--dry-run")
    assert code == 0
    assert "token: NOT found (not shown)" in out
    assert "huggingface-cli login" in out
    assert hub.requests == []


# --- what may be pushed -------------------------------------------------------------------


def _write_report(tmp_path: Path, report: dict[str, Any]) -> Path:
    path = tmp_path / "report.json"
    path.write_text(dumps(report))
    return path


@pytest.mark.parametrize(
    ("bad_id", "expected"),
    [
        ("no-such-sae", "SAE no-such-sae is not in the report (it has topk-k80, relu-l1,"),
        ("topk-k80#random-init", "is a control (random-init) of topk-k80"),
        ("control-rerand-excl-emb", "is a model control of topk-k80"),
    ],
)
def test_refuses_ids_that_are_not_submittable_sae(
    env: dict[str, Any],
    hub: HubStub,
    capsys: pytest.CaptureFixture[str],
    bad_id: str,
    expected: str,
) -> None:
    for command in (
        ("push", REPORT, "--sae", bad_id, "--repo", HUB_REPO),
        ("leaderboard-entry", REPORT, "--sae", bad_id),
    ):
        line = _one_error_line(*_run(capsys, *command))
        assert expected in line
    assert hub.requests == []


def test_refuses_failed_and_partial_sae(
    env: dict[str, Any],
    hub: HubStub,
    report: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    changed = copy.deepcopy(report)
    failed = _sae(changed)
    failed["status"], failed["errors"] = "failed", ["test_core: CUDA out of memory"]
    line = _one_error_line(*_push(capsys, report=_write_report(tmp_path, changed)))
    assert "has status 'failed' (test_core: CUDA out of memory)" in line

    changed = copy.deepcopy(report)
    partial = _sae(changed)
    partial["components"]["tpp"] = None
    partial["missing"], partial["partial"] = ["tpp"], True
    path = _write_report(tmp_path, changed)
    line = _one_error_line(*_push(capsys, report=path))
    assert "is partial: missing component(s) tpp" in line
    assert "--allow-partial" in line
    code, _out, err = _push(capsys, "--allow-partial", report=path)
    assert code == 0, err
    _, files = _commit_files(hub.routes("commit")[0])
    sent = json.loads(files["interpscore.json"])
    assert sent["components"]["tpp"] is None
    assert sent[HARNESS_KEY]["partial"] is True
    assert sent[HARNESS_KEY]["missing"] == ["tpp"]


def test_bad_repo_id_and_folder_are_refused_before_anything(
    env: dict[str, Any], hub: HubStub, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_error_line(
        *_run(capsys, "push", REPORT, "--sae", SAE, "--repo", "not a repo//x", "--dry-run")
    )
    assert "is not a Hugging Face repository id" in line
    line = _one_error_line(*_push(capsys, "--path-in-repo", "../up", "--dry-run"))
    assert "is not a relative folder of the repository" in line
    assert hub.requests == []


def test_run_settings_carry_no_secrets() -> None:
    run = {
        "tokens": 8192,
        "command": ["pytest", "--sae=/home/me/ckpt"],
        "passes": [{"model": "m"}],
        "autointerp": {
            "api_key": "sk-live-123456",
            "api_key_env": "OPENAI_API_KEY",
            "server": "http://user:pa55word@host:8000/v1",
            "max_tokens": 10,
        },
        "note": "used hf_abcdefghijklmnopqrstuvwxyz012345",
    }
    text = json.dumps(run_settings(run))
    for secret in ("sk-live-123456", "pa55word", "hf_abcdefghijklmnopqrstuvwxyz012345", "/home/me"):
        assert secret not in text
    kept = run_settings(run)
    assert kept["tokens"] == 8192
    assert kept["autointerp"]["api_key_env"] == "OPENAI_API_KEY"
    assert kept["autointerp"]["max_tokens"] == 10


# --- leaderboard entry --------------------------------------------------------------------

#: Checked by hand against reports/interpscore.json (topk-k80) and the page's formats.
EXPECTED_ENTRY = (
    '{ sae_repo: "zoo:topk-k80", model: "smollm2-135m", layer: "L15", d_sae: 3072, k: 80, '
    'tokens_trained: "1M", components: { loss_recovered: 0.990, alive: 0.924, l0_score: 1.000, '
    'sparse_probing: 0.967, tpp: 0.170 }, interp_score: 0.853, submitted_at: "2026-11-30", '
    'submitted_by: "OpenInterpretability", notebook_version: "0.0.1", '
    'notes: "Reference zoo SAE, 8k tokens" },'
)


def test_leaderboard_entry_reference_text(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("leaderboard-entry", REPORT, "--sae", SAE, "--submitted-by", "OpenInterpretability")
    code, out, err = _run(capsys, *argv, "--notes", "Reference zoo SAE, 8k tokens")
    assert code == 0, err
    assert out == EXPECTED_ENTRY + "\n"
    again = _run(capsys, *argv, "--notes", "Reference zoo SAE, 8k tokens")[1]
    assert again == out
    default = _run(capsys, *argv)[1]
    assert (
        'notes: "interpscore 0.1.0; 8,107 eval tokens (bundled); probes wordnet_topic, '
        "code_language, vader_sentiment; TPP vader_sentiment top 20; "
        'InterpScore 95% CI [0.841, 0.865]" },' in default
    )
    dated = _run(capsys, *argv, "--submitted-at", "2027-01-02")[1]
    assert 'submitted_at: "2027-01-02"' in dated
    line = _one_error_line(*_run(capsys, *argv, "--submitted-at", "tomorrow"))
    assert "is not a date" in line


def _ts_to_json(text: str) -> str:
    """An object literal with bare keys as JSON: quote each identifier before a ':' that
    stands outside a string (a small scanner, so strings pass through untouched)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            k = j
            while k < n and text[k] == " ":
                k += 1
            out.append(f'"{word}"' if k < n and text[k] == ":" else word)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def test_leaderboard_entry_is_valid_typescript(capsys: pytest.CaptureFixture[str]) -> None:
    notes = 'line 1\nline "2" \\ </script> — ünïcode \u2028 end'
    code, out, err = _run(capsys, "leaderboard-entry", REPORT, "--sae", "relu-l1", "--notes", notes)
    assert code == 0, err
    assert out.count("\n") == 1
    assert out.endswith("},\n")
    literal = out.strip()[:-1]
    assert literal.isascii()
    parsed = json.loads(_ts_to_json(literal))
    assert list(parsed) == [
        "sae_repo",
        "model",
        "layer",
        "d_sae",
        "k",
        "tokens_trained",
        "components",
        "interp_score",
        "submitted_at",
        "submitted_by",
        "notebook_version",
        "notes",
    ]
    assert parsed["notes"] == notes
    assert parsed["k"] is None
    assert parsed["layer"] == "L15"
    assert parsed["submitted_by"] == ""
    assert parsed["components"] == {
        "loss_recovered": 0.95,
        "alive": 1.0,
        "l0_score": 0.986,
        "sparse_probing": 0.972,
        "tpp": 0.05,
    }
    node = shutil.which("node")
    if node is None:
        return
    script = f"const entry = {literal};\nprocess.stdout.write(JSON.stringify(entry));\n"
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == parsed


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (200_000_000, "200M"),
        (8_000_000_000, "8B"),
        (1_000_000_000, "1B"),
        (16_000_000_000, "16B"),
        (1_500_000_000, "1.5B"),
        (999_424, "1M"),
        (50_000, "50K"),
        (512, "512"),
        (None, None),
    ],
)
def test_human_tokens(count: int | None, text: str | None) -> None:
    assert human_tokens(count) == text


# --- review fixes: OIDC, local paths, field validation ------------------------------------


def test_oidc_failure_is_one_line(
    env: dict[str, Any],
    hub: HubStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import huggingface_hub
    from huggingface_hub.errors import OIDCError

    def refuse() -> str:
        raise OIDCError("HF_OIDC_RESOURCE is set but no OIDC id token is available: ...")

    monkeypatch.setattr(huggingface_hub, "get_token", refuse)
    line = _one_error_line(*_push(capsys))
    assert "No Hugging Face token could be obtained (OIDCError: HF_OIDC_RESOURCE is set" in line
    assert "huggingface-cli login" in line
    assert hub.requests == []


def _local_report(tmp_path: Path, report: dict[str, Any], sae_repo: str) -> Path:
    changed = copy.deepcopy(report)
    _sae(changed)["sae_repo"] = sae_repo
    changed["run"]["dataset"] = "/home/alice/corpora/web.jsonl"
    changed["run"]["model_override"] = "/home/alice/models/smollm2"
    changed["run"]["probing"]["tasks"] = ["file:/home/alice/tasks/mine.csv", "code_language"]
    return _write_report(tmp_path, changed)


@pytest.mark.parametrize("sae_repo", ["/home/alice/ckpt/topk", "ckpt", "./ckpt/topk"])
def test_push_never_uploads_local_paths(
    env: dict[str, Any],
    hub: HubStub,
    report: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    sae_repo: str,
) -> None:
    path = _local_report(tmp_path, report, sae_repo)
    code, out, err = _push(capsys, "--dry-run", "--path-in-repo", "./evals/l15/", report=path)
    assert code == 0, err
    assert f"sae_repo: {HUB_REPO}/evals/l15 (the report's is a local folder" in out
    code, out, err = _push(capsys, report=path)
    assert code == 0, err
    _, files = _commit_files(hub.routes("commit")[0])
    text = files["interpscore.json"].decode()
    sent = json.loads(text)
    assert sent["sae_repo"] == HUB_REPO
    run = sent[HARNESS_KEY]["run"]
    assert run["dataset"] == "web.jsonl"
    assert run["model_override"] == "smollm2"
    assert run["probing"]["tasks"] == ["file:mine.csv", "code_language"]
    assert "/home/alice" not in text
    assert "ckpt" not in text


def test_run_settings_reduce_relative_local_dataset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "web.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    kept = run_settings({"dataset": "data/web.jsonl", "model_override": "org/model@main"})
    assert kept == {"dataset": "web.jsonl", "model_override": "org/model@main"}
    assert run_settings({"dataset": "bundled"})["dataset"] == "bundled"
    assert run_settings({"dataset": "C:\\corpora\\web.txt"})["dataset"] == "web.txt"


def test_leaderboard_entry_refuses_a_local_sae_repo_without_sae_repo(
    report: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _local_report(tmp_path, report, "/home/alice/ckpt/topk")
    argv = ("leaderboard-entry", path, "--sae", SAE, "--notes", "n")
    line = _one_error_line(*_run(capsys, *argv))
    assert "was loaded from a local folder, which is not public" in line
    assert "--sae-repo" in line
    assert "/home/alice" not in line
    code, out, err = _run(capsys, *argv, "--sae-repo", "alice/saes/topk")
    assert code == 0, err
    assert out.startswith('{ sae_repo: "alice/saes/topk", model: "smollm2-135m",')
    default = _run(capsys, "leaderboard-entry", path, "--sae", SAE, "--sae-repo", "alice/saes")
    assert "eval tokens (web.jsonl)" in default[1]
    assert "/home/alice" not in default[1]
    line = _one_error_line(*_run(capsys, *argv, "--sae-repo", "not a repo"))
    assert "--sae-repo 'not a repo' is not a Hugging Face repository id" in line


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("tokens_trained", "200M", "has tokens_trained 200M, not a token count"),
        ("tokens_trained", True, "has tokens_trained True, not a token count"),
        ("eval_tokens", "8k", "has eval_tokens 8k, not a token count"),
    ],
)
def test_leaderboard_entry_refuses_fields_that_are_not_numbers(
    report: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    key: str,
    value: Any,
    expected: str,
) -> None:
    changed = copy.deepcopy(report)
    _sae(changed)[key] = value
    path = _write_report(tmp_path, changed)
    line = _one_error_line(*_run(capsys, "leaderboard-entry", path, "--sae", SAE))
    assert expected in line
    assert "fix " + key in line


def test_leaderboard_entry_needs_a_date(
    report: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    changed = copy.deepcopy(report)
    for sae in changed["saes"]:
        sae.pop("timestamp", None)
    changed["run"].pop("timestamp", None)
    path = _write_report(tmp_path, changed)
    argv = ("leaderboard-entry", path, "--sae", SAE, "--notes", "n")
    line = _one_error_line(*_run(capsys, *argv))
    assert "have no timestamp" in line
    assert "--submitted-at YYYY-MM-DD" in line
    code, out, err = _run(capsys, *argv, "--submitted-at", "2027-01-02")
    assert code == 0, err
    assert 'submitted_at: "2027-01-02"' in out
    assert "None" not in out
