"""The core's surfaces for one Slack event: the answer to a message, the ephemeral
answer to a slash command. Each closes over what it needs of that event."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack.assistant import AssistantPane
from adapters.slack.progress import ProgressCue, ReplyWithCue, StreamingSupport
from adapters.slack.reply import ReplyTarget, SlackReply
from adapters.slack.translate import SlackTranslator
from adapters.slack.users import SlackUsers
from bot.domain import ContextMessage, IncomingMessage
from bot.ports import ReplyStream

log = logging.getLogger(__name__)

CONTEXT_MESSAGES = 50  # earlier messages of a thread sent when the bot is summoned mid-way
CONTEXT_PAGES = 10  # of conversations.replies, 200 messages each


@dataclass(frozen=True)
class SlackWorkspace:
    """What every surface of one Slack app shares."""

    client: AsyncWebClient
    users: SlackUsers
    translator: SlackTranslator
    pane: AssistantPane
    streaming: StreamingSupport


@dataclass(frozen=True)
class SlackMessageSurface:
    slack: SlackWorkspace
    message: IncomingMessage
    event: dict[str, Any]  # the raw Slack event, for what the translation left out

    async def open_reply(self) -> ReplyStream:
        thread = self.message.thread
        await self.slack.pane.title_if_new(thread.channel_id, thread.thread_id, self.message.text)
        target = ReplyTarget(thread.channel_id, thread.thread_id, thread.workspace_id, self.message.actor.user_id)
        reply = SlackReply(
            self.slack.client, target, native_streaming=self.slack.streaming.available_in(thread.channel_id)
        )
        cue = ProgressCue(self.slack.client, self.message)
        await cue.show()
        return ReplyWithCue(reply, cue, self.slack.streaming)

    async def fetch_thread_context(self) -> list[ContextMessage]:
        thread = self.message.thread
        try:
            earlier = await self._replies_before(thread.channel_id, thread.thread_id, self.message.message_id)
        except Exception as exc:  # the answer goes ahead without the context
            log.warning("slack: could not read the thread for context (%s)", type(exc).__name__)
            return []
        context = []
        for item in earlier[-CONTEXT_MESSAGES:]:
            is_bot = bool(item.get("bot_id"))
            if is_bot:
                author = item.get("username") or "a bot"
            else:
                author = await self.slack.users.display_name(str(item.get("user", "")))
            text = await self.slack.translator.plain_text(str(item.get("text", "")))
            context.append(ContextMessage(str(author), text, is_bot=is_bot))
        return context

    async def _replies_before(self, channel: str, thread_ts: str, before_ts: str) -> list[dict[str, Any]]:
        """The thread's messages older than `before_ts`, oldest first (every page: the ones
        just before the mention matter most, and Slack lists from the thread's start)."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(CONTEXT_PAGES):
            response = await self.slack.client.conversations_replies(
                channel=channel, ts=thread_ts, latest=before_ts, inclusive=False, limit=200, cursor=cursor
            )
            page: list[dict[str, Any]] = response.get("messages", [])
            messages += [m for m in page if float(m.get("ts", 0)) < float(before_ts)]
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return messages


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
