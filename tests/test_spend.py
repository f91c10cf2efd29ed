"""Spend limits and rate limits end to end: recording platform -> service -> store -> real SDK
-> fake Anthropic. Prices come from a PRICES_FILE: $1,000 per million tokens, so that a
short exchange costs a few tenths of a dollar."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import metrics
from bot.app import Core, open_core
from bot.budgets import Period, Scope
from bot.config import Config, load_config
from bot.domain import ChannelKey, IncomingMessage, now
from bot.errors import StartupError
from bot.scheduler import prune_once
from bot.schema import audit_log, rate_events, spend_holds, spend_notices
from bot.store.spend import SpendPlace
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, command, message, person, thread
from tests.conftest import POSTGRES_URL

ADMIN = person("ADMIN", "Ada")
MEMBER = person("U2", "Bob")
USD = 1_000_000
LIMIT_WORDS = "spending limit has been reached"


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."claude-sonnet-5-5"]\ninput = 1000\noutput = 1000\n')
    return config.model_copy(update={"prices_file": prices})


def cost(usage: dict[str, Any]) -> int:
    """An answer's cost at $1,000/Mtok, worked out by hand: micro-dollars per token are 1,000 for
    input and output, 100 for a cache read (a tenth), 1,250 for a cache write (1.25x)."""
    return (
        1000 * (usage["input_tokens"] + usage["output_tokens"])
        + 100 * usage["cache_read_input_tokens"]
        + 1250 * usage["cache_creation_input_tokens"]
    )


async def budget(core: Core, adapter: RecordingPlatform, channel: ChannelKey, typed: str, who: Any = ADMIN) -> str:
    return await adapter.run_command(core.service, command(channel, f"budget {typed}".strip(), who=who))


async def spent(core: Core, channel: ChannelKey, scope: Scope = Scope.CHANNEL, period: Period = Period.DAY) -> int:
    return await core.store.spend.spent(channel, scope, period, now())


async def until_stopped(
    core: Core, adapter: RecordingPlatform, messages: list[IncomingMessage]
) -> tuple[int, IncomingMessage]:
    """Deliver messages one by one until one is answered with a limit's line: how many were
    answered before it, and the one that was stopped."""
    for answered, sent in enumerate(messages):
        await adapter.deliver(core.service, sent)
        if LIMIT_WORDS in adapter.finals(sent.thread)[-1]:
            return answered, sent
    raise AssertionError("no limit was reached")


async def test_each_answer_adds_its_usage_at_the_models_prices(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await adapter.deliver(core.service, message(where, "hello"))
    await adapter.deliver(core.service, message(where, "and again", mention=False))
    assert fake_anthropic.usages[1]["cache_read_input_tokens"] > 0, "the second turn reads the cache"
    expected = sum(cost(usage) for usage in fake_anthropic.usages)
    assert b'bot_spend_usd_total{platform="test"}' in metrics.exposition()
    for scope, period in ((Scope.CHANNEL, Period.DAY), (Scope.CHANNEL, Period.MONTH), (Scope.WORKSPACE, Period.DAY)):
        assert await spent(core, where.channel, scope, period) == expected
    shown = await budget(core, adapter, where.channel, "", who=MEMBER)
    assert f"This channel spent ${expected / USD:,.2f} today" in shown
    usage = await adapter.run_command(core.service, command(where.channel, "usage", who=ADMIN))
    assert f"≈ ${expected / USD:,.2f} (estimate)" in usage, "/claude usage prices as the limits do"
    assert "This channel: no limit (default)" in shown


async def test_only_where_a_limit_applies_does_an_answer_reserve_what_it_may_cost(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    async def reserved_while_answering(where: Any) -> int:
        answering = asyncio.create_task(adapter.deliver(core.service, message(where, "hello")))
        while fake_anthropic.in_flight == 0:
            await asyncio.sleep(0.01)
        held = await count_rows(core, spend_holds)
        await answering
        return held

    fake_anthropic.latency = 0.3
    free, limited = thread("1.1"), thread("2.1", channel="C2")
    assert await reserved_while_answering(free) == 0, "no limit anywhere: nothing to reserve"
    assert await spent(core, free.channel) == cost(fake_anthropic.usages[0]), "its spend is still added up"
    assert await count_rows(core, rate_events) == 0, "rate limits are off here"
    await budget(core, adapter, limited.channel, "channel 100/day")
    assert await reserved_while_answering(limited) == 1
    assert await count_rows(core, spend_holds) == 0, "released when the answer ended"


async def count_rows(core: Core, table: Any) -> int:
    async with core.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_a_channel_limit_reached_by_answers_stops_the_next_message_with_one_line(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    channel = thread().channel
    assert "The channel limit is now $1.00/day" in await budget(core, adapter, channel, "channel 1/day")
    answered, stopped = await until_stopped(
        core, adapter, [message(thread(f"{n}.1"), f"question {n}") for n in range(30)]
    )
    costs = [cost(usage) for usage in fake_anthropic.usages]
    assert answered == len(costs) >= 2, "a sequence of answers reached the limit"
    assert sum(costs[:-1]) < USD <= sum(costs), "each answer started under the limit"
    line = adapter.finals(stopped.thread)[-1]
    assert "this channel's $1.00 daily Claude spending limit" in line
    assert "resets at 00:00 UTC" in line and "an admin can raise it" in line

    requests = len(fake_anthropic.message_requests)
    await adapter.deliver(core.service, message(stopped.thread, "please?", mention=False))
    await adapter.deliver(core.service, message(stopped.thread, "hello??", mention=False))
    assert adapter.finals(stopped.thread) == [line], "once per thread: no second line"
    elsewhere = thread("99.1")
    await adapter.deliver(core.service, message(elsewhere, "me too?"))
    assert adapter.finals(elsewhere) == [line], "another thread gets the line once"
    assert len(fake_anthropic.message_requests) == requests, "no request was made at the limit"
    await budget(core, adapter, channel, "channel 0.01/day")  # lowered: a new limit, said once more
    await adapter.deliver(core.service, message(stopped.thread, "and now?", mention=False))
    assert "$0.01 daily" in adapter.finals(stopped.thread)[-1] and len(adapter.finals(stopped.thread)) == 2
    assert len(fake_anthropic.message_requests) == requests
    other_channel = thread("5.5", channel="C-OTHER")
    await adapter.deliver(core.service, message(other_channel, "hi"))
    assert adapter.finals(other_channel)[0].startswith("You said"), "other channels are not limited"


async def test_fifty_concurrent_messages_near_a_limit_overshoot_by_at_most_one_answer(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await burst_near_a_limit(core, core, adapter, fake_anthropic)


async def burst_near_a_limit(
    first: Core, second: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    channel = thread().channel
    await adapter.deliver(first.service, message(thread("0.1"), "warm up"))
    one_answer = cost(fake_anthropic.usages[0])
    # Room for about two and a half more answers.
    limit_cents = -(-(one_answer * 7 // 2) // 10_000)
    await budget(first, adapter, channel, f"channel {limit_cents / 100:.2f}/day")
    limit = limit_cents * 10_000
    fake_anthropic.latency = 0.05  # answers overlap
    burst = [message(thread(f"{n}.2"), "go") for n in range(50)]
    for n, sent in enumerate(burst):  # two instances take turns, where there are two
        assert await (first if n % 2 else second).service.submit(sent, adapter.surface(sent))
    await asyncio.gather(first.service.tasks.idle(), second.service.tasks.idle())

    costs = [cost(usage) for usage in fake_anthropic.usages]
    total = await spent(first, channel)
    assert total == sum(costs)
    assert sum(costs[:-1]) < limit <= total, "the limit was passed by the last answer alone"
    assert total - limit < max(costs), "overshoot: less than one answer"
    finals = [adapter.finals(sent.thread) for sent in burst]
    assert all(len(texts) == 1 for texts in finals), "every message got one answer or one line"
    answered = sum(text.startswith("You said") for (text,) in finals)
    assert answered == len(costs) - 1 and 50 - answered == sum(LIMIT_WORDS in text for (text,) in finals)


@pytest.mark.skipif(POSTGRES_URL is None, reason="two instances share PostgreSQL (TEST_DATABASE_URL)")
async def test_limits_hold_across_two_instances_on_postgresql(
    core: Core, config: Config, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    other = await open_core(config)
    try:
        await burst_near_a_limit(core, other, adapter, fake_anthropic)
        assert core.service.instance_id != other.service.instance_id
    finally:
        await other.close()


async def test_past_80_percent_the_next_answer_carries_one_note(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await budget(core, adapter, where.channel, "channel 10/day")
    await adapter.deliver(core.service, message(where, "under 80%"))
    place = SpendPlace("test", "T1", "C1", "U9")  # another person's earlier spend here
    await core.store.spend.release(None, place, 8 * USD, now())
    for text in ("past 80%", "still past"):
        await adapter.deliver(core.service, message(where, text, mention=False))
    first, second, third = adapter.finals(where)
    assert "% of" not in first
    assert second.startswith("You said") and "_(Note: 8" in second and "this channel's $10.00 daily" in second
    assert "% of" not in third, "the note comes once a period"

    workspace = thread("2.2", channel="C-WS")
    await budget(core, adapter, workspace.channel, "workspace 10/month")
    await adapter.deliver(core.service, message(workspace, "now the workspace is past 80%"))
    assert "this workspace's $10.00 monthly" in adapter.finals(workspace)[0]


async def test_a_persons_limit_counts_their_answers_in_every_channel(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    alice = person("U1", "Alice")
    await budget(core, adapter, thread().channel, "user 0.70/day")
    answered, stopped = await until_stopped(
        core, adapter,
        [message(thread(f"{n}.1", channel=("C1", "C2")[n % 2]), f"q{n}", who=alice) for n in range(20)],
    )
    assert answered >= 2, "answers in both channels counted toward one limit"
    assert "your $0.70 daily Claude spending limit" in adapter.finals(stopped.thread)[-1]
    bob = thread("7.7", channel="C2")
    await adapter.deliver(core.service, message(bob, "and me?", who=MEMBER))
    assert adapter.finals(bob)[0].startswith("You said"), "another person still gets answers"


async def test_a_workspace_limit_counts_every_channel_and_person(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    await budget(core, adapter, thread().channel, "workspace 0.70/month")
    answered, stopped = await until_stopped(
        core, adapter,
        [message(thread(f"{n}.1", channel=f"C{n}"), f"q{n}", who=person(f"U{n}", f"P{n}")) for n in range(20)],
    )
    assert answered >= 2
    line = adapter.finals(stopped.thread)[-1]
    assert "this workspace's $0.70 monthly" in line and "resets on 1 " in line
    elsewhere = thread("1.1", workspace="T2")
    await adapter.deliver(core.service, message(elsewhere, "another workspace"))
    assert adapter.finals(elsewhere)[0].startswith("You said")


async def test_the_defaults_apply_until_a_place_sets_its_own(
    config: Config, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    async with opened(config.model_copy(update={"budget_channel_daily_usd": 0.0})) as core:
        where = thread()
        await adapter.deliver(core.service, message(where, "hi"))
        assert "this channel's $0.00 daily" in adapter.finals(where)[0]
        assert "This channel: $0.00/day (default)" in await budget(core, adapter, where.channel, "")
        await budget(core, adapter, where.channel, "channel off")
        await adapter.deliver(core.service, message(thread("2.2"), "hi"))
        assert adapter.finals(thread("2.2"))[0].startswith("You said")
    assert len(fake_anthropic.message_requests) == 1


async def test_only_admins_change_limits_and_every_change_is_audited(
    core: Core, adapter: RecordingPlatform
) -> None:
    channel = thread().channel
    for typed in ("channel 1/day", "user off", "workspace 5/month", "channel default"):
        assert (await budget(core, adapter, channel, typed, who=MEMBER)).startswith("Only workspace admins"), typed
    assert "This channel: no limit" in await budget(core, adapter, channel, "", who=MEMBER)
    assert "Nothing was changed" in await budget(core, adapter, channel, "channel lots", who=ADMIN)
    assert await audit(core) == []
    await budget(core, adapter, channel, "channel 1/day")
    await budget(core, adapter, channel, "channel 20/month")
    await budget(core, adapter, channel, "user off")
    await budget(core, adapter, channel, "channel default")
    assert await audit(core) == [
        ("budget channel", None, "$1.00/day", "test:ADMIN"),
        ("budget channel", "1000000/day", "$20.00/month", "test:ADMIN"),
        ("budget user", None, "off", "test:ADMIN"),
        ("budget channel", "20000000/month", "default", "test:ADMIN"),
    ]


async def test_fifteen_messages_in_a_minute_from_one_person_get_ten_answers_and_one_slow_down(
    config: Config, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    slowed = metrics.LIMITED.labels("rate_user")._value.get()
    async with opened(config.model_copy(update={"rate_user_per_minute": 10, "rate_channel_per_minute": 60})) as core:
        threads = [thread(f"{n}.1") for n in range(15)]
        for where in threads:
            await adapter.deliver(core.service, message(where, "quick one"))
        assert len(fake_anthropic.message_requests) == 10
        finals = [text for where in threads for text in adapter.finals(where)]
        assert sum(text.startswith("You said") for text in finals) == 10
        assert sum("Slow down" in text for text in finals) == 1 and len(finals) == 11
        assert metrics.LIMITED.labels("rate_user")._value.get() == slowed + 5, "each turn without a call is counted"
        other = thread("20.1")
        await adapter.deliver(core.service, message(other, "my turn", who=MEMBER))
        assert adapter.finals(other)[0].startswith("You said"), "the limit is per person"


async def test_a_busy_channel_is_slowed_down_too(
    config: Config, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    async with opened(config.model_copy(update={"rate_user_per_minute": 10, "rate_channel_per_minute": 3})) as core:
        for n in range(5):
            await adapter.deliver(core.service, message(thread(f"{n}.1"), "hi", who=person(f"U{n}", f"P{n}")))
        assert len(fake_anthropic.message_requests) == 3
        assert sum("this channel has sent a lot" in text for text in adapter.finals()) == 1


@contextlib.asynccontextmanager
async def opened(config: Config) -> AsyncIterator[Core]:
    core = await open_core(config)
    try:
        yield core
    finally:
        await core.close()


async def audit(core: Core) -> list[tuple[str, str | None, str | None, str]]:
    async with core.store.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_log.c.setting, audit_log.c.old_value, audit_log.c.new_value, audit_log.c.actor_id)
            .where(audit_log.c.setting.like("budget%"))
            .order_by(audit_log.c.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]




async def test_a_bad_prices_file_stops_start_up_with_one_line(config: Config, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.sonnet]\ninput = 3\n")
    with pytest.raises(StartupError, match=r"^PRICES_FILE: sonnet: needs input and output"):
        await open_core(config.model_copy(update={"prices_file": bad}))


async def test_pruning_forgets_notices_reservations_and_rate_events_that_no_longer_count(
    config: Config, adapter: RecordingPlatform
) -> None:
    async with opened(config.model_copy(update={"rate_user_per_minute": 1})) as core:
        await adapter.deliver(core.service, message(thread("1.1"), "one"))
        await adapter.deliver(core.service, message(thread("2.1"), "two: slow down"))
        moment = now()
        await core.store.spend.claim_notice("old", moment - timedelta(days=1), moment - timedelta(days=2))
        place = SpendPlace("test", "T9", "C9", "U9")
        await core.store.spend.hold(place, moment, moment, moment - timedelta(seconds=1), lambda _s: (None, 1))
        assert await rows(core) == (2, 1, 1)  # "slow down" (until a minute from now), "old"; the dead hold
        await prune_once(core.store, thread_ttl_days=30)
        assert await rows(core) == (1, 0, 1), "the live notice and the event of the last minute stay"


async def rows(core: Core) -> tuple[int, int, int]:
    async with core.store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            [await conn.scalar(select(func.count()).select_from(table)) for table in (spend_notices, spend_holds)]
            + [await conn.scalar(select(func.count()).select_from(rate_events).where(rate_events.c.user_id == "U1"))]
        )


def test_the_budget_variables_are_read_and_blank_means_unset() -> None:
    blank = load_config(budget_channel_daily_usd="", budget_user_daily_usd=" ", prices_file="")
    assert (blank.budget_channel_daily_usd, blank.budget_user_daily_usd, blank.prices_file) == (None, None, None)
    read = load_config(budget_workspace_monthly_usd="300", rate_user_per_minute="0")
    assert (read.budget_workspace_monthly_usd, read.rate_user_per_minute) == (300.0, 0)
    with pytest.raises(StartupError, match="BUDGET_USER_DAILY_USD"):
        load_config(budget_user_daily_usd="-1")
    with pytest.raises(StartupError, match="RATE_CHANNEL_PER_MINUTE"):
        load_config(rate_channel_per_minute="lots")
