"""Reply-mode conversations live in the database: where the bot may not open threads it
answers as a reply, and replying to any message of that answer continues the conversation,
also after a restart (`bot serve` processes over the fake gateway; nothing in memory)."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Core
from bot.domain import ThreadKey
from fakes.anthropic_server import FakeAnthropic
from fakes.discord_server import reply_reference
from tests.discord_process import DiscordWorld, discord_world, eventually
from tests.processes import conversation


@pytest.fixture
async def world(tmp_path: Path, database_url: str, fake_anthropic: FakeAnthropic) -> AsyncIterator[DiscordWorld]:
    async with discord_world(tmp_path, database_url, fake_anthropic) as built:
        yield built


async def test_a_reply_to_any_part_of_an_answer_continues_the_conversation_after_a_restart(
    world: DiscordWorld,
) -> None:
    channel_id = world.channel["id"]
    world.rest.refuse_threads_in(channel_id)
    long_answer = "First part. " + "word " * 500  # over 2,000 characters: two messages
    world.anthropic.queue_reply(long_answer.strip())
    first = await world.serve()
    root = await world.mention("tell me at length")

    def two_parts_shown() -> bool:
        sent = world.bot_messages(channel_id)
        return len(sent) == 2 and sent[-1].content.endswith("word")

    await eventually(two_parts_shown, "a two-part answer", first)
    parts = world.bot_messages(channel_id)
    ref = parts[0].message_reference
    assert ref is not None and ref["message_id"] == root["id"], "answered as a reply"
    assert world.rest.threads == []
    await first.stop(signal.SIGTERM)
    assert first.proc.returncode == 0, first.output()

    second = await world.serve()
    reply = await world.say(channel_id, "and the second part?", message_reference=reply_reference(parts[1].data))
    await eventually(lambda: len(world.bot_messages(channel_id)) == 3, "the answer to the reply", second)
    [request_one, request_two] = world.anthropic.message_requests
    assert conversation(request_two) == [
        *conversation(request_one),
        ("assistant", long_answer.strip()),
        ("user", '<message from="Alice">and the second part?</message>'),
    ], "the reply continued the first conversation, remembered by the database"
    newest = world.bot_messages(channel_id)[-1]
    assert newest.message_reference is not None and newest.message_reference["message_id"] == reply["id"]


async def test_a_reply_to_someone_elses_message_starts_nothing(world: DiscordWorld) -> None:
    channel_id = world.channel["id"]
    process = await world.serve()
    other = await world.say(channel_id, "just chatting")
    await world.say(channel_id, "me too", message_reference=reply_reference(other))
    root = await world.mention("now a question")
    await world.answers(root["id"], 1, process)
    assert len(world.anthropic.message_requests) == 1


async def test_the_core_says_which_conversation_a_shown_answer_belongs_to_until_it_is_forgotten(
    core: Core,
) -> None:
    thread = ThreadKey("discord", "1", "2", "3")
    assert await core.service.conversation_of("discord", "900") is None
    answer_id = await core.store.turns.append_answer(thread, "an answer", after_order=0)
    await core.store.shown.remember(thread, ["900", "901"], answer_id=answer_id)
    assert await core.service.conversation_of("discord", "901") == thread
    assert await core.service.conversation_of("slack", "901") is None, "per platform"

    await core.store.people.forget(thread, actor_id="discord:1")
    assert await core.service.conversation_of("discord", "900") is None, "forgotten with the answer"
