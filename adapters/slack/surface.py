"""The core's surfaces for one Slack event: the answer to a message, the ephemeral
answer to a slash command. Each closes over what it needs of that event."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.agent import AgentHome, AgentSessions, SessionReply
from adapters.slack.assistant import AssistantPane
from adapters.slack.files import SlackFileHost, file_refs
from adapters.slack.progress import ProgressCue, ReplyWithCue, StreamingSupport
from adapters.slack.reply import ReplyTarget, SlackReply
from adapters.slack.translate import SlackTranslator
from adapters.slack.users import SlackUsers
from bot.domain import ContextMessage, FileRef, IncomingMessage
from bot.ports import ReplyStream

log = logging.getLogger(__name__)

CONTEXT_MESSAGES = 50  # earlier messages of a thread sent when the bot is summoned mid-way
PAGE_SIZE = 200  # messages per conversations.replies call
MAX_CONTEXT_PAGES = 500  # a guard against a cursor that never ends: 100,000 messages


@dataclass(frozen=True)
class SlackWorkspace:
    """What every surface of one Slack app shares."""

    client: AsyncWebClient
    users: SlackUsers
    translator: SlackTranslator
    pane: AssistantPane
    streaming: StreamingSupport
    files: SlackFileHost
    sessions: AgentSessions
    home: AgentHome


@dataclass(frozen=True)
class SlackMessageSurface:
    slack: SlackWorkspace
    message: IncomingMessage
    event: dict[str, Any]  # the raw Slack event, for what the translation left out
    after_a_crash: bool = False  # answered by recovery: a dead process may have left its :eyes:

    async def open_reply(self) -> ReplyStream:
        thread = self.message.thread
        await self.slack.pane.title_if_new(thread.channel_id, thread.thread_id, self.message.text)
        starts_conversation = not self.message.is_thread_reply or self.message.mentions_bot
        in_session = await self.slack.sessions.processing(
            thread.channel_id,
            thread.thread_id,
            title=self.message.text if starts_conversation else None,
            initiator=self.message.actor.user_id,
        )
        target = ReplyTarget(thread.channel_id, thread.thread_id, thread.workspace_id, self.message.actor.user_id)
        reply = SlackReply(
            self.slack.client, target, native_streaming=self.slack.streaming.available_in(thread.channel_id)
        )
        cue = ProgressCue(self.slack.client, self.message)
        # A session's own status shows the work in channels. A turn another process began may
        # carry that process's :eyes: (shown again, it is "already_reacted", then cleared).
        if self.message.is_direct or not in_session or self.after_a_crash or self.message.redelivered:
            await cue.show()
        return SessionReply(
            ReplyWithCue(reply, cue, self.slack.streaming), self.slack.sessions, thread.channel_id, thread.thread_id
        )

    async def fetch_thread_context(self) -> list[ContextMessage]:
        thread = self.message.thread
        try:
            earlier = await self._replies_before(thread.channel_id, thread.thread_id, self.message.message_id)
        except Exception as exc:  # the answer goes ahead without the context
            log.warning("slack: could not read the thread for context (%s)", type(exc).__name__)
            return []
        context = []
        for item in earlier:
            is_bot = bool(item.get("bot_id"))
            if is_bot:
                author = item.get("username") or "a bot"
            else:
                author = await self.slack.users.display_name(str(item.get("user", "")))
            text = await self.slack.translator.plain_text(str(item.get("text", "")))
            context.append(ContextMessage(str(author), text, is_bot=is_bot, files=file_refs(item)))
        return context

    async def fetch_later_messages(self, after_message_id: str) -> list[IncomingMessage]:
        """People's replies in the thread after that message (one page: a late delivery is
        minutes late, not days), translated as their own deliveries would have been."""
        thread, since = self.message.thread, after_message_id
        try:
            response = await self.slack.client.conversations_replies(
                channel=thread.channel_id, ts=thread.thread_id, oldest=since, inclusive=False, limit=PAGE_SIZE
            )
        except Exception as exc:  # the answer goes ahead with what was stored
            log.warning("slack: could not read the thread's later replies (%s)", type(exc).__name__)
            return []
        later: list[IncomingMessage] = []
        for item in response.get("messages") or []:
            if ts_key(str(item.get("ts", ""))) <= ts_key(since):
                continue
            event = {**item, "type": "message", "channel": thread.channel_id}
            body = {"team_id": thread.workspace_id}
            message = await self.slack.translator.message(event, body, mentioned=False)
            if message is not None and not message.actor.is_bot:
                later.append(message)
        return later

    async def download_file(self, file: FileRef, limit: int) -> bytes:
        return await self.slack.files.download(file, limit)

    async def _replies_before(self, channel: str, thread_ts: str, before_ts: str) -> list[dict[str, Any]]:
        """The last `CONTEXT_MESSAGES` of the thread older than `before_ts`, oldest first.

        Slack lists a thread from its start, so every page is read, however long the
        thread; only the messages that will be sent are kept while paging."""
        before = ts_key(before_ts)
        kept: deque[dict[str, Any]] = deque(maxlen=CONTEXT_MESSAGES)
        newest = (-1, -1)  # of the kept messages: a message Slack repeats on a later page is skipped
        cursor: str | None = None
        for _ in range(MAX_CONTEXT_PAGES):
            response = await self.slack.client.conversations_replies(
                channel=channel, ts=thread_ts, latest=before_ts, inclusive=False, limit=PAGE_SIZE, cursor=cursor
            )
            for message in response.get("messages") or []:
                key = ts_key(str(message.get("ts", "")))
                if newest < key < before:
                    kept.append(message)
                    newest = key
            next_cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not next_cursor or next_cursor == cursor:
                break
            cursor = next_cursor
        else:
            log.warning("slack: stopped reading a thread for context after %d pages", MAX_CONTEXT_PAGES)
        return list(kept)


def ts_key(ts: str) -> tuple[int, int]:
    """A Slack timestamp (`1712345678.000100`) as comparable integers; (-1, -1) if it is not one.
    (A float loses the last digit of some 16-digit timestamps.)"""
    seconds, _, micros = ts.partition(".")
    if not (seconds.isascii() and seconds.isdigit() and micros.isascii() and (micros.isdigit() or not micros)):
        return (-1, -1)
    return (int(seconds), int((micros + "000000")[:6]))


@dataclass(frozen=True)
class SlackCommandSurface:
    users: SlackUsers
    user_id: str
    response_url: str

    async def answer(self, text: str) -> None:
        if not self.response_url:
            log.warning("slack: a command came without a response_url; its answer is dropped")
            return
        # Slack documents the unfurl flags for response_url messages too (see reply.py).
        await AsyncWebhookClient(self.response_url).send(
            text=text, response_type="ephemeral", unfurl_links=False, unfurl_media=False
        )

    async def actor_is_admin(self) -> bool:
        return await self.users.is_admin(self.user_id)
