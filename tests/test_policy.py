"""The conversation's rules, as tables: no database, no network."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain import Actor, ChannelSettings, History, StoredTurn
from bot.policy import (
    CONTEXT_FULL_NOTE,
    CUT_OFF_NOTE,
    REFUSAL_NOTE,
    Addressed,
    already_answered,
    effective_settings,
    history_budget,
    in_posting_order,
    is_addressed,
    join_notes,
    may_have_later_replies,
    may_have_overtaken_a_mention,
    output_limit,
    read_back_point,
    stop_note,
    summoned_mid_thread,
)
from fakes.recording import message, thread

DEFAULTS = ChannelSettings("claude-default", "Be helpful.", 4096)
BOT = Actor("test", "B1", "Another bot", is_bot=True)


@pytest.mark.parametrize(
    ("mention", "direct", "in_thread", "from_bot", "expected"),
    [
        (True, False, False, False, Addressed.YES),  # a mention starts a conversation
        (False, True, False, False, Addressed.YES),  # a DM
        (True, False, True, False, Addressed.YES),  # summoned mid-thread
        (False, False, True, False, Addressed.IF_CONVERSATION),  # a reply in a thread: only if we are in it
        (False, False, False, False, Addressed.NO),  # top-level chatter
        (True, False, False, True, Addressed.NO),  # a bot mentioning us (loops)
        (False, True, False, True, Addressed.NO),  # a bot in a DM
    ],
)
def test_who_gets_an_answer(mention: bool, direct: bool, in_thread: bool, from_bot: bool, expected: Addressed) -> None:
    who = BOT if from_bot else None
    incoming = message(thread(), "hi", mention=mention, direct=direct, in_thread=in_thread, who=who)
    assert is_addressed(incoming) is expected


@pytest.mark.parametrize(
    ("mention", "in_thread", "expected"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_only_a_mention_inside_a_thread_is_summoned_mid_thread(mention: bool, in_thread: bool, expected: bool) -> None:
    assert summoned_mid_thread(message(thread(), "hi", mention=mention, in_thread=in_thread)) is expected


def row(**values: Any) -> dict[str, Any]:
    return {"model": None, "system_prompt": None, "max_tokens": None} | values


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ({}, DEFAULTS),
        ({"C1": row(model="claude-c")}, ChannelSettings("claude-c", "Be helpful.", 4096)),
        ({"*": row(model="claude-w")}, ChannelSettings("claude-w", "Be helpful.", 4096)),
        (
            {"*": row(model="claude-w", system_prompt="Workspace."), "C1": row(model="claude-c")},
            ChannelSettings("claude-c", "Workspace.", 4096),
        ),
        (
            {"C1": row(max_tokens=100), "C2": row(model="not-mine")},
            ChannelSettings("claude-default", "Be helpful.", 100),
        ),
        ({"C1": row()}, DEFAULTS),  # a row whose values were reset falls back
    ],
)
def test_a_channel_setting_wins_over_the_workspace_which_wins_over_the_defaults(
    rows: dict[str, dict[str, Any]], expected: ChannelSettings
) -> None:
    assert effective_settings(rows, "C1", DEFAULTS) == expected


def turn(number: int, role: str, message_id: str | None = None) -> StoredTurn:
    return StoredTurn(number, role, "Alice" if role == "user" else None, f"turn {number}", message_id=message_id)


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        ([turn(1, "user", "m1")], False),  # waiting for its answer
        ([turn(1, "user", "m1"), turn(2, "user", "m2")], False),  # waiting with a later message
        ([turn(1, "user", "m0"), turn(2, "assistant"), turn(3, "user", "m1")], False),  # an earlier answer is not ours
        ([turn(1, "user", "m1"), turn(2, "assistant")], True),  # answered
        ([turn(1, "user", "m0"), turn(2, "user", "m1"), turn(3, "assistant")], True),  # sent along with m0's answer
        ([turn(1, "user", "m0")], True),  # gone (pruned, or before a fresh start)
    ],
)
def test_a_turn_is_already_answered_when_an_answer_stands_after_it(turns: list[StoredTurn], expected: bool) -> None:
    assert already_answered(History(turns, trim_noticed=False), "m1") is expected


@pytest.mark.parametrize(
    ("stop_reason", "note"),
    [
        ("end_turn", None),
        ("stop_sequence", None),
        (None, None),
        ("max_tokens", CUT_OFF_NOTE),
        ("model_context_window_exceeded", CONTEXT_FULL_NOTE),
        ("refusal", REFUSAL_NOTE),
    ],
)
def test_the_person_is_told_how_an_answer_ended_when_it_did_not_simply_end(stop_reason: str | None, note: str) -> None:
    assert stop_note(stop_reason) == note


@pytest.mark.parametrize(
    ("wanted", "model_max", "expected"), [(4096, 64_000, 4096), (100_000, 64_000, 64_000), (4096, None, 4096)]
)
def test_max_tokens_is_capped_to_what_the_model_can_write(wanted: int, model_max: int | None, expected: int) -> None:
    assert output_limit(wanted, model_max) == expected


def test_the_history_budget_leaves_room_for_the_answer_and_the_system_prompt() -> None:
    assert history_budget(200_000, 4_096, 1_000) == 194_904


@pytest.mark.parametrize(
    ("parts", "expected"),
    [(("answer", None, "note"), "answer\n\nnote"), (("", "error"), "error"), ((None,), "")],
)
def test_notes_follow_the_answer_separated_by_a_blank_line(parts: tuple[str | None, ...], expected: str) -> None:
    assert join_notes(*parts) == expected


@pytest.mark.parametrize(
    ("redelivered", "in_thread", "direct", "existed", "expected"),
    [
        (True, True, False, False, True),  # a late mention inside a thread: replies may have come first
        (False, True, False, False, True),  # on time, yet a reply can overtake its first delivery in flight
        (True, True, False, True, False),  # the thread was a conversation: its replies were taken as they came
        (False, True, False, True, False),
        (False, False, False, False, False),  # it starts its thread: read back only if a reply noted it came early
        (False, True, True, False, False),  # a DM is always addressed: nothing was left behind
    ],
)
def test_a_mention_inside_a_thread_that_is_no_conversation_reads_the_replies_that_may_have_overtaken_it(
    redelivered: bool, in_thread: bool, direct: bool, existed: bool, expected: bool
) -> None:
    incoming = replace(message(thread(), "hi", in_thread=in_thread), redelivered=redelivered, is_direct=direct)
    assert may_have_later_replies(incoming, existed) is expected


def test_a_reply_that_is_not_taken_was_not_summoned() -> None:
    assert may_have_later_replies(message(thread(), "hi", mention=False), False) is False


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("started_minutes_ago", "in_thread", "direct", "expected"),
    [
        (1, True, False, True),  # a young thread: its mention may still be on its way
        (14, True, False, True),
        (16, False, False, False),  # a mention is retried for minutes, not a quarter of an hour
        (16, True, False, False),
        (None, True, False, True),  # the thread's start unknown: noted, to be safe
        (1, False, False, False),  # top-level chatter starts no thread with a mention in it
        (1, True, True, False),  # a DM is always addressed
    ],
)
def test_an_unaddressed_reply_notes_its_thread_only_while_a_mention_may_still_be_on_its_way(
    started_minutes_ago: int | None, in_thread: bool, direct: bool, expected: bool
) -> None:
    started = None if started_minutes_ago is None else NOW - timedelta(minutes=started_minutes_ago)
    reply = replace(
        message(thread(), "me too", mention=False, in_thread=in_thread), is_direct=direct, thread_started_at=started
    )
    assert may_have_overtaken_a_mention(reply, NOW) is expected


@pytest.mark.parametrize(
    ("read_back_from", "came_early", "expected"),
    [("m5", False, "m5"), ("m5", True, "m5"), (None, True, "1700.5"), (None, False, None)],
)
def test_the_replies_are_read_back_after_the_summoning_mention_or_the_threads_first_message(
    read_back_from: str | None, came_early: bool, expected: str | None
) -> None:
    history = History([], False, read_back_from, came_early)
    assert read_back_point(history, thread("1700.5")) == expected


def posted(number: int, second: int | None, *, role: str = "user", position: int | None = None) -> StoredTurn:
    """A turn stored as the `number`th row, posted at `second` (None: time unknown)."""
    sent_at = None if second is None else datetime(2026, 11, 30, 12, 0, second, tzinfo=UTC)
    message_id = f"m{number}" if role == "user" else None
    return StoredTurn(number, role, None, f"turn {number}", position, message_id, sent_at=sent_at)


def quoted_context(number: int, before: int) -> StoredTurn:
    """The thread's earlier messages, quoted before the mention stored as row `before`."""
    return StoredTurn(number, "user", None, "<thread_context>...", before)


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        ([posted(1, 10), posted(2, 20)], {}),  # stored as posted
        ([posted(1, 20), posted(2, 10)], {1: 2, 2: 1}),  # a retried earlier message was stored second
        ([posted(1, 30), posted(2, 10), posted(3, 20)], {1: 3, 2: 1, 3: 2}),
        # what was answered never moves, even when a later delivery was posted before it
        ([posted(1, 20), posted(2, 0, role="assistant", position=1), posted(3, 10)], {}),
        ([posted(1, 5), posted(2, 0, role="assistant", position=1), posted(3, 30), posted(4, 20)], {3: 4, 4: 3}),
        ([posted(1, 20), posted(2, None)], {}),  # a time unknown (stored before it was recorded): left alone
        # the quoted context before a mention moves with it
        ([posted(1, 20), quoted_context(3, before=2), posted(2, 10)], {1: 2, 3: 1, 2: 1}),
    ],
)
def test_turns_waiting_for_an_answer_are_put_in_the_order_they_were_posted(
    turns: list[StoredTurn], expected: dict[int, int]
) -> None:
    assert in_posting_order(History(turns, False)) == expected
