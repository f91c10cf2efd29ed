"""The sources of an answer that cites the web: taken from the citations in Claude's
response, numbered in the order they are first cited, deduplicated by link, and written
as a list at the end of the answer (that text, not the raw search results, is what later
turns resend). Pure; table-tested in tests/test_sources.py.

A link is only ever written as a Markdown link whose label is the page's title, never
bare, and the platforms post it with previews off (Slack: `unfurl_links` false in a
fresh post; see adapters/slack/reply.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_SOURCES = 20
MAX_TITLE_CHARS = 120
SOURCES_HEADING = "**Sources**"
# Characters that would end or break a Markdown link label or target, or write markup.
_LABEL_UNSAFE = re.compile(r"[\[\]<>*_`|\\\n\r]+")


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    url: str


def cited_sources(content: Iterable[Mapping[str, Any]]) -> list[Source]:
    """The sources cited in a response's content blocks (as JSON), first-cited first, one per link.

    Web search citations carry their url and title. Web fetch citations point at a fetched
    document by its index among the response's `web_fetch_tool_result` blocks.
    """
    blocks = list(content)
    fetched = [_fetched_page(b) for b in blocks if b.get("type") == "web_fetch_tool_result"]
    found: list[Source] = []
    seen: set[str] = set()
    for block in blocks:
        if block.get("type") != "text":
            continue
        for citation in block.get("citations") or []:
            source = _source_of(citation, fetched)
            if source is None or source.url in seen:
                continue
            seen.add(source.url)
            found.append(source)
    return found[:MAX_SOURCES]


def _fetched_page(block: Mapping[str, Any]) -> Source | None:
    result = block.get("content") or {}
    if result.get("type") != "web_fetch_result" or not result.get("url"):
        return None
    document = result.get("content") or {}
    return Source(str(document.get("title") or ""), str(result["url"]))


def _source_of(citation: Mapping[str, Any], fetched: Sequence[Source | None]) -> Source | None:
    kind = citation.get("type")
    if kind == "web_search_result_location":
        url = str(citation.get("url") or "")
        return Source(str(citation.get("title") or ""), url) if is_web_link(url) else None
    if kind in ("char_location", "page_location", "content_block_location"):
        index = citation.get("document_index")
        if isinstance(index, int) and 0 <= index < len(fetched):
            page = fetched[index]
            if page is not None and is_web_link(page.url):
                return Source(page.title or str(citation.get("document_title") or ""), page.url)
    return None


def is_web_link(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in url)


def render_sources(sources: Sequence[Source]) -> str:
    """`**Sources**` and one numbered line per source: `1. [Title](url)` ("" for none)."""
    if not sources:
        return ""
    lines = [SOURCES_HEADING]
    for number, source in enumerate(sources, start=1):
        lines.append(f"{number}. [{_label(source)}]({_target(source.url)})")
    return "\n".join(lines)


def _label(source: Source) -> str:
    title = " ".join(_LABEL_UNSAFE.sub(" ", source.title).split())
    if not title:
        title = urlsplit(source.url).netloc
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


def _target(url: str) -> str:
    """A link target that cannot close the Markdown link early."""
    return url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
