"""Fitting a conversation into the context window, and joining a thread mid-way."""

from __future__ import annotations

import itertools
import json

from bot.app import Core
from bot.domain import ChannelSettings, ContextMessage, StoredTurn
from bot.policy import TRIMMED_NOTE
from bot.prompt import fit_context
from fakes.anthropic_server import FakeAnthropic, count_input_tokens
from fakes.recording import RecordingPlatform, message, thread

SMALL_WINDOW = 6_000


async def small_window_model(fake: FakeAnthropic) -> None:
    fake.models = [type(fake.models[0]).from_mapping(
        {"id": "claude-sonnet-5-5", "display_name": "Small", "max_input_tokens": SMALL_WINDOW, "max_tokens": 64000}
    )]


async def test_trimming_keeps_requests_under_a_small_window_and_tells_the_user_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await small_window_model(fake_anthropic)
    core.service.settings.defaults = ChannelSettings("claude-sonnet-5-5", "Be helpful.", 500)
    where = thread()
    for i in range(40):
        await adapter.deliver(core.service, message(where, f"message {i}: " + "lorem ipsum " * 40, mention=i == 0))

    bodies = fake_anthropic.message_requests
    assert len(bodies) == 40
    assert all(count_input_tokens(b) + b["max_tokens"] <= SMALL_WINDOW for b in bodies)
    assert sum(TRIMMED_NOTE in final for final in adapter.finals()) == 1
    assert bodies[-1]["messages"][-1]["content"].startswith("[Alice] message 39")
    assert bodies[-1]["messages"][0]["role"] == "user"

    # Trimming goes in large steps: most requests reuse the previous request's prefix.
    stable = sum(
        json.dumps(after["messages"]).startswith(json.dumps(before["messages"])[:-1])
        for before, after in itertools.pairwise(bodies)
    )
    assert stable >= 0.75 * (len(bodies) - 1)


async def test_prompt_too_long_from_the_api_trims_harder_and_retries_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    for i in range(6):
        await adapter.deliver(core.service, message(where, f"turn {i}", mention=i == 0))
    fake_anthropic.queue_fault(400, message="prompt is too long: 1200000 tokens > 1000000 maximum")
    outcome = await adapter.deliver(core.service, message(where, "one more", mention=False))
    assert outcome.error is None
    retried = fake_anthropic.message_requests[-1]
    assert len(retried["messages"]) < len(fake_anthropic.message_requests[-2]["messages"])
    assert TRIMMED_NOTE in adapter.finals()[-1]


def turn(number: int, role: str, size: int = 300) -> StoredTurn:
    return StoredTurn(number, role, "Alice" if role == "user" else None, "x" * size)


def test_nothing_is_dropped_while_everything_fits() -> None:
    turns = [turn(i, "user" if i % 2 == 0 else "assistant") for i in range(1, 7)]
    plan = fit_context(turns, budget_tokens=10_000)
    assert plan.turns == turns and not plan.trimmed


def test_a_trim_drops_to_half_the_budget_and_starts_with_a_user_turn() -> None:
    turns = [turn(i, "assistant" if i % 2 == 0 else "user") for i in range(1, 22)]  # ends unanswered
    plan = fit_context(turns, budget_tokens=1_500)
    assert plan.trimmed
    assert plan.turns[0].role == "user" and plan.turns[-1] == turns[-1]
    assert sum(len(t.content) // 3 + 8 for t in plan.turns) <= 750


def test_a_single_turn_larger_than_the_window_is_cut_short() -> None:
    huge = StoredTurn(1, "user", "Alice", "y" * 90_000)
    plan = fit_context([huge], budget_tokens=1_000)
    assert plan.trimmed and len(plan.turns) == 1
    assert len(plan.turns[0].content) < 3_100 and plan.turns[0].content.endswith("context window]")


async def test_a_bot_summoned_mid_thread_sees_the_earlier_messages_labelled(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    adapter.thread_context[where] = [
        ContextMessage("Carol", "the deploy failed at step 3"),
        ContextMessage("Dan", "logs say disk full"),
    ]
    await adapter.deliver(core.service, message(where, "what should we do?", in_thread=True))
    await adapter.deliver(core.service, message(where, "and then?", mention=False, in_thread=True))

    first, second = fake_anthropic.message_requests
    assert first["messages"][0]["content"] == (
        "<thread_context>\n[Carol] the deploy failed at step 3\n[Dan] logs say disk full\n</thread_context>"
        "\n\n[Alice] what should we do?"
    )
    assert second["messages"][0] == first["messages"][0], "the context is stored once and resent as is"
    assert adapter.context_fetches == 1


async def test_a_mention_that_starts_a_thread_fetches_no_context(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await adapter.deliver(core.service, message(thread(), "hello"))
    assert adapter.context_fetches == 0
