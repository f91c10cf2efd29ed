"""The fake Slack's file hosting: ``GET /files-pri/<team>-<file id>/download/<name>``, as
Slack serves `url_private_download`.

As Slack does: the bot token must come as ``Authorization: Bearer``; without it (or with
another) the answer is a 200 HTML sign-in page, not the file. Every download is recorded
with the token presented (`FileDownload`), so a test can see who asked. A file can be
served with no Content-Length (chunked, so only counting stops an oversized body) or
redirect elsewhere (to check that a client follows redirects only within Slack's hosts).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

SIGN_IN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"
_CHUNK = 256 * 1024


@dataclass
class HostedFile:
    id: str
    name: str
    data: bytes
    redirect_to: str | None = None
    chunked: bool = False
    generated_bytes: int = 0  # >0: serve this many zero bytes (chunked) instead of `data`


@dataclass
class FileDownload:
    file_id: str
    token: str | None  # the bearer token presented
    served: bool  # the file itself was sent (not the sign-in page or a redirect)
    completed: bool = False  # every byte was written before the client went away


class FakeSlackFiles:
    def __init__(self, team_id: str) -> None:
        self.team_id = team_id
        self.accepted_token: str | None = None
        self.files: dict[str, HostedFile] = {}
        self.objects: dict[str, dict[str, Any]] = {}  # file id -> its file object (for files.info)
        self.downloads: list[FileDownload] = []
        self._ids = itertools.count(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)

    def add(
        self,
        base_url: str,
        name: str,
        data: bytes,
        *,
        redirect_to: str | None = None,
        chunked: bool = False,
        generated_bytes: int = 0,
        mimetype: str = "application/octet-stream",
    ) -> dict[str, Any]:
        """Host a file; returns its file object as Slack puts it in a message event's `files`."""
        file_id = f"F{next(self._ids):07d}"
        self.objects[file_id] = {}
        self.files[file_id] = HostedFile(file_id, name, data, redirect_to, chunked or bool(generated_bytes),
                                         generated_bytes)
        download = f"{base_url}/files-pri/{self.team_id}-{file_id}/download/{name}"
        self.objects[file_id] = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
            "size": generated_bytes or len(data),
            "mode": "hosted",
            "url_private": download.replace("/download/", "/"),
            "url_private_download": download,
        }
        return dict(self.objects[file_id])

    def info(self, file_id: str) -> dict[str, Any] | None:
        """The file object ``files.info`` answers with (None: no such file)."""
        found = self.objects.get(file_id)
        return dict(found) if found else None

    @staticmethod
    def as_shared_externally(file: dict[str, Any]) -> dict[str, Any]:
        """The file as Slack puts it in events of a Slack Connect channel: only its id and
        ``file_access: check_file_info`` (the app must call ``files.info`` for the rest)."""
        return {"id": file["id"], "file_access": "check_file_info", "created": 0, "timestamp": 0, "user": "U1"}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        team_file = request.match_info["team_file"]
        file_id = team_file.removeprefix(f"{self.team_id}-")
        bearer = request.headers.get("Authorization", "")
        token = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
        hosted = self.files.get(file_id)
        record = FileDownload(file_id, token, served=False)
        self.downloads.append(record)
        if token is None or token != self.accepted_token:
            return web.Response(body=SIGN_IN_PAGE, content_type="text/html")
        if hosted is None:
            raise web.HTTPNotFound()
        if hosted.redirect_to:
            raise web.HTTPFound(hosted.redirect_to)
        record.served = True
        if not hosted.chunked:
            record.completed = True
            return web.Response(body=hosted.data, content_type="application/octet-stream")
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if hosted.generated_bytes:
                zeros = bytes(_CHUNK)
                for start in range(0, hosted.generated_bytes, _CHUNK):
                    await response.write(zeros[: hosted.generated_bytes - start])
            else:
                for start in range(0, len(hosted.data), _CHUNK):
                    await response.write(hosted.data[start : start + _CHUNK])
            await response.write_eof()
        except ConnectionError:
            return response
        record.completed = True
        return response
