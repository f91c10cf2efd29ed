"""The Files API through the SDK's beta client: upload a file once, check it is still
there, delete it. An endpoint without the Files API (a Messages-compatible server behind
ANTHROPIC_BASE_URL answering 404) is remembered, and files then go inline."""

from __future__ import annotations

import logging
from typing import Any

import anthropic

log = logging.getLogger(__name__)

FILES_BETA = "files-api-2025-04-14"
"""The beta flag the SDK's `beta.files` calls, and Messages requests that reference a file, need."""


class FilesApi:
    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self._client = client
        self.available: bool | None = None  # None until the endpoint has answered once

    async def upload(self, name: str, data: bytes, media_type: str) -> str | None:
        """The new file's id, or None when the endpoint has no Files API (remembered)."""
        if self.available is False:
            return None
        try:
            metadata = await self._client.beta.files.upload(file=(name, data, media_type), betas=[FILES_BETA])
        except anthropic.NotFoundError:
            log.warning("the Anthropic endpoint has no Files API; files are sent inline from now on")
            self.available = False
            return None
        self.available = True
        return metadata.id

    async def exists(self, file_id: str) -> bool:
        try:
            await self._client.beta.files.retrieve_metadata(file_id, betas=[FILES_BETA])
        except anthropic.NotFoundError:
            return False
        return True

    async def delete(self, file_id: str) -> None:
        """Delete an upload; one already gone counts as deleted."""
        try:
            await self._client.beta.files.delete(file_id, betas=[FILES_BETA])
        except anthropic.NotFoundError:
            pass

    async def count_tokens(self, model: str, block: dict[str, Any]) -> int | None:
        """What one content block costs as input, by the API's own count (None: unknown)."""
        headers = {"anthropic-beta": FILES_BETA} if block.get("source", {}).get("type") == "file" else None
        try:
            counted = await self._client.messages.count_tokens(
                model=model,
                messages=[{"role": "user", "content": [block]}],  # type: ignore[list-item,misc]
                extra_headers=headers,
            )
        except anthropic.APIError as exc:
            log.info("count_tokens failed (%s); estimating the document's size", type(exc).__name__)
            return None
        return counted.input_tokens
