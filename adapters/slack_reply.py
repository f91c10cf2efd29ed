"""Showing one answer in a Slack thread as it streams.

Each part (see `adapters.parts`) is one Slack message. A part streams with
Slack's native streaming (chat.startStream / appendStream / stopStream) while
the workspace allows it; otherwise it is posted and then updated about once a
second (chat.update). A refusal at any point switches to posting/updating with
the whole text, so nothing is lost to a fallback.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.parts import PartSplitter

log = logging.getLogger(__name__)

MARKDOWN_LIMIT = 12_000  # characters of markdown_text per message and per call
UPDATE_INTERVAL = 1.0  # seconds between two visible updates of one message
_SPECIAL_MENTION = re.compile(
    r"<!(channel|here|everyone)(?:\|[^>]*)?>|<!subteam\^[A-Z0-9]+(?:\|([^>]*))?>|<@([UW][A-Z0-9]+)(?:\|([^>]*))?>"
)
_WORD_JOINER = "\u2060"


def neutralize_mentions(text: str) -> str:
    """Model output must never ping anyone: a channel, `@here`, everyone, a user group or a user."""

    def plain(match: re.Match[str]) -> str:
        if match.group(3):  # a user: their label if the model gave one, else the id
            name = (match.group(4) or match.group(3)).lstrip("@")
        else:
            name = match.group(1) or (match.group(2) or "@group").lstrip("@")
        return "@" + _WORD_JOINER + name

    return _SPECIAL_MENTION.sub(plain, text)


@dataclass
class _Message:
    """One part on screen: how much of it is shown and how."""

    ts: str | None = None
    streaming: bool = False
    shown: int = 0  # characters of the part that Slack has
    closed: bool = False


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    channel: str
    thread_ts: str
    team_id: str
    user_id: str


class SlackReply:
    def __init__(self, client: AsyncWebClient, target: ReplyTarget, *, native_streaming: bool) -> None:
        self._client = client
        self._target = target
        self._native = native_streaming
        self._splitter = PartSplitter(MARKDOWN_LIMIT)
        self._messages: list[_Message] = []
        self._fed = 0
        self._last_update = 0.0
        self.streaming_refused: str | None = None  # Slack's error when it refused native streaming

    @property
    def channel(self) -> str:
        return self._target.channel

    async def append(self, delta: str) -> None:
        self._splitter.feed(delta)
        self._fed += len(delta)
        await self._show(final=False)

    async def finish(self, text: str) -> None:
        self._splitter.feed(text[self._fed :])
        self._fed = len(text)
        self._splitter.close()
        await self._show(final=True)

    async def _show(self, *, final: bool) -> None:
        finished = self._splitter.finished
        for index, part in enumerate(finished):
            await self._show_part(index, part, len(part), complete=True)
        if final:
            return
        due = time.monotonic() - self._last_update >= UPDATE_INTERVAL
        current = self._splitter.current
        index = len(finished)
        message = self._message(index)
        if not due:
            return
        if self._native and self._splitter.stable > message.shown:
            await self._show_part(index, current, self._splitter.stable, complete=False)
        elif not self._native and current.strip() and len(current) > message.shown:
            await self._show_part(index, current, len(current), complete=False)

    def _message(self, index: int) -> _Message:
        while len(self._messages) <= index:
            self._messages.append(_Message())
        return self._messages[index]

    async def _show_part(self, index: int, part: str, upto: int, *, complete: bool) -> None:
        """Bring message `index` to show `part[:upto]`, and close it when `complete`."""
        message = self._message(index)
        if message.closed:
            return
        self._last_update = time.monotonic()
        if self._native and (message.ts is None or message.streaming):
            if await self._stream(message, part, upto, complete):
                return
        await self._post_or_update(message, part[:upto])
        message.closed = complete

    async def _stream(self, message: _Message, part: str, upto: int, complete: bool) -> bool:
        """Native streaming; False when Slack refused it (the caller falls back)."""
        chunk = neutralize_mentions(part[message.shown : upto])
        channel = self._target.channel
        try:
            if message.ts is None:
                response = await self._client.chat_startStream(
                    channel=channel,
                    thread_ts=self._target.thread_ts,
                    markdown_text=chunk,
                    recipient_team_id=self._target.team_id,
                    recipient_user_id=self._target.user_id,
                )
                message.ts, message.streaming, chunk = response["ts"], True, ""
            if complete:
                await self._client.chat_stopStream(channel=channel, ts=message.ts, markdown_text=chunk or None)
                message.streaming, message.closed = False, True
            elif chunk:
                await self._client.chat_appendStream(channel=channel, ts=message.ts, markdown_text=chunk)
        except SlackApiError as exc:
            self.streaming_refused = str(exc.response.get("error", "unknown"))
            log.info("slack streaming refused (%s); posting and updating instead", self.streaming_refused)
            self._native = False
            message.streaming = False
            return False
        message.shown = upto
        return True

    async def _post_or_update(self, message: _Message, text: str) -> None:
        shown = neutralize_mentions(text)
        if message.ts is None:
            response = await self._client.chat_postMessage(
                channel=self._target.channel, thread_ts=self._target.thread_ts, markdown_text=shown
            )
            message.ts = response["ts"]
        else:
            await self._client.chat_update(channel=self._target.channel, ts=message.ts, markdown_text=shown)
        message.shown = len(text)
