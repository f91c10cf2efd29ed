"""Conversation controls on Discord: a Stop button while an answer streams; once it is
complete, thumbs up/down, Regenerate and (after a cut-off) Continue. A click is a
component interaction, translated into the core's control calls (`Inbox.controls`); what
the core says to the presser is an ephemeral reply. Buttons carry no mention, so they
never ping; an answer's buttons are taken off when a newer answer in its thread gets its
own (remembered in memory, per instance).

Each button's `custom_id` says what it acts on: `claude:stop:<workspace>:<channel>:<thread>`
or `claude:<up|down|regen|cont>:<answer id>` (at most 100 characters, as Discord allows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import discord

from adapters.discord.reply import NO_MENTIONS, DiscordReply
from adapters.discord.translate import DISCORD_FILE_HOSTS, PLATFORM
from bot.controls import AnswerControls, Control, ControlResult, Presser
from bot.domain import Actor, FileRef, IncomingMessage, ThreadKey
from bot.files.download import fetch_limited
from bot.ports import Inbox, MessageSurface, ReplyStream
from bot.ttl import TtlCache

log = logging.getLogger(__name__)

PREFIX = "claude:"
LAST_ANSWER_SECONDS = 7 * 24 * 3600.0
MAX_THREADS = 10_000


def stop_view(thread: ThreadKey) -> discord.ui.View:
    custom_id = f"{PREFIX}stop:{thread.workspace_id}:{thread.channel_id}:{thread.thread_id}"
    return _view([discord.ui.Button(style=discord.ButtonStyle.danger, label="Stop", custom_id=custom_id[:100])])


def answer_view(controls: AnswerControls) -> discord.ui.View | None:
    answer = controls.answer_id
    buttons: list[discord.ui.Button[Any]] = []
    if Control.REGENERATE in controls.controls:
        buttons.append(discord.ui.Button(label="Regenerate", emoji="🔄", custom_id=f"{PREFIX}regen:{answer}"))
    if Control.CONTINUE in controls.controls:
        buttons.append(discord.ui.Button(label="Continue", emoji="➡️", custom_id=f"{PREFIX}cont:{answer}"))
    if Control.FEEDBACK in controls.controls:
        buttons.append(discord.ui.Button(emoji="👍", custom_id=f"{PREFIX}up:{answer}"))
        buttons.append(discord.ui.Button(emoji="👎", custom_id=f"{PREFIX}down:{answer}"))
    return _view(buttons) if buttons else None


def _view(buttons: list[discord.ui.Button[Any]]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(button)
    view.stop()  # clicks come through `on_interaction`; nothing is kept per message by discord.py
    return view


class LastAnswers:
    """The message carrying each thread's latest answer buttons (to take them off later)."""

    def __init__(self) -> None:
        self._messages: TtlCache[ThreadKey, discord.Message] = TtlCache(LAST_ANSWER_SECONDS, max_entries=MAX_THREADS)

    async def replace(self, thread: ThreadKey, message: discord.Message | None) -> None:
        previous = self._messages.get(thread)
        if message is not None:
            self._messages.put(thread, message)
        if previous is not None and (message is None or previous.id != message.id):
            with contextlib.suppress(discord.HTTPException):
                await previous.edit(view=None, allowed_mentions=NO_MENTIONS, suppress=True)


