"""Slack's assistant pane: suggested prompts when a person opens a thread, and a title
taken from their first message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

DEFAULT_PROMPTS: tuple[dict[str, str], ...] = (
    {"title": "Explain a concept", "message": "Explain this concept simply:"},
    {"title": "Draft a message", "message": "Help me draft a message to my team about"},
    {"title": "Review some code", "message": "Review this code and suggest improvements:"},
)
TITLE_CHARS = 80
GREETING_SECONDS = 1.0  # the greeting runs before Slack's ack, which is due within 3 s


class AssistantPane:
    def __init__(self, client: AsyncWebClient, suggested_prompts: tuple[dict[str, str], ...]) -> None:
        self._client = client
        self._prompts = suggested_prompts
        self._untitled: set[tuple[str, str]] = set()  # threads opened in the pane, awaiting a title

    async def greet(self, event: dict[str, Any]) -> None:
        """`assistant_thread_started`: offer the suggested prompts; title the thread later."""
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not channel or not thread_ts:
            return
        self._untitled.add((channel, thread_ts))
        if self._prompts:
            offer = self._client.assistant_threads_setSuggestedPrompts(
                channel_id=channel, thread_ts=thread_ts, prompts=list(self._prompts)
            )
            await quietly(asyncio.wait_for(offer, timeout=GREETING_SECONDS))

    async def title_if_new(self, channel: str, thread_ts: str, first_message: str) -> None:
        if (channel, thread_ts) not in self._untitled:
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
