"""Claude's server tools as the request carries them: web search and web fetch, at the
newest versions the installed SDK knows (read from its types, so an SDK upgrade brings
the new versions), capped per request, with the channel's domains."""

from __future__ import annotations

import re
from typing import Any

import anthropic


def _newest_version(param_prefix: str) -> str:
    """`WebSearchTool` -> the latest date among the SDK's `WebSearchTool<date>Param` types."""
    dates = [
        match.group(1)
        for name in dir(anthropic.types)
        if (match := re.fullmatch(param_prefix + r"(\d{8})Param", name))
    ]
    if not dates:
        raise RuntimeError(f"the installed anthropic SDK has no {param_prefix} type")
    return max(dates)


WEB_SEARCH_TYPE = f"web_search_{_newest_version('WebSearchTool')}"
WEB_FETCH_TYPE = f"web_fetch_{_newest_version('WebFetchTool')}"


def web_tools(max_uses: int, allowed_domains: str | None, blocked_domains: str | None) -> tuple[dict[str, Any], ...]:
    """Web search and web fetch, each usable `max_uses` times. The API takes allowed or
    blocked domains, never both: allowed wins. Always the same bytes for the same settings,
    so the cached prompt prefix (tools come first) stays put."""
    domains: dict[str, Any] = {}
    if allowed_domains:
        domains["allowed_domains"] = [d for d in allowed_domains.split(",") if d]
    elif blocked_domains:
        domains["blocked_domains"] = [d for d in blocked_domains.split(",") if d]
    search = {"type": WEB_SEARCH_TYPE, "name": "web_search", "max_uses": max_uses, **domains}
    fetch = {
        "type": WEB_FETCH_TYPE,
        "name": "web_fetch",
        "max_uses": max_uses,
        "citations": {"enabled": True},  # so an answer built on a fetched page can list it as a source
        **domains,
    }
    return (search, fetch)


def with_uses_left(tools: tuple[dict[str, Any], ...], used: dict[str, int]) -> tuple[dict[str, Any], ...] | None:
    """The tools for the continuation of a paused turn: each tool's cap lowered by the uses
    the turn made so far (the cap is per turn, the API counts per request). None when a tool
    has no use left: the turn is not continued."""
    lowered = []
    for tool in tools:
        left = int(tool.get("max_uses", 1)) - used.get(str(tool.get("name")), 0)
        if left < 1:
            return None
        lowered.append({**tool, "max_uses": left})
    return tuple(lowered)
