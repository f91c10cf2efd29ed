"""The answer being written in each thread, as every instance sees it, and Stop requests for
it: a Stop click may reach any instance, the one writing the answer notices the request (see
`bot.running`). Rows of `conversations`; the thread's lease (`bot.locks`) keeps one writer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from bot.domain import ThreadKey, now
from bot.schema import conversations, instances
from bot.store.db import Database, thread_filter


@dataclass(frozen=True, slots=True)
class RunningElsewhere:
    """An answer being written by some instance: its id and who asked it."""

    answer: str
    asker_id: str


class StopRequests:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def started(self, thread: ThreadKey, *, answer: str, asker_id: str) -> int | None:
        """`answer` is being written in `thread` (any earlier Stop request is dropped); returns
        the conversation's id (None: no such conversation)."""
        async with self._db.write() as conn:
            result = await conn.execute(
                update(conversations)
                .where(thread_filter(thread))
                .values(running_answer=answer, running_asker=asker_id, stop_requested_by=None)
                .returning(conversations.c.id)
            )
            found = result.scalar()
        return int(found) if found is not None else None

    async def ended(self, conversation_id: int, *, answer: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id, conversations.c.running_answer == answer)
                .values(running_answer=None, running_asker=None, stop_requested_by=None)
            )

    async def running(self, thread: ThreadKey, *, dead_after_seconds: float) -> RunningElsewhere | None:
        """The answer being written in `thread` by an instance that is alive, if any."""
        live = select(instances.c.id).where(instances.c.seen_at >= now() - timedelta(seconds=dead_after_seconds))
        query = select(conversations.c.running_answer, conversations.c.running_asker).where(
            thread_filter(thread),
            conversations.c.running_answer.is_not(None),
            conversations.c.answering_by.in_(live),
        )
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return RunningElsewhere(row.running_answer, row.running_asker or "") if row is not None else None

    async def request(self, thread: ThreadKey, *, answer: str, by: str) -> bool:
        """Ask whoever writes `answer` to stop it; False when it ended meanwhile."""
        async with self._db.write() as conn:
            result = await conn.execute(
                update(conversations)
                .where(thread_filter(thread), conversations.c.running_answer == answer)
                .values(stop_requested_by=by)
            )
            return bool(result.rowcount == 1)

    async def requested(self, answers: Mapping[int, str]) -> set[int]:
        """Of these answers (conversation id -> answer id), the ones someone asked to stop."""
        if not answers:
            return set()
        query = select(conversations.c.id, conversations.c.running_answer).where(
            conversations.c.id.in_(list(answers)), conversations.c.stop_requested_by.is_not(None)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {int(row.id) for row in rows if answers.get(int(row.id)) == row.running_answer}
