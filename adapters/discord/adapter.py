"""Discord: a discord.py Client with a `/claude` app-command group.

discord.py runs each gateway event as a task of its own; `on_message` translates
the message and hands it to the core's inbox with a surface bound to it (see
`surface`); `/claude` is deferred at once and answered by the core's background
work through the interaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from adapters.discord import changes
from adapters.discord.commands import claude_group
from adapters.discord.controls import DiscordControls
from adapters.discord.gateway import use_api_gateway, why_the_gateway_stopped
from adapters.discord.outage import RETRY_DELAYS, HeldMessages
from adapters.discord.reply import NO_MENTIONS
from adapters.discord.surface import DiscordCommandSurface, DiscordMessageSurface
from adapters.discord.translate import (
    DISCORD_FILE_HOSTS,
    PLATFORM,
    command_invocation,
    incoming_message,
    replied_to_bot,
)
from bot.domain import IncomingMessage, PostedMessage, ThreadKey
from bot.errors import ServiceUnavailable, StartupError
from bot.files.download import with_api_host
from bot.ports import Inbox, MessageSurface

log = logging.getLogger(__name__)

READY_WAIT_SECONDS = 60.0  # start-up waits this long for READY, then goes on (discord.py keeps trying)
CHANGE_WAIT_SECONDS = 5.0  # a message waits at most this long for deletions and edits received before it


@dataclass(frozen=True)
class DiscordConfig:
    token: str
    api_url: str | None = None
    guild_ids: tuple[int, ...] = ()  # sync /claude to these servers only (instant), else globally
    shard_count: int | None = None
    shard_ids: tuple[int, ...] = ()
    outage_retry_delays: tuple[float, ...] = RETRY_DELAYS  # holding a message the core cannot store yet


def make_client(config: DiscordConfig) -> discord.Client:
    """A plain client, or an auto-sharded one over the configured shards."""
    if config.shard_count is None:
        return discord.Client(intents=intents(), allowed_mentions=NO_MENTIONS)
    shards = list(config.shard_ids) or list(range(config.shard_count))
    return discord.AutoShardedClient(
        intents=intents(), allowed_mentions=NO_MENTIONS, shard_count=config.shard_count, shard_ids=shards
    )


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True  # privileged: enable it in the Developer Portal
    return wanted


class DiscordAdapter:
    name = PLATFORM

    def __init__(self, config: DiscordConfig) -> None:
        self.config = config
        if config.api_url:
            # discord.py keeps its REST base URL on a class; the service talks to one Discord.
            discord.http.Route.BASE = config.api_url.rstrip("/")
        self.client = make_client(config)
        self.tree = app_commands.CommandTree(self.client)
        self.tree.add_command(claude_group(self._run_command, self._model_choices))
        self.client.setup_hook = self._sync_commands  # type: ignore[method-assign]
        self.client.event(self.on_message)
        for handler in (self.on_raw_message_delete, self.on_raw_bulk_message_delete, self.on_raw_message_edit):
            self.client.event(handler)
        self.held = HeldMessages(config.outage_retry_delays)
        self.file_hosts = with_api_host(DISCORD_FILE_HOSTS, config.api_url, "discord.com")
        self.controls = DiscordControls(lambda: self._inbox, self.client)
        self.client.event(self.controls.on_interaction)
        self._inbox: Inbox | None = None
        self._gateway: asyncio.Task[str | None] | None = None
        self._starting = False
        self._changes_in_flight: dict[int | None, set[asyncio.Task[Any]]] = {}  # by server (None: DMs)

    # --- lifecycle --------------------------------------------------------

    async def start(self, inbox: Inbox) -> None:
        """Log in, then connect to the gateway the API names and wait for READY: a refused
        token or intent stops start-up with one line."""
        await self.log_in(inbox)
        await use_api_gateway(self.client)
        self._starting = True
        self._gateway = asyncio.create_task(self._connect())
        ready = asyncio.ensure_future(self.client.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {self._gateway, ready}, timeout=READY_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
            self._starting = False
        if self._gateway in done and (failure := self._gateway.result()) is not None:
            await self.client.close()
            raise StartupError(failure)
        if not done:
            log.warning("discord: no READY from the gateway after %.0f s; still trying", READY_WAIT_SECONDS)

    async def log_in(self, inbox: Inbox) -> None:
        """Log in over REST; events flow once the gateway is connected (`start` does it)."""
        self._inbox = inbox
        self.controls.last_answers.bind(inbox.controls)
        try:
            await self.client.login(self.config.token)
        except discord.LoginFailure:
            await self.client.close()
            raise StartupError("DISCORD_TOKEN was rejected by Discord") from None

    async def _connect(self) -> str | None:
        """Run the gateway connection (discord.py reconnects and resumes by itself); the line
        saying why it ended for good, logged unless start-up raises it."""
        try:
            await self.client.connect(reconnect=True)
            return None
        except (discord.DiscordException, OSError) as exc:
            failure = why_the_gateway_stopped(exc)
        if not self._starting:
            log.error("%s", failure)
        return failure

    async def stop_intake(self) -> None:
        self._inbox = None

    async def close(self) -> None:
        await self.client.close()
        if self._gateway is not None:
            await asyncio.gather(self._gateway, return_exceptions=True)

    async def _sync_commands(self) -> None:
        """Register `/claude` once per start (on_ready fires again after reconnects)."""
        try:
            if self.config.guild_ids:
                for guild_id in self.config.guild_ids:
                    guild = discord.Object(id=guild_id)
                    self.tree.copy_global_to(guild=guild)
                    await self.tree.sync(guild=guild)
            else:
                await self.tree.sync()
        except discord.HTTPException as exc:
            log.error("discord: syncing /claude failed (%s)", exc.status)

    # --- events in --------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if self._inbox is None or me is None:
            return
        await self._after_earlier_changes(message.guild.id if message.guild is not None else None)
        if isinstance(message.channel, discord.PartialMessageable) and message.guild is not None:
            # A thread the cache has not seen (created while we were away): learn its parent.
            try:
                message.channel = await self.client.fetch_channel(message.channel.id)  # type: ignore[assignment]
            except discord.HTTPException:
                log.warning("discord: could not look up channel %s", message.channel.id)
        incoming = incoming_message(message, me, await self._continued(message, me))
        if incoming is not None and self._inbox is not None:
            surface = DiscordMessageSurface(
                self.client, message, incoming, self.file_hosts, self.controls.last_answers
            )
            await self.held.submit(self._inbox, incoming, surface)

    async def _continued(self, message: discord.Message, me: discord.ClientUser) -> ThreadKey | None:
        """The conversation a reply to one of our answers continues (reply mode), from the core."""
        replied = replied_to_bot(message, me)
        if replied is None or self._inbox is None:
            return None
        return await self._inbox.conversation_of(PLATFORM, replied)

    # Discord sends events in order, but discord.py runs each as a task of its own: a message
    # that follows a deletion or an edit waits for it (bounded), so the answer it starts never
    # resends what was deleted or the text before the edit. Each change's task registers in its
    # first step, which runs before the next event's task starts.

    def _change_started(self, guild_id: int | None) -> None:
        task = asyncio.current_task()
        if task is not None:
            in_place = self._changes_in_flight.setdefault(guild_id, set())
            in_place.add(task)
            task.add_done_callback(in_place.discard)

    async def _after_earlier_changes(self, guild_id: int | None) -> None:
        """(Per server, not per channel: a mention deleted in a channel is the start of a
        thread, where the next message comes.)"""
        if earlier := self._changes_in_flight.get(guild_id):
            await asyncio.wait(set(earlier), timeout=CHANGE_WAIT_SECONDS)

    async def on_raw_message_delete(self, event: discord.RawMessageDeleteEvent) -> None:
        self._change_started(event.guild_id)
        await self._deleted(changes.posted(event.guild_id, event.channel_id, event.message_id))

    async def on_raw_bulk_message_delete(self, event: discord.RawBulkMessageDeleteEvent) -> None:
        self._change_started(event.guild_id)
        for message_id in sorted(event.message_ids):
            await self._deleted(changes.posted(event.guild_id, event.channel_id, message_id))

    async def on_raw_message_edit(self, event: discord.RawMessageUpdateEvent) -> None:
        self._change_started(event.guild_id)
        me = self.client.user
        edited = changes.edit(event, me) if me is not None else None
        if edited is None or self._inbox is None:
            return
        try:
            await self._inbox.message_edited(*edited)
        except ServiceUnavailable:  # Discord delivers an event once: say what was not applied
            log.warning("discord: the edit of message %s could not be stored (database unavailable)", event.message_id)

    async def _deleted(self, posted: PostedMessage) -> None:
        if self._inbox is None:
            return
        try:
            await self._inbox.message_deleted(posted)
        except ServiceUnavailable:
            if self.held.withdraw(posted.message_id):  # still held here: never handed over
                return
            log.warning("discord: the deletion of message %s could not be applied (database unavailable)",
                        posted.message_id)

    async def surface_for_stored(self, message: IncomingMessage) -> MessageSurface | None:
        """A stored message's surface: the message fetched again by id, from its thread (or
        DM), else from the channel it was posted in (a mention whose thread was never opened)."""
        me = self.client.user
        thread = message.thread
        for channel_id in dict.fromkeys((thread.thread_id, thread.channel_id)):
            try:
                channel: Any = self.client.get_channel(int(channel_id)) or await self.client.fetch_channel(
                    int(channel_id)
                )
                original = await channel.fetch_message(int(message.message_id))
            except (discord.HTTPException, ValueError, AttributeError):
                continue
            again = incoming_message(original, me, await self._continued(original, me)) if me is not None else None
            return DiscordMessageSurface(
                self.client, original, again or message, self.file_hosts, self.controls.last_answers
            )
        return None

    async def _run_command(self, interaction: discord.Interaction, name: str, argument: str) -> None:
        """Defer at once (the answer may take longer than Discord's 3 s); the core answers
        in the background."""
        inbox = self._inbox
        if inbox is None:  # shutting down: no "thinking…" that nobody will answer
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        invocation = command_invocation(interaction, f"{name} {argument}".strip())
        await inbox.submit_command(invocation, DiscordCommandSurface(interaction))

    async def _model_choices(self) -> list[str]:
        return await self._inbox.model_choices() if self._inbox is not None else []
