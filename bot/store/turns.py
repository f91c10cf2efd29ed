"""Conversations and their turns: claiming events, storing what was said, reading the
history that is still sent to Claude."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import History, IncomingMessage, OrphanedTurn, StoredTurn, ThreadKey, TokenUsage, now
from bot.schema import attachments, conversations, early_replies, instances, messages, processed_events
from bot.store.db import THREAD_BY_PARAMS, Database, storable, thread_by_params, thread_filter, thread_params
from bot.store.group_commit import GroupCommit
from bot.store.intake import Intake, accept_many

PENDING, ANSWERED, FAILED = "pending", "answered", "failed"  # a user turn's state


# The statements of every turn, built once: a statement object reused keeps its compiled
# form's cache key, which SQLAlchemy would otherwise work out again on each call.
_IN_CONTEXT_ORDER = func.coalesce(messages.c.position, messages.c.id)
_EARLY_REPLIES_BY_PARAMS = thread_by_params(early_replies)
_HISTORY = (
    select(
        conversations.c.trim_noticed,
        conversations.c.read_back_from,
        select(early_replies.c.seen_at).where(_EARLY_REPLIES_BY_PARAMS).exists().label("replies_came_early"),
        messages.c.id,
        messages.c.role,
        messages.c.author,
        messages.c.content,
        messages.c.position,
        messages.c.platform_message_id,
        messages.c.stop_reason,
        messages.c.sent_at,
        select(attachments.c.id).where(attachments.c.message_id == messages.c.id).exists().label("has_files"),
    )
    .select_from(
        conversations.outerjoin(  # the conversation's row even when it has no turn in context
            messages,
            and_(
                messages.c.conversation_id == conversations.c.id,
                messages.c.superseded.is_(False),
                _IN_CONTEXT_ORDER >= func.coalesce(conversations.c.context_start_id, 0),
            ),
        )
    )
    .where(THREAD_BY_PARAMS)
    .order_by(_IN_CONTEXT_ORDER, messages.c.rank, messages.c.id)
)
_READ_BACK_DONE = update(conversations).where(THREAD_BY_PARAMS).values(read_back_from=None)
_EARLY_REPLIES_READ = delete(early_replies).where(_EARLY_REPLIES_BY_PARAMS)
_CONVERSATION_ID = select(conversations.c.id).where(THREAD_BY_PARAMS)
_SETTLE = (
    update(messages)
    .where(
        messages.c.conversation_id == _CONVERSATION_ID.scalar_subquery(),
        messages.c.state == PENDING,
        _IN_CONTEXT_ORDER <= bindparam("up_to"),
    )
    .values(state=bindparam("new_state"))
)
_INSERT_TURN = messages.insert().returning(messages.c.id)
_CLAIM = select(processed_events.c.event_id).where(
    processed_events.c.platform == bindparam("in_platform"), processed_events.c.event_id == bindparam("in_event")
)


class TurnStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Concurrent intakes share a transaction on SQLite, written a batch at a time.
        self._intake: GroupCommit[Intake, bool] = GroupCommit(
            db, self._accept, lambda conn, batch: accept_many(db, conn, batch)
        )
        upsert = db.insert(conversations)  # the dialect's, for ON CONFLICT
        self._touch = upsert.on_conflict_do_update(
            index_elements=["platform", "workspace_id", "channel_id", "thread_id"],
            set_={"last_activity_at": upsert.excluded.last_activity_at},
        ).returning(conversations.c.id)

    async def accept_message(self, message: IncomingMessage, *, owner: str = "", read_back: bool = False) -> bool:
        """Claim the message's event and store it as a pending user turn owned by the
        instance `owner`, in one transaction; with `read_back`, the thread's replies after
        it are to be read back before the conversation's next answer.

        False (and nothing written) when the event was already claimed. Doing both
        at once means a crash can never leave a claimed event whose turn is lost.
        """
        return await self._intake.run(Intake(message, owner, read_back))

    async def _accept(self, conn: AsyncConnection, intake: Intake) -> bool:
        message, owner, read_back = intake
        if not await self._claim(conn, message.thread.platform, message.event_id):
            return False
        conversation_id = await self._touch_conversation(conn, message.thread)
        if read_back:
            await conn.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(read_back_from=message.message_id)
            )
        await conn.execute(
            messages.insert().values(
                conversation_id=conversation_id,
                role="user",
                author=storable(message.actor.display_name),
                author_id=message.actor.user_id,
                content=storable(message.text),
                platform_message_id=message.message_id,
                created_at=now(),
                sent_at=message.sent_at,
                state=PENDING,
                attempts=1,
                owner=owner or None,
            )
        )
        return True

    async def append_answer(
        self,
        thread: ThreadKey,
        content: str,
        *,
        after_order: int,
        model: str | None = None,
        stop_reason: str | None = None,
        usage: TokenUsage | None = None,
    ) -> int:
        """Store Claude's answer right after `after_order` (the order of the last user turn it
        answered), whatever arrived since, and mark the turns it answered; returns its id."""
        return await self._insert_turn(
            thread, "assistant", content,
            position=after_order, rank=1, model=model, stop_reason=stop_reason, usage=usage,
        )

    async def settle(self, thread: ThreadKey, *, up_to_order: int, state: str) -> None:
        """The pending user turns up to `up_to_order` got their answer (`ANSWERED`) or an
        error was shown for them (`FAILED`)."""
        async with self._db.write() as conn:
            await self._settle(conn, thread, up_to_order, state)

    async def settle_message(self, thread: ThreadKey, message_id: str, state: str) -> None:
        """One pending user turn (by its platform message id) is settled on its own."""
        mine = select(conversations.c.id).where(thread_filter(thread)).scalar_subquery()
        async with self._db.write() as conn:
            await conn.execute(
                update(messages)
                .where(
                    messages.c.conversation_id == mine,
                    messages.c.platform_message_id == message_id,
                    messages.c.state == PENDING,
                )
                .values(state=state)
            )

    async def _settle(self, conn: AsyncConnection, thread: ThreadKey, up_to_order: int, state: str) -> None:
        await conn.execute(_SETTLE, {**thread_params(thread), "up_to": up_to_order, "new_state": state})

    async def orphaned(
        self, *, alive_since: datetime, created_after: datetime, created_before: datetime
    ) -> list[OrphanedTurn]:
        """Pending turns whose owner has not said it is alive since `alive_since` (it died
        while answering them), created (or put back to pending by Regenerate: `created_at`
        is then that moment) in the given window, oldest first."""
        live = select(instances.c.id).where(instances.c.seen_at >= alive_since)
        since = func.coalesce(messages.c.requeued_at, messages.c.created_at)  # Regenerate: pending again
        query = (
            select(
                messages.c.id,
                conversations.c.platform,
                conversations.c.workspace_id,
                conversations.c.channel_id,
                conversations.c.thread_id,
                messages.c.platform_message_id,
                messages.c.author,
                messages.c.author_id,
                messages.c.content,
                since.label("created_at"),
                messages.c.attempts,
            )
            .select_from(messages.join(conversations))
            .where(
                messages.c.state == PENDING,
                since > created_after,
                since <= created_before,
                or_(messages.c.owner.is_(None), messages.c.owner.not_in(live)),
            )
            .order_by(messages.c.id)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            OrphanedTurn(
                id=int(r.id),
                thread=ThreadKey(r.platform, r.workspace_id, r.channel_id, r.thread_id),
                message_id=r.platform_message_id or "",
                author=r.author or "",
                author_id=r.author_id or "",
                text=r.content,
                created_at=r.created_at,
                attempts=int(r.attempts),
            )
            for r in rows
        ]

    async def lease_thread(
        self, thread: ThreadKey, *, owner: str, dead_after_seconds: float, stale_after_seconds: float = 900.0
    ) -> bool:
        """Hold the conversation for `owner` while it answers; False while another instance
        holds it (one that is alive, for a lease younger than `stale_after_seconds`)."""
        moment = now()
        live = select(instances.c.id).where(instances.c.seen_at >= moment - timedelta(seconds=dead_after_seconds))
        async with self._db.write() as conn:
            result = await conn.execute(
                update(conversations)
                .where(
                    thread_filter(thread),
                    or_(
                        conversations.c.answering_by.is_(None),
                        conversations.c.answering_by == owner,
                        conversations.c.answering_by.not_in(live),
                        conversations.c.answering_since < moment - timedelta(seconds=stale_after_seconds),
                    ),
                )
                .values(answering_by=owner, answering_since=moment)
            )
            return bool(result.rowcount == 1)

    async def release_thread(self, thread: ThreadKey, *, owner: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(conversations)
                .where(thread_filter(thread), conversations.c.answering_by == owner)
                .values(answering_by=None, answering_since=None)
            )

    async def take_over(self, turn: OrphanedTurn, *, owner: str) -> bool:
        """Make `owner` the one answering an orphaned turn (counting an attempt); False when
        it is no longer an orphan (answered meanwhile, or another instance took it)."""
        async with self._db.write() as conn:
            result = await conn.execute(
                update(messages)
                .where(
                    messages.c.id == turn.id,
                    messages.c.state == PENDING,
                    messages.c.attempts == turn.attempts,
                )
                .values(owner=owner, attempts=turn.attempts + 1)
            )
            return bool(result.rowcount == 1)

    async def add_thread_context(self, thread: ThreadKey, before_message_id: str, content: str) -> bool:
        """Put the earlier messages of a thread just before the user turn of `before_message_id`."""
        async with self._db.engine.connect() as conn:
            mention = (
                await conn.execute(
                    select(messages.c.id)
                    .select_from(messages.join(conversations))
                    .where(thread_filter(thread), messages.c.platform_message_id == before_message_id)
                )
            ).scalar()
        if mention is None:
            return False
        await self._insert_turn(thread, "user", content, position=int(mention), rank=-1)
        return True

    async def _insert_turn(
        self,
        thread: ThreadKey,
        role: str,
        content: str,
        *,
        position: int | None = None,
        rank: int = 0,
        model: str | None = None,
        stop_reason: str | None = None,
        usage: TokenUsage | None = None,
    ) -> int:
        usage = usage or TokenUsage()
        async with self._db.write() as conn:
            conversation_id = await self._touch_conversation(conn, thread)
            turn = {
                "conversation_id": conversation_id,
                "role": role,
                "position": position,
                "rank": rank,
                "content": storable(content),
                "model": model,
                "stop_reason": stop_reason,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "web_searches": usage.web_searches,
                "web_fetches": usage.web_fetches,
                "created_at": now(),
            }
            turn_id = (await conn.execute(_INSERT_TURN, turn)).scalar_one()
            if role == "assistant" and position is not None:
                await self._settle(conn, thread, position, ANSWERED)
            return int(turn_id)

    async def is_claimed(self, platform: str, event_id: str) -> bool:
        """Whether a delivery of this event was taken already (a later one is a duplicate)."""
        async with self._db.engine.connect() as conn:
            found = await conn.execute(_CLAIM, {"in_platform": platform, "in_event": event_id})
            return found.first() is not None

    async def conversation_exists(self, thread: ThreadKey) -> bool:
        async with self._db.engine.connect() as conn:
            return (await conn.execute(_CONVERSATION_ID, thread_params(thread))).first() is not None

    async def load_history(self, thread: ThreadKey) -> History:
        """The turns still in context, oldest first."""
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(_HISTORY, thread_params(thread))).all()
        if not rows:
            return History([], False)
        turns = [
            StoredTurn(r.id, r.role, r.author, r.content, r.position, r.platform_message_id, r.stop_reason, r.sent_at)
            for r in rows
            if r.id is not None
        ]
        first = rows[0]
        return History(
            turns,
            bool(first.trim_noticed),
            first.read_back_from,
            bool(first.replies_came_early),
            has_attachments=any(r.has_files for r in rows),
        )

    async def note_early_reply(self, thread: ThreadKey) -> None:
        """A reply came while the thread was no conversation: its mention, if one is on its
        way, is to read the thread back. Committed before the caller looks for the conversation
        again, so a mention stored after that look finds the note. On the ack's path: written
        before the answers' writes, as intakes are."""
        async with self._db.write(first=True) as conn:
            await conn.execute(
                self._db.insert(early_replies)
                .values(
                    platform=thread.platform,
                    workspace_id=thread.workspace_id,
                    channel_id=thread.channel_id,
                    thread_id=thread.thread_id,
                    seen_at=now(),
                )
                .on_conflict_do_nothing()
            )

    async def replies_read_back(self, thread: ThreadKey) -> None:
        params = thread_params(thread)
        async with self._db.write() as conn:
            await conn.execute(_READ_BACK_DONE, params)
            await conn.execute(_EARLY_REPLIES_READ, params)

    async def reposition(self, moves: dict[int, int]) -> None:
        """Give turns (by id) new positions (see policy.in_posting_order)."""
        async with self._db.write() as conn:
            for turn_id, position in moves.items():
                await conn.execute(update(messages).where(messages.c.id == turn_id).values(position=position))

    async def trim_context(self, thread: ThreadKey, *, first_kept: int) -> None:
        """Stop sending turns ordered before `first_kept` (they stay stored), and remember
        that the person has been told."""
        async with self._db.write() as conn:
            await conn.execute(
                update(conversations)
                .where(thread_filter(thread))
                .values(context_start_id=first_kept, trim_noticed=True)
            )

    async def start_fresh(self, thread: ThreadKey) -> None:
        """`/claude new`: later turns start a new context; the old ones stay stored."""
        async with self._db.write() as conn:
            last = (
                await conn.execute(
                    select(func.max(messages.c.id))
                    .select_from(messages.join(conversations))
                    .where(thread_filter(thread))
                )
            ).scalar()
            await conn.execute(
                update(conversations)
                .where(thread_filter(thread))
                .values(context_start_id=(last or 0) + 1, trim_noticed=False)
            )

    async def _claim(self, conn: AsyncConnection, platform: str, event_id: str) -> bool:
        statement = (
            self._db.insert(processed_events)
            .values(platform=platform, event_id=event_id, seen_at=now())
            .on_conflict_do_nothing(index_elements=["platform", "event_id"])
        )
        result = await conn.execute(statement)
        return bool(result.rowcount == 1)

    async def _touch_conversation(self, conn: AsyncConnection, thread: ThreadKey) -> int:
        """Create the conversation if new, mark it active; returns its id."""
        moment = now()
        row = {
            "platform": thread.platform,
            "workspace_id": thread.workspace_id,
            "channel_id": thread.channel_id,
            "thread_id": thread.thread_id,
            "trim_noticed": False,
            "created_at": moment,
            "last_activity_at": moment,
        }
        return int((await conn.execute(self._touch, row)).scalar_one())

