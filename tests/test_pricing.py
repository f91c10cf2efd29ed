"""The usage estimate prices web searches next to tokens (table test)."""

from __future__ import annotations

import pytest

from bot.domain import TokenUsage
from bot.pricing import estimated_cost_usd


@pytest.mark.parametrize(
    ("model", "usage", "cost"),
    [
        ("claude-sonnet-5-5", TokenUsage(1_000_000, 0), 3.0),
        ("claude-sonnet-5-5", TokenUsage(0, 0, web_searches=1000), 10.0),
        ("claude-haiku-5-5", TokenUsage(0, 1_000_000, web_searches=2, web_fetches=7), 5.02),  # fetches: tokens only
        ("claude-unknown", TokenUsage(1, 1, web_searches=1), None),
    ],
)
def test_searches_are_priced_per_use_and_fetches_by_their_tokens(
    model: str, usage: TokenUsage, cost: float | None
) -> None:
    estimate = estimated_cost_usd(model, usage)
    assert estimate == cost if cost is None else estimate == pytest.approx(cost)
