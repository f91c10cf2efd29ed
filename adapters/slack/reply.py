"""Showing one answer in a Slack thread as it streams.

Each part (see `adapters.streaming`) is one Slack message. A part streams with
Slack's native streaming (chat.startStream / appendStream / stopStream) while
the workspace allows it; otherwise it is posted and then updated about once a
second per message (chat.update). A refusal at any point switches to
posting/updating with the whole text, so nothing is lost to a fallback. Every
chunk goes through `neutralize_mentions`.

Link previews. Slack fetches the links in a message to preview them ("unfurls")
unless the message is posted with `unfurl_links` and `unfurl_media` false; its
docs give those flags to chat.postMessage (and to response_url messages) only.
chat.update and the streaming methods take no such flags, and the docs do not
say whether text they add is unfurled. A link the model writes could carry the
thread's content to someone else's server without anyone clicking, so text
with a link reaches Slack only in a chat.postMessage with both flags false:
while a part streams or is updated it shows the lines before its first link;
when the part is complete and has a link, its message is withdrawn and the
whole part posted afresh.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import control_blocks
from adapters.streaming import ReplyLimits, ShownPart, StreamedReply, StreamingRefused
from bot.controls import AnswerControls

log = logging.getLogger(__name__)

# 12,000 characters of markdown_text per message and per call; about one update a second
# per message (chat.update is rate limited per channel).
SLACK_LIMITS = ReplyLimits(max_chars=12_000, edit_interval=1.0, strict_cadence=False)
MARKDOWN_LIMIT = SLACK_LIMITS.max_chars
_SPECIAL_MENTION = re.compile(
    r"<!(channel|here|everyone)(?:\|[^>]*)?>|<!subteam\^[A-Z0-9]+(?:\|([^>]*))?>|<@([UW][A-Z0-9]+)(?:\|([^>]*))?>"
)
_WORD_JOINER = "\u2060"
# A URL with a scheme (bare or inside <...>), a markdown link or image target, or a www.
# host. A bare domain that Slack links by itself gets the domain as its label, and Slack
# never unfurls a link whose label is the URL without its protocol.
_LINK = re.compile(r"[a-z][a-z0-9+.-]*://|\]\s*\(|\bwww\.", re.IGNORECASE)


def has_link(text: str) -> bool:
    """Whether Slack might fetch something for `text` unless told not to (see the module's docstring)."""
    return _LINK.search(text) is not None


def before_first_link(text: str) -> str:
    """The whole lines of `text` before the line of its first link (all of it without one)."""
    link = _LINK.search(text)
    return text if link is None else text[: text.rfind("\n", 0, link.start()) + 1]


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
        self._open_task: tuple[str, str] | None = None  # (id, title) of the task update in progress
        self._tasks = 0
        self._controls: list[dict[str, Any]] = []  # blocks under the final message (see `offer_controls`)
        self._finishing = False
        self._closing = -1  # the part being closed
        self._controls_shown = False

    async def show_progress(self, title: str) -> bool:
        """Where the answer streams natively: `title` as a task update in its stream (the one
        before it marked complete); False where no stream can carry it (then a status line).
        A task never carries a link: the streaming methods take no unfurl flags."""
        index = len(self._splitter.finished)
        shown = self._shown(index)
        if self._fed or not self._streams(shown) or has_link(title):
            return False
        self._tasks += 1
        task = (f"task{self._tasks}", title)
        chunks = [*self._closing_chunks(), _task_update(*task, "in_progress")]
        started = self._clock()
        try:
            with _refusal():
                if shown.handle is None:
                    response = await self._client.chat_startStream(
                        channel=self._target.channel,
                        thread_ts=self._target.thread_ts,
                        chunks=chunks,
                        task_display_mode="timeline",
                        recipient_team_id=self._target.team_id,
                        recipient_user_id=self._target.user_id,
                    )
                    shown.handle, shown.streaming = str(response["ts"]), True
                    self._shows(shown, "", closed=False, started=started)
                else:
                    await self._client.chat_appendStream(channel=self._target.channel, ts=shown.handle, chunks=chunks)
        except StreamingRefused as refusal:
            self.streaming_refused = refusal.error
            self._native = shown.streaming = False
            return False
        self._open_task = task
        return True

    async def complete_task(self, titles: list[str]) -> None:
        """Mark the task in progress done, listing what it found (titles only: no link)."""
        index = len(self._splitter.finished)
        shown = self._shown(index)
        if self._open_task is None or not shown.streaming or shown.handle is None:
            return
        task, self._open_task = self._open_task, None
        output = "\n".join(title for title in titles if not has_link(title))
        chunk = _task_update(*task, "complete") | ({"output": neutralize_mentions(output)} if output else {})
        try:
            with _refusal():
                await self._client.chat_appendStream(channel=self._target.channel, ts=shown.handle, chunks=[chunk])
        except StreamingRefused as refusal:  # the answer then posts and edits; nothing is lost
            self.streaming_refused = refusal.error
            self._native = shown.streaming = False

    def _closing_chunks(self) -> list[dict[str, str]]:
        """The task update that marks the open task complete (none if none is open)."""
        if self._open_task is None:
            return []
        task, self._open_task = self._open_task, None
        return [_task_update(*task, "complete")]


    def offer_controls(self, controls: AnswerControls) -> None:
        self._controls = control_blocks(controls)

    async def finish(self, text: str) -> None:
        self._finishing = True
        await super().finish(text)
        last = self._parts[-1] if self._parts else None
        if self._controls and not self._controls_shown and last and last.handle and not has_link(last.text):
            # The last part already showed its final text: only the controls are missing.
            await self._client.chat_update(
                channel=self._target.channel, ts=last.handle, **self._with_controls(last.text)
            )
            self._controls_shown = True

    async def _close(self, index: int, text: str) -> None:
        self._closing = index
        await super()._close(index, text)

    def _is_final_part(self, index: int) -> bool:
        return self._finishing and bool(self._controls) and index == len(self._splitter.finished) - 1

    def _with_controls(self, text: str) -> dict[str, Any]:
        """A message's arguments with the controls under its text (a markdown block, as
        `markdown_text` cannot be combined with blocks; `text` is the notification fallback)."""
        self._controls_shown = True
        shown = neutralize_mentions(text)
        return {"text": shown, "blocks": [{"type": "markdown", "text": shown}, *self._controls]}

    @property
    def channel(self) -> str:
        return self._target.channel

    @property
    def shown_anything(self) -> bool:
        """Whether a message of this answer is in the thread yet."""
        return any(part.handle is not None for part in self._parts)

    async def _bring(self, index: int, shown: ShownPart[str], text: str, *, complete: bool) -> None:
        """As the base, except that text with a link only ever goes out in a fresh post (see
        the module's docstring): until the part is complete it shows the lines before the link."""
        if not has_link(text):
            await super()._bring(index, shown, text, complete=complete)
        elif not complete:
            safe = before_first_link(text)
            if safe.strip() and safe != shown.text:
                await super()._bring(index, shown, safe, complete=False)
        else:
            started = self._clock()
            await self._withdraw(shown)
            shown.handle = await self._post_part(index, text)
            self._shows(shown, text, closed=True, started=started)

    async def _withdraw(self, shown: ShownPart[str]) -> None:
        """Remove the part's message (if it has one) so the whole part can be posted again."""
        if shown.handle is None:
            return
        if shown.streaming:
            with contextlib.suppress(SlackApiError):  # an expired stream is already closed
                await self._client.chat_stopStream(
                    channel=self._target.channel, ts=shown.handle, chunks=self._closing_chunks() or None
                )
            shown.streaming = False
        try:
            await self._client.chat_delete(channel=self._target.channel, ts=shown.handle)
        except SlackApiError as exc:  # the part is posted whole anyway; its start shows twice
            log.warning("slack: could not withdraw a part to repost it (%s)", exc.response.get("error"))
        shown.handle, shown.text = None, ""

    async def _post_part(self, index: int, text: str) -> str:
        final = self._is_final_part(index)
        content = self._with_controls(text) if final else {"markdown_text": neutralize_mentions(text)}
        response = await self._client.chat_postMessage(
            channel=self._target.channel,
            thread_ts=self._target.thread_ts,
            unfurl_links=False,  # Slack fetches no link of this message
            unfurl_media=False,
            **content,
        )
        return str(response["ts"])

    async def _edit_part(self, handle: str, text: str) -> None:
        if self._is_final_part(self._closing):
            await self._client.chat_update(channel=self._target.channel, ts=handle, **self._with_controls(text))
            return
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
        closing = self._closing_chunks()  # the answer is written: the last task is done
        with _refusal():
            await self._client.chat_appendStream(
                channel=self._target.channel, ts=handle, markdown_text=neutralize_mentions(text), chunks=closing or None
            )

    async def _stop_stream(self, handle: str, text: str) -> None:
        tasks_done = self._closing_chunks()
        with _refusal():
            final = self._is_final_part(self._closing)
            await self._client.chat_stopStream(
                channel=self._target.channel,
                ts=handle,
                markdown_text=neutralize_mentions(text) or None,
                chunks=tasks_done or None,
                blocks=self._controls if final else None,  # shown under the streamed text
            )
            self._controls_shown = self._controls_shown or final


@contextlib.contextmanager
def _refusal() -> Iterator[None]:
    """Any error Slack answers a stream call with (the workspace lacks streaming, the stream
    expired, rate limits outlasting the SDK's retries) means: post and update instead."""
    try:
        yield
    except SlackApiError as exc:
        raise StreamingRefused(str(exc.response.get("error", "unknown"))) from exc


def _task_update(task_id: str, title: str, status: str) -> dict[str, str]:
    return {"type": "task_update", "id": task_id, "title": neutralize_mentions(title), "status": status}
