"""Small real files for tests and benchmarks: headers as the formats define them."""

from __future__ import annotations

import struct
import zlib


def png(width: int = 800, height: int = 600) -> bytes:
    """A valid PNG (one grey row repeated, compressed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def jpeg(width: int = 640, height: int = 480) -> bytes:
    """A JPEG's start: SOI, an APP0 segment, then a baseline start-of-frame."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def gif(width: int = 10, height: int = 20) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def webp(width: int = 300, height: int = 200) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little")
    body += (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def pdf(pages: int = 2, padding: int = 0) -> bytes:
    """A PDF with `pages` page objects (and `padding` bytes of a comment, to make it large)."""
    objects = [b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj"]
    objects.append(b"2 0 obj << /Type /Pages /Count %d >> endobj" % pages)
    objects += [b"%d 0 obj << /Type /Page /Parent 2 0 R >> endobj" % (3 + n) for n in range(pages)]
    filler = b"%" + b"x" * max(0, padding - 1) + b"\n" if padding else b""
    return b"%PDF-1.7\n" + b"\n".join(objects) + b"\n" + filler + b"%%EOF\n"


EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(64)
ZIP = b"PK\x03\x04" + bytes(30)
LOG = "2026-11-30 12:00:01 ERROR worker: connection reset\nTraceback: …\n".encode()
