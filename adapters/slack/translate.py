"""Slack events and slash commands as the core's platform-free values, and Slack's
message markup as a person reads it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from adapters.slack.files import file_refs
from adapters.slack.users import SlackUsers
from bot.domain import Actor, ChannelKey, CommandInvocation, IncomingMessage, ThreadKey

PLATFORM = "slack"
# Subtypes that are a person speaking; edits, deletions, joins and the like are not.
SPOKEN_SUBTYPES = {None, "file_share", "thread_broadcast"}
_SLACK_REFERENCE = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_USER_REFERENCE = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")


class SlackTranslator:
    """Needs to know who the bot is (`auth.test`) and looks names up through `users`."""

    def __init__(self, users: SlackUsers, bot_user_id: str, team_id: str) -> None:
        self.users = users
        self.bot_user_id = bot_user_id
        self.team_id = team_id

    async def message(self, event: dict[str, Any], body: dict[str, Any], *, mentioned: bool) -> IncomingMessage | None:
        """A Slack message event as the core's IncomingMessage (None: not a person speaking).

        Message identity: the event id is `channel:ts` of the posted message, not the
        envelope's event id, because Slack delivers one post twice (as `app_mention`
        and as `message`) under two event ids, and both must give one answer."""
        if event.get("subtype") not in SPOKEN_SUBTYPES or "user" not in event or "ts" not in event:
            return None
        # Lone surrogates (valid in JSON, not in UTF-8) would fail at the database.
        text = str(event.get("text") or "").encode("utf-8", "replace").decode("utf-8")
        own_mention = f"<@{self.bot_user_id}>"
        mentions_bot = mentioned or (bool(self.bot_user_id) and own_mention in text)
        ts = str(event["ts"])
        thread_ts = str(event.get("thread_ts") or ts)
        channel = str(event["channel"])
        is_direct = event.get("channel_type") == "im"
        is_thread_reply = thread_ts != ts
        user = str(event["user"])
        is_bot = bool(event.get("bot_id")) or event.get("subtype") == "bot_message"
        # A name lookup costs an API call: only for messages the core might answer
        # (top-level chatter without a mention never is; see policy.is_addressed).
        might_answer = mentions_bot or is_direct or is_thread_reply
        name, clean = user, text
        if might_answer and not is_bot:
            spoken = re.sub(rf"\s*{re.escape(own_mention)}\s*", " ", text).strip()
            names = await self.users.names_quickly({user, *_USER_REFERENCE.findall(spoken)})
            name, clean = names[user], readable(spoken, names)
        return IncomingMessage(
            thread=ThreadKey(PLATFORM, str(body.get("team_id") or self.team_id), channel, thread_ts),
            event_id=f"{channel}:{ts}",
            message_id=ts,
            actor=Actor(PLATFORM, user, name, is_bot=is_bot),
            text=clean,
            is_direct=is_direct,
            mentions_bot=mentions_bot,
            is_thread_reply=is_thread_reply,
            sent_at=posted_at(ts),
            thread_started_at=posted_at(thread_ts),
            files=file_refs(event),
        )

    def command(self, payload: dict[str, Any]) -> CommandInvocation:
        """A slash command's form fields as an invocation; ValueError without a usable channel or team."""
        channel_id = str(payload.get("channel_id", ""))
        user_id = str(payload.get("user_id", ""))
        return CommandInvocation(
            channel=ChannelKey(PLATFORM, str(payload.get("team_id") or self.team_id), channel_id),
            actor=Actor(PLATFORM, user_id, str(payload.get("user_name") or user_id)),
            text=str(payload.get("text") or ""),
            is_direct=channel_id.startswith("D"),
        )

    async def plain_text(self, text: str) -> str:
        """Slack's message markup as a person reads it (see `readable`), names looked up."""
        return readable(text, await self.users.names_quickly(set(_USER_REFERENCE.findall(text))))


def readable(text: str, names: dict[str, str]) -> str:
    """Slack's message markup as a person reads it: `<@U1>` -> `@Name`, `<#C1|general>` ->
    `#general`, `<https://x|label>` -> `label (https://x)`, and &amp; &lt; &gt; unescaped."""

    def plain(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return "@" + (label or names.get(target[1:], target[1:]))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        return f"{label} ({target})" if label and label != target else target

    return _SLACK_REFERENCE.sub(plain, text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def posted_at(ts: str) -> datetime | None:
    """A message's `ts` is its posting time in seconds (and its id): None if it is not one."""
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError, OSError):
        return None
