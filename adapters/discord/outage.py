"""Holding a message the core could not store.

Slack delivers an event again when it is answered 503; Discord never delivers a message
twice. So while the core's database is unreachable (`ServiceUnavailable`), the adapter
keeps the message in memory and hands it over again, and if the outage outlasts the
retries it tells the person in the channel instead of dropping the message silently.
A message refused because the core's work is at its cap (`Overloaded`) is not held (that
would be the unbounded queue the cap exists against): the person is told at once.
A held message its author deletes meanwhile is dropped (`withdraw`): never answered.
(Own code: discord.py has no redelivery to lean on.)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from bot.domain import IncomingMessage
from bot.errors import NOT_STORED_NOTE, Overloaded, ServiceUnavailable
from bot.ports import Inbox, MessageSurface

log = logging.getLogger(__name__)

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0) + (30.0,) * 9  # about five minutes in all
MAX_HELD = 1000  # messages held at once; past this, people are told at once (bounded memory)


class HeldMessages:
    def __init__(self, delays: tuple[float, ...] = RETRY_DELAYS, limit: int = MAX_HELD) -> None:
        self._delays = delays
        self._limit = limit
        self.held = 0
        self._held_ids: set[str] = set()  # the platform ids of the messages held
        self._withdrawn: set[str] = set()  # ... deleted by their authors while held

    def withdraw(self, message_id: str) -> bool:
        """Its author deleted a held message (a deletion the core cannot store either): it is
        never handed over. True if it was held."""
        if message_id not in self._held_ids:
            return False
        self._withdrawn.add(message_id)
        return True

    async def submit(self, inbox: Inbox, message: IncomingMessage, surface: MessageSurface) -> None:
        """Hand the message to the core; while it cannot be stored, try again, then tell."""
        try:
            await inbox.submit(message, surface)
            return
        except Overloaded as busy:  # the core's work is at its cap: holding more would defeat it
            log.warning("discord: too much work under way; telling the person: %s", message.thread)
            await _tell(surface, message, busy.note)
            return
        except ServiceUnavailable:
            pass
        if self.held >= self._limit:
            log.warning("discord: storage unavailable and %d messages already held; telling the person", self.held)
            await _tell(surface, message, NOT_STORED_NOTE)
            return
        self.held += 1
        self._held_ids.add(message.message_id)
        try:
            for delay in self._delays:
                await asyncio.sleep(delay)
                if message.message_id in self._withdrawn:
                    log.info("discord: a message held during an outage was deleted; dropped: %s", message.thread)
                    return
                try:
                    await inbox.submit(replace(message, redelivered=True), surface)
                    log.info("discord: a message held during an outage was taken: %s", message.thread)
                    return
                except Overloaded as busy:
                    await _tell(surface, message, busy.note)
                    return
                except ServiceUnavailable:
                    continue
            log.warning("discord: storage still unavailable; telling the person: %s", message.thread)
            await _tell(surface, message, NOT_STORED_NOTE)
        finally:
            self.held -= 1
            self._held_ids.discard(message.message_id)
            self._withdrawn.discard(message.message_id)


async def _tell(surface: MessageSurface, message: IncomingMessage, note: str) -> None:
    try:
        reply = await surface.open_reply()
        await reply.finish(note)
    except Exception:  # the platform is failing too: the log line is all that is left
        log.exception("discord: could not tell the person their message was not taken: %s", message.thread)
