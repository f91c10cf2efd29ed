"""Streaming one reply from the Claude Messages API.

Retries are the SDK's (`max_retries=2`, three requests at most). Until a response
starts, the SDK retries 408, 409, 429 and 5xx answers and failed connections, obeys the
server's `x-should-retry`, and waits what `retry-after-ms` / `retry-after` ask for, or
else backs off 0.5 s, 1 s, ... up to 8 s with jitter. The installed SDK waits out a
`retry-after` of any length.

We add only what the SDK cannot know:

- **A cap on waits a person sits through.** A `retry-after` longer than
  `max_retry_wait_seconds` is not waited out; the error goes to the thread at once
  ("try again in a minute"). Done by declining the retry in the SDK's own
  `_should_retry` hook, the one the SDK itself overrides for its 401 handling: the
  decision needs the response's headers, and the wait hook cannot refuse a retry.
- **A retry of a stream that fails after it started but before any text was shown**:
  an `overloaded_error`, `api_error` or `rate_limit_error` event, or a dropped
  connection. The SDK's retries end when the response starts. The stream is opened
  again after the SDK's own backoff, and the SDK's retries count against the same
  budget, so one reply still costs at most three requests.

Once text has been shown nothing is retried: the user would see it twice.

Two deadlines keep a turn from waiting forever (both end it with the timeout sentence,
and free the thread and the Claude slot): `timeout_seconds` of silence, counted
between pieces of text (a stream that sends only pings is silent), and
`max_turn_seconds` for the whole answer, retries included (one token a minute is not
silence, but no answer either).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

import anthropic
import httpx2
from anthropic._models import FinalRequestOptions
from anthropic.lib.streaming import AsyncMessageStream
from opentelemetry import trace
from typing_extensions import override

from bot import metrics
from bot.claude.catalog import ModelCatalog
from bot.claude.errors import ClaudeError, classify
from bot.claude.files import FilesApi
from bot.claude.response import OnProgress, content_json, read_stream, refusal_category, usage_of
from bot.domain import TokenUsage

log = logging.getLogger(__name__)

OnText = Callable[[str], Awaitable[None]]
"""Called with each piece of a reply's text as it arrives."""

_RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


@dataclass(frozen=True, slots=True)
class ClaudeRequest:
    model: str
    system: str
    messages: list[dict[str, Any]]
    max_tokens: int
    betas: tuple[str, ...] = ()  # e.g. the Files API's, when a message references an uploaded file
    extras: dict[str, Any] = field(default_factory=dict)  # tools, thinking, output_config (bot.claude.request)


@dataclass(frozen=True, slots=True)
class ClaudeReply:
    text: str
    stop_reason: str | None
    usage: TokenUsage
    model: str
    request_id: str | None
    content: tuple[dict[str, Any], ...] = ()  # the response's blocks as JSON (sources, pause_turn)
    refusal_category: str | None = None  # stop_details.category of a refusal, when the API gives one


class _WaitCappedAnthropic(anthropic.AsyncAnthropic):
    """The SDK's client, declining a retry whose `retry-after` is longer than a person should wait."""

    max_retry_wait_seconds: float = 20.0

    def waits_too_long(self, headers: httpx2.Headers) -> bool:
        asked = self._parse_retry_after_header(headers)
        return asked is not None and asked > self.max_retry_wait_seconds

    @override
    def _should_retry(self, response: httpx2.Response) -> bool:
        if self.waits_too_long(response.headers):
            log.info("claude asked to retry after more than %.0f s; not waiting", self.max_retry_wait_seconds)
            return False
        return super()._should_retry(response)

    def backoff_seconds(self, remaining_retries: int, headers: httpx2.Headers) -> float:
        """What the SDK would wait before a retry when `remaining_retries` are left."""
        options = FinalRequestOptions(method="post", url="/v1/messages")
        return self._calculate_retry_timeout(remaining_retries, options, headers)

    @override
    def copy(self, *args: Any, **kwargs: Any) -> Self:
        # The SDK builds the copy from its constructor's arguments; the cap is not one.
        client = super().copy(*args, **kwargs)
        client.max_retry_wait_seconds = self.max_retry_wait_seconds
        return client

    with_options = copy


