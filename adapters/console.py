"""`bot chat`: a conversation with Claude in the terminal, through the same service
and store as Slack and Discord. One conversation per run; `/claude ...` works
with the local user as admin; lines may come from a pipe."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import TextIO

from adapters.base import AdapterLimits, MessageSink, ReplyStream
from bot.events import Actor, ChannelKey, CommandInvocation, ContextMessage, IncomingMessage, ThreadKey

PLATFORM = "console"


class ConsoleReply:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._written = 0

    async def append(self, delta: str) -> None:
        self._out.write(delta)
        self._out.flush()
        self._written += len(delta)

    async def finish(self, text: str) -> None:
        self._out.write(text[self._written :] + "\n")
        self._out.flush()


class ConsoleAdapter:
    name = PLATFORM
    limits = AdapterLimits(max_message_chars=1_000_000, min_edit_interval=0.0)

    def __init__(self, lines: TextIO = sys.stdin, out: TextIO = sys.stdout, user: str = "you") -> None:
        self._lines = lines
        self._out = out
        self._session = uuid.uuid4().hex[:12]
        self.actor = Actor(PLATFORM, "local", user)
        self.thread = ThreadKey(PLATFORM, "local", "terminal", self._session)

    async def start(self, sink: MessageSink) -> None:
        """Read lines until end of input, answering each before reading the next."""
        interactive = self._lines.isatty()
        while True:
            if interactive:
                self._out.write("> ")
                self._out.flush()
            line = await asyncio.to_thread(self._lines.readline)
            if not line:
                return
            text = line.strip()
            if not text:
                continue
            if text.startswith("/claude"):
                command = CommandInvocation(
                    self.thread.channel, self.actor, text.removeprefix("/claude"), self.thread, is_direct=True
                )
                await sink.on_command(self, command)
            else:
                turn = await sink.accept(self, self._message(text))
                if turn is not None:
                    await sink.answer(self, turn)

    async def stop(self) -> None:
        return None

    def _message(self, text: str) -> IncomingMessage:
        message_id = uuid.uuid4().hex
        return IncomingMessage(
            thread=self.thread,
            event_id=message_id,
            message_id=message_id,
            actor=self.actor,
            text=text,
            is_direct=True,
        )

    async def open_reply(self, message: IncomingMessage) -> ReplyStream:
        return ConsoleReply(self._out)

    async def answer_command(self, invocation: CommandInvocation, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    async def is_admin(self, actor: Actor, channel: ChannelKey) -> bool:
        return True  # whoever holds the terminal runs the service

    async def fetch_thread_context(self, message: IncomingMessage) -> list[ContextMessage]:
        return []
