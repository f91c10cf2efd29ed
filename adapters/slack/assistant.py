"""Slack's assistant pane: suggested prompts when a person opens a thread, and a title
taken from their first message."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.ttl import Clock, TtlCache

log = logging.getLogger(__name__)

DEFAULT_PROMPTS: tuple[dict[str, str], ...] = (
    {"title": "Explain a concept", "message": "Explain this concept simply:"},
    {"title": "Draft a message", "message": "Help me draft a message to my team about"},
    {"title": "Review some code", "message": "Review this code and suggest improvements:"},
)
TITLE_CHARS = 80
GREETING_SECONDS = 1.0  # the greeting runs before Slack's ack, which is due within 3 s
# A pane thread opened but left without a message for a day goes untitled; the cap holds
# memory however many are opened meanwhile (the oldest are forgotten first).
UNTITLED_SECONDS = 24 * 3600.0
MAX_UNTITLED = 10_000


class AssistantPane:
    def __init__(
        self,
        client: AsyncWebClient,
        suggested_prompts: tuple[dict[str, str], ...],
        *,
        max_untitled: int = MAX_UNTITLED,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self._prompts = suggested_prompts
        # Threads opened in the pane, awaiting a title from their first message.
        self._untitled: TtlCache[tuple[str, str], bool] = TtlCache(
            UNTITLED_SECONDS, max_entries=max_untitled, clock=clock
        )

    async def greet(self, event: dict[str, Any]) -> None:
        """`assistant_thread_started`: offer the suggested prompts; title the thread later."""
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not channel or not thread_ts:
            return
        self._untitled.put((channel, thread_ts), True)
        if self._prompts:
            offer = self._client.assistant_threads_setSuggestedPrompts(
                channel_id=channel, thread_ts=thread_ts, prompts=list(self._prompts)
            )
            await quietly(asyncio.wait_for(offer, timeout=GREETING_SECONDS))

    async def title_if_new(self, channel: str, thread_ts: str, first_message: str) -> None:
        if not self._untitled.get((channel, thread_ts)):
            return
        self._untitled.discard((channel, thread_ts))
        await quietly(
            self._client.assistant_threads_setTitle(
                channel_id=channel, thread_ts=thread_ts, title=first_message[:TITLE_CHARS]
            )
        )


async def quietly(call: Awaitable[Any]) -> None:
    """A cosmetic call (status, title, prompts) that must never break an answer."""
    try:
        await call
    except Exception as exc:
        log.debug("slack: cosmetic call failed (%s)", type(exc).__name__)
