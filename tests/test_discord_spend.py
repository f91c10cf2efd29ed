"""`/claude budget` on Discord (the same syntax as on Slack), and the limit's line in the
thread of the mention it stopped, through discord.py against the fake Discord."""

from __future__ import annotations

from fakes.anthropic_server import FakeAnthropic
from tests.discord_harness import MANAGE_GUILD, DiscordHarness


async def test_budget_is_shown_to_members_changed_by_managers_and_stops_the_next_mention(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    refused = discord_bot.command("budget", permissions=0, limit="channel 1/day")
    assert (await discord_bot.answer_to(refused)).startswith("Only workspace admins")
    shown = discord_bot.command("budget", permissions=0)  # the argument is optional
    assert "This channel: no limit (default)" in await discord_bot.answer_to(shown)
    changed = discord_bot.command("budget", permissions=MANAGE_GUILD, limit="channel 0/day")
    assert "The channel limit is now $0.00/day" in await discord_bot.answer_to(changed)

    discord_bot.say("are you there?", mention=True)
    await discord_bot.settle()
    texts = [text for channel in list(discord_bot.fake.channels) for text in discord_bot.fake.texts(channel)]
    assert sum("this channel's $0.00 daily Claude spending limit has been reached" in text for text in texts) == 1
    assert fake_anthropic.message_requests == [], "no request was made"
