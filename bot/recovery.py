"""Answering what a dead instance accepted but never answered.

Every accepted message is stored as a pending turn owned by the instance that
accepted it, and each instance says it is alive every few seconds. A pending
turn whose owner has gone quiet was being answered by a process that died (a
SIGKILL, a crash, a lost machine): at start-up and then every interval, an
instance takes such a turn over and answers it through a surface the platform
rebuilds from what was stored. The thread lock and `policy.already_answered`
keep this from ever answering twice, with any number of instances.

A turn older than the window, or one whose answer was already started
`max_attempts` times, gets one short note instead of silence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from bot.conversation import AcceptedTurn, ConversationService
from bot.domain import Actor, IncomingMessage, OrphanedTurn, ThreadKey, now
from bot.ports import MessageSurface
from bot.store import Store

log = logging.getLogger(__name__)

RESTARTED_NOTE = "_(I was restarted before I could answer this; please ask again.)_"
FORGOTTEN_AFTER = timedelta(days=1)  # a turn left pending longer than this is not brought up again

SurfaceFor = Callable[[IncomingMessage], Awaitable[MessageSurface | None]]
"""The platform's surface for a stored message (None: the platform cannot reach it now)."""


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    dead_after: timedelta = timedelta(seconds=30)  # an instance silent this long has died
    settle_after: timedelta = timedelta(seconds=30)  # younger turns are left to their own delivery
    window: timedelta = timedelta(minutes=15)  # older turns get the note instead of an answer
    max_attempts: int = 3


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    answered: int = 0  # threads answered
    told: int = 0  # threads past the window or out of attempts: the person got the note
    skipped: int = 0  # threads taken by another instance, or the platform could not be reached


class Recovery:
    def __init__(
        self, store: Store, service: ConversationService, surface_for: SurfaceFor, policy: RecoveryPolicy
    ) -> None:
        self._store = store
        self._service = service
        self._surface_for = surface_for
        self._policy = policy

    async def run_once(self) -> RecoveryResult:
        moment = now()
        orphans = await self._store.turns.orphaned(
            alive_since=moment - self._policy.dead_after,
            created_after=moment - FORGOTTEN_AFTER,
            created_before=moment - self._policy.settle_after,
        )
        by_thread: dict[ThreadKey, list[OrphanedTurn]] = {}
        for orphan in orphans:  # oldest first
            by_thread.setdefault(orphan.thread, []).append(orphan)
        answered = told = skipped = 0
        for left in by_thread.values():
            too_late = left[-1].created_at < moment - self._policy.window or any(
                orphan.attempts >= self._policy.max_attempts for orphan in left
            )
            outcome = await self._recover(left, too_late=too_late)
            answered += outcome == "answered"
            told += outcome == "told"
            skipped += outcome == "skipped"
        if orphans:
            log.info("recovery: %d threads answered, %d told to ask again, %d skipped", answered, told, skipped)
        return RecoveryResult(answered, told, skipped)

    async def _recover(self, left: list[OrphanedTurn], *, too_late: bool) -> str:
        """One thread's orphans, oldest first: one answer covers them all (as for messages that
        arrived while an answer was written), or one note tells the person."""
        newest = _stored_message(left[-1])
        try:
            surface = await self._surface_for(newest)
        except Exception:
            log.exception("recovery: the platform could not rebuild a turn's surface: thread=%s", newest.thread)
            surface = None
        if surface is None:
            return "skipped"
        for orphan in left:
            if not await self._store.turns.take_over(orphan, owner=self._service.instance_id):
                return "skipped"  # another instance is on it
        verb = "closing" if too_late else "answering"
        log.info("recovery: %s %d turns whose instance died: thread=%s", verb, len(left), newest.thread)
        if too_late:
            await self._service.give_up(newest, surface, RESTARTED_NOTE)
            return "told"
        await self._service.answer(AcceptedTurn(newest), surface)
        return "answered"


def _stored_message(orphan: OrphanedTurn) -> IncomingMessage:
    """The message as the platform first delivered it, as far as the store remembers it."""
    thread = orphan.thread
    return IncomingMessage(
        thread=thread,
        event_id=f"recovered:{orphan.id}",
        message_id=orphan.message_id,
        actor=Actor(thread.platform, orphan.author_id, orphan.author),
        text=orphan.text,
        mentions_bot=True,
        received_at=orphan.created_at,
    )
