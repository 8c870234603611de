"""An OpenAI-compatible HTTP backend (vLLM, llama.cpp, ``transformers serve``, OpenAI).

Requests go out with bounded concurrency, a timeout, and retries with exponential backoff
on timeouts, refused connections, HTTP 429 and 5xx, honouring ``Retry-After``. Anything
else (a refused key, an unknown model, a body that is not a completion) is a one-line
:class:`~interpscore.llm.backends.BackendError` naming the fix. The API key is read from
an environment variable the user names; it is sent in the ``Authorization`` header and
never logged, cached or written to a report.

Yes/No answers use the token log-probabilities when the server returns them
(``logprobs``/``top_logprobs``) and the parsed answer text otherwise. Surprisal needs the
log-probabilities of prompt tokens (``echo`` with ``logprobs`` on ``/completions``, as vLLM
serves them); a server without them makes that scorer not applicable, with the reason.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from interpscore.llm.backends import (
    BackendError,
    Chat,
    ChoiceAnswer,
    Generation,
    TextLogprob,
    Unsupported,
    Usage,
    parse_choice,
    two_way_probability,
)

log = logging.getLogger("interpscore.llm.http")

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF = 60.0


def redact_url(url: str) -> str:
    """The URL without user information (``https://user:token@host`` → ``https://host``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class OpenAICompatibleBackend:
    """Chat and text completions from an OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.model = model
        self.concurrency = concurrency
        self.retries = retries
        self.sleep = sleep
        headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise BackendError(
                    f"The environment variable {api_key_env} (named by "
                    "--autointerp-api-key-env) is not set.",
                    f"export {api_key_env}=<your key>, or drop the option for a server "
                    "without keys.",
                )
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def identity(self) -> dict[str, Any]:
        return {"backend": "openai-compatible", "server": self.shown_url, "model": self.model}

    # Transport -----------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                response = self.client.post(path, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt == self.retries:
                    raise BackendError(
                        f"Cannot reach the autointerp server at {self.shown_url} "
                        f"({type(exc).__name__} after {self.retries + 1} tries).",
                        "start the server, or correct --autointerp-server / --autointerp-timeout.",
                    ) from None
                self.sleep(min(MAX_BACKOFF, 0.5 * 2**attempt))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries:
                wait = retry_after(response.headers.get("retry-after"), time.time())
                self.sleep(min(MAX_BACKOFF, wait if wait is not None else 0.5 * 2**attempt))
                continue
            return self._body(response, path)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _body(self, response: httpx.Response, path: str) -> dict[str, Any]:
        status = response.status_code
        if status in (401, 403):
            raise BackendError(
                f"The autointerp server at {self.shown_url} refused the request (HTTP {status}).",
                "set a valid key in the environment variable named by --autointerp-api-key-env.",
            )
        if status == 404:
            raise BackendError(
                f"The autointerp server at {self.shown_url} has no {path} for model "
                f"{self.model!r} (HTTP 404: {_message(response)}).",
                "pass --autointerp-model with one of: "
                f"{', '.join(self.models()) or 'none listed'}.",
            )
        if status >= 400:
            raise BackendError(
                f"The autointerp server at {self.shown_url} answered HTTP {status} on {path} "
                f"({_message(response)}).",
                "check the server's log and the --autointerp-* options.",
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("choices"), list)
            or not (data["choices"])
        ):
            raise BackendError(
                f"The autointerp server at {self.shown_url} answered {path} with a body that is "
                f"not an OpenAI-compatible completion ({response.text[:80]!r}).",
                "point --autointerp-server at the server's /v1 base URL.",
            )
        return data

    def models(self) -> list[str]:
        """Model names the server lists (empty when it lists none)."""
        try:
            response = self.client.get("/models")
            entries = response.json().get("data", []) if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            return []
        return [str(e.get("id")) for e in entries if isinstance(e, dict) and e.get("id")]

    def check_model(self) -> None:
        """Fail early with the fix when the server lists models and ours is not among them."""
        listed = self.models()
        if listed and self.model not in listed:
            raise BackendError(
                f"The autointerp server at {self.shown_url} does not serve {self.model!r}.",
                f"pass --autointerp-model with one of: {', '.join(listed)}.",
            )

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if self.concurrency <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(fn, items))

    # Requests ------------------------------------------------------------------------

    def _chat(self, chat: Chat, **params: Any) -> dict[str, Any]:
        body = {
            "model": self.model,
            "messages": chat.messages(),
            "temperature": 0,
            "seed": 0,
            **params,
        }
        return self._post("/chat/completions", body)

    def generate(self, chats: Sequence[Chat], max_tokens: int) -> list[Generation]:
        def one(chat: Chat) -> Generation:
            data = self._chat(chat, max_tokens=max_tokens)
            return Generation(_content(data, self.shown_url).strip(), _usage(data))

        return self._map(one, chats)

    def choose(self, chats: Sequence[Chat], choices: tuple[str, str]) -> list[ChoiceAnswer]:
        def one(chat: Chat) -> ChoiceAnswer:
            data = self._chat(chat, max_tokens=1, logprobs=True, top_logprobs=10)
            text = _content(data, self.shown_url)
            usage = _usage(data)
            found = _choice_logprobs(data, choices)
            if found is not None:
                return ChoiceAnswer(two_way_probability(*found), "logprobs", text, usage)
            parsed = parse_choice(text, choices)
            return ChoiceAnswer(parsed, "parsed" if parsed is not None else "failed", text, usage)

        return self._map(one, chats)

    def text_logprob(self, pairs: Sequence[tuple[str, str]]) -> list[TextLogprob]:
        def one(pair: tuple[str, str]) -> TextLogprob:
            prefix, text = pair
            body = {
                "model": self.model,
                "prompt": prefix + text,
                "max_tokens": 1,
                "temperature": 0,
                "echo": True,
                "logprobs": 1,
            }
            data = self._post("/completions", body)
            logprobs = (data["choices"][0] or {}).get("logprobs") or {}
            offsets = logprobs.get("text_offset")
            values = logprobs.get("token_logprobs")
            if not offsets or not values:
                raise Unsupported(
                    f"The autointerp server at {self.shown_url} returns no log-probabilities "
                    "of prompt tokens (echo with logprobs on /completions).",
                    "use a server that does (vLLM), or the in-process backend.",
                )
            chosen = [
                v
                for o, v in zip(offsets, values, strict=False)
                if o >= len(prefix) and o < len(prefix) + len(text) and v is not None
            ]
            if not chosen:
                raise Unsupported(
                    f"The autointerp server at {self.shown_url} returned no log-probabilities "
                    "for the scored text.",
                    "use a server that echoes prompt log-probabilities (vLLM).",
                )
            return TextLogprob(sum(chosen) / len(chosen), len(chosen), _usage(data))

        return self._map(one, pairs)


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:80]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))[:120]
    return str(error or data)[:120]


def _content(data: dict[str, Any], url: str) -> str:
    choice = data["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if content is None and isinstance(choice, dict):
        content = choice.get("text")
    if not isinstance(content, str):
        raise BackendError(
            f"The autointerp server at {url} answered without message content.",
            "check that the model is a chat model served on /chat/completions.",
        )
    return content


def _usage(data: dict[str, Any]) -> Usage:
    usage = data.get("usage") or {}
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def _choice_logprobs(data: dict[str, Any], choices: tuple[str, str]) -> tuple[float, float] | None:
    """Log-probabilities of the two choices at the first answer token, when returned."""
    logprobs = (data["choices"][0] or {}).get("logprobs") or {}
    content = logprobs.get("content") or []
    if not content:
        return None
    top = content[0].get("top_logprobs") or []
    found: dict[str, float] = {}
    for entry in top:
        token = str(entry.get("token", "")).strip().lower()
        for choice in choices:
            if token == choice.lower() and choice not in found:
                found[choice] = float(entry["logprob"])
    if not found:
        return None
    # A choice outside the top list is at most as likely as the least likely listed token.
    floor = min(float(e["logprob"]) for e in top)
    return found.get(choices[0], floor), found.get(choices[1], floor)
