"""Fixtures: a real database (SQLite in a temp dir, or PostgreSQL when
TEST_DATABASE_URL is set), the fake Anthropic API over HTTP, and the core."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot import migrate
from bot.app import Core, open_core
from bot.config import Config, load_config
from bot.schema import metadata
from bot.store import create_engine
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform
from fakes.slack_server import FakeSlack
from fakes.tcp_proxy import CuttableProxy
from tests.discord_harness import DiscordHarness, discord_service
from tests.slack_harness import SlackHarness, slack_service

API_KEY = "sk-ant-test-canary-0123456789"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def _postgres_schema() -> Iterator[str | None]:
    """Migrate the PostgreSQL test database once per run (tests then empty the tables)."""
    if POSTGRES_URL is None:
        yield None
        return

    async def upgrade() -> None:
        engine = create_engine(load_config(database_url=POSTGRES_URL).database_url)
        await migrate.upgrade(engine)
        await engine.dispose()

    asyncio.run(upgrade())
    yield POSTGRES_URL


@pytest.fixture
async def database_url(tmp_path: Path, _postgres_schema: str | None) -> AsyncIterator[str]:
    if _postgres_schema is None:
        yield f"sqlite:///{tmp_path}/bot.db"
        return
    url = load_config(database_url=_postgres_schema).database_url
    engine = create_engine(url)
    async with engine.begin() as conn:
        names = ", ".join(table.name for table in metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()
    yield _postgres_schema


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def proxy(config: Config) -> AsyncIterator[CuttableProxy]:
    """The test database (PostgreSQL) reached through a proxy on 127.0.0.1 that a test cuts
    (every connection reset, new ones refused) and restores: an outage, as the service sees one."""
    url = make_url(config.database_url)
    async with CuttableProxy(url.host or "127.0.0.1", url.port or 5432) as cuttable:
        yield cuttable


@pytest.fixture
def config(database_url: str, fake_anthropic: FakeAnthropic) -> Config:
    return load_config(
        anthropic_api_key=API_KEY,
        anthropic_base_url=fake_anthropic.base_url,
        database_url=database_url,
        default_model="claude-sonnet-5-5",
        max_retry_wait_seconds=2.0,
        # One test person sends many messages a minute; tests/test_spend.py turns the rates on.
        rate_user_per_minute=0,
        rate_channel_per_minute=0,
    )


@pytest.fixture
async def core(config: Config) -> AsyncIterator[Core]:
    opened = await open_core(config)
    yield opened
    await opened.close()


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def slack(config: Config, fake_slack: FakeSlack) -> AsyncIterator[SlackHarness]:
    """The whole service with Slack in HTTP mode (see tests/slack_harness.py)."""
    async with slack_service(config, fake_slack) as harness:
        yield harness


@pytest.fixture
async def discord_bot(core: Core) -> AsyncIterator[DiscordHarness]:
    """The core with the Discord adapter against the fake Discord (see tests/discord_harness.py)."""
    async with discord_service(core) as harness:
        yield harness


@pytest.fixture
def adapter() -> RecordingPlatform:
    return RecordingPlatform(admins={"ADMIN"})


CANARIES = (API_KEY, "xoxb-test-token", "xapp-test", "slack-signing-canary-7d1e2f", "fake-token")
_CHATTY_LOGGERS = ("bot", "adapters", "anthropic", "httpx2", "slack_bolt", "slack_sdk", "discord")


@pytest.fixture(autouse=True)
def secrets_stay_out_of_the_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test runs with the service's and the SDKs' loggers at DEBUG; no key, token
    or signing secret may appear in any record (before any redaction)."""
    for name in _CHATTY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    leaked = [canary for canary in CANARIES if canary in caplog.text]
    assert not leaked, f"secrets in the logs: {leaked}"
