"""Slack's `message_deleted` and `message_changed` events as the core's `PostedMessage`.

A person's deletion arrives as `message_deleted` (`deleted_ts`), or, for a message that has
replies (every mention the bot answered in its thread), as `message_changed` to a
`tombstone`. An edit is `message_changed` whose message carries `edited` (Slack's docs: "If
the message has been edited after posting, it will include an edited property"). Slack also
sends `message_changed` when it adds link previews or language metadata to a message, and
for every update of a bot's message (the bot's own streamed answers included): those carry
no `edited`, or a `bot_id`, and are not edits of what a person said.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.slack.translate import PLATFORM, SPOKEN_SUBTYPES, SlackTranslator
from bot.domain import PostedMessage

CHANGE_SUBTYPES = {"message_deleted", "message_changed"}


def deletion(event: dict[str, Any], body: dict[str, Any], translator: SlackTranslator) -> PostedMessage | None:
    """The message a `message_deleted` (or a change to a tombstone) removed; None otherwise."""
    previous = event.get("previous_message")
    if isinstance(previous, dict) and previous.get("bot_id"):
        return None  # a bot's message (ours are never stored as a person's turn)
    if event.get("subtype") == "message_deleted":
        ts = event.get("deleted_ts") or (previous or {}).get("ts")
    else:
        message = event.get("message")
        if not isinstance(message, dict) or message.get("subtype") != "tombstone":
            return None
        ts = message.get("ts")
    return _posted(event, body, translator, ts)


async def edit(
    event: dict[str, Any], body: dict[str, Any], translator: SlackTranslator
) -> tuple[PostedMessage, str] | None:
    """The message a person edited and its new text, translated as a delivery is; None for
    every other `message_changed`."""
    message = event.get("message")
    if event.get("subtype") != "message_changed" or not isinstance(message, dict):
        return None
    if message.get("subtype") not in SPOKEN_SUBTYPES or message.get("bot_id") or "user" not in message:
        return None
    if not message.get("edited"):
        return None  # link previews, metadata: the text did not change
    previous = event.get("previous_message")
    text = str(message.get("text") or "")
    if isinstance(previous, dict) and str(previous.get("text") or "") == text:
        return None
    posted = _posted(event, body, translator, message.get("ts"))
    if posted is None:
        return None
    text = text.encode("utf-8", "replace").decode("utf-8")
    spoken = re.sub(rf"\s*{re.escape(f'<@{translator.bot_user_id}>')}\s*", " ", text).strip()
    return posted, await translator.plain_text(spoken)


def _posted(
    event: dict[str, Any], body: dict[str, Any], translator: SlackTranslator, ts: object
) -> PostedMessage | None:
    channel = event.get("channel")
    if not ts or not channel:
        return None
    return PostedMessage(
        platform=PLATFORM,
        workspace_id=str(body.get("team_id") or translator.team_id),  # as `SlackTranslator.message`
        channel_id=str(channel),
        message_id=str(ts),
        event_id=f"{channel}:{ts}",  # the claim of the message's delivery
    )
