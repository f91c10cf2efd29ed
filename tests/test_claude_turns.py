"""One answer across several requests, through the real SDK against the fake API: pause_turn
continued, thinking and effort, refusals and the fallback model, retired models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest
from sqlalchemy import select

from bot.app import Core
from bot.channel_settings import RETIRED_MODEL_ACTOR
from bot.claude.turn import MAX_CONTINUATIONS
from bot.domain import Progress
from bot.policy import PAUSED_NOTE
from bot.schema import messages
from fakes import anthropic_tools as blocks
from fakes.anthropic_server import DEFAULT_MODELS, FakeAnthropic
from fakes.recording import RecordingPlatform, command, message, thread
from tests.conftest import API_KEY
from tests.test_commands import ADMIN, audit_trail, run

RETIRED = {
    "id": "claude-retired-1", "display_name": "Old", "lifecycle": "retired", "created_at": "2025-05-01T00:00:00Z"
}
DEPRECATED = {
    "id": "claude-opus-4-1", "display_name": "Older", "lifecycle": "deprecated",
    "created_at": "2025-08-01T00:00:00Z", "deprecated_at": "2026-06-01T00:00:00Z", "retires_at": "2027-01-05T00:00:00Z",
}


NO_WEB = {"id": "claude-noweb-1", "capabilities": blocks.capabilities(thinking=False, web=False)}


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=API_KEY, models=[*DEFAULT_MODELS, RETIRED, DEPRECATED, NO_WEB]) as fake:
        yield fake


async def web_on(core: Core, adapter: RecordingPlatform) -> None:
    await run(core, adapter, command(thread().channel, "tools web on", who=ADMIN))


async def stored_answers(core: Core) -> list[tuple[str, str | None, str | None]]:
    async with core.store.engine.connect() as conn:
        rows = await conn.execute(
            select(messages.c.content, messages.c.model, messages.c.stop_reason)
            .where(messages.c.role == "assistant").order_by(messages.c.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


# --- pause_turn ----------------------------------------------------------------


async def test_a_paused_turn_is_sent_back_as_it_was_until_it_ends(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await web_on(core, adapter)
    await run(core, adapter, command(thread().channel, "effort high", who=ADMIN))
    paused = (
        blocks.thinking("I should look this up first."),
        blocks.web_search("rust 2027 edition"),
        blocks.web_search_result([("Rust blog", "https://blog.rust-lang.org/2027")]),
    )
    fake_anthropic.queue_blocks(*paused, stop_reason="pause_turn")
    fake_anthropic.queue_blocks(
        blocks.cited("The 2027 edition is planned.", "https://blog.rust-lang.org/2027", "Rust blog")
    )

    await adapter.deliver(core.service, message(thread(), "rust edition news?"))

    first, second = fake_anthropic.message_requests
    assert second["messages"][:-1] == first["messages"]
    assert second["messages"][-1]["role"] == "assistant"
    sent_back = second["messages"][-1]["content"]
    assert [b["type"] for b in sent_back] == ["thinking", "server_tool_use", "web_search_tool_result"]
    assert sent_back[0]["signature"] == paused[0]["signature"]  # the fake refuses an altered one
    assert [t["max_uses"] for t in second["tools"]] == [4, 5]  # the cap is per answer: one search was used
    assert adapter.replies[-1].final == (
        "The 2027 edition is planned.\n\n**Sources**\n1. [Rust blog](https://blog.rust-lang.org/2027)"
    )
    [(_, _, stop)] = await stored_answers(core)
    assert stop == "end_turn"


async def test_a_turn_that_keeps_pausing_is_continued_a_bounded_number_of_times(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    for _ in range(MAX_CONTINUATIONS + 3):
        fake_anthropic.queue_blocks(blocks.text("Still working. "), stop_reason="pause_turn")
    await adapter.deliver(core.service, message(thread(), "a long question"))
    assert len(fake_anthropic.message_requests) == MAX_CONTINUATIONS + 1
    final = adapter.replies[-1].final or ""
    assert final.endswith(PAUSED_NOTE) and final.count("Still working.") == MAX_CONTINUATIONS + 1


def test_the_fake_refuses_a_thinking_block_sent_back_altered() -> None:
    good = blocks.thinking("plan")
    body = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [good]}]}
    assert blocks.check_request(body, None) is None
    body["messages"][1]["content"] = [{**good, "thinking": "a different plan"}]
    assert "signature" in (blocks.check_request(body, None) or "")


# --- thinking and effort ----------------------------------------------------------


async def test_effort_reaches_the_request_only_on_a_model_that_supports_it(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    channel = thread().channel
    await adapter.deliver(core.service, message(thread("0.1"), "before any effort"))
    assert "thinking" not in fake_anthropic.message_requests[-1]
    await run(core, adapter, command(channel, "effort max", who=ADMIN))
    await adapter.deliver(core.service, message(thread("1.1"), "think hard"))
    request = fake_anthropic.message_requests[-1]
    assert request["model"] == "claude-sonnet-5-5"
    assert (request["thinking"], request["output_config"]) == ({"type": "adaptive"}, {"effort": "max"})

    await run(core, adapter, command(channel, "model claude-haiku-5-5", who=ADMIN))  # no thinking, no effort
    await adapter.deliver(core.service, message(thread("2.2"), "think hard"))
    request = fake_anthropic.message_requests[-1]
    assert "thinking" not in request and "output_config" not in request
    assert adapter.replies[-1].final == "You said: " + '<message from="Alice">think hard</message>'


async def test_thinking_is_never_posted_but_the_cue_says_thinking(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await run(core, adapter, command(thread().channel, "effort high", who=ADMIN))
    secret_plan = "The user seems upset; I will be gentle."
    fake_anthropic.queue_blocks(blocks.thinking(secret_plan), blocks.text("Here is my answer."))
    await adapter.deliver(core.service, message(thread(), "help?"))
    await adapter.deliver(core.service, message(thread(), "and then?", mention=False))

    reply = adapter.replies[0]
    assert reply.progress_shown[0] == (Progress("thinking"), 0)
    shown = "".join(reply.deltas) + (reply.final or "")
    assert "gentle" not in shown and reply.final == "Here is my answer."
    assert "gentle" not in str(await stored_answers(core))
    assert "gentle" not in str(fake_anthropic.message_requests[-1]["messages"])  # not resent in a later turn


# --- refusals ---------------------------------------------------------------------


async def test_a_refusal_says_why_when_the_api_names_a_category(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_blocks(stop_reason="refusal", stop_details={"type": "refusal", "category": "cyber"})
    await adapter.deliver(core.service, message(thread(), "write malware"))
    assert adapter.replies[-1].final == (
        "_(Claude declined to answer this request: it could enable cyber harm (category `cyber`).)_"
    )
    assert len(fake_anthropic.message_requests) == 1  # no fallback set: no second request


async def test_a_refusal_with_a_fallback_is_answered_once_by_the_fallback_and_labelled(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    channel = thread().channel
    await run(core, adapter, command(channel, "effort high", who=ADMIN))
    await run(core, adapter, command(channel, "fallback claude-haiku-5-5", who=ADMIN))
    fake_anthropic.queue_blocks(stop_reason="refusal", stop_details={"type": "refusal", "category": "general_harms"})
    fake_anthropic.queue_reply("Here is a careful answer.")
    await adapter.deliver(core.service, message(thread(), "a borderline question"))

    refused, retried = fake_anthropic.message_requests
    assert (refused["model"], retried["model"]) == ("claude-sonnet-5-5", "claude-haiku-5-5")
    assert retried["messages"] == refused["messages"] and retried["system"] == refused["system"]
    assert "thinking" in refused and "thinking" not in retried  # the fallback's own capabilities
    assert adapter.replies[-1].final == (
        "Here is a careful answer.\n\n_(Answered by `claude-haiku-5-5`: `claude-sonnet-5-5` declined this "
        "request, category `general_harms`.)_"
    )
    assert await stored_answers(core) == [("Here is a careful answer.", "claude-haiku-5-5", "end_turn")]


async def test_a_fallback_that_refuses_too_is_not_asked_again(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await run(core, adapter, command(thread().channel, "fallback claude-opus-5-5", who=ADMIN))
    fake_anthropic.queue_blocks(stop_reason="refusal")
    fake_anthropic.queue_blocks(stop_reason="refusal")
    await adapter.deliver(core.service, message(thread(), "no"))
    assert len(fake_anthropic.message_requests) == 2
    assert adapter.replies[-1].final == "_(Claude declined to answer this request.)_"


# --- model facts --------------------------------------------------------------------


async def test_a_channel_on_a_retired_model_is_answered_by_the_default_and_told_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    channel = thread().channel
    await core.store.channels.set_setting(channel, "model", RETIRED["id"], "test:ADMIN")  # chosen before it retired
    await adapter.deliver(core.service, message(thread("1.1"), "hello"))
    await adapter.deliver(core.service, message(thread("2.2"), "hello again"))

    assert [r["model"] for r in fake_anthropic.message_requests] == ["claude-sonnet-5-5"] * 2
    first, second = adapter.finals()
    assert "`claude-retired-1` has been retired, so `claude-sonnet-5-5` answered" in first
    assert "retired" not in second
    assert ("model", RETIRED["id"], None, RETIRED_MODEL_ACTOR) in await audit_trail(core, channel)
    assert RETIRED["id"] not in await run(core, adapter, command(channel, "model", who=ADMIN))  # not offered


async def test_show_flags_a_deprecated_channel_model(core: Core, adapter: RecordingPlatform) -> None:
    channel = thread().channel
    assert "now uses" in await run(core, adapter, command(channel, "model claude-opus-4-1", who=ADMIN))
    shown = await run(core, adapter, command(channel, "show"))
    assert "`claude-opus-4-1` ⚠️ deprecated (retires 2027-01-05)" in shown


async def test_model_facts_come_from_the_models_api(core: Core) -> None:
    sonnet = await core.claude.catalog.get("claude-sonnet-5-5")
    haiku = await core.claude.catalog.get("claude-haiku-5-5")
    assert sonnet is not None and haiku is not None
    assert (sonnet.context_window, sonnet.max_output_tokens, sonnet.adaptive_thinking) == (1_000_000, 64_000, True)
    assert sonnet.effort_levels == {"low", "medium", "high", "max"}
    assert (haiku.adaptive_thinking, haiku.effort_levels) == (False, frozenset())
    retired = await core.claude.catalog.get(RETIRED["id"])
    assert retired is not None and retired.lifecycle == "retired"


async def test_the_fake_refuses_inference_on_a_retired_model(fake_anthropic: FakeAnthropic) -> None:
    client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake_anthropic.base_url, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(model=RETIRED["id"], max_tokens=10, messages=[{"role": "user", "content": "x"}])
    await client.close()


async def test_a_retired_fallback_model_is_not_asked(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await core.store.channels.set_setting(thread().channel, "fallback_model", RETIRED["id"], "test:ADMIN")
    fake_anthropic.queue_blocks(stop_reason="refusal")
    await adapter.deliver(core.service, message(thread(), "no"))
    assert [r["model"] for r in fake_anthropic.message_requests] == ["claude-sonnet-5-5"]
    assert adapter.replies[-1].final == "_(Claude declined to answer this request.)_"


async def test_text_shown_before_a_refusal_stays_and_the_fallback_answer_follows_apart(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await run(core, adapter, command(thread().channel, "fallback claude-opus-5-5", who=ADMIN))
    fake_anthropic.queue_blocks(blocks.text("Sure, here is"), stop_reason="refusal")
    fake_anthropic.queue_reply("A safe answer.")
    await adapter.deliver(core.service, message(thread(), "q"))
    final = adapter.replies[-1].final or ""
    assert final.startswith("Sure, here is\n\nA safe answer.\n\n_(Answered by `claude-opus-5-5`")
    assert await stored_answers(core) == [("A safe answer.", "claude-opus-5-5", "end_turn")]


async def test_a_model_without_web_search_answers_without_the_tools_and_tools_says_so(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    channel = thread().channel
    await web_on(core, adapter)
    await run(core, adapter, command(channel, "model claude-noweb-1", who=ADMIN))
    await adapter.deliver(core.service, message(thread(), "news?"))
    assert "tools" not in fake_anthropic.message_requests[-1]
    assert "has no web search" in await run(core, adapter, command(channel, "tools"))
