"""Regenerate and crashes: the click supersedes the old answer and puts its turn back to
pending, owned by the instance answering it again, in one transaction; if that instance
dies before the new answer is stored, recovery answers the turn (and never resends the
superseded answer)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.app import open_core
from bot.config import Config
from bot.controls import Presser
from bot.domain import IncomingMessage, now
from bot.ports import MessageSurface
from bot.recovery import Recovery, RecoveryPolicy
from bot.schema import messages
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, person, thread

NO_WAIT = RecoveryPolicy(dead_after=timedelta(seconds=30), settle_after=timedelta(0))


async def _no() -> bool:
    return False


async def test_a_regenerate_cut_short_by_a_crash_is_answered_by_recovery(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    platform = RecordingPlatform()
    where = thread("regen.crash")
    crashed = await open_core(config)
    try:
        await platform.deliver(crashed.service, message(where, "tell me a joke"))
        [old] = [t for t in (await crashed.store.turns.load_history(where)).turns if t.role == "assistant"]
        async with crashed.store.engine.begin() as conn:  # asked long ago: past recovery's own window
            await conn.execute(
                update(messages).where(messages.c.role == "user").values(created_at=now() - timedelta(days=2))
            )

        # The click is taken; the process dies before the new answer is written (its work
        # ends with nothing more stored, as a SIGKILL would leave it).
        async with crashed.service.locks.hold(where):
            clicked = await crashed.service.controls.regenerate(old.id, Presser(person(), _no), platform.surface)
            assert clicked.done
            await crashed.service.tasks.drain(0)
    finally:
        await crashed.close()  # no longer alive: what it owned is an orphan

    survivor = await open_core(config)
    try:

        async def surface_for(stored: IncomingMessage) -> MessageSurface:
            return platform.surface(stored)

        fake_anthropic.queue_reply("a better joke")
        result = await Recovery(survivor.store, survivor.service, surface_for, NO_WAIT).run_once()

        assert result.answered == 1, "the regenerated turn was recovered"
        assert platform.finals(where)[-1] == "a better joke"
        sent = fake_anthropic.message_requests[-1]["messages"]
        assert [m["role"] for m in sent] == ["user"], "the superseded answer is not resent"
        async with survivor.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(messages.c.role, messages.c.superseded, messages.c.state).order_by(messages.c.id)
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("user", False, "answered"),
            ("assistant", True, None),
            ("assistant", False, None),
        ]
        assert (await Recovery(survivor.store, survivor.service, surface_for, NO_WAIT).run_once()).answered == 0
    finally:
        await survivor.close()
