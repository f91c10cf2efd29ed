"""SQLite's one writer, deliveries first: a lock whose waiters are served by priority
(then in arrival order), so a write that a platform's ack is waiting for (the intake's
claim and store) goes before the answers' writes queued ahead of it. asyncio.Lock is
first come, first served; in a burst the intakes would queue behind hundreds of
answer writes and the acks would go out only when nearly every answer is done."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

FIRST, IN_TURN = 0, 1  # priorities: an intake the platform's ack waits for; everything else


class WriterLock:
    def __init__(self) -> None:
        self._held = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def hold(self, priority: int = IN_TURN) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if not self._held and not self._waiting:
            self._held = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # handed over just as it was cancelled: pass it on
                self._release()
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)  # still held: handed over
                return
        self._held = False
