"""What an answer costs, as tables: prices by model, usage to micro-dollars, PRICES_FILE."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.domain import TokenUsage
from bot.pricing import (
    DEFAULT_PRICES,
    DEFAULT_TABLE,
    WEB_SEARCH,
    ModelPrice,
    PriceFileError,
    PriceTable,
    estimated_cost_usd,
    load_price_table,
)

SONNET, OPUS, HAIKU = DEFAULT_PRICES["sonnet"], DEFAULT_PRICES["opus"], DEFAULT_PRICES["haiku"]
MOST_EXPENSIVE = max(DEFAULT_PRICES.values(), key=lambda price: price.rank)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-5-5", SONNET),  # by family
        ("claude-opus-5-5", OPUS),
        ("claude-3-5-haiku-latest", HAIKU),
        ("claude-nonexistent-9", MOST_EXPENSIVE),  # unknown: the most expensive known, never free
        ("", MOST_EXPENSIVE),
    ],
)
def test_a_model_is_priced_by_its_family_or_else_as_the_most_expensive(model: str, expected: ModelPrice) -> None:
    assert DEFAULT_TABLE.price_for(model) == expected


def test_an_exact_id_beats_its_family_and_the_longest_family_name_wins() -> None:
    exact = ModelPrice.from_base("2", "10")
    table = PriceTable({**DEFAULT_PRICES, "claude-sonnet-5-5": exact, "sonnet-mini": ModelPrice.from_base("0", "1")})
    assert table.price_for("claude-sonnet-5-5") == exact
    assert table.price_for("claude-sonnet-mini-1") == table.prices["sonnet-mini"]
    assert table.price_for("claude-sonnet-4-6") == SONNET


@pytest.mark.parametrize(
    ("usage", "tools", "micros"),
    [
        (TokenUsage(), None, 0),
        (TokenUsage(input_tokens=1_000_000), None, 3_000_000),  # $3 per million input tokens
        (TokenUsage(output_tokens=1_000), None, 15_000),  # $15 per million output tokens
        (TokenUsage(cache_read_tokens=1_000_000), None, 300_000),  # a tenth of input
        (TokenUsage(cache_write_tokens=1_000_000), None, 3_750_000),  # 1.25x input
        (TokenUsage(1_000, 500, 10_000, 2_000), None, 3_000 + 7_500 + 3_000 + 7_500),
        (TokenUsage(input_tokens=1), None, 3),
        (TokenUsage(cache_read_tokens=1), None, 1),  # 0.3 micro-dollars: rounded up
        (TokenUsage(), {WEB_SEARCH: 3}, 30_000),  # $10 per thousand searches
        (TokenUsage(), {"code_execution_hours": 1}, 10_000),  # an unknown tool: the dearest per-use price
    ],
)
def test_usage_costs_each_kind_of_token_at_its_price(
    usage: TokenUsage, tools: dict[str, int] | None, micros: int
) -> None:
    assert DEFAULT_TABLE.cost_micros("claude-sonnet-5-5", usage, tools) == micros


def test_a_reservation_is_the_most_a_request_can_cost() -> None:
    # Every input token written to the cache (1.25x), every output token used.
    assert DEFAULT_TABLE.most_micros("claude-sonnet-5-5", 1_000, 100) == 3_750 + 1_500
    assert DEFAULT_TABLE.most_micros("claude-sonnet-5-5", 1_000, 100) >= DEFAULT_TABLE.cost_micros(
        "claude-sonnet-5-5", TokenUsage(0, 100, 0, 1_000)
    )


def test_usage_estimates_keep_saying_unknown_for_models_of_no_known_family() -> None:
    assert estimated_cost_usd("claude-sonnet-5-5", TokenUsage(input_tokens=1_000_000)) == pytest.approx(3.0)
    assert estimated_cost_usd("gpt-nothing", TokenUsage(input_tokens=1)) is None


def test_a_toml_prices_file_adds_and_replaces_prices(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."claude-sonnet-5-5"]\ninput = 2\noutput = 8\ncache_read = 0.5\n\n'
        '[models.fable]\ninput = 20\noutput = 100\n[models.fable.server_tools]\nweb_search_requests = 0.02\n'
    )
    table = load_price_table(path)
    sonnet = table.price_for("claude-sonnet-5-5")
    assert (sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write) == (
        Decimal(2), Decimal(8), Decimal("0.5"), Decimal("2.5")  # cache write defaults to 1.25x input
    )
    assert table.price_for("claude-sonnet-4-6") == SONNET, "the built-in family price still applies"
    assert table.price_for("claude-fable-1").server_tools[WEB_SEARCH] == Decimal("0.02")
    assert table.price_for("unknown-model").output == Decimal(100), "the most expensive now comes from the file"


def test_a_json_prices_file_works_too(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"models": {"claude-haiku-9": {"input": 0.5, "output": 2.5}}}')
    assert load_price_table(path).price_for("claude-haiku-9").output == Decimal("2.5")
    assert load_price_table(None) is DEFAULT_TABLE


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("p.toml", "models = 3", '"models" table'),
        ("p.toml", "[models.x]\ninput = 1\n", "needs input and output"),
        ("p.toml", "[models.x]\ninput = -1\noutput = 1\n", "zero or more"),
        ("p.toml", '[models.x]\ninput = "cheap"\noutput = 1\n', "must be a number"),
        ("p.toml", "[models.x]\ninput = nan\noutput = 1\n", "zero or more"),
        ("p.toml", "[models.x\n", "cannot read"),
        ("p.json", "{not json", "cannot read"),
        ("p.json", "[1, 2]", "expected a table"),
    ],
)
def test_a_bad_prices_file_is_one_clear_error(tmp_path: Path, name: str, content: str, says: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PriceFileError, match=says):
        load_price_table(path)


def test_a_missing_prices_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read"):
        load_price_table(tmp_path / "nowhere.toml")


@pytest.mark.parametrize(
    ("model", "usage", "cost"),
    [
        ("claude-sonnet-5-5", TokenUsage(1_000_000, 0), 3.0),
        ("claude-sonnet-5-5", TokenUsage(0, 0, web_searches=1000), 10.0),
        ("claude-haiku-5-5", TokenUsage(0, 1_000_000, web_searches=2, web_fetches=7), 5.02),  # fetches: tokens only
        ("claude-unknown", TokenUsage(1, 1, web_searches=1), None),
    ],
)
def test_the_usage_report_prices_searches_per_use_and_fetches_by_their_tokens(
    model: str, usage: TokenUsage, cost: float | None
) -> None:
    estimate = estimated_cost_usd(model, usage)
    assert estimate == cost if cost is None else estimate == pytest.approx(cost)
