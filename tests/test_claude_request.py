"""What a request carries for a channel's tools and effort, against the model's facts (table tests)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.claude import ClaudeClient, tracing_configured
from bot.claude.catalog import ModelInfo
from bot.claude.request import effort_for, request_extras
from bot.claude.tools import with_uses_left
from bot.domain import ChannelSettings

THINKER = ModelInfo("claude-t", 200_000, 64_000, adaptive_thinking=True, effort_levels=frozenset({"low", "high"}))
EFFORT_ONLY = ModelInfo("claude-e", 200_000, 64_000, effort_levels=frozenset({"low", "medium", "high", "max"}))
PLAIN = ModelInfo("claude-p", 200_000, 64_000)
BASE = ChannelSettings("claude-t", "sys", 1000)


@pytest.mark.parametrize(
    ("wanted", "model", "sent"),
    [
        (None, THINKER, None), ("high", THINKER, "high"), ("medium", THINKER, "low"), ("max", THINKER, "high"),
        ("low", PLAIN, None), ("max", EFFORT_ONLY, "max"), ("high", None, None),
    ],
)
def test_effort_is_what_the_model_accepts(wanted: str | None, model: ModelInfo | None, sent: str | None) -> None:
    assert effort_for(wanted, model) == sent


@pytest.mark.parametrize(
    ("settings", "model", "extras"),
    [
        (BASE, THINKER, {}),
        (ChannelSettings("m", "s", 1, effort="high"), THINKER,
         {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}),
        (ChannelSettings("m", "s", 1, effort="max"), EFFORT_ONLY, {"output_config": {"effort": "max"}}),
        (ChannelSettings("m", "s", 1, effort="max"), PLAIN, {}),  # never on a model without it
        (ChannelSettings("m", "s", 1, effort="max"), None, {}),  # nor on one the catalogue cannot vouch for
    ],
)
def test_thinking_and_effort_only_where_chosen_and_supported(
    settings: ChannelSettings, model: ModelInfo | None, extras: dict[str, Any]
) -> None:
    assert request_extras(settings, model, 5) == extras


def test_web_tools_only_where_on_with_their_cap() -> None:
    assert "tools" not in request_extras(BASE, PLAIN, 5)
    tools = request_extras(ChannelSettings("m", "s", 1, web=True, web_blocked_domains="a.com"), PLAIN, 3)["tools"]
    assert [(t["name"], t["max_uses"], t["blocked_domains"]) for t in tools] == [
        ("web_search", 3, ["a.com"]), ("web_fetch", 3, ["a.com"])
    ]
    assert tools[1]["citations"] == {"enabled": True}
    no_web = ModelInfo("claude-n", 200_000, 64_000, web_search=False)
    assert "tools" not in request_extras(ChannelSettings("m", "s", 1, web=True), no_web, 3)


@pytest.mark.parametrize(
    ("used", "left"),
    [({}, (5, 5)), ({"web_search": 2}, (3, 5)), ({"web_search": 5}, None), ({"web_fetch": 6}, None)],
)
def test_a_paused_turn_continues_with_the_uses_left(used: dict[str, int], left: tuple[int, int] | None) -> None:
    tools = tuple(request_extras(ChannelSettings("m", "s", 1, web=True), PLAIN, 5)["tools"])
    continued = with_uses_left(tools, used)
    assert (None if continued is None else tuple(t["max_uses"] for t in continued)) == left


def test_the_sdks_spans_are_computed_only_where_an_opentelemetry_sdk_records_them() -> None:
    # No OpenTelemetry SDK is installed here: the API's proxy provider records nothing.
    assert tracing_configured() is False
    assert ClaudeClient("key", traces=False).sdk_traces_enabled is False
    assert ClaudeClient("key", traces=True).sdk_traces_enabled is True
