"""A person's data: exporting and erasing what one person said (`bot export` / `bot
erase`), and forgetting a conversation's stored history (`/claude forget`).

What counts as a person's data: their own user turns; the answers that answered only
them (an answer's `position` is the order of the last user turn it answered, so it
answered the user turns ordered after the previous answer up to that position; when
every one of those is theirs, the answer exists only because of them); and, for
erasure, the thread context quoted just before their own mentions (fetched for their
question, it would otherwise stay behind as a dangling quote). Quoted context fetched
for someone else's mention is text under display names, not ids: it cannot be told
apart reliably and stays until the conversation is pruned or forgotten. Their feedback
votes (👍/👎 on anyone's answers) are theirs too: exported, and erased.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import ChannelKey, ThreadKey
from bot.schema import answer_feedback, conversations, messages
from bot.store.channels import audit_entry
from bot.store.db import Database, channel_filter, thread_filter

DELETE_CHUNK = 500  # ids per DELETE statement (well under SQLite's bound-parameter limit)


@dataclass(frozen=True, slots=True)
class Person:
    """`slack:U123`: a platform and that platform's user id."""

    platform: str
    user_id: str

    @classmethod
    def parse(cls, text: str) -> Person:
        platform, _, user_id = text.strip().partition(":")
        if not platform or not user_id:
            raise ValueError(f"{text!r} is not PLATFORM:ID (e.g. slack:U123 or discord:456)")
        return cls(platform, user_id)

    def __str__(self) -> str:
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class ExportedTurn:
    conversation: str  # the conversation key, e.g. slack:T1:C1:1712345.678
    time: datetime
    role: str  # "user": their own words; "assistant": an answer that answered only them
    author: str | None
    text: str

    def as_json(self) -> dict[str, Any]:
        return {
            "conversation": self.conversation,
            "time": self.time.isoformat(),
            "role": self.role,
            "author": self.author,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class ExportedVote:
    """A feedback vote they gave on an answer (which answer: its conversation and time)."""

    conversation: str
    time: datetime  # when they voted (or last changed the vote)
    positive: bool
    model: str | None  # the model that wrote the answer
    answer_time: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "conversation": self.conversation,
            "time": self.time.isoformat(),
            "role": "feedback",
            "vote": "up" if self.positive else "down",
            "model": self.model,
            "answer_time": self.answer_time.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Erasure:
    turns: int  # their own user turns
    answers: int  # answers that answered only them
    context: int  # thread context quoted for their mentions
    conversations: int

    @property
    def rows(self) -> int:
        return self.turns + self.answers + self.context


class PeopleData:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def export(self, person: Person) -> AsyncIterator[ExportedTurn | ExportedVote]:
        """Their turns and the answers that answered only them, by conversation, in order;
        then their feedback votes, oldest first."""
        for conversation_id in await self._conversations_of(person):
            async with self._db.engine.connect() as conn:
                rows = await _rows(conn, conversation_id, with_content=True)
                key = (
                    await conn.execute(
                        select(
                            conversations.c.platform,
                            conversations.c.workspace_id,
                            conversations.c.channel_id,
                            conversations.c.thread_id,
                        ).where(conversations.c.id == conversation_id)
                    )
                ).one()
            theirs = _theirs(rows, person.user_id)
            for row in rows:
                if row.id in theirs.turns or row.id in theirs.answers:
                    yield ExportedTurn(
                        str(ThreadKey(*key)), row.created_at, row.role, row.author, row.content
                    )
        for vote in await self._votes_of(person):
            yield vote

    async def _votes_of(self, person: Person) -> list[ExportedVote]:
        query = (
            select(
                conversations.c.platform, conversations.c.workspace_id, conversations.c.channel_id,
                conversations.c.thread_id, answer_feedback.c.updated_at, answer_feedback.c.positive,
                answer_feedback.c.model, messages.c.created_at,
            )
            .select_from(
                answer_feedback.join(messages, messages.c.id == answer_feedback.c.message_id).join(conversations)
            )
            .where(answer_feedback.c.platform == person.platform, answer_feedback.c.user_id == person.user_id)
            .order_by(answer_feedback.c.updated_at, answer_feedback.c.id)
        )
        async with self._db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ExportedVote(str(ThreadKey(*row[:4])), row.updated_at, bool(row.positive), row.model, row.created_at)
            for row in rows
        ]

    async def erase(self, person: Person, *, operator: str) -> Erasure:
        """Delete their turns everywhere (one transaction per conversation), then record the
        erasure (who ran it, when, how many rows; never any content) in the audit log."""
        turns = answers = context = touched = 0
        for conversation_id in await self._conversations_of(person):
            async with self._db.write() as conn:
                # A no-op write first: it takes the conversation's row lock on PostgreSQL and
                # the write lock on SQLite, so no answer is stored in it while we decide.
                await conn.execute(
                    update(conversations)
                    .where(conversations.c.id == conversation_id)
                    .values(trim_noticed=conversations.c.trim_noticed)
                )
                theirs = _theirs(await _rows(conn, conversation_id, with_content=False), person.user_id)
                await _delete_ids(conn, [*theirs.turns, *theirs.answers, *theirs.context])
            turns += len(theirs.turns)
            answers += len(theirs.answers)
            context += len(theirs.context)
            touched += 1 if theirs.turns else 0
        result = Erasure(turns, answers, context, touched)
        async with self._db.write() as conn:
            # Their feedback votes go too (the counts per model lose them).
            await conn.execute(
                delete(answer_feedback).where(
                    answer_feedback.c.platform == person.platform, answer_feedback.c.user_id == person.user_id
                )
            )
            summary = (
                f"user {person}: {result.rows} rows deleted ({turns} turns, {answers} answers, "
                f"{context} thread context) in {touched} conversations"
            )
            await conn.execute(audit_entry(ChannelKey(person.platform, "*", "*"), operator, "erase", None, summary))
        return result

    async def forget(self, where: ChannelKey | ThreadKey, *, actor_id: str) -> int:
        """Delete the stored history of one conversation (a thread key) or of every
        conversation in a channel (a DM's channel key), with an audit row; returns how many
        messages were deleted. The conversations stay, as if they had just begun."""
        matching = (
            select(conversations.c.id).where(thread_filter(where))
            if isinstance(where, ThreadKey)
            else select(conversations.c.id).where(*channel_filter(conversations, where))
        )
        async with self._db.write() as conn:
            deleted = (
                await conn.execute(delete(messages).where(messages.c.conversation_id.in_(matching)))
            ).rowcount
            await conn.execute(
                update(conversations)
                .where(conversations.c.id.in_(matching))
                .values(context_start_id=None, trim_noticed=False)
            )
            channel = where.channel if isinstance(where, ThreadKey) else where
            scope = f"thread {where.thread_id}" if isinstance(where, ThreadKey) else "every conversation"
            await conn.execute(audit_entry(channel, actor_id, "forget", None, f"{scope}: {deleted} messages deleted"))
        return int(deleted)

    async def _conversations_of(self, person: Person) -> list[int]:
        async with self._db.engine.connect() as conn:
            result = await conn.execute(
                select(messages.c.conversation_id)
                .select_from(messages.join(conversations))
                .where(
                    conversations.c.platform == person.platform,
                    messages.c.role == "user",
                    messages.c.author_id == person.user_id,
                )
                .distinct()
                .order_by(messages.c.conversation_id)
            )
            return [int(value) for value in result.scalars()]


