"""An attachment as a content block of a Claude request: a reference to the uploaded file
(the same bytes every time, so the resent prefix stays cacheable) or, where the endpoint
has no Files API, the file inline. Pure."""

from __future__ import annotations

import base64
from typing import Any

from bot.domain import Attachment
from bot.files.kinds import FileKind


def file_block(attachment: Attachment, inline: bytes | None = None) -> dict[str, Any]:
    """Images as image blocks; PDFs as documents with citations; text as a plain-text
    document titled with its file name. `inline` is used only without a `file_id`."""
    source: dict[str, Any]
    if attachment.file_id is not None:
        source = {"type": "file", "file_id": attachment.file_id}
    elif inline is None:
        raise ValueError("an attachment without a file_id needs its bytes")
    elif attachment.kind == FileKind.TEXT:
        source = {"type": "text", "media_type": "text/plain", "data": inline.decode("utf-8")}
    else:
        source = {"type": "base64", "media_type": attachment.media_type, "data": base64.b64encode(inline).decode()}
    if attachment.kind == FileKind.IMAGE:
        return {"type": "image", "source": source}
    block: dict[str, Any] = {"type": "document", "source": source, "title": attachment.source.name}
    if attachment.kind == FileKind.PDF:
        block["citations"] = {"enabled": True}
    return block
