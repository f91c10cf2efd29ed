"""The `bot` command: serve, migrate, chat, prune."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from bot import migrate
from bot.app import ensure_schema, open_core, serve
from bot.config import Config, database_secret, load_config
from bot.domain import CommandInvocation
from bot.errors import StartupError
from bot.logs import configure_logging
from bot.scheduler import prune_once
from bot.store import Store, create_engine


def _secrets(config: Config) -> list[str]:
    values = [
        config.anthropic_api_key,
        config.slack_bot_token,
        config.slack_signing_secret,
        config.slack_app_token,
        config.discord_token,
    ]
    secrets = [v.get_secret_value() for v in values if v is not None]
    password = database_secret(config.database_url)
    return [*secrets, password] if password else secrets


async def _migrate(config: Config) -> None:
    engine = create_engine(config.database_url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    print("database schema is up to date")


async def _chat(config: Config) -> None:
    from adapters.console import Console

    core = await open_core(config)
    console = Console()
    try:
        async for typed in console.typed():
            if isinstance(typed, CommandInvocation):
                await core.service.run_command(typed, console.surface)
            else:
                await core.service.handle(typed, console.surface)
    finally:
        await core.close()


async def _prune(config: Config) -> None:
    engine = create_engine(config.database_url)
    try:
        await ensure_schema(engine)
        result = await prune_once(Store(engine), config.thread_ttl_days)
        print(f"pruned {result.conversations} conversations, {result.messages} messages, {result.events} event claims")
    finally:
        await engine.dispose()


NEEDS_CLAUDE = {"serve", "chat"}

COMMANDS = {
    "serve": (serve, "run the service: platform adapters, /healthz, the pruning scheduler"),
    "migrate": (_migrate, "create or upgrade the database schema"),
    "chat": (_chat, "talk to Claude in the terminal (reads lines from stdin)"),
    "prune": (_prune, "delete stale conversations and old event claims once"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bot", description="Claude in Slack and Discord.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    try:
        config = load_config()
        if args.command in NEEDS_CLAUDE:
            config.require_anthropic_key()
        level = config.log_level if args.command != "chat" else "WARNING"
        configure_logging(level, _secrets(config), config.log_format)
        asyncio.run(COMMANDS[args.command][0](config))
    except StartupError as exc:
        print(f"bot {args.command}: {exc}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, asyncpg.PostgresError) as exc:
        # The database refused us: say so in one line, without the URL.
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        print(f"bot {args.command}: cannot use the database ({reason})", file=sys.stderr)
        return 1
    except OSError as exc:  # an unreachable database or platform, or a port already in use
        print(f"bot {args.command}: cannot start ({type(exc).__name__}: {_first_line(exc)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"


if __name__ == "__main__":
    sys.exit(main())
