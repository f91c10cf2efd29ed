"""The service's memory: conversations, their turns, channel settings, claimed events.

Queries are named by what they are for. All timestamps are UTC. On SQLite the
service's own writes are serialized by one in-process lock (SQLite has a single
writer anyway, and waiting on a lock is cheaper than retrying on "database is
locked"); other processes are covered by WAL mode and a busy timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, event, func, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.config import sqlite_path
from bot.domain import (
    SETTING_NAMES,
    ChannelKey,
    History,
    IncomingMessage,
    ModelUsage,
    PruneResult,
    StoredTurn,
    ThreadKey,
    TokenUsage,
    now,
)
from bot.locks import advisory_key
from bot.schema import audit_log, channel_settings, conversations, messages, processed_events

SettingsRows = dict[str, dict[str, Any]]  # channel id -> setting name -> stored value (None: not set)

# Settings are read on every turn and change rarely: each instance keeps a channel's
# rows this long (a change made on another instance shows up within this time).
SETTINGS_CACHE_SECONDS = 5.0


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=8, max_overflow=8, pool_timeout=60)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Hosting platforms put libpq's `sslmode` on their URLs; asyncpg calls it `ssl`.
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if "sslmode" in parsed.query:
        connect_args["ssl"] = parsed.query["sslmode"]
        parsed = parsed.difference_update_query(["sslmode"])
    return create_async_engine(
        parsed, pool_size=10, max_overflow=20, pool_timeout=60, pool_pre_ping=True, connect_args=connect_args
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._is_sqlite = engine.dialect.name == "sqlite"
        self._insert = sqlite.insert if self._is_sqlite else postgresql.insert
        self._sqlite_writer = asyncio.Lock()
        self._settings_cache: dict[ChannelKey, tuple[float, SettingsRows]] = {}

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction (serialized in-process on SQLite)."""
        lock = self._sqlite_writer if self._is_sqlite else contextlib.nullcontext()
        async with lock, self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def exclusive(self, job: str) -> AsyncIterator[bool]:
        """Whether this instance may run `job` now: on PostgreSQL an advisory lock taken
        without waiting (another instance running it means False); SQLite has one process."""
        if self._is_sqlite:
            yield True
            return
        key = advisory_key(f"job:{job}")
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            mine = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar())
            try:
                yield mine
            finally:
                if mine:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # --- events and turns -------------------------------------------------

    async def accept_message(self, message: IncomingMessage) -> bool:
        """Claim the message's event and store it as a user turn, in one transaction.

        False (and nothing written) when the event was already claimed. Doing both
        at once means a crash can never leave a claimed event whose turn is lost.
        """
        async with self._write() as conn:
            if not await self._claim(conn, message.thread.platform, message.event_id):
                return False
            conversation_id = await self._touch_conversation(conn, message.thread)
            await conn.execute(
                messages.insert().values(
                    conversation_id=conversation_id,
                    role="user",
                    author=_storable(message.actor.display_name),
                    author_id=message.actor.user_id,
                    content=_storable(message.text),
                    platform_message_id=message.message_id,
                    created_at=now(),
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
        answered), whatever arrived since; returns its id."""
        return await self._insert_turn(
            thread, "assistant", content,
            position=after_order, rank=1, model=model, stop_reason=stop_reason, usage=usage,
        )

    async def add_thread_context(self, thread: ThreadKey, before_message_id: str, content: str) -> bool:
        """Put the earlier messages of a thread just before the user turn of `before_message_id`."""
        async with self.engine.connect() as conn:
            mention = (
                await conn.execute(
                    select(messages.c.id)
                    .select_from(messages.join(conversations))
                    .where(_thread_filter(thread), messages.c.platform_message_id == before_message_id)
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
        async with self._write() as conn:
            conversation_id = await self._touch_conversation(conn, thread)
            result = await conn.execute(
                messages.insert()
                .values(
                    conversation_id=conversation_id,
                    role=role,
                    position=position,
                    rank=rank,
                    content=_storable(content),
                    model=model,
                    stop_reason=stop_reason,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                    created_at=now(),
                )
                .returning(messages.c.id)
            )
            return int(result.scalar_one())

    async def conversation_exists(self, thread: ThreadKey) -> bool:
        async with self.engine.connect() as conn:
            result = await conn.execute(select(conversations.c.id).where(_thread_filter(thread)))
            return result.first() is not None

    async def load_history(self, thread: ThreadKey) -> History:
        """The turns still in context, oldest first."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        conversations.c.id, conversations.c.context_start_id, conversations.c.trim_noticed
                    ).where(_thread_filter(thread))
                )
            ).first()
            if row is None:
                return History([], False)
            order = func.coalesce(messages.c.position, messages.c.id)
            query = select(
                messages.c.id,
                messages.c.role,
                messages.c.author,
                messages.c.content,
                messages.c.position,
                messages.c.platform_message_id,
            ).where(messages.c.conversation_id == row.id)
            if row.context_start_id is not None:
                query = query.where(order >= row.context_start_id)
            result = await conn.execute(query.order_by(order, messages.c.rank, messages.c.id))
            turns = [StoredTurn(r.id, r.role, r.author, r.content, r.position, r.platform_message_id) for r in result]
            return History(turns, bool(row.trim_noticed))

    async def trim_context(self, thread: ThreadKey, *, first_kept: int) -> None:
        """Stop sending turns ordered before `first_kept` (they stay stored), and remember
        that the person has been told."""
        async with self._write() as conn:
            await conn.execute(
                update(conversations)
                .where(_thread_filter(thread))
                .values(context_start_id=first_kept, trim_noticed=True)
            )

    async def start_fresh(self, thread: ThreadKey) -> None:
        """`/claude new`: later turns start a new context; the old ones stay stored."""
        async with self._write() as conn:
            last = (
                await conn.execute(
                    select(func.max(messages.c.id))
                    .select_from(messages.join(conversations))
                    .where(_thread_filter(thread))
                )
            ).scalar()
            await conn.execute(
                update(conversations)
                .where(_thread_filter(thread))
                .values(context_start_id=(last or 0) + 1, trim_noticed=False)
            )

    async def _claim(self, conn: AsyncConnection, platform: str, event_id: str) -> bool:
        statement = (
            self._insert(processed_events)
            .values(platform=platform, event_id=event_id, seen_at=now())
            .on_conflict_do_nothing(index_elements=["platform", "event_id"])
        )
        result = await conn.execute(statement)
        return bool(result.rowcount == 1)

    async def _touch_conversation(self, conn: AsyncConnection, thread: ThreadKey) -> int:
        """Create the conversation if new, mark it active; returns its id."""
        moment = now()
        statement = (
            self._insert(conversations)
            .values(
                platform=thread.platform,
                workspace_id=thread.workspace_id,
                channel_id=thread.channel_id,
                thread_id=thread.thread_id,
                trim_noticed=False,
                created_at=moment,
                last_activity_at=moment,
            )
            .on_conflict_do_update(
                index_elements=["platform", "workspace_id", "channel_id", "thread_id"],
                set_={"last_activity_at": moment},
            )
            .returning(conversations.c.id)
        )
        return int((await conn.execute(statement)).scalar_one())

    # --- settings ---------------------------------------------------------

    async def settings_rows(self, channel: ChannelKey) -> SettingsRows:
        """The stored settings rows of a channel and of its workspace (channel id `*`), by
        channel id; which value wins is `policy.effective_settings`."""
        cached = self._settings_cache.get(channel)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(*(channel_settings.c[name] for name in ("channel_id", *SETTING_NAMES))).where(
                    channel_settings.c.platform == channel.platform,
                    channel_settings.c.workspace_id == channel.workspace_id,
                    channel_settings.c.channel_id.in_([channel.channel_id, "*"]),
                )
            )
            rows = {row.channel_id: {name: getattr(row, name) for name in SETTING_NAMES} for row in result}
        if len(self._settings_cache) > 10_000:
            self._settings_cache.clear()
        self._settings_cache[channel] = (time.monotonic() + SETTINGS_CACHE_SECONDS, rows)
        return rows

    async def set_setting(self, channel: ChannelKey, name: str, value: Any, actor_id: str) -> None:
        """Set (or with None, clear back to the default) one setting, with an audit row."""
        if name not in SETTING_NAMES:
            raise ValueError(f"unknown setting {name!r}")
        moment = now()
        async with self._write() as conn:
            old = (
                await conn.execute(
                    select(channel_settings.c[name]).where(*_channel_filter(channel_settings, channel))
                )
            ).scalar()
            await conn.execute(
                self._insert(channel_settings)
                .values(
                    platform=channel.platform,
                    workspace_id=channel.workspace_id,
                    channel_id=channel.channel_id,
                    updated_by=actor_id,
                    updated_at=moment,
                    **{name: value},
                )
                .on_conflict_do_update(
                    index_elements=["platform", "workspace_id", "channel_id"],
                    set_={name: value, "updated_by": actor_id, "updated_at": moment},
                )
            )
            await conn.execute(
                audit_log.insert().values(
                    platform=channel.platform,
                    workspace_id=channel.workspace_id,
                    channel_id=channel.channel_id,
                    actor_id=actor_id,
                    setting=name,
                    old_value=None if old is None else str(old),
                    new_value=None if value is None else str(value),
                    created_at=moment,
                )
            )
        self._settings_cache.clear()  # after the commit; a workspace row affects every channel

    # --- reporting and housekeeping ---------------------------------------

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
            )
            .select_from(messages.join(conversations))
            .where(
                *_channel_filter(conversations, channel),
                messages.c.role == "assistant",
                messages.c.created_at >= since,
            )
            .group_by(messages.c.model)
            .order_by(messages.c.model)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ModelUsage(model or "unknown", int(count), TokenUsage(int(i), int(o), int(r), int(w)))
            for model, count, i, o, r, w in rows
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
        return PruneResult(deleted_conversations, deleted_messages, deleted_events)

    async def _delete_in_batches(self, statement: Any) -> int:
        total = 0
        while True:
            async with self._write() as conn:
                count = (await conn.execute(statement)).rowcount
            total += count
            if count == 0:
                return total
            await asyncio.sleep(0)  # let replies take the writer between batches


def _storable(text: str) -> str:
    """Text as both databases can hold it: PostgreSQL refuses NUL characters in text."""
    return text.replace("\x00", "\ufffd")


def _thread_filter(thread: ThreadKey) -> Any:
    return and_(
        conversations.c.platform == thread.platform,
        conversations.c.workspace_id == thread.workspace_id,
        conversations.c.channel_id == thread.channel_id,
        conversations.c.thread_id == thread.thread_id,
    )


def _channel_filter(table: Any, channel: ChannelKey) -> tuple[Any, ...]:
    return (
        table.c.platform == channel.platform,
        table.c.workspace_id == channel.workspace_id,
        table.c.channel_id == channel.channel_id,
    )
