"""Spend limits and rate limits around each answer, and `/claude budget`.

Before a turn calls Claude, `SpendGuard.admit` checks the per-minute rates and the spend
limits that apply (`bot.budgets`) against the counts in the database (`bot.store.spend`),
counting the turns in flight: each reserves the most it can cost until it ends. A turn that
may go gets an `Admission`; when it ends, its reservation is dropped and what it really cost
(its usage at the model's prices, `bot.pricing`) is added to the totals. A turn that may
not go makes no request: the person gets one line (once per thread and period for a limit,
at most once a minute for "slow down"), and nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType

from bot import metrics
from bot.budgets import (
    BUDGET_USAGE,
    EACH,
    BudgetDefaults,
    BudgetSyntaxError,
    Decision,
    Limit,
    LimitCheck,
    Period,
    RateScope,
    Scope,
    Verdict,
    applicable_limits,
    decide,
    describe,
    limit_line,
    near_limit_note,
    over_rate,
    parse_budget_change,
    period_end,
    period_key,
    slow_down_line,
    usd,
)
from bot.claude.turn import MAX_CONTINUATIONS
from bot.domain import ChannelKey, ChannelSettings, CommandInvocation, History, IncomingMessage, TokenUsage, now
from bot.pricing import MICROS_PER_USD, WEB_SEARCH, PriceTable
from bot.prompt import context_tokens, estimate_tokens
from bot.store.spend import SpendPlace, SpendSnapshot, SpendStore

log = logging.getLogger(__name__)

RATE_WINDOW = timedelta(minutes=1)
BUSY_AT_LIMIT = (
    "_I couldn't start your answer: other answers near this place's spending limit are still running. "
    "Please try again in a moment._"
)
_POLL_START, _POLL_CAP = 0.05, 1.0  # seconds between looks while turns in flight may use up a limit


@dataclass(frozen=True, slots=True)
class SpendRules:
    """The operator's prices, default limits and rates (RATE_*: turns per minute, 0: off)."""

    prices: PriceTable
    defaults: BudgetDefaults = field(default_factory=BudgetDefaults)
    rate_user_per_minute: int = 10
    rate_channel_per_minute: int = 60
    hold_seconds: float = 900.0  # a reservation outlives a dead instance's turn this long at most
    web_max_uses: int = 5  # WEB_MAX_USES: the searches one answer may make, reserved with it


@dataclass
class Admission:
    """One turn's permission to call Claude (`refusal` None), or the reason it may not."""

    guard: SpendGuard | None
    place: SpendPlace
    hold_id: int | None = None
    refusal: str | None = None  # the line to show; "" when it was already shown
    notes: list[str] = field(default_factory=list)  # to add to the answer (the 80% note)
    cost_micros: int = 0

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    def spent(self, model: str, usage: TokenUsage, server_tool_uses: Mapping[str, int] | None = None) -> None:
        """What the request cost, added to the totals when the turn ends."""
        if self.guard is not None:
            self.cost_micros += self.guard.rules.prices.cost_micros(model, usage, server_tool_uses)

    async def __aenter__(self) -> Admission:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.guard is not None and (self.hold_id is not None or self.cost_micros):
            await asyncio.shield(self.guard.settle(self))


def stopped_usage(system_prompt: str, history: History, written: str) -> TokenUsage:
    """What a stopped request is counted as: its usage never arrives, but Claude bills the
    input it read and what it wrote. Our estimates, input at the full input price."""
    return TokenUsage(
        input_tokens=estimate_tokens(system_prompt) + context_tokens(history.turns),
        output_tokens=estimate_tokens(written),
    )


