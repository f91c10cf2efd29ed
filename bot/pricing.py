"""What an answer costs: token usage times the model's prices. Pure rules, table-tested in
tests/test_pricing.py.

Prices are US dollars per million tokens (as Anthropic lists them) for input, output,
cache reads and cache writes, plus dollars per use of a server tool (web search). The
built-in table is by model family; `PRICES_FILE` (TOML or JSON, see README "Operating it")
adds or replaces entries. A model the table does not know is priced as the most expensive
known model: an operator who forgot a price overpays on paper, never silently spends for free.

Costs are whole micro-dollars (millionths of a dollar), rounded up, so totals add exactly.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from bot.domain import TokenUsage

MICROS_PER_USD = 1_000_000
_CACHE_READ_FACTOR = Decimal("0.1")  # a cache hit costs a tenth of base input
_CACHE_WRITE_FACTOR = Decimal("1.25")  # a 5-minute cache write costs a quarter more than base input
WEB_SEARCH = "web_search_requests"  # the name Anthropic's usage gives server tool uses


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US$ per million tokens, and US$ per server tool use by the usage field's name."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    server_tools: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_base(cls, input_price: str | Decimal, output_price: str | Decimal) -> ModelPrice:
        base = Decimal(input_price)
        return cls(base, Decimal(output_price), base * _CACHE_READ_FACTOR, base * _CACHE_WRITE_FACTOR,
                   {WEB_SEARCH: Decimal("0.01")})

    @property
    def rank(self) -> tuple[Decimal, Decimal]:
        """How expensive a model is, for pricing unknown ones: by output, then input price."""
        return (self.output, self.input)


# Anthropic's public list prices, by model family (an id containing the family name).
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "haiku": ModelPrice.from_base("1", "5"),
    "sonnet": ModelPrice.from_base("3", "15"),
    "opus": ModelPrice.from_base("5", "25"),
    "fable": ModelPrice.from_base("15", "75"),
    "mythos": ModelPrice.from_base("15", "75"),
}


class PriceFileError(ValueError):
    """PRICES_FILE cannot be read or holds a price that makes no sense."""


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by model id or family name (see `price_for`)."""

    prices: Mapping[str, ModelPrice]

    def price_for(self, model: str) -> ModelPrice:
        """The exact id's price, else the longest family name the id contains, else the
        most expensive price known."""
        if model in self.prices:
            return self.prices[model]
        families = sorted((name for name in self.prices if name in model), key=len, reverse=True)
        if families:
            return self.prices[families[0]]
        return max(self.prices.values(), key=lambda price: price.rank)

    def cost_micros(self, model: str, usage: TokenUsage, server_tool_uses: Mapping[str, int] | None = None) -> int:
        """What `usage` on `model` costs, in micro-dollars, rounded up."""
        price = self.price_for(model)
        per_mtok = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_read_tokens * price.cache_read
            + usage.cache_write_tokens * price.cache_write
        )  # $/Mtok x tokens = micro-dollars
        most_per_use = max(price.server_tools.values(), default=Decimal(0))
        if server_tool_uses is None:  # the uses counted in the usage itself
            server_tool_uses = {WEB_SEARCH: usage.web_searches}
        for tool, uses in server_tool_uses.items():
            per_mtok += uses * price.server_tools.get(tool, most_per_use) * MICROS_PER_USD
        return math.ceil(per_mtok)

    def most_micros(self, model: str, input_tokens: int, output_tokens: int) -> int:
        """The most a request of this size can cost (every input token written to the cache,
        every output token used): what a turn in flight reserves against a limit."""
        price = self.price_for(model)
        per_input = max(price.input, price.cache_write, price.cache_read)
        return math.ceil(input_tokens * per_input + output_tokens * price.output)


DEFAULT_TABLE = PriceTable(DEFAULT_PRICES)


def estimated_cost_usd(model: str, usage: TokenUsage) -> float | None:
    """Estimated price of `usage` on `model` from the built-in table, or None for a model
    of no known family (for `/claude usage`)."""
    if not any(family in model for family in DEFAULT_PRICES) and model not in DEFAULT_PRICES:
        return None
    return DEFAULT_TABLE.cost_micros(model, usage) / MICROS_PER_USD


def parse_prices(data: Mapping[str, Any]) -> dict[str, ModelPrice]:
    """`{"models": {"<id or family>": {"input": 3, "output": 15, "cache_read": 0.3,
    "cache_write": 3.75, "server_tools": {"web_search_requests": 0.01}}}}`: input and output
    are required; the cache prices default to 0.1x and 1.25x input."""
    models = data.get("models")
    if not isinstance(models, Mapping) or not models:
        raise PriceFileError('no prices: expected a "models" table with one entry per model id or family')
    parsed: dict[str, ModelPrice] = {}
    for name, entry in models.items():
        if not isinstance(entry, Mapping) or "input" not in entry or "output" not in entry:
            raise PriceFileError(f"{name}: needs input and output prices (US$ per million tokens)")
        base = ModelPrice.from_base(_money(name, "input", entry["input"]), _money(name, "output", entry["output"]))
        tools = entry.get("server_tools", {})
        if not isinstance(tools, Mapping):
            raise PriceFileError(f"{name}: server_tools must map a tool's usage name to US$ per use")
        parsed[str(name)] = ModelPrice(
            base.input,
            base.output,
            _money(name, "cache_read", entry.get("cache_read", base.cache_read)),
            _money(name, "cache_write", entry.get("cache_write", base.cache_write)),
            {**base.server_tools, **{str(t): _money(name, str(t), v) for t, v in tools.items()}},
        )
    return parsed


def load_price_table(path: Path | None) -> PriceTable:
    """The built-in table, with PRICES_FILE's entries added or replacing built-in ones."""
    if path is None:
        return DEFAULT_TABLE
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    except (OSError, ValueError) as error:  # tomllib and json errors are ValueErrors
        raise PriceFileError(f"cannot read {path.name}: {error}") from None
    if not isinstance(data, Mapping):
        raise PriceFileError(f"{path.name}: expected a table of models")
    return PriceTable({**DEFAULT_PRICES, **parse_prices(data)})


def _money(model: str, what: str, value: object) -> Decimal:
    if isinstance(value, bool):
        raise PriceFileError(f"{model}: {what} must be a number")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise PriceFileError(f"{model}: {what} must be a number (got {value!r})") from None
    if not amount.is_finite() or amount < 0:
        raise PriceFileError(f"{model}: {what} must be a number of dollars, zero or more (got {value!r})")
    return amount
