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

    again = await world.serve()  # what was shown is what was stored: the next turn builds on it
    await world.say(root["id"], "and then?")
    await world.answers(root["id"], 2, again)
    assert [m["role"] for m in world.anthropic.message_requests[-1]["messages"]] == ["user", "assistant", "user"]
    assert answer in str(world.anthropic.message_requests[-1]["messages"][1]["content"])


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


async def test_a_reconnect_mid_conversation_resumes_loses_nothing_and_answers_nothing_twice(
    world: DiscordWorld,
) -> None:
    process = await world.serve()
    root = await world.mention("first question")
    await world.answers(root["id"], 1, process)
    [session_id] = world.gateway.sessions

    world.anthropic.chunk_delay = 0.05
    await world.say(root["id"], "second question, streaming while the gateway reconnects")
    await eventually(lambda: len(world.bot_messages(root["id"])) == 2, "the second answer to start", process)
    await world.gateway.reconnect()  # op 7: what follows is held until the client RESUMEs
    await world.say(root["id"], "third question, sent while the bot was away")
    answers = await world.answers(root["id"], 3, process)

    [resume] = world.gateway.resumes
    assert resume["session_id"] == session_id and resume["seq"] > 0
    assert [c.path for c in world.gateway.connections] == ["/", "/resume"], "resumed at READY's resume_gateway_url"
    assert len(world.gateway.identifies) == 1, "resumed, not identified again"
    assert (
        answers[1]
        == 'You said: <message from="Alice">second question, streaming while the gateway reconnects</message>'
    )
    assert answers[2] == 'You said: <message from="Alice">third question, sent while the bot was away</message>'
    assert len(world.anthropic.message_requests) == 3, "each question answered once"

    await world.gateway.drop()  # the socket dies without a word: the client resumes by itself
    await world.say(root["id"], "fourth question, after a dropped connection")
    answers = await world.answers(root["id"], 4, process)
    assert len(world.gateway.resumes) == 2 and len(world.gateway.identifies) == 1
    assert len(world.anthropic.message_requests) == 4 and len(answers) == 4


async def test_an_invalid_session_is_followed_by_a_new_identify_at_the_apis_gateway(world: DiscordWorld) -> None:
    process = await world.serve()
    await world.gateway.invalidate()
    await eventually(lambda: len(world.gateway.identifies) == 2, "a new IDENTIFY", process)
    assert [c.path for c in world.gateway.connections] == ["/", "/"], "not wss://gateway.discord.gg"
    await eventually(lambda: bool(world.gateway.live_sessions()), "the new session", process)
    root = await world.mention("still there?")
    [answer] = await world.answers(root["id"], 1, process)
    assert answer == 'You said: <message from="Alice">still there?</message>'


async def test_sharded_the_shards_identify_at_the_apis_gateway_and_answer(world: DiscordWorld) -> None:
    process = await world.serve(DISCORD_SHARD_COUNT="2")
    assert sorted(tuple(i["shard"]) for i in world.gateway.identifies) == [(0, 2), (1, 2)]
    assert {c.path for c in world.gateway.connections} == {"/"}
    root = await world.mention("hello, shards")
    await world.answers(root["id"], 1, process)
    assert len(world.anthropic.message_requests) == 1, "answered once, by the guild's shard"


def startup_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("bot serve:")]


async def test_a_bad_token_stops_start_up_with_one_line(world: DiscordWorld) -> None:
    process = await world.serve(wait_ready=False, DISCORD_TOKEN="not-the-token")
    assert await process.exited() == 2
    assert startup_lines(process.lines) == ["bot serve: DISCORD_TOKEN was rejected by Discord"]
    assert not any("Traceback" in line for line in process.lines)


async def test_a_token_the_gateway_refuses_stops_start_up_with_one_line(world: DiscordWorld) -> None:
    world.gateway.token = "revoked-since-the-rest-login"
    process = await world.serve(wait_ready=False)
    assert await process.exited() == 2
    assert [c.close_code for c in world.gateway.connections] == [4004]
    assert startup_lines(process.lines) == ["bot serve: DISCORD_TOKEN was rejected by Discord's gateway"]
    assert not any("Traceback" in line for line in process.lines)


async def test_a_refused_message_content_intent_says_how_to_enable_it(world: DiscordWorld) -> None:
    world.gateway.privileged_intents = 0  # MESSAGE CONTENT INTENT is off in the Developer Portal
    process = await world.serve(wait_ready=False)
    assert await process.exited() == 2
    assert [c.close_code for c in world.gateway.connections] == [4014]
    [line] = startup_lines(process.lines)
    assert "MESSAGE CONTENT INTENT" in line and "Developer Portal" in line
