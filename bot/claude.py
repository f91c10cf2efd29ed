"""Talking to the Claude Messages API: streamed replies, retries on our terms,
errors turned into a sentence a chat user can read, and the model catalogue.

The SDK's own retries are off (`max_retries=0`): it would honour any
`retry-after`, even one of ten minutes, while a person waits in a thread. Here
a retry happens only while nothing has been shown yet, and only if the wait is
short.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2

from bot import metrics
from bot.domain import TokenUsage

log = logging.getLogger(__name__)

TextSink = Callable[[str], Awaitable[None]]

_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
_RETRYABLE_STREAM_ERRORS = {"overloaded_error", "api_error", "rate_limit_error"}
_PROMPT_TOO_LONG = re.compile(r"prompt is too long", re.IGNORECASE)
_BACKOFF_START, _BACKOFF_CAP = 0.5, 8.0
DEFAULT_CONTEXT_WINDOW = 200_000  # for a model the catalogue does not know


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    context_window: int
    max_output_tokens: int


@dataclass(frozen=True, slots=True)
class ClaudeRequest:
    model: str
    system: str
    messages: list[dict[str, Any]]
    max_tokens: int


@dataclass(frozen=True, slots=True)
class ClaudeReply:
    text: str
    stop_reason: str | None
    usage: TokenUsage
    model: str
    request_id: str | None


class ClaudeError(Exception):
    """A failed call, with a short message fit to show in the thread.

    `kind` is stable for logs and metrics: auth, unknown_model, rate_limited,
    overloaded, server, connection, timeout, prompt_too_long, bad_request.
    """

    def __init__(
        self, kind: str, user_message: str, *, status: int | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(f"{kind} (status={status}, request_id={request_id})")
        self.kind = kind
        self.user_message = user_message
        self.status = status
        self.request_id = request_id


def _fallback_models() -> list[ModelInfo]:
    """The SDK's list of model ids, with context windows from Anthropic's public docs:
    1M tokens for the newest generations, 200K for the rest."""
    literal = next(arg for arg in typing.get_args(anthropic.types.Model) if typing.get_args(arg))
    models = []
    for model_id in typing.get_args(literal):
        older = any(old in model_id for old in ("-4-5", "haiku-4", "-3-", "opus-4-0", "sonnet-4-0", "opus-4-1"))
        models.append(ModelInfo(model_id, 200_000 if older else 1_000_000, 64_000))
    return models


FALLBACK_MODELS = _fallback_models()


class ModelCatalog:
    """Known models and their context windows: the models API, cached, with the
    fallback table when it cannot be reached."""

    def __init__(self, client: anthropic.AsyncAnthropic, ttl_seconds: float = 3600.0) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._models: dict[str, ModelInfo] = {}
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def models(self) -> dict[str, ModelInfo]:
        if time.monotonic() - self._fetched_at < self._ttl:
            return self._models
        async with self._lock:
            if time.monotonic() - self._fetched_at >= self._ttl:
                await self._refresh()
        return self._models

    async def _refresh(self) -> None:
        try:
            fetched: dict[str, ModelInfo] = {}
            async for info in self._client.models.list(limit=100):
                fallback = 200_000
                fetched[info.id] = ModelInfo(
                    info.id, info.max_input_tokens or fallback, info.max_tokens or 64_000
                )
            self._models = fetched or {m.id: m for m in FALLBACK_MODELS}
            self._fetched_at = time.monotonic()
        except anthropic.AnthropicError as exc:
            log.warning("models API unavailable (%s); using the built-in model list", type(exc).__name__)
            self._models = {m.id: m for m in FALLBACK_MODELS}
            self._fetched_at = time.monotonic() - self._ttl + 60  # try the API again in a minute

    async def get(self, model_id: str) -> ModelInfo | None:
        return (await self.models()).get(model_id)



class ClaudeClient:
    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_seconds: float = 120.0,
        max_attempts: int = 3,
        max_retry_wait_seconds: float = 20.0,
    ) -> None:
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            # aiohttp's connection pool costs far less CPU per request than the
            # default transport's when hundreds of replies stream at once.
            http_client=anthropic.DefaultAioHttpClient(timeout=httpx2.Timeout(timeout_seconds, connect=5.0)),
        )
        self._max_attempts = max_attempts
        self._max_retry_wait = max_retry_wait_seconds
        self.catalog = ModelCatalog(self._client)

    async def close(self) -> None:
        await self._client.close()

    async def stream(self, request: ClaudeRequest, on_text: TextSink) -> ClaudeReply:
        """Stream one reply, handing each text delta to `on_text` as it arrives.

        Transient failures are retried while nothing has been shown and the wait is
        short; anything else raises ClaudeError.
        """
        shown = False

        async def show(delta: str) -> None:
            nonlocal shown
            shown = True
            await on_text(delta)

        for attempt in range(1, self._max_attempts + 1):
            try:
                with metrics.CLAUDE_IN_FLIGHT.track_inprogress(), metrics.CLAUDE_LATENCY.time():
                    return await self._stream_once(request, show)
            except ClaudeError:
                raise
            except Exception as exc:
                error = classify(exc, request.model)
                wait = self._retry_wait(exc, attempt)
                log.warning(
                    "claude call failed: kind=%s status=%s request_id=%s attempt=%d shown=%s",
                    error.kind, error.status, error.request_id, attempt, shown,
                )
                if shown or wait is None or attempt == self._max_attempts:
                    raise error from exc
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _stream_once(self, request: ClaudeRequest, show: TextSink) -> ClaudeReply:
        async with self._client.messages.stream(
            model=request.model,
            max_tokens=request.max_tokens,
            system=request.system,
            messages=request.messages,  # type: ignore[arg-type]
            cache_control={"type": "ephemeral"},
        ) as stream:
            async for delta in stream.text_stream:
                if delta:
                    await show(delta)
            final = await stream.get_final_message()
            text = "".join(block.text for block in final.content if block.type == "text")
            usage = final.usage
            return ClaudeReply(
                text=text,
                stop_reason=final.stop_reason,
                usage=TokenUsage(
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_input_tokens or 0,
                    cache_write_tokens=usage.cache_creation_input_tokens or 0,
                ),
                model=final.model,
                request_id=stream.request_id,
            )

    def _retry_wait(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before another attempt, or None when retrying is pointless."""
        if isinstance(exc, anthropic.APIStatusError):
            if exc.status_code == 200:  # an error event in the middle of the stream
                if exc.type not in _RETRYABLE_STREAM_ERRORS:
                    return None
            elif exc.status_code not in _RETRYABLE_STATUS or exc.response.headers.get("x-should-retry") == "false":
                return None
            asked = _retry_after_seconds(exc.response.headers)
            if asked is not None:
                return asked if asked <= self._max_retry_wait else None
        elif not isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            return None
        backoff = min(_BACKOFF_START * 2 ** (attempt - 1), _BACKOFF_CAP)
        return backoff * (1 - 0.25 * random.random())


