"""The sources list: from citations, numbered, deduplicated, safe to post (table tests)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.sources import Source, cited_sources, render_sources
from fakes import anthropic_tools as blocks

A = ("Alpha", "https://a.example/1")
B = ("Beta", "https://b.example/2")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([blocks.text("no citations")], []),
        ([blocks.cited("x", A[1], A[0]), blocks.cited("y", B[1], B[0]), blocks.cited("z", A[1], A[0])],
         [Source(*A), Source(*B)]),
        ([blocks.web_search_result([A, B]), blocks.cited("only b", B[1], B[0])], [Source(*B)]),  # cited only
        ([blocks.cited("x", "javascript:alert(1)", "bad")], []),
        ([blocks.cited("x", "https://a.example/ space", "bad")], []),
        ([blocks.web_fetch_result(A[1], "Fetched", "page"), blocks.cited_fetch("x", 0)], [Source("Fetched", A[1])]),
        ([blocks.cited_fetch("x", 3)], []),  # points at no fetched page
    ],
)
def test_sources_come_from_citations(content: list[dict[str, Any]], expected: list[Source]) -> None:
    assert cited_sources(content) == expected


@pytest.mark.parametrize(
    ("sources", "rendered"),
    [
        ([], ""),
        ([Source(*A), Source(*B)], "**Sources**\n1. [Alpha](https://a.example/1)\n2. [Beta](https://b.example/2)"),
        ([Source("", "https://c.example/x")], "**Sources**\n1. [c.example](https://c.example/x)"),
        ([Source("A [tricky] *title*\n<@U1>", "https://d.example/a_(b)")],
         "**Sources**\n1. [A tricky title @U1](https://d.example/a_%28b%29)"),
        ([Source("x" * 300, A[1])], f"**Sources**\n1. [{'x' * 119}…]({A[1]})"),
    ],
)
def test_sources_render_as_a_numbered_markdown_list(sources: list[Source], rendered: str) -> None:
    assert render_sources(sources) == rendered
