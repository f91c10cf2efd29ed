"""The conversation controls' rules (bot/controls.py), as tables; and Stop through the core
alone, with the recording platform (no chat platform), as Discord's Stop button uses it."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import Core
from bot.controls import Control, ControlResult, Presser, may_press, offered_controls, refusal
from bot.domain import ThreadKey
from bot.running import RunningAnswers, TurnStopped, until_stopped
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, person, thread


@pytest.mark.parametrize(
    ("control", "presser", "asker", "admin", "allowed"),
    [
        (Control.STOP, "U1", "U1", False, True),
        (Control.STOP, "U2", "U1", False, False),
        (Control.STOP, "U2", "U1", True, True),
        (Control.STOP, "U2", None, False, False),  # the asker's turn is gone: admins only
        (Control.REGENERATE, "U1", "U1", False, True),
        (Control.REGENERATE, "U2", "U1", False, False),
        (Control.REGENERATE, "U2", "U1", True, True),
        (Control.CONTINUE, "U2", "U1", False, True),  # anyone in the conversation
        (Control.FEEDBACK, "U2", "U1", False, True),  # anyone, one vote each (the store keeps one)
        (Control.FEEDBACK, "U2", None, False, True),
    ],
)
def test_who_may_press(control: Control, presser: str, asker: str | None, admin: bool, allowed: bool) -> None:
    assert may_press(control, presser, asker, admin) is allowed


@pytest.mark.parametrize(
    ("stored", "stop_reason", "latest", "offered"),
    [
        (False, "end_turn", True, ()),
        (True, "end_turn", True, (Control.FEEDBACK, Control.REGENERATE)),
        (True, "max_tokens", True, (Control.FEEDBACK, Control.REGENERATE, Control.CONTINUE)),
        (True, "max_tokens", False, (Control.FEEDBACK,)),
        (True, "stopped", True, (Control.FEEDBACK, Control.REGENERATE)),
        (True, "refusal", True, (Control.FEEDBACK, Control.REGENERATE)),
    ],
)
def test_which_controls_an_answer_offers(
    stored: bool, stop_reason: str, latest: bool, offered: tuple[Control, ...]
) -> None:
    assert offered_controls(stored=stored, stop_reason=stop_reason, is_latest=latest) == offered


def test_the_refusals_name_who_may() -> None:
    assert refusal(Control.STOP) == "Only the person who asked, or an admin, can stop this answer."
    assert refusal(Control.REGENERATE).startswith("Only the person who asked")


async def test_a_stop_cancels_the_work_at_once_and_a_finished_one_is_kept() -> None:
    running = RunningAnswers()
    cancelled = asyncio.Event()

    async def endless() -> str:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()
        return "never"

    thread = ThreadKey("test", "W", "C", "T")
    async with running.track(thread, "U1") as answer:
        work = asyncio.create_task(until_stopped(endless(), answer))
        await asyncio.sleep(0)
        answer.stop.set()
        with pytest.raises(TurnStopped):
            await work
        assert cancelled.is_set()
        assert await until_stopped(asyncio.sleep(0, result="done"), None) == "done"
    assert running.get(thread) is None, "the thread is free once the answer ends"


async def test_stop_through_the_core_keeps_the_partial_answer_and_the_thread_answers_on(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread("stop.1")
    fake_anthropic.queue_reply(" ".join(f"w{i}" for i in range(300)))
    fake_anthropic.chunk_delay = 0.02
    answering = asyncio.create_task(adapter.deliver(core.service, message(where, "go")))
    while not (adapter.replies and adapter.replies[0].deltas):
        await asyncio.sleep(0.01)
    someone_else = Presser(person("U2", "Bob"), is_admin=_no)
    refused = await core.service.controls.stop(where, someone_else)
    assert refused == ControlResult(False, refusal(Control.STOP))
    assert (await core.service.controls.stop(where, Presser(person(), is_admin=_no))).done
    await answering
    fake_anthropic.chunk_delay = 0.0
    [final] = adapter.finals(where)
    assert final.endswith("_(stopped)_") and "w299" not in final
    history = await core.store.turns.load_history(where)
    assert history.turns[-1].content == final and history.turns[-1].stop_reason == "stopped"
    assert not (await core.service.controls.stop(where, Presser(person(), is_admin=_no))).done

    await adapter.deliver(core.service, message(where, "again", mention=False))
    assert adapter.finals(where)[-1].startswith("You said:")


async def _no() -> bool:
    return False


async def test_erasing_a_person_deletes_their_feedback_votes(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread("vote.1")
    await adapter.deliver(core.service, message(where, "hello"))
    [answer] = [t for t in (await core.store.turns.load_history(where)).turns if t.role == "assistant"]
    for who in (person("U1"), person("U2", "Bob")):
        assert (await core.service.controls.rate(answer.id, Presser(who, is_admin=_no), positive=True)).done
    await core.service.controls.rate(answer.id, Presser(person("U2", "Bob"), is_admin=_no), positive=False)
    assert await core.store.answers.votes(answer.id) == {"U1": True, "U2": False}, "one vote each, changeable"

    from bot.store.people import Person

    await core.store.people.erase(Person("test", "U2"), operator="tester")
    assert await core.store.answers.votes(answer.id) == {"U1": True}
