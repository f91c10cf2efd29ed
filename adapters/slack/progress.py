"""What a person sees while Claude works, and which way answers stream.

"Thinking…" is the pane's status in DMs and, where the app has no agent sessions (whose
own status shows the work), an :eyes: reaction in channels; it goes away when the answer
starts. Native streaming is tried until Slack says it
is not to be had (for the whole app, or in one kind of channel)."""

from __future__ import annotations

import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.progress_text import found_titles, status_line
from adapters.slack.reply import SlackReply
from bot.controls import AnswerControls
from bot.domain import IncomingMessage, Progress
from bot.ttl import Clock, TtlCache

log = logging.getLogger(__name__)

_REFUSED_EVERYWHERE = ("unknown_method", "not_allowed_token_type", "missing_scope")
_REFUSED_IN_CHANNEL = ("channel_type_not_supported",)
REFUSAL_SECONDS = 24 * 3600.0
MAX_REFUSED_CHANNELS = 10_000


class StreamingSupport:
    """Where native streaming was refused, so later answers skip the attempt (per channel:
    for a day, at most `MAX_REFUSED_CHANNELS` of them, then it is tried again)."""

    def __init__(self, *, max_channels: int = MAX_REFUSED_CHANNELS, clock: Clock = time.monotonic) -> None:
        self._refused_everywhere = False
        self._refused_in: TtlCache[str, bool] = TtlCache(REFUSAL_SECONDS, max_entries=max_channels, clock=clock)

    def available_in(self, channel: str) -> bool:
        return not self._refused_everywhere and not self._refused_in.get(channel)

    def refused(self, channel: str, error: str) -> None:
        if error in _REFUSED_EVERYWHERE:
            self._refused_everywhere = True
        elif error in _REFUSED_IN_CHANNEL:
            self._refused_in.put(channel, True)


class ProgressCue:
    def __init__(self, client: AsyncWebClient, message: IncomingMessage) -> None:
        self._client = client
        self._message = message
        self._shown = False

    async def show(self) -> None:
        self._shown = await self._set(True)

    async def clear(self) -> None:
        if self._shown:
            self._shown = False
            await self._set(False)

    async def say(self, line: str) -> None:
        """In the assistant pane (DMs), the status says what Claude is doing ("is searching the web…")."""
        if not self._shown or not self._message.is_direct:
            return
        thread = self._message.thread
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=thread.channel_id, thread_ts=thread.thread_id, status="is " + line[:1].lower() + line[1:]
            )
        except Exception as exc:  # cosmetic: an answer never fails for it
            log.debug("slack: progress status failed (%s)", type(exc).__name__)

    async def _set(self, on: bool) -> bool:
        thread, message_ts = self._message.thread, self._message.message_id
        try:
            if self._message.is_direct:
                await self._client.assistant_threads_setStatus(
                    channel_id=thread.channel_id, thread_ts=thread.thread_id, status="is thinking…" if on else ""
                )
            elif on:
                await self._client.reactions_add(channel=thread.channel_id, timestamp=message_ts, name="eyes")
            else:
                await self._client.reactions_remove(channel=thread.channel_id, timestamp=message_ts, name="eyes")
        except SlackApiError as exc:
            # Left by a process that died mid-answer (recovery): ours to clear all the same.
            if on and exc.response.get("error") == "already_reacted":
                return True
            log.debug("slack: progress cue failed (%s)", exc.response.get("error"))
            return False
        except Exception as exc:  # cosmetic: an answer never fails for it
            log.debug("slack: progress cue failed (%s)", type(exc).__name__)
            return False
        return True


class ReplyWithCue:
    """The answer's reply stream: clears the progress cue when the answer shows, and
    tells `StreamingSupport` when Slack refused native streaming."""

    def __init__(self, reply: SlackReply, cue: ProgressCue, streaming: StreamingSupport) -> None:
        self._reply = reply
        self._cue = cue
        self._streaming = streaming

    async def append(self, delta: str) -> None:
        await self._reply.append(delta)
        # Cleared once a message shows (text after a link can wait for its part to end).
        if self._reply.shown_anything:
            await self._cue.clear()
        self._note_refusal()

    async def progress(self, status: Progress) -> None:
        """A task update in the native stream, else a status line the answer replaces (and
        in DMs the pane's status too)."""
        if status.kind == "found":  # the search's task is done, with the titles it found
            await self._reply.complete_task(found_titles(status))
            self._note_refusal()
            return
        line = status_line(status)
        await self._cue.say(line)
        if not await self._reply.show_progress(line):
            await self._reply.show_status(f"_{line}_")
        self._note_refusal()

    def offer_controls(self, controls: AnswerControls) -> None:
        self._reply.offer_controls(controls)

    async def finish(self, text: str) -> None:
        await self._cue.clear()
        await self._reply.finish(text)
        self._note_refusal()

    def _note_refusal(self) -> None:
        if self._reply.streaming_refused:
            self._streaming.refused(self._reply.channel, self._reply.streaming_refused)
