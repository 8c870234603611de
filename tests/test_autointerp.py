"""Autointerp: answer parsing by hand, example collection, scores, the response cache, the
HTTP backend's error paths on an in-process transport, and the family end to end through
the plugin on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from interpscore.autointerp import prompts as P
from interpscore.autointerp import scorers as S
from interpscore.autointerp.examples import ExampleCollector, priority
from interpscore.evaluation.cache import Store
from interpscore.evaluation.shared_pass import Batch
from interpscore.llm.backends import BackendError, Chat, ChoiceAnswer, Unsupported, parse_choice
from interpscore.llm.cache import CachedBackend, ResponseCache
from interpscore.llm.http import OpenAICompatibleBackend, redact_url, retry_after
from interpscore.metrics import autointerp as am
from interpscore.suites import metric_names
from interpscore.suites.autointerp import AutointerpSuite

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]
AUTOINTERP = metric_names("autointerp")


# Answers, read by hand ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Numbers and digits.", "Numbers and digits"),
        ("[EXPLANATION]: Common idioms in text", "Common idioms in text"),
        ("Explanation: the word 'the'", "the word 'the'"),
        ('"dates and years"\nSecond line', "dates and years"),
        ("This neuron activates on closing brackets.", "closing brackets"),
        ("\n\n  **plural nouns**  ", "plural nouns"),
        ("The marked tokens have in common:\n1. years in dates", "years in dates"),
        ("Common features:\n- words before a colon", "words before a colon"),
        ("The marked tokens have the following common features:", None),
        ("", None),
        ("   \n ", None),
        ("x" * 201, None),
    ],
)
def test_explanations_are_read_from_every_answer_format(answer, expected):
    assert P.parse_explanation(answer) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("2, 5, 7", [2, 5, 7]),
        ("1 and 3", [1, 3]),
        ("None", []),
        ("none.", []),
        ("", []),
        ("3, 14, 15, 99", [3, 14]),  # out of range is dropped, as SAEBench does
        ("5,5, 2", [2, 5]),
        ("Examples 2 and 4", None),
        ("the third one", None),
    ],
)
def test_saebench_answers_are_read_as_saebench_reads_them(answer, expected):
    assert P.parse_index_list(answer, 14) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Yes", 1.0),
        ("no.", 0.0),
        ("**Yes**", 1.0),
        (" NO, because", 0.0),
        ("Maybe", None),
        ("", None),
    ],
)
def test_yes_no_answers(answer, expected):
    assert parse_choice(answer, ("Yes", "No")) == expected


def test_marking_wraps_runs_of_active_tokens():
    assert P.marked(["The", " cat", " sat", " on"], [False, True, True, False]) == (
        "The<< cat sat>> on"
    )
    assert P.marked(["a", "b"], [True, True]) == "<<ab>>"


# Scores ----------------------------------------------------------------------------------


def test_saebench_accuracy_and_its_none_floor_hand_computed():
    positives = [1, 4, 9, 12]
    assert am.saebench_accuracy([], positives, 14) == pytest.approx(10 / 14)
    assert am.none_floor(4, 14) == pytest.approx(10 / 14)
    assert am.saebench_accuracy([1, 4, 9, 12], positives, 14) == 1.0
    assert am.saebench_accuracy([1, 4], positives, 14) == pytest.approx(12 / 14)  # 2 missed
    assert am.saebench_accuracy([1, 2], positives, 14) == pytest.approx(10 / 14)  # 3 + 1 wrong
    assert am.saebench_balanced([], positives, 14) == 0.5  # "none" is chance, not 0.714
    assert am.saebench_balanced([1, 4, 9, 12], positives, 14) == 1.0


def test_model_text_cannot_break_the_markdown():
    from interpscore.suites.autointerp import autointerp_markdown

    showcase = [{"latent": 3, "explanation": "**ID** _x_ <b>", "examples": ["a `b` c", "d"]}]
    metric = {"status": "passed", "value": 0.5, "details": {"showcase": showcase}}
    report = {"saes": [{"id": "s", "metrics": {"autointerp_embedding": metric}}]}
    lines = autointerp_markdown(report, ["autointerp_embedding"])
    assert r"- latent 3: *\*\*ID\*\* \_x\_ \<b\>*" in lines
    assert "  - `` a `b` c ``" in lines
    assert "  - `d`" in lines


def test_mean_over_latents_leaves_out_nan_latents_in_value_and_replicates():
    value, reps = am.mean_over_latents(np.array([0.2, np.nan, 0.6]), None)
    assert value == pytest.approx(0.4)
    assert reps is None
    weights = np.array([[1.0, 1.0, 1.0], [2.0, 5.0, 0.0], [0.0, 3.0, 0.0]])
    _, reps = am.mean_over_latents(np.array([0.2, np.nan, 0.6]), weights)
    assert reps[:2].tolist() == pytest.approx([0.4, 0.2])
    assert np.isnan(reps[2])  # a replicate of NaN latents only has no mean


def test_failed_answers_are_kept_as_ties():
    scores = am.answers_or_tie([0.9, None, 0.1, None])
    assert scores.tolist() == [0.9, 0.5, 0.1, 0.5]
    # pairs (pos, neg): 0.9>0.1, 0.9>0.5, 0.5>0.1, 0.5=0.5 (half) -> 3.5 / 4
    assert am.auroc(scores, [True, True, False, False]) == pytest.approx(0.875)


class _Chooser:
    """Answers every yes/no question with the given texts, read as a server without
    log-probabilities reads them."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def choose(self, chats, choices):
        out = []
        for i, _ in enumerate(chats):
            text = self.texts[i % len(self.texts)]
            parsed = parse_choice(text, choices)
            out.append(ChoiceAnswer(parsed, "failed" if parsed is None else "parsed", text))
        return out