class ClaudeClient:
    """Streams replies from Claude (see the module docstring for retries) and holds the model catalogue."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout_seconds: float = 120.0,
        max_turn_seconds: float = 600.0,
        max_retries: int = 2,
        max_retry_wait_seconds: float = 20.0,
        traces: bool = False,
    ) -> None:
        self._silence_seconds = timeout_seconds
        self._max_turn_seconds = max_turn_seconds
        self._client = _WaitCappedAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            # aiohttp's connection pool costs far less CPU per request than the
            # default transport's when hundreds of replies stream at once.
            http_client=anthropic.DefaultAioHttpClient(timeout=httpx2.Timeout(timeout_seconds, connect=5.0)),
            # The SDK works out every call's span attributes before asking whether anything
            # records them: a twentieth of a turn's CPU for nothing without a tracer provider.
            open_telemetry=None if traces else False,
        )
        self._client.max_retry_wait_seconds = max_retry_wait_seconds
        # A reply can wait for the model list; the built-in table is good enough until it comes back.
        self.catalog = ModelCatalog(self._client.with_options(max_retries=0))
        self.files = FilesApi(self._client)

    @property
    def sdk_traces_enabled(self) -> bool:
        """Whether the SDK makes an OpenTelemetry span of each call."""
        return self._client.open_telemetry["traces"]["enabled"]

    async def close(self) -> None:
        await self._client.close()

    async def stream(
        self, request: ClaudeRequest, on_text: OnText, on_progress: OnProgress | None = None
    ) -> ClaudeReply:
        """Stream one reply, handing each text delta to `on_text` as it arrives (and what the
        model does meanwhile, thinking or using a tool, to `on_progress`).

        Failures are retried as the module docstring says; anything else raises ClaudeError.
        """
        try:
            async with asyncio.timeout(self._max_turn_seconds):
                return await self._stream(request, on_text, on_progress)
        except TimeoutError as exc:
            log.warning("claude answer exceeded %.0f s: model=%s", self._max_turn_seconds, request.model)
            raise classify(exc, request.model) from None

    async def _stream(self, request: ClaudeRequest, on_text: OnText, on_progress: OnProgress | None) -> ClaudeReply:
        shown = False

        async def show(delta: str) -> None:
            nonlocal shown
            shown = True
            await on_text(delta)

        retries_left = self._client.max_retries
        while True:
            client = self._client
            if retries_left != client.max_retries:
                client = client.with_options(max_retries=retries_left)
            started: AsyncMessageStream | None = None
            try:
                with metrics.CLAUDE_IN_FLIGHT.track_inprogress(), metrics.CLAUDE_LATENCY.time():
                    async with client.messages.stream(
                        model=request.model,
                        max_tokens=request.max_tokens,
                        system=request.system,
                        messages=request.messages,  # type: ignore[arg-type]
                        cache_control={"type": "ephemeral"},
                        extra_headers={"anthropic-beta": ",".join(request.betas)} if request.betas else None,
                        **request.extras,
                    ) as started:
                        return await _read(started, show, self._silence_seconds, on_progress)
            except ClaudeError:
                raise
            except Exception as exc:
                error = classify(exc, request.model)
                if started is not None:  # the SDK's retries are behind us
                    retries_left -= _retries_taken(started.response) + 1
                log.warning(
                    "claude call failed: kind=%s status=%s request_id=%s started=%s shown=%s",
                    error.kind, error.status, error.request_id, started is not None, shown,
                )
                if started is None or shown or retries_left < 0 or not self._retry_in_stream(exc):
                    raise error from exc
                await asyncio.sleep(self._client.backoff_seconds(retries_left + 1, started.response.headers))

    def _retry_in_stream(self, exc: Exception) -> bool:
        """Whether a stream that failed before showing any text is worth opening again."""
        if isinstance(exc, anthropic.APIStatusError):  # an error event; the response itself was a 200
            return exc.type in _RETRYABLE_STREAM_ERRORS and not self._client.waits_too_long(exc.response.headers)
        # A connection dropped mid-stream surfaces as the HTTP library's own error.
        return isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError)


async def _read(
    stream: AsyncMessageStream, show: OnText, silence_seconds: float, on_progress: OnProgress | None
) -> ClaudeReply:
    final, request_id = await read_stream(stream, show, on_progress, silence_seconds)
    return ClaudeReply(
        text="".join(block.text for block in final.content if block.type == "text"),
        stop_reason=final.stop_reason,
        usage=usage_of(final),
        model=final.model,
        request_id=request_id,
        content=content_json(final),
        refusal_category=refusal_category(final),
    )


def tracing_configured() -> bool:
    """Whether an OpenTelemetry SDK is set up in this process (the API alone gives a proxy
    that records nothing): then the SDK's spans of Claude calls are worth their cost."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _retries_taken(response: httpx2.Response) -> int:
    """How many times the SDK retried before this response: it numbers every request it sends."""
    return int(response.request.headers.get("x-stainless-retry-count", "0"))
