"""The conversation's rules, as pure functions: no I/O, table-tested in tests/test_policy.py.

Who gets an answer, which settings apply, whether a turn was already answered,
what the person is told about how an answer ended, and how many tokens a
request may spend on history. `bot.conversation` does the I/O around them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from bot.domain import SETTING_NAMES, ChannelSettings, History, IncomingMessage

CUT_OFF_NOTE = "_(cut off: the answer reached its length limit)_"
CONTEXT_FULL_NOTE = "_(cut off: the conversation filled the model's context window; older turns will be dropped)_"
REFUSAL_NOTE = "_(Claude declined to answer this request.)_"
TRIMMED_NOTE = "_(Earlier turns of this conversation no longer fit in the model's context window and were left out.)_"
REFUSAL_PLACEHOLDER = "(declined to answer)"  # stored for a refused answer without text (never resent)
EMPTY_NOTE = "_(Claude returned no text.)_"
FAILED_NOTE = "Something went wrong on my side while answering. Please try again."
INTERRUPTED_NOTE = "_(interrupted: the service is restarting. Please send your message again.)_"
BUSY_NOTE = "_(I'm still busy with an earlier message in this thread; please send yours again in a moment.)_"
OVERLOADED_NOTE = (
    "_(I'm answering too many messages right now and could not take yours; please send it again in a minute.)_"
)
COMMAND_FAILED_NOTE = "Something went wrong on my side; nothing was changed. Please try again."

WORKSPACE_CHANNEL = "*"  # the channel id of a workspace-wide settings row


class Addressed(enum.Enum):
    """Whether a message is for the bot."""

    YES = "yes"
    NO = "no"
    IF_CONVERSATION = "if the thread is already a conversation"


def is_addressed(message: IncomingMessage) -> Addressed:
    """A mention or a DM is for the bot; a reply inside a thread is, if the bot is part of
    that thread; anything from a bot (ourselves included) never is. Top-level chatter is
    decided here, so it costs no database access."""
    if message.actor.is_bot:
        return Addressed.NO
    if message.is_direct or message.mentions_bot:
        return Addressed.YES
    return Addressed.IF_CONVERSATION if message.is_thread_reply else Addressed.NO


def summoned_mid_thread(message: IncomingMessage) -> bool:
    """Mentioned inside a thread: if the thread is not a conversation yet, its earlier
    messages are brought in as context."""
    return message.mentions_bot and message.is_thread_reply


def may_have_later_replies(message: IncomingMessage, conversation_existed: bool) -> bool:
    """A mention delivered again may arrive after people already replied in its thread: those
    replies found no conversation then and were not taken; they are brought in now."""
    return message.redelivered and message.mentions_bot and not conversation_existed


def effective_settings(
    rows: Mapping[str, Mapping[str, Any]], channel_id: str, defaults: ChannelSettings
) -> ChannelSettings:
    """A channel's settings: each value from its own row, else its workspace's row
    (channel id `*`), else the operator's defaults. `rows` maps channel ids to stored rows;
    None in a row means "not set here"."""
    effective = {name: getattr(defaults, name) for name in SETTING_NAMES}
    for key in (WORKSPACE_CHANNEL, channel_id):  # the channel's own row wins
        row = rows.get(key)
        if row is None:
            continue
        for name in SETTING_NAMES:
            if row.get(name) is not None:
                effective[name] = row[name]
    return ChannelSettings(**effective)


def already_answered(history: History, message_id: str) -> bool:
    """True when an answer already stands after this message's turn (it arrived while an
    earlier turn was being answered and was sent along), or the turn is gone."""
    mine = next((i for i, t in enumerate(history.turns) if t.message_id == message_id), None)
    if mine is None:
        return True
    return any(t.role == "assistant" for t in history.turns[mine + 1 :])


def stop_note(stop_reason: str | None) -> str | None:
    """What the person is told about how an answer ended, when it did not simply end."""
    return {
        "max_tokens": CUT_OFF_NOTE,
        "model_context_window_exceeded": CONTEXT_FULL_NOTE,
        "refusal": REFUSAL_NOTE,
    }.get(stop_reason or "")


def output_limit(wanted: int, model_max_output: int | None) -> int:
    """max_tokens for a request: the channel's setting, capped to what the model can write."""
    return wanted if model_max_output is None else min(wanted, model_max_output)


def history_budget(context_window: int, max_output: int, system_prompt_tokens: int) -> int:
    """Tokens left for the conversation's turns once the answer and system prompt have room."""
    return context_window - max_output - system_prompt_tokens


def join_notes(*parts: str | None) -> str:
    """An answer followed by its notes, as one text (empty parts left out)."""
    return "\n\n".join(part for part in parts if part)
