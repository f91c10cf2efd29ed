"""The conversation service end to end: adapter -> service -> store -> real SDK -> fake Anthropic."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import Core, open_core
from bot.config import Config
from bot.conversation import TurnOutcome
from bot.domain import IncomingMessage
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, person, thread


def user_texts(body: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"]]


async def test_history_is_resent_in_order_on_turns_two_and_three(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    fake_anthropic.chunk_delay = 0.01  # text arrives over time, as from the real API
    for text in ("first", "second", "third"):
        await adapter.deliver(core.service, message(where, text))

    requests = fake_anthropic.message_requests
    assert len(requests) == 3
    assert user_texts(requests[2]) == [
        ("user", '<message from="Alice">first</message>'),
        ("assistant", 'You said: <message from="Alice">first</message>'),
        ("user", '<message from="Alice">second</message>'),
        ("assistant", 'You said: <message from="Alice">second</message>'),
        ("user", '<message from="Alice">third</message>'),
    ]
    assert adapter.finals() == [
        'You said: <message from="Alice">first</message>',
        'You said: <message from="Alice">second</message>',
        'You said: <message from="Alice">third</message>',
    ]
    assert all(len(r.deltas) > 1 for r in adapter.replies), "answers arrive streamed, in several deltas"


async def test_a_restart_on_the_same_database_continues_the_conversation(
    config: Config, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    first = await open_core(config)
    await adapter.deliver(first.service, message(where, "remember the word pineapple"))
    await first.close()

    second = await open_core(config)
    await adapter.deliver(second.service, message(where, "which word?", mention=False))
    await second.close()

    roles = user_texts(fake_anthropic.message_requests[-1])
    assert roles[0] == ("user", '<message from="Alice">remember the word pineapple</message>')
    assert roles[-1] == ("user", '<message from="Alice">which word?</message>')


async def test_messages_in_a_thread_the_bot_is_not_part_of_are_ignored_without_a_write(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    outcome = await adapter.deliver(core.service, message(thread("9.9"), "chatter", mention=False))
    assert not outcome.answered
    assert fake_anthropic.message_requests == []
    await core.store.db.ping()  # the store still works
    assert not await core.store.turns.conversation_exists(thread("9.9"))


async def test_bots_are_never_answered(core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic) -> None:
    bot = person("B1", "OtherBot")
    bot = type(bot)(bot.platform, bot.user_id, bot.display_name, is_bot=True)
    outcome = await adapter.deliver(core.service, message(thread(), "@you hello", who=bot))
    assert not outcome.answered
    assert fake_anthropic.message_requests == []


async def test_a_second_delivery_of_an_event_is_a_no_op(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    event = message(thread(), "hello")
    first = await adapter.deliver(core.service, event)
    second = await adapter.deliver(core.service, event)
    assert first.answered and not second.answered
    assert len(fake_anthropic.message_requests) == 1
    assert len(adapter.replies) == 1


async def test_two_deliveries_arriving_at_once_give_one_answer(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.2
    event = message(thread(), "hello")
    outcomes = await asyncio.gather(*(adapter.deliver(core.service, event) for _ in range(4)))
    assert sum(o.answered for o in outcomes) == 1
    assert len(fake_anthropic.message_requests) == 1
    assert len(adapter.replies) == 1


async def test_a_delivery_that_arrives_while_its_twin_is_being_stored_never_reaches_the_database(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = core.store.turns.accept_message
    claims: list[str] = []

    async def counted(message: IncomingMessage, **options: Any) -> bool:
        claims.append(message.event_id)
        return await stored(message, **options)

    monkeypatch.setattr(core.store.turns, "accept_message", counted)
    event = message(thread(), "hello")
    taken = await asyncio.gather(*(core.service.submit(event, adapter.surface(event)) for _ in range(3)))
    assert taken == [True, False, False]
    assert claims == [event.event_id], "one claim for the three deliveries in flight together"
    assert not await core.service.submit(event, adapter.surface(event))
    assert len(claims) == 2, "a later delivery is checked against the database as before"
    await core.service.tasks.idle()
    assert len(adapter.replies) == 1


async def test_turns_in_one_thread_are_serialized_while_threads_run_in_parallel(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.3
    same = thread("1.1")

    async def after(delay: float, text: str) -> TurnOutcome:
        await asyncio.sleep(delay)
        return await adapter.deliver(core.service, message(same, text))

    await asyncio.gather(after(0, "m0"), after(0.1, "m1"), after(0.2, "m2"))
    assert fake_anthropic.max_in_flight == 1
    first, second = fake_anthropic.message_requests
    assert user_texts(first) == [("user", '<message from="Alice">m0</message>')]
    assert user_texts(second)[1:] == [
        ("assistant", 'You said: <message from="Alice">m0</message>'),
        ("user", '<message from="Alice">m1</message>\n\n<message from="Alice">m2</message>'),
    ], "what arrived during an answer is answered next, together"

    fake_anthropic.max_in_flight = 0
    await asyncio.gather(*(adapter.deliver(core.service, message(thread(f"2.{i}"), "hi")) for i in range(5)))
    assert fake_anthropic.max_in_flight == 5


async def test_a_message_arriving_mid_answer_is_stored_at_once_and_ordered_after_that_answer(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.3
    where = thread()
    first = asyncio.create_task(adapter.deliver(core.service, message(where, "first")))
    await asyncio.sleep(0.1)
    turn = await core.service.accept(message(where, "second"))
    assert turn is not None
    stored = [(t.role, t.content) for t in (await core.store.turns.load_history(where)).turns]
    assert stored == [("user", "first"), ("user", "second")], "stored before the first answer is done"
    await first
    stored = [(t.role, t.content) for t in (await core.store.turns.load_history(where)).turns]
    assert stored == [
        ("user", "first"),
        ("assistant", 'You said: <message from="Alice">first</message>'),
        ("user", "second"),
    ]
    await core.service.answer(turn, adapter.surface(turn.message))
    roles = [t.role for t in (await core.store.turns.load_history(where)).turns]
    assert roles == ["user", "assistant", "user", "assistant"]


async def test_several_speakers_are_labelled_and_roles_alternate(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    fake_anthropic.fail_always(400, message="boom")
    await adapter.deliver(core.service, message(where, "hi all", who=person("U1", "Alice")))
    fake_anthropic.clear_faults()
    await adapter.deliver(core.service, message(where, "and me", who=person("U2", "Bob"), mention=False))

    body = fake_anthropic.message_requests[-1]
    assert user_texts(body) == [
        ("user", '<message from="Alice">hi all</message>\n\n<message from="Bob">and me</message>')
    ]


async def test_the_prefix_of_each_request_is_the_previous_request_byte_for_byte_with_cache_control(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    for i in range(4):
        await adapter.deliver(core.service, message(where, f"turn {i} " + "words " * 50))
    bodies = fake_anthropic.message_requests
    for before, after in itertools.pairwise(bodies):
        assert after["cache_control"] == {"type": "ephemeral"}
        assert json.dumps(after["system"]) == json.dumps(before["system"])
        previous = json.dumps(before["messages"])[:-1]
        assert json.dumps(after["messages"]).startswith(previous)
    usages = fake_anthropic.usages
    totals = [u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"] for u in usages]
    for previous_total, usage in zip(totals, fake_anthropic.usages[1:], strict=False):
        assert usage["cache_read_input_tokens"] == previous_total, "the whole previous request is read from cache"


async def test_a_message_that_waits_too_long_for_its_thread_is_told_the_thread_is_busy(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    from bot.app import open_core
    from bot.policy import BUSY_NOTE

    core = await open_core(config.model_copy(update={"thread_busy_wait_seconds": 0.3}))
    try:
        fake_anthropic.latency = 1.5
        where = thread()
        platform = RecordingPlatform()
        first = asyncio.create_task(platform.deliver(core.service, message(where, "a slow one")))
        while fake_anthropic.in_flight == 0:
            await asyncio.sleep(0.02)
        second = await platform.deliver(core.service, message(where, "me too?", mention=False))
        await first
        assert second.reply is None
        assert platform.finals(where) == ['You said: <message from="Alice">a slow one</message>', BUSY_NOTE]
    finally:
        await core.close()


async def test_a_platform_slow_to_show_does_not_hold_up_reading_claude(
    core: Core, fake_anthropic: FakeAnthropic
) -> None:
    """A platform stuck on one update (a Slack 429 with a long Retry-After) still gets the
    whole answer, in fewer, larger pieces; meanwhile Claude's stream is read to the end
    and the answer stored."""
    where = thread()
    fake_anthropic.chunk_delay = 0.01
    fake_anthropic.queue_reply(" ".join(f"word{i}" for i in range(60)))
    stored_while_the_platform_waited: list[bool] = []

    class RateLimitedPlatform(RecordingPlatform):
        async def open_reply(self, msg):  # type: ignore[no-untyped-def]
            reply = await super().open_reply(msg)
            show = reply.append

            async def first_update_waits(delta: str) -> None:
                if not stored_while_the_platform_waited:
                    for _ in range(250):  # up to 5 s: what a long Retry-After would cost
                        turns = (await core.store.turns.load_history(where)).turns
                        if any(t.role == "assistant" for t in turns):
                            break
                        await asyncio.sleep(0.02)
                    stored_while_the_platform_waited.append(any(t.role == "assistant" for t in turns))
                await show(delta)

            reply.append = first_update_waits  # type: ignore[method-assign]
            return reply

    platform = RateLimitedPlatform()
    outcome = await platform.deliver(core.service, message(where, "tell me"))

    assert stored_while_the_platform_waited == [True], "Claude's answer was read and stored meanwhile"
    assert outcome.reply is not None and platform.finals() == [outcome.reply.text]
    assert len(platform.replies[0].deltas) < 10, "what arrived meanwhile was shown in a few larger pieces"


async def test_an_earlier_message_stored_after_a_later_one_is_sent_to_claude_first(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    """The delivery of "my laptop..." was retried, so "it beeps..." (posted after it) was stored
    first. Claude reads them as they were posted, and later requests keep that order."""
    where = thread()
    await adapter.deliver(core.service, message(where, "hello"))
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    earlier = replace(message(where, "my laptop will not boot", mention=False), sent_at=start)
    later = replace(message(where, "it beeps three times", mention=False), sent_at=start + timedelta(seconds=5))
    assert await core.service.accept(later) is not None
    turn = await core.service.accept(earlier)  # the retry arrives
    assert turn is not None

    await core.service.answer(turn, adapter.surface(turn.message))
    await adapter.deliver(core.service, message(where, "any idea?", mention=False))

    second, third = fake_anthropic.message_requests[1:]
    asked = second["messages"][-1]["content"]
    assert asked.index("my laptop will not boot") < asked.index("it beeps three times"), asked
    assert third["messages"][:3] == second["messages"], "the order holds in later requests (cached prefix)"


async def test_replies_that_overtook_the_mention_are_read_back_even_when_its_own_answer_was_lost(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    """A reply overtook the mention that starts the conversation (acked, not taken: no conversation
    yet). The mention is stored, but its answer is lost (the instance died). Whichever answer
    comes next in the thread reads the reply back first: it is in the request, once."""
    where = thread()
    mention = message(where, "what is the capital of France?")
    overtaking = message(where, "and of Spain?", mention=False)
    assert await core.service.accept(overtaking) is None  # no conversation yet: acked, not taken
    assert await core.service.accept(mention) is not None  # stored; its answer never runs
    adapter.later_messages[where] = [overtaking]

    await adapter.deliver(core.service, message(where, "hello?", mention=False))
    await adapter.deliver(core.service, message(where, "thanks", mention=False))

    first, second = fake_anthropic.message_requests
    assert "and of Spain?" in first["messages"][-1]["content"]
    asked = [m["content"] for m in second["messages"] if m["role"] == "user"]
    assert json.dumps(asked).count("and of Spain?") == 1, "read back once"
