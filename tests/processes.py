"""Helpers for tests that run the real `bot` command as a subprocess."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

_SCRIPT = Path(sys.executable).with_name("bot")
BOT: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bot"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def text_of(content: Any) -> str:
    """The text of a Messages API `content`: a string or a list of blocks."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def conversation(request: dict[str, Any]) -> list[tuple[str, str]]:
    """The (role, text) turns of one Messages request."""
    return [(m["role"], text_of(m["content"])) for m in request["messages"]]
