"""Cutting a streamed Markdown answer into messages that each fit a platform's limit.

Text arrives in deltas; messages are shown while it does. So the cut rule must
never move text that is already on screen: a part is cut at the last line break
that fits (else the last space, else hard at the limit). Under that rule every
complete line of the current part is final the moment it arrives, which is what
`stable` reports, and adapters stream exactly that much.

Code fences stay balanced: a part cut inside a fenced block ends with a closing
fence and the next part reopens the block with its opening line (same language).
Removing those added fence lines and joining the parts gives back the text.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r" {0,3}```")
_CLOSER = "```"
MIN_LIMIT = 32


def _fence_after(lines_text: str, open_line: str | None) -> str | None:
    """The opening line of the fence still open after `lines_text` (None if none)."""
    for line in lines_text.split("\n"):
        if _FENCE.match(line):
            if open_line is None:
                open_line = line.strip()
            elif line.strip() == _CLOSER:
                open_line = None
    return open_line


class PartSplitter:
    """Feed text as it arrives; read finished parts and the current one."""

    def __init__(self, limit: int) -> None:
        if limit < MIN_LIMIT:
            raise ValueError(f"limit must be at least {MIN_LIMIT}")
        self.limit = limit
        self.finished: list[str] = []
        # What each finished part got added around the text: (reopened fence, closing fence).
        self.added: list[tuple[str, str]] = []
        self._prefix = ""  # the reopened fence line starting the current part
        self._text = ""

    @property
    def current(self) -> str:
        """The current (last, unfinished) part as it stands."""
        return self._prefix + self._text

    @property
    def stable(self) -> int:
        """How many leading characters of `current` can no longer change (0 while
        they would show nothing but whitespace)."""
        lines_end = self._text.rfind("\n") + 1
        return len(self._prefix) + lines_end if self._text[:lines_end].strip() else 0

    def feed(self, delta: str) -> None:
        self._text += delta
        while len(self._prefix) + len(self._text) > self._room():
            self._cut()

    def close(self) -> list[str]:
        """Finish the last part; returns every part."""
        if self._text.strip():
            self.finished.append(self.current)
            self.added.append((self._prefix, ""))
        self._prefix, self._text = "", ""
        return self.finished

    def _room(self) -> int:
        # Space for a closing fence (and the line break before it) if the cut is in a block.
        return self.limit - len(_CLOSER) - 1

    def _cut(self) -> None:
        window = self._text[: self._room() - len(self._prefix)]
        cut = window.rfind("\n") + 1
        if cut == 0 or not window[:cut].strip():
            cut = window.rfind(" ") + 1
        if cut == 0 or not window[:cut].strip():
            cut = len(window)
            if window.endswith("\r") and self._text[cut : cut + 1] == "\n":
                cut -= 1
        # A cut inside a line makes the rest start a new message; "```" there would open a
        # code block the text never had, so cut a little earlier instead.
        while cut > 1 and self._text[cut - 1] != "\n" and _FENCE.match(self._text, cut):
            cut -= 1
        head, self._text = self._text[:cut], self._text[cut:]
        prefix = self._prefix
        open_line = _fence_after(prefix + head, None)
        closer = ""
        if open_line is not None:
            closer = ("" if head.endswith("\n") else "\n") + _CLOSER
            reopen = open_line if len(open_line) <= self.limit // 4 else _CLOSER
            self._prefix = reopen + "\n"
        else:
            self._prefix = ""
        if head.strip():  # a run of whitespace longer than a message is dropped, not sent
            self.finished.append(prefix + head + closer)
            self.added.append((prefix, closer))


def split_all(text: str, limit: int) -> list[str]:
    """All parts of a complete text."""
    splitter = PartSplitter(limit)
    splitter.feed(text)
    return splitter.close()
