"""The Discord adapter with the real core: raw gateway payloads through discord.py's
own parsers in, the fake Discord REST API out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import discord

from adapters.discord import DiscordAdapter, DiscordConfig
from bot.app import Core
from fakes.discord_server import (
    FakeDiscord,
    component_payload,
    guild_payload,
    interaction_payload,
    message_payload,
    ready_payload,
    text_channel,
    thread_channel,
    user_payload,
)

MANAGE_GUILD = 1 << 5


@dataclass
class DiscordHarness:
    adapter: DiscordAdapter
    fake: FakeDiscord
    core: Core
    guild_id: int
    channel: dict[str, Any]
    alice: dict[str, Any]
    bob: dict[str, Any]

    @property
    def bot(self) -> dict[str, Any]:
        return self.fake.bot_user

    def feed(self, event: str, payload: dict[str, Any]) -> None:
        self.adapter.client._connection.parsers[event](payload)

    def say(
        self,
        content: str,
        *,
        author: dict[str, Any] | None = None,
        channel_id: Any = None,
        mention: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE from a person in the guild (mentioning the bot when `mention`)."""
        text = f"<@{self.bot['id']}> {content}" if mention else content
        payload = message_payload(
            channel_id or self.channel["id"],
            author or self.alice,
            text,
            guild_id=self.guild_id,
            mentions=[self.bot] if mention else [],
            **extra,
        )
        self.feed("MESSAGE_CREATE", payload)
        return payload

    def open_thread_event(self, thread_id: Any, name: str = "a thread") -> dict[str, Any]:
        payload = thread_channel(
            thread_id, name, guild_id=self.guild_id, parent_id=self.channel["id"], owner_id=self.alice["id"]
        )
        payload["newly_created"] = True
        self.feed("THREAD_CREATE", payload)
        return payload

    def command(
        self, subcommand: str, *, permissions: int = 0, user: dict[str, Any] | None = None, **options: Any
    ) -> str:
        payload = interaction_payload(
            user=user or self.alice,
            application_id=self.fake.application_id,
            subcommand=subcommand,
            options=options or None,
            guild_id=self.guild_id,
            channel=self.channel,
            permissions=permissions,
        )
        self.fake.register_interaction(payload)
        self.feed("INTERACTION_CREATE", payload)
        return str(payload["id"])

    def click(self, custom_id: str, message: dict[str, Any], *, user: dict[str, Any] | None = None) -> str:
        """Someone clicks the button `custom_id` of `message` (the fake's message data)."""
        channel = self.fake.channels.get(int(message["channel_id"])) or self.channel
        payload = component_payload(
            user=user or self.alice,
            application_id=self.fake.application_id,
            custom_id=custom_id,
            message=message,
            guild_id=self.guild_id,
            channel=channel,
        )
        self.fake.register_interaction(payload)
        self.feed("INTERACTION_CREATE", payload)
        return str(payload["id"])

    async def answer_to(self, interaction_id: str, within: float = 20.0) -> str:
        """The command answer shown to the user (after the deferred "thinking…")."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            response = self.fake.original_response(interaction_id)
            if response is not None and response.content:
                await self.settle()
                return response.content
            await asyncio.sleep(0.02)
        raise AssertionError("the command was not answered")

    async def settle(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        await asyncio.sleep(0.05)
        await asyncio.wait_for(settled(self.core), timeout=max(0.0, deadline - time.monotonic()))


async def settled(core: Core) -> None:
    """discord.py's event tasks (each hands a message or command to the core) are done,
    and so is the work they gave the core."""
    while True:
        events = [t for t in asyncio.all_tasks() if t.get_name().startswith("discord.py: ") and not t.done()]
        if not events and not len(core.service.tasks):
            return
        await asyncio.gather(*events, return_exceptions=True)
        await core.service.tasks.idle()


@asynccontextmanager
async def discord_service(core: Core, **config: Any) -> AsyncIterator[DiscordHarness]:
    previous_base = discord.http.Route.BASE
    async with FakeDiscord() as fake:
        adapter = DiscordAdapter(DiscordConfig(token="fake-token", api_url=fake.api_base, **config))
        try:
            await adapter.log_in(core.service)
            guild_id = int(discord.utils.time_snowflake(discord.utils.utcnow()))
            alice = user_payload(None, "alice", global_name="Alice")
            bob = user_payload(None, "bob", global_name="Bob")
            channel = text_channel(None, "general", guild_id=guild_id)
            guild = guild_payload(guild_id, owner_id=alice["id"], channels=[channel], bot_user=fake.bot_user)
            fake.add_guild(guild)
            harness = DiscordHarness(adapter, fake, core, guild_id, channel, alice, bob)
            harness.feed("READY", ready_payload(fake.bot_user, fake.application_id, [guild_id]))
            harness.feed("GUILD_CREATE", guild)
            yield harness
        finally:
            await adapter.stop_intake()
            await core.service.drain()
            await adapter.close()
            discord.http.Route.BASE = previous_base
