"""The fake Anthropic's Files API and its checks of image and document blocks.

* ``POST /v1/files`` (multipart, field ``file``) -> `FileMetadata`; ``GET /v1/files/{id}``
  -> its metadata; ``DELETE /v1/files/{id}`` -> ``{"id", "type": "file_deleted"}``; an
  unknown id -> 404 ``not_found_error``. Each needs the ``files-api-2025-04-14`` beta
  header, as the real API does; with ``enabled=False`` every path answers 404, as an
  endpoint without the Files API would; with ``failing=True``, 500.
* Messages requests: image and document blocks are refused (400) as the real API refuses
  them: a media type it does not take, base64 that is not valid base64 or whose bytes are
  not the declared type, a text document without text, a ``file_id`` that does not exist
  (or a file reference without the beta header).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, web

from fakes.anthropic_server import IMAGE_TOKENS, ApiError, JsonDict, _json_response

FILES_BETA = "files-api-2025-04-14"
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MAX_FILE_BYTES = 500 * 1024 * 1024  # the real Files API's limit
_MAGIC = {
    "image/png": b"\x89PNG",
    "image/jpeg": b"\xff\xd8\xff",
    "image/gif": b"GIF8",
    "application/pdf": b"%PDF-",
}
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
PDF_TOKENS_PER_PAGE = 1_500
FILE_TOKENS: dict[str, int] = {}
"""Input tokens of each uploaded file by id (ids are unique per process), for token accounting."""


@dataclass
class StoredFile:
    id: str
    filename: str
    mime_type: str
    data: bytes
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat().replace("+00:00", "Z"))

    def metadata(self) -> JsonDict:
        return {
            "id": self.id,
            "type": "file",
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": len(self.data),
            "created_at": self.created_at,
            "downloadable": False,
        }


def document_tokens(media_type: str, data: bytes) -> int:
    """A file's input tokens: a PDF by its pages, a PNG by Anthropic's published formula
    (width * height / 750, at most ~1,600), other images flat, text by its length."""
    if media_type == "application/pdf":
        return max(1, len(_PAGE.findall(data))) * PDF_TOKENS_PER_PAGE
    if media_type == "image/png" and len(data) >= 24:
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return max(1, min(1_600, math.ceil(width * height / 750)))
    if media_type in IMAGE_MEDIA_TYPES:
        return IMAGE_TOKENS
    return max(1, len(data) // 4)


class FakeFiles:
    def __init__(self) -> None:
        self.enabled = True
        self.failing = False  # every Files API call answers 500 (an outage)
        self.files: dict[str, StoredFile] = {}
        self.uploads: list[str] = []  # ids, in the order they were uploaded
        self.deleted: list[str] = []
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{file_id}", self._metadata)
        app.router.add_delete("/v1/files/{file_id}", self._delete)

    def forget(self, file_id: str) -> None:
        """Lose a file, as the real API does when it expires or someone deletes it."""
        self.files.pop(file_id, None)

    def reset(self) -> None:
        self.files.clear()
        self.uploads.clear()
        self.deleted.clear()

    def _check(self, request: web.Request) -> None:
        if self.failing:
            raise ApiError(500, "Internal server error")
        if not self.enabled:
            raise ApiError(404, "Not found")
        if FILES_BETA not in request.headers.get("anthropic-beta", ""):
            raise ApiError(400, f"The Files API is in beta: send the header anthropic-beta: {FILES_BETA}")

    def _find(self, request: web.Request) -> StoredFile:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            raise ApiError(404, f"File not found: {request.match_info['file_id']}")
        return stored

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        reader = await request.multipart()
        stored: StoredFile | None = None
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            data = await part.read()
            if len(data) > MAX_FILE_BYTES:
                raise ApiError(413, "File too large", "request_too_large")
            mime = part.headers.get("Content-Type", "application/octet-stream")
            file_id = f"file_fake{self._prefix}_{next(self._ids):04d}"
            stored = StoredFile(file_id, part.filename or "unnamed", mime, bytes(data))
        if stored is None:
            raise ApiError(400, "file: Field required")
        self.files[stored.id] = stored
        self.uploads.append(stored.id)
        FILE_TOKENS[stored.id] = document_tokens(stored.mime_type, stored.data)
        return _json_response(stored.metadata())

    async def _metadata(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        return _json_response(self._find(request).metadata())

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        self._check(request)
        stored = self._find(request)
        del self.files[stored.id]
        self.deleted.append(stored.id)
        return _json_response({"id": stored.id, "type": "file_deleted"})

    # --- content blocks of a Messages request ------------------------------------------

    def validate_messages(
        self, body: Mapping[str, Any], headers: Mapping[str, str], reads: Mapping[str, bool | None] | None = None
    ) -> None:
        """`reads`: the model's capabilities ("image", "pdf" -> False refuses those blocks)."""
        for index, message in enumerate(body.get("messages") or []):
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for number, block in enumerate(content):
                where = f"messages.{index}.content.{number}"
                if isinstance(block, dict) and block.get("type") in ("image", "document"):
                    kind = "image" if block["type"] == "image" else ("pdf" if self._is_pdf(block) else "text")
                    if (reads or {}).get(kind) is False:
                        raise ApiError(400, f"{where}: this model does not support {kind} input")
                    self._validate_block(block, where, headers)

    def _is_pdf(self, block: Mapping[str, Any]) -> bool:
        source = block.get("source") if isinstance(block.get("source"), dict) else {}
        assert isinstance(source, dict)
        if source.get("type") == "file":
            stored = self.files.get(str(source.get("file_id")))
            return stored is not None and stored.mime_type == "application/pdf"
        return source.get("media_type") == "application/pdf"

    def _validate_block(self, block: Mapping[str, Any], where: str, headers: Mapping[str, str]) -> None:
        source = block.get("source")
        if not isinstance(source, dict):
            raise ApiError(400, f"{where}.source: Field required")
        kind = source.get("type")
        if kind == "file":
            self._validate_file(block, source, where, headers)
        elif kind == "base64":
            self._validate_base64(block, source, where)
        elif kind == "text" and block["type"] == "document":
            if source.get("media_type") != "text/plain" or not isinstance(source.get("data"), str):
                raise ApiError(400, f"{where}.source: a text source needs media_type text/plain and data")
        else:
            raise ApiError(400, f"{where}.source.type: Input tag '{kind}' is not one of the expected tags")

    def _validate_file(
        self, block: Mapping[str, Any], source: Mapping[str, Any], where: str, headers: Mapping[str, str]
    ) -> None:
        if FILES_BETA not in headers.get("anthropic-beta", ""):
            raise ApiError(400, f"{where}.source: file sources need the beta header {FILES_BETA}")
        stored = self.files.get(str(source.get("file_id")))
        if stored is None:
            raise ApiError(400, f"File not found: {source.get('file_id')}")
        if block["type"] == "image" and stored.mime_type not in IMAGE_MEDIA_TYPES:
            raise ApiError(400, f"{where}: the file is a {stored.mime_type}, not an image")
        if block["type"] == "document" and stored.mime_type not in ("application/pdf", "text/plain"):
            raise ApiError(400, f"{where}: a document file must be a PDF or plain text, not {stored.mime_type}")

    @staticmethod
    def _validate_base64(block: Mapping[str, Any], source: Mapping[str, Any], where: str) -> None:
        media_type = source.get("media_type")
        allowed = IMAGE_MEDIA_TYPES if block["type"] == "image" else frozenset({"application/pdf"})
        if media_type not in allowed:
            raise ApiError(400, f"{where}.source.media_type: Input should be one of {sorted(allowed)}")
        try:
            data = base64.b64decode(str(source.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"{where}.source.data: invalid base64 data") from None
        magic = _MAGIC.get(str(media_type))
        is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        if (magic and not data.startswith(magic)) or (media_type == "image/webp" and not is_webp):
            raise ApiError(400, f"{where}: the data does not match the media type {media_type}")
