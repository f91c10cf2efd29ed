"""The `bot` command: serve, migrate, chat, prune, export, erase."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from bot import migrate
from bot.app import ensure_schema, open_core, serve
from bot.claude import ClaudeClient
from bot.config import Config, database_secret, load_config, url_password
from bot.domain import CommandInvocation
from bot.errors import StartupError
from bot.files.service import Attachments
from bot.logs import configure_logging, redact
from bot.scheduler import prune_once
from bot.store import Store, create_engine
from bot.store.people import Person


def _secrets(config: Config) -> list[str]:
    values = [
        config.anthropic_api_key,
        config.slack_bot_token,
        config.slack_signing_secret,
        config.slack_app_token,
        config.discord_token,
    ]
    secrets = [v.get_secret_value() for v in values if v is not None]
    passwords = [database_secret(config.database_url), url_password(config.anthropic_base_url)]
    return [*secrets, *(p for p in passwords if p)]


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
        result = await prune_once(Store(engine), config.thread_ttl_days, config.retention_days)
        print(
            f"pruned {result.conversations} conversations, {result.messages} messages, {result.events} event claims, "
            f"{result.expired} messages past RETENTION_DAYS"
        )
        print(await _delete_uploads(config, Store(engine)))
    finally:
        await engine.dispose()


def _person(args: argparse.Namespace) -> Person:
    try:
        return Person.parse(args.user)
    except ValueError as exc:
        raise StartupError(f"--user: {exc}") from None


async def _export(config: Config, args: argparse.Namespace) -> None:
    """One JSON object per line on stdout: their turns and the answers that answered only them."""
    person = _person(args)
    engine = create_engine(config.database_url)
    try:
        await ensure_schema(engine)
        async for turn in Store(engine).people.export(person):
            sys.stdout.write(json.dumps(turn.as_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    finally:
        await engine.dispose()


async def _erase(config: Config, args: argparse.Namespace) -> None:
    person = _person(args)
    engine = create_engine(config.database_url)
    try:
        await ensure_schema(engine)
        erased = await Store(engine).people.erase(person, operator=_operator())
        print(
            f"erased {person}: {erased.rows} rows ({erased.turns} turns, {erased.answers} answers, "
            f"{erased.context} thread context) in {erased.conversations} conversations"
        )
        print(await _delete_uploads(config, Store(engine)))
    finally:
        await engine.dispose()


async def _delete_uploads(config: Config, store: Store) -> str:
    """Delete at the Files API the uploaded files of the turns just deleted (and any left over)."""
    if config.anthropic_api_key is None:
        return "uploaded files: ANTHROPIC_API_KEY is not set; the service deletes them at its next pruning run"
    claude = ClaudeClient(config.anthropic_api_key.get_secret_value(), base_url=config.anthropic_base_url)
    try:
        deleted = await Attachments(store.attachments, claude.files, claude.catalog).sweep()
    except Exception as exc:  # the turns are gone already; the service retries at its next pruning run
        return f"uploaded files: not deleted now ({type(exc).__name__}); the service retries at its next pruning run"
    finally:
        await claude.close()
    return f"deleted {deleted} uploaded files at the Files API"


def _operator() -> str:
    """Who ran an erasure, for the audit log: the local account."""
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "local:operator"


NEEDS_CLAUDE = {"serve", "chat"}
NEEDS_USER = {"export", "erase"}

COMMANDS: dict[str, tuple[Callable[..., Coroutine[Any, Any, None]], str]] = {
    "serve": (serve, "run the service: platform adapters, /healthz, the pruning scheduler"),
    "migrate": (_migrate, "create or upgrade the database schema"),
    "chat": (_chat, "talk to Claude in the terminal (reads lines from stdin)"),
    "prune": (_prune, "delete stale conversations and old event claims once"),
    "export": (_export, "write one person's stored turns as JSON lines (--user PLATFORM:ID)"),
    "erase": (_erase, "delete one person's stored turns everywhere, audited (--user PLATFORM:ID)"),
}


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (less CPU per callback, socket and timer than asyncio's
    own loop, which a burst of deliveries and answers is made of); None: asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_on_event_loop(work: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(work)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bot", description="Claude in Slack and Discord.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name in NEEDS_USER:
            command.add_argument("--user", required=True, metavar="PLATFORM:ID", help="e.g. slack:U123 or discord:456")
    args = parser.parse_args(argv)
    secrets: list[str] = []  # what the printed errors mask, besides token shapes and URL passwords

    def fail(text: str) -> None:
        print(redact(f"bot {args.command}: {text}", secrets), file=sys.stderr)

    try:
        config = load_config()
        secrets = _secrets(config)
        if args.command in NEEDS_CLAUDE:
            config.require_anthropic_key()
        level = config.log_level if args.command != "chat" else "WARNING"
        configure_logging(level, secrets, config.log_format)
        run = COMMANDS[args.command][0]
        run_on_event_loop(run(config, args) if args.command in NEEDS_USER else run(config))
    except StartupError as exc:
        fail(str(exc))
        return 2
    except (SQLAlchemyError, asyncpg.PostgresError) as exc:
        # The database refused us: say so in one line, without the URL.
        fail(f"cannot use the database ({type(exc).__name__}: {_first_line(exc)})")
        return 1
    except OSError as exc:  # an unreachable database or platform, or a port already in use
        fail(f"cannot start ({type(exc).__name__}: {_first_line(exc)})")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: the traceback helps, with the secrets masked as in the logs
        fail(f"failed unexpectedly\n{traceback.format_exc()}")
        return 1
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"


if __name__ == "__main__":
    sys.exit(main())
