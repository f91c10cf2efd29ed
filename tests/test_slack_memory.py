"""Bounded memory on the Slack side: the thread context is read page by page keeping only the
messages it will send, also in threads of thousands of messages; the assistant pane's untitled
threads and the channels where streaming was refused are capped."""

from __future__ import annotations

import logging
import time
import tracemalloc

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.assistant import AssistantPane
from adapters.slack.progress import StreamingSupport
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import FakeSlack
from tests.slack_harness import SlackHarness, mention, next_ts

LONG_THREAD = 5_000
FILLER = "x" * 4_000  # 5,000 such messages: 20 MB of text if they were all held


def seed_long_thread(slack: FakeSlack, count: int) -> str:
    root_ts = next_ts()
    base = int(float(root_ts))
    messages = [{"user": "U1", "text": "root", "ts": root_ts}]
    messages += [
        {"user": "UADMIN", "text": f"reply number {i} {FILLER}", "ts": f"{base + 1 + i // 1000}.{i % 1000:06d}"}
        for i in range(count)
    ]
    slack.seed_thread("C1", root_ts, messages)
    return root_ts


async def test_summoned_into_a_thread_of_5000_messages_it_sends_the_latest_50_holding_little(
    slack: SlackHarness, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    # The SDKs' debug lines quote whole responses, and the test's log capture keeps them all.
    for name in ("slack_sdk", "slack_bolt", "anthropic", "httpx2"):
        caplog.set_level(logging.INFO, logger=name)
    root_ts = seed_long_thread(slack.slack, LONG_THREAD)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        await slack.send_event(mention("summarise please", thread_ts=root_ts, ts=f"{int(float(root_ts)) + 10}.000000"))
        await slack.settle()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    sent = fake_anthropic.message_requests[0]["messages"][0]["content"]
    assert f"reply number {LONG_THREAD - 1} " in sent and f"reply number {LONG_THREAD - 50} " in sent
    assert f"reply number {LONG_THREAD - 51} " not in sent, "the 50 messages just before the mention"
    # (One more call reads back the replies after the mention, `oldest` = its ts: not the context.)
    pages = [p for p in slack.slack.calls_to("conversations.replies") if not p.params.get("oldest")]
    assert len(pages) == LONG_THREAD // 200 + 1 and all(p.params.get("cursor") for p in pages[1:])
    assert peak - start < 10_000_000, f"{(peak - start) / 1e6:.1f} MB at the peak while reading the thread"


async def test_the_assistant_panes_untitled_threads_are_capped(fake_slack: FakeSlack) -> None:
    pane = AssistantPane(AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url), (), max_untitled=3)
    for n in range(4):
        await pane.greet({"assistant_thread": {"channel_id": "D1", "thread_ts": f"1.{n}"}})
    for n in range(4):
        await pane.title_if_new("D1", f"1.{n}", f"first message {n}")
    assert fake_slack.titles == {("D1", f"1.{n}"): f"first message {n}" for n in (1, 2, 3)}, "the oldest was dropped"


async def test_an_untitled_pane_thread_is_forgotten_after_a_day(fake_slack: FakeSlack) -> None:
    now = [time.monotonic()]
    pane = AssistantPane(
        AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url), (), clock=lambda: now[0]
    )
    await pane.greet({"assistant_thread": {"channel_id": "D1", "thread_ts": "1.1"}})
    now[0] += 24 * 3600
    await pane.title_if_new("D1", "1.1", "much later")
    assert fake_slack.titles == {}


def test_the_channels_where_streaming_was_refused_are_capped() -> None:
    support = StreamingSupport(max_channels=2)
    for channel in ("C1", "C2", "C3"):
        support.refused(channel, "channel_type_not_supported")
    assert [support.available_in(c) for c in ("C1", "C2", "C3", "C4")] == [True, False, False, True]
