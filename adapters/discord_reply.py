"""Showing one answer in Discord as it streams: send a first message, then edit it,
at most once per `EDIT_INTERVAL` per message, ending with the complete text.

Answers longer than 2,000 characters continue in further messages (see
`adapters.parts`). Every send and edit says `allowed_mentions` none: an edit
re-parses mentions, so it must repeat what the send said.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import discord

from adapters.parts import PartSplitter

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2_000
EDIT_INTERVAL = 1.2  # Discord allows about 5 edits per 5 s per channel
TYPING_EVERY = 8.0  # a typing indicator lasts about 10 s
NO_MENTIONS = discord.AllowedMentions.none()


class DiscordReply:
    def __init__(self, channel: Any, reference: discord.Message | None = None) -> None:
        self._channel = channel  # a Messageable: thread, text channel or DM
        self._reference = reference  # reply mode: answer as a reply to this message
        self._splitter = PartSplitter(MESSAGE_LIMIT)
        self._messages: list[discord.Message] = []
        self._shown: list[str] = []
        self._last_edit: list[float] = []
        self._fed = 0
        self._typing: asyncio.Task[None] | None = None
        self.sent: list[discord.Message] = []

    def start_typing(self) -> None:
        self._typing = asyncio.create_task(self._keep_typing())

    async def _keep_typing(self) -> None:
        with contextlib.suppress(discord.HTTPException):
            while True:
                await self._channel.typing()
                await asyncio.sleep(TYPING_EVERY)

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            self._typing = None

    async def append(self, delta: str) -> None:
        self._stop_typing()
        self._splitter.feed(delta)
        self._fed += len(delta)
        await self._show(final=False)

    async def finish(self, text: str) -> None:
        self._stop_typing()
        self._splitter.feed(text[self._fed :])
        self._fed = len(text)
        self._splitter.close()
        await self._show(final=True)

    async def _show(self, *, final: bool) -> None:
        for index, part in enumerate(self._splitter.finished):
            await self._put(index, part, wait_for_cadence=True)
        if not final and self._splitter.current.strip():
            await self._put(len(self._splitter.finished), self._splitter.current, wait_for_cadence=False)

    async def _put(self, index: int, text: str, *, wait_for_cadence: bool) -> None:
        """Message `index` shows `text`: sent if new, else edited when the cadence allows
        (a final text waits for its turn; an interim one is skipped)."""
        if index == len(self._messages):
            message = await self._channel.send(
                text, allowed_mentions=NO_MENTIONS, reference=self._reference if index == 0 else None
            )
            self._messages.append(message)
            self._shown.append(text)
            self._last_edit.append(time.monotonic())
            self.sent.append(message)
            return
        if self._shown[index] == text:
            return
        wait = self._last_edit[index] + EDIT_INTERVAL - time.monotonic()
        if wait > 0:
            if not wait_for_cadence:
                return
            await asyncio.sleep(wait)
        await self._messages[index].edit(content=text, allowed_mentions=NO_MENTIONS)
        self._shown[index] = text
        self._last_edit[index] = time.monotonic()
