"""The database: engine, write transactions and jobs one instance runs at a time.

All timestamps are UTC. On SQLite the service's own writes are serialized by one
in-process lock (SQLite has a single writer anyway, and waiting on a lock is
cheaper than retrying on "database is locked"); other processes are covered by
WAL mode and a busy timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import and_, bindparam, event, exc, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.config import sqlite_path
from bot.domain import ChannelKey, ThreadKey
from bot.locks import advisory_key
from bot.schema import conversations
from bot.store import sqlite_driver
from bot.store.writer_lock import FIRST, IN_TURN, WriterLock


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        # All connections stay open: an overflow connection is a new thread and file handle
        # each time a burst needs it (aiosqlite runs one thread per connection).
        engine = create_async_engine(
            url, pool_size=16, max_overflow=0, pool_timeout=60, module=sqlite_driver.dbapi()
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Hosting platforms put libpq's `sslmode` on their URLs; asyncpg calls it `ssl`.
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if "sslmode" in parsed.query:
        connect_args["ssl"] = parsed.query["sslmode"]
        parsed = parsed.difference_update_query(["sslmode"])
    # At most 30 connections per instance, as before; 20 of them kept open between bursts
    # (an overflow connection is a new TCP connection and login each time it is needed).
    return create_async_engine(
        parsed, pool_size=20, max_overflow=10, pool_timeout=60, pool_pre_ping=True, connect_args=connect_args
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def is_outage(error: BaseException) -> bool:
    """The database could not be reached or dropped the connection (as opposed to a query
    that is wrong): the same call may work in a moment."""
    if isinstance(error, OSError | TimeoutError | exc.TimeoutError | exc.InterfaceError):
        return True
    if isinstance(error, exc.DBAPIError) and (error.connection_invalidated or isinstance(error, exc.OperationalError)):
        return True
    cause = error.__cause__ or error.__context__
    return cause is not None and cause is not error and is_outage(cause)


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.insert = sqlite.insert if self.is_sqlite else postgresql.insert  # with ON CONFLICT
        self._sqlite_writer = WriterLock()  # intakes (acks wait for them) before other writes

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def write(self, *, first: bool = False) -> AsyncIterator[AsyncConnection]:
        """One write transaction (serialized in-process on SQLite; `first`: before the writes
        already waiting, for a write a platform's ack waits for)."""
        lock = self._sqlite_writer.hold(FIRST if first else IN_TURN) if self.is_sqlite else contextlib.nullcontext()
        async with lock, self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def exclusive(self, job: str) -> AsyncIterator[bool]:
        """Whether this instance may run `job` now: on PostgreSQL an advisory lock taken
        without waiting (another instance running it means False); SQLite has one process."""
        if self.is_sqlite:
            yield True
            return
        key = advisory_key(f"job:{job}")
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            mine = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar())
            try:
                yield mine
            finally:
                if mine:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))


def storable(text: str) -> str:
    """Text as both databases can hold it: PostgreSQL refuses NUL characters in text."""
    return text.replace("\x00", "\ufffd")


def thread_by_params(table: Any) -> Any:
    """`thread_filter` for statements built once, on any table keyed by thread: the thread
    comes as parameters (`thread_params`). (Named apart from the columns: an UPDATE reserves
    the column names for its SET clause.)"""
    return and_(
        table.c.platform == bindparam("in_platform"),
        table.c.workspace_id == bindparam("in_workspace"),
        table.c.channel_id == bindparam("in_channel"),
        table.c.thread_id == bindparam("in_thread"),
    )


THREAD_BY_PARAMS = thread_by_params(conversations)


def thread_params(thread: ThreadKey) -> dict[str, str]:
    return {
        "in_platform": thread.platform,
        "in_workspace": thread.workspace_id,
        "in_channel": thread.channel_id,
        "in_thread": thread.thread_id,
    }


def thread_filter(thread: ThreadKey) -> Any:
    return and_(
        conversations.c.platform == thread.platform,
        conversations.c.workspace_id == thread.workspace_id,
        conversations.c.channel_id == thread.channel_id,
        conversations.c.thread_id == thread.thread_id,
    )


def channel_filter(table: Any, channel: ChannelKey) -> tuple[Any, ...]:
    return (
        table.c.platform == channel.platform,
        table.c.workspace_id == channel.workspace_id,
        table.c.channel_id == channel.channel_id,
    )

