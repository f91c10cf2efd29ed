"""Progress people can see while Claude searches or thinks, on Slack and Discord end to end,
and the status lines themselves (table tests)."""

from __future__ import annotations

import pytest

from adapters.progress_text import found_titles, status_line
from bot.domain import ChannelKey, Progress
from fakes.anthropic_server import FakeAnthropic
from tests.discord_harness import DiscordHarness
from tests.slack_harness import SlackHarness, dm, mention
from tests.test_web_tools import NEWS, RELEASE, queue_search_answer

SLACK_CHANNEL = ChannelKey("slack", "T1", "C1")
SEARCHING = "Searching the web for “python 3.15 release date”…"
SOURCES = f"**Sources**\n1. [{RELEASE[0]}]({RELEASE[1]})\n2. [{NEWS[0]}]({NEWS[1]})"


@pytest.mark.parametrize(
    ("progress", "line"),
    [
        (Progress("thinking"), "Thinking…"),
        (Progress("searching", "rust  *2027*  edition"), "Searching the web for “rust 2027 edition”…"),
        (Progress("searching", "see https://evil.example/x"), "Searching the web…"),
        (Progress("searching", "ping <!channel> @here"), "Searching the web…"),
        (Progress("searching", "x" * 200), f"Searching the web for “{'x' * 79}…”…"),
        (Progress("fetching", "https://www.example.com/a?b=c"), "Reading example.com…"),
        (Progress("fetching", "not a url"), "Reading a web page…"),
    ],
)
def test_status_lines_are_plain_words(progress: Progress, line: str) -> None:
    assert status_line(progress) == line


@pytest.mark.parametrize(
    ("detail", "titles"),
    [("A\nB *bold*", ["A", "B bold"]), ("see https://x.example\nSafe", ["Safe"]), ("", []), ("<!here>", [])],
)
def test_found_titles_are_plain_words(detail: str, titles: list[str]) -> None:
    assert found_titles(Progress("found", detail)) == titles


async def web_on_in_slack(slack: SlackHarness) -> None:
    await slack.service.core.store.channels.set_setting(SLACK_CHANNEL, "web", True, "slack:UADMIN")


async def test_slack_native_stream_shows_the_search_as_a_task_then_the_answer_with_sources_unfurled_never(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    await web_on_in_slack(slack)
    queue_search_answer(fake_anthropic)
    event = mention("when did python 3.15 come out?")
    await slack.send_event(event)
    await slack.settle()

    start = slack.slack.calls_to("chat.startStream")[0].params
    assert start["chunks"] == [{"type": "task_update", "id": "task1", "title": SEARCHING, "status": "in_progress"}]
    completed = [
        chunk for call in slack.slack.calls_to("chat.appendStream") + slack.slack.calls_to("chat.stopStream")
        for chunk in call.params.get("chunks") or [] if chunk.get("status") == "complete"
    ]
    assert [c["id"] for c in completed] == ["task1"]
    assert completed[0]["output"] == f"{RELEASE[0]}\n{NEWS[0]}"  # what it found: titles, no links
    [answer] = slack.slack.bot_messages("C1", event["ts"])
    assert answer.text.endswith(SOURCES)
    assert slack.slack.links_slack_may_preview() == []


async def test_slack_without_native_streaming_shows_a_status_line_the_answer_replaces(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.streaming_supported = False
    await web_on_in_slack(slack)
    queue_search_answer(fake_anthropic)
    event = mention("when did python 3.15 come out?")
    await slack.send_event(event)
    await slack.settle()

    first_post = slack.slack.calls_to("chat.postMessage")[0].params
    assert first_post["markdown_text"] == f"_{SEARCHING}_"
    messages = slack.slack.bot_messages("C1", event["ts"])
    assert [m.text.endswith(SOURCES) for m in messages] == [True]
    assert SEARCHING not in messages[0].text
    assert slack.slack.links_slack_may_preview() == []


async def test_slack_dm_pane_status_says_what_claude_is_doing(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    await slack.service.core.store.channels.set_setting(ChannelKey("slack", "T1", "D1"), "web", True, "slack:U1")
    queue_search_answer(fake_anthropic)
    event = dm("when did python 3.15 come out?")
    await slack.send_event(event)
    await slack.settle()
    statuses = slack.slack.statuses.get(("D1", event["ts"]), [])
    assert statuses[:2] == ["is thinking…", "is s" + SEARCHING[1:]]


async def test_discord_shows_a_status_line_then_replaces_it_with_the_answer(
    discord_bot: DiscordHarness, fake_anthropic: FakeAnthropic
) -> None:
    guild_channel = ChannelKey("discord", str(discord_bot.guild_id), str(discord_bot.channel["id"]))
    await discord_bot.core.store.channels.set_setting(guild_channel, "web", True, "discord:1")
    queue_search_answer(fake_anthropic)
    root = discord_bot.say("when did python 3.15 come out?", mention=True)
    await discord_bot.settle()

    [thread] = discord_bot.fake.threads
    assert thread.id == int(root["id"])
    [answer] = [m for m in discord_bot.fake.sent(thread.id) if m.by_bot]
    assert answer.contents[0] == f"*{SEARCHING}*"
    assert answer.content.endswith(SOURCES) and SEARCHING not in answer.content


async def test_slack_admins_use_the_same_syntax_and_members_only_see(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    refused = await slack.send_command("tools web on", user_id="U1")
    turned_on = await slack.send_command("tools web on", user_id="UADMIN")
    await slack.settle()  # (commands run concurrently)
    shown = await slack.send_command("show", user_id="U1")
    await slack.settle()
    assert slack.slack.responses_to(refused)[0].text.startswith("Only workspace admins")
    assert "now on" in slack.slack.responses_to(turned_on)[0].text
    assert "*Web search and fetch:* on (any domain)" in slack.slack.responses_to(shown)[0].text
    await slack.send_event(mention("news?"))
    await slack.settle()
    assert [t["name"] for t in fake_anthropic.message_requests[-1]["tools"]] == ["web_search", "web_fetch"]
