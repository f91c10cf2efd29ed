"""Group commit: writes that queue while a transaction is being started (SQLite: waiting
for its one writer; PostgreSQL: waiting for a pooled connection) go together in the next
transaction, written by `write_many` in a few multi-row statements, so a burst of intakes
(each awaited before its platform's ack) costs a handful of statements instead of a chain
of five per delivery, each waiting for the writer lock or a connection and for its turn of
the event loop. On PostgreSQL several batches may run at once; `write_many` takes its row
locks in a sorted order, so two batches never wait on each other in a cycle.

Each caller learns its own result only once the transaction holding its write has
committed: nothing is acked before it is stored. If a shared transaction fails, its
writes are run again one transaction each (`write_one`), so one bad write never fails
the others. (Own code: SQLAlchemy has no group commit; this is the usual
leader-takes-the-queue scheme in a few lines.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.db import Database

Item = TypeVar("Item")
Result = TypeVar("Result")
MAX_BATCH = 100  # writes per transaction (SQLite allows 32,766 bound values per statement)


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        db: Database,
        write_one: Callable[[AsyncConnection, Item], Awaitable[Result]],
        write_many: Callable[[AsyncConnection, Sequence[Item]], Awaitable[list[Result]]],
    ) -> None:
        self._db = db
        self._write_one = write_one
        self._write_many = write_many
        self._queued: list[tuple[Item, asyncio.Future[Result]]] = []
        self._forming = False  # a batch is waiting for the writer lock; new writes join it
        self._batches: set[asyncio.Task[None]] = set()

    async def run(self, item: Item) -> Result:
        """`item` written inside a committed transaction; its result once that transaction committed."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queued.append((item, done))
        if not self._forming:
            self._forming = True
            self._start_batch()
        return await done

    def _start_batch(self) -> None:
        # Its own task: a caller that is cancelled never strands the writes queued behind it.
        batch = asyncio.create_task(self._commit_next())
        self._batches.add(batch)
        batch.add_done_callback(self._batches.discard)

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
        self._forming = bool(self._queued)
        if self._queued:  # the rest is the next batch, already waiting
            self._start_batch()
        return batch

    async def _commit_next(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        results: list[Result] = []
        try:
            async with self._db.write(first=True) as conn:
                batch = self._take()  # writes queued from now on: the next batch
                results = await self._write_many(conn, [item for item, _ in batch])
        except asyncio.CancelledError:  # shutting down: nobody waits in vain
            for _, done in batch or self._take():
                done.cancel()
            raise
        except Exception as error:
            if not batch:  # the transaction never started: everything queued shares the failure
                _fail(self._take(), error)
            elif len(batch) == 1:
                _fail(batch, error)
            else:
                await self._one_by_one(batch)
            return
        for (_, done), result in zip(batch, results, strict=True):
            if not done.done():
                done.set_result(result)

    async def _one_by_one(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        for item, done in batch:
            try:
                async with self._db.write() as conn:
                    result = await self._write_one(conn, item)
            except Exception as error:
                _fail([(item, done)], error)
            else:
                if not done.done():
                    done.set_result(result)


def _fail(batch: Sequence[tuple[object, asyncio.Future[Result]]], error: BaseException) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(error)
