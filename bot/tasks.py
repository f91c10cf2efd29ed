"""The core's background work: one set of tasks, one error path, one drain, one cap.

Answers and commands run after the platform was acked, as tasks the service
owns (as python-telegram-bot's `Application.create_task` does): asyncio keeps
only weak references to tasks, so the set keeps them alive; a failure is logged
in one place; on shutdown `drain` lets the work finish, then cancels the rest.

The set holds at most `max_tasks` (answers running or waiting for their thread or a
Claude slot, and commands): one parked task per incoming message would let a flood
take all the memory. Room is reserved *before* a message is stored, so a message is
either refused before anything was stored or acked (the platform delivers it again or
the person is told), or stored with its answer's task sure to start. A reservation that
turns out not to be needed (a duplicate delivery, a message nobody addressed) is given
back, so a full set whose places are partly undecided makes a newcomer wait for them
(`reserve_when_decided`) rather than refuse it for work that will never run.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    def __init__(self, max_tasks: int | None = None) -> None:
        self.max_tasks = max_tasks  # None: no cap
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reserved = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._room_changed = asyncio.Event()  # a reservation was decided or a task finished

    def reserve(self) -> Reservation | None:
        """Room for one task to be spawned soon (None when the set is full). Checked and taken
        in one step of the event loop, so two callers never get the last place."""
        if self.max_tasks is not None and len(self._tasks) + self._reserved >= self.max_tasks:
            return None
        self._reserved += 1
        return Reservation(self)

    async def reserve_when_decided(self, within: float) -> Reservation | None:
        """`reserve`, but while the set is full only because of reservations not yet spawned
        or released, wait (at most `within` seconds) to see whether they free a place."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (room := self.reserve()) is None and self._reserved > 0:
            self._room_changed.clear()
            try:
                await asyncio.wait_for(self._room_changed.wait(), deadline - loop.time())
            except TimeoutError:
                return None
        return room

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start `work` whether or not there is room (work already promised elsewhere)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._room_changed.set()
        if not self._tasks:
            self._idle.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until no work is running (work may start more work: that is waited for too)."""
        while self._tasks:
            await self._idle.wait()

    async def drain(self, grace_seconds: float = 30.0) -> None:
        """Let running work finish (up to `grace_seconds` in all), then cancel the rest."""
        try:
            await asyncio.wait_for(self.idle(), timeout=grace_seconds)
        except TimeoutError:
            pending = set(self._tasks)
            log.warning("shutting down: cancelling %d unfinished tasks", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class Reservation:
    """A place in a `TaskSet`, used once: `spawn` fills it, `release` gives it back."""

    def __init__(self, tasks: TaskSet) -> None:
        self._tasks: TaskSet | None = tasks

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        if self._tasks is None:
            work.close()  # never started: no "was never awaited" warning
        return self._take().spawn(work)

    def release(self) -> None:
        if self._tasks is not None:
            self._take()

    def _take(self) -> TaskSet:
        if self._tasks is None:
            raise RuntimeError("this reservation was already used")
        tasks, self._tasks = self._tasks, None
        tasks._reserved -= 1
        tasks._room_changed.set()
        return tasks


class IntakesFirst:
    """Acks before answers. A burst of deliveries and the answers of the first ones share
    one event loop, and an answer is much more work than taking a message in: left in
    arrival order, the answers push the later deliveries' acks past Slack's 3 seconds (then
    Slack delivers them again, which is more work still). So a new answer first waits for
    the intakes already under way when it starts, not for later ones (steady traffic
    delays it by one intake at most), and never longer than `max_wait_seconds`."""

    def __init__(self, max_wait_seconds: float) -> None:
        self.max_wait_seconds = max_wait_seconds
        self._started = 0
        self._finished = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap: (intakes to finish, order, waiter)
        self._order = itertools.count()

    @contextlib.contextmanager
    def taking(self) -> Iterator[None]:
        """Around one delivery's intake (its check, claim and store)."""
        self._started += 1
        try:
            yield
        finally:
            self._finished += 1
            while self._waiting and self._waiting[0][0] <= self._finished:
                _, _, waiter = heapq.heappop(self._waiting)
                if not waiter.done():
                    waiter.set_result(None)

    async def after_intakes_under_way(self) -> None:
        """Return once as many intakes have finished as had started by now (or at the cap)."""
        target = self._started
        if self._finished >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (target, next(self._order), waiter))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait_seconds):
                await waiter
