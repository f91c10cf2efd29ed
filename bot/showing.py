"""Showing an answer while Claude writes it, without letting the platform slow Claude down.

Claude's deltas are collected as they arrive; one task per answer hands the platform
everything new since its last call, so a platform that is slow or rate-limited (a
Slack 429 with a long Retry-After, Discord's edit cadence) gets fewer, larger pieces
while the service keeps reading Claude's stream. If the platform fails mid-answer,
Claude's answer is still stored and the final text is tried again a few times: the
final text is what the person must get.
"""

from __future__ import annotations

import asyncio
import logging

from bot.controls import AnswerControls
from bot.domain import Progress, ThreadKey
from bot.ports import OffersControls, ReplyStream, ShownInMessages, ShowsProgress

log = logging.getLogger(__name__)

FINISH_RETRY_PAUSES = (2.0, 10.0, 30.0, 0.0)  # seconds before each next attempt to show the final text


class ShownAnswer:
    def __init__(self, stream: ReplyStream, thread: ThreadKey) -> None:
        self._stream = stream
        self._thread = thread
        self._deltas: list[str] = []
        self._handed_over = 0  # characters given to the platform so far
        self._more = asyncio.Event()
        self._closing = False
        self._broken = False
        self._pump: asyncio.Task[None] | None = None
        self._statuses: list[Progress] = []  # progress not shown yet, oldest first (a few per answer)

    def shown_message_ids(self) -> list[str]:
        """Where the platform showed the answer, if it says (`ShownInMessages`)."""
        return self._stream.shown_message_ids() if isinstance(self._stream, ShownInMessages) else []

    @property
    def received(self) -> str:
        """Every delta Claude produced so far."""
        return "".join(self._deltas)

    def offer_controls(self, controls: AnswerControls) -> None:
        """The buttons the final message will carry, where the platform shows any."""
        if isinstance(self._stream, OffersControls):
            self._stream.offer_controls(controls)

    async def append(self, delta: str) -> None:
        """Take a delta; never waits for the platform."""
        self._deltas.append(delta)
        if self._pump is None:
            self._pump = asyncio.create_task(self._hand_over())
        self._more.set()

    async def progress(self, status: Progress) -> None:
        """What Claude is doing while no text comes (thinking, searching the web), for a
        platform that shows it; shown by the same task as the text, so never waits either."""
        if not isinstance(self._stream, ShowsProgress):
            return
        self._statuses.append(status)
        if self._pump is None:
            self._pump = asyncio.create_task(self._hand_over())
        self._more.set()

    async def _hand_over(self) -> None:
        while not self._closing:
            await self._more.wait()
            self._more.clear()
            if self._closing:  # the final text shows everything
                return
            statuses, self._statuses = self._statuses, []
            for status in statuses:
                if self._broken or not isinstance(self._stream, ShowsProgress):
                    break
                try:
                    await self._stream.progress(status)
                except Exception:  # cosmetic: the answer goes on without it
                    log.warning("showing progress failed: thread=%s", self._thread, exc_info=True)
                    break
            text = self.received
            if self._broken or len(text) == self._handed_over:
                continue
            chunk, self._handed_over = text[self._handed_over :], len(text)
            try:
                await self._stream.append(chunk)
            except Exception:
                self._broken = True
                log.exception("showing the answer failed mid-stream: thread=%s", self._thread)

    async def finish(self, text: str) -> None:
        """Show the final text (which begins with everything received), once the platform
        is done with the piece it is showing."""
        if self._pump is not None:
            self._closing = True
            self._more.set()
            await self._pump
        for attempt, pause in enumerate(FINISH_RETRY_PAUSES, start=1):
            try:
                await self._stream.finish(text)
                return
            except Exception:
                last = attempt == len(FINISH_RETRY_PAUSES)
                log.warning(
                    "showing the final answer failed (attempt %d): thread=%s", attempt, self._thread, exc_info=last
                )
                if not last:
                    await asyncio.sleep(pause)
