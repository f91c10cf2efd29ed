"""Stop across instances: on one PostgreSQL, a Stop click reaching an instance other than
the one writing the thread's answer still stops it (a request on the conversation's row,
noticed by the writer's poll), and a stale request never stops a later answer."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import open_core
from bot.config import Config
from bot.controls import BUSY_NOTE, Control, ControlResult, Presser, refusal
from bot.store import Store, create_engine
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, person, thread
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL (TEST_DATABASE_URL)")


async def _no() -> bool:
    return False


async def test_a_stop_received_by_another_instance_stops_the_answer_there(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    first, second = await open_core(config), await open_core(config)
    try:
        where = thread("stop.across")
        fake_anthropic.queue_reply(" ".join(f"w{i}" for i in range(300)))
        fake_anthropic.chunk_delay = 0.02
        platform = RecordingPlatform()
        answering = asyncio.create_task(platform.deliver(first.service, message(where, "write a lot")))
        while not (platform.replies and platform.replies[0].deltas):
            await asyncio.sleep(0.01)

        bob = Presser(person("U2", "Bob"), is_admin=_no)
        assert await second.service.controls.stop(where, bob) == ControlResult(False, refusal(Control.STOP))
        stopped = await second.service.controls.stop(where, Presser(person(), is_admin=_no))
        assert stopped == ControlResult(True), "the other instance's answer was found and asked to stop"
        await answering
        fake_anthropic.chunk_delay = 0.0

        [final] = platform.finals(where)
        assert final.endswith("_(stopped)_") and "w299" not in final
        history = await second.store.turns.load_history(where)
        assert history.turns[-1].content == final and history.turns[-1].stop_reason == "stopped"
        assert not (await second.service.controls.stop(where, Presser(person(), is_admin=_no))).done, (
            "nothing is being written any more"
        )
        await platform.deliver(second.service, message(where, "and now?", mention=False))
        assert platform.finals(where)[-1].startswith("You said:"), "the next message is answered as usual"
    finally:
        await first.close()
        await second.close()


async def test_regenerate_waits_while_another_instance_writes_in_the_thread(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    first, second = await open_core(config), await open_core(config)
    try:
        where = thread("regen.across")
        platform = RecordingPlatform()
        await platform.deliver(first.service, message(where, "hello"))
        [answer] = [t for t in (await first.store.turns.load_history(where)).turns if t.role == "assistant"]
        fake_anthropic.queue_reply(" ".join(f"w{i}" for i in range(300)))
        fake_anthropic.chunk_delay = 0.02
        answering = asyncio.create_task(platform.deliver(first.service, message(where, "more", mention=False)))
        while not (len(platform.replies) == 2 and platform.replies[1].deltas):
            await asyncio.sleep(0.01)

        clicked = await second.service.controls.regenerate(answer.id, Presser(person(), is_admin=_no), platform.surface)

        assert clicked == ControlResult(False, BUSY_NOTE)
        await first.service.controls.stop(where, Presser(person(), is_admin=_no))
        await answering
        fake_anthropic.chunk_delay = 0.0
        stored = await second.store.answers.get(answer.id)
        assert stored is not None and not stored.superseded, "the answer stands"
    finally:
        await first.close()
        await second.close()


async def test_a_stop_request_for_an_answer_that_ended_never_stops_the_next_one(config: Config) -> None:
    store = Store(create_engine(config.database_url))
    try:
        where = thread("stale.stop")
        assert await store.turns.accept_message(message(where, "hello"))
        conversation = await store.stops.started(where, answer="first", asker_id="U1")
        assert conversation is not None
        await store.stops.ended(conversation, answer="first")
        assert await store.stops.started(where, answer="second", asker_id="U1") == conversation

        assert not await store.stops.request(where, answer="first", by="U1"), "the first answer is over"
        assert await store.stops.requested({conversation: "second"}) == set()
        assert await store.stops.request(where, answer="second", by="U1")
        assert await store.stops.requested({conversation: "second"}) == {conversation}
    finally:
        await store.close()