class ControlledReply(DiscordReply):
    """A `DiscordReply` whose message being written has a Stop button, and whose final
    message carries the answer's controls; both ride on the edits the reply makes anyway
    (Discord's edit cadence holds for them too)."""

    def __init__(self, channel: Any, reference: discord.Message | None, thread: ThreadKey, last: LastAnswers) -> None:
        super().__init__(channel, reference)
        self._thread = thread
        self._last = last
        self._controls: AnswerControls | None = None
        self._finishing = False
        self._bringing: tuple[int, bool] = (-1, False)  # the part being shown, and whether it is complete
        self._final_view_shown = False

    def offer_controls(self, controls: AnswerControls) -> None:
        self._controls = controls

    def _final_view(self) -> discord.ui.View | None:
        return answer_view(self._controls) if self._controls is not None else None

    def _is_last(self, index: int) -> bool:
        return self._finishing and index == len(self._splitter.finished) - 1

    async def _bring(self, index: int, shown: Any, text: str, *, complete: bool) -> None:
        self._bringing = (index, complete)
        await super()._bring(index, shown, text, complete=complete)

    async def _post_part(self, index: int, text: str) -> discord.Message:
        if self._is_last(index):
            view, self._final_view_shown = self._final_view(), True
        else:
            view = stop_view(self._thread)
        message: discord.Message = await self._channel.send(
            text,
            allowed_mentions=NO_MENTIONS,
            suppress_embeds=True,  # as every message of the bot: a link the model writes is never previewed
            reference=self._reference if index == 0 else None,
            **_view_arg(view),
        )
        return message

    async def _edit_part(self, handle: discord.Message, text: str) -> None:
        index, complete = self._bringing
        if not complete:
            await handle.edit(content=text, allowed_mentions=NO_MENTIONS, suppress=True)
            return
        view = None  # a finished part loses its Stop button
        if self._is_last(index):
            view, self._final_view_shown = self._final_view(), True
        await handle.edit(content=text, view=view, allowed_mentions=NO_MENTIONS, suppress=True)

    async def finish(self, text: str) -> None:
        self._finishing = True
        await super().finish(text)
        last = self._parts[-1] if self._parts else None
        if last is None or last.handle is None:
            return
        if not self._final_view_shown:  # its text was already final: only the buttons change
            wait = last.updated_at + self._limits.edit_interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            await last.handle.edit(view=self._final_view(), allowed_mentions=NO_MENTIONS, suppress=True)
            last.updated_at = self._clock()
            self._final_view_shown = True
        await self._last.replace(self._thread, last.handle if self._controls is not None else None)


def _view_arg(view: discord.ui.View | None) -> dict[str, Any]:
    return {"view": view} if view is not None else {}


class DiscordControls:
    """Turns component clicks into core calls."""

    def __init__(self, inbox: Callable[[], Inbox | None]) -> None:
        self._inbox = inbox
        self.last_answers = LastAnswers()

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if not custom_id.startswith(PREFIX):
            return
        core = self._inbox()
        if core is None:
            return
        kind, _, rest = custom_id[len(PREFIX) :].partition(":")
        presser = _presser(interaction)

        def surface_for(message: IncomingMessage) -> MessageSurface:
            return ClickSurface(interaction, message, self.last_answers)

        result: ControlResult
        try:
            if kind == "stop":
                workspace, channel, thread = rest.split(":")
                result = await core.controls.stop(ThreadKey(PLATFORM, workspace, channel, thread), presser)
            elif kind in ("up", "down"):
                result = await core.controls.rate(int(rest), presser, positive=kind == "up")
            elif kind == "regen":
                result = await core.controls.regenerate(int(rest), presser, surface_for)
            elif kind == "cont":
                result = await core.controls.continue_answer(int(rest), presser, surface_for)
            else:
                return
        except ValueError:
            log.warning("discord: dropped a control click with a malformed custom_id")
            return
        if result.notice:
            await interaction.response.send_message(result.notice, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.defer()


def _presser(interaction: discord.Interaction) -> Presser:
    user = interaction.user

    async def is_admin() -> bool:
        if interaction.guild_id is None:
            return False
        permissions = interaction.permissions
        return permissions.manage_guild or permissions.administrator

    return Presser(Actor(PLATFORM, str(user.id), user.display_name, is_bot=user.bot), is_admin)


class ClickSurface:
    """Where Regenerate and Continue answer: the channel of the clicked answer (its thread, or
    the DM; in a channel without threads, as a reply to the clicked answer)."""

    def __init__(self, interaction: discord.Interaction, message: IncomingMessage, last: LastAnswers) -> None:
        self._interaction = interaction
        self._message = message
        self._last = last

    async def open_reply(self) -> ReplyStream:
        channel: Any = self._interaction.channel
        in_place = isinstance(channel, (discord.Thread, discord.DMChannel))
        reference = None if in_place else self._interaction.message
        reply = ControlledReply(channel, reference, self._message.thread, self._last)
        reply.start_typing()
        if reference is None:
            return reply
        # A reply-mode answer says where it was shown, so replying to it continues the
        # conversation (imported here: the surface module builds on this one).
        from adapters.discord.surface import ReplyModeAnswer

        return ReplyModeAnswer(reply)

    async def fetch_thread_context(self) -> list[Any]:
        return []

    async def fetch_later_messages(self, after_message_id: str) -> list[IncomingMessage]:
        return []

    async def download_file(self, file: FileRef, limit: int) -> bytes:
        async with aiohttp.ClientSession() as session:  # signed CDN links: no token is sent
            return await fetch_limited(session, file.url, hosts=DISCORD_FILE_HOSTS, limit=limit)