class SpendGuard:
    def __init__(self, store: SpendStore, rules: SpendRules, clock: Callable[[], datetime] = now) -> None:
        self.store = store
        self.rules = rules
        self.clock = clock

    async def admit(self, message: IncomingMessage, settings: ChannelSettings, history: History) -> Admission:
        """May this turn call Claude now? Waits while turns in flight may use up a limit."""
        place = SpendPlace(
            message.thread.platform, message.thread.workspace_id, message.thread.channel_id, message.actor.user_id
        )
        limits = applicable_limits(
            await self.store.limit_rows(message.channel), message.channel.channel_id, self.rules.defaults
        )
        rates = bool(self.rules.rate_user_per_minute or self.rules.rate_channel_per_minute)
        if not limits and not rates:  # nothing to check; what the answer costs is still added up
            return Admission(self, place)
        input_tokens = estimate_tokens(settings.system_prompt) + context_tokens(history.turns)
        reservation = self._most_turn_micros(settings, input_tokens)
        delay = _POLL_START
        deadline = asyncio.get_running_loop().time() + self.rules.hold_seconds
        while True:
            moment = self.clock()
            rate, decision, hold_id = await self._try(place, limits, reservation, moment, rates=rates)
            if rate is not None:
                return await self._refuse_rate(place, rate, moment)
            if decision.verdict is Verdict.STOP and decision.reached is not None:
                return await self._refuse_limit(message, place, decision.reached, moment)
            if decision.verdict is Verdict.GO:
                return Admission(self, place, hold_id, notes=await self._near_notes(place, decision, moment))
            if asyncio.get_running_loop().time() > deadline:
                metrics.LIMITED.labels("busy_at_limit").inc()
                return Admission(None, place, refusal=BUSY_AT_LIMIT)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_CAP)

    def _most_turn_micros(self, settings: ChannelSettings, input_tokens: int) -> int:
        """The most one answer can cost: one request, or with the web tools on, every request
        of a paused turn continued (each resending what came before) and their searches; the
        fallback model's request too where one is set."""
        prices, output = self.rules.prices, settings.max_tokens
        requests = 1 + MAX_CONTINUATIONS if settings.web else 1
        searches = {WEB_SEARCH: self.rules.web_max_uses if settings.web else 0}

        def most(model: str) -> int:
            each = prices.most_micros(model, input_tokens + (requests - 1) * output, output)
            return requests * each + prices.cost_micros(model, TokenUsage(), searches)

        fallback = settings.fallback_model
        return most(settings.model) + (most(fallback) if fallback and fallback != settings.model else 0)

    async def _try(
        self, place: SpendPlace, limits: list[Limit], reservation: int, moment: datetime, *, rates: bool
    ) -> tuple[RateScope | None, Decision, int | None]:
        """One look at the counts; a reservation (with limits) and a rate event (with rates)
        written when the turn may go."""
        rules = self.rules

        def choose(snapshot: SpendSnapshot) -> tuple[tuple[RateScope | None, Decision], int | None]:
            rate = over_rate(
                snapshot.recent_by_user,
                snapshot.recent_in_channel,
                rules.rate_user_per_minute,
                rules.rate_channel_per_minute,
            )
            checks = [
                LimitCheck(limit, snapshot.spent_in(limit.scope, limit.period, moment), snapshot.held[limit.scope])
                for limit in limits
            ]
            decision = decide(checks, reservation)
            go = rate is None and decision.verdict is Verdict.GO
            return (rate, decision), (reservation if go else None)

        (rate, decision), hold_id = await self.store.hold(
            place,
            moment,
            moment - RATE_WINDOW,
            moment + timedelta(seconds=rules.hold_seconds),
            choose,
            spend=bool(limits),
            rates=rates,
        )
        return rate, decision, hold_id

    async def _refuse_rate(self, place: SpendPlace, rate: RateScope, moment: datetime) -> Admission:
        metrics.LIMITED.labels(f"rate_{rate.value}").inc()
        who = place.user_id if rate is RateScope.USER else place.channel_id
        key = f"slow:{place.platform}:{place.workspace_id}:{rate.value}:{who}"
        first = await self.store.claim_notice(key, moment + RATE_WINDOW, moment)
        log.info("rate limit: %s %s in %s:%s (told: %s)", rate.value, who, place.platform, place.workspace_id, first)
        return Admission(None, place, refusal=slow_down_line(rate) if first else "")

    async def _refuse_limit(
        self, message: IncomingMessage, place: SpendPlace, limit: Limit, moment: datetime
    ) -> Admission:
        metrics.LIMITED.labels(f"spend_{limit.scope.value}").inc()
        # A raised limit reached again is news: the key names the amount too.
        key = f"limit:{message.thread}:{limit.scope.value}:{limit.micros}:{period_key(limit.period, moment)}"
        first = await self.store.claim_notice(key, period_end(limit.period, moment), moment)
        log.info("spend limit reached: %s in %s (told: %s)", describe(limit), message.thread, first)
        return Admission(None, place, refusal=limit_line(limit, moment) if first else "")

    async def _near_notes(self, place: SpendPlace, decision: Decision, moment: datetime) -> list[str]:
        notes = []
        for check in decision.near:
            scope_id = place.channel_id if check.limit.scope is Scope.CHANNEL else EACH
            key = (
                f"near:{place.platform}:{place.workspace_id}:{check.limit.scope.value}:{scope_id}:"
                f"{check.limit.micros}:{period_key(check.limit.period, moment)}"
            )
            if await self.store.claim_notice(key, period_end(check.limit.period, moment), moment):
                notes.append(near_limit_note(check))
        return notes

    async def settle(self, admission: Admission) -> None:
        metrics.SPEND.labels(admission.place.platform).inc(admission.cost_micros / MICROS_PER_USD)
        try:
            await self.store.release(admission.hold_id, admission.place, admission.cost_micros, self.clock())
        except Exception:  # the answer is out; an unreleased reservation expires (hold_seconds)
            log.exception("recording a turn's spend failed: %s", admission.place)

    # --- /claude budget -------------------------------------------------------------------

    async def budget_command(self, invocation: CommandInvocation, argument: str) -> str:
        """Show the limits (no argument) or change one (the caller checked admin rights)."""
        if not argument or argument.lower() == "show":
            return await self.show(invocation.channel)
        try:
            change = parse_budget_change(argument)
        except BudgetSyntaxError as error:
            return f"{error} Nothing was changed."
        if change.limit is None:
            shown = "default"
        elif change.limit.micros is None:
            shown = "off"
        else:
            shown = f"{usd(change.limit.micros)}/{change.limit.period.value}"
        await self.store.set_limit(invocation.channel, change.scope, change.limit, invocation.actor.qualified_id, shown)
        log.info(
            "budget: %s set the %s limit in %s to %s",
            invocation.actor.qualified_id,
            change.scope.value,
            invocation.channel,
            shown,
        )
        return f"The {change.scope.value} limit is now {shown}.\n\n{await self.show(invocation.channel)}"

    async def show(self, channel: ChannelKey) -> str:
        stored = await self.store.limit_rows(channel)
        limits = {limit.scope: limit for limit in applicable_limits(stored, channel.channel_id, self.rules.defaults)}
        moment = self.clock()
        lines = ["*Claude spending limits (US$, UTC days and calendar months):*"]
        for scope, label in (
            (Scope.CHANNEL, "This channel"),
            (Scope.USER, "Each person"),
            (Scope.WORKSPACE, "This workspace"),
        ):
            limit = limits.get(scope)
            text = "no limit" if limit is None else f"{usd(limit.micros)}/{limit.period.value}"
            scope_id = channel.channel_id if scope is Scope.CHANNEL else EACH
            source = "set here" if (scope, scope_id) in stored else "default"
            lines.append(f"• {label}: {text} ({source})")
        for scope, label in ((Scope.CHANNEL, "This channel"), (Scope.WORKSPACE, "This workspace")):
            today = await self.store.spent(channel, scope, Period.DAY, moment)
            month = await self.store.spent(channel, scope, Period.MONTH, moment)
            lines.append(f"{label} spent {usd(today)} today and {usd(month)} this month.")
        lines.append(BUDGET_USAGE)
        return "\n".join(lines)
