"""The files of user turns: one row per file per turn (kind, size, sha256, the Files API's
id), never the bytes. Rows outlive their turn with `message_id` NULL until the upload is
deleted at the Files API (see `bot.files.service.Attachments.sweep`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Row

from bot.domain import Attachment, FileRef, ThreadKey, now
from bot.schema import attachments, conversations, messages
from bot.store.db import THREAD_BY_PARAMS, Database, thread_filter, thread_params

_COLUMNS = (
    attachments.c.message_id,
    attachments.c.platform_file_id,
    attachments.c.name,
    attachments.c.source_url,
    attachments.c.kind,
    attachments.c.media_type,
    attachments.c.size,
    attachments.c.sha256,
    attachments.c.tokens,
    attachments.c.file_id,
)


def _attachment(row: Row[Any, *tuple[Any, ...]]) -> Attachment:
    m = row._mapping
    return Attachment(
        source=FileRef(str(m["platform_file_id"]), str(m["name"]), str(m["source_url"]), int(m["size"])),
        kind=str(m["kind"]),
        media_type=str(m["media_type"]),
        size=int(m["size"]),
        sha256=str(m["sha256"]),
        tokens=int(m["tokens"]),
        file_id=m["file_id"],
    )


_OF_CONVERSATION = (  # read for every answer: built once, the thread as parameters
    select(*_COLUMNS)
    .select_from(attachments.join(conversations))
    .where(THREAD_BY_PARAMS, attachments.c.message_id.is_not(None))
    .order_by(attachments.c.id)
)


class AttachmentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, thread: ThreadKey, message_id: str, attachment: Attachment) -> bool:
        """Store `attachment` with the user turn of the platform message `message_id`;
        False when that turn is gone (forgotten meanwhile)."""
        turn = (
            select(messages.c.id, messages.c.conversation_id)
            .select_from(messages.join(conversations))
            .where(thread_filter(thread), messages.c.platform_message_id == message_id, messages.c.role == "user")
            .order_by(messages.c.id)
            .limit(1)
        )
        async with self._db.write() as conn:
            row = (await conn.execute(turn)).first()
            if row is None:
                return False
            source = attachment.source
            await conn.execute(
                attachments.insert().values(
                    message_id=row.id,
                    conversation_id=row.conversation_id,
                    platform_file_id=source.platform_file_id[:128],
                    name=source.name[:255],
                    source_url=source.url,
                    kind=attachment.kind,
                    media_type=attachment.media_type,
                    size=attachment.size,
                    sha256=attachment.sha256,
                    tokens=attachment.tokens,
                    file_id=attachment.file_id,
                    created_at=now(),
                )
            )
            return True

    async def turn_has_files(self, thread: ThreadKey, message_id: str) -> bool | None:
        """Whether the user turn of the platform message `message_id` has files stored already;
        None when there is no such turn (deleted by its author meanwhile)."""
        turn = (
            select(messages.c.id)
            .select_from(messages.join(conversations))
            .where(thread_filter(thread), messages.c.platform_message_id == message_id, messages.c.role == "user")
            .limit(1)
        )
        async with self._db.engine.connect() as conn:
            turn_id = (await conn.execute(turn)).scalar()
            if turn_id is None:
                return None
            stored = select(attachments.c.id).where(attachments.c.message_id == turn_id).limit(1)
            return (await conn.execute(stored)).first() is not None

    async def same_file(self, thread: ThreadKey, sha256: str) -> Attachment | None:
        """A file with these bytes already stored in the conversation, if any."""
        query = (
            select(*_COLUMNS)
            .select_from(attachments.join(conversations))
            .where(thread_filter(thread), attachments.c.sha256 == sha256, attachments.c.message_id.is_not(None))
            .order_by(attachments.c.id.desc())
            .limit(1)
        )
        async with self._db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _attachment(row) if row is not None else None

    async def of_conversation(self, thread: ThreadKey) -> dict[int, list[Attachment]]:
        """The attachments of the conversation's turns, by turn id, in the order they were posted."""
        found: dict[int, list[Attachment]] = {}
        async with self._db.engine.connect() as conn:
            for row in await conn.execute(_OF_CONVERSATION, thread_params(thread)):
                found.setdefault(int(row.message_id), []).append(_attachment(row))
        return found

    async def replace_file_id(self, thread: ThreadKey, sha256: str, file_id: str | None) -> None:
        """The conversation's copies of a file now have this Files API id (uploaded again)."""
        mine = select(conversations.c.id).where(thread_filter(thread)).scalar_subquery()
        async with self._db.write() as conn:
            await conn.execute(
                update(attachments)
                .where(attachments.c.conversation_id == mine, attachments.c.sha256 == sha256)
                .values(file_id=file_id)
            )

    async def orphaned_file_ids(self, limit: int = 500) -> list[str]:
        """Uploads whose turns are all gone: no row still on a turn uses them."""
        live = select(attachments.c.file_id).where(
            attachments.c.message_id.is_not(None), attachments.c.file_id.is_not(None)
        )
        query = (
            select(attachments.c.file_id)
            .where(
                attachments.c.message_id.is_(None),
                attachments.c.file_id.is_not(None),
                attachments.c.file_id.not_in(live),
            )
            .distinct()
            .limit(limit)
        )
        async with self._db.engine.connect() as conn:
            return [str(r) for r in (await conn.execute(query)).scalars()]

    async def forget_orphans(self, file_ids: Iterable[str] = ()) -> int:
        """Delete the rows whose turns are gone: those of `file_ids` (deleted at the Files
        API) and those that never had an upload."""
        ids = list(file_ids)
        gone: Any = attachments.c.file_id.is_(None)
        if ids:
            gone = gone | attachments.c.file_id.in_(ids)
        async with self._db.write() as conn:
            result = await conn.execute(delete(attachments).where(and_(attachments.c.message_id.is_(None), gone)))
            return int(result.rowcount or 0)
