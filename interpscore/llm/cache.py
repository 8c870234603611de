"""A response cache on disk, so that a rerun replays every model answer offline.

Each answer is a JSON file named by the sha256 of (backend identity, request kind, request,
parameters). A file that cannot be read back, or whose recorded key differs, is a miss
and is rewritten; it is never used. Writes are atomic. The cache counts hits, misses and
tokens per backend for the report, and never holds API keys (they are not part of a
backend's identity).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from interpscore.llm.backends import (
    Backend,
    Chat,
    ChoiceAnswer,
    Generation,
    TextLogprob,
    Usage,
)
from interpscore.results.files import write_atomic

log = logging.getLogger("interpscore.llm.cache")
T = TypeVar("T", Generation, ChoiceAnswer, TextLogprob)


@dataclass
class CacheStats:
    """What one backend cost: answers replayed and asked, tokens in and out."""

    hits: int = 0
    misses: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, usage: Usage, hit: bool) -> None:
        self.hits += hit
        self.misses += not hit
        if not hit:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens

    def minus(self, other: CacheStats) -> CacheStats:
        mine, theirs = asdict(self), asdict(other)
        return CacheStats(**{k: mine[k] - theirs[k] for k in mine})


@dataclass
class ResponseCache:
    """A folder of answers keyed by request hash (``root`` None: nothing is stored)."""

    root: Path | None

    def key(self, parts: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("Cache entry %s is unreadable (%s); asking again.", path.name, exc)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            log.warning("Cache entry %s does not match its key; asking again.", path.name)
            return None
        return entry.get("answer")

    def put(self, key: str, answer: dict[str, Any]) -> None:
        if self.root is not None:
            write_atomic(self._path(key), json.dumps({"key": key, "answer": answer}))


def _restore(kind: type[T], data: dict[str, Any]) -> T:
    usage = Usage(**data.pop("usage", {}))
    return kind(**data, usage=usage)


@dataclass
class CachedBackend:
    """A backend whose answers are read from the cache first; misses are asked in one batch."""

    backend: Backend
    cache: ResponseCache
    stats: CacheStats = field(default_factory=CacheStats)

    def identity(self) -> dict[str, Any]:
        return self.backend.identity()

    def _through(
        self,
        kind: type[T],
        request: str,
        items: Sequence[Any],
        describe: Callable[[Any], Any],
        params: dict[str, Any],
        ask: Callable[[list[Any]], list[T]],
    ) -> list[T]:
        identity = self.backend.identity()
        keys = [
            self.cache.key(
                {"backend": identity, "request": request, "item": describe(item), **params}
            )
            for item in items
        ]
        answers: list[T | None] = []
        for key in keys:
            cached = self.cache.get(key)
            answers.append(_restore(kind, dict(cached)) if cached is not None else None)
        missing = [i for i, a in enumerate(answers) if a is None]
        fresh = ask([items[i] for i in missing]) if missing else []
        for i, answer in zip(missing, fresh, strict=True):
            answers[i] = answer
            self.cache.put(keys[i], asdict(answer))
        asked = set(missing)
        for i, answer in enumerate(answers):
            self.stats.add(answer.usage, hit=i not in asked)  # type: ignore[union-attr]
        return answers  # type: ignore[return-value]

    def generate(self, chats: Sequence[Chat], max_tokens: int) -> list[Generation]:
        return self._through(
            Generation,
            "generate",
            chats,
            Chat.messages,
            {"max_tokens": max_tokens},
            lambda todo: self.backend.generate(todo, max_tokens),
        )

    def choose(self, chats: Sequence[Chat], choices: tuple[str, str]) -> list[ChoiceAnswer]:
        return self._through(
            ChoiceAnswer,
            "choose",
            chats,
            Chat.messages,
            {"choices": list(choices)},
            lambda todo: self.backend.choose(todo, choices),
        )

    def text_logprob(self, pairs: Sequence[tuple[str, str]]) -> list[TextLogprob]:
        return self._through(
            TextLogprob, "text_logprob", pairs, list, {}, self.backend.text_logprob
        )
