"""The answers being written right now, per thread, so that a Stop can end one.

Stopping does not cancel the turn's task (that is how shutdown interrupts an answer): it
sets the answer's stop event, and the Claude stream, which runs as its own task next to
a waiter on that event, is cancelled the moment it is set. The turn then goes on normally
with what was written: it is stored and shown with the "(stopped)" note, the thread's
lock is released, and the next message is answered as usual.

In memory, per instance: a Stop reaches the instance whose surface received it. With
several instances behind Slack's HTTP mode, it may land on another one; then it finds
no running answer here and says so (sharing stops across instances is not done yet).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.domain import ThreadKey

T = TypeVar("T")


class TurnStopped(Exception):
    """Someone stopped the answer being written."""


@dataclass
class RunningAnswer:
    asker_id: str  # who asked the turn being answered
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class RunningAnswers:
    def __init__(self) -> None:
        self._running: dict[ThreadKey, RunningAnswer] = {}

    @contextlib.asynccontextmanager
    async def track(self, thread: ThreadKey, asker_id: str) -> AsyncIterator[RunningAnswer]:
        running = RunningAnswer(asker_id)
        self._running[thread] = running
        try:
            yield running
        finally:
            if self._running.get(thread) is running:
                del self._running[thread]

    def get(self, thread: ThreadKey) -> RunningAnswer | None:
        return self._running.get(thread)


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
