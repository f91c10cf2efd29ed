"""Web search and web fetch through the real SDK against the fake API: tools only where on,
progress before the answer, sources at the end, what later turns resend, uses counted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from bot import metrics
from bot.app import Core, open_core
from bot.claude.tools import WEB_FETCH_TYPE, WEB_SEARCH_TYPE
from bot.config import Config
from bot.domain import Progress, now
from fakes import anthropic_tools as blocks
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, command, message, thread
from tests.test_commands import ADMIN, run

RELEASE = ("Python 3.15 released", "https://www.python.org/downloads/release/python-3150/")
NEWS = ("What's new in 3.15", "https://docs.python.org/3.15/whatsnew/3.15.html")


def queue_search_answer(fake: FakeAnthropic) -> None:
    fake.queue_blocks(
        blocks.web_search("python 3.15 release date"),
        blocks.web_search_result([RELEASE, NEWS]),
        blocks.cited("Python 3.15 came out in October", RELEASE[1], RELEASE[0]),
        blocks.text(" and "),
        blocks.cited("it adds lazy imports", NEWS[1], NEWS[0]),
        blocks.text("; "),
        blocks.cited("the download page has installers.", RELEASE[1], RELEASE[0]),
    )


async def web_on(core: Core, adapter: RecordingPlatform, where: str = "C1") -> None:
    await run(core, adapter, command(thread(channel=where).channel, "tools web on", who=ADMIN))


async def test_without_web_tools_the_request_carries_no_tool(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await adapter.deliver(core.service, message(thread(), "what's new in python?"))
    assert "tools" not in fake_anthropic.message_requests[-1]


async def test_web_tools_on_search_shows_progress_then_the_answer_with_numbered_deduplicated_sources(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await web_on(core, adapter)
    queue_search_answer(fake_anthropic)
    await adapter.deliver(core.service, message(thread(), "when did python 3.15 come out?"))

    tools = fake_anthropic.message_requests[-1]["tools"]
    assert [(t["type"], t["name"], t["max_uses"]) for t in tools] == [
        (WEB_SEARCH_TYPE, "web_search", 5), (WEB_FETCH_TYPE, "web_fetch", 5)
    ]
    assert WEB_SEARCH_TYPE == "web_search_20260318" and WEB_FETCH_TYPE == "web_fetch_20260318"
    [reply] = adapter.replies
    assert reply.progress_shown[0] == (Progress("searching", "python 3.15 release date"), 0)
    assert reply.progress_shown[1] == (Progress("found", f"{RELEASE[0]}\n{NEWS[0]}"), 0)
    assert reply.final is not None
    answer, sources = reply.final.split("\n\n**Sources**\n")
    assert answer == (
        "Python 3.15 came out in October and it adds lazy imports; the download page has installers."
    )
    assert sources == f"1. [{RELEASE[0]}]({RELEASE[1]})\n2. [{NEWS[0]}]({NEWS[1]})"


async def test_later_turns_resend_the_answer_and_its_sources_not_the_search_results(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await web_on(core, adapter)
    queue_search_answer(fake_anthropic)
    await adapter.deliver(core.service, message(thread(), "when did python 3.15 come out?"))
    first_answer = adapter.replies[-1].final
    await adapter.deliver(core.service, message(thread(), "thanks", mention=False))

    resent = fake_anthropic.message_requests[-1]["messages"]
    assert resent[1] == {"role": "assistant", "content": first_answer}
    assert "encrypted_content" not in str(resent) and "web_search_tool_result" not in str(resent)
    # The same bytes again next time: the cached prefix (tools first) still holds.
    assert fake_anthropic.message_requests[-1]["tools"] == fake_anthropic.message_requests[-2]["tools"]
    assert fake_anthropic.usages[-1]["cache_read_input_tokens"] > 0


async def test_a_fetched_page_cited_becomes_a_source(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await web_on(core, adapter)
    fake_anthropic.queue_blocks(
        blocks.web_fetch("https://example.com/changelog"),
        blocks.web_fetch_result("https://example.com/changelog", "Changelog", "v2 removes the old API"),
        blocks.cited_fetch("Version 2 removes the old API.", 0),
    )
    await adapter.deliver(core.service, message(thread(), "what does https://example.com/changelog say?"))
    [reply] = adapter.replies
    assert reply.progress_shown[0][0] == Progress("fetching", "https://example.com/changelog")
    assert reply.final == (
        "Version 2 removes the old API.\n\n**Sources**\n1. [Changelog](https://example.com/changelog)"
    )


async def test_allowed_domains_reach_both_tools(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    channel = thread().channel
    await web_on(core, adapter)
    await run(core, adapter, command(channel, "tools web allow docs.python.org peps.python.org", who=ADMIN))
    await adapter.deliver(core.service, message(thread(), "hi"))
    tools = fake_anthropic.message_requests[-1]["tools"]
    assert [t.get("allowed_domains") for t in tools] == [["docs.python.org", "peps.python.org"]] * 2
    assert all("blocked_domains" not in t for t in tools)

    await run(core, adapter, command(channel, "tools web block example.com", who=ADMIN))
    await adapter.deliver(core.service, message(thread("2.2"), "hi"))
    tools = fake_anthropic.message_requests[-1]["tools"]
    assert [t.get("blocked_domains") for t in tools] == [["example.com"]] * 2
    assert all("allowed_domains" not in t for t in tools)


async def test_searches_are_stored_with_the_turn_and_priced_in_usage(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await web_on(core, adapter)
    queue_search_answer(fake_anthropic)
    counted = _searches_counted()
    await adapter.deliver(core.service, message(thread(), "when did python 3.15 come out?"))
    assert _searches_counted() == counted + 1  # and in /metrics
    usage = await run(core, adapter, command(thread().channel, "usage", who=ADMIN))
    assert "1 web search" in usage
    [row] = await core.store.housekeeping.usage_summary(thread().channel, since=_long_ago())
    assert (row.usage.web_searches, row.usage.web_fetches) == (1, 0)


@pytest.fixture
async def web_by_default(config: Config) -> AsyncIterator[Core]:
    opened = await open_core(config.model_copy(update={"default_tools": frozenset({"web"})}))
    yield opened
    await opened.close()


async def test_default_tools_web_turns_tools_on_where_a_channel_has_not_chosen(
    web_by_default: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    core = web_by_default
    await adapter.deliver(core.service, message(thread(channel="C-UNSET"), "hi"))
    assert "tools" in fake_anthropic.message_requests[-1]
    await run(core, adapter, command(thread(channel="C-OFF").channel, "tools web off", who=ADMIN))
    await adapter.deliver(core.service, message(thread(channel="C-OFF"), "hi"))
    assert "tools" not in fake_anthropic.message_requests[-1]


def _long_ago() -> datetime:
    return now() - timedelta(days=1)


def _searches_counted() -> float:
    return metrics.REGISTRY.get_sample_value("bot_claude_server_tool_uses_total", {"tool": "web_search"}) or 0.0
