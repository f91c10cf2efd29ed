"""What a person reads while Claude works without writing: "Thinking…", "Searching the web
for “…”…", "Reading example.com…", and the titles found. Shared by the platforms; pure, table-tested in
tests/test_progress_text.py.

The query comes from the model, so it is shown only as plain words: no link (a query
with one is left out), no markup, short; a fetched page shows as its host alone.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from bot.domain import Progress

MAX_QUERY_CHARS = 80
_LINKISH = re.compile(r"[a-z][a-z0-9+.-]*://|\]\s*\(|\bwww\.|<|>|@", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`~|\\\[\]]+")


def status_line(progress: Progress) -> str:
    if progress.kind == "searching":
        query = _plain(progress.detail)
        return f"Searching the web for “{query}”…" if query else "Searching the web…"
    if progress.kind == "fetching":
        host = _host(progress.detail)
        return f"Reading {host}…" if host else "Reading a web page…"
    return "Thinking…"


def found_titles(progress: Progress) -> list[str]:
    """The titles of what a search or fetch found, as plain words (a title that looks like a
    link or a mention is left out)."""
    if progress.kind != "found":
        return []
    return [title for title in (_plain(line) for line in progress.detail.split("\n")) if title]


def _plain(query: str) -> str:
    if _LINKISH.search(query):
        return ""
    words = " ".join(_MARKUP.sub(" ", query).split())
    return words if len(words) <= MAX_QUERY_CHARS else words[: MAX_QUERY_CHARS - 1] + "…"


def _host(url: str) -> str:
    """The page's host without `www.` (a bare host is never previewed)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    host = host.removeprefix("www.")
    return host if re.fullmatch(r"[a-z0-9.-]{1,100}", host) else ""
