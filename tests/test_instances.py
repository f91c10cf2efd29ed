"""Several instances of the service on one PostgreSQL behave as one."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import open_core
from bot.config import Config
from bot.locks import advisory_key
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, thread
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL (TEST_DATABASE_URL)")


async def test_two_instances_answer_one_thread_one_turn_at_a_time(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.3
    first, second = await open_core(config), await open_core(config)
    try:
        where = thread()
        adapter = RecordingPlatform()
        await asyncio.gather(
            *(
                adapter.deliver((first if i % 2 else second).service, message(where, f"m{i}"))
                for i in range(4)
            )
        )
        assert fake_anthropic.max_in_flight == 1
        history = await first.store.turns.load_history(where)
        assert sorted(t.content for t in history.turns if t.role == "user") == ["m0", "m1", "m2", "m3"]
        roles = [m["role"] for m in fake_anthropic.message_requests[-1]["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"], "roles alternate"
        assert history.turns[-1].role == "assistant", "every turn got its answer (some together)"
    finally:
        await first.close()
        await second.close()


async def test_one_event_delivered_to_two_instances_at_once_is_answered_once(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.2
    first, second = await open_core(config), await open_core(config)
    try:
        adapter = RecordingPlatform()
        events = [message(thread(f"t{i}"), "hello") for i in range(20)]
        await asyncio.gather(*(adapter.deliver(core.service, e) for e in events for core in (first, second)))
        assert len(fake_anthropic.message_requests) == 20
        assert len(adapter.replies) == 20
    finally:
        await first.close()
        await second.close()


async def test_different_threads_are_not_held_up_by_each_other_across_instances(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.3
    first, second = await open_core(config), await open_core(config)
    try:
        adapter = RecordingPlatform()
        await asyncio.gather(
            *(adapter.deliver((first, second)[i % 2].service, message(thread(f"p{i}"), "hi")) for i in range(6))
        )
        assert fake_anthropic.max_in_flight == 6
    finally:
        await first.close()
        await second.close()


def test_advisory_keys_are_stable_signed_64_bit_numbers() -> None:
    key = advisory_key(thread("1.1"))
    assert key == advisory_key(thread("1.1")) != advisory_key(thread("1.2"))
    assert -(2**63) <= key < 2**63


async def test_only_one_instance_prunes_at_a_time(config: Config) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from bot.domain import now
    from bot.scheduler import prune_once
    from bot.schema import conversations

    first, second = await open_core(config), await open_core(config)
    try:
        await first.store.turns.accept_message(message(thread("stale"), "hi"))
        async with first.store.engine.begin() as conn:
            await conn.execute(update(conversations).values(last_activity_at=now() - timedelta(days=40)))
        async with first.store.db.exclusive("prune") as mine:
            assert mine
            skipped = await prune_once(second.store, thread_ttl_days=30)
            assert (skipped.conversations, skipped.messages) == (0, 0), "the other instance holds the job"
        done = await prune_once(second.store, thread_ttl_days=30)
        assert (done.conversations, done.messages) == (1, 1)
    finally:
        await first.close()
        await second.close()


async def test_a_turn_keeps_its_thread_when_the_database_drops_every_connection(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    """The thread lock lives in the database, not in a connection: PostgreSQL terminating
    every connection mid-turn (a restart, a failover, an idle timeout) frees nothing, and a
    follow-up at the other instance waits for the answer instead of running beside it."""
    from sqlalchemy import text

    fake_anthropic.latency = 1.5
    first, second = await open_core(config), await open_core(config)
    try:
        where = thread()
        platform = RecordingPlatform()
        answering = asyncio.create_task(platform.deliver(first.service, message(where, "first")))
        while fake_anthropic.in_flight == 0:
            await asyncio.sleep(0.02)
        async with second.store.engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        follow_up = await platform.deliver(second.service, message(where, "second", mention=False))
        await answering
        assert fake_anthropic.max_in_flight == 1, "never two Claude calls at once for one thread"
        assert follow_up.reply is not None
        assert platform.finals(where) == [
            'You said: <message from="Alice">first</message>',
            'You said: <message from="Alice">second</message>',
        ]
    finally:
        await first.close()
        await second.close()


async def test_a_thread_held_by_a_frozen_instance_is_taken_over(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    """An instance stopped mid-turn (SIGSTOP, a frozen VM) stops saying it is alive: once it
    counts as dead, another instance answers in its thread."""
    core = await open_core(config.model_copy(update={"instance_dead_after_seconds": 1.0}))
    try:
        where = thread()
        platform = RecordingPlatform()
        await platform.deliver(core.service, message(where, "hello"))
        await core.store.instances.heartbeat("frozen-instance")
        assert await core.store.turns.lease_thread(where, owner="frozen-instance", dead_after_seconds=1.0)

        outcome = await platform.deliver(core.service, message(where, "anyone there?", mention=False))

        assert outcome.reply is not None, "answered once the frozen instance counted as dead"
        assert platform.finals(where)[-1].endswith('<message from="Alice">anyone there?</message>')
    finally:
        await core.close()


async def test_a_thread_busy_past_the_wait_tells_the_person_so(config: Config, fake_anthropic: FakeAnthropic) -> None:
    from bot.policy import BUSY_NOTE

    core = await open_core(config.model_copy(update={"thread_busy_wait_seconds": 0.5}))
    try:
        where = thread()
        await core.store.instances.heartbeat("alive-elsewhere")
        await RecordingPlatform().deliver(core.service, message(where, "hello"))
        assert await core.store.turns.lease_thread(where, owner="alive-elsewhere", dead_after_seconds=30)
        platform = RecordingPlatform()

        outcome = await platform.deliver(core.service, message(where, "still there?", mention=False))

        assert outcome.reply is None and platform.finals() == [BUSY_NOTE]
        assert len(fake_anthropic.message_requests) == 1, "Claude was not asked while the thread was busy"
    finally:
        await core.close()
