"""Autointerp against a real OpenAI-compatible server: ``transformers serve`` on the loopback
address, serving the embedded SmolLM2, started and stopped by the test."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from interpscore.llm.backends import BackendError, Chat, Unsupported
from interpscore.llm.http import OpenAICompatibleBackend

pytest.importorskip("fastapi", reason="transformers serve needs its server extras: .[test]")
pytest.importorskip("uvicorn", reason="transformers serve needs its server extras: .[test]")
pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, model name) of `transformers serve` running the embedded SmolLM2."""
    from interpscore.subjects.models import load_model

    folder = tmp_path_factory.mktemp("served") / "smollm2"
    lm = load_model("smollm2-135m")
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    port = _free_port()
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(folder)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    log = (folder.parent / "serve.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"transformers serve exited: {(folder.parent / 'serve.log').read_text()}"
                )
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not come up within 180 s")
            time.sleep(1)
        yield f"{base}/v1", str(folder)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_the_http_backend_talks_to_a_real_server(served):
    url, model = served
    backend = OpenAICompatibleBackend(url, model, concurrency=2, timeout=60)
    backend.check_model()
    (generated,) = backend.generate([Chat("Answer briefly.", "Name a colour.")], 8)
    assert generated.text
    assert generated.usage.prompt_tokens > 0
    answers = backend.choose(
        [Chat("Answer Yes or No.", "Is fire hot?"), Chat("Answer Yes or No.", "Is ice hot?")],
        ("Yes", "No"),
    )
    # transformers serve returns no log-probabilities: answers are read from the text
    assert {a.method for a in answers} <= {"parsed", "failed"}
    assert any(a.method == "parsed" for a in answers)
    with pytest.raises(Unsupported, match="no log-probabilities of prompt tokens"):
        backend.text_logprob([("Description: x\nText:", " hello")])
    wrong = OpenAICompatibleBackend(url, "no-such-model")
    with pytest.raises(BackendError, match="does not serve 'no-such-model'"):
        wrong.check_model()


def test_autointerp_on_a_real_server_through_the_plugin(
    served, pytester: pytest.Pytester, tiny_corpus, tiny_saes
):
    url, model = served
    pytester.makepyfile(
        test_autointerp_family=(REPO / "benchmarks" / "test_autointerp.py").read_text()
    )
    result = pytester.runpytest(
        f"--sae={tiny_saes['topk']}",
        f"--dataset={tiny_corpus}",
        "--tokens=1024",
        "--context-len=64",
        "--bootstrap=20",
        "--no-controls",
        f"--autointerp-server={url}",
        f"--autointerp-model={model}",
        "--autointerp-latents=2",
        "--autointerp-tokens=4096",
        "--autointerp-scorers=detection,surprisal,saebench,embedding",
        "--autointerp-cache=none",
        "-k",
        "detection or surprisal or saebench or embedding",
        "-p",
        "no:randomly",
        "--benchmark-disable",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 4
    (sae,) = json.loads((pytester.path / "reports" / "runs" / "interpscore.json").read_text())[
        "saes"
    ]
    # explanations came from the server: the embedding scorer reads them with MiniLM here
    embedding = sae["metrics"]["autointerp_embedding"]
    assert embedding["status"] == "passed"
    assert embedding["details"]["llm"]["backend"] == "openai-compatible"
    assert embedding["details"]["llm"]["misses"] > 0
    latents = embedding["details"]["latents"]
    assert len(latents) == 2
    assert all(latent["explanation"] for latent in latents)
    surprisal = sae["metrics"]["autointerp_surprisal"]
    assert surprisal["status"] == "not_applicable"
    assert "no log-probabilities of prompt tokens" in surprisal["details"]["reason"]
    for name in ("autointerp_detection", "autointerp_saebench"):
        record = sae["metrics"][name]
        # transformers serve returns no log-probabilities, so answers are parsed from text;
        # a scorer whose answers could all not be read fails with the answer it got, and
        # one that could read some reports how many it could not
        if record["status"] == "failed":
            assert "could be read (one was" in record["error"]
            assert "Fix: use a server that returns token log-probabilities" in record["error"]
        else:
            assert record["status"] == "passed"
            assert record["details"]["llm"]["backend"] == "openai-compatible"
            assert record["details"]["answers"].get("parsed", 0) > 0
            assert record["details"]["answers"].get("logprobs", 0) == 0
