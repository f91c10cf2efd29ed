"""The answers being written right now, per thread, so that a Stop can end one.

Stopping does not cancel the turn's task (that is how shutdown interrupts an answer): it
sets the answer's stop event, and the Claude stream, which runs as its own task next to
a waiter on that event, is cancelled the moment it is set. The turn then goes on normally
with what was written: it is stored and shown with the "(stopped)" note, the thread's
lock is released, and the next message is answered as usual.

Several instances on one PostgreSQL (`shared`): a Stop click reaches whichever instance
received it. Each answer is also recorded on its conversation's row (`bot.store.stops`);
an instance that finds no answer of its own in the thread records a stop request there,
and the instance writing it notices within `poll_seconds`. A poll, one query per instance
for all its running answers every half second, rather than LISTEN/NOTIFY: it needs no
dedicated connection and loses nothing when PostgreSQL drops connections (a listener
misses what is sent while it reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.domain import ThreadKey
from bot.store.stops import RunningElsewhere, StopRequests

T = TypeVar("T")
log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # a Stop received by another instance takes effect within this (plus a query)


class TurnStopped(Exception):
    """Someone stopped the answer being written."""


@dataclass
class RunningAnswer:
    asker_id: str  # who asked the turn being answered
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    answer: str = field(default_factory=lambda: uuid.uuid4().hex)  # its id in the database (shared)
    conversation_id: int | None = None  # set once it is recorded in the database


class RunningAnswers:
    def __init__(
        self,
        shared: StopRequests | None = None,
        *,
        dead_after_seconds: float = 30.0,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._running: dict[ThreadKey, RunningAnswer] = {}
        self._shared = shared
        self._dead_after = dead_after_seconds
        self._poll_seconds = poll_seconds
        self._poller: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def track(self, thread: ThreadKey, asker_id: str) -> AsyncIterator[RunningAnswer]:
        running = RunningAnswer(asker_id)
        self._running[thread] = running
        try:
            if self._shared is not None:
                await self._share(thread, running)
            yield running
        finally:
            if self._running.get(thread) is running:
                del self._running[thread]
            self._stop_polling_if_idle()
            if self._shared is not None and running.conversation_id is not None:
                try:
                    await asyncio.shield(self._shared.ended(running.conversation_id, answer=running.answer))
                except Exception:  # the next answer in the thread replaces the record anyway
                    log.warning("clearing a running answer's record failed: thread=%s", thread)

    def get(self, thread: ThreadKey) -> RunningAnswer | None:
        return self._running.get(thread)

    async def elsewhere(self, thread: ThreadKey) -> RunningElsewhere | None:
        """The answer another live instance is writing in `thread` (None: none, or not shared)."""
        if self._shared is None:
            return None
        return await self._shared.running(thread, dead_after_seconds=self._dead_after)

    async def request_stop(self, thread: ThreadKey, running: RunningElsewhere, by: str) -> bool:
        """Ask the instance writing `running` to stop it; False when it ended meanwhile."""
        if self._shared is None:
            return False
        return await self._shared.request(thread, answer=running.answer, by=by)

    async def _share(self, thread: ThreadKey, running: RunningAnswer) -> None:
        shared = self._shared
        assert shared is not None
        try:
            running.conversation_id = await shared.started(thread, answer=running.answer, asker_id=running.asker_id)
        except Exception:  # the answer goes on; only a Stop from another instance misses it
            log.warning("recording a running answer failed: thread=%s", thread)
            return
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="stop-requests")

    def _stop_polling_if_idle(self) -> None:
        if self._poller is not None and not any(r.conversation_id is not None for r in self._running.values()):
            self._poller.cancel()
            self._poller = None

    async def _poll(self) -> None:
        """While this instance writes shared answers: which of them someone asked to stop."""
        shared = self._shared
        assert shared is not None
        failing = False
        while True:
            await asyncio.sleep(self._poll_seconds)
            mine = {r.conversation_id: r for r in self._running.values() if r.conversation_id is not None}
            if not mine:
                return
            try:
                stopped = await shared.requested({cid: r.answer for cid, r in mine.items()})
            except Exception:  # the database is away: try again next time
                if not failing:
                    log.warning("reading stop requests failed; retrying")
                failing = True
                continue
            failing = False
            for conversation_id in stopped:
                mine[conversation_id].stop.set()


async def until_stopped(work: Awaitable[T], running: RunningAnswer | None) -> T:
    """`work`'s result, or `TurnStopped` as soon as the answer is stopped (`work` cancelled)."""
    if running is None:
        return await work
    if running.stop.is_set():
        if asyncio.iscoroutine(work):
            work.close()
        raise TurnStopped
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(running.stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        raise TurnStopped
    finally:
        for pending in (task, waiter):
            pending.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
