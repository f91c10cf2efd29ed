"""The store on a real database: claims, pruning, the schema."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update

from bot import migrate
from bot.app import Core
from bot.scheduler import Pruner, prune_once
from bot.schema import conversations, messages, processed_events
from bot.store import now
from tests.support import message, thread


async def age(core: Core, thread_id: str, days: int) -> None:
    async with core.store.engine.begin() as conn:
        await conn.execute(
            update(conversations)
            .where(conversations.c.thread_id == thread_id)
            .values(last_activity_at=now() - timedelta(days=days))
        )


async def count(core: Core, table: object) -> int:
    async with core.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_claiming_an_event_twice_at_once_succeeds_exactly_once(core: Core) -> None:
    results = await asyncio.gather(*(core.store.claim_event("test", "Ev-same") for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await core.store.claim_event("other-platform", "Ev-same"), "claims are per platform"


async def test_prune_deletes_only_stale_threads_with_their_messages(core: Core) -> None:
    stale, fresh = thread("stale"), thread("fresh")
    for where in (stale, fresh):
        await core.store.accept_message(message(where, "hi"))
        await core.store.append_turn(where, "assistant", "hello")
    await age(core, "stale", days=31)

    result = await prune_once(core.store, thread_ttl_days=30)

    assert (result.conversations, result.messages) == (1, 2)
    assert not await core.store.conversation_exists(stale)
    assert [t.content for t in (await core.store.load_history(fresh)).turns] == ["hi", "hello"]
    assert await count(core, messages) == 2


async def test_prune_forgets_event_claims_after_two_days(core: Core) -> None:
    await core.store.claim_event("test", "old")
    await core.store.claim_event("test", "recent")
    async with core.store.engine.begin() as conn:
        await conn.execute(
            update(processed_events)
            .where(processed_events.c.event_id == "old")
            .values(seen_at=now() - timedelta(days=3))
        )
    result = await prune_once(core.store, thread_ttl_days=30)
    assert result.events == 1
    assert await core.store.claim_event("test", "old"), "an old claim is gone"
    assert not await core.store.claim_event("test", "recent")


async def test_prune_works_through_many_stale_threads_in_batches(core: Core) -> None:
    for i in range(25):
        await core.store.accept_message(message(thread(f"s{i}"), "hi"))
    async with core.store.engine.begin() as conn:
        await conn.execute(update(conversations).values(last_activity_at=now() - timedelta(days=40)))
    result = await core.store.prune(now() - timedelta(days=30), now() - timedelta(days=2), batch_size=4)
    assert (result.conversations, result.messages) == (25, 25)
    assert await count(core, conversations) == 0


async def test_the_scheduler_runs_the_prune_job(core: Core) -> None:
    await core.store.accept_message(message(thread("stale"), "hi"))
    await age(core, "stale", days=31)
    pruner = Pruner(core.store, thread_ttl_days=30, interval_minutes=60)
    pruner._scheduler.get_job("prune").modify(next_run_time=now())  # due at once
    pruner.start()
    try:
        for _ in range(100):
            if not await core.store.conversation_exists(thread("stale")):
                break
            await asyncio.sleep(0.05)
    finally:
        pruner.stop()
    assert not await core.store.conversation_exists(thread("stale"))


async def test_migrating_an_up_to_date_schema_is_a_no_op(core: Core) -> None:
    assert await migrate.is_current(core.store.engine)
    await migrate.upgrade(core.store.engine)
    assert await migrate.is_current(core.store.engine)
