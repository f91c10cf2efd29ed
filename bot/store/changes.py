"""People deleting and editing their messages: the stored user turn of a platform message,
found by the platform's message id within the channel (or thread) it was posted in.

Only a person's own turns are touched (role `user`, rank 0: not Claude's answers, not
quoted thread context, which is one block rendered under display names). A deleted turn is
deleted with the thread context quoted for it; the answers stay stored, and
`bot.prompt.resendable` leaves out of later requests an answer whose every question is gone.
"""

from __future__ import annotations

from sqlalchemy import Select, and_, delete, or_, select, update

from bot.domain import PostedMessage, now
from bot.schema import conversations, messages, processed_events
from bot.store.db import Database, storable


def _turns_of(posted: PostedMessage) -> Select[int, int]:
    """The stored user turns of `posted` (a message id is unique within its channel)."""
    where = and_(
        conversations.c.platform == posted.platform,
        conversations.c.workspace_id == posted.workspace_id,
        # A Discord message posted in a thread names the thread; the conversation of a
        # mention in a channel is keyed by that channel.
        or_(conversations.c.channel_id == posted.channel_id, conversations.c.thread_id == posted.channel_id),
    )
    return (
        select(messages.c.id, messages.c.conversation_id)
        .select_from(messages.join(conversations))
        .where(
            where,
            messages.c.platform_message_id == posted.message_id,
            messages.c.role == "user",
            messages.c.rank == 0,
        )
    )


class MessageChangeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def delete(self, posted: PostedMessage) -> int:
        """Delete the turn of a deleted message and the thread context quoted for it; returns
        how many turns were deleted. Its event is claimed either way: a delivery of the
        message that comes late (a retry after an outage) is then not taken and answered."""
        async with self._db.write() as conn:
            found = list((await conn.execute(_turns_of(posted))).all())
            for turn_id, conversation_id in found:
                await conn.execute(
                    delete(messages).where(
                        messages.c.conversation_id == conversation_id,
                        or_(
                            messages.c.id == turn_id,
                            and_(messages.c.rank < 0, messages.c.position == turn_id),
                        ),
                    )
                )
            if not found:
                await conn.execute(
                    self._db.insert(processed_events)
                    .values(platform=posted.platform, event_id=posted.event_id, seen_at=now())
                    .on_conflict_do_nothing(index_elements=["platform", "event_id"])
                )
            return len(found)

    async def edit(self, posted: PostedMessage, text: str) -> int:
        """Replace the stored text of an edited message's turn; returns how many changed."""
        async with self._db.engine.connect() as conn:
            ids = [turn_id for turn_id, _ in await conn.execute(_turns_of(posted))]
        if not ids:
            return 0
        content = storable(text)
        async with self._db.write() as conn:
            result = await conn.execute(
                update(messages).where(messages.c.id.in_(ids), messages.c.content != content).values(content=content)
            )
            return int(result.rowcount)
