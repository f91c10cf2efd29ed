"""Reading one streamed response: text deltas to the answer, thinking and server tool
uses to the progress cue (never to the answer), and the final message to a `ClaudeReply`
(its content kept as JSON for a paused turn's continuation and for its sources)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from anthropic.lib.streaming import AsyncMessageStream
from anthropic.types import Message

from bot.domain import Progress, TokenUsage

OnText = Callable[[str], Awaitable[None]]
OnProgress = Callable[[Progress], Awaitable[None]]
MAX_TITLES_SHOWN = 5


async def read_stream(
    stream: AsyncMessageStream, show: OnText, on_progress: OnProgress | None, silence_seconds: float
) -> tuple[Message, str | None]:
    """Hand text to `show` and what the model is doing to `on_progress`; returns the final
    message and the request id. Silence is counted between events that carry work (text,
    thinking, tool use), never pings."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(silence_seconds) as silence:  # raises TimeoutError, classified as "timeout"
        async for event in stream:
            if event.type == "ping":
                continue
            if event.type == "text":
                if event.text:
                    await show(event.text)
            elif on_progress is not None:
                progress = progress_of(event)
                if progress is not None:
                    await on_progress(progress)
            silence.reschedule(loop.time() + silence_seconds)
        final = await stream.get_final_message()
    return final, stream.request_id


def progress_of(event: Any) -> Progress | None:
    """The progress an event shows: thinking starts, a web search / fetch is sent (its input
    is complete when its block stops), or its results came (`found`: their titles, a line each)."""
    if event.type == "content_block_start" and event.content_block.type in ("thinking", "redacted_thinking"):
        return Progress("thinking")
    if event.type == "content_block_start" and event.content_block.type == "web_search_tool_result":
        results = event.content_block.content
        titles = [r.title for r in results if getattr(r, "type", "") == "web_search_result"] if isinstance(
            results, list
        ) else []
        return Progress("found", "\n".join(titles[:MAX_TITLES_SHOWN]))
    if event.type == "content_block_start" and event.content_block.type == "web_fetch_tool_result":
        page = event.content_block.content
        title = getattr(getattr(page, "content", None), "title", None) if page.type == "web_fetch_result" else None
        return Progress("found", title or "")
    if event.type == "content_block_stop" and event.content_block.type == "server_tool_use":
        block = event.content_block
        tool_input = block.input if isinstance(block.input, dict) else {}
        if block.name == "web_search":
            return Progress("searching", str(tool_input.get("query", ""))[:200])
        if block.name == "web_fetch":
            return Progress("fetching", str(tool_input.get("url", ""))[:500])
    return None


def content_json(message: Message) -> tuple[dict[str, Any], ...]:
    """The response's content blocks as the API takes them back (thinking signatures intact)."""
    return tuple(block.model_dump(mode="json", exclude_none=True) for block in message.content)


def usage_of(message: Message) -> TokenUsage:
    usage = message.usage
    server = usage.server_tool_use
    return TokenUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        web_searches=server.web_search_requests if server else 0,
        web_fetches=server.web_fetch_requests if server else 0,
    )


def refusal_category(message: Message) -> str | None:
    details = message.stop_details
    return details.category if details is not None and message.stop_reason == "refusal" else None
