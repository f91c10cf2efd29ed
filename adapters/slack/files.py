"""Files on Slack messages: each event's `files` as the core's `FileRef`s, and their
download from `url_private_download` with the bot token (`files:read`), only from
Slack's own file hosts (`bot.files.download` holds that rule and the size limit)."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import FileRef
from bot.files.download import DownloadFailed, fetch_limited

SLACK_FILE_HOSTS = ("files.slack.com", "files-origin.slack.com", ".slack-edge.com")
"""Where Slack serves `url_private_download` (and may redirect it to)."""

_NOT_SERVED = {"tombstone", "hidden_by_limit", "external"}  # deleted, beyond a free plan's limit, a link


def file_refs(event: dict[str, Any]) -> tuple[FileRef, ...]:
    """The files Slack says the message carries and serves."""
    refs = []
    for item in event.get("files") or []:
        if not isinstance(item, dict) or item.get("mode") in _NOT_SERVED:
            continue
        if item.get("file_access") == "check_file_info" and item.get("id"):  # Slack Connect: ask files.info
            refs.append(FileRef(str(item["id"]), str(item.get("name") or item["id"]), ""))
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

    def __init__(self, client: AsyncWebClient, token: str, hosts: tuple[str, ...]) -> None:
        self._client = client
        self._token = token
        self._hosts = hosts

    async def download(self, file: FileRef, limit: int) -> bytes:
        if not file.url:  # a file the event only named: files.info says where it is
            file = await self._located(file)
        session = self._client.session
        if session is not None and not session.closed:
            return await self._fetch(session, file, limit)
        async with aiohttp.ClientSession() as own:
            return await self._fetch(own, file, limit)

    async def _located(self, file: FileRef) -> FileRef:
        try:
            response = await self._client.files_info(file=file.platform_file_id)
        except SlackApiError as exc:
            raise DownloadFailed(f"files.info: {exc.response.get('error')}") from None
        found = response.get("file") or {}
        url = found.get("url_private_download") or found.get("url_private")
        if not url:
            raise DownloadFailed("files.info gave no download URL")
        return FileRef(file.platform_file_id, file.name, str(url), found.get("size"))

    async def _fetch(self, session: aiohttp.ClientSession, file: FileRef, limit: int) -> bytes:
        # Slack answers a download it refuses (bad token, no files:read) with its sign-in page.
        headers = {"Authorization": f"Bearer {self._token}"}
        return await fetch_limited(
            session, file.url, hosts=self._hosts, limit=limit, headers=headers, html_means_refused=True
        )
