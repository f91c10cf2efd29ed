"""Discord over the real protocol: `bot serve` as a process logs in to the fake REST API,
asks it for the gateway (`GET /gateway/bot`), and talks to the fake gateway's websocket
(HELLO, IDENTIFY, READY, GUILD_CREATE, heartbeats, dispatches, RECONNECT/RESUME,
INVALID_SESSION) with zlib-stream compression, as discord.py does against Discord."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.policy import INTERRUPTED_NOTE
from fakes.anthropic_server import FakeAnthropic
from fakes.discord_server import dm_channel
from tests.discord_process import TOKEN, DiscordWorld, discord_world, eventually


@pytest.fixture
async def world(tmp_path: Path, database_url: str, fake_anthropic: FakeAnthropic) -> AsyncIterator[DiscordWorld]:
    async with discord_world(tmp_path, database_url, fake_anthropic) as built:
        yield built


async def test_a_mention_opens_a_thread_a_follow_up_and_a_dm_are_answered_over_the_gateway(
    world: DiscordWorld,
) -> None:
    process = await world.serve()
    [connection] = world.gateway.connections
    assert connection.query == {"v": "10", "encoding": "json", "compress": "zlib-stream"}, "the gateway the API named"
    [identify] = world.gateway.identifies
    assert identify["token"] == TOKEN and identify["intents"] & (1 << 15), "message content asked for"

    root = await world.mention("what is a monad?")
    [answer] = await world.answers(root["id"], 1, process)
    [thread] = world.rest.threads
    assert thread.id == int(root["id"]), "the thread is started on the message"
    assert answer == 'You said: <message from="Alice">what is a monad?</message>'

    await world.say(thread.id, "and a functor?")
    answers = await world.answers(thread.id, 2, process)
    assert answers[1] == 'You said: <message from="Alice">and a functor?</message>'
    assert [m["role"] for m in world.anthropic.message_requests[-1]["messages"]] == ["user", "assistant", "user"]

    dm = world.rest.add_channel(dm_channel(None, recipient=world.alice))
    await world.gateway.post(dm["id"], world.alice, "my name is Zed")
    [dm_answer] = await world.answers(dm["id"], 1, process)
    assert dm_answer == 'You said: <message from="Alice">my name is Zed</message>'
    assert world.gateway.connections[0].heartbeats >= 1, "heartbeats were sent (and acknowledged)"
    assert len(world.gateway.connections) == 1, "one connection all along"


async def test_a_claude_command_is_answered_over_the_gateway(world: DiscordWorld) -> None:
    process = await world.serve()
    payload = world.command_payload("help")
    await world.gateway.interact(payload)

    def answered() -> bool:
        original = world.rest.original_response(payload["id"])
        return original is not None and bool(original.content)

    await eventually(answered, "the /claude help answer", process)
    original = world.rest.original_response(payload["id"])
    assert original is not None and original.ephemeral and "/claude" in original.content


async def test_sigterm_while_an_answer_streams_ends_the_thread_with_the_whole_answer(world: DiscordWorld) -> None:
    answer = " ".join(f"word{i}" for i in range(50))  # 50 deltas, 0.1 s apart: about 5 s of streaming
    world.anthropic.chunk_delay = 0.1
    world.anthropic.queue_reply(answer)
    process = await world.serve()
    root = await world.mention("tell me a long story")
    await eventually(lambda: bool(world.bot_messages(root["id"])), "the answer to start showing", process)
    assert world.anthropic.in_flight == 1, "the answer is still streaming"

    process.proc.send_signal(signal.SIGTERM)
    assert await process.exited() == 0, process.output()  # the guard is longer than the 30 s drain grace

    [shown] = world.bot_messages(root["id"])
    assert shown.content == answer or shown.content.endswith(INTERRUPTED_NOTE), shown.content
    assert shown.content == answer, "well within the grace, the answer under way was finished"
    assert len(world.anthropic.message_requests) == 1
    assert not [line for line in process.lines if "Session is closed" in line or "Traceback" in line], process.output()


async def test_sigterm_past_the_grace_ends_the_answer_with_the_interrupted_note(world: DiscordWorld) -> None:
    answer = " ".join(f"word{i}" for i in range(50))
    world.anthropic.chunk_delay = 0.1
    world.anthropic.queue_reply(answer)
    process = await world.serve(SHUTDOWN_GRACE_SECONDS="1")
    root = await world.mention("tell me a long story")
    await eventually(lambda: bool(world.bot_messages(root["id"])), "the answer to start showing", process)

    process.proc.send_signal(signal.SIGTERM)
    assert await process.exited() == 0, process.output()

    [shown] = world.bot_messages(root["id"])
    assert shown.content.endswith(INTERRUPTED_NOTE), "the note reached Discord: the session was still open"
    assert shown.content.startswith("word0 word1"), "with the answer so far"
    assert shown.content != answer
