"""The core's surfaces for one Discord event: the answer to a `discord.Message`, the
ephemeral answer to a `discord.Interaction`. Each closes over that platform object."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import discord

from adapters.discord.controls import ControlledReply, LastAnswers
from adapters.discord.reply import MESSAGE_LIMIT, NO_MENTIONS, DiscordReply
from adapters.discord.translate import DISCORD_FILE_HOSTS, SPOKEN_TYPES, attachment_refs
from adapters.streaming import split_all
from bot.controls import AnswerControls
from bot.domain import ContextMessage, FileRef, IncomingMessage, Progress
from bot.files.download import fetch_limited
from bot.ports import OffersControls, ReplyStream

log = logging.getLogger(__name__)

THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440  # a day
THREAD_NAME_CHARS = 90
CONTEXT_MESSAGES = 50
THREAD_ALREADY_EXISTS = 160004  # Discord's error code: a thread was already started from this message


@dataclass(frozen=True)
class DiscordMessageSurface:
    client: discord.Client
    original: discord.Message
    message: IncomingMessage
    file_hosts: tuple[str, ...] = DISCORD_FILE_HOSTS
    last_answers: LastAnswers | None = None  # set: the answer gets Stop and its controls

    async def open_reply(self) -> ReplyStream:
        """In a thread or a DM, answer there; in a channel, open a thread on the message, or
        answer as a reply where no thread can be made (and when continuing such replies)."""
        channel: Any = self.original.channel
        reference: discord.Message | None = None
        if not self.message.is_direct and not isinstance(channel, discord.Thread):
            if self.message.is_thread_reply:  # continuing a reply-mode conversation
                reference = self.original
            else:
                thread = await self._open_thread()
                channel, reference = (thread, None) if thread is not None else (channel, self.original)
        reply = (
            DiscordReply(channel, reference)
            if self.last_answers is None
            else ControlledReply(channel, reference, self.message.thread, self.last_answers)
        )
        reply.start_typing()
        if reference is None:
            return reply
        return ReplyModeAnswer(reply)

    async def _open_thread(self) -> discord.Thread | None:
        try:
            return await self.original.create_thread(
                name=thread_name(self.message.text), auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:  # a retry after a crash
                existing = self.client.get_channel(self.original.id) or await self.client.fetch_channel(
                    self.original.id
                )
                return existing if isinstance(existing, discord.Thread) else None
            log.info("discord: cannot open a thread here (%s); answering as a reply", exc.status)
            return None

    async def fetch_later_messages(self, after_message_id: str) -> list[IncomingMessage]:
        return []  # Discord does not deliver a message again: nothing can overtake it

    async def download_file(self, file: FileRef, limit: int) -> bytes:
        # Attachment URLs are signed CDN links: no token is sent with them.
        async with aiohttp.ClientSession() as session:
            return await fetch_limited(session, file.url, hosts=self.file_hosts, limit=limit)

    async def fetch_thread_context(self) -> list[ContextMessage]:
        channel = self.original.channel
        if not isinstance(channel, discord.Thread):
            return []
        try:
            history = [m async for m in channel.history(limit=CONTEXT_MESSAGES, before=self.original)]
        except Exception as exc:  # the answer goes ahead without the context
            log.warning("discord: could not read the thread for context (%s)", type(exc).__name__)
            return []
        return [
            ContextMessage(m.author.display_name, m.content, is_bot=m.author.bot, files=attachment_refs(m))
            for m in reversed(history)
            if m.type in SPOKEN_TYPES and (m.content or m.attachments)
        ]


class ReplyModeAnswer:
    """A reply-mode answer: it tells the core the ids of its messages (`ShownInMessages`), so
    that replying to any of them continues the conversation."""

    def __init__(self, reply: DiscordReply) -> None:
        self._reply = reply

    async def append(self, delta: str) -> None:
        await self._reply.append(delta)

    async def progress(self, status: Progress) -> None:
        await self._reply.progress(status)

    def offer_controls(self, controls: AnswerControls) -> None:
        if isinstance(self._reply, OffersControls):
            self._reply.offer_controls(controls)

    async def finish(self, text: str) -> None:
        await self._reply.finish(text)

    def shown_message_ids(self) -> list[str]:
        return [str(sent.id) for sent in self._reply.sent]


@dataclass(frozen=True)
class DiscordCommandSurface:
    interaction: discord.Interaction

    async def answer(self, text: str) -> None:
        """As followups: the first replaces the deferred "thinking…" message. (Editing the
        original response cannot suppress embeds; a followup can.)"""
        for part in split_all(text, MESSAGE_LIMIT) or ["(no answer)"]:
            await self.interaction.followup.send(
                part, ephemeral=True, allowed_mentions=NO_MENTIONS, suppress_embeds=True
            )

    async def actor_is_admin(self) -> bool:
        """Manage Server or Administrator, from the interaction's resolved permissions
        (checked on every call: server admins can override a command's default permissions)."""
        if self.interaction.guild_id is None:
            return False
        permissions = self.interaction.permissions  # Manage Server is server-wide, not per channel
        return permissions.manage_guild or permissions.administrator


def thread_name(text: str) -> str:
    words = " ".join(text.split())
    return (words[:THREAD_NAME_CHARS] + "…") if len(words) > THREAD_NAME_CHARS else (words or "Claude")
