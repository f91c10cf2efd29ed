"""Spend limits and rate limits, as pure rules: no I/O, table-tested in tests/test_budgets.py.

Which limits apply to a message, whether a turn may start given what has been spent and
what the turns in flight have reserved, what `/claude budget` was asked to change, and the
sentences people see. `bot.spend` does the I/O around them; `bot.store.spend` keeps the counts.

Periods are UTC days and calendar months. Money is whole micro-dollars (see `bot.pricing`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from bot.pricing import MICROS_PER_USD

WARN_SHARE = Decimal("0.8")  # past this share of a limit, the next answer says so
MAX_LIMIT_USD = Decimal(1_000_000)


class Period(enum.Enum):
    DAY = "day"
    MONTH = "month"


class Scope(enum.Enum):
    CHANNEL = "channel"
    USER = "user"  # each person, in the workspace
    WORKSPACE = "workspace"


EACH = "*"  # the scope id of a workspace-wide row (the user limit, the workspace limit)


@dataclass(frozen=True, slots=True)
class Limit:
    scope: Scope
    period: Period
    micros: int


@dataclass(frozen=True, slots=True)
class StoredLimit:
    """A limit row set with `/claude budget`; micros None means "off" (overrides a default)."""

    period: Period
    micros: int | None


@dataclass(frozen=True, slots=True)
class BudgetDefaults:
    """The operator's limits for places that set none (None: no limit)."""

    channel_daily: int | None = None
    user_daily: int | None = None
    workspace_monthly: int | None = None


StoredLimits = Mapping[tuple[Scope, str], StoredLimit]  # (scope, scope id) -> row


def applicable_limits(stored: StoredLimits, channel_id: str, defaults: BudgetDefaults) -> list[Limit]:
    """The limits a message in `channel_id` is held to: each scope's own row if it has one
    (an "off" row meaning none), else the operator's default."""
    found: list[Limit] = []
    for scope, scope_id, default in (
        (Scope.CHANNEL, channel_id, StoredLimit(Period.DAY, defaults.channel_daily)),
        (Scope.USER, EACH, StoredLimit(Period.DAY, defaults.user_daily)),
        (Scope.WORKSPACE, EACH, StoredLimit(Period.MONTH, defaults.workspace_monthly)),
    ):
        row = stored.get((scope, scope_id), default)
        if row.micros is not None:
            found.append(Limit(scope, row.period, row.micros))
    return found


def period_key(period: Period, moment: datetime) -> str:
    """`2026-11-30` for a day, `2026-11` for a month (UTC)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d" if period is Period.DAY else "%Y-%m")


def period_end(period: Period, moment: datetime) -> datetime:
    """When the period holding `moment` ends: the next UTC midnight, or the first of next month."""
    moment = moment.astimezone(UTC)
    day_start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return day_start + timedelta(days=1)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return day_start.replace(year=year, month=month, day=1)


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One limit with what its scope has spent this period and what turns in flight reserved."""

    limit: Limit
    spent: int
    held: int


class Verdict(enum.Enum):
    GO = "go"
    WAIT = "wait"  # turns in flight may or may not use up the rest: ask again when they end
    STOP = "stop"  # the limit is reached: no request


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reached: Limit | None = None  # the limit that stopped the turn
    near: tuple[LimitCheck, ...] = ()  # channel and workspace limits past WARN_SHARE (going ahead)


def decide(checks: Sequence[LimitCheck], reservation: int) -> Decision:
    """Whether a turn that may cost up to `reservation` starts now.

    A reached limit stops it. A turn whose most possible cost fits beside the turns in flight
    goes. One that may not fit goes only when nothing else is in flight in that scope: so a
    burst of turns overshoots a limit by at most one answer, and nobody is told a limit is
    reached while turns that may not reach it are still running (they wait instead)."""
    for check in checks:
        if check.spent >= check.limit.micros:
            return Decision(Verdict.STOP, reached=check.limit)
    for check in checks:
        if check.spent + check.held + reservation > check.limit.micros and check.held > 0:
            return Decision(Verdict.WAIT)
    near = tuple(
        check for check in checks
        if check.limit.scope is not Scope.USER and check.spent >= check.limit.micros * WARN_SHARE
    )
    return Decision(Verdict.GO, near=near)


class RateScope(enum.Enum):
    USER = "user"
    CHANNEL = "channel"


def over_rate(recent_by_user: int, recent_in_channel: int, per_user: int, per_channel: int) -> RateScope | None:
    """Which rate a new turn would break, given the turns started in the last minute (a
    limit of 0 is off)."""
    if per_user and recent_by_user >= per_user:
        return RateScope.USER
    if per_channel and recent_in_channel >= per_channel:
        return RateScope.CHANNEL
    return None


# --- /claude budget ---------------------------------------------------------------------


