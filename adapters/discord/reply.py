"""Showing one answer in Discord as it streams: send a first message, then edit it,
at most once per `edit_interval` per message, ending with the complete text.

Answers longer than 2,000 characters continue in further messages (see
`adapters.streaming`). Every send and edit says `allowed_mentions` none (an edit
re-parses mentions, so it must repeat what the send said) and suppresses embeds, so
no link the model writes makes Discord fetch it (a crafted URL could carry the thread).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import discord

from adapters.progress_text import status_line
from adapters.streaming import ReplyLimits, StreamedReply
from bot.domain import Progress

# 2,000 characters per message; Discord allows about 5 edits per 5 s per channel, so one
# edit per 1.2 s per message, the last one included.
DISCORD_LIMITS = ReplyLimits(max_chars=2_000, edit_interval=1.2, strict_cadence=True)
MESSAGE_LIMIT = DISCORD_LIMITS.max_chars
TYPING_EVERY = 8.0  # a typing indicator lasts about 10 s
NO_MENTIONS = discord.AllowedMentions.none()


class DiscordReply(StreamedReply[discord.Message]):
    """An answer in a Discord channel, thread or DM; in reply mode its first message
    replies to `reference`."""

    def __init__(self, channel: Any, reference: discord.Message | None = None) -> None:
        super().__init__(DISCORD_LIMITS)
        self._channel = channel  # a Messageable: thread, text channel or DM
        self._reference = reference
        self._typing: asyncio.Task[None] | None = None

    @property
    def sent(self) -> list[discord.Message]:
        """The answer's messages, in order."""
        return [part.handle for part in self._parts if part.handle is not None]

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
        await super().append(delta)

    async def finish(self, text: str) -> None:
        self._stop_typing()
        await super().finish(text)

    async def progress(self, status: Progress) -> None:
        """Before the answer: its first message shows a status line ("*Searching the web…*"),
        which the answer's first edit replaces."""
        if status.kind != "found":  # (the answer lists its sources)
            await self.show_status(f"*{status_line(status)}*")

    async def _post_part(self, index: int, text: str) -> discord.Message:
        message: discord.Message = await self._channel.send(
            text,
            allowed_mentions=NO_MENTIONS,
            suppress_embeds=True,
            reference=self._reference if index == 0 else None,
        )
        return message

    async def _edit_part(self, handle: discord.Message, text: str) -> None:
        await handle.edit(content=text, allowed_mentions=NO_MENTIONS, suppress=True)
