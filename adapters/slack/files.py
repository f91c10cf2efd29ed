"""Files on Slack messages: each event's `files` as the core's `FileRef`s, and their
download from `url_private_download` with the bot token (`files:read`), only from
Slack's own file hosts (`bot.files.download` holds that rule and the size limit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from bot.domain import FileRef
from bot.files.download import fetch_limited

SLACK_FILE_HOSTS = ("files.slack.com", "files-origin.slack.com", ".slack-edge.com")
"""Where Slack serves `url_private_download` (and may redirect it to)."""

_NOT_SERVED = {"tombstone", "hidden_by_limit", "external"}  # deleted, beyond a free plan's limit, a link


def file_refs(event: dict[str, Any]) -> tuple[FileRef, ...]:
    """The files Slack says the message carries and serves."""
    refs = []
    for item in event.get("files") or []:
        if not isinstance(item, dict) or item.get("mode") in _NOT_SERVED:
            continue
        url = item.get("url_private_download") or item.get("url_private")
        if not url or not item.get("id"):
            continue
        size = item.get("size")
        name = str(item.get("name") or item.get("title") or item["id"])
        refs.append(FileRef(str(item["id"]), name, str(url), int(size) if isinstance(size, int) else None))
    return tuple(refs)


class SlackFileHost:
    """Downloads with the bot token, over the adapter's keep-alive session."""

    def __init__(
        self, token: str, hosts: tuple[str, ...], session: Callable[[], aiohttp.ClientSession | None]
    ) -> None:
        self._token = token
        self._hosts = hosts
        self._session = session

    async def download(self, file: FileRef, limit: int) -> bytes:
        session = self._session()
        if session is not None and not session.closed:
            return await self._fetch(session, file, limit)
        async with aiohttp.ClientSession() as own:
            return await self._fetch(own, file, limit)

    async def _fetch(self, session: aiohttp.ClientSession, file: FileRef, limit: int) -> bytes:
        # Slack answers a download it refuses (bad token, no files:read) with its sign-in page.
        headers = {"Authorization": f"Bearer {self._token}"}
        return await fetch_limited(
            session, file.url, hosts=self._hosts, limit=limit, headers=headers, html_means_refused=True
        )
