"""Discord attachments end to end: MESSAGE_CREATE with attachments through discord.py, the
fake CDN serving them, the fake Files API receiving them."""

from __future__ import annotations

from typing import Any

from fakes import sample_files as samples
from fakes.anthropic_server import FakeAnthropic
from fakes.discord_server import FakeDiscord, message_payload
from tests.discord_harness import DiscordHarness


def blocks(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == kind]


async def test_an_attached_screenshot_is_fetched_without_the_token_and_sent_as_an_uploaded_image(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    channel = discord_bot.channel["id"]
    shot = discord_bot.fake.add_attachment(channel, "screenshot.png", samples.png())
    root = discord_bot.say("what is this?", mention=True, attachments=[shot])
    await discord_bot.settle()

    [download] = discord_bot.fake.cdn.downloads
    assert download.served and download.authorization is None, "the bot token never goes to the CDN"
    [file_id] = fake_anthropic.files.uploads
    assert blocks(fake_anthropic.message_requests[-1], "image") == [
        {"type": "image", "source": {"type": "file", "file_id": file_id}}
    ]
    thread_id = int(root["id"])
    assert discord_bot.fake.texts(thread_id)[-1].startswith("You said:")

    discord_bot.open_thread_event(thread_id)
    pdf = discord_bot.fake.add_attachment(thread_id, "spec.pdf", samples.pdf(2))
    discord_bot.say("and this?", channel_id=thread_id, attachments=[pdf])
    await discord_bot.settle()
    last = fake_anthropic.message_requests[-1]
    assert blocks(last, "image")[0]["source"]["file_id"] == file_id, "the first file is referenced again"
    [document] = blocks(last, "document")
    assert document["citations"] == {"enabled": True}
    assert len(fake_anthropic.files.uploads) == 2


async def test_an_exe_and_an_attachment_off_discords_cdn_get_lines_and_the_text_is_answered(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    channel = discord_bot.channel["id"]
    exe = discord_bot.fake.add_attachment(channel, "setup.exe", samples.EXE)
    async with FakeDiscord() as elsewhere:
        foreign = elsewhere.add_attachment(channel, "foreign.png", samples.png())
        root = discord_bot.say("hello", mention=True, attachments=[exe, foreign])
        await discord_bot.settle()
        assert elsewhere.cdn.downloads == []

    final = discord_bot.fake.texts(int(root["id"]))[-1]
    assert final.startswith("You said:")
    assert "(I can't read `setup.exe`: I read images (PNG, JPEG, GIF, WebP), PDFs and text files.)" in final
    assert "(I didn't fetch `foreign.png`: it is not on the chat's own file host.)" in final
    assert fake_anthropic.files.uploads == []


async def test_a_mention_inside_a_thread_brings_the_attachments_posted_earlier(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    thread = discord_bot.open_thread_event(None, "incident")
    discord_bot.fake.add_channel(thread, discord_bot.guild_id)
    log = discord_bot.fake.add_attachment(thread["id"], "deploy.log", samples.LOG)
    guild = discord_bot.guild_id
    discord_bot.fake.seed_messages(
        thread["id"],
        [
            message_payload(thread["id"], discord_bot.bob, "the deploy failed", guild_id=guild),
            message_payload(thread["id"], discord_bot.alice, "", guild_id=guild, attachments=[log]),
        ],
    )
    discord_bot.say("what now?", channel_id=thread["id"], mention=True)
    await discord_bot.settle()

    content = fake_anthropic.message_requests[0]["messages"][0]["content"]
    assert "the deploy failed" in content[0]["text"]
    [document] = [b for b in content if b["type"] == "document"]
    assert document["title"] == "deploy.log"
    assert content[-1]["text"].endswith("what now?</message>")
