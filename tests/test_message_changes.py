"""Deleted means deleted, edited means edited: Slack's `message_deleted` / `message_changed`
and Discord's raw delete, bulk delete and edit events, end to end through the real SDKs into
the store, proven on the requests the fake Anthropic API received."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import discord
import pytest
from sqlalchemy import select

from bot.app import Core
from bot.domain import ThreadKey
from bot.schema import messages
from fakes.anthropic_server import FakeAnthropic
from fakes.discord_server import message_payload
from tests.discord_harness import DiscordHarness
from tests.slack_harness import SlackHarness, channel_message, mention, next_ts

SECRET = "my password is hunter2"


def all_text(request: dict[str, Any]) -> str:
    return json.dumps(request["messages"])


def deleted(ts: str, *, channel: str = "C1", thread_ts: str | None = None, user: str = "U1") -> dict[str, Any]:
    previous = {"type": "message", "user": user, "text": "...", "ts": ts}
    if thread_ts:
        previous["thread_ts"] = thread_ts
    return {
        "type": "message", "subtype": "message_deleted", "hidden": True, "channel": channel,
        "deleted_ts": ts, "previous_message": previous, "ts": next_ts(), "channel_type": "channel",
    }


def changed(
    ts: str, text: str, *, before: str, channel: str = "C1", edited: bool = True, **inner: Any
) -> dict[str, Any]:
    message = {"type": "message", "user": "U1", "text": text, "ts": ts, **inner}
    if edited:
        message["edited"] = {"user": message["user"], "ts": next_ts()}
    return {
        "type": "message", "subtype": "message_changed", "hidden": True, "channel": channel,
        "message": message, "previous_message": {"type": "message", "user": "U1", "text": before, "ts": ts},
        "ts": next_ts(), "channel_type": "channel",
    }


async def stored_texts(core: Core) -> list[str]:
    async with core.store.engine.connect() as conn:
        return list((await conn.execute(select(messages.c.content).order_by(messages.c.id))).scalars())


# --------------------------------------------------------------------------- Slack


async def test_slack_a_deleted_message_and_the_answer_that_echoed_it_leave_every_later_request(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("remember my plan")
    await slack.send_event(root)
    await slack.settle()
    secret = channel_message(SECRET, thread_ts=root["ts"])
    await slack.send_event(secret)
    await slack.settle()
    assert SECRET in all_text(fake_anthropic.message_requests[1])

    response = await slack.send_event(deleted(secret["ts"], thread_ts=root["ts"]))
    assert response.status == 200
    await slack.send_event(channel_message("what next?", thread_ts=root["ts"]))
    await slack.settle()

    last = fake_anthropic.message_requests[-1]["messages"]
    assert "hunter2" not in json.dumps(last), "neither the turn nor the answer that repeated it is resent"
    assert [m["role"] for m in last] == ["user", "assistant", "user"]
    assert last[0] == fake_anthropic.message_requests[1]["messages"][0], "the prefix before it is unchanged"
    assert not any(SECRET == text for text in await stored_texts(slack.service.core)), "gone from the database"
    assert len(slack.slack.bot_messages("C1", root["ts"])) == 3, "the answers already shown stay"
    assert not slack.slack.calls_to("chat.delete")


async def test_slack_a_deleted_thread_root_arrives_as_a_tombstone_and_is_forgotten(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention(SECRET)
    await slack.send_event(root)
    await slack.settle()
    tombstone = changed(root["ts"], "This message was deleted.", before=SECRET, edited=False, subtype="tombstone")
    tombstone["message"]["user"] = "USLACKBOT"
    await slack.send_event(tombstone)
    await slack.send_event(channel_message("still there?", thread_ts=root["ts"]))
    await slack.settle()

    assert "hunter2" not in all_text(fake_anthropic.message_requests[-1])
    assert fake_anthropic.message_requests[-1]["messages"][0]["role"] == "user"


async def test_slack_a_deleted_message_still_waiting_for_its_answer_is_not_answered(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("first")
    await slack.send_event(root)
    await slack.settle()
    thread = ThreadKey("slack", "T1", "C1", root["ts"])
    waiting, kept = channel_message(SECRET, thread_ts=root["ts"]), channel_message("answer me", thread_ts=root["ts"])
    async with slack.service.core.service.locks.hold(thread):  # an earlier answer still running
        await slack.send_event(waiting)
        await slack.send_event(kept)
        await slack.send_event(deleted(waiting["ts"], thread_ts=root["ts"]))
    await slack.settle()

    assert len(fake_anthropic.message_requests) == 2, "one answer, for the message that was kept"
    assert "hunter2" not in all_text(fake_anthropic.message_requests[1])
    assert len(slack.slack.bot_messages("C1", root["ts"])) == 2


async def test_slack_a_message_delivered_after_its_deletion_is_not_answered(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    late = mention(SECRET)
    await slack.send_event(deleted(late["ts"]))
    response = await slack.send_event(late, retry=1)  # Slack retrying a delivery that once failed
    await slack.settle()
    assert response.status == 200
    assert fake_anthropic.message_requests == []
    assert slack.slack.bot_messages("C1", late["ts"]) == []


async def test_slack_an_edit_replaces_the_stored_text_and_later_requests_carry_it(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("my favourite colour is blue")
    await slack.send_event(root)
    await slack.settle()
    edit = changed(root["ts"], "<@UBOT> my favourite colour is <https://red.example|red>", before="<@UBOT> blue")
    assert (await slack.send_event(edit)).status == 200
    await slack.send_event(channel_message("what is it?", thread_ts=root["ts"]))
    await slack.settle()

    assert len(fake_anthropic.message_requests) == 2, "an edit starts no answer"
    first = fake_anthropic.message_requests[1]["messages"][0]["content"]
    assert first == '<message from="mel">my favourite colour is red (https://red.example)</message>'


async def test_slack_previews_metadata_and_bot_updates_are_not_edits(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("see https://example.com")
    await slack.send_event(root)
    await slack.settle()
    before = await stored_texts(slack.service.core)
    unfurl = changed(root["ts"], "<@UBOT> see <https://example.com>", before="x", edited=False,
                     attachments=[{"from_url": "https://example.com", "title": "Example"}])
    [answer] = slack.slack.bot_messages("C1", root["ts"])
    ours = changed(answer.ts, "You said: something else", before="x", bot_id="BBOT", user="UBOT")
    language = changed(root["ts"], "<@UBOT> see https://example.com", before="<@UBOT> see https://example.com")
    for event in (unfurl, ours, language):
        assert (await slack.send_event(event)).status == 200
    await slack.settle()
    assert await stored_texts(slack.service.core) == before
    assert len(fake_anthropic.message_requests) == 1


async def test_slack_changes_in_another_workspace_or_channel_touch_nothing(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention(SECRET)
    await slack.send_event(root)
    await slack.settle()
    before = await stored_texts(slack.service.core)
    await slack.send_event(deleted(root["ts"], channel="C2"))
    await slack.send_event(changed(root["ts"], "edited", before=SECRET, channel="C2"))
    await slack.settle()
    assert await stored_texts(slack.service.core) == before


# --------------------------------------------------------------------------- Discord


async def discord_thread(harness: DiscordHarness, *turns: str) -> tuple[int, list[dict[str, Any]]]:
    """A mention that opened a thread, and people's turns in it, each answered."""
    root = harness.say("hello", mention=True)
    await harness.settle()
    thread_id = int(root["id"])
    harness.open_thread_event(thread_id)
    said = []
    for text in turns:
        said.append(harness.say(text, channel_id=thread_id))
        await harness.settle()
    return thread_id, said