class BudgetSyntaxError(ValueError):
    """What was typed after `/claude budget` is not a change it understands."""


@dataclass(frozen=True, slots=True)
class BudgetChange:
    scope: Scope
    limit: StoredLimit | None  # None: back to the operator's default


BUDGET_USAGE = (
    "`/claude budget` shows the limits; admins change them with `/claude budget channel <amount>/day`, "
    "`channel <amount>/month`, `user <amount>/day`, `workspace <amount>/month`, `<scope> off` "
    "or `<scope> default` (amounts in US dollars)."
)
_PERIODS_ALLOWED = {
    Scope.CHANNEL: (Period.DAY, Period.MONTH),
    Scope.USER: (Period.DAY,),
    Scope.WORKSPACE: (Period.MONTH,),
}
_AMOUNT = re.compile(r"\$?(?P<amount>\d+(?:\.\d{1,2})?)\s*/\s*(?P<period>day|month|d|m)", re.IGNORECASE)


def parse_budget_change(argument: str) -> BudgetChange:
    """`channel 5/day`, `user $2.50/day`, `workspace 300/month`, `channel off`, `user default`."""
    words = argument.split(maxsplit=1)
    if len(words) != 2:
        raise BudgetSyntaxError(BUDGET_USAGE)
    try:
        scope = Scope(words[0].lower())
    except ValueError:
        raise BudgetSyntaxError(f"`{words[0]}` is not channel, user or workspace. {BUDGET_USAGE}") from None
    value = words[1].strip().lower()
    if value == "off":
        return BudgetChange(scope, StoredLimit(_PERIODS_ALLOWED[scope][0], None))
    if value == "default":
        return BudgetChange(scope, None)
    match = _AMOUNT.fullmatch(value)
    if match is None:
        raise BudgetSyntaxError(f"`{words[1].strip()}` is not an amount like `5/day` or `off`. {BUDGET_USAGE}")
    period = Period.DAY if match["period"].startswith("d") else Period.MONTH
    if period not in _PERIODS_ALLOWED[scope]:
        allowed = " or ".join(f"<amount>/{p.value}" for p in _PERIODS_ALLOWED[scope])
        raise BudgetSyntaxError(f"A {scope.value} limit is {allowed}.")
    try:
        amount = Decimal(match["amount"])
    except InvalidOperation:  # (the pattern admits only numbers)
        raise BudgetSyntaxError(BUDGET_USAGE) from None
    if amount > MAX_LIMIT_USD:
        raise BudgetSyntaxError(f"That is more than ${MAX_LIMIT_USD:,.0f}; set `off` for no limit.")
    return BudgetChange(scope, StoredLimit(period, int(amount * MICROS_PER_USD)))


def usd_to_micros(amount: float | None) -> int | None:
    return None if amount is None else int(Decimal(str(amount)) * MICROS_PER_USD)


# --- what people are told ---------------------------------------------------------------


def usd(micros: int) -> str:
    """`$4.20`; amounts under a cent keep their cents' fraction (`$0.004`)."""
    dollars = Decimal(micros) / MICROS_PER_USD
    return f"${dollars:,.2f}" if dollars >= Decimal("0.01") or micros == 0 else f"${dollars:.4f}".rstrip("0")


def describe(limit: Limit) -> str:
    """`this channel's $5.00 daily limit`"""
    whose = {Scope.CHANNEL: "this channel's", Scope.USER: "your", Scope.WORKSPACE: "this workspace's"}[limit.scope]
    period = "daily" if limit.period is Period.DAY else "monthly"
    return f"{whose} {usd(limit.micros)} {period} Claude spending limit"


def resets_at(period: Period, moment: datetime) -> str:
    end = period_end(period, moment)
    return "at 00:00 UTC" if period is Period.DAY else f"on {end:%-d %B} at 00:00 UTC"


def limit_line(limit: Limit, moment: datetime) -> str:
    """The one line a person gets when a limit stops their message."""
    return (
        f"_I can't answer this: {describe(limit)} has been reached. It resets {resets_at(limit.period, moment)}; "
        "an admin can raise it with `/claude budget`._"
    )


def near_limit_note(check: LimitCheck) -> str:
    share = int(Decimal(check.spent) * 100 / check.limit.micros) if check.limit.micros else 100
    text = describe(check.limit)
    return f"_(Note: {share}% of {text} is used.)_"


SLOW_DOWN_USER = "_Slow down a little: you've sent a lot of messages in the last minute. Try again in a minute._"
SLOW_DOWN_CHANNEL = (
    "_Slow down a little: this channel has sent a lot of messages in the last minute. Try again shortly._"
)


def slow_down_line(scope: RateScope) -> str:
    return SLOW_DOWN_USER if scope is RateScope.USER else SLOW_DOWN_CHANNEL
