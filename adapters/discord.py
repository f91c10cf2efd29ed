"""Discord: a discord.py Client with a `/claude` app-command group.

Conversations: a mention in a text channel opens a public thread on that message
(a thread started from a message has the message's id, so the conversation key
is known before the thread exists: `discord:<guild>:<channel>:<message id>`);
inside a thread, the thread is the conversation; a DM channel is one
conversation. Where no thread can be made, the answer is a reply, and replying
to the bot's answer continues that conversation.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import discord
from discord import app_commands

from adapters.base import AdapterLimits, BackgroundTasks, MessageSink, ReplyStream
from adapters.discord_reply import MESSAGE_LIMIT, NO_MENTIONS, DiscordReply
from adapters.streaming import split_all
from bot.events import Actor, ChannelKey, CommandInvocation, ContextMessage, IncomingMessage, ThreadKey
from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)

PLATFORM = "discord"
DM_WORKSPACE = "@me"
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440  # a day
_CONTEXT_MESSAGES = 50
_REMEMBERED_REPLIES = 10_000
_SPOKEN_TYPES = {discord.MessageType.default, discord.MessageType.reply}


@dataclass(frozen=True)
class DiscordConfig:
    token: str
    api_url: str | None = None
    guild_ids: tuple[int, ...] = ()
    shard_count: int | None = None
    shard_ids: tuple[int, ...] = ()


def discord_config(settings: Settings) -> DiscordConfig:
    token = settings.discord_token.get_secret_value() if settings.discord_token else ""
    return DiscordConfig(
        token,
        settings.discord_api_url,
        tuple(settings.discord_guild_ids),
        settings.discord_shard_count,
        tuple(settings.discord_shard_ids),
    )


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
    limits = AdapterLimits(max_message_chars=MESSAGE_LIMIT, min_edit_interval=1.2)

    def __init__(self, config: DiscordConfig) -> None:
        self.config = config
        if config.api_url:
            discord.http.Route.BASE = config.api_url.rstrip("/")
        self.client = make_client(config)
        self.tree = app_commands.CommandTree(self.client)
        self.tree.add_command(self._command_group())
        self.client.setup_hook = self._sync_commands  # type: ignore[method-assign]
        self.client.event(self.on_message)
        self.tasks = BackgroundTasks()
        self._sink: MessageSink | None = None
        self._gateway: asyncio.Task[None] | None = None
        self._pending: dict[str, discord.Message] = {}
        self._closing = False
        self._interactions: dict[int, discord.Interaction] = {}
        # Reply-mode conversations (no thread possible): our answer's id -> its conversation.
        self._reply_threads: OrderedDict[int, ThreadKey] = OrderedDict()

    # --- lifecycle --------------------------------------------------------

    async def start(self, sink: MessageSink) -> None:
        """Log in (a bad token stops start-up with one line) and connect to the gateway."""
        self._sink = sink
        try:
            await self.client.login(self.config.token)
        except discord.LoginFailure:
            await self.client.close()
            raise SettingsError("DISCORD_TOKEN was rejected by Discord") from None
        self._gateway = asyncio.create_task(self._connect())

    async def attach(self, sink: MessageSink) -> None:
        """Log in without a gateway connection: events are fed in by the caller (tests)."""
        self._sink = sink
        await self.client.login(self.config.token)

    async def _connect(self) -> None:
        try:
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            log.error(
                "discord refused the Message Content intent: enable it in the Developer Portal "
                "(your application -> Bot -> Privileged Gateway Intents -> MESSAGE CONTENT INTENT)"
            )
        except discord.DiscordException as exc:
            log.error("discord gateway stopped: %s", type(exc).__name__)

    async def stop(self) -> None:
        """Stop taking messages first, then let the answers under way finish."""
        self._closing = True
        await self.client.close()
        if self._gateway is not None:
            await asyncio.gather(self._gateway, return_exceptions=True)
        await self.tasks.drain()

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

    # --- messages in ------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        if not self._closing:
            self.tasks.spawn(self._handle(message))

    async def _handle(self, message: discord.Message) -> None:
        if isinstance(message.channel, discord.PartialMessageable) and message.guild is not None:
            # A thread the cache has not seen (created while we were away): learn its parent.
            try:
                message.channel = await self.client.fetch_channel(message.channel.id)  # type: ignore[assignment]
            except discord.HTTPException:
                log.warning("discord: could not look up channel %s", message.channel.id)
        incoming = self.translate(message)
        if incoming is None or self._sink is None:
            return
        turn = await self._sink.accept(self, incoming)
        if turn is None:
            return
        self._pending[incoming.message_id] = message
        try:
            await self._sink.answer(self, turn)
        finally:
            self._pending.pop(incoming.message_id, None)

    def translate(self, message: discord.Message) -> IncomingMessage | None:
        """A Discord message as the core's IncomingMessage (None: not a person speaking)."""
        me = self.client.user
        if me is None or message.type not in _SPOKEN_TYPES:
            return None
        is_bot = message.author.bot or message.webhook_id is not None or message.author.id == me.id
        mentions_bot = any(user.id == me.id for user in message.mentions)
        channel = message.channel
        guild = message.guild
        is_direct = guild is None
        is_thread_reply = False
        if guild is None:
            thread = ThreadKey(PLATFORM, DM_WORKSPACE, str(channel.id), str(channel.id))
        elif isinstance(channel, discord.Thread):
            thread = ThreadKey(PLATFORM, str(guild.id), str(channel.parent_id), str(channel.id))
            is_thread_reply = True
        else:
            continued = self._continued_conversation(message)
            is_thread_reply = continued is not None
            thread = continued or ThreadKey(PLATFORM, str(guild.id), str(channel.id), str(message.id))
        text = re.sub(rf"\s*<@!?{me.id}>\s*", " ", message.content).strip()
        return IncomingMessage(
            thread=thread,
            event_id=str(message.id),
            message_id=str(message.id),
            actor=Actor(PLATFORM, str(message.author.id), message.author.display_name, is_bot=is_bot),
            text=text,
            is_direct=is_direct,
            mentions_bot=mentions_bot,
            is_thread_reply=is_thread_reply,
        )

    def _continued_conversation(self, message: discord.Message) -> ThreadKey | None:
        """A reply to one of our reply-mode answers continues that conversation."""
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        return self._reply_threads.get(reference.message_id)

    # --- answers out ------------------------------------------------------

    async def open_reply(self, message: IncomingMessage) -> ReplyStream:
        original = self._pending.get(message.message_id)
        if original is None:
            raise RuntimeError("no Discord message to answer")  # the core only answers what we handed it
        channel: Any = original.channel
        reference: discord.Message | None = None
        if not message.is_direct and not isinstance(channel, discord.Thread):
            if message.is_thread_reply:  # continuing a reply-mode conversation
                reference = original
            else:
                thread = await self._open_thread(original, message.text)
                channel, reference = (thread, None) if thread is not None else (channel, original)
        reply_mode = reference is not None
        reply = _RememberingReply(DiscordReply(channel, reference), self, message.thread, reply_mode=reply_mode)
        reply.start_typing()
        return reply

    async def _open_thread(self, original: discord.Message, text: str) -> discord.Thread | None:
        name = _thread_name(text)
        try:
            return await original.create_thread(name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES)
        except discord.HTTPException as exc:
            if exc.code == 160004:  # a thread already exists for this message (a retry after a crash)
                existing = self.client.get_channel(original.id) or await self.client.fetch_channel(original.id)
                return existing if isinstance(existing, discord.Thread) else None
            log.info("discord: cannot open a thread here (%s); answering as a reply", exc.status)
            return None

    def remember_reply(self, sent: list[discord.Message], thread: ThreadKey) -> None:
        for item in sent:
            self._reply_threads[item.id] = thread
        while len(self._reply_threads) > _REMEMBERED_REPLIES:
            self._reply_threads.popitem(last=False)

    async def fetch_thread_context(self, message: IncomingMessage) -> list[ContextMessage]:
        original = self._pending.get(message.message_id)
        if original is None or not isinstance(original.channel, discord.Thread):
            return []
        try:
            history = [m async for m in original.channel.history(limit=_CONTEXT_MESSAGES, before=original)]
        except Exception as exc:  # the answer goes ahead without the context
            log.warning("discord: could not read the thread for context (%s)", type(exc).__name__)
            return []
        return [
            ContextMessage(m.author.display_name, m.content, is_bot=m.author.bot)
            for m in reversed(history)
            if m.type in _SPOKEN_TYPES and m.content
        ]

    # --- /claude ----------------------------------------------------------

    def _command_group(self) -> app_commands.Group:
        group = app_commands.Group(name="claude", description="Claude in this server")
        adapter = self

        @group.command(name="help", description="What /claude can do")
        async def help_(interaction: discord.Interaction) -> None:
            await adapter._run(interaction, "help")

        @group.command(name="show", description="This channel's model and system prompt")
        async def show(interaction: discord.Interaction) -> None:
            await adapter._run(interaction, "show")

        @group.command(name="model", description="Choose this channel's model (Manage Server)")
        @app_commands.describe(model_id="a model id, e.g. claude-sonnet-5-5")
        async def model(interaction: discord.Interaction, model_id: str) -> None:
            await adapter._run(interaction, "model", model_id)

        @model.autocomplete("model_id")
        async def model_choices(interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
            known = await adapter._sink.model_choices() if adapter._sink is not None else []
            matching = [m for m in known if typed.lower() in m.lower()]
            return [app_commands.Choice(name=m, value=m) for m in matching[:25]]

        @group.command(name="system", description="Set this channel's system prompt (Manage Server)")
        @app_commands.describe(prompt="the system prompt")
        async def system(interaction: discord.Interaction, prompt: str) -> None:
            await adapter._run(interaction, "system", prompt)

        @group.command(name="reset", description="Back to the default model and prompt (Manage Server)")
        async def reset(interaction: discord.Interaction) -> None:
            await adapter._run(interaction, "reset")

        @group.command(name="usage", description="Turns, tokens and cost here, last 30 days (Manage Server)")
        async def usage(interaction: discord.Interaction) -> None:
            await adapter._run(interaction, "usage")

        @group.command(name="new", description="In a DM: start a fresh conversation")
        async def new(interaction: discord.Interaction) -> None:
            await adapter._run(interaction, "new")

        return group

    async def _run(self, interaction: discord.Interaction, name: str, argument: str = "") -> None:
        """Defer at once (the answer may take longer than Discord's 3 s); the core answers
        in the background."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        invocation = self.command_invocation(interaction, f"{name} {argument}".strip())
        self.tasks.spawn(self._command(interaction, invocation))

    async def _command(self, interaction: discord.Interaction, invocation: CommandInvocation) -> None:
        self._interactions[id(invocation)] = interaction
        try:
            if self._sink is not None:
                await self._sink.on_command(self, invocation)
        finally:
            self._interactions.pop(id(invocation), None)

    def command_invocation(self, interaction: discord.Interaction, text: str) -> CommandInvocation:
        channel: Any = interaction.channel
        user = interaction.user
        actor = Actor(PLATFORM, str(user.id), user.display_name, is_bot=user.bot)
        if interaction.guild_id is None:
            key = ThreadKey(PLATFORM, DM_WORKSPACE, str(interaction.channel_id), str(interaction.channel_id))
            return CommandInvocation(key.channel, actor, text, thread=key, is_direct=True)
        channel_id = channel.parent_id if isinstance(channel, discord.Thread) else interaction.channel_id
        return CommandInvocation(ChannelKey(PLATFORM, str(interaction.guild_id), str(channel_id)), actor, text)

    async def answer_command(self, invocation: CommandInvocation, text: str) -> None:
        interaction = self._interactions.get(id(invocation))
        if interaction is None:
            log.warning("discord: no interaction for a command answer")
            return
        parts = split_all(text, MESSAGE_LIMIT) or ["(no answer)"]
        await interaction.edit_original_response(content=parts[0], allowed_mentions=NO_MENTIONS)
        for part in parts[1:]:
            await interaction.followup.send(part, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def is_admin(self, actor: Actor, channel: ChannelKey) -> bool:
        """Manage Server or Administrator, from the invoking interaction's resolved permissions
        (checked on every call: server admins can override a command's default permissions)."""
        for interaction in self._interactions.values():
            same_server = interaction.guild_id is not None and str(interaction.guild_id) == channel.workspace_id
            if same_server and str(interaction.user.id) == actor.user_id:
                permissions = interaction.permissions  # Manage Server is server-wide, not per channel
                return permissions.manage_guild or permissions.administrator
        return False


class _RememberingReply:
    """Typing until the first text; in reply mode, remembers our answer's messages so a
    reply to them continues the conversation."""

    def __init__(self, reply: DiscordReply, adapter: DiscordAdapter, thread: ThreadKey, *, reply_mode: bool) -> None:
        self._reply = reply
        self._adapter = adapter
        self._thread = thread
        self._reply_mode = reply_mode

    def start_typing(self) -> None:
        self._reply.start_typing()

    async def append(self, delta: str) -> None:
        await self._reply.append(delta)

    async def finish(self, text: str) -> None:
        await self._reply.finish(text)
        if self._reply_mode:
            self._adapter.remember_reply(self._reply.sent, self._thread)


def _thread_name(text: str) -> str:
    words = " ".join(text.split())
    return (words[:90] + "…") if len(words) > 90 else (words or "Claude")
