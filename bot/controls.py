"""Conversation controls: stop, regenerate, continue, feedback. The rules as pure functions
(table-tested in tests/test_controls.py) and the values adapters and the core exchange.

Who may press: Stop and Regenerate the person who asked that turn, or an admin; Continue
anyone in the conversation; feedback anyone, one vote each (a second press changes it).
Which controls an answer offers once complete: feedback always (when it was stored);
Regenerate and Continue only on the thread's latest answer, Continue only after the answer
was cut off at its length limit.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.domain import Actor, ThreadKey

STOPPED_NOTE = "_(stopped)_"
NOT_RUNNING_NOTE = "There is no answer being written in this thread right now."
NOT_LATEST_NOTE = "Only the latest answer in a thread can be regenerated or continued."
NOT_CUT_OFF_NOTE = "This answer was not cut off; there is nothing to continue."
GONE_NOTE = "That answer is no longer stored (it was forgotten or has expired)."
BUSY_NOTE = "I'm still writing an answer in this thread; try again when it is done."
FEEDBACK_THANKS = {True: "Thanks for the feedback! 👍", False: "Thanks for the feedback. 👎"}
CONTINUE_PROMPT = "Please continue exactly where your previous answer stopped."


class Control(enum.Enum):
    STOP = "stop"
    REGENERATE = "regenerate"
    CONTINUE = "continue"
    FEEDBACK = "feedback"


_ASKER_OR_ADMIN = frozenset({Control.STOP, Control.REGENERATE})
_REFUSALS = {
    Control.STOP: "Only the person who asked, or an admin, can stop this answer.",
    Control.REGENERATE: "Only the person who asked, or an admin, can regenerate this answer.",
}


def needs_asker_or_admin(control: Control) -> bool:
    return control in _ASKER_OR_ADMIN


def may_press(control: Control, presser_id: str, asker_id: str | None, presser_is_admin: bool) -> bool:
    """Whether this person may use `control` on a turn asked by `asker_id` (None: unknown,
    e.g. the turn was erased: then only an admin may use an asker's control)."""
    if not needs_asker_or_admin(control):
        return True
    return presser_is_admin or (asker_id is not None and presser_id == asker_id)


def refusal(control: Control) -> str:
    """The ephemeral sentence for someone who may not press `control`."""
    return _REFUSALS.get(control, "You can't do this here.")


def offered_controls(*, stored: bool, stop_reason: str | None, is_latest: bool) -> tuple[Control, ...]:
    """The buttons a complete answer carries."""
    if not stored:
        return ()
    offered = [Control.FEEDBACK]
    if is_latest:
        offered.append(Control.REGENERATE)
        if stop_reason == "max_tokens":
            offered.append(Control.CONTINUE)
    return tuple(offered)


def continuable(stop_reason: str | None) -> bool:
    return stop_reason == "max_tokens"


@dataclass(frozen=True, slots=True)
class Presser:
    """Who pressed a control; `is_admin` asks the platform, only when a rule needs it."""

    actor: Actor
    is_admin: Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ControlResult:
    """What came of a press: `done` when it took effect; `notice` is told to the presser alone."""

    done: bool
    notice: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerControls:
    """The buttons of one stored answer (`answer_id` is its row in the store)."""

    thread: ThreadKey
    answer_id: int
    controls: tuple[Control, ...]


@dataclass(frozen=True, slots=True)
class ControlsMessage:
    """A platform message carrying an answer's buttons (`channel_id`: where it was posted)."""

    channel_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class FeedbackCount:
    model: str
    up: int
    down: int
