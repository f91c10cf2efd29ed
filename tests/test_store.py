"""The store on a real database: claims, pruning, the schema."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from sqlalchemy import func, select, update

from bot import migrate
from bot.app import Core
from bot.domain import ThreadKey, now
from bot.scheduler import BackgroundJobs, prune_once
from bot.schema import conversations, messages, processed_events
from fakes.recording import message, thread


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
    same = message(thread(), "hi", event_id="Ev-same")
    results = await asyncio.gather(*(core.store.turns.accept_message(same) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    elsewhere = ThreadKey("other-platform", "T1", "C1", "1.1")
    claimed_elsewhere = await core.store.turns.accept_message(message(elsewhere, "hi", event_id="Ev-same"))
    assert claimed_elsewhere, "claims are per platform"


async def test_prune_deletes_only_stale_threads_with_their_messages(core: Core) -> None:
    stale, fresh = thread("stale"), thread("fresh")
    for where in (stale, fresh):
        await core.store.turns.accept_message(message(where, "hi"))
        [asked] = (await core.store.turns.load_history(where)).turns
        await core.store.turns.append_answer(where, "hello", after_order=asked.order)
    await age(core, "stale", days=31)

    result = await prune_once(core.store, thread_ttl_days=30)

    assert (result.conversations, result.messages) == (1, 2)
    assert not await core.store.turns.conversation_exists(stale)
    assert [t.content for t in (await core.store.turns.load_history(fresh)).turns] == ["hi", "hello"]
    assert await count(core, messages) == 2


async def test_prune_forgets_event_claims_after_two_days(core: Core) -> None:
    await core.store.turns.accept_message(message(thread("a"), "hi", event_id="old"))
    await core.store.turns.accept_message(message(thread("b"), "hi", event_id="recent"))
    async with core.store.engine.begin() as conn:
        await conn.execute(
            update(processed_events)
            .where(processed_events.c.event_id == "old")
            .values(seen_at=now() - timedelta(days=3))
        )
    result = await prune_once(core.store, thread_ttl_days=30)
    assert result.events == 1
    assert await core.store.turns.accept_message(message(thread("a"), "again", event_id="old")), "an old claim is gone"
    assert not await core.store.turns.accept_message(message(thread("b"), "again", event_id="recent"))


async def test_prune_works_through_many_stale_threads_in_batches(core: Core) -> None:
    for i in range(25):
        await core.store.turns.accept_message(message(thread(f"s{i}"), "hi"))
    async with core.store.engine.begin() as conn:
        await conn.execute(update(conversations).values(last_activity_at=now() - timedelta(days=40)))
    result = await core.store.housekeeping.prune(now() - timedelta(days=30), now() - timedelta(days=2), batch_size=4)
    assert (result.conversations, result.messages) == (25, 25)
    assert await count(core, conversations) == 0


async def test_the_scheduler_runs_the_prune_job(core: Core) -> None:
    await core.store.turns.accept_message(message(thread("stale"), "hi"))
    await age(core, "stale", days=31)
    pruner = BackgroundJobs()
    pruner.every(3600, partial(prune_once, core.store, 30), "prune", now=True)
    pruner.start()
    try:
        for _ in range(100):
            if not await core.store.turns.conversation_exists(thread("stale")):
                break
            await asyncio.sleep(0.05)
    finally:
        pruner.stop()
    assert not await core.store.turns.conversation_exists(thread("stale"))


async def test_migrating_an_up_to_date_schema_is_a_no_op(core: Core) -> None:
    assert await migrate.is_current(core.store.engine)
    await migrate.upgrade(core.store.engine)
    assert await migrate.is_current(core.store.engine)


async def test_upgrading_a_first_release_database_keeps_every_conversation_in_order(tmp_path: object) -> None:
    from sqlalchemy import text

    from bot.store import Store, create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/old.db")
    await migrate.upgrade(engine, "0001")
    async with engine.begin() as conn:  # rows as release 0001 wrote them
        await conn.execute(
            text(
                "INSERT INTO conversations (id, platform, workspace_id, channel_id, thread_id, trim_noticed, "
                "created_at, last_activity_at) VALUES (1, 'test', 'T1', 'C1', '9.9', 0, :t, :t)"
            ),
            {"t": "2026-11-01 00:00:00"},
        )
        for number, role in enumerate(("user", "assistant", "user"), start=1):
            await conn.execute(
                text(
                    "INSERT INTO messages (id, conversation_id, role, content, input_tokens, output_tokens, "
                    "cache_read_tokens, cache_write_tokens, created_at) "
                    "VALUES (:id, 1, :role, :content, 0, 0, 0, 0, :t)"
                ),
                {"id": number, "role": role, "content": f"turn {number}", "t": "2026-11-01 00:00:00"},
            )
    await migrate.upgrade(engine)
    history = await Store(engine).turns.load_history(thread("9.9"))
    assert [(t.role, t.content) for t in history.turns] == [
        ("user", "turn 1"),
        ("assistant", "turn 2"),
        ("user", "turn 3"),
    ]
    await engine.dispose()


async def test_text_with_a_nul_character_is_stored_on_every_database(core: Core) -> None:
    where = thread("nul")
    assert await core.store.turns.accept_message(message(where, "before\x00after"))
    [turn] = (await core.store.turns.load_history(where)).turns
    await core.store.turns.append_answer(where, "answer\x00too", after_order=turn.order)
    assert [t.content for t in (await core.store.turns.load_history(where)).turns] == [
        "before\ufffdafter",
        "answer\ufffdtoo",
    ]


async def test_the_migrations_build_exactly_the_schema_the_code_declares(core: Core) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bot.schema import metadata

    async with core.store.engine.connect() as conn:
        differences = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": False}), metadata)
        )
    assert differences == []
