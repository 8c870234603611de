"""Language-model backends for autointerp: what they answer, and the in-process one.

A backend answers three kinds of request, always greedily (temperature 0):

* :meth:`Backend.generate`: a chat completion (explanations, SAEBench's answer lists);
* :meth:`Backend.choose`: the probability of the first of two one-token answers (Yes/No)
  from the next-token log-probabilities where the backend has them, else the answer text
  parsed; ``method`` says which, and an answer that fits neither is ``failed``;
* :meth:`Backend.text_logprob`: the mean log-probability of a text after a prefix
  (surprisal), where the backend can score prompt tokens.

:class:`TransformersBackend` runs a transformers causal LM in this process (by default
the embedded SmolLM2-135M-Instruct), so autointerp needs no server and no network. The
OpenAI-compatible HTTP backend lives in :mod:`interpscore.llm.http`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, Protocol

import torch

from interpscore.errors import InterpScoreError
from interpscore.subjects.hooked import with_cache

ChoiceMethod = Literal["logprobs", "parsed", "failed"]


class BackendError(InterpScoreError):
    """A backend that cannot answer (unreachable, refused, malformed replies)."""


class Unsupported(BackendError):
    """A request kind the backend cannot serve (for example prompt log-probabilities)."""


@dataclass(frozen=True)
class Chat:
    """A system instruction and one user turn."""

    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Generation:
    text: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class ChoiceAnswer:
    """P(first choice) among two, how it was obtained, and the raw answer text."""

    probability: float | None
    method: ChoiceMethod
    text: str = ""
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class TextLogprob:
    """Mean log-probability per token of a text after a prefix."""

    mean_logprob: float
    n_tokens: int
    usage: Usage = field(default_factory=Usage)


class Backend(Protocol):
    """What autointerp asks of a language model."""

    def identity(self) -> dict[str, Any]:
        """What makes answers reproducible: backend kind, model, weights, versions."""

    def generate(self, chats: Sequence[Chat], max_tokens: int) -> list[Generation]: ...

    def choose(self, chats: Sequence[Chat], choices: tuple[str, str]) -> list[ChoiceAnswer]: ...

    def text_logprob(self, pairs: Sequence[tuple[str, str]]) -> list[TextLogprob]: ...


def parse_choice(text: str, choices: tuple[str, str]) -> float | None:
    """1.0 / 0.0 when an answer starts with the first / second choice (case and punctuation
    ignored), None otherwise."""
    word = text.strip().lstrip("\"'*([").split(maxsplit=1)
    head = word[0].strip(".,!:;\"')]*").lower() if word else ""
    if head == choices[0].lower():
        return 1.0
    if head == choices[1].lower():
        return 0.0
    return None


def two_way_probability(first: float, second: float) -> float:
    """P(first) from two log-probabilities, renormalised over the pair."""
    top = max(first, second)
    a, b = math.exp(first - top), math.exp(second - top)
    return a / (a + b)


class TransformersBackend:
    """A transformers causal LM in this process, batched on ``batch_size`` prompts."""

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 16) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id

    def identity(self) -> dict[str, Any]:
        return {
            "backend": "transformers",
            "model": self.name,
            "weights": str(getattr(self.model.config, "_name_or_path", "")).rsplit("/", 1)[-1],
            "transformers": metadata.version("transformers"),
            "torch": torch.__version__,
        }

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _chat_ids(self, chat: Chat) -> list[int]:
        """The chat as the model's chat template writes it (a plain transcript for models
        without one)."""
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                chat.messages(), add_generation_prompt=True, tokenize=False
            )
        else:
            text = f"{chat.system}\n\nUser: {chat.user}\nAssistant:"
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _padded(self, rows: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span] = torch.tensor(row)
            mask[i, span] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def generate(self, chats: Sequence[Chat], max_tokens: int) -> list[Generation]:
        prompts = [self._chat_ids(c) for c in chats]
        out: list[Generation | None] = [None] * len(prompts)
        for batch in self._batches([len(p) for p in prompts]):
            ids, mask = self._padded([prompts[i] for i in batch], left=True)
            tokens = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.pad_id,
            )[:, ids.shape[1] :]
            for row, i in enumerate(batch):
                new = [t for t in tokens[row].tolist() if t != self.pad_id]
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                out[i] = Generation(text.strip(), Usage(len(prompts[i]), len(new)))
        return out  # type: ignore[return-value]

    def _with_prefix(self, prefix: list[int], suffixes: list[list[int]]) -> list[torch.Tensor]:
        """Hidden states that predict each suffix token and the token after the suffix,
        (len(suffix) + 1, d) per suffix. The shared prefix runs once into a key/value cache
        that every suffix of a batch reuses."""
        from transformers import DynamicCache

        out: list[torch.Tensor] = []
        body = self.model.model
        for lo in range(0, len(suffixes), self.batch_size):
            rows = suffixes[lo : lo + self.batch_size]
            cache = DynamicCache(config=self.model.config)
            head = torch.tensor([prefix], device=self.device)
            last = body(input_ids=head, **with_cache(body, cache)).last_hidden_state
            cache.batch_repeat_interleave(len(rows))
            ids, mask = self._padded(rows, left=False)
            full_mask = torch.cat(
                [torch.ones(len(rows), len(prefix), dtype=mask.dtype, device=self.device), mask],
                dim=1,
            )
            hidden = body(
                input_ids=ids, attention_mask=full_mask, **with_cache(body, cache)
            ).last_hidden_state
            for row, suffix in enumerate(rows):
                out.append(torch.cat([last[0, -1:], hidden[row, : len(suffix)]]))
        return out

    def _grouped(self, requests: list[tuple[list[int], list[int]]]) -> list[torch.Tensor]:
        """``_with_prefix`` over requests grouped by their prefix, in request order."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (prefix, _) in enumerate(requests):
            groups.setdefault(tuple(prefix), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(requests)
        for prefix, members in groups.items():
            states = self._with_prefix(list(prefix), [requests[i][1] for i in members])
            for i, state in zip(members, states, strict=True):
                out[i] = state
        return out  # type: ignore[return-value]

    def _split_chats(self, chats: Sequence[Chat]) -> list[tuple[list[int], list[int]]]:
        """Chat token ids as (prefix, suffix): chats with the same system prompt share the
        longest common prefix of their ids; at least one token stays in each suffix."""
        ids = [self._chat_ids(c) for c in chats]
        first: dict[str, list[int]] = {}
        shared: dict[str, int] = {}
        for chat, row in zip(chats, ids, strict=True):
            base = first.setdefault(chat.system, row)
            limit = min(shared.get(chat.system, len(base) - 1), len(row) - 1)
            n = 0
            while n < limit and row[n] == base[n]:
                n += 1
            shared[chat.system] = n
        cuts = [max(1, shared[c.system]) for c in chats]
        return [(row[:cut], row[cut:]) for row, cut in zip(ids, cuts, strict=True)]

    @torch.inference_mode()
    def choose(self, chats: Sequence[Chat], choices: tuple[str, str]) -> list[ChoiceAnswer]:
        first, second = (self.tokenizer.encode(c, add_special_tokens=False)[0] for c in choices)
        requests = self._split_chats(chats)
        states = self._grouped(requests)
        last = torch.stack([s[-1] for s in states])
        logp = torch.log_softmax(self.model.lm_head(last).float(), dim=-1)
        out = []
        for row, (prefix, suffix) in enumerate(requests):
            a, b = float(logp[row, first]), float(logp[row, second])
            answer = choices[0] if a >= b else choices[1]
            usage = Usage(len(prefix) + len(suffix), 1)
            out.append(ChoiceAnswer(two_way_probability(a, b), "logprobs", answer, usage))
        return out

    @torch.inference_mode()
    def text_logprob(self, pairs: Sequence[tuple[str, str]]) -> list[TextLogprob]:
        requests = []
        for prefix, text in pairs:
            head = self.tokenizer.encode(prefix, add_special_tokens=False)
            body = self.tokenizer.encode(text, add_special_tokens=False)
            if not head or not body:
                raise BackendError(
                    f"prefix {prefix!r} or text {text!r} has no tokens", "score non-empty texts."
                )
            requests.append((head, body))
        out = []
        for (head, body), states in zip(requests, self._grouped(requests), strict=True):
            logp = torch.log_softmax(self.model.lm_head(states[:-1]).float(), dim=-1)
            chosen = logp[torch.arange(len(body)), torch.tensor(body, device=self.device)]
            out.append(
                TextLogprob(float(chosen.mean()), len(body), Usage(len(head) + len(body), 0))
            )
        return out
