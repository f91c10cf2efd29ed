"""Stored answers as conversation controls see them: which turn and who asked it, whether it
is the thread's latest, superseding one (Regenerate), extending one (Continue), and the
feedback votes on them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import aliased

from bot.controls import FeedbackCount
from bot.domain import ChannelKey, ThreadKey, TokenUsage, now
from bot.schema import answer_feedback, conversations, messages
from bot.store.db import Database, channel_filter, storable
from bot.store.turns import ANSWERED, PENDING


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    id: int
    thread: ThreadKey
    content: str
    model: str | None
    stop_reason: str | None
    superseded: bool
    is_latest: bool  # no later answer stands in its thread
    asker_id: str | None  # who asked the turn it answered (None: that turn is gone)
    asker_name: str | None
    asker_message_id: str | None  # the platform's id of that turn


class AnswerStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, answer_id: int) -> StoredAnswer | None:
        asked = aliased(messages)
        query = (
            select(
                messages.c.id, messages.c.content, messages.c.model, messages.c.stop_reason,
                messages.c.superseded, messages.c.conversation_id,
                conversations.c.platform, conversations.c.workspace_id,
                conversations.c.channel_id, conversations.c.thread_id,
                asked.c.author_id, asked.c.author, asked.c.platform_message_id,
            )
            .select_from(
                messages.join(conversations, conversations.c.id == messages.c.conversation_id).outerjoin(
                    asked, and_(asked.c.id == messages.c.position, asked.c.role == "user")
                )
            )
            .where(messages.c.id == answer_id, messages.c.role == "assistant")
        )
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            latest = (
                await conn.execute(
                    select(func.max(func.coalesce(messages.c.position, messages.c.id))).where(
                        messages.c.conversation_id == row.conversation_id,
                        messages.c.role == "assistant",
                        messages.c.superseded.is_(False),
                    )
                )
            ).scalar()
            order = func.coalesce(messages.c.position, messages.c.id)
            mine = (await conn.execute(select(order).where(messages.c.id == row.id))).scalar()
        thread = ThreadKey(row.platform, row.workspace_id, row.channel_id, row.thread_id)
        return StoredAnswer(
            row.id, thread, row.content, row.model, row.stop_reason, bool(row.superseded),
            is_latest=not row.superseded and latest is not None and mine is not None and mine >= latest,
            asker_id=row.author_id, asker_name=row.author, asker_message_id=row.platform_message_id,
        )

    async def supersede(self, answer_id: int, *, owner: str) -> None:
        """Regenerate: the answer stays stored (and in the chat) but is never resent to Claude,
        and the turn it answered is pending again, owned by `owner` (the instance answering it
        again), in the same transaction: if that instance dies first, recovery answers it."""
        async with self._db.write() as conn:
            asked = (
                await conn.execute(
                    update(messages)
                    .where(messages.c.id == answer_id, messages.c.role == "assistant")
                    .values(superseded=True)
                    .returning(messages.c.position)
                )
            ).scalar()
            if asked is not None:
                await conn.execute(
                    update(messages)
                    .where(messages.c.id == asked, messages.c.role == "user")
                    .values(state=PENDING, owner=owner or None, attempts=1, requeued_at=now())
                )

    async def restore_unless_replaced(self, answer_id: int) -> bool:
        """A Regenerate that stored no new answer (a limit, an error): the superseded answer
        stands again. True if it was restored."""
        later = (
            select(messages.c.id)
            .where(
                messages.c.conversation_id == select(messages.c.conversation_id)
                .where(messages.c.id == answer_id)
                .scalar_subquery(),
                messages.c.role == "assistant",
                messages.c.id > answer_id,
            )
            .exists()
        )
        async with self._db.write() as conn:
            asked = (
                await conn.execute(
                    update(messages)
                    .where(messages.c.id == answer_id, messages.c.superseded.is_(True), ~later)
                    .values(superseded=False)
                    .returning(messages.c.position)
                )
            ).scalar()
            if asked is None:
                return False
            # The turn it answers has that answer again: not pending (recovery would answer it twice).
            await conn.execute(
                update(messages)
                .where(messages.c.id == asked, messages.c.role == "user", messages.c.state != ANSWERED)
                .values(state=ANSWERED)
            )
            return True

    async def extend(self, answer_id: int, more: str, *, stop_reason: str | None, usage: TokenUsage) -> None:
        """Continue: the continuation joins the answer it continues (one assistant turn)."""
        async with self._db.write() as conn:
            await conn.execute(
                update(messages)
                .where(messages.c.id == answer_id)
                .values(
                    content=messages.c.content + storable(more),
                    stop_reason=stop_reason,
                    input_tokens=messages.c.input_tokens + usage.input_tokens,
                    output_tokens=messages.c.output_tokens + usage.output_tokens,
                    cache_read_tokens=messages.c.cache_read_tokens + usage.cache_read_tokens,
                    cache_write_tokens=messages.c.cache_write_tokens + usage.cache_write_tokens,
                )
            )

    async def vote(self, answer: StoredAnswer, user_id: str, *, positive: bool) -> bool:
        """One vote per person per answer: a new one, or the old one changed. True if it was new."""
        moment = now()
        thread = answer.thread
        async with self._db.write() as conn:
            existing = (
                await conn.execute(
                    select(answer_feedback.c.id).where(
                        answer_feedback.c.message_id == answer.id, answer_feedback.c.user_id == user_id
                    )
                )
            ).first()
            statement = (
                self._db.insert(answer_feedback)
                .values(
                    message_id=answer.id, platform=thread.platform, workspace_id=thread.workspace_id,
                    channel_id=thread.channel_id, user_id=user_id, positive=positive, model=answer.model,
                    created_at=moment, updated_at=moment,
                )
                .on_conflict_do_update(
                    index_elements=["message_id", "user_id"], set_={"positive": positive, "updated_at": moment}
                )
            )
            await conn.execute(statement)
            return existing is None

    async def votes(self, answer_id: int) -> dict[str, bool]:
        """user id -> positive, for one answer."""
        async with self._db.engine.connect() as conn:
            result = await conn.execute(
                select(answer_feedback.c.user_id, answer_feedback.c.positive).where(
                    answer_feedback.c.message_id == answer_id
                )
            )
            return {row.user_id: bool(row.positive) for row in result}

    async def feedback_counts(self, channel: ChannelKey, since: datetime) -> list[FeedbackCount]:
        """Votes in one channel since `since`, per model (for `/claude usage`)."""
        query = (
            select(
                answer_feedback.c.model,
                func.sum(case((answer_feedback.c.positive.is_(True), 1), else_=0)),
                func.sum(case((answer_feedback.c.positive.is_(False), 1), else_=0)),
            )
            .where(*channel_filter(answer_feedback, channel), answer_feedback.c.updated_at >= since)
            .group_by(answer_feedback.c.model)
            .order_by(answer_feedback.c.model)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [FeedbackCount(model or "unknown", int(up or 0), int(down or 0)) for model, up, down in rows]
