"""Discord messages as the core's platform-free values.

Conversations: a mention in a text channel opens a public thread on that message
(a thread started from a message has the message's id, so the conversation key
is known before the thread exists: `discord:<guild>:<channel>:<message id>`);
inside a thread, the thread is the conversation; a DM channel is one
conversation. Where no thread can be made, the answer is a reply, and replying
to the bot's answer continues that conversation: the core stores where each answer
was shown and says which conversation a replied-to message belongs to.
"""

from __future__ import annotations

import re

import discord

from bot.domain import Actor, ChannelKey, CommandInvocation, FileRef, IncomingMessage, ThreadKey

DISCORD_FILE_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")  # where attachments are served
PLATFORM = "discord"
DM_WORKSPACE = "@me"
SPOKEN_TYPES = {discord.MessageType.default, discord.MessageType.reply}


def replied_to_bot(message: discord.Message, me: discord.ClientUser) -> str | None:
    """The id of the message a channel message replies to, when that may be one of our
    answers (the core knows which conversation it belongs to); None otherwise."""
    reference = message.reference
    if message.guild is None or isinstance(message.channel, discord.Thread):
        return None
    if reference is None or reference.message_id is None:
        return None
    resolved = reference.resolved
    if isinstance(resolved, discord.Message) and resolved.author.id != me.id:
        return None
    return str(reference.message_id)


def incoming_message(
    message: discord.Message, me: discord.ClientUser, continued: ThreadKey | None = None
) -> IncomingMessage | None:
    """A Discord message as the core's IncomingMessage (None: not a person speaking);
    `continued`: the conversation of the answer it replies to (see `replied_to_bot`)."""
    if message.type not in SPOKEN_TYPES:
        return None
    is_bot = message.author.bot or message.webhook_id is not None or message.author.id == me.id
    mentions_bot = any(user.id == me.id for user in message.mentions)
    channel = message.channel
    guild = message.guild
    is_thread_reply = False
    started = message.created_at  # when the thread began: with this message, unless it is in one
    if guild is None:
        thread = ThreadKey(PLATFORM, DM_WORKSPACE, str(channel.id), str(channel.id))
    elif isinstance(channel, discord.Thread):
        thread = ThreadKey(PLATFORM, str(guild.id), str(channel.parent_id), str(channel.id))
        is_thread_reply = True
        started = discord.utils.snowflake_time(channel.id)  # its id is its start (or its first message's)
    else:
        is_thread_reply = continued is not None
        thread = continued or ThreadKey(PLATFORM, str(guild.id), str(channel.id), str(message.id))
    text = without_own_mention(message.content, me)
    return IncomingMessage(
        thread=thread,
        event_id=str(message.id),
        message_id=str(message.id),
        actor=Actor(PLATFORM, str(message.author.id), message.author.display_name, is_bot=is_bot),
        text=text,
        is_direct=guild is None,
        mentions_bot=mentions_bot,
        is_thread_reply=is_thread_reply,
        sent_at=message.created_at,  # from the snowflake: Discord's own clock
        thread_started_at=started,
        files=attachment_refs(message),
    )


def attachment_refs(message: discord.Message) -> tuple[FileRef, ...]:
    return tuple(FileRef(str(a.id), a.filename, a.url, a.size) for a in message.attachments)


def without_own_mention(content: str, me: discord.ClientUser) -> str:
    return re.sub(rf"\s*<@!?{me.id}>\s*", " ", content).strip()


def command_invocation(interaction: discord.Interaction, text: str) -> CommandInvocation:
    """`/claude ...` as typed; in a DM or a thread the command acts on that conversation."""
    channel = interaction.channel
    user = interaction.user
    actor = Actor(PLATFORM, str(user.id), user.display_name, is_bot=user.bot)
    if interaction.guild_id is None:
        key = ThreadKey(PLATFORM, DM_WORKSPACE, str(interaction.channel_id), str(interaction.channel_id))
        return CommandInvocation(key.channel, actor, text, thread=key, is_direct=True)
    if isinstance(channel, discord.Thread):  # the command acts on that thread's conversation (`forget`)
        key = ThreadKey(PLATFORM, str(interaction.guild_id), str(channel.parent_id), str(channel.id))
        return CommandInvocation(key.channel, actor, text, thread=key)
    channel_key = ChannelKey(PLATFORM, str(interaction.guild_id), str(interaction.channel_id))
    return CommandInvocation(channel_key, actor, text)
