"""Discord's conversation controls end to end: buttons on the answers (Stop while it streams;
Regenerate, Continue and feedback once complete), clicks as raw component interactions
through discord.py, the real core and store, the fake Discord REST API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select

from adapters.discord import DiscordAdapter, DiscordConfig
from bot.app import open_core
from bot.config import Config
from bot.schema import answer_feedback, messages
from fakes.anthropic_server import FakeAnthropic
from fakes.discord_server import guild_payload, message_payload, ready_payload, reply_reference
from tests.discord_harness import DiscordHarness


def custom_ids(message: Any) -> list[str]:
    return [c["custom_id"] for row in message.data.get("components", []) for c in row.get("components", [])]


def button(message: Any, kind: str) -> str:
    [found] = [c for c in custom_ids(message) if c.startswith(f"claude:{kind}")]
    return found


async def test_a_complete_answer_carries_regenerate_and_feedback_and_no_stop(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = discord_bot.say("hello", mention=True)
    await discord_bot.settle()
    [answer] = discord_bot.fake.sent(int(root["id"]))
    kinds = [c.split(":")[1] for c in custom_ids(answer)]
    assert kinds == ["regen", "up", "down"]
    assert not answer.pinged_user_ids and not answer.mention_everyone


async def test_stop_mid_stream_ends_the_answer_and_keeps_what_was_written(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_reply(" ".join(f"w{i}" for i in range(300)))
    fake_anthropic.chunk_delay = 0.03
    root = discord_bot.say("write a lot", mention=True)
    thread_id = int(root["id"])
    for _ in range(500):
        sent = discord_bot.fake.sent(thread_id)
        if sent and any(c.startswith("claude:stop") for c in custom_ids(sent[0])):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("no Stop button while the answer streamed")
    clicked = discord_bot.click(button(sent[0], "stop"), dict(sent[0].data))
    await discord_bot.settle()
    fake_anthropic.chunk_delay = 0.0

    [answer] = discord_bot.fake.sent(thread_id)
    assert answer.content.endswith("_(stopped)_") and "w299" not in answer.content
    assert not any(c.startswith("claude:stop") for c in custom_ids(answer)), "Stop is gone once it ended"
    assert discord_bot.fake.interaction_responses(clicked)[0].type == 6  # acknowledged, nothing said


async def test_regenerate_is_for_the_asker_and_takes_the_buttons_off_the_older_answer(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = discord_bot.say("tell me a joke", mention=True)
    await discord_bot.settle()
    thread_id = int(root["id"])
    [first] = discord_bot.fake.sent(thread_id)

    refused = discord_bot.click(button(first, "regen"), dict(first.data), user=discord_bot.bob)
    await discord_bot.settle()
    [response] = discord_bot.fake.interaction_responses(refused)
    assert response.type == 4 and response.ephemeral
    assert (response.content or "").startswith("Only the person who asked")

    fake_anthropic.queue_reply("a better joke")
    discord_bot.click(button(first, "regen"), dict(first.data))
    await discord_bot.settle()
    older, newer = discord_bot.fake.sent(thread_id)
    assert newer.content == "a better joke" and custom_ids(newer)
    assert custom_ids(older) == [], "the older answer's buttons were taken off"
    async with discord_bot.core.store.engine.connect() as conn:
        rows = (await conn.execute(select(messages.c.role, messages.c.superseded).order_by(messages.c.id))).all()
    assert [tuple(r) for r in rows] == [("user", False), ("assistant", True), ("assistant", False)]


async def test_feedback_and_continue_from_discord(discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.queue_reply("the first half", stop_reason="max_tokens")
    root = discord_bot.say("an essay please", mention=True)
    await discord_bot.settle()
    thread_id = int(root["id"])
    [cut] = discord_bot.fake.sent(thread_id)
    discord_bot.click(button(cut, "up"), dict(cut.data), user=discord_bot.bob)
    await discord_bot.settle()
    async with discord_bot.core.store.engine.connect() as conn:
        votes = (await conn.execute(select(answer_feedback.c.user_id, answer_feedback.c.positive))).all()
    assert [tuple(v) for v in votes] == [(str(discord_bot.bob["id"]), True)]

    fake_anthropic.queue_reply("and the second half")
    discord_bot.click(button(cut, "cont"), dict(cut.data), user=discord_bot.bob)
    await discord_bot.settle()
    assert [m.content for m in discord_bot.fake.sent(thread_id)][-1] == "and the second half"


@asynccontextmanager
async def another_instance(first: DiscordHarness, config: Config) -> AsyncIterator[DiscordHarness]:
    """A second service (its own core and Discord client, nothing in memory from the first)
    on the same database and the same Discord: what a restart or another instance sees."""
    core = await open_core(config)
    adapter = DiscordAdapter(DiscordConfig(token="fake-token", api_url=first.fake.api_base))
    try:
        await adapter.log_in(core.service)
        second = DiscordHarness(adapter, first.fake, core, first.guild_id, first.channel, first.alice, first.bob)
        guild = guild_payload(first.guild_id, owner_id=first.alice["id"], channels=[first.channel],
                              bot_user=first.fake.bot_user)
        second.feed("READY", ready_payload(first.fake.bot_user, first.fake.application_id, [first.guild_id]))
        second.feed("GUILD_CREATE", guild)
        yield second
    finally:
        await adapter.stop_intake()
        await core.service.drain()
        await adapter.close()
        await core.close()


async def test_another_instance_or_a_restart_takes_the_buttons_off_the_previous_answer(
    discord_bot: DiscordHarness, config: Config
) -> None:
    root = discord_bot.say("hello", mention=True)
    await discord_bot.settle()
    thread_id = int(root["id"])
    [first] = discord_bot.fake.sent(thread_id)
    assert custom_ids(first)

    async with another_instance(discord_bot, config) as second:
        second.say("and again", channel_id=thread_id)
        await second.settle()
        older, newer = second.fake.sent(thread_id)
        assert custom_ids(newer), "the newer answer has the buttons"
        assert custom_ids(older) == [], "the previous answer's were taken off, though another process showed it"


async def test_a_reply_to_a_stopped_reply_mode_answer_continues_its_conversation(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    channel_id = discord_bot.channel["id"]
    discord_bot.fake.refuse_threads_in(channel_id)
    fake_anthropic.queue_reply(" ".join(f"w{i}" for i in range(300)))
    fake_anthropic.chunk_delay = 0.03
    discord_bot.say("write a lot", mention=True)
    mine = int(discord_bot.bot["id"])
    for _ in range(500):
        sent = [m for m in discord_bot.fake.sent(channel_id) if m.author_id == mine]
        if sent and any(c.startswith("claude:stop") for c in custom_ids(sent[0])):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("no Stop button while the answer streamed")
    discord_bot.click(button(sent[0], "stop"), dict(sent[0].data))
    await discord_bot.settle()
    fake_anthropic.chunk_delay = 0.0
    [answer] = [m for m in discord_bot.fake.sent(channel_id) if m.author_id == mine]
    assert answer.content.endswith("_(stopped)_")

    payload = message_payload(channel_id, discord_bot.bot, answer.content, guild_id=discord_bot.guild_id,
                              message_id=answer.id)
    discord_bot.say("go on from there", message_reference=reply_reference(payload), type=19)
    await discord_bot.settle()
    assert [m["role"] for m in fake_anthropic.message_requests[-1]["messages"]] == ["user", "assistant", "user"]


async def test_a_reply_to_a_regenerated_reply_mode_answer_continues_its_conversation(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    channel_id = discord_bot.channel["id"]
    discord_bot.fake.refuse_threads_in(channel_id)
    mine = int(discord_bot.bot["id"])
    discord_bot.say("tell me a joke", mention=True)
    await discord_bot.settle()
    [first] = [m for m in discord_bot.fake.sent(channel_id) if m.author_id == mine]
    fake_anthropic.queue_reply("a better joke")
    discord_bot.click(button(first, "regen"), dict(first.data))
    await discord_bot.settle()
    _, newer = [m for m in discord_bot.fake.sent(channel_id) if m.author_id == mine]
    assert newer.content == "a better joke"

    payload = message_payload(channel_id, discord_bot.bot, newer.content, guild_id=discord_bot.guild_id,
                              message_id=newer.id)
    discord_bot.say("another one", message_reference=reply_reference(payload), type=19)
    await discord_bot.settle()
    sent = fake_anthropic.message_requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"] and "better joke" in str(sent[1]["content"])
