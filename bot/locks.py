"""One turn at a time per conversation.

In one process an asyncio lock per thread does it. Several instances on one
PostgreSQL also hold a lease on the conversation's row (`conversations.answering_by`,
the instance's id) for as long as a turn runs. A lease lives in the database, not
in a connection: a dropped connection, a database restart or a failover loses
nothing, so a turn never runs unlocked. A lease whose instance stopped saying it is
alive (killed, or frozen by SIGSTOP) is taken over; waiting for a busy thread is
bounded, after which the person is told the thread is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from bot.domain import ThreadKey

log = logging.getLogger(__name__)

_POLL_START, _POLL_CAP = 0.02, 0.5  # seconds between tries while another instance holds a thread


class ThreadBusy(Exception):
    """The thread stayed busy (an earlier turn still running) for longer than the wait allows."""


class ThreadLocks:
    """One asyncio lock per conversation, dropped when nobody holds or waits for it; a
    waiter gives up after `max_wait_seconds` with ThreadBusy."""

    def __init__(self, max_wait_seconds: float = 300.0) -> None:
        self._locks: dict[ThreadKey, tuple[asyncio.Lock, int]] = {}
        self._max_wait = max_wait_seconds

    @contextlib.asynccontextmanager
    async def hold(self, thread: ThreadKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(thread, (asyncio.Lock(), 0))
        self._locks[thread] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(self._max_wait):
                    await lock.acquire()
                    try:
                        await self._take(thread)
                    except BaseException:
                        lock.release()
                        raise
            except TimeoutError:
                raise ThreadBusy(str(thread)) from None
            try:
                yield
            finally:
                try:
                    await asyncio.shield(self._give_back(thread))
                finally:
                    lock.release()
        finally:
            lock, users = self._locks[thread]
            if users == 1:
                del self._locks[thread]
            else:
                self._locks[thread] = (lock, users - 1)

    async def _take(self, thread: ThreadKey) -> None:
        """Other instances' part of the lock (none in one process)."""

    async def _give_back(self, thread: ThreadKey) -> None:
        return None


class ThreadLeases(Protocol):
    """Where the conversation leases live (`bot.store.turns.TurnStore`)."""

    async def lease_thread(self, thread: ThreadKey, *, owner: str, dead_after_seconds: float) -> bool: ...

    async def release_thread(self, thread: ThreadKey, *, owner: str) -> None: ...


class LeasedThreadLocks(ThreadLocks):
    """The asyncio lock, then the conversation's lease in the database, which every
    instance respects (see the module docstring)."""

    def __init__(
        self, leases: ThreadLeases, owner: str, *, dead_after_seconds: float, max_wait_seconds: float = 300.0
    ) -> None:
        super().__init__(max_wait_seconds)
        self._leases = leases
        self._owner = owner
        self._dead_after = dead_after_seconds

    async def _take(self, thread: ThreadKey) -> None:
        wait = _POLL_START
        while not await self._leases.lease_thread(thread, owner=self._owner, dead_after_seconds=self._dead_after):
            await asyncio.sleep(wait)
            wait = min(wait * 2, _POLL_CAP)

    async def _give_back(self, thread: ThreadKey) -> None:
        try:
            await self._leases.release_thread(thread, owner=self._owner)
        except Exception:  # left to expire: the lease goes when this instance stops being alive
            log.exception("releasing a thread's lease failed: thread=%s", thread)


def advisory_key(name: ThreadKey | str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock (a job's name)."""
    digest = hashlib.blake2b(str(name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
