"""Many intakes in one transaction (`GroupCommit`'s `write_many` for
`TurnStore.accept_message`): the claims, the conversations and the pending user turns
of a whole batch in one multi-row statement each, with the same outcome as taking
the deliveries one by one in their order (the first delivery of an event wins). Claims
and conversations are written in sorted order, so concurrent batches on PostgreSQL lock
their rows in one order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.domain import IncomingMessage, ThreadKey, now
from bot.schema import conversations, messages, processed_events
from bot.store.db import Database, storable

PENDING = "pending"


class Intake(NamedTuple):
    message: IncomingMessage
    owner: str
    read_back: bool


def _thread_of(row: object) -> tuple[str, str, str, str]:
    platform, workspace_id, channel_id, thread_id = row[1:5]  # type: ignore[index]
    return str(platform), str(workspace_id), str(channel_id), str(thread_id)


def _key(thread: ThreadKey) -> tuple[str, str, str, str]:
    return thread.platform, thread.workspace_id, thread.channel_id, thread.thread_id


async def accept_many(db: Database, conn: AsyncConnection, intakes: Sequence[Intake]) -> list[bool]:
    moment = now()
    claims = {(i.message.thread.platform, i.message.event_id) for i in intakes}
    # Each statement is executed with a list of rows (SQLAlchemy's "insertmanyvalues": one
    # multi-row INSERT compiled once and cached), not built with `.values([...])`, which is
    # compiled again for every batch.
    claimed_rows = await conn.execute(
        db.insert(processed_events)
        .on_conflict_do_nothing(index_elements=["platform", "event_id"])
        .returning(processed_events.c.platform, processed_events.c.event_id),
        [{"platform": p, "event_id": e, "seen_at": moment} for p, e in sorted(claims)],
    )
    fresh = {(str(p), str(e)) for p, e in claimed_rows}
    taken: list[bool] = []
    for intake in intakes:  # the first delivery of a freshly claimed event takes it
        claim = (intake.message.thread.platform, intake.message.event_id)
        taken.append(claim in fresh)
        fresh.discard(claim)
    accepted = [i for i, took in zip(intakes, taken, strict=True) if took]
    if not accepted:
        return taken
    threads = sorted({_key(i.message.thread) for i in accepted})
    # A mention that may have later replies to read (see `policy.may_have_later_replies`)
    # marks its conversation in the same statement that creates or touches it.
    read_back = {_key(i.message.thread): i.message.message_id for i in accepted if i.read_back}
    upsert = db.insert(conversations)
    touched = await conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["platform", "workspace_id", "channel_id", "thread_id"],
            set_={
                "last_activity_at": upsert.excluded.last_activity_at,
                "read_back_from": func.coalesce(upsert.excluded.read_back_from, conversations.c.read_back_from),
            },
        ).returning(
            conversations.c.id, conversations.c.platform, conversations.c.workspace_id,
            conversations.c.channel_id, conversations.c.thread_id,
        ),
        [
            {
                "platform": p, "workspace_id": w, "channel_id": c, "thread_id": t,
                "trim_noticed": False, "created_at": moment, "last_activity_at": moment,
                "read_back_from": read_back.get((p, w, c, t)),
            }
            for p, w, c, t in threads
        ],
    )
    ids = {_thread_of(row): int(row[0]) for row in touched}
    await conn.execute(
        messages.insert(),
        [
            {
                "conversation_id": ids[_key(i.message.thread)],
                "role": "user",
                "author": storable(i.message.actor.display_name),
                "author_id": i.message.actor.user_id,
                "content": storable(i.message.text),
                "platform_message_id": i.message.message_id,
                "created_at": now(),
                "sent_at": i.message.sent_at,
                "state": PENDING,
                "attempts": 1,
                "owner": i.owner or None,
            }
            for i in accepted
        ],
    )
    return taken
