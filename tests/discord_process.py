"""`bot serve` as a process against the fake Discord (REST and gateway) and the fake
Anthropic API, which run in the test's event loop: what an operator deploys, over the
real protocol end to end."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.anthropic_server import FakeAnthropic
from fakes.discord_gateway import FakeGateway
from fakes.discord_server import (
    FakeDiscord,
    FakeMessage,
    guild_payload,
    interaction_payload,
    text_channel,
    user_payload,
)
from tests.conftest import API_KEY
from tests.processes import ServeProcess, eventually, free_port, serve

TOKEN = "discord-process-token-canary-7f3a"


@dataclass
class DiscordWorld:
    rest: FakeDiscord
    gateway: FakeGateway
    anthropic: FakeAnthropic
    env: dict[str, str]
    cwd: Path
    guild_id: int
    channel: dict[str, Any]
    alice: dict[str, Any]
    processes: list[ServeProcess] = field(default_factory=list)

    @property
    def bot(self) -> dict[str, Any]:
        return self.rest.bot_user

    async def serve(self, *, wait_ready: bool = True, **env: str) -> ServeProcess:
        process = await serve({**self.env, "PORT": str(free_port()), **env}, self.cwd)
        self.processes.append(process)
        if wait_ready:
            await process.ready()
        return process

    async def mention(self, text: str, **extra: Any) -> dict[str, Any]:
        return await self.gateway.post(
            self.channel["id"],
            self.alice,
            f"<@{self.bot['id']}> {text}",
            guild_id=self.guild_id,
            mentions=[self.bot],
            **extra,
        )

    async def say(self, channel_id: Any, text: str, **extra: Any) -> dict[str, Any]:
        return await self.gateway.post(channel_id, self.alice, text, guild_id=self.guild_id, **extra)

    def bot_messages(self, channel_id: Any) -> list[FakeMessage]:
        return [m for m in self.rest.sent(int(channel_id)) if m.by_bot and m.type in (0, 19)]

    async def answers(
        self, channel_id: Any, count: int, process: ServeProcess, *, done: str = "</message>"
    ) -> list[str]:
        """The bot's messages in a channel once there are `count` and the last ends with `done`."""

        def ready() -> bool:
            sent = self.bot_messages(channel_id)
            return len(sent) >= count and sent[-1].content.endswith(done) and bool(sent[-1].content)

        await eventually(ready, f"{count} answers in {channel_id}", process)
        return [m.content for m in self.bot_messages(channel_id)]

    def command_payload(self, subcommand: str, **options: Any) -> dict[str, Any]:
        return interaction_payload(
            user=self.alice,
            application_id=self.rest.application_id,
            subcommand=subcommand,
            options=options or None,
            guild_id=self.guild_id,
            channel=self.channel,
        )


@asynccontextmanager
async def discord_world(
    tmp_path: Path, database_url: str, fake_anthropic: FakeAnthropic, **gateway_options: Any
) -> AsyncIterator[DiscordWorld]:
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    async with FakeDiscord(token=TOKEN, interaction_ack_timeout=None) as rest:
        async with FakeGateway(rest, **gateway_options) as gateway:
            guild_id = int(rest.bot_user["id"]) + 1
            alice = rest.add_user(user_payload(None, "alice", global_name="Alice"))
            channel = text_channel(None, "general", guild_id=guild_id)
            rest.add_guild(guild_payload(guild_id, owner_id=alice["id"], channels=[channel], bot_user=rest.bot_user))
            path = ":".join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
            env = {
                "PATH": path,
                "HOME": str(cwd),
                "LANG": "C.UTF-8",
                "ANTHROPIC_API_KEY": API_KEY,
                "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
                "DISCORD_TOKEN": TOKEN,
                "DISCORD_API_URL": rest.api_base,
                "DATABASE_URL": database_url,
                "HOST": "127.0.0.1",
                "LOG_LEVEL": "DEBUG",
            }
            world = DiscordWorld(rest, gateway, fake_anthropic, env, cwd, guild_id, channel, alice)
            try:
                yield world
            finally:
                for process in world.processes:
                    await process.stop()
    for process in world.processes:
        output = "\n".join(process.lines)
        assert API_KEY not in output, "the API key was logged"
        assert TOKEN not in output, "the Discord token was logged"