def _rendered() -> S.Rendered:
    return S.Rendered(["a"], ["x", "y"], ["<<x>>", "<<y>>"], ["p", "q"], ["<<p>>", "q"], [], [])


def test_a_scorer_whose_answers_cannot_be_read_says_so_instead_of_scoring_ties():
    unread = S.detection(_Chooser(["The feature is"]), [_rendered()], ["digits"])
    assert unread.unreadable
    assert unread.unread == "The feature is"
    assert unread.answers == {"failed": 4}
    some = S.detection(_Chooser(["Yes", "The feature is"]), [_rendered()], ["digits"])
    assert not some.unreadable
    assert some.answers == {"parsed": 2, "failed": 2}


# Example collection ----------------------------------------------------------------------


class _SAE(torch.nn.Module):
    def __init__(self, d_sae: int) -> None:
        super().__init__()
        self.cfg = type("Cfg", (), {"d_sae": d_sae})()


def _collect(f: torch.Tensor, batch_rows: int, **kwargs) -> object:
    tokens = torch.arange(f.shape[0] * f.shape[1]).reshape(f.shape[:2])
    collector = ExampleCollector(
        n_rows=f.shape[0],
        n_candidates=None,
        window=4,
        pool_size=6,
        silent_size=5,
        strongest_size=2,
        seed=0,
        **kwargs,
    )
    collector.start({"s": _SAE(f.shape[2])})
    for lo in range(0, f.shape[0], batch_rows):
        rows = slice(lo, min(lo + batch_rows, f.shape[0]))
        mask = torch.ones(f[rows].shape[:2], dtype=torch.bool)
        mask[:, 0] = False  # BOS
        batch = Batch(None, None, rows, tokens[rows], mask, None, None, {})  # type: ignore[arg-type]
        collector.add_batch(batch)
        collector.add_sae("s", batch, f[rows], f[rows])
    return collector.result("s")


