"""Alembic environment. `bot migrate` hands in a live connection; the plain
`alembic` command line gets one from DATABASE_URL."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bot.schema import metadata

config = context.config


def run_on(connection: Connection) -> None:
    # One transaction per revision: a revision with an autocommit block (a concurrent index
    # build) commits what came before it, so each revision must stand on its own.
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, transaction_per_migration=True
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_settings() -> None:
    from bot.config import load_config
    from bot.store import create_engine

    engine = create_engine(load_config().database_url)
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `bot migrate`")
elif (connection := config.attributes.get("connection")) is not None:
    run_on(connection)
else:
    asyncio.run(run_from_settings())
