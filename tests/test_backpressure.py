"""Bounded background work: past `MAX_BACKGROUND_TASKS`, a message is refused before anything
is stored (Slack: 503, so Slack delivers it again; Discord, which never delivers again: the
person is told), and every message that was taken still ends in one answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import Core, open_core
from bot.config import Config
from bot.domain import ThreadKey
from bot.errors import Overloaded
from bot.policy import OVERLOADED_NOTE
from bot.schema import processed_events
from bot.tasks import IntakesFirst, Reservation, TaskSet
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, thread
from fakes.slack_server import FakeSlack
from tests.discord_harness import discord_service
from tests.slack_harness import SlackHarness, channel_message, mention, slack_service

CAP = 2


async def test_the_task_set_keeps_room_for_what_it_promised_and_no_more() -> None:
    tasks = TaskSet(max_tasks=2)
    release = asyncio.Event()
    first, second = tasks.reserve(), tasks.reserve()
    assert first is not None and second is not None
    assert tasks.reserve() is None, "two places promised: the set is full before anything runs"
    first.spawn(release.wait())
    second.release()
    third = tasks.reserve()
    assert third is not None and tasks.reserve() is None
    third.spawn(release.wait())
    with pytest.raises(RuntimeError):
        third.spawn(release.wait())
    release.set()
    await tasks.idle()
    assert tasks.reserve() is not None, "finished work gives its place back"


async def test_a_full_set_waits_for_places_still_undecided_and_refuses_only_when_they_are_taken() -> None:
    tasks = TaskSet(max_tasks=2)
    release = asyncio.Event()
    duplicate, answer = tasks.reserve(), tasks.reserve()
    assert duplicate is not None and answer is not None
    waiting = asyncio.create_task(tasks.reserve_when_decided(5.0))
    await asyncio.sleep(0.01)
    assert not waiting.done(), "two places promised but not yet used: it waits"
    duplicate.release()  # a duplicate delivery gives its place back
    newcomer = await asyncio.wait_for(waiting, 1.0)
    assert newcomer is not None

    late = asyncio.create_task(tasks.reserve_when_decided(5.0))
    await asyncio.sleep(0.01)
    answer.spawn(release.wait())
    await asyncio.sleep(0.01)
    assert not late.done(), "the newcomer's place is still undecided"
    newcomer.spawn(release.wait())
    assert await asyncio.wait_for(late, 1.0) is None, "every place taken by work: refused at once"
    assert await tasks.reserve_when_decided(5.0) is None
    release.set()
    await tasks.idle()


@asynccontextmanager
async def answered_once_under_a_cap(
    config: Config, fake_slack: FakeSlack
) -> AsyncIterator[tuple[SlackHarness, dict[str, Any]]]:
    """The Slack service with room for `CAP` answers, and a thread it has answered once."""
    async with slack_service(config.model_copy(update={"max_background_tasks": CAP}), fake_slack) as slack:
        root = mention("first")
        await slack.send_event(root)
        await slack.settle()
        yield slack, root


async def test_an_answer_waits_for_the_intakes_under_way_when_it_starts_but_not_for_later_ones() -> None:
    """Acks before answers: a burst's later deliveries are not pushed past Slack's deadline."""
    intakes = IntakesFirst(max_wait_seconds=30.0)
    earlier, later = asyncio.Event(), asyncio.Event()

    async def intake(done: asyncio.Event) -> None:
        with intakes.taking():
            await done.wait()

    running = [asyncio.create_task(intake(earlier)) for _ in range(3)]
    await asyncio.sleep(0)
    answer = asyncio.create_task(intakes.after_intakes_under_way())
    await asyncio.sleep(0)
    running.append(asyncio.create_task(intake(later)))  # arrives after the answer started waiting
    await asyncio.sleep(0.05)
    assert not answer.done(), "three intakes were under way when the answer started"
    earlier.set()
    await asyncio.wait_for(answer, 1.0)  # the later intake is still running: not waited for
    assert not running[-1].done()
    later.set()
    await asyncio.gather(*running)
    await asyncio.wait_for(intakes.after_intakes_under_way(), 0.1)  # none under way: no wait


async def test_an_answer_waits_for_intakes_no_longer_than_its_cap() -> None:
    intakes = IntakesFirst(max_wait_seconds=0.05)
    stuck = asyncio.Event()

    async def intake() -> None:
        with intakes.taking():
            await stuck.wait()

    task = asyncio.create_task(intake())
    await asyncio.sleep(0)
    await asyncio.wait_for(intakes.after_intakes_under_way(), 5.0)  # returns at the cap, not never
    stuck.set()
    await task


async def test_slack_at_the_cap_a_post_delivered_twice_at_once_is_acked_twice_and_answered_once(
    config: Config, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    async with answered_once_under_a_cap(config, fake_slack) as (slack, root):
        core = slack.service.core
        post = mention("elsewhere")
        twin = channel_message(post["text"], ts=post["ts"])  # Slack sends a mention as both events
        async with core.service.locks.hold(ThreadKey("slack", "T1", "C1", root["ts"])):  # an answer running
            assert (await slack.send_event(channel_message("one", thread_ts=root["ts"]))).status == 200
            assert len(core.service.tasks) == 1, "one place left"
            statuses = await asyncio.gather(
                slack.send_event(post, event_id="EvMention"), slack.send_event(twin, event_id="EvMessage")
            )
        assert [r.status for r in statuses] == [200, 200], "the duplicate is no reason for Slack to deliver again"
        await slack.settle()
        assert len(slack.slack.bot_messages("C1", post["ts"])) == 1


async def test_a_refused_delivery_refuses_its_twin_at_once_and_a_cancelled_one_gives_its_place_back(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = core.service
    adapter = RecordingPlatform()
    service.tasks.max_tasks = 1
    release = asyncio.Event()
    busy = service.tasks.reserve()
    assert busy is not None
    busy.spawn(release.wait())  # the only place, taken by running work
    asked: list[str] = []
    reserve = service.tasks.reserve_when_decided

    async def counted(within: float) -> Reservation | None:
        asked.append("room")
        return await reserve(within)

    monkeypatch.setattr(service.tasks, "reserve_when_decided", counted)
    post = message(thread("twins.1"), "hello")
    outcomes = await asyncio.gather(
        *(service.submit(post, adapter.surface(post)) for _ in range(2)), return_exceptions=True
    )
    assert all(isinstance(o, Overloaded) for o in outcomes), outcomes
    assert asked == ["room"], "the twin took its refusal from the first delivery"

    release.set()
    await service.tasks.idle()
    stored = core.store.turns.accept_message

    async def stuck(*args: Any, **kwargs: Any) -> bool:
        await asyncio.Event().wait()
        return await stored(*args, **kwargs)

    monkeypatch.setattr(core.store.turns, "accept_message", stuck)
    other = message(thread("cancelled.1"), "hello")
    delivery = asyncio.create_task(service.submit(other, adapter.surface(other)))
    await asyncio.sleep(0.05)
    delivery.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivery
    assert service.tasks.reserve() is not None, "the cancelled delivery's place is free again"


async def claimed(core: Core, event_id: str) -> bool:
    async with core.store.engine.connect() as conn:
        found = await conn.execute(select(processed_events.c.event_id).where(processed_events.c.event_id == event_id))
        return found.first() is not None


async def test_slack_past_the_cap_a_message_gets_503_nothing_stored_and_its_retry_is_answered_once(
    config: Config, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> None:
    async with answered_once_under_a_cap(config, fake_slack) as (slack, root):
        core = slack.service.core
        parked = [channel_message(text, thread_ts=root["ts"]) for text in ("one", "two")]
        late = mention("elsewhere")
        async with core.service.locks.hold(ThreadKey("slack", "T1", "C1", root["ts"])):  # an answer running
            assert [(await slack.send_event(event)).status for event in parked] == [200, 200]
            assert len(core.service.tasks) == CAP
            refused = await slack.send_event(late, event_id="EvLate")
            chatter = await slack.send_event(channel_message("lunch anyone?"))
            command = await slack.send_command("show")
        assert refused.status == 503, "Slack is asked to deliver it again"
        assert chatter.status == 200, "what the bot would not answer is never refused"
        assert not await claimed(core, f"C1:{late['ts']}"), "nothing stored: its retry is not a duplicate"
        await slack.settle()
        [busy] = slack.slack.responses_to(command)
        assert OVERLOADED_NOTE in str(busy.body), "a command past the cap is told at once"

        assert (await slack.send_event(late, event_id="EvLate", retry=1)).status == 200
        await slack.settle()
        assert len(slack.slack.bot_messages("C1", late["ts"])) == 1, "answered once, after its retry"
        assert len(slack.slack.bot_messages("C1", root["ts"])) == 2, "the parked messages got one answer"
        assert len(fake_anthropic.message_requests) == 3


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):  # a failure guard, not a speed requirement
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


@pytest.fixture
async def capped_core(config: Config) -> AsyncIterator[Core]:
    opened = await open_core(config.model_copy(update={"max_background_tasks": CAP}))
    yield opened
    await opened.close()


async def test_a_reply_that_overtook_its_mention_while_the_bot_was_full_is_still_read_back(
    capped_core: Core, fake_anthropic: FakeAnthropic
) -> None:
    """Past the cap a reply is checked, not taken; if it may have overtaken the mention that
    starts its thread, the thread is noted all the same, so the mention (delivered again
    later) reads it back."""
    adapter = RecordingPlatform()
    where = thread("1900.1")
    held = [capped_core.service.tasks.reserve() for _ in range(CAP)]
    reply = message(where, "and of Spain?", mention=False)
    assert await capped_core.service.submit(reply, adapter.surface(reply)) is False  # no conversation: acked
    for place in held:
        assert place is not None
        place.release()
    adapter.later_messages[where] = [reply]

    await adapter.deliver(capped_core.service, message(where, "what is the capital of France?"))

    assert "and of Spain?" in str(fake_anthropic.message_requests[-1]["messages"])


async def test_discord_past_the_cap_the_person_is_told_and_nothing_is_stored(
    capped_core: Core, fake_anthropic: FakeAnthropic
) -> None:
    async with discord_service(capped_core) as discord_bot:
        root = discord_bot.say("first", mention=True)
        await discord_bot.settle()
        thread_id = int(root["id"])
        discord_bot.open_thread_event(thread_id)
        thread = ThreadKey("discord", str(discord_bot.guild_id), str(discord_bot.channel["id"]), str(thread_id))
        async with capped_core.service.locks.hold(thread):
            for text in ("one", "two"):
                discord_bot.say(text, channel_id=thread_id)
            await until(lambda: len(capped_core.service.tasks) == CAP)  # discord.py hands each over in a task
            late = discord_bot.say("elsewhere", mention=True)
            discord_bot.say("just chatting")
            await until(lambda: bool(discord_bot.fake.texts(int(late["id"]))))
        await discord_bot.settle()
        assert discord_bot.fake.texts(int(late["id"])) == [OVERLOADED_NOTE], "told, since Discord never redelivers"
        assert not await claimed(capped_core, str(late["id"]))
        assert len(fake_anthropic.message_requests) == 2, "the first message, then the two parked ones together"


async def test_discord_regenerate_past_the_cap_is_refused_with_nothing_changed(
    capped_core: Core, fake_anthropic: FakeAnthropic
) -> None:
    async with discord_service(capped_core) as discord_bot:
        root = discord_bot.say("tell me a joke", mention=True)
        await discord_bot.settle()
        thread_id = int(root["id"])
        discord_bot.open_thread_event(thread_id)
        [first] = discord_bot.fake.sent(thread_id)
        [regen] = [
            c["custom_id"]
            for row in first.data.get("components", [])
            for c in row.get("components", [])
            if c["custom_id"].startswith("claude:regen")
        ]
        thread = ThreadKey("discord", str(discord_bot.guild_id), str(discord_bot.channel["id"]), str(thread_id))
        async with capped_core.service.locks.hold(thread):
            for text in ("one", "two"):
                discord_bot.say(text, channel_id=thread_id)
            await until(lambda: len(capped_core.service.tasks) == CAP)
            clicked = discord_bot.click(regen, dict(first.data))
            await until(lambda: bool(discord_bot.fake.interaction_responses(clicked)))
        await discord_bot.settle()
        [response] = discord_bot.fake.interaction_responses(clicked)
        assert response.ephemeral and response.content == OVERLOADED_NOTE
        assert len(fake_anthropic.message_requests) == 2, "the first answer and the parked messages'; no regeneration"