def test_examples_come_from_disjoint_sequences_and_do_not_depend_on_batching():
    g = torch.Generator().manual_seed(0)
    f = torch.relu(torch.randn(40, 17, 3, generator=g) - 1.0)  # 40 sequences of 1 + 16 tokens
    a, b = _collect(f, 8), _collect(f, 3)
    for pool in ("explain", "test", "strongest", "silent"):
        assert torch.equal(getattr(a, pool).rows, getattr(b, pool).rows), pool
        assert torch.equal(getattr(a, pool).starts, getattr(b, pool).starts), pool
    explain_rows = {
        int(r) for c in range(3) for r in a.explain.rows[c][a.explain.keys[c].isfinite()]
    }
    test_rows = {int(r) for c in range(3) for r in a.test.rows[c][a.test.keys[c].isfinite()]}
    assert explain_rows
    assert test_rows
    assert not explain_rows & test_rows
    for c, latent in enumerate(a.candidates.tolist()):  # exact counts; kept windows fire or not
        windows = f[:, 1:, latent].reshape(40, 4, 4).amax(-1) > 0
        test_half = torch.from_numpy(ExampleCollector(40, None, 4, 6, 5, 2, 0).is_test)
        assert a.test_counts[c] == int(windows[test_half].sum())
        assert a.explain_counts[c] == int(windows[~test_half].sum())
        for i in a.silent.entries(c):
            row, start = int(a.silent.rows[c, i]), int(a.silent.starts[c, i])
            assert float(f[row, start : start + 4, latent].max()) == 0.0
        for i in a.test.entries(c):
            ex = a.example(a.test, c, i)
            assert ex.peak > 0
            assert ex.row in test_rows


def test_priorities_are_uniform_and_reproducible():
    ids = np.arange(100_000)
    p = priority(ids, 3)
    assert np.array_equal(p, priority(ids, 3))
    assert not np.array_equal(p, priority(ids, 4))
    assert 0.49 < p.mean() < 0.51
    assert p.min() >= 0
    assert p.max() < 1


# Response cache ----------------------------------------------------------------------------


class _Counting:
    def __init__(self) -> None:
        self.asked = 0

    def identity(self):
        return {"backend": "counting"}

    def generate(self, chats, max_tokens):
        from interpscore.llm.backends import Generation, Usage

        self.asked += len(chats)
        return [Generation(f"answer to {c.user}", Usage(10, 2)) for c in chats]


def test_cache_replays_answers_and_rewrites_broken_entries(tmp_path):
    inner = _Counting()
    backend = CachedBackend(inner, ResponseCache(tmp_path))
    chats = [Chat("s", "a"), Chat("s", "b")]
    first = backend.generate(chats, 5)
    again = CachedBackend(inner, ResponseCache(tmp_path))
    assert again.generate(chats, 5) == first
    assert inner.asked == 2
    assert (again.stats.hits, again.stats.misses, again.stats.prompt_tokens) == (2, 0, 0)
    assert (backend.stats.misses, backend.stats.prompt_tokens) == (2, 20)
    broken = next(tmp_path.glob("*/*.json"))
    broken.write_text("{not json")
    third = CachedBackend(inner, ResponseCache(tmp_path))
    assert third.generate(chats, 5) == first
    assert (third.stats.hits, third.stats.misses, inner.asked) == (1, 1, 3)
    assert json.loads(broken.read_text())["answer"]["text"].startswith("answer to")
    assert CachedBackend(inner, ResponseCache(tmp_path)).generate(chats, 6) == first  # new key
    assert inner.asked == 5


# The HTTP backend on an in-process transport -----------------------------------------------


def _completion(content: str, logprobs: dict | None = None) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"choices": [choice], "usage": {"prompt_tokens": 7, "completion_tokens": 1}}


def _backend(handler, **kwargs) -> tuple[OpenAICompatibleBackend, list[float]]:
    slept: list[float] = []
    backend = OpenAICompatibleBackend(
        "http://127.0.0.1:9/v1",
        "m",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        **kwargs,
    )
    return backend, slept


