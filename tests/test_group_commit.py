"""Group commit: intakes that arrive together share a transaction on SQLite, each is
taken once, and one failing write never fails the others of its transaction; the SQLite
writer serves intakes (acks wait for them) before other writes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.app import Core
from bot.schema import messages, processed_events
from bot.store.group_commit import GroupCommit
from bot.store.writer_lock import FIRST, IN_TURN, WriterLock
from fakes.recording import message, thread


def count_commits(core: Core) -> list[int]:
    commits = [0]

    def counted(*_: Any) -> None:
        commits[0] += 1

    event.listen(core.store.engine.sync_engine, "commit", counted)
    return commits


async def test_a_burst_of_deliveries_is_stored_once_each_in_fewer_transactions(core: Core) -> None:
    # Each post arrives twice (as Slack sends a mention: app_mention and message, same claim).
    posts = [message(thread(f"burst{n}"), f"question {n}", event_id=f"C1:{n}") for n in range(40)]
    commits = count_commits(core)

    taken = await asyncio.gather(
        *(core.store.turns.accept_message(post) for post in posts for _ in range(2))
    )

    assert sum(taken) == 40  # exactly one delivery of each post is taken
    assert [taken[2 * n] or taken[2 * n + 1] for n in range(40)] == [True] * 40
    async with core.store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(messages))).scalar() == 40
        assert (await conn.execute(select(func.count()).select_from(processed_events))).scalar() == 40
    assert commits[0] < 40, commits  # shared transactions (80 writes, one transaction each before)


async def test_one_failing_write_leaves_the_others_of_its_batch_committed(core: Core) -> None:
    async def write_one(conn: AsyncConnection, n: int | None) -> int | None:
        await conn.execute(text("INSERT INTO probe (n) VALUES (:n)"), {"n": n})
        return n

    async def write_many(conn: AsyncConnection, batch: Sequence[int | None]) -> list[int | None]:
        return [await write_one(conn, n) for n in batch]

    group = GroupCommit(core.store.db, write_one, write_many)
    async with core.store.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS probe"))
        await conn.execute(text("CREATE TABLE probe (n INTEGER NOT NULL)"))
    try:
        outcomes = await asyncio.gather(*(group.run(n) for n in (1, 2, None, 4)), return_exceptions=True)
        async with core.store.engine.connect() as conn:
            stored = sorted((await conn.execute(text("SELECT n FROM probe"))).scalars())
    finally:
        async with core.store.engine.begin() as conn:
            await conn.execute(text("DROP TABLE probe"))

    assert outcomes[:2] == [1, 2] and outcomes[3] == 4
    assert isinstance(outcomes[2], Exception) and "null" in str(outcomes[2]).lower()
    assert stored == [1, 2, 4]


async def test_deliveries_taken_together_keep_their_order_threads_and_read_back(core: Core) -> None:
    first, second, other = thread("together"), thread("together"), thread("apart")
    posts = [message(first, "one"), message(second, "two", mention=False), message(other, "three")]

    taken = await asyncio.gather(
        core.store.turns.accept_message(posts[0], read_back=True),
        core.store.turns.accept_message(posts[1]),
        core.store.turns.accept_message(posts[2]),
    )

    assert taken == [True, True, True]
    together = await core.store.turns.load_history(first)
    contents = [turn.content for turn in together.turns]
    assert contents == ["one", "two"], "queued together: one batch, in arrival order"
    assert together.read_back_from == posts[0].message_id
    apart = await core.store.turns.load_history(other)
    assert [turn.content for turn in apart.turns] == ["three"] and apart.read_back_from is None


async def test_the_sqlite_writer_serves_an_intake_before_the_writes_already_waiting() -> None:
    lock = WriterLock()
    order: list[str] = []

    async def write(name: str, priority: int) -> None:
        async with lock.hold(priority):
            order.append(name)
            await asyncio.sleep(0)

    async with lock.hold():
        waiting = [asyncio.create_task(write(f"answer {n}", IN_TURN)) for n in (1, 2)]
        await asyncio.sleep(0)
        waiting.append(asyncio.create_task(write("intake", FIRST)))
        await asyncio.sleep(0)
    await asyncio.gather(*waiting)

    assert order == ["intake", "answer 1", "answer 2"]


async def test_a_writer_cancelled_while_waiting_never_keeps_the_lock() -> None:
    lock = WriterLock()
    async with lock.hold():
        cancelled = asyncio.create_task(write_nothing(lock))
        await asyncio.sleep(0)
        cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    async with asyncio.timeout(5):  # a failure guard: a lock left held would hang here
        async with lock.hold():
            pass


async def write_nothing(lock: WriterLock) -> None:
    async with lock.hold():
        pass
