"""Discord end to end: raw gateway payloads through discord.py's parsers, the real
core and store, the fake Anthropic API, and the fake Discord REST API."""

from __future__ import annotations

import asyncio
import itertools
import re

import discord
import pytest

from bot.app import Core
from bot.domain import ChannelKey
from fakes.anthropic_server import FakeAnthropic
from fakes.discord_server import (
    autocomplete_payload,
    dm_channel,
    interaction_payload,
    message_payload,
    reply_reference,
)
from tests.discord_harness import MANAGE_GUILD, DiscordHarness

FENCE = re.compile(r"^ {0,3}```", re.MULTILINE)


def fences_balanced(text: str) -> bool:
    inside = False
    for line in text.split("\n"):
        if FENCE.match(line) and (not inside or line.strip() == "```"):
            inside = not inside
    return not inside


async def test_a_mention_opens_a_thread_and_a_follow_up_there_needs_no_mention(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = discord_bot.say("what is a monad?", mention=True)
    await discord_bot.settle()

    [thread] = discord_bot.fake.threads
    assert thread.id == int(root["id"]), "the thread is started on the message"
    assert thread.name.startswith("what is a monad?")
    assert discord_bot.fake.texts(thread.id)[-1] == 'You said: <message from="Alice">what is a monad?</message>'
    assert discord_bot.fake.typing(thread.id), "typing was shown while Claude thought"

    discord_bot.open_thread_event(thread.id)
    discord_bot.say("and a functor?", channel_id=thread.id)
    await discord_bot.settle()
    assert len(fake_anthropic.message_requests) == 2
    assert [m["role"] for m in fake_anthropic.message_requests[1]["messages"]] == ["user", "assistant", "user"]


async def test_a_replayed_message_create_is_answered_once(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = discord_bot.say("hello", mention=True)
    await discord_bot.settle()
    discord_bot.feed("MESSAGE_CREATE", root)  # replayed after a gateway resume
    await discord_bot.settle()
    assert len(fake_anthropic.message_requests) == 1
    assert len(discord_bot.fake.threads) == 1


async def test_chatter_bots_and_webhooks_are_ignored(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    discord_bot.say("just chatting")
    other_bot = {**discord_bot.bob, "bot": True}
    discord_bot.say("hey bot", author=other_bot, mention=True)
    discord_bot.say("from a webhook", mention=True, webhook_id=discord_bot.channel["id"])
    await discord_bot.settle()
    assert fake_anthropic.message_requests == []
    assert discord_bot.fake.threads == []


async def test_a_5000_character_answer_arrives_in_ordered_parts_with_balanced_fences(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    code = "".join(f"    value_{i} = compute({i})\n" for i in range(200))
    answer = "Here is the code:\n\n```python\n" + code + "```\n\n" + "And some prose after it.\n" * 3
    assert len(answer) > 5000
    fake_anthropic.queue_reply(answer)
    await discord_bot.core.store.channels.set_setting(
        ChannelKey("discord", str(discord_bot.guild_id), str(discord_bot.channel["id"])), "max_tokens", 32_000, "t"
    )
    root = discord_bot.say("write code", mention=True)
    await discord_bot.settle()
    parts = discord_bot.fake.texts(int(root["id"]))
    bot_parts = [p for p in parts if p]
    assert len(bot_parts) >= 3
    assert all(len(p) <= 2000 for p in bot_parts)
    assert all(fences_balanced(p) for p in bot_parts)
    assert bot_parts[1].startswith("```python\n"), "a fence cut in two reopens with its language"

    def content(text: str) -> str:  # the words, without fence lines or whitespace
        return re.sub(r"```(python)?|\s", "", text)

    assert content("".join(bot_parts)) == content(answer)


async def test_edits_keep_the_cadence_and_end_with_the_complete_text(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.chunk_delay = 0.05
    answer = " ".join(f"word{i}" for i in range(80))
    fake_anthropic.queue_reply(answer)
    root = discord_bot.say("stream it", mention=True)
    await discord_bot.settle()
    [message] = [m for m in discord_bot.fake.sent(int(root["id"])) if m.author_id == int(discord_bot.bot["id"])]
    edits = discord_bot.fake.edits(message.id)
    assert len(edits) >= 2, "the answer streamed as edits"
    times = [message.time, *(e.time for e in edits)]
    assert all(later - earlier >= 1.15 for earlier, later in itertools.pairwise(times))
    assert message.content == answer


async def test_every_send_and_edit_carries_allowed_mentions_none(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.chunk_delay = 0.05
    fake_anthropic.queue_reply("@everyone look " + " ".join(f"w{i}" for i in range(40)) + " <@&123> @here")
    root = discord_bot.say("ping them", mention=True)
    await discord_bot.settle()
    sent = [m for m in discord_bot.fake.sent(int(root["id"])) if m.author_id == int(discord_bot.bot["id"])]
    assert sent and all(m.allowed_mentions["parse"] == [] for m in sent)
    edits = [e for m in sent for e in discord_bot.fake.edits(m.id)]
    assert edits and all(e.allowed_mentions and e.allowed_mentions["parse"] == [] for e in edits)
    assert not any(m.mention_everyone or m.pinged_role_ids for m in sent)


async def test_where_no_thread_can_be_made_it_answers_as_a_reply_and_replies_continue(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    discord_bot.fake.refuse_threads_in(discord_bot.channel["id"])
    root = discord_bot.say("no threads here", mention=True)
    await discord_bot.settle()
    [answer] = [
        m for m in discord_bot.fake.sent(discord_bot.channel["id"]) if m.author_id == int(discord_bot.bot["id"])
    ]
    assert answer.message_reference and answer.message_reference["message_id"] == root["id"]

    answer_payload = message_payload(
        discord_bot.channel["id"], discord_bot.bot, answer.content, guild_id=discord_bot.guild_id, message_id=answer.id
    )
    discord_bot.say("tell me more", message_reference=reply_reference(answer_payload), type=19)
    await discord_bot.settle()
    assert len(fake_anthropic.message_requests) == 2
    assert [m["role"] for m in fake_anthropic.message_requests[1]["messages"]] == ["user", "assistant", "user"]


async def test_a_mention_inside_an_existing_thread_brings_its_earlier_messages(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    thread = discord_bot.open_thread_event(None, "incident")
    discord_bot.fake.add_channel(thread, discord_bot.guild_id)
    discord_bot.fake.seed_messages(
        thread["id"],
        [
            message_payload(thread["id"], discord_bot.bob, "the deploy failed", guild_id=discord_bot.guild_id),
            message_payload(thread["id"], discord_bot.alice, "disk is full", guild_id=discord_bot.guild_id),
        ],
    )
    discord_bot.say("what now?", channel_id=thread["id"], mention=True)
    await discord_bot.settle()
    first = fake_anthropic.message_requests[0]["messages"][0]["content"]
    assert (
        '<message from="Bob">the deploy failed</message>' in first
        and '<message from="Alice">disk is full</message>' in first
        and first.endswith("what now?</message>")
    )
    assert discord_bot.fake.threads == [], "no new thread inside a thread"


async def test_a_dm_is_answered_and_new_starts_fresh(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    dm = dm_channel(None, recipient=discord_bot.alice)
    discord_bot.fake.add_channel(dm)
    discord_bot.feed("MESSAGE_CREATE", message_payload(dm["id"], discord_bot.alice, "my name is Zed"))
    await discord_bot.settle()
    assert discord_bot.fake.texts(dm["id"])[-1] == 'You said: <message from="Alice">my name is Zed</message>'

    payload = interaction_payload(
        user=discord_bot.alice, application_id=discord_bot.fake.application_id, subcommand="new", channel=dm
    )
    discord_bot.fake.register_interaction(payload)
    discord_bot.feed("INTERACTION_CREATE", payload)
    assert "Starting fresh" in await discord_bot.answer_to(payload["id"])

    discord_bot.feed("MESSAGE_CREATE", message_payload(dm["id"], discord_bot.alice, "what is my name?"))
    await discord_bot.settle()
    assert fake_anthropic.message_requests[-1]["messages"] == [
        {"role": "user", "content": '<message from="Alice">what is my name?</message>'}
    ]


async def test_a_member_without_manage_server_cannot_set_the_system_prompt(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    interaction = discord_bot.command("system", permissions=0, prompt="be rude")
    assert (await discord_bot.answer_to(interaction)).startswith("Only workspace admins")
    response = discord_bot.fake.original_response(interaction)
    assert response is not None and response.ephemeral
    channel = ChannelKey("discord", str(discord_bot.guild_id), str(discord_bot.channel["id"]))
    assert (await discord_bot.core.service.settings.for_channel(channel)).system_prompt != "be rude"


async def test_a_manager_sets_the_system_prompt_and_a_thread_uses_its_parent_channels_settings(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    interaction = discord_bot.command("system", permissions=MANAGE_GUILD, prompt="Answer in haiku.")
    assert "system prompt is updated" in await discord_bot.answer_to(interaction)
    discord_bot.say("autumn?", mention=True)
    await discord_bot.settle()
    assert fake_anthropic.message_requests[-1]["system"] == "Answer in haiku."


async def test_claude_commands_are_synced_at_start(discord_bot: DiscordHarness) -> None:
    [sync] = discord_bot.fake.commands_synced
    assert sync.names == ["claude"]
    [claude] = sync.payload
    names = {o["name"] for o in claude["options"]}
    assert names == {
        "help", "show", "model", "system", "reset", "usage", "new", "forget", "tools", "effort", "fallback", "budget"
    }
    [budget] = [o for o in claude["options"] if o["name"] == "budget"]
    assert [(o["name"], o.get("required", False)) for o in budget["options"]] == [("limit", False)]
    tools = next(o for o in claude["options"] if o["name"] == "tools")
    assert [option.get("required", False) for option in tools["options"]] == [False]  # `/claude tools` shows


async def test_a_manager_turns_web_tools_on_with_the_same_syntax_as_slack(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    interaction = discord_bot.command("tools", permissions=MANAGE_GUILD, setting="web on")
    assert "now on" in await discord_bot.answer_to(interaction)
    discord_bot.say("what is new?", mention=True)
    await discord_bot.settle()
    assert [tool["name"] for tool in fake_anthropic.message_requests[-1]["tools"]] == ["web_search", "web_fetch"]


async def test_the_model_option_autocompletes_from_the_known_models(discord_bot: DiscordHarness) -> None:
    payload = autocomplete_payload(
        focused="model_id",
        user=discord_bot.alice,
        application_id=discord_bot.fake.application_id,
        subcommand="model",
        options={"model_id": "opus"},
        guild_id=discord_bot.guild_id,
        channel=discord_bot.channel,
    )
    discord_bot.fake.register_interaction(payload)
    discord_bot.feed("INTERACTION_CREATE", payload)
    for _ in range(500):  # answered by discord.py's own task: wait for it to land
        if discord_bot.fake.interaction_responses(payload["id"]):
            break
        await asyncio.sleep(0.02)
    [response] = discord_bot.fake.interaction_responses(payload["id"])
    assert [choice["value"] for choice in response.choices] == ["claude-opus-5-5"]


async def test_a_message_in_a_thread_the_cache_never_saw_still_finds_its_conversation(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = discord_bot.say("start here", mention=True)
    await discord_bot.settle()
    # No THREAD_CREATE reaches the client (as after a restart): discord.py sees a PartialMessageable.
    discord_bot.say("continuing", channel_id=root["id"])
    await discord_bot.settle()
    assert len(fake_anthropic.message_requests) == 2
    assert [m["role"] for m in fake_anthropic.message_requests[1]["messages"]] == ["user", "assistant", "user"]


def test_sharding_settings_give_an_auto_sharded_client() -> None:
    from adapters.discord import DiscordConfig, make_client

    client = make_client(DiscordConfig(token="t", shard_count=4, shard_ids=(2, 3)))
    assert isinstance(client, discord.AutoShardedClient)
    assert (client.shard_count, client.shard_ids) == (4, [2, 3])


async def test_with_discord_guild_ids_commands_sync_to_those_servers(core: Core) -> None:
    from adapters.discord import DiscordAdapter, DiscordConfig
    from fakes.discord_server import FakeDiscord

    previous = discord.http.Route.BASE
    async with FakeDiscord() as fake:
        adapter = DiscordAdapter(DiscordConfig(token="t", api_url=fake.api_base, guild_ids=(111, 222)))
        try:
            await adapter.log_in(core.service)
            assert sorted(sync.guild_id for sync in fake.commands_synced) == [111, 222]
        finally:
            await adapter.close()
            discord.http.Route.BASE = previous


async def test_a_refused_message_content_intent_is_explained_in_one_line(
    core: Core, caplog: pytest.LogCaptureFixture
) -> None:
    from adapters.discord import DiscordAdapter, DiscordConfig

    adapter = DiscordAdapter(DiscordConfig(token="t"))

    async def refused(*, reconnect: bool = True) -> None:  # what discord.py raises on close code 4014
        raise discord.PrivilegedIntentsRequired(shard_id=None)

    adapter.client.connect = refused  # type: ignore[method-assign]
    await adapter._connect()
    assert "MESSAGE CONTENT INTENT" in caplog.text and "Developer Portal" in caplog.text
    await adapter.client.close()
