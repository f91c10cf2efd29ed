"""A fake of the Anthropic HTTP API for tests and benchmarks.

`FakeAnthropic` is a small aiohttp server on 127.0.0.1 that speaks enough of the
real wire format for the official `anthropic` SDK to be pointed at it with
``base_url=fake.base_url``:

* ``POST /v1/messages`` -- JSON `Message` or, with ``"stream": true``, the same
  server-sent-event sequence as the real API (``message_start``,
  ``content_block_start``, ``ping``, one ``content_block_delta`` per word,
  ``content_block_stop``, ``message_delta``, ``message_stop``).
* ``POST /v1/messages/count_tokens`` -- ``{"input_tokens": N}``.
* ``GET /v1/models`` (cursor pagination) and ``GET /v1/models/{id}``.
* ``GET /_fake/stats`` and ``POST /_fake/reset`` -- fake-only helpers for a
  server run as a separate process (no auth, not recorded).

Every answer carries a unique ``request-id`` header, and errors use the real
body shape ``{"type": "error", "error": {"type", "message"}, "request_id"}``.
Requests must send ``Authorization: Bearer <api_key>`` (or ``x-api-key``).

Token accounting
----------------
`estimate_tokens` is ``ceil(len(text) / 4)``.  A request is flattened into an
ordered list of *prompt blocks*: each tool definition, then the system prompt
(a string is one text block, a list gives one block per entry), then the
content blocks of every message in order (a string content is one text block).
A text block costs ``estimate_tokens(text)``; an image or document what its file
costs (`fakes.anthropic_files.document_tokens`: a PNG by Anthropic's size formula,
other images a flat `IMAGE_TOKENS`, a PDF per page); any other block costs the estimate
of its canonical JSON.  There
is no per-message overhead, so the input total is exactly the sum over blocks.

Prompt caching model
--------------------
A block carrying ``cache_control`` is a cache breakpoint; a top-level
``cache_control`` on the request adds one on the last block of the last message.
Breakpoints whose prefix (all blocks up to and including it) is smaller than
``min_cacheable_tokens`` are ignored, as the real API ignores them.  Each prefix
is identified by a hash chained over the model id and the canonical JSON of its
blocks (``cache_control`` removed, message position and role included).  For
a request with breakpoints, the last one being at block ``L``:

* ``cache_read_input_tokens``: the tokens of the longest prefix ending at any
  block ``<= L`` that an earlier request wrote to this fake's cache;
* ``cache_creation_input_tokens``: the tokens after that prefix up to ``L``;
* ``input_tokens``: the tokens after ``L``;

and the prefix at every (cacheable) breakpoint is then written to the cache.
With no breakpoints everything is ``input_tokens``.  The three always add up to
the request's total.  The cache has no TTL; `FakeAnthropic.clear_cache` empties it.

Scripting
---------
`FakeAnthropic.queue_reply` scripts replies (FIFO, used before the ``reply``
callable); `FakeAnthropic.queue_blocks` scripts a reply of content blocks built with
`fakes.anthropic_tools` (server tool uses and their results, text with citations,
thinking with a signature, a ``refusal`` with ``stop_details``, ``pause_turn``), streamed
as the real API streams them, with ``usage.server_tool_use`` counted from its tool uses;
models may carry ``capabilities``, ``lifecycle`` and deprecation dates, and a request the
real API would refuse for them (thinking, effort or web search a model lacks, an altered
thinking signature, a retired model) is refused; `FakeAnthropic.queue_fault`, `FakeAnthropic.fail_always` and the
``fault_rate``/``seed`` options inject HTTP errors, mid-stream SSE errors and
dropped connections.  Run ``python -m fakes.anthropic_server --help`` to
serve it as a standalone process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import inspect
import itertools
import json
import math
import random
import re
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from fakes import anthropic_tools
from fakes.base import LoopbackServer

__all__ = [
    "DEFAULT_MODELS",
    "IMAGE_TOKENS",
    "CacheUsage",
    "FakeAnthropic",
    "Fault",
    "ModelSpec",
    "RecordedRequest",
    "count_input_tokens",
    "default_reply",
    "estimate_tokens",
    "main",
]

JsonDict = dict[str, Any]
ReplyFn = Callable[[JsonDict], str | Awaitable[str]]
FaultKind = Literal["status", "midstream_error", "drop"]

IMAGE_TOKENS = 1_500
"""Flat token cost of an image block."""

_THINKING_MODEL = anthropic_tools.capabilities(thinking=True, effort=("low", "medium", "high", "max"))
DEFAULT_MODELS: tuple[Mapping[str, Any], ...] = (
    {
        "id": "claude-sonnet-5-5",
        "display_name": "Claude Sonnet 5.5",
        "max_input_tokens": 1_000_000,
        "max_tokens": 64_000,
        "created_at": "2026-09-30T00:00:00Z",
        "capabilities": _THINKING_MODEL,
    },
    {
        "id": "claude-opus-5-5",
        "display_name": "Claude Opus 5.5",
        "max_input_tokens": 1_000_000,
        "max_tokens": 128_000,
        "created_at": "2026-09-15T00:00:00Z",
        "capabilities": _THINKING_MODEL,
    },
    {
        "id": "claude-haiku-5-5",
        "display_name": "Claude Haiku 5.5",
        "max_input_tokens": 200_000,
        "max_tokens": 64_000,
        "created_at": "2026-09-01T00:00:00Z",
        "capabilities": anthropic_tools.capabilities(thinking=False),
    },
)

ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

DEFAULT_ERROR_MESSAGES: Mapping[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}

DEFAULT_CHAOS_FAULTS: tuple[int | str, ...] = (429, 500, 529, "midstream_error", "drop")
MODEL_LINES = ("haiku", "sonnet", "opus", "fable", "mythos")
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 1_000
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # the real API's request size limit
_WORD_CHUNKS = re.compile(r"\S+\s*|\s+")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


# --------------------------------------------------------------------------- tokens


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate: one token per started group of 4 characters."""
    return math.ceil(len(text) / 4)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _without_cache_control(value: Any) -> Any:
    """A deep copy of ``value`` with every ``cache_control`` key removed."""
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _block_tokens(block: Any) -> int:
    if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
        return estimate_tokens(block["text"])
    if isinstance(block, dict) and block.get("type") in ("image", "document"):
        return _file_tokens(block)
    return estimate_tokens(_canonical_json(_without_cache_control(block)))