def test_http_reads_logprobs_when_returned_and_text_otherwise():
    top = {
        "content": [
            {
                "token": "Yes",
                "logprob": -0.1,
                "top_logprobs": [
                    {"token": "Yes", "logprob": -0.1},
                    {"token": " No", "logprob": -2.4},
                ],
            }
        ]
    }

    def handler(request):
        body = json.loads(request.content)
        user = body["messages"][1]["content"]
        if user == "logprobs":
            return httpx.Response(200, json=_completion("Yes", top))
        return httpx.Response(200, json=_completion({"text": "No.", "junk": "Perhaps"}[user]))

    backend, _ = _backend(handler, concurrency=1)
    a, b, c = backend.choose(
        [Chat("s", "logprobs"), Chat("s", "text"), Chat("s", "junk")], P.YES_NO
    )
    assert a.method == "logprobs"
    assert a.probability == pytest.approx(1 / (1 + np.exp(-2.3)))
    assert (b.method, b.probability) == ("parsed", 0.0)
    assert (c.method, c.probability) == ("failed", None)


def test_http_retries_429_honouring_retry_after_then_succeeds():
    replies = iter(
        [
            httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "slow down"}),
            httpx.Response(503, json={"error": "busy"}),
            httpx.Response(200, json=_completion("a phrase")),
        ]
    )
    backend, slept = _backend(lambda request: next(replies))
    (answer,) = backend.generate([Chat("s", "u")], 10)
    assert answer.text == "a phrase"
    assert slept == [7.0, 1.0]  # Retry-After, then exponential backoff (0.5 · 2)


def test_http_gives_up_after_retries_with_one_line():
    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)

    backend, slept = _backend(handler, retries=2)
    with pytest.raises(BackendError, match=r"Cannot reach .* \(ReadTimeout after 3 tries\)\. Fix:"):
        backend.generate([Chat("s", "u")], 10)
    assert slept == [0.5, 1.0]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (httpx.Response(401, json={"error": "bad key"}), r"refused the request \(HTTP 401\)"),
        (httpx.Response(200, text="<html>proxy</html>"), "not an OpenAI-compatible completion"),
        (httpx.Response(200, json={"choices": []}), "not an OpenAI-compatible completion"),
        (httpx.Response(500, json={"error": {"message": "boom"}}), "HTTP 500 .*boom"),
    ],
)
def test_http_errors_are_one_line_with_the_fix(reply, message):
    backend, _ = _backend(lambda request: reply, retries=0)
    with pytest.raises(BackendError, match=message) as caught:
        backend.generate([Chat("s", "u")], 10)
    assert "Fix:" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_http_names_the_served_models_for_a_wrong_model_name():
    def handler(request):
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "served-a"}, {"id": "served-b"}]})
        return httpx.Response(404, json={"error": {"message": "model m not found"}})

    backend, _ = _backend(handler)
    with pytest.raises(BackendError, match=r"does not serve 'm'.*served-a, served-b"):
        backend.check_model()
    with pytest.raises(BackendError, match=r"HTTP 404.*one of: served-a, served-b"):
        backend.generate([Chat("s", "u")], 10)


def test_http_without_prompt_logprobs_makes_surprisal_unsupported():
    backend, _ = _backend(lambda request: httpx.Response(200, json={"choices": [{"text": "x"}]}))
    with pytest.raises(Unsupported, match="no log-probabilities of prompt tokens"):
        backend.text_logprob([("Description: x\nText:", " hello")])


def test_http_key_comes_from_the_named_variable_and_is_never_shown(monkeypatch):
    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=_completion("ok"))

    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    backend, _ = _backend(handler, api_key_env="MY_KEY")
    backend.generate([Chat("s", "u")], 5)
    assert seen == ["Bearer sk-secret-123"]
    assert "sk-secret" not in json.dumps(backend.identity())
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(BackendError, match=r"MY_KEY .* is not set"):
        _backend(handler, api_key_env="MY_KEY")


