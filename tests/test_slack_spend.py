"""Spend and rate limits through Slack (HTTP mode, Bolt, the fake Slack): `/claude budget`
typed in the channel, and the limit's line posted in the thread of the mention it stopped."""

from __future__ import annotations

from fakes.anthropic_server import FakeAnthropic
from tests.slack_harness import SlackHarness, channel_message, mention


async def test_a_mention_past_a_channel_limit_set_with_the_slash_command_gets_one_line_in_its_thread(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    refused = await slack.send_command("budget channel 1/day", user_id="U1")
    await slack.settle()
    [refusal] = slack.slack.responses_to(refused)
    assert "Only workspace admins" in str(refusal.body)

    changed = await slack.send_command("budget channel 0/day", user_id="UADMIN")
    await slack.settle()
    [answer] = slack.slack.responses_to(changed)
    assert "The channel limit is now $0.00/day" in str(answer.body)

    root = mention("are you there?")
    await slack.send_event(root)
    await slack.settle()
    await slack.send_event(channel_message("hello?", thread_ts=root["ts"]))
    await slack.settle()
    [line] = [m.text for m in slack.slack.bot_messages("C1", root["ts"])]
    assert "this channel's $0.00 daily Claude spending limit has been reached" in line
    assert "<!" not in line and "@" not in line
    assert fake_anthropic.message_requests == [], "no request was made"
