"""Composition: build every part from `Config`, run them, shut them down in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import metrics, migrate
from bot.budgets import BudgetDefaults, usd_to_micros
from bot.channel_settings import ChannelSettingsResolver
from bot.claude import ClaudeClient, tracing_configured
from bot.commands import CommandService
from bot.config import Config
from bot.conversation import ConversationService
from bot.domain import ChannelSettings, IncomingMessage
from bot.errors import StartupError
from bot.files.service import Attachments
from bot.health import DatabaseHealth
from bot.locks import LeasedThreadLocks, ThreadLocks
from bot.ports import MessageSurface, Platform, ServesHttp
from bot.pricing import PriceFileError, load_price_table
from bot.recovery import Recovery, RecoveryPolicy
from bot.running import RunningAnswers
from bot.scheduler import BackgroundJobs, prune_once
from bot.spend import SpendGuard, SpendRules
from bot.store import Store, create_engine

if TYPE_CHECKING:
    from adapters.discord import DiscordConfig
    from adapters.slack import SlackConfig, SlackOAuthConfig

log = logging.getLogger(__name__)
LISTEN_BACKLOG = 4096  # connections waiting to be accepted (the kernel caps it at net.core.somaxconn)


@dataclass
class Core:
    config: Config
    store: Store
    claude: ClaudeClient
    service: ConversationService

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # our turns are settled; anything left is an orphan
            await self.store.instances.forget(self.service.instance_id)
        await self.claude.close()
        await self.store.close()


async def open_core(config: Config) -> Core:
    """Database (schema checked), Claude client and the conversation service."""
    api_key = config.require_anthropic_key().get_secret_value()
    engine = create_engine(config.database_url)
    await ensure_schema(engine)
    store = Store(engine)
    claude = ClaudeClient(
        api_key,
        base_url=config.anthropic_base_url,
        timeout_seconds=config.claude_timeout_seconds,
        max_turn_seconds=config.max_turn_seconds,
        max_retry_wait_seconds=config.max_retry_wait_seconds,
        traces=tracing_configured(),
    )
    defaults = ChannelSettings(
        config.default_model, config.default_system_prompt, config.max_tokens, web="web" in config.default_tools
    )
    settings = ChannelSettingsResolver(store.channels, defaults)
    files = Attachments(store.attachments, claude.files, claude.catalog)
    spend = SpendGuard(store.spend, spend_rules(config))
    commands = CommandService(
        store, settings, claude.catalog, config.admin_user_ids, spend=spend, after_forget=files.sweep
    )
    instance_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    wait = config.thread_busy_wait_seconds
    locks = (  # several instances share PostgreSQL; SQLite has one writing process
        LeasedThreadLocks(
            store.turns, instance_id, dead_after_seconds=config.instance_dead_after_seconds, max_wait_seconds=wait
        )
        if engine.dialect.name == "postgresql"
        else ThreadLocks(max_wait_seconds=wait)
    )
    running = (  # a Stop may reach any instance: the answers being written are shared there
        RunningAnswers(store.stops, dead_after_seconds=config.instance_dead_after_seconds)
        if engine.dialect.name == "postgresql"
        else RunningAnswers()
    )
    service = ConversationService(
        store,
        claude,
        commands,
        settings,
        max_concurrent_claude_calls=config.max_concurrent_claude_calls,
        locks=locks,
        instance_id=instance_id,
        max_background_tasks=config.max_background_tasks,
        files=files,
        web_max_uses=config.web_max_uses,
        spend=spend,
        running=running,
    )
    await store.instances.heartbeat(instance_id)  # alive before the first accept (the timer keeps it so)
    return Core(config, store, claude, service)


def spend_rules(config: Config) -> SpendRules:
    """Prices (PRICES_FILE over the built-in table), default limits and rates."""
    try:
        prices = load_price_table(config.prices_file)
    except PriceFileError as error:
        raise StartupError(f"PRICES_FILE: {error}") from None
    defaults = BudgetDefaults(
        usd_to_micros(config.budget_channel_daily_usd),
        usd_to_micros(config.budget_user_daily_usd),
        usd_to_micros(config.budget_workspace_monthly_usd),
    )
    return SpendRules(
        prices,
        defaults,
        rate_user_per_minute=config.rate_user_per_minute,
        rate_channel_per_minute=config.rate_channel_per_minute,
        hold_seconds=config.max_turn_seconds + config.thread_busy_wait_seconds,
        web_max_uses=config.web_max_uses,
    )


async def ensure_schema(engine: AsyncEngine) -> None:
    """SQLite is migrated in place (one file, one process); PostgreSQL is migrated by
    the release phase (`bot migrate`), so a stale schema there stops start-up. A schema
    newer than this code (a newer release migrated it) stops start-up on both."""
    if await migrate.is_current(engine):
        return
    await migrate.refuse_newer_schema(engine)
    if engine.dialect.name == "sqlite":
        await migrate.upgrade(engine)
        return
    raise StartupError("the database schema is out of date: run `bot migrate` first")


def platforms(config: Config) -> list[Platform]:
    """Every platform whose credentials are set (adapters are imported only when used)."""
    found: list[Platform] = []
    if config.slack_bot_token is not None or config.slack_oauth:
        from adapters.slack import SlackAdapter

        found.append(SlackAdapter(slack_config(config)))
    if config.discord_token is not None:
        from adapters.discord import DiscordAdapter

        found.append(DiscordAdapter(discord_config(config)))
    return found


def slack_config(config: Config) -> SlackConfig:
    """The Slack part of the configuration; HTTP mode needs the signing secret."""
    from adapters.slack import DEFAULT_PROMPTS, SlackConfig

    token = config.slack_bot_token.get_secret_value() if config.slack_bot_token else ""
    app_token = config.slack_app_token.get_secret_value() if config.slack_app_token else None
    secret = config.slack_signing_secret.get_secret_value() if config.slack_signing_secret else None
    if not app_token and not secret:
        raise StartupError(
            "SLACK_SIGNING_SECRET is not set: HTTP mode needs it (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    prompts: tuple[dict[str, str], ...] = DEFAULT_PROMPTS
    if config.slack_suggested_prompts is not None:
        texts = [p.strip() for p in config.slack_suggested_prompts.split("|") if p.strip()]
        prompts = tuple({"title": text[:75], "message": text} for text in texts)
    return SlackConfig(
        bot_token=token,
        signing_secret=secret,
        app_token=app_token,
        api_url=config.slack_api_url,
        command=config.slack_command,
        suggested_prompts=prompts,
        oauth=slack_oauth_config(config) if config.slack_oauth else None,
    )


def slack_oauth_config(config: Config) -> SlackOAuthConfig:
    """Many workspaces: HTTP mode, and ENCRYPTION_KEY for the tokens kept in the database."""
    from adapters.slack import SlackOAuthConfig, check_encryption_key

    if config.slack_app_token is not None:
        raise StartupError("SLACK_CLIENT_ID (installs in many workspaces) works in HTTP mode: unset SLACK_APP_TOKEN")
    key = config.encryption_key.get_secret_value() if config.encryption_key else ""
    if not key:
        raise StartupError("ENCRYPTION_KEY is not set: Slack installs keep their tokens encrypted with it")
    problem = check_encryption_key(key)
    if problem:
        raise StartupError(problem)
    assert config.slack_client_id and config.slack_client_secret and config.slack_state_secret  # (slack_oauth)
    return SlackOAuthConfig(
        client_id=config.slack_client_id,
        client_secret=config.slack_client_secret.get_secret_value(),
        state_secret=config.slack_state_secret.get_secret_value(),
        encryption_key=key,
        engine=create_engine(config.database_url),
    )


def discord_config(config: Config) -> DiscordConfig:
    from adapters.discord import DiscordConfig

    return DiscordConfig(
        token=config.discord_token.get_secret_value() if config.discord_token else "",
        api_url=config.discord_api_url,
        guild_ids=tuple(config.discord_guild_ids),
        shard_count=config.discord_shard_count,
        shard_ids=tuple(config.discord_shard_ids),
    )


def web_app(connected: list[Platform], health: DatabaseHealth) -> web.Application:
    """The public HTTP server: `/healthz` and whatever routes the platforms serve."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    for platform in connected:
        if isinstance(platform, ServesHttp):
            app.router.add_routes(platform.routes())

    async def healthz(_request: web.Request) -> web.Response:
        if not await health.is_healthy():
            return web.json_response({"status": "unavailable", "database": "down"}, status=503)
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)
    return app


