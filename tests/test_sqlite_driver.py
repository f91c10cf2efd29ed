"""SQLite's driver (bot/store/sqlite_driver.py): what SQLAlchemy gets is what aiosqlite gives,
for one trip to the connection's thread per statement instead of three or four."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.db import create_engine
from bot.store.sqlite_driver import OneTripConnection

things = Table("things", MetaData(), Column("id", Integer, primary_key=True), Column("name", String, unique=True))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/driver.db")
    async with engine.begin() as conn:
        await conn.run_sync(things.metadata.create_all)
    yield engine
    await engine.dispose()


class Trips:
    """Counts the connection's crossings to its thread (aiosqlite's one way in)."""

    def __init__(self, driver: OneTripConnection) -> None:
        self.count = 0
        self._execute = driver._execute
        driver._execute = self.execute  # type: ignore[method-assign]

    async def execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return await self._execute(fn, *args, **kwargs)


async def trips_of(conn: AsyncConnection) -> Trips:
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, OneTripConnection)
    return Trips(driver)


async def test_a_statement_and_its_rows_take_one_trip_and_a_read_gives_its_connection_back_without_one(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(things), [{"name": "a"}, {"name": "b"}])
    async with engine.connect() as conn:
        trips = await trips_of(conn)
        rows = (await conn.execute(select(things.c.name).order_by(things.c.id))).all()
        assert [r.name for r in rows] == ["a", "b"]
        assert trips.count == 1
    assert trips.count == 1, "nothing was written: no rollback to send"


async def test_writes_commit_once_and_report_what_they_did(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        trips = await trips_of(conn)
        inserted = await conn.execute(insert(things).values(name="x"))
        assert inserted.inserted_primary_key == (1,)
        changed = await conn.execute(update(things).values(name="y").where(things.c.name == "x"))
        assert changed.rowcount == 1
    assert trips.count == 3, "two statements and the commit"
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.name))).scalar_one() == "y"


async def test_a_failed_write_raises_as_sqlalchemy_raises_it_and_leaves_nothing(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(things).values(name="taken"))
    with pytest.raises(exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(things).values(name="other"))
            await conn.execute(insert(things).values(name="taken"))
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.name))).scalars().all() == ["taken"], "rolled back"


async def test_a_write_whose_caller_was_cancelled_is_still_rolled_back_when_its_connection_is_returned(
    engine: AsyncEngine,
) -> None:
    """The statement goes on in the connection's thread after its caller is cancelled (a
    shutdown, a Stop), maybe before sqlite3 has begun its transaction, when no rollback is sent
    for a connection with none open: the connection must not go back to the pool with that
    transaction (SQLAlchemy closes it instead)."""
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        busy = asyncio.create_task(driver._execute(time.sleep, 0.3))  # the thread is busy: the insert waits
        writing = asyncio.create_task(conn.execute(insert(things).values(name="cut")))
        await asyncio.sleep(0.05)
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
    await busy
    async with engine.connect() as conn:
        assert (await conn.execute(select(things.c.name))).scalars().all() == [], "rolled back, not kept open"
