"""Spend limits and rates, as tables: which limits apply, when periods end, whether a turn
goes, what `/claude budget` was asked, and what people read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.budgets import (
    EACH,
    BudgetChange,
    BudgetDefaults,
    BudgetSyntaxError,
    Limit,
    LimitCheck,
    Period,
    RateScope,
    Scope,
    StoredLimit,
    Verdict,
    applicable_limits,
    decide,
    limit_line,
    near_limit_note,
    over_rate,
    parse_budget_change,
    period_end,
    period_key,
    usd,
)

USD = 1_000_000
DEFAULTS = BudgetDefaults(channel_daily=5 * USD, user_daily=2 * USD, workspace_monthly=300 * USD)


@pytest.mark.parametrize(
    ("stored", "defaults", "expected"),
    [
        ({}, BudgetDefaults(), []),  # nothing set anywhere: no limit
        (
            {},
            DEFAULTS,
            [Limit(Scope.CHANNEL, Period.DAY, 5 * USD), Limit(Scope.USER, Period.DAY, 2 * USD),
             Limit(Scope.WORKSPACE, Period.MONTH, 300 * USD)],
        ),
        (  # the channel's own row replaces the default, month or day
            {(Scope.CHANNEL, "C1"): StoredLimit(Period.MONTH, 40 * USD)},
            BudgetDefaults(channel_daily=5 * USD),
            [Limit(Scope.CHANNEL, Period.MONTH, 40 * USD)],
        ),
        ({(Scope.CHANNEL, "C2"): StoredLimit(Period.DAY, 1)}, BudgetDefaults(), []),  # another channel's row
        (  # "off" overrides a default
            {(Scope.CHANNEL, "C1"): StoredLimit(Period.DAY, None), (Scope.USER, EACH): StoredLimit(Period.DAY, None)},
            DEFAULTS,
            [Limit(Scope.WORKSPACE, Period.MONTH, 300 * USD)],
        ),
    ],
)
def test_the_limits_that_apply_are_each_scopes_row_else_the_default(
    stored: dict[tuple[Scope, str], StoredLimit], defaults: BudgetDefaults, expected: list[Limit]
) -> None:
    assert applicable_limits(stored, "C1", defaults) == expected


@pytest.mark.parametrize(
    ("moment", "period", "key", "end"),
    [
        (datetime(2026, 11, 30, 18, 5, tzinfo=UTC), Period.DAY, "2026-11-30", datetime(2026, 12, 1, tzinfo=UTC)),
        (datetime(2026, 11, 30, 18, 5, tzinfo=UTC), Period.MONTH, "2026-11", datetime(2026, 12, 1, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), Period.MONTH, "2026-12", datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2028, 2, 28, 12, 0, tzinfo=UTC), Period.DAY, "2028-02-28", datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), Period.DAY, "2026-01-01", datetime(2026, 1, 2, tzinfo=UTC)),
    ],
)
def test_periods_are_utc_days_and_calendar_months(moment: datetime, period: Period, key: str, end: datetime) -> None:
    assert (period_key(period, moment), period_end(period, moment)) == (key, end)


CHANNEL_10 = Limit(Scope.CHANNEL, Period.DAY, 10 * USD)
USER_10 = Limit(Scope.USER, Period.DAY, 10 * USD)
WORKSPACE_10 = Limit(Scope.WORKSPACE, Period.MONTH, 10 * USD)


@pytest.mark.parametrize(
    ("checks", "reservation", "verdict", "reached"),
    [
        ([], 10**9, Verdict.GO, None),  # no limits at all
        ([LimitCheck(CHANNEL_10, 0, 0)], USD, Verdict.GO, None),
        ([LimitCheck(CHANNEL_10, 10 * USD, 0)], 1, Verdict.STOP, CHANNEL_10),  # reached exactly
        ([LimitCheck(CHANNEL_10, 11 * USD, 0)], 1, Verdict.STOP, CHANNEL_10),
        ([LimitCheck(CHANNEL_10, 5 * USD, 4 * USD)], USD, Verdict.GO, None),  # fits beside those in flight
        ([LimitCheck(CHANNEL_10, 5 * USD, 4 * USD)], 2 * USD, Verdict.WAIT, None),  # may not fit: wait for them
        ([LimitCheck(CHANNEL_10, 9 * USD, 0)], 50 * USD, Verdict.GO, None),  # alone: the last answer may go
        ([LimitCheck(CHANNEL_10, 9 * USD, 1)], 50 * USD, Verdict.WAIT, None),
        (  # a reached limit stops, even if another only says wait
            [LimitCheck(CHANNEL_10, 0, 9 * USD), LimitCheck(USER_10, 10 * USD, 0)], USD, Verdict.STOP, USER_10,
        ),
    ],
)
def test_a_turn_goes_waits_or_stops(
    checks: list[LimitCheck], reservation: int, verdict: Verdict, reached: Limit | None
) -> None:
    decision = decide(checks, reservation)
    assert (decision.verdict, decision.reached) == (verdict, reached)


def test_a_burst_admitted_by_the_rules_overshoots_by_at_most_one_answer() -> None:
    """Replaying `decide` turn by turn: whatever the answers cost (up to their reservation),
    once a limit is passed it is by less than the last answer."""
    limit, reservation = Limit(Scope.CHANNEL, Period.DAY, 10 * USD), 3 * USD
    for cost in (1, USD // 2, 3 * USD):  # answers that cost far less than, or all of, their reservation
        spent = 9 * USD
        in_flight: list[int] = []
        for _ in range(50):  # 50 turns ask; in-flight turns end when one has to wait
            decision = decide([LimitCheck(limit, spent, sum(in_flight))], reservation)
            if decision.verdict is Verdict.WAIT:
                spent += cost * len(in_flight)
                in_flight.clear()
                decision = decide([LimitCheck(limit, spent, 0)], reservation)
            if decision.verdict is Verdict.GO:
                in_flight.append(reservation)
        spent += cost * len(in_flight)
        assert 9 * USD + cost <= spent < limit.micros + cost


@pytest.mark.parametrize(
    ("checks", "near"),
    [
        ([LimitCheck(CHANNEL_10, 7_999_999, 0)], []),
        ([LimitCheck(CHANNEL_10, 8 * USD, 0)], [Scope.CHANNEL]),
        ([LimitCheck(WORKSPACE_10, 9 * USD, 0)], [Scope.WORKSPACE]),
        ([LimitCheck(USER_10, 9 * USD, 0)], []),  # a person's own limit carries no note
    ],
)
def test_past_80_percent_of_a_channel_or_workspace_limit_is_near(checks: list[LimitCheck], near: list[Scope]) -> None:
    assert [check.limit.scope for check in decide(checks, 1).near] == near


@pytest.mark.parametrize(
    ("by_user", "in_channel", "per_user", "per_channel", "expected"),
    [
        (9, 59, 10, 60, None),
        (10, 0, 10, 60, RateScope.USER),
        (0, 60, 10, 60, RateScope.CHANNEL),
        (10, 60, 10, 60, RateScope.USER),
        (500, 500, 0, 0, None),  # 0: off
    ],
)
def test_rates_count_the_turns_of_the_last_minute(
    by_user: int, in_channel: int, per_user: int, per_channel: int, expected: RateScope | None
) -> None:
    assert over_rate(by_user, in_channel, per_user, per_channel) is expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("channel 5/day", BudgetChange(Scope.CHANNEL, StoredLimit(Period.DAY, 5 * USD))),
        ("Channel $2.50 / month", BudgetChange(Scope.CHANNEL, StoredLimit(Period.MONTH, 2_500_000))),
        ("user 1/day", BudgetChange(Scope.USER, StoredLimit(Period.DAY, USD))),
        ("workspace 300/month", BudgetChange(Scope.WORKSPACE, StoredLimit(Period.MONTH, 300 * USD))),
        ("channel off", BudgetChange(Scope.CHANNEL, StoredLimit(Period.DAY, None))),
        ("workspace OFF", BudgetChange(Scope.WORKSPACE, StoredLimit(Period.MONTH, None))),
        ("user default", BudgetChange(Scope.USER, None)),
        ("channel 0/day", BudgetChange(Scope.CHANNEL, StoredLimit(Period.DAY, 0))),  # nothing at all
    ],
)
def test_budget_changes_parse(typed: str, expected: BudgetChange) -> None:
    assert parse_budget_change(typed) == expected


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("channel", "/claude budget"),
        ("team 5/day", "not channel, user or workspace"),
        ("channel five", "not an amount"),
        ("channel -5/day", "not an amount"),
        ("channel 5.123/day", "not an amount"),
        ("channel 5/week", "not an amount"),
        ("user 5/month", "user limit is <amount>/day"),
        ("workspace 5/day", "workspace limit is <amount>/month"),
        ("channel 5000000/day", "set `off`"),
    ],
)
def test_budget_typos_are_explained(typed: str, says: str) -> None:
    with pytest.raises(BudgetSyntaxError, match=says):
        parse_budget_change(typed)


@pytest.mark.parametrize(
    ("micros", "shown"),
    [(0, "$0.00"), (5 * USD, "$5.00"), (1_234_560_000, "$1,234.56"), (4_000, "$0.004"), (10_000, "$0.01")],
)
def test_amounts_are_shown_in_dollars(micros: int, shown: str) -> None:
    assert usd(micros) == shown


def test_the_limit_line_names_the_limit_when_it_resets_and_who_can_raise_it() -> None:
    moment = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    line = limit_line(CHANNEL_10, moment)
    assert "this channel's $10.00 daily Claude spending limit has been reached" in line
    assert "resets at 00:00 UTC" in line and "an admin can raise it with `/claude budget`" in line
    assert "resets on 1 December at 00:00 UTC" in limit_line(WORKSPACE_10, moment)
    assert "your $10.00 daily" in limit_line(USER_10, moment)
    assert "85% of this channel's $10.00 daily" in near_limit_note(LimitCheck(CHANNEL_10, 8_500_000, 0))
