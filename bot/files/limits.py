"""What the bot accepts, within the Messages API's own limits, and the words people get
when a file is not read. Pure rules, table-tested in tests/test_file_rules.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import ContextMessage, FileRef
from bot.files.kinds import FileKind

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileLimits:
    """Per-file sizes and the count per message. Defaults are the Messages API's limits
    (5 MB per image, 32 MB and 100 pages per PDF) and our own for text (its tokens, not
    its bytes, are what costs: 1 MB of text is ~350K tokens)."""

    image_bytes: int = 5 * MB
    pdf_bytes: int = 32 * MB
    pdf_pages: int = 100
    text_bytes: int = 1 * MB
    files_per_message: int = 10
    context_files: int = 3  # files of earlier messages brought along when summoned mid-thread
    images_per_request: int = 100  # the Messages API's limit
    inline_bytes_per_request: int = 22 * MB  # base64 grows it by a third: within the API's 32 MB request

    def max_bytes(self, kind: FileKind | None = None) -> int:
        """The most a download may bring; before the kind is known, the largest of them."""
        if kind is FileKind.IMAGE:
            return self.image_bytes
        if kind is FileKind.PDF:
            return self.pdf_bytes
        if kind is FileKind.TEXT:
            return self.text_bytes
        return max(self.image_bytes, self.pdf_bytes, self.text_bytes)


@dataclass(slots=True)
class RequestAllowance:
    """What one request may still carry, taken newest file first: images (the API takes at
    most 100) and bytes sent inline (its 32 MB request limit). Files by `file_id` cost no
    request bytes."""

    images: int
    inline_bytes: int

    @classmethod
    def of(cls, limits: FileLimits) -> RequestAllowance:
        return cls(limits.images_per_request, limits.inline_bytes_per_request)

    def take(self, kind: FileKind, inline_size: int) -> bool:
        """Whether one more file fits (and if so, count it)."""
        if (kind is FileKind.IMAGE and self.images <= 0) or inline_size > self.inline_bytes:
            return False
        self.images -= kind is FileKind.IMAGE
        self.inline_bytes -= inline_size
        return True


READABLE = "images (PNG, JPEG, GIF, WebP), PDFs and text files"

# Images larger than this on their long edge, or in area, are scaled down by the API first.
_IMAGE_LONG_EDGE = 1568
_IMAGE_MAX_PIXELS = 1_200_000  # ~1,600 tokens: larger images are scaled down first
_PDF_TOKENS_PER_PAGE = 3_000  # the upper end of Anthropic's published 1,500-3,000 per page
_TEXT_BYTES_PER_TOKEN = 3  # as bot.prompt estimates text


def image_tokens(width: int, height: int) -> int:
    """Anthropic's published estimate, tokens = width * height / 750, after the API's own
    downscaling (long edge at most 1568 px, about 1,600 tokens)."""
    if width <= 0 or height <= 0:
        return image_tokens(_IMAGE_LONG_EDGE, _IMAGE_LONG_EDGE)
    scale = min(1.0, _IMAGE_LONG_EDGE / max(width, height), math.sqrt(_IMAGE_MAX_PIXELS / (width * height)))
    return math.ceil(math.floor(width * scale) * math.floor(height * scale) / 750)


UNKNOWN_IMAGE_TOKENS = image_tokens(0, 0)


def pdf_tokens(pages: int) -> int:
    return pages * _PDF_TOKENS_PER_PAGE


def text_tokens(size: int) -> int:
    return math.ceil(size / _TEXT_BYTES_PER_TOKEN)


def _size(limit: int) -> str:
    return f"{limit // MB} MB" if limit >= MB else f"{limit // 1024} KB"


def too_large_note(name: str, kind: FileKind | None, limits: FileLimits) -> str:
    what = {FileKind.IMAGE: "an image", FileKind.PDF: "a PDF", FileKind.TEXT: "a text file"}.get(
        kind or FileKind.UNSUPPORTED, "a file"
    )
    return f"(I didn't read `{_safe(name)}`: {what} can be at most {_size(limits.max_bytes(kind))}.)"


def too_many_pages_note(name: str, pages: int, limits: FileLimits) -> str:
    return f"(I didn't read `{_safe(name)}`: it has {pages} pages; a PDF can have at most {limits.pdf_pages}.)"


def unsupported_note(name: str) -> str:
    return f"(I can't read `{_safe(name)}`: I read {READABLE}.)"


def too_many_files_note(count: int, limits: FileLimits) -> str:
    return f"(I read the first {limits.files_per_message} of the {count} files in that message.)"


def model_cannot_note(name: str, kind: FileKind, model: str) -> str:
    what = "images" if kind is FileKind.IMAGE else "PDFs"
    return f"(I didn't read `{_safe(name)}`: the model `{model}` cannot read {what}.)"


def too_long_note(name: str, model: str) -> str:
    return f"(I didn't read `{_safe(name)}`: it is too long for the context window of the model `{model}`.)"


def fits_window(tokens: int, context_window: int) -> bool:
    """Whether a file leaves room in the window for the conversation around it: at most
    half of it, the share trimming keeps (see `bot.prompt.fit_context`)."""
    return tokens <= context_window // 2


def unavailable_note(name: str) -> str:
    return f"(I couldn't fetch `{_safe(name)}` from the chat, so I answered without it.)"


def refused_note(name: str) -> str:
    return f"(I didn't fetch `{_safe(name)}`: it is not on the chat's own file host.)"


def _safe(name: str) -> str:
    """A file name inside backticks: no backtick or newline can break out of it."""
    return " ".join(name.replace("`", "'").split())[:120] or "file"


def rejection(kind: FileKind, size: int, pages: int | None, limits: FileLimits) -> str | None:
    """Why a downloaded file of this kind is not read ("too_large", "too_many_pages",
    "unsupported"), or None when it is."""
    if kind is FileKind.UNSUPPORTED:
        return "unsupported"
    if size > limits.max_bytes(kind):
        return "too_large"
    if kind is FileKind.PDF and pages is not None and pages > limits.pdf_pages:
        return "too_many_pages"
    return None


def files_from_context(earlier: Sequence[ContextMessage], limits: FileLimits) -> tuple[FileRef, ...]:
    """The files of a thread's earlier messages that come along when the bot is summoned into
    it: the newest `limits.context_files` of them, newest first."""
    newest_first = [ref for message in reversed(earlier) for ref in reversed(message.files)]
    return tuple(newest_first[: limits.context_files])
