"""Helpers for tests that run the real `bot` command as a subprocess."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The `bot` command of this checkout, whichever checkout the virtualenv's editable install
# points at (a git worktree shares the main checkout's virtualenv).
BOT: list[str] = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bot.cli import main; sys.exit(main())",
]


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