def metrics_app() -> web.Application:
    """`/metrics` on a port of its own (`METRICS_PORT`), so the events port need not expose it."""

    async def prometheus(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", prometheus)
    return app


def background_jobs(core: Core, connected: list[Platform]) -> BackgroundJobs:
    """Pruning; saying this instance is alive; answering what a dead instance left."""
    config, store, service = core.config, core.store, core.service
    by_name = {platform.name: platform for platform in connected}

    async def surface_for(message: IncomingMessage) -> MessageSurface | None:
        platform = by_name.get(message.thread.platform)
        return await platform.surface_for_stored(message) if platform is not None else None

    dead_after = timedelta(seconds=config.instance_dead_after_seconds)
    recovery = Recovery(
        store,
        service,
        surface_for,
        RecoveryPolicy(
            dead_after=dead_after,
            settle_after=dead_after,
            window=timedelta(minutes=config.recovery_window_minutes),
        ),
    )
    jobs = BackgroundJobs()
    async def prune() -> None:
        await prune_once(store, config.thread_ttl_days, config.retention_days, config.uninstall_grace_days)
        await service.files.sweep()  # the uploads of what was pruned, forgotten or erased

    jobs.every(config.prune_interval_minutes * 60, prune, "prune")
    jobs.every(config.instance_dead_after_seconds / 3, partial(store.instances.heartbeat, service.instance_id), "alive")
    jobs.every(config.recovery_interval_seconds, recovery.run_once, "recovery", now=True)
    return jobs


@dataclass
class RunningService:
    core: Core
    platforms: list[Platform]
    port: int
    health: DatabaseHealth
    metrics_port: int | None = None  # None: `/metrics` is not served


@contextlib.asynccontextmanager
async def running_service(config: Config) -> AsyncIterator[RunningService]:
    """Everything `bot serve` runs, started in order and stopped in reverse.

    Shutdown: no new deliveries (HTTP server, then each platform's intake), then the
    core drains the answers under way, then the platforms and the core close."""
    connected = platforms(config)
    core = await open_core(config)
    jobs = background_jobs(core, connected)
    health = DatabaseHealth(core.store.db.ping)
    runner = web.AppRunner(web_app(connected, health), handle_signals=False, access_log=None)
    metrics_runner = web.AppRunner(metrics_app(), handle_signals=False, access_log=None)
    metrics_port: int | None = None
    started: list[Platform] = []
    try:
        await runner.setup()
        if config.metrics_port is not None:
            await metrics_runner.setup()
            await web.TCPSite(metrics_runner, config.host, config.metrics_port).start()
            metrics_port = int(metrics_runner.addresses[0][1])
            log.info("serving /metrics on %s:%s", config.host, metrics_port)
        for platform in connected:  # before the port opens: events need a started platform
            await platform.start(core.service)
            started.append(platform)
        # A burst opens a connection per delivery: the default backlog (128) drops the rest's SYNs.
        site = web.TCPSite(runner, config.host, config.port, backlog=LISTEN_BACKLOG)
        await site.start()
        jobs.start()
        if not connected:
            log.warning(
                "no platform credentials set: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or "
                "SLACK_APP_TOKEN) for Slack, DISCORD_TOKEN for Discord. `bot chat` works without them."
            )
        port = int(runner.addresses[0][1])
        log.info("serving on %s:%s", config.host, port)
        yield RunningService(core, started, port, health, metrics_port)
    finally:
        await runner.cleanup()
        await metrics_runner.cleanup()
        for platform in reversed(started):
            await platform.stop_intake()
        await core.service.drain(config.shutdown_grace_seconds)
        jobs.stop()
        for platform in reversed(started):
            await platform.close()
        await core.close()


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_service(config):
        await stop.wait()
        log.info("shutting down")