def _file_tokens(block: Mapping[str, Any]) -> int:
    """An image or document block: see `fakes.anthropic_files.document_tokens`; a file
    reference costs what the file it names costs."""
    from fakes.anthropic_files import FILE_TOKENS, document_tokens  # (it imports this module)

    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    assert isinstance(source, dict)
    fallback = IMAGE_TOKENS if block.get("type") == "image" else 1
    if source.get("type") == "file":
        return FILE_TOKENS.get(str(source.get("file_id")), fallback)
    if source.get("type") == "base64":
        try:
            return document_tokens(str(source.get("media_type")), base64.b64decode(str(source.get("data", ""))))
        except ValueError:
            return fallback
    if source.get("type") == "text":
        return estimate_tokens(str(source.get("data", "")))
    return fallback


@dataclass(frozen=True)
class PromptBlock:
    """One block of a flattened request, in prompt order."""

    key: str
    tokens: int
    breakpoint: bool
    ttl: str


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return content
    return []


def _make_block(section: str, block: Any) -> PromptBlock:
    cache_control = block.get("cache_control") if isinstance(block, dict) else None
    ttl = cache_control.get("ttl", "5m") if isinstance(cache_control, dict) else "5m"
    return PromptBlock(
        key=_canonical_json([section, _without_cache_control(block)]),
        tokens=_block_tokens(block),
        breakpoint=isinstance(cache_control, dict),
        ttl=str(ttl),
    )


def prompt_blocks(body: Mapping[str, Any]) -> list[PromptBlock]:
    """Flatten a Messages request into tools, system and message blocks (see module doc)."""
    blocks = [_make_block("tools", tool) for tool in body.get("tools") or []]
    blocks += [_make_block("system", b) for b in _as_blocks(body.get("system"))]
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            continue
        section = f"message:{index}:{message.get('role')}"
        blocks += [_make_block(section, b) for b in _as_blocks(message.get("content"))]
    top_level = body.get("cache_control")
    if isinstance(top_level, dict) and blocks and not blocks[-1].breakpoint:
        last = blocks[-1]
        blocks[-1] = PromptBlock(last.key, last.tokens, True, str(top_level.get("ttl", "5m")))
    return blocks


def count_input_tokens(body: Mapping[str, Any]) -> int:
    """Total input tokens of a Messages request body, as the fake counts them."""
    return sum(block.tokens for block in prompt_blocks(body))