def test_urls_lose_their_credentials_and_retry_after_reads_both_forms():
    assert redact_url("https://user:tok@host:8000/v1") == "https://host:8000/v1"
    assert retry_after("12", 0.0) == 12.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == pytest.approx(10.0)
    assert retry_after("soon", 0.0) is None


def test_connection_refused_on_the_loopback_is_one_line():
    backend = OpenAICompatibleBackend("http://127.0.0.1:9/v1", "m", retries=0)  # port 9: discard
    with pytest.raises(BackendError, match="Cannot reach the autointerp server at"):
        backend.generate([Chat("s", "u")], 5)


# End to end through the plugin ------------------------------------------------------------


def test_autointerp_through_the_plugin_with_nulls_controls_and_a_warm_cache(
    pytester: pytest.Pytester, tiny_corpus, tiny_saes, tiny_llama, value_cache, monkeypatch
):
    pytester.makepyfile(
        test_autointerp_family=(REPO / "benchmarks" / "test_autointerp.py").read_text()
    )
    args = [
        f"--sae={tiny_saes['topk']}",
        f"--dataset={tiny_corpus}",
        "--tokens=1024",
        "--context-len=64",
        "--bootstrap=50",
        f"--autointerp-model={tiny_llama}",
        "--autointerp-latents=4",
        "--autointerp-scorers=all",
        "--autointerp-tokens=4096",
        f"--autointerp-cache={pytester.path / 'answers'}",
        "-p",
        "no:randomly",
        "--benchmark-disable",
    ]
    control_runs = []
    real = AutointerpSuite._compute

    def counting(self, subject, *rest):
        control_runs.append(subject.is_control)
        return real(self, subject, *rest)

    monkeypatch.setattr(AutointerpSuite, "_compute", counting)
    pytester.runpytest(*args, "--interpscore-json=cold.json").assert_outcomes(
        passed=len(AUTOINTERP)
    )
    assert sorted(control_runs) == [False, True]
    pytester.runpytest(*args, "--interpscore-json=warm.json").assert_outcomes(
        passed=len(AUTOINTERP)
    )
    assert sorted(control_runs) == [False, False, True]  # the control's came from the cache
    cold, warm = (
        json.loads((pytester.path / name).read_text())["saes"][0]
        for name in ("cold.json", "warm.json")
    )
    for name in AUTOINTERP:
        metric = cold["metrics"][name]
        assert metric["status"] == "passed", metric
        assert 0.0 <= metric["value"] <= 1.0
        assert metric["ci_unit"] == "latent"
        assert set(metric["controls"]) == {
            "topk#random-init",
            "shuffled-explanation",
            "top-tokens",
        }
        assert metric["controls"]["shuffled-explanation"]["kind"] == "null"
        assert warm["metrics"][name]["value"] == metric["value"]
        assert warm["metrics"][name]["controls"] == metric["controls"]
    # nulls are per-metric comparisons, not SAEs: no InterpScore of their own
    assert set(cold["controls"]) == {"topk#random-init"}
    details = cold["metrics"]["autointerp_detection"]["details"]
    assert len(details["latents"]) == 4
    for latent in details["latents"]:
        rows = {k: {i.split(":")[0] for i in v} for k, v in latent["examples"].items()}
        assert not rows["explain"] & (rows["active"] | rows["silent"])  # disjoint sequences
    assert details["llm"]["misses"] > 0
    warm_llm = warm["metrics"]["autointerp_detection"]["details"]["llm"]
    assert warm_llm["misses"] == 0
    assert warm_llm["hits"] > 0
    # the random-init control's values were stored, and the warm run's are the same
    stored = {e.key["metric"] for e in Store(value_cache).entries("control_value")}
    assert set(AUTOINTERP) <= stored
    (shared,) = json.loads((pytester.path / "cold.json").read_text())["run"]["passes"]
    assert shared["n_sequences"] == 64  # the autointerp window, in the same pass
    markdown = (pytester.path / "cold.md").read_text()
    assert "## Autointerp" in markdown
    assert "shuffled-explanation" in markdown
