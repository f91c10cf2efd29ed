"""One turn at a time per conversation.

In one process an asyncio lock per thread does it. Several instances on one
PostgreSQL also take an advisory lock keyed by the thread. All of an instance's
advisory locks live on one dedicated connection that is never inside a
transaction, so a long Claude call holds neither a transaction nor a connection
of its own; within the instance the asyncio lock already keeps one key from
being taken twice on that shared session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.domain import ThreadKey

log = logging.getLogger(__name__)

_POLL_START, _POLL_CAP = 0.01, 0.25  # seconds between tries while another instance holds a thread


class ThreadLocks:
    """One asyncio lock per conversation, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[ThreadKey, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, thread: ThreadKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(thread, (asyncio.Lock(), 0))
        self._locks[thread] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[thread]
            if users == 1:
                del self._locks[thread]
            else:
                self._locks[thread] = (lock, users - 1)

    async def close(self) -> None:
        return None


def advisory_key(name: ThreadKey | str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock (a thread, or a job's name)."""
    digest = hashlib.blake2b(str(name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresThreadLocks(ThreadLocks):
    """The asyncio lock, then a PostgreSQL advisory lock that other instances respect."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._session = asyncio.Lock()  # one statement at a time on the shared connection

    @contextlib.asynccontextmanager
    async def hold(self, thread: ThreadKey) -> AsyncIterator[None]:
        async with super().hold(thread):
            key = advisory_key(thread)
            locked = await self._acquire(key)
            try:
                yield
            finally:
                if locked:
                    await self._run("SELECT pg_advisory_unlock(:key)", key)

    async def _acquire(self, key: int) -> bool:
        """Wait for the advisory lock; False (go on without it) if the database is unreachable."""
        wait = _POLL_START
        while True:
            try:
                if await self._run("SELECT pg_try_advisory_lock(:key)", key):
                    return True
            except Exception as exc:  # fail open: answering beats refusing while the lock session recovers
                log.warning("advisory lock unavailable (%s); going on with the local lock only", type(exc).__name__)
                return False
            await asyncio.sleep(wait)
            wait = min(wait * 2, _POLL_CAP)

    async def _run(self, statement: str, key: int) -> bool:
        async with self._session:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = await self._engine.connect()
                    await self._connection.execution_options(isolation_level="AUTOCOMMIT")
                result = await self._connection.execute(text(statement), {"key": key})
                return bool(result.scalar())
            except Exception:
                await self._drop_connection()
                raise

    async def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None

    async def close(self) -> None:
        async with self._session:
            await self._drop_connection()
