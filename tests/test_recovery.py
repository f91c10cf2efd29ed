"""Recovery: a turn accepted by an instance that died before answering is answered once,
by whichever instance looks first; a live instance's turns are left alone; a turn
too old gets one short note instead of silence. Each test stores the turn as a dying
instance would (accepted, never answered) and runs the recovery the service runs on
its timer."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from bot.app import Core, open_core
from bot.config import Config
from bot.domain import IncomingMessage, ThreadKey, now
from bot.ports import MessageSurface
from bot.recovery import RESTARTED_NOTE, Recovery, RecoveryPolicy
from bot.schema import messages
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, thread

DEAD = "instance-that-died"
NO_WAIT = RecoveryPolicy(dead_after=timedelta(seconds=30), settle_after=timedelta(0))


def recovery(core: Core, platform: RecordingPlatform, policy: RecoveryPolicy = NO_WAIT) -> Recovery:
    async def surface_for(stored: IncomingMessage) -> MessageSurface:
        return platform.surface(stored)

    return Recovery(core.store, core.service, surface_for, policy)


async def accepted_by_the_dead(core: Core, where: ThreadKey, text: str) -> IncomingMessage:
    """Stored and owned by an instance that never says it is alive, and never answered."""
    incoming = message(where, text)
    assert await core.store.turns.accept_message(incoming, owner=DEAD)
    return incoming


async def states(core: Core) -> list[tuple[str | None, int]]:
    async with core.store.engine.connect() as conn:
        rows = await conn.execute(
            select(messages.c.state, messages.c.attempts).where(messages.c.role == "user").order_by(messages.c.id)
        )
        return [(state, attempts) for state, attempts in rows]


async def test_a_turn_whose_instance_died_is_answered_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await accepted_by_the_dead(core, where, "are you there?")

    result = await recovery(core, adapter).run_once()

    assert (result.answered, result.told) == (1, 0)
    assert adapter.finals(where) == ['You said: <message from="Alice">are you there?</message>']
    assert await states(core) == [("answered", 2)]
    again = await recovery(core, adapter).run_once()
    assert again.answered == 0 and len(fake_anthropic.message_requests) == 1, "answered once, not again"


async def test_a_live_instances_turns_are_left_alone(core: Core, adapter: RecordingPlatform) -> None:
    await core.store.instances.heartbeat("alive-and-answering")
    assert await core.store.turns.accept_message(message(thread(), "hello"), owner="alive-and-answering")

    result = await recovery(core, adapter).run_once()

    assert (result.answered, result.told, result.skipped) == (0, 0, 0)
    assert adapter.replies == []


async def test_a_turn_younger_than_the_settle_time_is_left_to_its_own_delivery(
    core: Core, adapter: RecordingPlatform
) -> None:
    await accepted_by_the_dead(core, thread(), "just arrived")
    patient = RecoveryPolicy(settle_after=timedelta(seconds=30))
    assert (await recovery(core, adapter, patient).run_once()).answered == 0


async def test_a_turn_past_the_window_gets_the_restart_note_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await accepted_by_the_dead(core, where, "an old question")
    async with core.store.engine.begin() as conn:
        await conn.execute(update(messages).values(created_at=now() - timedelta(minutes=20)))

    result = await recovery(core, adapter).run_once()

    assert result.told == 1 and result.answered == 0
    assert adapter.finals(where) == [RESTARTED_NOTE]
    assert fake_anthropic.message_requests == [], "too late to answer: nobody asked Claude"
    assert await states(core) == [("failed", 2)]
    assert (await recovery(core, adapter).run_once()).told == 0, "told once"


async def test_a_turn_whose_answer_was_started_three_times_gets_the_note(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await accepted_by_the_dead(core, where, "this one keeps crashing us")
    async with core.store.engine.begin() as conn:
        await conn.execute(update(messages).values(attempts=3))

    result = await recovery(core, adapter).run_once()

    assert result.told == 1 and adapter.finals(where) == [RESTARTED_NOTE]
    assert fake_anthropic.message_requests == []


async def test_two_instances_recovering_at_once_answer_once(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.2
    first, second = await open_core(config), await open_core(config)
    try:
        where = thread()
        await accepted_by_the_dead(first, where, "who takes this?")
        platform = RecordingPlatform()
        results = await asyncio.gather(recovery(first, platform).run_once(), recovery(second, platform).run_once())
        assert sorted(r.answered for r in results) == [0, 1]
        assert platform.finals(where) == ['You said: <message from="Alice">who takes this?</message>']
        assert len(fake_anthropic.message_requests) == 1
    finally:
        await first.close()
        await second.close()


async def test_answered_and_failed_turns_are_never_recovered(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await adapter.deliver(core.service, message(thread("1.1"), "answered normally"))
    fake_anthropic.fail_always(400, message="nope")
    await adapter.deliver(core.service, message(thread("2.2"), "failed, and told so"))
    fake_anthropic.clear_faults()
    assert [state for state, _ in await states(core)] == ["answered", "failed"]

    core.service.instance_id = "a-new-instance"  # whoever owned them is gone
    assert (await recovery(core, adapter).run_once()).answered == 0
    assert len(adapter.replies) == 2


async def test_a_message_that_arrived_during_a_crashed_answer_is_answered_with_it(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await accepted_by_the_dead(core, where, "first")
    await accepted_by_the_dead(core, where, "second, while the first was being answered")

    result = await recovery(core, adapter).run_once()

    assert result.answered == 1, "the second was answered along with the first"
    assert adapter.finals(where) == [
        'You said: <message from="Alice">first</message>\n\n'
        '<message from="Alice">second, while the first was being answered</message>'
    ]
    assert [state for state, _ in await states(core)] == ["answered", "answered"]


async def test_a_thread_with_several_turns_past_the_window_gets_one_note(
    core: Core, adapter: RecordingPlatform
) -> None:
    where = thread()
    await accepted_by_the_dead(core, where, "first")
    await accepted_by_the_dead(core, where, "second")
    async with core.store.engine.begin() as conn:
        await conn.execute(update(messages).values(created_at=now() - timedelta(minutes=20)))

    result = await recovery(core, adapter).run_once()

    assert result.told == 1 and adapter.finals(where) == [RESTARTED_NOTE], "one note for the thread"
    assert [state for state, _ in await states(core)] == ["failed", "failed"]


async def test_replies_that_overtook_a_mention_whose_instance_died_are_answered_with_it(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    """The instance stored the mention and died before reading back the thread's replies that had
    overtaken it (acked then, not taken: the thread was no conversation yet): recovery reads them."""
    where = thread()
    mention = message(where, "what is the capital of France?")
    assert await core.store.turns.accept_message(mention, owner=DEAD, read_back=True)
    adapter.later_messages[where] = [message(where, "and of Spain?", mention=False)]

    result = await recovery(core, adapter).run_once()

    assert result.answered == 1
    assert "and of Spain?" in str(fake_anthropic.message_requests[-1]["messages"])
    assert await states(core) == [("answered", 2), ("answered", 1)]
