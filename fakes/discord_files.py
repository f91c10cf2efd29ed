"""The fake Discord's attachment CDN: ``GET /attachments/<channel>/<attachment>/<name>``,
as Discord serves message attachments (signed links: no token needed, none expected).

`FakeDiscordFiles.add` hosts a file and returns the attachment payload a MESSAGE_CREATE
carries; every download is recorded with the Authorization header presented, if any, so a
test can check that the bot token never goes to the CDN. An unknown or unsigned link -> 404.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class AttachmentDownload:
    attachment_id: str
    authorization: str | None
    served: bool


class FakeDiscordFiles:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}  # attachment id -> (bytes, signature)
        self.downloads: list[AttachmentDownload] = []
        self._ids = itertools.count(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._download)

    def add(self, base_url: str, channel_id: Any, filename: str, data: bytes, **extra: Any) -> dict[str, Any]:
        attachment_id = str(1_300_000_000_000_000_000 + next(self._ids))
        signature = secrets.token_hex(8)
        self.files[attachment_id] = (data, signature)
        url = f"{base_url}/attachments/{channel_id}/{attachment_id}/{filename}?ex=6a000000&is=69f00000&hm={signature}"
        return {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": "application/octet-stream",
            **extra,
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        attachment_id = request.match_info["attachment_id"]
        record = AttachmentDownload(attachment_id, request.headers.get("Authorization"), served=False)
        self.downloads.append(record)
        stored = self.files.get(attachment_id)
        if stored is None or request.query.get("hm") != stored[1]:
            raise web.HTTPNotFound()
        record.served = True
        return web.Response(body=stored[0], content_type="application/octet-stream")
