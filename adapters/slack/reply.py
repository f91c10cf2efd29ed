"""Showing one answer in a Slack thread as it streams.

Each part (see `adapters.streaming`) is one Slack message. A part streams with
Slack's native streaming (chat.startStream / appendStream / stopStream) while
the workspace allows it; otherwise it is posted and then updated about once a
second per message (chat.update). A refusal at any point switches to
posting/updating with the whole text, so nothing is lost to a fallback. Every
chunk goes through `neutralize_mentions`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.streaming import ReplyLimits, StreamedReply, StreamingRefused

# 12,000 characters of markdown_text per message and per call; about one update a second
# per message (chat.update is rate limited per channel).
SLACK_LIMITS = ReplyLimits(max_chars=12_000, edit_interval=1.0, strict_cadence=False)
MARKDOWN_LIMIT = SLACK_LIMITS.max_chars
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


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    channel: str
    thread_ts: str
    team_id: str
    user_id: str


class SlackReply(StreamedReply[str]):
    """An answer in a Slack thread; each message is known by its `ts`."""

    def __init__(self, client: AsyncWebClient, target: ReplyTarget, *, native_streaming: bool) -> None:
        super().__init__(SLACK_LIMITS, native_streaming=native_streaming)
        self._client = client
        self._target = target

    @property
    def channel(self) -> str:
        return self._target.channel

    async def _post_part(self, index: int, text: str) -> str:
        response = await self._client.chat_postMessage(
            channel=self._target.channel, thread_ts=self._target.thread_ts, markdown_text=neutralize_mentions(text)
        )
        return str(response["ts"])

    async def _edit_part(self, handle: str, text: str) -> None:
        await self._client.chat_update(channel=self._target.channel, ts=handle, markdown_text=neutralize_mentions(text))

    async def _start_stream(self, index: int, text: str) -> str:
        with _refusal():
            response = await self._client.chat_startStream(
                channel=self._target.channel,
                thread_ts=self._target.thread_ts,
                markdown_text=neutralize_mentions(text),
                recipient_team_id=self._target.team_id,
                recipient_user_id=self._target.user_id,
            )
        return str(response["ts"])

    async def _append_stream(self, handle: str, text: str) -> None:
        with _refusal():
            await self._client.chat_appendStream(
                channel=self._target.channel, ts=handle, markdown_text=neutralize_mentions(text)
            )

    async def _stop_stream(self, handle: str, text: str) -> None:
        with _refusal():
            await self._client.chat_stopStream(
                channel=self._target.channel, ts=handle, markdown_text=neutralize_mentions(text) or None
            )


@contextlib.contextmanager
def _refusal() -> Iterator[None]:
    """Any error Slack answers a stream call with (the workspace lacks streaming, the stream
    expired, rate limits outlasting the SDK's retries) means: post and update instead."""
    try:
        yield
    except SlackApiError as exc:
        raise StreamingRefused(str(exc.response.get("error", "unknown"))) from exc