def deletion(harness: DiscordHarness, message_id: Any, channel_id: Any) -> dict[str, Any]:
    return {"id": str(message_id), "channel_id": str(channel_id), "guild_id": str(harness.guild_id)}


def forget_cache(harness: DiscordHarness) -> None:
    """As after a restart: discord.py knows none of the messages."""
    cache = harness.adapter.client._connection._messages
    assert cache is not None
    cache.clear()


async def test_discord_an_uncached_deleted_message_leaves_every_later_request(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    thread_id, [secret] = await discord_thread(discord_bot, SECRET)
    forget_cache(discord_bot)
    discord_bot.feed("MESSAGE_DELETE", deletion(discord_bot, secret["id"], thread_id))
    await discord_bot.settle()
    discord_bot.say("what next?", channel_id=thread_id)
    await discord_bot.settle()

    last = fake_anthropic.message_requests[-1]["messages"]
    assert "hunter2" not in json.dumps(last)
    assert [m["role"] for m in last] == ["user", "assistant", "user"]


async def test_discord_a_deleted_mention_that_opened_the_thread_is_forgotten(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = discord_bot.say(SECRET, mention=True)
    await discord_bot.settle()
    forget_cache(discord_bot)
    slow_database_write(monkeypatch, discord_bot.core)
    channel_id = discord_bot.channel["id"]  # a mention is posted in the channel, not in its thread
    discord_bot.feed("MESSAGE_DELETE", deletion(discord_bot, root["id"], channel_id))
    discord_bot.open_thread_event(int(root["id"]))
    discord_bot.say("anyone?", channel_id=int(root["id"]))
    await discord_bot.settle()
    assert "hunter2" not in all_text(fake_anthropic.message_requests[-1]), (
        "the message that came after the deletion waited for it"
    )


async def test_discord_an_edit_received_before_the_next_message_is_what_its_answer_sends(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread_id, [turn] = await discord_thread(discord_bot, "the colour is blue")
    forget_cache(discord_bot)
    slow_database_write(monkeypatch, discord_bot.core)
    discord_bot.feed("MESSAGE_UPDATE", message_payload(
        thread_id, discord_bot.alice, "the colour is red", guild_id=discord_bot.guild_id, message_id=turn["id"],
        edited_timestamp=discord.utils.utcnow().isoformat(),
    ))
    discord_bot.say("which colour?", channel_id=thread_id)
    await discord_bot.settle()
    last = fake_anthropic.message_requests[-1]["messages"]
    assert last[2] == {"role": "user", "content": '<message from="Alice">the colour is red</message>'}


def slow_database_write(monkeypatch: pytest.MonkeyPatch, core: Core) -> None:
    """Deletions and edits take a while to reach the database (a loaded machine): the next
    message's handling would overtake them unless it waits."""
    changes = core.store.changes
    for name in ("delete", "edit"):
        applied = getattr(changes, name)

        async def slowly(*args: Any, _applied: Any = applied) -> int:
            await asyncio.sleep(0.5)
            return int(await _applied(*args))

        monkeypatch.setattr(changes, name, slowly)


async def test_discord_a_bulk_deletion_forgets_each_message(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    thread_id, said = await discord_thread(discord_bot, SECRET, "and my pin is 4321")
    forget_cache(discord_bot)
    discord_bot.feed(
        "MESSAGE_DELETE_BULK",
        {"ids": [m["id"] for m in said], "channel_id": str(thread_id), "guild_id": str(discord_bot.guild_id)},
    )
    discord_bot.say("what next?", channel_id=thread_id)
    await discord_bot.settle()
    text = all_text(fake_anthropic.message_requests[-1])
    assert "hunter2" not in text and "4321" not in text


async def test_discord_an_edit_replaces_the_text_and_previews_or_bot_edits_do_not(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    thread_id, [turn] = await discord_thread(discord_bot, "the colour is blue")
    forget_cache(discord_bot)
    guild = discord_bot.guild_id

    def update(content: str, *, edited: bool, author: dict[str, Any] | None = None, **extra: Any) -> None:
        payload = message_payload(
            thread_id, author or discord_bot.alice, content, guild_id=guild, message_id=turn["id"],
            edited_timestamp=discord.utils.utcnow().isoformat() if edited else None, **extra,
        )
        discord_bot.feed("MESSAGE_UPDATE", payload)

    update("the colour is blue", edited=False, embeds=[{"type": "link", "url": "https://example.com"}])
    update("written by the bot", edited=True, author=discord_bot.bot)
    await discord_bot.settle()
    assert "the colour is blue" in await stored_texts(discord_bot.core)

    update(f"<@{discord_bot.bot['id']}> the colour is red", edited=True)
    await discord_bot.settle()
    discord_bot.say("which colour?", channel_id=thread_id)
    await discord_bot.settle()
    last = fake_anthropic.message_requests[-1]["messages"]
    assert last[2] == {"role": "user", "content": '<message from="Alice">the colour is red</message>'}
    assert len(fake_anthropic.message_requests) == 3, "an edit starts no answer"