# --------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class CacheUsage:
    """How a request's input tokens split between fresh input and the cache."""

    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    ttl: str = "5m"

    @property
    def total(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens


def _prefix_hashes(model: str, blocks: Sequence[PromptBlock]) -> list[str]:
    digest = hashlib.sha256(model.encode()).hexdigest()
    hashes = []
    for block in blocks:
        digest = hashlib.sha256((digest + block.key).encode()).hexdigest()
        hashes.append(digest)
    return hashes


class PromptCache:
    """Set of cached prompt prefixes, keyed by chained prefix hash."""

    def __init__(self, min_cacheable_tokens: int = 0) -> None:
        self.min_cacheable_tokens = min_cacheable_tokens
        self._entries: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def account(self, model: str, blocks: Sequence[PromptBlock]) -> CacheUsage:
        """Split the request's tokens per the caching model and write its breakpoints."""
        prefix_tokens = list(itertools.accumulate(block.tokens for block in blocks))
        total = prefix_tokens[-1] if prefix_tokens else 0
        breakpoints = [
            i for i, block in enumerate(blocks) if block.breakpoint and prefix_tokens[i] >= self.min_cacheable_tokens
        ]
        if not breakpoints:
            return CacheUsage(input_tokens=total)
        last = breakpoints[-1]
        hashes = _prefix_hashes(model, blocks)
        read = next((prefix_tokens[i] for i in range(last, -1, -1) if hashes[i] in self._entries), 0)
        self._entries.update(hashes[i] for i in breakpoints)
        return CacheUsage(
            input_tokens=total - prefix_tokens[last],
            cache_creation_input_tokens=prefix_tokens[last] - read,
            cache_read_input_tokens=read,
            ttl=blocks[last].ttl,
        )


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """A model the fake serves; `to_json` gives the `ModelInfo` wire shape."""

    id: str
    display_name: str
    max_input_tokens: int
    max_tokens: int
    created_at: str = "2026-01-01T00:00:00Z"
    lifecycle: str = "active"
    # What the model reads; both None: the models API says nothing of capabilities.
    image_input: bool | None = None
    pdf_input: bool | None = None
    capabilities: Mapping[str, Any] | None = None
    deprecated_at: str | None = None
    retires_at: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ModelSpec:
        model_id = str(data["id"])
        return cls(
            id=model_id,
            display_name=str(data.get("display_name", model_id)),
            max_input_tokens=int(data.get("max_input_tokens", 200_000)),
            max_tokens=int(data.get("max_tokens", 64_000)),
            created_at=str(data.get("created_at", cls.created_at)),
            lifecycle=str(data.get("lifecycle", cls.lifecycle)),
            image_input=data.get("image_input"),
            pdf_input=data.get("pdf_input"),
            capabilities=data.get("capabilities"),
            deprecated_at=data.get("deprecated_at"),
            retires_at=data.get("retires_at"),
        )

    def to_json(self) -> JsonDict:
        line = next((name for name in MODEL_LINES if name in self.id), None)
        return {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": self.created_at,
            "lifecycle": self.lifecycle,
            "line": line,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            "capabilities": self._capabilities(),
            "deprecated_at": self.deprecated_at,
            "retires_at": self.retires_at,
        }


    def _capabilities(self) -> JsonDict | None:
        """The model's capabilities, with what it reads (image_input, pdf_input) where a test set it."""
        if self.image_input is None and self.pdf_input is None:
            return dict(self.capabilities) if self.capabilities is not None else None
        caps = dict(self.capabilities or anthropic_tools.capabilities(thinking=False, web=False))
        caps["image_input"] = {"supported": self.image_input is not False}
        caps["pdf_input"] = {"supported": self.pdf_input is not False}
        return caps


# --------------------------------------------------------------------------- faults & records


@dataclass(frozen=True)
class Fault:
    """A scripted failure for one ``/v1/messages`` request.

    ``kind="status"`` answers ``status`` with an error body (``retry_after``
    adds ``retry-after``/``retry-after-ms`` headers).  ``"midstream_error"``
    streams ``message_start`` and ``after_deltas`` text deltas, then an SSE
    ``error`` event (a non-streaming request gets a plain 529 instead).
    ``"drop"`` closes the connection: before any response for a non-streaming
    request, after ``after_deltas`` deltas for a streaming one.
    """

    kind: FaultKind = "status"
    status: int = 500
    error_type: str | None = None
    message: str | None = None
    retry_after: float | None = None
    after_deltas: int = 2

    @classmethod
    def parse(cls, spec: int | str | Fault, **options: Any) -> Fault:
        """Build a fault from a status code, ``"midstream_error"``, ``"drop"`` or a `Fault`."""
        if isinstance(spec, Fault):
            return spec
        if isinstance(spec, int):
            return cls(kind="status", status=spec, **options)
        if spec == "midstream_error":
            return cls(kind="midstream_error", status=529, **options)
        if spec == "drop":
            return cls(kind="drop", **options)
        raise ValueError(f"unknown fault {spec!r}: use an HTTP status, 'midstream_error' or 'drop'")

    @property
    def resolved_type(self) -> str:
        return self.error_type or ERROR_TYPES.get(self.status, "api_error")

    @property
    def resolved_message(self) -> str:
        return self.message or DEFAULT_ERROR_MESSAGES.get(self.resolved_type, "Error")


@dataclass
class RecordedRequest:
    """One request the fake received (auth header values are redacted)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    auth_ok: bool
    body: Any
    received_at: float
    request_id: str
    status: int | None = None
    """Status answered; ``None`` while in progress or if the connection was dropped."""
    size: int = 0
    """Bytes of the request body as sent."""


@dataclass(frozen=True)
class ScriptedReply:
    text: str
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    blocks: tuple[JsonDict, ...] = ()  # the whole content when given (see fakes/anthropic_tools.py)
    stop_details: JsonDict | None = None

    @property
    def content(self) -> list[JsonDict]:
        return list(self.blocks) if self.blocks else [{"type": "text", "text": self.text}]


@dataclass(frozen=True)
class MessagePlan:
    """Everything needed to answer one successful Messages request."""

    message_id: str
    model: str
    reply: ScriptedReply
    usage: CacheUsage

    @property
    def output_tokens(self) -> int:
        return max(1, estimate_tokens(anthropic_tools.written_text(self.reply.content)))


class ApiError(Exception):
    """Raised by handlers; turned into a real-shaped error response."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.error_type = error_type or ERROR_TYPES.get(status, "api_error")
        self.message = message or DEFAULT_ERROR_MESSAGES.get(self.error_type, "Error")
        self.headers = dict(headers or {})
        super().__init__(f"{status} {self.error_type}: {self.message}")


def _fault_error(fault: Fault) -> ApiError:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["retry-after"] = str(math.ceil(fault.retry_after))
        headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
    return ApiError(fault.status, fault.resolved_message, fault.resolved_type, headers)


# --------------------------------------------------------------------------- replies


def _text_of(content: Any) -> str:
    blocks = _as_blocks(content)
    return "".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


def default_reply(body: Mapping[str, Any]) -> str:
    """``"You said: <text of the last user message>"``."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return f"You said: {_text_of(message.get('content'))}"
    return "Hello from the fake Anthropic API."


def _apply_stop_sequences(reply: ScriptedReply, stop_sequences: Iterable[str]) -> ScriptedReply:
    if reply.blocks:
        return reply
    hits = [(reply.text.find(seq), seq) for seq in stop_sequences if seq and seq in reply.text]
    if not hits:
        return reply
    index, seq = min(hits)
    return ScriptedReply(reply.text[:index], "stop_sequence", seq)


def _apply_max_tokens(reply: ScriptedReply, max_tokens: int) -> ScriptedReply:
    if reply.blocks or estimate_tokens(reply.text) <= max_tokens:
        return reply
    return ScriptedReply(reply.text[: max_tokens * 4], "max_tokens")


def split_into_deltas(text: str) -> list[str]:
    """One chunk per word (with its trailing whitespace); joining them gives ``text``."""
    return _WORD_CHUNKS.findall(text)


# --------------------------------------------------------------------------- wire shapes


def error_body(error_type: str, message: str, request_id: str) -> JsonDict:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def _usage_json(usage: CacheUsage, output_tokens: int, blocks: Sequence[JsonDict] = ()) -> JsonDict:
    creation = usage.cache_creation_input_tokens
    server_tools = anthropic_tools.server_tool_counts(blocks) if blocks else None
    return {
        "server_tool_use": server_tools,
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 0 if usage.ttl == "1h" else creation,
            "ephemeral_1h_input_tokens": creation if usage.ttl == "1h" else 0,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _message_json(plan: MessagePlan, *, final: bool) -> JsonDict:
    """The JSON `Message`; with ``final=False`` the empty one sent in ``message_start``."""
    reply = plan.reply
    return {
        "id": plan.message_id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": reply.content if final else [],
        "stop_reason": reply.stop_reason if final else None,
        "stop_sequence": reply.stop_sequence if final else None,
        "stop_details": reply.stop_details if final else None,
        "usage": _usage_json(plan.usage, plan.output_tokens if final else 1, reply.blocks if final else ()),
    }


def _json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json", headers=headers)


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


# --------------------------------------------------------------------------- request validation


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ApiError(400, message)


def _validate_messages(messages: Any) -> None:
    _require(messages is not None, "messages: Field required")
    _require(isinstance(messages, list), "messages: Input should be a valid list")
    _require(len(messages) > 0, "messages: at least one message is required")
    for index, message in enumerate(messages):
        _require(isinstance(message, dict), f"messages.{index}: Input should be a valid dictionary")
        role = message.get("role")
        _require(role in ("user", "assistant"), f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        _require(isinstance(content, (str, list)), f"messages.{index}.content: Input should be a valid list")


def _validate_max_tokens(body: Mapping[str, Any], model: ModelSpec) -> int:
    max_tokens = body.get("max_tokens")
    _require(max_tokens is not None, "max_tokens: Field required")
    _require(
        isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 1,
        "max_tokens: Input should be a valid integer greater than or equal to 1",
    )
    assert isinstance(max_tokens, int)
    _require(
        max_tokens <= model.max_tokens,
        f"max_tokens: {max_tokens} > {model.max_tokens}, which is the maximum allowed number of "
        f"output tokens for {model.id}",
    )
    return max_tokens


def _stop_sequences(body: Mapping[str, Any]) -> list[str]:
    sequences = body.get("stop_sequences") or []
    _require(isinstance(sequences, list), "stop_sequences: Input should be a valid list")
    return [s for s in sequences if isinstance(s, str)]


async def _read_json_object(request: web.Request) -> JsonDict:
    raw = await request.read()
    try:
        body = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"Request body is not valid JSON: {exc}") from None
    _require(isinstance(body, dict), "Request body must be a JSON object")
    assert isinstance(body, dict)
    return body


def _redacted_headers(request: web.Request) -> dict[str, str]:
    secret = {"authorization", "x-api-key"}
    return {k.lower(): ("<redacted>" if k.lower() in secret else v) for k, v in request.headers.items()}


# --------------------------------------------------------------------------- the server


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeAnthropic(LoopbackServer):
    """In-process fake of the Anthropic API (see the module docstring).

    Use as ``async with FakeAnthropic() as fake:`` or ``await fake.start()`` /
    ``await fake.stop()``, then point a client at ``fake.base_url``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        models: Sequence[Mapping[str, Any]] | None = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        reply: ReplyFn = default_reply,
        min_cacheable_tokens: int = 0,
        context_window: int | None = None,
        models_unavailable: bool = False,
        fault_rate: float = 0.0,
        fault_choices: Sequence[int | str | Fault] = DEFAULT_CHAOS_FAULTS,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.models = [ModelSpec.from_mapping(m) for m in (models if models is not None else DEFAULT_MODELS)]
        self.latency = latency
        self.chunk_delay = chunk_delay
        # While waiting between deltas, send a `ping` event this often (0: never), as the real
        # API does on a slow stream: bytes arrive, but no text.
        self.ping_interval = 0.0
        self.reply = reply
        self.context_window = context_window
        self.models_unavailable = models_unavailable
        self.fault_rate = fault_rate
        self.fault_choices = [Fault.parse(choice) for choice in fault_choices]
        self.host = host
        self.port = port
        self.cache = PromptCache(min_cacheable_tokens)
        self.requests: list[RecordedRequest] = []
        self.usages: list[JsonDict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._random = random.Random(seed)
        self._replies: deque[ScriptedReply] = deque()
        self._faults: deque[Fault] = deque()
        self._persistent_fault: Fault | None = None
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        from fakes.anthropic_files import FakeFiles  # (it imports this module)

        self.files = FakeFiles()

    # ------------------------------------------------------------------ lifecycle

    # ------------------------------------------------------------------ scripting

    @property
    def min_cacheable_tokens(self) -> int:
        return self.cache.min_cacheable_tokens

    @min_cacheable_tokens.setter
    def min_cacheable_tokens(self, value: int) -> None:
        self.cache.min_cacheable_tokens = value

    def queue_reply(self, text: str, stop_reason: str = "end_turn") -> None:
        """Answer the next Messages request (FIFO) with ``text``, ending with ``stop_reason``."""
        self._replies.append(ScriptedReply(text, stop_reason))

    def queue_blocks(
        self, *blocks: JsonDict, stop_reason: str = "end_turn", stop_details: JsonDict | None = None
    ) -> None:
        """Answer the next Messages request (FIFO) with these content blocks (built with
        `fakes.anthropic_tools`): server tool uses and results, cited text, thinking."""
        self._replies.append(ScriptedReply("", stop_reason, blocks=tuple(blocks), stop_details=stop_details))

    def queue_fault(
        self,
        fault: int | str | Fault,
        *,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        after_deltas: int = 2,
    ) -> Fault:
        """Fail the next Messages request (FIFO); see `Fault` for the kinds."""
        parsed = self._parse_fault(fault, message, error_type, retry_after, after_deltas)
        self._faults.append(parsed)
        return parsed

    def fail_always(
        self,
        fault: int | str | Fault = 500,
        *,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> Fault:
        """Fail every Messages request (after the queued faults) until `clear_faults`."""
        self._persistent_fault = self._parse_fault(fault, message, error_type, retry_after, 2)
        return self._persistent_fault

    def clear_faults(self) -> None:
        """Drop queued and persistent faults and turn chaos (``fault_rate``) off."""
        self._faults.clear()
        self._persistent_fault = None
        self.fault_rate = 0.0

    def clear_cache(self) -> None:
        self.cache.clear()

    def reset(self) -> None:
        """Forget records, scripted replies, faults and the prompt cache."""
        self.requests.clear()
        self.usages.clear()
        self._replies.clear()
        self.clear_faults()
        self.clear_cache()
        self.max_in_flight = self.in_flight

    @staticmethod
    def _parse_fault(
        fault: int | str | Fault,
        message: str | None,
        error_type: str | None,
        retry_after: float | None,
        after_deltas: int,
    ) -> Fault:
        if isinstance(fault, Fault):
            return fault
        return Fault.parse(
            fault, message=message, error_type=error_type, retry_after=retry_after, after_deltas=after_deltas
        )

    # ------------------------------------------------------------------ inspection

    @property
    def message_requests(self) -> list[JsonDict]:
        """Bodies of the ``POST /v1/messages`` requests received, in order."""
        return [
            r.body
            for r in self.requests
            if r.method == "POST" and r.path == "/v1/messages" and isinstance(r.body, dict)
        ]

    def total_usage(self) -> dict[str, int]:
        """Sums of the usage counters over every successful Messages answer."""
        keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
        return {key: sum(int(u.get(key, 0)) for u in self.usages) for key in keys}

    def stats(self) -> JsonDict:
        return {
            "requests": len(self.requests),
            "message_requests": len(self.message_requests),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "cache_entries": len(self.cache),
            "usage": self.total_usage(),
        }

    # ------------------------------------------------------------------ app & middleware

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/v1/messages", self._handle_messages)
        app.router.add_post("/v1/messages/count_tokens", self._handle_count_tokens)
        app.router.add_get("/v1/models", self._handle_list_models)
        app.router.add_get("/v1/models/{model_id}", self._handle_get_model)
        self.files.add_routes(app)
        app.router.add_get("/_fake/stats", self._handle_stats)
        app.router.add_post("/_fake/reset", self._handle_reset)
        return app

    def _auth_ok(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        bearer = request.headers.get("Authorization", "")
        return bearer == f"Bearer {self.api_key}" or request.headers.get("x-api-key") == self.api_key

    async def _record(self, request: web.Request, request_id: str, auth_ok: bool) -> RecordedRequest:
        body: Any = None
        size = request.content_length or 0
        if request.content_type.startswith("multipart/"):  # an upload: its handler reads the stream
            body = f"<multipart: {request.content_length} bytes>"
        elif raw := await request.read():
            size = len(raw)
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = raw.decode("utf-8", "replace")
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=_redacted_headers(request),
            auth_ok=auth_ok,
            body=body,
            received_at=time.monotonic(),
            request_id=request_id,
            size=size,
        )
        self.requests.append(record)
        return record

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = f"req_fake_{next(self._ids)}"
        request[REQUEST_ID] = request_id
        if request.path.startswith("/_fake/"):
            response = await self._dispatch(request, handler, request_id, auth_ok=True)
        else:
            auth_ok = self._auth_ok(request)
            record = await self._record(request, request_id, auth_ok)
            response = await self._dispatch(request, handler, request_id, auth_ok)
            transport = request.transport
            record.status = None if transport is None or transport.is_closing() else response.status
        if not response.prepared:
            response.headers["request-id"] = request_id
        return response

    async def _dispatch(
        self, request: web.Request, handler: Handler, request_id: str, auth_ok: bool
    ) -> web.StreamResponse:
        try:
            if not auth_ok:
                raise ApiError(401, "invalid x-api-key")
            return await handler(request)
        except ApiError as exc:
            return _json_response(error_body(exc.error_type, exc.message, request_id), exc.status, exc.headers)
        except web.HTTPException as exc:
            error_type = ERROR_TYPES.get(exc.status, "api_error")
            return _json_response(error_body(error_type, exc.reason, request_id), exc.status)
        except Exception as exc:  # a bug in a test's reply function, say: answer like the API would
            return _json_response(error_body("api_error", f"fake server error: {exc!r}", request_id), 500)

    # ------------------------------------------------------------------ /v1/messages

    def _next_fault(self) -> Fault | None:
        if self._faults:
            return self._faults.popleft()
        if self._persistent_fault is not None:
            return self._persistent_fault
        if self.fault_rate > 0 and self.fault_choices and self._random.random() < self.fault_rate:
            return self._random.choice(self.fault_choices)
        return None

    async def _next_reply(self, body: JsonDict) -> ScriptedReply:
        if self._replies:
            return self._replies.popleft()
        text = self.reply(body)
        if inspect.isawaitable(text):
            text = await text
        return ScriptedReply(str(text))

    def _find_model(self, model_id: Any) -> ModelSpec:
        for model in self.models:
            if model.id == model_id:
                return model
        raise ApiError(404, f"model: {model_id}")

    async def _plan(self, body: JsonDict, request_id: str) -> MessagePlan:
        """Validate the request, then account its tokens and pick the reply."""
        _require("model" in body, "model: Field required")
        model = self._find_model(body["model"])
        if model.lifecycle == "retired":  # still in the catalogue, but inference naming it fails
            raise ApiError(404, f"model: {model.id} has been retired")
        _validate_messages(body.get("messages"))
        max_tokens = _validate_max_tokens(body, model)
        stop_sequences = _stop_sequences(body)
        refused = anthropic_tools.check_request(body, model.capabilities)
        _require(refused is None, refused or "")
        blocks = prompt_blocks(body)
        total = sum(block.tokens for block in blocks)
        limit = self.context_window if self.context_window is not None else model.max_input_tokens
        _require(total <= limit, f"prompt is too long: {total} tokens > {limit} maximum")
        usage = self.cache.account(model.id, blocks)
        reply = await self._next_reply(body)
        reply = _apply_max_tokens(_apply_stop_sequences(reply, stop_sequences), max_tokens)
        used = {b.get("name") for b in reply.blocks if b.get("type") == "server_tool_use"}
        missing = used - anthropic_tools.tool_names(body)
        if missing:  # a script error in a test: the model cannot use a tool it was not given
            names = sorted(str(name) for name in missing)
            raise ApiError(500, f"fake: the scripted reply uses {names} but the request has no such tool")
        return MessagePlan(f"msg_fake_{request_id.removeprefix('req_fake_')}", model.id, reply, usage)

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._serve_message(request)
        finally:
            self.in_flight -= 1

    async def _serve_message(self, request: web.Request) -> web.StreamResponse:
        request_id: str = request[REQUEST_ID]
        body = await _read_json_object(request)
        fault = self._next_fault()
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        streaming = body.get("stream") is True
        if fault is not None and (fault.kind == "status" or not streaming):
            return self._fail_before_response(request, fault)
        model = next((m for m in self.models if m.id == body.get("model")), None)
        reads = {"image": model.image_input, "pdf": model.pdf_input} if model else None
        self.files.validate_messages(body, request.headers, reads)
        plan = await self._plan(body, request_id)
        if streaming:
            return await self._stream(request, plan, fault)
        self.usages.append(_usage_json(plan.usage, plan.output_tokens, plan.reply.blocks))
        return _json_response(_message_json(plan, final=True))

    def _fail_before_response(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.kind == "drop":
            _drop_connection(request)
            return web.Response(status=500)
        if fault.kind == "midstream_error":
            raise ApiError(529, fault.message, fault.error_type or "overloaded_error")
        raise _fault_error(fault)

    async def _stream(self, request: web.Request, plan: MessagePlan, fault: Fault | None) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": request[REQUEST_ID],
            },
        )
        await response.prepare(request)
        try:
            await self._write_events(request, response, plan, fault)
        except ConnectionError:
            pass  # the client went away; nothing left to tell it
        return response

    async def _write_events(
        self, request: web.Request, response: web.StreamResponse, plan: MessagePlan, fault: Fault | None
    ) -> None:
        await response.write(
            _sse("message_start", {"type": "message_start", "message": _message_json(plan, final=False)})
        )
        if plan.reply.blocks:
            for index, block in enumerate(plan.reply.blocks):
                for event in anthropic_tools.block_events(index, block):
                    if self.chunk_delay > 0 and event["type"] == "content_block_delta":
                        await self._wait_pinging(response, self.chunk_delay)
                    await response.write(_sse(event["type"], event))
            await self._finish_stream(response, plan, stop_block=False)
            return
        await response.write(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        await response.write(_sse("ping", {"type": "ping"}))
        for index, chunk in enumerate(split_into_deltas(plan.reply.text)):
            if fault is not None and index >= fault.after_deltas:
                break
            if index and self.chunk_delay > 0:
                await self._wait_pinging(response, self.chunk_delay)
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": chunk},
            }
            await response.write(_sse("content_block_delta", delta))
        if fault is not None:
            await self._fail_midstream(request, response, fault)
            return
        await self._finish_stream(response, plan)

    async def _wait_pinging(self, response: web.StreamResponse, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (left := until - loop.time()) > 0:
            if self.ping_interval <= 0:
                await asyncio.sleep(left)
                return
            await asyncio.sleep(min(self.ping_interval, left))
            await response.write(_sse("ping", {"type": "ping"}))

    async def _fail_midstream(self, request: web.Request, response: web.StreamResponse, fault: Fault) -> None:
        if fault.kind == "drop":
            _drop_connection(request)  # close() still flushes what was written
            return
        error_type = fault.error_type or "overloaded_error"
        message = fault.message or DEFAULT_ERROR_MESSAGES.get(error_type, "Error")
        await response.write(_sse("error", error_body(error_type, message, request[REQUEST_ID])))
        await response.write_eof()

    async def _finish_stream(self, response: web.StreamResponse, plan: MessagePlan, *, stop_block: bool = True) -> None:
        usage = _usage_json(plan.usage, plan.output_tokens, plan.reply.blocks)
        if stop_block:
            await response.write(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        delta = {
            "stop_reason": plan.reply.stop_reason,
            "stop_sequence": plan.reply.stop_sequence,
            "stop_details": plan.reply.stop_details,
        }
        message_delta_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
        await response.write(
            _sse("message_delta", {"type": "message_delta", "delta": delta, "usage": message_delta_usage})
        )
        await response.write(_sse("message_stop", {"type": "message_stop"}))
        await response.write_eof()
        self.usages.append(usage)

    # ------------------------------------------------------------------ other endpoints

    async def _handle_count_tokens(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json_object(request)
        _require("model" in body, "model: Field required")
        self._find_model(body["model"])
        _validate_messages(body.get("messages"))
        return _json_response({"input_tokens": count_input_tokens(body)})

    def _check_models_available(self) -> None:
        if self.models_unavailable:
            raise ApiError(500, "Internal server error")

    async def _handle_get_model(self, request: web.Request) -> web.StreamResponse:
        self._check_models_available()
        return _json_response(self._find_model(request.match_info["model_id"]).to_json())

    async def _handle_list_models(self, request: web.Request) -> web.StreamResponse:
        self._check_models_available()
        lifecycles = request.query.getall("lifecycle[]", []) or ["active", "deprecated"]
        models = [m for m in self.models if m.lifecycle in lifecycles]
        page, has_more = _paginate(models, request.query)
        return _json_response(
            {
                "data": [m.to_json() for m in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }
        )

    async def _handle_stats(self, request: web.Request) -> web.StreamResponse:
        return _json_response(self.stats())

    async def _handle_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return _json_response({"ok": True})


def _paginate(models: Sequence[ModelSpec], query: Mapping[str, str]) -> tuple[list[ModelSpec], bool]:
    """Cursor pagination over ``models`` with ``limit``, ``after_id`` and ``before_id``."""
    try:
        limit = int(query.get("limit", LIST_LIMIT_DEFAULT))
    except ValueError:
        raise ApiError(400, "limit: Input should be a valid integer") from None
    _require(1 <= limit <= LIST_LIMIT_MAX, f"limit: Input should be between 1 and {LIST_LIMIT_MAX}")
    ids = [m.id for m in models]
    if "before_id" in query:
        end = ids.index(query["before_id"]) if query["before_id"] in ids else 0
        start = max(0, end - limit)
        return list(models[start:end]), start > 0
    after = query.get("after_id")
    start = 0 if after is None else (ids.index(after) + 1 if after in ids else len(ids))
    page = list(models[start : start + limit])
    return page, start + limit < len(models)


def _drop_connection(request: web.Request) -> None:
    """Close the socket without (finishing) an HTTP response."""
    transport = request.transport
    if transport is not None:
        transport.close()


# --------------------------------------------------------------------------- standalone process


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the fake Anthropic API until SIGTERM.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer starts")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between text deltas")
    parser.add_argument("--min-cacheable-tokens", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--reply-words", type=int, default=0, help="answer with this many words (0: echo)")
    return parser.parse_args(argv)


def words_reply(count: int) -> ReplyFn:
    """A reply of `count` words that also names the last user message (answers differ per turn)."""

    def reply(body: Mapping[str, Any]) -> str:
        return default_reply(body) + " " + " ".join(f"word{i % 50}" for i in range(count))

    return reply


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeAnthropic(
        api_key=args.api_key,
        latency=args.latency,
        chunk_delay=args.chunk_delay,
        min_cacheable_tokens=args.min_cacheable_tokens,
        fault_rate=args.fault_rate,
        seed=args.seed,
        reply=words_reply(args.reply_words) if args.reply_words else default_reply,
        host=args.host,
        port=args.port,
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    async with fake:
        print(fake.base_url, flush=True)
        await stopped.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m fakes.anthropic_server``."""
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
