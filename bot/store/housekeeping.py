"""Reporting and pruning: usage per model, and forgetting stale conversations, old
event claims and messages past their retention in batches that let replies write in
between."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_

from bot.domain import ChannelKey, ModelUsage, PruneResult, TokenUsage
from bot.schema import conversations, early_replies, instances, messages, processed_events
from bot.store.db import Database, channel_filter


class Housekeeping:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def usage_summary(self, channel: ChannelKey, since: datetime) -> list[ModelUsage]:
        """Assistant turns and their tokens in one channel since `since`, per model."""
        query = (
            select(
                messages.c.model,
                func.count(),
                func.coalesce(func.sum(messages.c.input_tokens), 0),
                func.coalesce(func.sum(messages.c.output_tokens), 0),
                func.coalesce(func.sum(messages.c.cache_read_tokens), 0),
                func.coalesce(func.sum(messages.c.cache_write_tokens), 0),
                func.coalesce(func.sum(messages.c.web_searches), 0),
                func.coalesce(func.sum(messages.c.web_fetches), 0),
            )
            .select_from(messages.join(conversations))
            .where(
                *channel_filter(conversations, channel),
                messages.c.role == "assistant",
                messages.c.created_at >= since,
            )
            .group_by(messages.c.model)
            .order_by(messages.c.model)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ModelUsage(model or "unknown", int(count), TokenUsage(int(i), int(o), int(r), int(w), int(s), int(f)))
            for model, count, i, o, r, w, s, f in rows
        ]

    async def prune(
        self, idle_before: datetime, events_before: datetime, batch_size: int = 5000
    ) -> PruneResult:
        """Delete conversations idle since before `idle_before` (with their turns), and old
        event claims, in small batches so replies can write in between."""
        stale = select(conversations.c.id).where(conversations.c.last_activity_at < idle_before)
        message_batch = (
            select(messages.c.id).where(messages.c.conversation_id.in_(stale)).limit(batch_size)
        )
        conversation_batch = stale.limit(batch_size)
        event_batch = (
            select(processed_events.c.platform, processed_events.c.event_id)
            .where(processed_events.c.seen_at < events_before)
            .limit(batch_size)
        )
        deleted_messages = await self._delete_in_batches(
            delete(messages).where(messages.c.id.in_(message_batch.scalar_subquery()))
        )
        deleted_conversations = await self._delete_in_batches(
            delete(conversations).where(
                conversations.c.id.in_(conversation_batch.scalar_subquery()),
                # re-checked: a conversation that woke up meanwhile is kept
                conversations.c.last_activity_at < idle_before,
            )
        )
        deleted_events = await self._delete_in_batches(
            delete(processed_events).where(
                tuple_(processed_events.c.platform, processed_events.c.event_id).in_(event_batch)
            )
        )
        async with self._db.write() as conn:  # instances that stopped saying they are alive long ago
            await conn.execute(delete(instances).where(instances.c.seen_at < events_before))
            # and notes of early replies whose mention never came (one row a thread: few)
            await conn.execute(delete(early_replies).where(early_replies.c.seen_at < events_before))
        return PruneResult(deleted_conversations, deleted_messages, deleted_events)

    async def expire(self, created_before: datetime, batch_size: int = 5000) -> int:
        """RETENTION_DAYS: delete every message stored before `created_before`, in threads
        still in use too, in small batches so replies can write in between."""
        batch = select(messages.c.id).where(messages.c.created_at < created_before).limit(batch_size)
        return await self._delete_in_batches(delete(messages).where(messages.c.id.in_(batch.scalar_subquery())))

    async def _delete_in_batches(self, statement: Any) -> int:
        total = 0
        while True:
            async with self._db.write() as conn:
                count = (await conn.execute(statement)).rowcount
            total += count
            if count == 0:
                return total
            await asyncio.sleep(0)  # let replies take the writer between batches