@dataclass(frozen=True, slots=True)
class _Theirs:
    turns: set[int]
    answers: set[int]
    context: set[int]


async def _rows(conn: AsyncConnection, conversation_id: int, *, with_content: bool) -> Sequence[Any]:
    """Every turn of one conversation in conversation order."""
    order = func.coalesce(messages.c.position, messages.c.id)
    columns = [
        messages.c.id, messages.c.role, messages.c.rank, messages.c.author_id,
        order.label("sort_order"),
    ]
    if with_content:
        columns += [messages.c.author, messages.c.content, messages.c.created_at]
    result = await conn.execute(
        select(*columns)
        .where(messages.c.conversation_id == conversation_id)
        .order_by(order, messages.c.rank, messages.c.id)
    )
    return result.all()


def _theirs(rows: Sequence[Any], user_id: str) -> _Theirs:
    """Which of a conversation's rows are one person's (see the module's docstring)."""
    turns: set[int] = set()
    answers: set[int] = set()
    quoted_for: dict[int, list[int]] = {}  # mention order -> context rows quoted before it
    window: list[str | None] = []  # authors of the user turns since the previous answer
    answered: list[str | None] = []  # ... and those the previous answer answered
    previous_answer_order: int | None = None
    for row in rows:
        if row.role == "user" and row.rank < 0:
            quoted_for.setdefault(int(row.sort_order), []).append(int(row.id))
        elif row.role == "user":
            window.append(row.author_id)
            if row.author_id == user_id:
                turns.add(int(row.id))
        else:
            if row.sort_order != previous_answer_order:  # two answers at one order answered the same turns
                answered, window = window, []
                previous_answer_order = int(row.sort_order)
            if answered and all(author == user_id for author in answered):
                answers.add(int(row.id))
    context = {row_id for order, ids in quoted_for.items() if order in turns for row_id in ids}
    return _Theirs(turns, answers, context)


async def _delete_ids(conn: AsyncConnection, ids: list[int]) -> None:
    for start in range(0, len(ids), DELETE_CHUNK):
        await conn.execute(delete(messages).where(messages.c.id.in_(ids[start : start + DELETE_CHUNK])))
