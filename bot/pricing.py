"""What token usage is estimated to cost (for `/claude usage`)."""

from __future__ import annotations

from bot.domain import TokenUsage

# US$ per million tokens (input, output) by model family, from Anthropic's public
# price list; an estimate for `/claude usage`, not a bill.
_PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "haiku": (1.0, 5.0),
    "sonnet": (3.0, 15.0),
    "opus": (5.0, 25.0),
    "fable": (15.0, 75.0),
    "mythos": (15.0, 75.0),
}
_CACHE_READ_FACTOR = 0.1  # a cache hit costs a tenth of base input
_CACHE_WRITE_FACTOR = 1.25  # a 5-minute cache write costs a quarter more than base input
WEB_SEARCH_USD = 10.0 / 1000  # each web search, on top of tokens; a web fetch costs only its tokens


def estimated_cost_usd(model: str, usage: TokenUsage) -> float | None:
    """Estimated price of `usage` on `model`, or None for a model family we have no price for."""
    family = next((name for name in _PRICES_PER_MTOK if name in model), None)
    if family is None:
        return None
    input_price, output_price = _PRICES_PER_MTOK[family]
    input_cost = (
        usage.input_tokens
        + usage.cache_read_tokens * _CACHE_READ_FACTOR
        + usage.cache_write_tokens * _CACHE_WRITE_FACTOR
    ) * input_price
    return (input_cost + usage.output_tokens * output_price) / 1_000_000 + usage.web_searches * WEB_SEARCH_USD
