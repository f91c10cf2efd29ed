"""What the person is told about refusals, fallbacks and paused turns (table tests of bot.policy)."""

from __future__ import annotations

import pytest

from bot.policy import PAUSED_NOTE, REFUSAL_NOTE, fallback_note, stop_note


@pytest.mark.parametrize(
    ("stop_reason", "category", "note"),
    [
        ("end_turn", None, None),
        ("pause_turn", None, PAUSED_NOTE),
        ("refusal", None, REFUSAL_NOTE),
        ("refusal", "a-category-we-do-not-know", REFUSAL_NOTE),
        ("refusal", "bio", "_(Claude declined to answer this request: it could enable biological harm "
                           "(category `bio`).)_"),
        ("refusal", "reasoning_extraction", "_(Claude declined to answer this request: it asks Claude to reveal its "
                                            "internal reasoning (category `reasoning_extraction`).)_"),
    ],
)
def test_stop_notes(stop_reason: str, category: str | None, note: str | None) -> None:
    assert stop_note(stop_reason, category) == note


@pytest.mark.parametrize(
    ("category", "note"),
    [
        (None, "_(Answered by `claude-b`: `claude-a` declined this request.)_"),
        ("cyber", "_(Answered by `claude-b`: `claude-a` declined this request, category `cyber`.)_"),
    ],
)
def test_the_fallback_note_names_both_models(category: str | None, note: str) -> None:
    assert fallback_note("claude-b", "claude-a", category) == note
