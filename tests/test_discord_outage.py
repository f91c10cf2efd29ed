"""A database outage on Discord, which never delivers a message twice: a message that
cannot be stored is held and handed over again until the database is back, then answered
once; if the outage outlasts the retries, the person is told instead of left waiting.
PostgreSQL is reached through a proxy on 127.0.0.1 that the test cuts and restores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from bot.app import Core, open_core
from bot.config import Config
from bot.errors import NOT_STORED_NOTE
from fakes.anthropic_server import FakeAnthropic
from fakes.tcp_proxy import CuttableProxy
from tests.conftest import POSTGRES_URL
from tests.discord_harness import discord_service

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL (TEST_DATABASE_URL)")


@pytest.fixture
async def core_through_proxy(config: Config, proxy: CuttableProxy) -> AsyncIterator[Core]:
    url = make_url(config.database_url).set(port=proxy.port)
    core = await open_core(config.model_copy(update={"database_url": url.render_as_string(hide_password=False)}))
    try:
        yield core
    finally:
        await core.close()


async def test_a_message_sent_during_an_outage_is_answered_once_when_the_database_is_back(
    core_through_proxy: Core, proxy: CuttableProxy, fake_anthropic: FakeAnthropic
) -> None:
    async with discord_service(core_through_proxy, outage_retry_delays=(0.3,) * 20) as bot:
        proxy.cut()
        root = bot.say("are you there?", mention=True)
        await asyncio.sleep(0.5)  # the first hand-overs fail: the message is held
        assert bot.adapter.held.held == 1
        proxy.restore()
        await bot.settle()

        [thread] = bot.fake.threads
        assert thread.id == int(root["id"])
        assert bot.fake.texts(thread.id) == ['You said: <message from="Alice">are you there?</message>']
        assert len(fake_anthropic.message_requests) == 1


async def test_a_message_the_outage_outlasts_gets_a_clear_note_not_silence(
    core_through_proxy: Core, proxy: CuttableProxy, fake_anthropic: FakeAnthropic
) -> None:
    async with discord_service(core_through_proxy, outage_retry_delays=(0.05, 0.05)) as bot:
        proxy.cut()
        root = bot.say("are you there?", mention=True)
        await bot.settle()
        proxy.restore()

        assert bot.fake.texts(int(root["id"])) == [NOT_STORED_NOTE]
        assert fake_anthropic.message_requests == []
        assert bot.adapter.held.held == 0


async def test_a_message_deleted_while_held_through_an_outage_is_never_answered(
    core_through_proxy: Core, proxy: CuttableProxy, fake_anthropic: FakeAnthropic
) -> None:
    """Its deletion cannot be stored either (the database is down), but the message is still
    held here: it is dropped, so deleted means deleted also across an outage."""
    async with discord_service(core_through_proxy, outage_retry_delays=(0.3,) * 20) as bot:
        proxy.cut()
        root = bot.say("my password is hunter2", mention=True)
        await asyncio.sleep(0.5)
        assert bot.adapter.held.held == 1
        bot.feed(
            "MESSAGE_DELETE",
            {"id": root["id"], "channel_id": str(bot.channel["id"]), "guild_id": str(bot.guild_id)},
        )
        await asyncio.sleep(0.5)
        proxy.restore()
        await bot.settle()
        await asyncio.sleep(0.7)  # past the next hand-over
        await bot.settle()

        assert bot.adapter.held.held == 0
        assert fake_anthropic.message_requests == [], "the deleted message was not answered"
        assert bot.fake.threads == []
