"""Where each answer was shown: the platform's message ids, so that replying to any of
them continues that conversation (Discord's reply mode), and which of them carries the
thread's answer buttons (Discord), after a restart and on every instance."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.controls import ControlsMessage
from bot.domain import ThreadKey, now
from bot.schema import conversations, shown_messages
from bot.store.db import Database, thread_filter


class ShownMessages:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def remember(self, thread: ThreadKey, message_ids: list[str], *, answer_id: int | None = None) -> None:
        """The messages `thread`'s answer (`answer_id`, if it was stored) was shown in."""
        if not message_ids:
            return
        async with self._db.write() as conn:
            conversation_id = (await conn.execute(select(conversations.c.id).where(thread_filter(thread)))).scalar()
            if conversation_id is None:  # forgotten or pruned meanwhile: nothing to continue
                return
            moment = now()
            rows = [
                {
                    "platform": thread.platform,
                    "platform_message_id": message_id,
                    "conversation_id": conversation_id,
                    "answer_id": answer_id,
                    "created_at": moment,
                }
                for message_id in dict.fromkeys(message_ids)
            ]
            await conn.execute(  # a list of rows: compiled once and cached (not `.values(rows)`)
                self._db.insert(shown_messages).on_conflict_do_nothing(
                    index_elements=["platform", "platform_message_id"]
                ),
                rows,
            )

    async def move_controls(
        self, thread: ThreadKey, carrier: ControlsMessage | None, *, answer_id: int | None
    ) -> list[ControlsMessage]:
        """`carrier` now shows `thread`'s answer buttons (None: no message does); returns the
        messages that showed them until now, whose buttons are to be taken off."""
        async with self._db.write() as conn:
            conversation_id = (await conn.execute(select(conversations.c.id).where(thread_filter(thread)))).scalar()
            if conversation_id is None:
                return []
            mine = (shown_messages.c.conversation_id == conversation_id, shown_messages.c.has_controls.is_(True))
            where = select(shown_messages.c.channel_id, shown_messages.c.platform_message_id).where(*mine)
            carried = (await conn.execute(where)).all()
            await conn.execute(update(shown_messages).where(*mine).values(has_controls=False))
            if carrier is not None:
                row = {
                    "platform": thread.platform,
                    "platform_message_id": carrier.message_id,
                    "conversation_id": conversation_id,
                    "answer_id": answer_id,
                    "created_at": now(),
                    "channel_id": carrier.channel_id,
                    "has_controls": True,
                }
                await conn.execute(
                    self._db.insert(shown_messages)
                    .values(row)
                    .on_conflict_do_update(
                        index_elements=["platform", "platform_message_id"],
                        set_={"channel_id": carrier.channel_id, "has_controls": True},
                    )
                )
        return [
            ControlsMessage(channel_id, message_id)
            for channel_id, message_id in carried
            if channel_id is not None and (carrier is None or message_id != carrier.message_id)
        ]

    async def conversation_of(self, platform: str, message_id: str) -> ThreadKey | None:
        """The conversation whose answer was shown in that platform message, if any."""
        query = (
            select(
                conversations.c.platform,
                conversations.c.workspace_id,
                conversations.c.channel_id,
                conversations.c.thread_id,
            )
            .select_from(shown_messages.join(conversations))
            .where(shown_messages.c.platform == platform, shown_messages.c.platform_message_id == message_id)
        )
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return ThreadKey(row.platform, row.workspace_id, row.channel_id, row.thread_id) if row is not None else None
