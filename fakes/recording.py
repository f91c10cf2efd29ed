"""A recording adapter and message builders: the platform side of core tests and benchmarks."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from adapters.base import AdapterLimits, MessageSink
from bot.events import Actor, ChannelKey, CommandInvocation, ContextMessage, IncomingMessage, ThreadKey

_ids = itertools.count(1)


@dataclass
class RecordedReply:
    """One answer as the adapter saw it: the deltas, then the final text."""

    message: IncomingMessage
    deltas: list[str] = field(default_factory=list)
    final: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def append(self, delta: str) -> None:
        assert self.final is None, "append after finish"
        self.deltas.append(delta)

    async def finish(self, text: str) -> None:
        assert self.final is None, "finished twice"
        assert text.startswith("".join(self.deltas)), "final text must extend what was streamed"
        self.final = text
        self.done.set()


class RecordingAdapter:
    """A platform with no wire: records replies and command answers."""

    name = "test"
    limits = AdapterLimits(max_message_chars=4000, min_edit_interval=0.0)

    def __init__(self, admins: set[str] | None = None) -> None:
        self.replies: list[RecordedReply] = []
        self.command_answers: list[tuple[CommandInvocation, str]] = []
        self.admins = admins or set()
        self.thread_context: dict[ThreadKey, list[ContextMessage]] = {}
        self.context_fetches = 0

    async def start(self, sink: MessageSink) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def open_reply(self, message: IncomingMessage) -> RecordedReply:
        reply = RecordedReply(message)
        self.replies.append(reply)
        return reply

    async def answer_command(self, invocation: CommandInvocation, text: str) -> None:
        self.command_answers.append((invocation, text))

    async def is_admin(self, actor: Actor, channel: ChannelKey) -> bool:
        return actor.user_id in self.admins

    async def fetch_thread_context(self, message: IncomingMessage) -> list[ContextMessage]:
        self.context_fetches += 1
        return self.thread_context.get(message.thread, [])

    def finals(self, thread: ThreadKey | None = None) -> list[str]:
        return [r.final or "" for r in self.replies if thread is None or r.message.thread == thread]


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
