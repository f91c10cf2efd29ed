"""Turning stored turns into the `messages` of a Claude request, and fitting them
into the model's context window.

Two rules keep prompt caching effective: a turn renders to the same bytes every
time it is sent, and trimming drops old turns in one large step (down to half
the budget) so the kept prefix then stays put for many turns.

Who said what cannot be imitated from message text: each user turn is a
`<message from="Name">` element and every `<`, `>` and `&` that a person wrote
(in a message or a display name) is escaped, so only this module writes a tag.
Escaping, rather than a nonce, because it is deterministic (the prefix stays
byte-stable for caching) and holds even if the model repeats its prompt.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain import ContextMessage, StoredTurn

# Conservative: real tokenizers average ~4 characters per token on English and
# about one token per 3 bytes on most other scripts.
_BYTES_PER_TOKEN = 3
_PER_MESSAGE_OVERHEAD = 8
# What trimming keeps, as a share of the budget: room to grow before the next trim.
_KEEP_SHARE_AFTER_TRIM = 0.5
_TRUNCATED_MARK = "\n[…message truncated: it does not fit in the model's context window]"


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / _BYTES_PER_TOKEN)


def _label(author: str) -> str:
    """A display name as an attribute value: whitespace (newlines too) folded, quotes escaped."""
    return html.escape(" ".join(author.split()), quote=True)


def _message(author: str, content: str, *, is_bot: bool = False) -> str:
    bot = ' bot="true"' if is_bot else ""
    return f'<message from="{_label(author)}"{bot}>{html.escape(content, quote=False)}</message>'


def render_user_turn(author: str | None, content: str) -> str:
    """A user turn as Claude sees it: the speaker's name in a tag the text cannot close."""
    return _message(author or "", content)


def render_thread_context(earlier: Sequence[ContextMessage]) -> str:
    """Earlier messages of a thread the bot joined mid-way, as one block of messages marked as
    quoted material (the default system prompt says so) rather than the asker's own words."""
    lines = [_message(m.author, m.text, is_bot=m.is_bot) for m in earlier]
    return "<thread_context>\n" + "\n".join(lines) + "\n</thread_context>"


def _render(turn: StoredTurn) -> str:
    """A stored turn's text in a request. A user turn without an author is a block this module
    rendered itself (the quoted thread context) and is sent as stored."""
    if turn.role == "user" and turn.author is not None:
        return render_user_turn(turn.author, turn.content)
    return turn.content


def resendable(turns: Sequence[StoredTurn]) -> list[StoredTurn]:
    """The turns a request may carry again.

    A refused answer and the user turns it answered are left out (as Anthropic advises, a
    refused exchange is not resent: it would only make later answers refuse too).

    So is an answer with no user turn since the previous answer: every turn it answered was
    deleted by its author (or erased, or expired). Its text may quote them, so it goes too:
    deleted means deleted for Claude as well, the messages stay user/assistant alternating,
    and everything before the deleted turn is sent byte for byte as before (the cached
    prefix holds up to there). A tombstone in place of the turn would keep the answer, and
    with it whatever the answer repeated of the deleted message.
    """
    kept: list[StoredTurn] = []
    asked = True  # a user turn was kept since the previous answer (before the first: unknown;
    # `to_messages` drops leading answers anyway)
    for turn in turns:
        if turn.role != "assistant":
            kept.append(turn)
            asked = True
            continue
        if turn.stop_reason == "refusal":
            while kept and kept[-1].role == "user":
                kept.pop()
        elif asked:
            kept.append(turn)
        asked = False
    return kept


def to_messages(
    turns: Sequence[StoredTurn], file_blocks: Mapping[int, list[dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """Stored turns -> alternating user/assistant messages that start with a user turn.

    Consecutive user turns (several people talking, or a turn whose answer failed)
    merge into one user message; leading assistant turns and refused exchanges are dropped.
    A turn with files (`file_blocks`, by turn id) becomes content blocks: its files, then
    its text (as Anthropic advises: the file before the question about it).
    """
    result: list[dict[str, Any]] = []
    for turn in resendable(turns):
        text = _render(turn)
        if not result and turn.role != "user":
            continue
        blocks = (file_blocks or {}).get(turn.id)
        if result and result[-1]["role"] == turn.role:
            result[-1]["content"] = _joined(result[-1]["content"], text, blocks)
        elif blocks:
            result.append({"role": turn.role, "content": [*blocks, {"type": "text", "text": text}]})
        else:
            result.append({"role": turn.role, "content": text})
    return result


def _joined(content: str | list[dict[str, Any]], text: str, blocks: list[dict[str, Any]] | None) -> Any:
    """A message's content with one more turn merged in; plain text stays a string."""
    if isinstance(content, str) and not blocks:
        return content + "\n\n" + text
    merged = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    if blocks:
        return [*merged, *blocks, {"type": "text", "text": text}]
    last = merged[-1]
    merged[-1] = {**last, "text": last["text"] + "\n\n" + text}
    return merged


def _turn_tokens(turn: StoredTurn) -> int:
    return estimate_tokens(_render(turn)) + _PER_MESSAGE_OVERHEAD + sum(a.tokens for a in turn.attachments)


def context_tokens(turns: Sequence[StoredTurn]) -> int:
    """Our (conservative) estimate of what `turns` cost as input."""
    return sum(_turn_tokens(t) for t in turns)


@dataclass(frozen=True, slots=True)
class ContextPlan:
    turns: list[StoredTurn]
    trimmed: bool  # older turns were dropped by this plan


def fit_context(
    turns: Sequence[StoredTurn], budget_tokens: int, *, keep_share: float | None = None
) -> ContextPlan:
    """Keep the newest turns that fit in `budget_tokens`.

    Nothing is dropped while everything fits (unless `keep_share` forces a trim).
    Otherwise the oldest turns go until what is left takes at most `keep_share` of
    the budget (half by default); the unanswered user turns at the end are always
    kept, and the kept part starts with a user turn. If the newest user turn alone
    does not fit, it is cut short so the request can still be made. Refused exchanges
    and answers to deleted turns are left out first (see `resendable`).
    """
    turns = resendable(turns)
    sizes = [_turn_tokens(t) for t in turns]
    if keep_share is None and sum(sizes) <= budget_tokens:
        return ContextPlan(list(turns), trimmed=False)
    target = int(budget_tokens * (_KEEP_SHARE_AFTER_TRIM if keep_share is None else keep_share))

    start = len(turns)
    while start > 0 and turns[start - 1].role == "user":  # the unanswered tail
        start -= 1
    used = sum(sizes[start:])
    if start == len(turns) or used > budget_tokens:
        last_user = next((t for t in reversed(turns) if t.role == "user"), None)
        if last_user is None:
            return ContextPlan([], trimmed=bool(turns))
        return ContextPlan([_truncate(last_user, budget_tokens)], trimmed=True)
    while start > 0 and used + sizes[start - 1] <= target:
        start -= 1
        used += sizes[start]
    while turns[start].role != "user":  # open with a user turn
        start += 1
    return ContextPlan(list(turns[start:]), trimmed=start > 0)


def _truncate(turn: StoredTurn, budget_tokens: int) -> StoredTurn:
    room_bytes = max(0, (budget_tokens - _PER_MESSAGE_OVERHEAD) * _BYTES_PER_TOKEN - len(_TRUNCATED_MARK) * 3)
    clipped = turn.content.encode("utf-8")[:room_bytes].decode("utf-8", errors="ignore")
    return StoredTurn(turn.id, turn.role, turn.author, clipped + _TRUNCATED_MARK)
