"""What a file is, decided from its bytes alone (never its name or declared type), and
the size facts the context fit needs (image dimensions, PDF pages).

Own code rather than a library: five magic numbers and four image headers are a few
lines, and no installed package does it without a native library (libmagic).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import StrEnum


class FileKind(StrEnum):
    IMAGE = "image"
    PDF = "pdf"
    TEXT = "text"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class Sniffed:
    kind: FileKind
    media_type: str  # what Claude is told ("" for unsupported)


_MAGIC: tuple[tuple[bytes, int, FileKind, str], ...] = (
    # (bytes, offset, kind, media type)
    (b"\x89PNG\r\n\x1a\n", 0, FileKind.IMAGE, "image/png"),
    (b"\xff\xd8\xff", 0, FileKind.IMAGE, "image/jpeg"),
    (b"GIF87a", 0, FileKind.IMAGE, "image/gif"),
    (b"GIF89a", 0, FileKind.IMAGE, "image/gif"),
    (b"%PDF-", 0, FileKind.PDF, "application/pdf"),
)


def sniff(data: bytes) -> Sniffed:
    """The kind of `data`: an image (PNG, JPEG, GIF, WebP) or PDF by its magic number, text
    when it is valid UTF-8 without control bytes other than whitespace, else unsupported."""
    for magic, offset, kind, media_type in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return Sniffed(kind, media_type)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Sniffed(FileKind.IMAGE, "image/webp")
    if data and _is_text(data):
        return Sniffed(FileKind.TEXT, "text/plain")
    return Sniffed(FileKind.UNSUPPORTED, "")


_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(data) is None  # NUL and friends: a binary that happens to decode


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header, or None when the header cannot be read."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            width, height = struct.unpack(">II", data[16:24])
            return width, height
        if data[:3] == b"GIF":
            width, height = struct.unpack("<HH", data[6:10])
            return width, height
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + length
    return None


_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def pdf_pages(data: bytes) -> int | None:
    """Pages of a PDF, counted from its page objects; None when none are visible
    (compressed object streams)."""
    count = len(_PAGE.findall(data))
    return count or None
