"""Discord's message deletions and edits as the core's `PostedMessage`.

Raw gateway events, so a message discord.py no longer caches (posted before a restart, or
pushed out of its 1,000-message cache) counts too. A message id is unique on all of Discord;
the channel it names is where it was posted: a text channel (the conversation of a mention
there is keyed by it) or a thread (a conversation's thread id).

`MESSAGE_UPDATE` also comes when Discord adds link previews (embeds) to a message, and for
our own answers being edited as they stream: only a person's message whose `edited_timestamp`
is set and whose content came along is an edit.
"""

from __future__ import annotations

import discord

from adapters.discord.translate import DM_WORKSPACE, PLATFORM, SPOKEN_TYPES, without_own_mention
from bot.domain import PostedMessage


def posted(guild_id: int | None, channel_id: int, message_id: int) -> PostedMessage:
    return PostedMessage(
        platform=PLATFORM,
        workspace_id=str(guild_id) if guild_id is not None else DM_WORKSPACE,
        channel_id=str(channel_id),
        message_id=str(message_id),
        event_id=str(message_id),  # as `translate.incoming_message` claims it
    )


def edit(event: discord.RawMessageUpdateEvent, me: discord.ClientUser) -> tuple[PostedMessage, str] | None:
    """The message a person edited and its new text; None for every other update."""
    message = event.message
    if "content" not in event.data or message.edited_at is None or message.type not in SPOKEN_TYPES:
        return None
    if message.author.bot or message.webhook_id is not None or message.author.id == me.id:
        return None
    return posted(event.guild_id, event.channel_id, event.message_id), without_own_mention(message.content, me)
