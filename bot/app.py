"""Composition: build every part from `Settings`, run them, shut them down in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import Adapter, ServesHttp
from bot import metrics, migrate
from bot.claude import ClaudeClient
from bot.commands import CommandService
from bot.conversation import ConversationService
from bot.locks import PostgresThreadLocks, ThreadLocks
from bot.scheduler import Pruner
from bot.settings import Settings, SettingsError
from bot.store import ChannelSettings, Store, create_engine

log = logging.getLogger(__name__)


@dataclass
class Core:
    settings: Settings
    store: Store
    claude: ClaudeClient
    service: ConversationService

    async def close(self) -> None:
        await self.service.locks.close()
        await self.claude.close()
        await self.store.close()


async def open_core(settings: Settings) -> Core:
    """Database (schema checked), Claude client and the conversation service."""
    api_key = settings.require_anthropic_key().get_secret_value()
    engine = create_engine(settings.database_url)
    await ensure_schema(engine)
    store = Store(
        engine,
        ChannelSettings(settings.default_model, settings.default_system_prompt, settings.max_tokens),
    )
    claude = ClaudeClient(
        api_key,
        base_url=settings.anthropic_base_url,
        timeout_seconds=settings.claude_timeout_seconds,
        max_retry_wait_seconds=settings.max_retry_wait_seconds,
    )
    commands = CommandService(store, claude.catalog, settings.admin_user_ids)
    locks = PostgresThreadLocks(engine) if engine.dialect.name == "postgresql" else ThreadLocks()
    service = ConversationService(
        store, claude, commands, max_concurrent_claude_calls=settings.max_concurrent_claude_calls, locks=locks
    )
    return Core(settings, store, claude, service)


async def ensure_schema(engine: AsyncEngine) -> None:
    """SQLite is migrated in place (one file, one process); PostgreSQL is migrated by
    the release phase (`bot migrate`), so a stale schema there stops start-up."""
    if await migrate.is_current(engine):
        return
    if engine.dialect.name == "sqlite":
        await migrate.upgrade(engine)
        return
    raise SettingsError("the database schema is out of date: run `bot migrate` first")


def platform_adapters(settings: Settings) -> list[Adapter]:
    """Every platform adapter whose credentials are set."""
    adapters: list[Adapter] = []
    if settings.slack_bot_token is not None:
        from adapters.slack import SlackAdapter, slack_config

        adapters.append(SlackAdapter(slack_config(settings)))
    if settings.discord_token is not None:
        from adapters.discord import DiscordAdapter, discord_config

        adapters.append(DiscordAdapter(discord_config(settings)))
    return adapters


def web_app(core: Core, adapters: list[Adapter]) -> web.Application:
    """The one HTTP server: `/healthz` and whatever routes the adapters serve."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    for adapter in adapters:
        if isinstance(adapter, ServesHttp):
            app.router.add_routes(adapter.routes())

    async def healthz(_request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(core.store.ping(), timeout=5)
        except Exception as exc:  # any failure means "not healthy", said without details
            log.warning("health check failed: %s", type(exc).__name__)
            return web.json_response({"status": "unavailable", "database": "down"}, status=503)
        return web.json_response({"status": "ok"})

    async def prometheus(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", prometheus)
    return app


@dataclass
class RunningService:
    core: Core
    adapters: list[Adapter]
    port: int


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[RunningService]:
    """Everything `bot serve` runs, started in order and stopped in reverse."""
    adapters = platform_adapters(settings)
    core = await open_core(settings)
    pruner = Pruner(core.store, settings.thread_ttl_days, settings.prune_interval_minutes)
    runner = web.AppRunner(web_app(core, adapters), handle_signals=False, access_log=None)
    started: list[Adapter] = []
    try:
        await runner.setup()
        for adapter in adapters:  # before the port opens: events need a started adapter
            await adapter.start(core.service)
            started.append(adapter)
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        pruner.start()
        if not adapters:
            log.warning(
                "no platform credentials set: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or "
                "SLACK_APP_TOKEN) for Slack, DISCORD_TOKEN for Discord. `bot chat` works without them."
            )
        port = int(runner.addresses[0][1])
        log.info("serving on %s:%s", settings.host, port)
        yield RunningService(core, started, port)
    finally:
        await runner.cleanup()  # no new deliveries; then let the adapters finish what they started
        for adapter in reversed(started):
            await adapter.stop()
        pruner.stop()
        await core.close()


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_service(settings):
        await stop.wait()
        log.info("shutting down")
