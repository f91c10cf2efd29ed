"""What an adapter is to the core: the platform side of a conversation.

An adapter turns platform events into `IncomingMessage` / `CommandInvocation`,
hands them to the core's `MessageSink` and renders what comes back. It holds no
business rule: who gets an answer, what is stored and what Claude is asked are
the core's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from bot.events import AcceptedTurn, Actor, ChannelKey, CommandInvocation, ContextMessage, IncomingMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AdapterLimits:
    max_message_chars: int
    min_edit_interval: float  # seconds between two edits of one message


class ReplyStream(Protocol):
    """One answer as it is being written.

    `append` gets text deltas as Claude produces them; `finish` gets the complete
    text, which always begins with everything appended so far (notes such as
    "(cut off)" or an error sentence come after it). The first call to either
    clears any progress cue ("thinking…", typing) the adapter showed.
    """

    async def append(self, delta: str) -> None: ...

    async def finish(self, text: str) -> None: ...


class MessageSink(Protocol):
    """The core's narrow entry, implemented by ConversationService.

    For each message: `accept` before acking the platform (it stores the turn, so an
    acked message is never lost), then `answer` in the background when accepted.
    """

    async def accept(self, adapter: Adapter, message: IncomingMessage) -> AcceptedTurn | None: ...

    async def answer(self, adapter: Adapter, turn: AcceptedTurn) -> object: ...

    async def on_command(self, adapter: Adapter, invocation: CommandInvocation) -> None: ...

    async def model_choices(self) -> list[str]:
        """The model ids `/claude model` accepts (for autocomplete)."""
        ...


class Adapter(Protocol):
    name: str
    limits: AdapterLimits

    async def start(self, sink: MessageSink) -> None: ...

    async def stop(self) -> None: ...

    async def open_reply(self, message: IncomingMessage) -> ReplyStream:
        """Where the answer to `message` goes; shows a progress cue until text arrives."""
        ...

    async def answer_command(self, invocation: CommandInvocation, text: str) -> None:
        """Answer a command, ephemerally where the platform can."""
        ...

    async def is_admin(self, actor: Actor, channel: ChannelKey) -> bool:
        """Whether the platform says `actor` administers the workspace of `channel`."""
        ...

    async def fetch_thread_context(self, message: IncomingMessage) -> list[ContextMessage]:
        """Earlier messages of the thread `message` was posted in, oldest first
        ([] where there are none or the platform has no threads)."""
        ...


@runtime_checkable
class ServesHttp(Protocol):
    """An adapter that receives the platform over the service's HTTP server."""

    def routes(self) -> list[web.RouteDef]: ...


class BackgroundTasks:
    """Tasks an adapter started after acking the platform, kept referenced until done
    (asyncio keeps only weak references) and awaited on shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, grace_seconds: float = 30.0) -> None:
        """Let running work finish (up to `grace_seconds` in all), then cancel the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self._tasks and loop.time() < deadline:  # work may start more work
            await asyncio.wait(set(self._tasks), timeout=deadline - loop.time())
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