def _retry_after_seconds(headers: httpx2.Headers) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            return None
    return None


def classify(exc: BaseException, model: str) -> ClaudeError:
    """A failed call as a ClaudeError with a sentence for the thread (never a key or a trace)."""
    if isinstance(exc, ClaudeError):
        return exc
    if isinstance(exc, anthropic.APITimeoutError):
        return ClaudeError("timeout", "Claude took too long to answer. Please try again.")
    # A connection dropped mid-stream surfaces as the HTTP library's own error.
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return ClaudeError("connection", "I couldn't reach Claude just now. Please try again in a moment.")
    if not isinstance(exc, anthropic.APIStatusError):
        return ClaudeError("server", "Something went wrong while asking Claude. Please try again.")
    status, request_id = exc.status_code, exc.request_id
    message = exc.api_message or ""
    kind, text = _STATUS_MESSAGES.get(status, _STATUS_MESSAGES[500])
    if status == 200:
        kind, text = _STREAM_ERROR_MESSAGES.get(exc.type or "", _STATUS_MESSAGES[500])
    elif status == 400 and _PROMPT_TOO_LONG.search(message):
        kind, text = "prompt_too_long", "This conversation has grown too long for the model."
    elif status == 404 and "model" in message.lower():
        kind = "unknown_model"
        text = (
            f"The model `{model}` is not available. An admin can choose another with `/claude model`."
        )
    elif status >= 500 and status not in _STATUS_MESSAGES:
        kind, text = _STATUS_MESSAGES[500]
    return ClaudeError(kind, text, status=status, request_id=request_id)


_STATUS_MESSAGES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Claude could not process this request."),
    401: ("auth", "I can't reach Claude: the service's API key was rejected. Please tell an admin."),
    403: ("auth", "I can't reach Claude: the service's API key is not allowed to do this. Please tell an admin."),
    404: ("bad_request", "Claude could not process this request."),
    413: ("bad_request", "This conversation is too large to send to Claude."),
    429: ("rate_limited", "Claude is getting too many requests right now. Please try again in a minute."),
    500: ("server", "Claude ran into an error. Please try again in a moment."),
    529: ("overloaded", "Claude is overloaded right now. Please try again in a few minutes."),
}
for _status in (502, 503, 504):
    _STATUS_MESSAGES[_status] = _STATUS_MESSAGES[500]

_STREAM_ERROR_MESSAGES: dict[str, tuple[str, str]] = {
    "overloaded_error": _STATUS_MESSAGES[529],
    "rate_limit_error": _STATUS_MESSAGES[429],
    "api_error": _STATUS_MESSAGES[500],
}

