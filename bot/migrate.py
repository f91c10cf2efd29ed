"""Schema migrations (Alembic), applied through the service's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from bot.errors import StartupError

MIGRATIONS_DIR = Path(migrations.__file__).parent


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _is_current(connection: Connection) -> bool:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    return MigrationContext.configure(connection).get_current_revision() == head


def _unknown_revision(connection: Connection) -> str | None:
    """The database's revision when this code does not know it (a newer release migrated it)."""
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return None
    known = {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}
    return None if current in known else current


async def refuse_newer_schema(engine: AsyncEngine) -> None:
    """Stop with one line when a newer release has migrated the database past this code:
    this code cannot know what the newer schema means, and must not try to migrate it."""
    async with engine.connect() as conn:
        newer = await conn.run_sync(_unknown_revision)
    if newer is not None:
        raise StartupError(
            f"the database schema is at revision {newer}, newer than this release knows "
            f"(its newest is {ScriptDirectory.from_config(_config()).get_current_head()}): "
            "run the release that migrated it, or a newer one"
        )


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision`, the newest by default (a no-op when it is there).

    The connection comes in outside a transaction: Alembic runs each revision in one of its
    own, so a revision may step out of it (PostgreSQL's CREATE INDEX CONCURRENTLY)."""
    await refuse_newer_schema(engine)
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade, revision)
        await conn.commit()


async def is_current(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await conn.run_sync(_is_current)
