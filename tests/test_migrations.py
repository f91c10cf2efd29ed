"""Rolling upgrades: migrations that keep the service writing, and an older release that
finds the database migrated past it and says so."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import migrate
from bot.app import open_core
from bot.config import Config
from bot.errors import StartupError
from bot.store import create_engine
from tests.conftest import POSTGRES_URL
from tests.processes import free_port
from tests.test_cli import run_bot, scratch_env

NEW_INDEXES = ("ix_messages_created_at", "ix_messages_platform_message")
FUTURE = "0099_from_a_newer_release"


@contextlib.asynccontextmanager
async def engine_for(config: Config) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(config.database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def stamped(engine: AsyncEngine, revision: str) -> AsyncIterator[None]:
    """The database says it is at `revision`, as a newer release left it (put back afterwards)."""
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        head = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": head})


async def test_an_older_release_refuses_a_newer_schema_in_one_line(config: Config) -> None:
    async with engine_for(config) as engine, stamped(engine, FUTURE):
        with pytest.raises(StartupError) as refused:
            await open_core(config)
        with pytest.raises(StartupError) as refused_migrating:
            await migrate.upgrade(engine)
        async with engine.connect() as conn:  # nothing was tried on it
            assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one() == FUTURE
    message = str(refused.value)
    assert "\n" not in message and FUTURE in message and "newer" in message
    assert str(refused_migrating.value) == message


async def test_bot_migrate_and_serve_from_an_older_release_say_so_and_exit(
    config: Config, database_url: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = scratch_env(
        workdir,
        ANTHROPIC_API_KEY="sk-ant-test-canary-0123456789",
        DATABASE_URL=database_url,
        HOST="127.0.0.1",
        PORT=str(free_port()),  # (should it start after all)
    )
    async with engine_for(config) as engine, stamped(engine, FUTURE):
        for command in ("migrate", "serve"):
            result = await run_bot(command, env=env, cwd=workdir)
            line = result.assert_error(command, FUTURE, "newer than this release")
            assert result.returncode == 2, line


needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL (TEST_DATABASE_URL)")


async def _indexes(engine: AsyncEngine) -> dict[str, bool]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = ANY(:names)"
            ),
            {"names": list(NEW_INDEXES)},
        )
        return {name: bool(valid) for name, valid in rows}


@needs_postgres
async def test_indexes_on_messages_are_built_while_replies_keep_writing(config: Config) -> None:
    """A transaction that wrote to `messages` is still open (an answer being stored) when the
    migration starts; a plain CREATE INDEX would queue behind it and every later write behind
    the index build. Built concurrently, the next write goes through while the build waits."""
    async with engine_for(config) as engine:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:  # back to the revision before the indexes
            head = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            for name in NEW_INDEXES:
                await conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
            await conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
            conversation = (
                await conn.execute(
                    text(
                        "INSERT INTO conversations (platform, workspace_id, channel_id, thread_id, trim_noticed, "
                        "created_at, last_activity_at) VALUES ('slack', 'T1', 'C1', '1.1', false, now(), now()) "
                        "RETURNING id"
                    )
                )
            ).scalar_one()
        insert = text(
            "INSERT INTO messages (conversation_id, role, content, created_at, rank, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, attempts) VALUES (:c, 'user', 'hi', now(), 0, 0, 0, 0, 0, 1)"
        )

        async with engine.connect() as answering:
            await answering.begin()
            await answering.execute(insert, {"c": conversation})  # not committed yet
            migration = asyncio.create_task(migrate.upgrade(engine, "0004"))  # that revision alone
            await _until_index_build_is_waiting(engine, migration)
            async with engine.begin() as writer:
                # Only a guard: a write queued behind a blocking index build waits for ever.
                await writer.execute(text("SET LOCAL lock_timeout = '20s'"))
                await writer.execute(insert, {"c": conversation})
            assert not migration.done(), "the build was still waiting for the open transaction"
            await answering.commit()
        await migration
        async with engine.begin() as conn:  # the later revisions' work was never undone
            await conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        assert await _indexes(engine) == dict.fromkeys(NEW_INDEXES, True)


async def _until_index_build_is_waiting(engine: AsyncEngine, migration: asyncio.Task[None]) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND query ILIKE 'CREATE INDEX%' AND wait_event_type IS NOT NULL"
    )
    for _ in range(1200):  # a failure guard, not a speed requirement
        assert not migration.done(), "the migration ended without waiting for the open transaction"
        async with engine.connect() as conn:
            if (await conn.execute(query)).scalar_one():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the index build never started")
