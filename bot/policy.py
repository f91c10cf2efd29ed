"""The conversation's rules, as pure functions: no I/O, table-tested in tests/test_policy.py.

Who gets an answer, which settings apply, whether a turn was already answered,
what the person is told about how an answer ended, and how many tokens a
request may spend on history. `bot.conversation` does the I/O around them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.domain import SETTING_NAMES, ChannelSettings, History, IncomingMessage, StoredTurn, ThreadKey

CUT_OFF_NOTE = "_(cut off: the answer reached its length limit)_"
CONTEXT_FULL_NOTE = "_(cut off: the conversation filled the model's context window; older turns will be dropped)_"
REFUSAL_NOTE = "_(Claude declined to answer this request.)_"
TRIMMED_NOTE = "_(Earlier turns of this conversation no longer fit in the model's context window and were left out.)_"
REFUSAL_PLACEHOLDER = "(declined to answer)"  # stored for a refused answer without text (never resent)
EMPTY_NOTE = "_(Claude returned no text.)_"
FAILED_NOTE = "Something went wrong on my side while answering. Please try again."
INTERRUPTED_NOTE = "_(interrupted: the service is restarting. Please send your message again.)_"
BUSY_NOTE = "_(I'm still busy with an earlier message in this thread; please send yours again in a moment.)_"
PAUSED_NOTE = "_(stopped: Claude's research for this answer went on too long; ask again to continue.)_"
RETIRED_MODEL_NOTE = (
    "_(This channel's model `{retired}` has been retired, so `{default}` answered and will from now on. "
    "An admin can choose another with `/claude model`.)_"
)
# What a refusal's `stop_details.category` means, in words for the thread.
REFUSAL_CATEGORIES = {
    "cyber": "it could enable cyber harm",
    "bio": "it could enable biological harm",
    "frontier_llm": "it could help build competing AI models",
    "reasoning_extraction": "it asks Claude to reveal its internal reasoning",
    "general_harms": "it touches an area judged harmful",
}
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
    """A mention inside a thread that is no conversation yet may be stored after people
    replied to it: Slack delivers the next message without waiting for the mention's ack, so
    a reply can overtake the mention's first delivery (both in flight at once) as well as its
    retry after a crash. Those replies found no conversation then and were not taken; they
    are read back before the answer (the thread is read for its context anyway). A mention
    that starts its thread reads back only when a reply noted that it came early (see
    `may_have_overtaken_a_mention`); a DM is always addressed: nothing is left behind."""
    return summoned_mid_thread(message) and not conversation_existed and not message.is_direct


def read_back_point(history: History, thread: ThreadKey) -> str | None:
    """After which message the thread's replies are to be read back before an answer (None:
    not at all): a mid-thread mention's own, or the thread's first message when replies came
    before it was a conversation (the mention that starts a thread is its first message)."""
    if history.read_back_from is not None:
        return history.read_back_from
    return thread.thread_id if history.replies_came_early else None


EARLY_REPLY_WINDOW = timedelta(minutes=15)
"""How long after a thread starts a reply in it may still overtake the mention that starts
it: Slack's last retry of an event comes about 6 minutes after the first delivery."""


def may_have_overtaken_a_mention(message: IncomingMessage, now: datetime) -> bool:
    """An unaddressed reply in a thread that is no conversation yet came early if the mention
    that starts the thread is still on its way: then the thread is marked, and that mention's
    answer reads the thread's replies back (one read, only for the threads that need it: the
    platform rate-limits reading threads). Only young threads can have such a mention."""
    started = message.thread_started_at
    return message.is_thread_reply and not message.is_direct and (
        started is None or now - started < EARLY_REPLY_WINDOW
    )


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


def in_posting_order(history: History) -> dict[int, int]:
    """The new positions (by turn id) that put the turns waiting for an answer in the order
    people posted them; empty when they already are.

    Turns are stored as they arrive, so a message whose delivery was retried can be stored
    after a later one. Only the tail after the last answer moves: what was answered, and so
    the prefix resent to Claude, stays as it was. Each message takes one of the tail's own
    positions; the quoted thread context before a mention moves with it.
    """
    last_answer = max((i for i, t in enumerate(history.turns) if t.role == "assistant"), default=-1)
    tail = history.turns[last_answer + 1 :]
    posted = [t for t in tail if t.message_id is not None]
    if len(posted) < 2 or any(t.sent_at is None for t in posted):
        return {}
    wanted = sorted(posted, key=lambda t: (t.sent_at, t.order))
    new_order = {turn.order: slot.order for turn, slot in zip(wanted, posted, strict=True)}
    moves = {t.id: new_order[t.order] for t in tail if t.order in new_order}
    return {turn_id: position for turn_id, position in moves.items() if position != _order_of(tail, turn_id)}


def _order_of(turns: list[StoredTurn], turn_id: int) -> int:
    return next(t.order for t in turns if t.id == turn_id)


def stop_note(stop_reason: str | None, refusal_category: str | None = None) -> str | None:
    """What the person is told about how an answer ended, when it did not simply end."""
    if stop_reason == "refusal":
        return refusal_note(refusal_category)
    return {
        "max_tokens": CUT_OFF_NOTE,
        "model_context_window_exceeded": CONTEXT_FULL_NOTE,
        "pause_turn": PAUSED_NOTE,
    }.get(stop_reason or "")


def refusal_note(category: str | None) -> str:
    """The refusal note, with the reason when the API named a category we can put in words."""
    reason = REFUSAL_CATEGORIES.get(category or "")
    if reason is None:
        return REFUSAL_NOTE
    return f"_(Claude declined to answer this request: {reason} (category `{category}`).)_"


def fallback_note(fallback_model: str, refusing_model: str, category: str | None) -> str:
    """Said under an answer the fallback model gave after the channel's model declined."""
    why = f", category `{category}`" if category else ""
    return f"_(Answered by `{fallback_model}`: `{refusing_model}` declined this request{why}.)_"


def output_limit(wanted: int, model_max_output: int | None) -> int:
    """max_tokens for a request: the channel's setting, capped to what the model can write."""
    return wanted if model_max_output is None else min(wanted, model_max_output)


def history_budget(context_window: int, max_output: int, system_prompt_tokens: int) -> int:
    """Tokens left for the conversation's turns once the answer and system prompt have room."""
    return context_window - max_output - system_prompt_tokens


def join_notes(*parts: str | None) -> str:
    """An answer followed by its notes, as one text (empty parts left out)."""
    return "\n\n".join(part for part in parts if part)
