"""Showing one streamed answer as platform messages: the part splitter and the
`StreamedReply` base that Slack and Discord replies build on.

Cutting. Text arrives in deltas; messages are shown while it does. So the cut rule
must never move text that is already on screen: a part is cut at the last line
break that fits (else the last space, else hard at the limit). Under that rule
every complete line of the current part is final the moment it arrives, which is
what `stable` reports, and native streams send exactly that much.

Code fences stay balanced: a part cut inside a fenced block ends with a closing
fence and the next part reopens the block with its opening line (same language).
Removing those added fence lines and joining the parts gives back the text.

Showing. Each part is one platform message. `StreamedReply` feeds the splitter,
keeps one `ShownPart` per message, paces interim updates per message and closes
finished parts; a platform implements only its primitives (post, edit and,
where it has one, a native stream).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

_FENCE = re.compile(r" {0,3}```")
_CLOSER = "```"
MIN_LIMIT = 32


def _fence_after(lines_text: str, open_line: str | None) -> str | None:
    """The opening line of the fence still open after `lines_text` (None if none)."""
    for line in lines_text.split("\n"):
        if _FENCE.match(line):
            if open_line is None:
                open_line = line.strip()
            elif line.strip() == _CLOSER:
                open_line = None
    return open_line


class PartSplitter:
    """Feed text as it arrives; read finished parts and the current one."""

    def __init__(self, limit: int) -> None:
        if limit < MIN_LIMIT:
            raise ValueError(f"limit must be at least {MIN_LIMIT}")
        self.limit = limit
        self.finished: list[str] = []
        # What each finished part got added around the text: (reopened fence, closing fence).
        self.added: list[tuple[str, str]] = []
        self._prefix = ""  # the reopened fence line starting the current part
        self._text = ""

    @property
    def current(self) -> str:
        """The current (last, unfinished) part as it stands."""
        return self._prefix + self._text

    @property
    def stable(self) -> int:
        """How many leading characters of `current` can no longer change (0 while
        they would show nothing but whitespace)."""
        lines_end = self._text.rfind("\n") + 1
        return len(self._prefix) + lines_end if self._text[:lines_end].strip() else 0

    def feed(self, delta: str) -> None:
        self._text += delta
        while len(self._prefix) + len(self._text) > self._room():
            self._cut()

    def close(self) -> list[str]:
        """Finish the last part; returns every part."""
        if self._text.strip():
            self.finished.append(self.current)
            self.added.append((self._prefix, ""))
        self._prefix, self._text = "", ""
        return self.finished

    def _room(self) -> int:
        # Space for a closing fence (and the line break before it) if the cut is in a block.
        return self.limit - len(_CLOSER) - 1

    def _cut(self) -> None:
        window = self._text[: self._room() - len(self._prefix)]
        cut = window.rfind("\n") + 1
        if cut == 0 or not window[:cut].strip():
            cut = window.rfind(" ") + 1
        if cut == 0 or not window[:cut].strip():
            cut = len(window)
            if window.endswith("\r") and self._text[cut : cut + 1] == "\n":
                cut -= 1
        # A cut inside a line makes the rest start a new message; "```" there would open a
        # code block the text never had, so cut a little earlier instead.
        while cut > 1 and self._text[cut - 1] != "\n" and _FENCE.match(self._text, cut):
            cut -= 1
        head, self._text = self._text[:cut], self._text[cut:]
        prefix = self._prefix
        open_line = _fence_after(prefix + head, None)
        closer = ""
        if open_line is not None:
            closer = ("" if head.endswith("\n") else "\n") + _CLOSER
            reopen = open_line if len(open_line) <= self.limit // 4 else _CLOSER
            self._prefix = reopen + "\n"
        else:
            self._prefix = ""
        if head.strip():  # a run of whitespace longer than a message is dropped, not sent
            self.finished.append(prefix + head + closer)
            self.added.append((prefix, closer))


def split_all(text: str, limit: int) -> list[str]:
    """All parts of a complete text."""
    splitter = PartSplitter(limit)
    splitter.feed(text)
    return splitter.close()


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """What a platform allows one streamed reply; each platform declares its own once."""

    max_chars: int  # characters per message (and per call)
    edit_interval: float  # seconds between two updates of one message
    # True: two changes of one message reach the platform at least `edit_interval` apart,
    # the final one included (the interval runs from when the last change was accepted).
    # False: an interim update starts at most once per `edit_interval`, counted from the
    # start of the previous call (one the SDK held up waiting out a 429 does not push the
    # next one back), and a finished part is shown at once.
    strict_cadence: bool


Handle = TypeVar("Handle")


@dataclass
class ShownPart(Generic[Handle]):
    """One part of the answer as its platform message shows it."""

    handle: Handle | None = None  # the platform's message; None until it is posted
    text: str = ""  # what the message shows (before the platform's escaping)
    streaming: bool = False  # a native stream is open on it
    closed: bool = False  # it shows its final text and is never touched again
    updated_at: float = -math.inf  # clock time the platform last accepted a change


class StreamingRefused(Exception):
    """The platform refused a native-stream call; the reply posts and edits instead."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class StreamedReply(ABC, Generic[Handle]):
    """One answer shown while it streams: feed deltas with `append`, end with `finish`.

    Interim updates of a message come at most once per `edit_interval` and are skipped
    when not due; a finished part is always shown (with `strict_cadence`, after
    waiting for its turn). With native streaming, a message only ever gets text that
    can no longer change; a refusal (`StreamingRefused`) switches this reply to posting
    and editing with the whole text, so nothing is lost to the fallback.
    """

    def __init__(
        self,
        limits: ReplyLimits,
        *,
        native_streaming: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = limits
        self._native = native_streaming
        self._clock = clock
        self._splitter = PartSplitter(limits.max_chars)
        self._parts: list[ShownPart[Handle]] = []
        self._fed = 0  # characters of the answer given to the splitter
        self.streaming_refused: str | None = None  # the platform's error when it refused native streaming

    async def append(self, delta: str) -> None:
        self._splitter.feed(delta)
        self._fed += len(delta)
        await self._show(final=False)

    async def finish(self, text: str) -> None:
        """Show `text`, which begins with everything appended. May be called again after it
        raised (the core retries the final text): what is already shown is not sent again."""
        self._splitter.feed(text[self._fed :])
        self._fed = len(text)
        self._splitter.close()
        await self._show(final=True)

    async def show_status(self, text: str) -> bool:
        """Before any of the answer shows, make its first message show `text` (a status line
        such as "Searching the web…"); the answer replaces it. False once the answer has begun
        or a native stream is open (the platform shows progress its own way there)."""
        shown = self._shown(0)
        if self._fed or shown.streaming or shown.closed:
            return False
        started = self._clock()
        if shown.handle is None:
            shown.handle = await self._post_part(0, text)
        else:
            await self._edit_part(shown.handle, text)
        self._shows(shown, text, closed=False, started=started)
        return True

    # --- the platform's primitives -------------------------------------------

    @abstractmethod
    async def _post_part(self, index: int, text: str) -> Handle:
        """Post part `index` of the answer as a new message showing `text`."""

    @abstractmethod
    async def _edit_part(self, handle: Handle, text: str) -> None:
        """Make the message show `text` (the whole part so far, not a delta)."""

    async def _start_stream(self, index: int, text: str) -> Handle:
        """Open a native stream for part `index` showing `text`; raise StreamingRefused if refused."""
        raise NotImplementedError("only a reply created with native_streaming streams natively")

    async def _append_stream(self, handle: Handle, text: str) -> None:
        """Add `text` to the open stream; raise StreamingRefused if refused."""
        raise NotImplementedError("only a reply created with native_streaming streams natively")

    async def _stop_stream(self, handle: Handle, text: str) -> None:
        """Add `text` (may be empty) and close the stream; raise StreamingRefused if refused."""
        raise NotImplementedError("only a reply created with native_streaming streams natively")

    # --- the skeleton --------------------------------------------------------

    async def _show(self, *, final: bool) -> None:
        for index, part in enumerate(self._splitter.finished):
            await self._close(index, part)
        if final:
            return
        index = len(self._splitter.finished)
        shown = self._shown(index)
        current = self._splitter.current
        # A native stream can only append, so it gets just what can no longer change.
        wanted = current[: self._splitter.stable] if self._streams(shown) else current
        if wanted.strip() and wanted != shown.text and self._due(shown):
            await self._bring(index, shown, wanted, complete=False)

    async def _close(self, index: int, text: str) -> None:
        """Message `index` shows the finished part `text` and is closed."""
        shown = self._shown(index)
        if shown.closed:
            return
        if not shown.streaming and shown.text == text:
            shown.closed = True
            return
        if self._limits.strict_cadence:
            wait = shown.updated_at + self._limits.edit_interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
        await self._bring(index, shown, text, complete=True)

    def _shown(self, index: int) -> ShownPart[Handle]:
        while len(self._parts) <= index:
            self._parts.append(ShownPart())
        return self._parts[index]

    def _streams(self, shown: ShownPart[Handle]) -> bool:
        return self._native and (shown.handle is None or shown.streaming)

    def _due(self, shown: ShownPart[Handle]) -> bool:
        return self._clock() - shown.updated_at >= self._limits.edit_interval

    async def _bring(self, index: int, shown: ShownPart[Handle], text: str, *, complete: bool) -> None:
        """Message `index` shows `text`, and is closed when `complete`."""
        started = self._clock()
        if self._streams(shown):
            try:
                await self._stream(index, shown, text, complete=complete, started=started)
                return
            except StreamingRefused as refusal:
                self.streaming_refused = refusal.error
                log.info(
                    "%s: native streaming refused (%s); posting and editing instead",
                    type(self).__name__,
                    refusal.error,
                )
                self._native = False
                shown.streaming = False
        if shown.handle is None:
            shown.handle = await self._post_part(index, text)
        else:
            await self._edit_part(shown.handle, text)
        self._shows(shown, text, closed=complete, started=started)

    async def _stream(self, index: int, shown: ShownPart[Handle], text: str, *, complete: bool, started: float) -> None:
        if shown.handle is None:
            shown.handle = await self._start_stream(index, text)
            shown.streaming = True
            self._shows(shown, text, closed=False, started=started)
        chunk = text[len(shown.text) :]
        if complete:
            await self._stop_stream(shown.handle, chunk)
            shown.streaming = False
        elif chunk:
            await self._append_stream(shown.handle, chunk)
        self._shows(shown, text, closed=complete, started=started)

    def _shows(self, shown: ShownPart[Handle], text: str, *, closed: bool, started: float) -> None:
        """Record that the platform accepted `text` for the message (the call began at `started`)."""
        shown.text = text
        shown.closed = closed
        shown.updated_at = self._clock() if self._limits.strict_cadence else started
