"""`bot chat`: a conversation with Claude in the terminal, through the same service
and store as Slack and Discord. One conversation per run; `/claude ...` works
with the local user as admin; lines may come from a pipe.

The terminal translates and renders only: `bot.cli` drives the loop, answering
each line before reading the next.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

from bot.domain import Actor, CommandInvocation, ContextMessage, FileRef, IncomingMessage, ThreadKey
from bot.files.download import DownloadFailed, FileTooLarge

PLATFORM = "console"
COMMAND_PREFIX = "/claude"
FILE_PREFIX = "/file "


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


class ConsoleSurface:
    """Where answers and command answers go: the terminal. Whoever holds the terminal
    runs the service, so they are an admin."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    async def open_reply(self) -> ConsoleReply:
        return ConsoleReply(self._out)

    async def fetch_thread_context(self) -> list[ContextMessage]:
        return []

    async def fetch_later_messages(self, after_message_id: str) -> list[IncomingMessage]:
        return []

    async def download_file(self, file: FileRef, limit: int) -> bytes:
        """A local file (the terminal's "platform" is the machine it runs on)."""
        return await asyncio.to_thread(_read_limited, Path(file.url), limit)

    async def answer(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    async def actor_is_admin(self) -> bool:
        return True


class Console:
    def __init__(self, lines: TextIO = sys.stdin, out: TextIO = sys.stdout, user: str = "you") -> None:
        self._lines = lines
        self._out = out
        self.actor = Actor(PLATFORM, "local", user)
        self.thread = ThreadKey(PLATFORM, "local", "terminal", uuid.uuid4().hex[:12])
        self.surface = ConsoleSurface(out)
        self._attached: list[FileRef] = []

    async def typed(self) -> AsyncIterator[IncomingMessage | CommandInvocation]:
        """Each non-empty line as a message or a `/claude` command, until end of input."""
        interactive = self._lines.isatty()
        while True:
            if interactive:
                self._out.write("> ")
                self._out.flush()
            line = await asyncio.to_thread(self._lines.readline)
            if not line:
                return
            text = line.strip()
            if text.startswith(COMMAND_PREFIX):
                yield CommandInvocation(
                    self.thread.channel, self.actor, text.removeprefix(COMMAND_PREFIX), self.thread, is_direct=True
                )
            elif text.startswith(FILE_PREFIX):
                self._attach(text.removeprefix(FILE_PREFIX).strip())
            elif text:
                yield self._message(text)

    def _attach(self, typed_path: str) -> None:
        """`/file PATH`: the file goes with the next message."""
        path = Path(typed_path).expanduser()
        if not path.is_file():
            self._out.write(f"(no such file: {typed_path})\n")
            return
        self._attached.append(FileRef(str(path), path.name, str(path.resolve()), path.stat().st_size))
        self._out.write(f"(attached {path.name}; it goes with your next message)\n")
        self._out.flush()

    def _message(self, text: str) -> IncomingMessage:
        message_id = uuid.uuid4().hex
        message = IncomingMessage(
            thread=self.thread,
            event_id=message_id,
            message_id=message_id,
            actor=self.actor,
            text=text,
            is_direct=True,
            files=tuple(self._attached),
        )
        self._attached = []
        return message


def _read_limited(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise DownloadFailed(type(exc).__name__) from None
    if len(data) > limit:
        raise FileTooLarge(f"more than {limit} bytes")
    return data
