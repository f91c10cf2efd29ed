"""The core's background work: one set of tasks, one error path, one drain.

Answers and commands run after the platform was acked, as tasks the service
owns (as python-telegram-bot's `Application.create_task` does): asyncio keeps
only weak references to tasks, so the set keeps them alive; a failure is logged
in one place; on shutdown `drain` lets the work finish, then cancels the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
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
