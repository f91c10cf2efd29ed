"""A recording platform and message builders: the platform side of core tests and benchmarks."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from bot.conversation import ConversationService, TurnOutcome
from bot.domain import (
    Actor,
    ChannelKey,
    CommandInvocation,
    ContextMessage,
    FileRef,
    IncomingMessage,
    Progress,
    ThreadKey,
)
from bot.files.download import DownloadFailed, FileTooLarge

_ids = itertools.count(1)


@dataclass
class RecordedReply:
    """One answer as the adapter saw it: the deltas, then the final text."""

    message: IncomingMessage
    deltas: list[str] = field(default_factory=list)
    final: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Each progress shown, with how many deltas had been shown by then.
    progress_shown: list[tuple[Progress, int]] = field(default_factory=list)

    async def progress(self, status: Progress) -> None:
        assert self.final is None, "progress after finish"
        self.progress_shown.append((status, len(self.deltas)))

    async def append(self, delta: str) -> None:
        assert self.final is None, "append after finish"
        self.deltas.append(delta)

    async def finish(self, text: str) -> None:
        assert self.final is None, "finished twice"
        assert text.startswith("".join(self.deltas)), "final text must extend what was streamed"
        self.final = text
        self.done.set()


class RecordingPlatform:
    """A platform with no wire: records replies and command answers.

    `surface(message)` / `command_surface(invocation)` give the per-event surfaces the
    core answers through; they call back into this object, so a test can subclass it
    to make one of the platform's operations misbehave.
    """

    name = "test"

    def __init__(self, admins: set[str] | None = None) -> None:
        self.replies: list[RecordedReply] = []
        self.command_answers: list[tuple[CommandInvocation, str]] = []
        self.admins = admins or set()
        self.thread_context: dict[ThreadKey, list[ContextMessage]] = {}
        self.context_fetches = 0
        self.later_messages: dict[ThreadKey, list[IncomingMessage]] = {}  # replies the platform shows after a message
        self.files: dict[str, bytes] = {}  # url -> bytes the platform serves
        self.downloads: list[str] = []  # urls fetched, in order

    def surface(self, message: IncomingMessage) -> RecordingSurface:
        return RecordingSurface(self, message)

    def command_surface(self, invocation: CommandInvocation) -> RecordingCommandSurface:
        return RecordingCommandSurface(self, invocation)

    async def deliver(self, service: ConversationService, message: IncomingMessage) -> TurnOutcome:
        """The message arrives: accepted and answered before this returns."""
        return await service.handle(message, self.surface(message))

    async def run_command(self, service: ConversationService, invocation: CommandInvocation) -> str:
        """`/claude ...` is typed; returns the answer shown."""
        await service.run_command(invocation, self.command_surface(invocation))
        return self.command_answers[-1][1]

    async def open_reply(self, message: IncomingMessage) -> RecordedReply:
        reply = RecordedReply(message)
        self.replies.append(reply)
        return reply

    async def fetch_thread_context(self, message: IncomingMessage) -> list[ContextMessage]:
        self.context_fetches += 1
        return self.thread_context.get(message.thread, [])

    async def download_file(self, file: FileRef, limit: int) -> bytes:
        self.downloads.append(file.url)
        if file.url not in self.files:
            raise DownloadFailed("404")
        data = self.files[file.url]
        if len(data) > limit:
            raise FileTooLarge(f"more than {limit} bytes")
        return data

    def finals(self, thread: ThreadKey | None = None) -> list[str]:
        return [r.final or "" for r in self.replies if thread is None or r.message.thread == thread]


@dataclass
class RecordingSurface:
    platform: RecordingPlatform
    message: IncomingMessage

    async def open_reply(self) -> RecordedReply:
        return await self.platform.open_reply(self.message)

    async def fetch_thread_context(self) -> list[ContextMessage]:
        return await self.platform.fetch_thread_context(self.message)

    async def fetch_later_messages(self, after_message_id: str) -> list[IncomingMessage]:
        later = self.platform.later_messages.get(self.message.thread, [])
        return [m for m in later if m.message_id != after_message_id]

    async def download_file(self, file: FileRef, limit: int) -> bytes:
        return await self.platform.download_file(file, limit)


@dataclass
class RecordingCommandSurface:
    platform: RecordingPlatform
    invocation: CommandInvocation

    async def answer(self, text: str) -> None:
        self.platform.command_answers.append((self.invocation, text))

    async def actor_is_admin(self) -> bool:
        return self.invocation.actor.user_id in self.platform.admins


def thread(name: str = "1000.1", channel: str = "C1", workspace: str = "T1") -> ThreadKey:
    return ThreadKey("test", workspace, channel, name)


def person(user_id: str = "U1", name: str = "Alice") -> Actor:
    return Actor("test", user_id, name)


def message(
    where: ThreadKey,
    text: str,
    *,
    who: Actor | None = None,
    mention: bool = True,
    direct: bool = False,
    in_thread: bool | None = None,
    event_id: str | None = None,
) -> IncomingMessage:
    """A person's message; without a mention (and not a DM) it is a reply inside the thread."""
    number = next(_ids)
    return IncomingMessage(
        thread=where,
        event_id=event_id or f"Ev{number}",
        message_id=f"m{number}",
        actor=who or person(),
        text=text,
        is_direct=direct,
        mentions_bot=mention,
        is_thread_reply=(not mention and not direct) if in_thread is None else in_thread,
    )


def command(channel: ChannelKey, text: str, *, who: Actor | None = None) -> CommandInvocation:
    return CommandInvocation(channel=channel, actor=who or person(), text=text)
