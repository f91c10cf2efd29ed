"""Spend limits, spend totals, turns in flight, rate events and once-only notices.

Persistence only: whether a turn may start is `bot.budgets.decide`, called by `hold` inside
the one transaction that reads the counts and writes the turn's reservation. That transaction
holds the workspace's lock (a PostgreSQL advisory transaction lock; SQLite's in-process write
lock), so instances sharing one database never both take the last room under a limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import case, delete, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.budgets import EACH, Period, Scope, StoredLimit, period_key
from bot.domain import ChannelKey, now
from bot.locks import advisory_key
from bot.schema import rate_events, spend_holds, spend_limits, spend_notices, spend_totals
from bot.store.channels import audit_entry
from bot.store.db import Database
from bot.ttl import TtlCache

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SpendPlace:
    """Whose and where a turn's spend counts."""

    platform: str
    workspace_id: str
    channel_id: str
    user_id: str

    def scopes(self) -> tuple[tuple[Scope, str], ...]:
        return ((Scope.CHANNEL, self.channel_id), (Scope.USER, self.user_id), (Scope.WORKSPACE, EACH))


@dataclass(frozen=True, slots=True)
class SpendSnapshot:
    """What one place has spent and reserved, and its turns in the last minute."""

    spent: Mapping[tuple[Scope, str], int]  # (scope, period key) -> micros
    held: Mapping[Scope, int]
    recent_by_user: int
    recent_in_channel: int

    def spent_in(self, scope: Scope, period: Period, moment: datetime) -> int:
        return self.spent.get((scope, period_key(period, moment)), 0)


Choice = tuple[T, int | None]  # (the decision, micros to reserve or None to start nothing)


StoredLimits = dict[tuple[Scope, str], StoredLimit]

# Limits are read on every turn and change rarely: each instance keeps a channel's rows this
# long (a change made on another instance applies within this time; on this one, at once).
LIMITS_CACHE_SECONDS = 5.0


class SpendStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._limits_cache: TtlCache[ChannelKey, StoredLimits] = TtlCache(LIMITS_CACHE_SECONDS)
        upsert = db.insert(spend_totals)  # built once: its compiled form stays cached (see store/turns.py)
        self._add_spend = upsert.on_conflict_do_update(
            index_elements=["platform", "workspace_id", "scope", "scope_id", "period_key"],
            set_={"micros": spend_totals.c.micros + upsert.excluded.micros},
        )

    async def limit_rows(self, channel: ChannelKey) -> StoredLimits:
        """The limits set for `channel` and for its workspace (user and workspace rows)."""
        return await self._limits_cache.get_or_load(channel, lambda: self._read_limits(channel))

    async def _read_limits(self, channel: ChannelKey) -> StoredLimits:
        async with self._db.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    spend_limits.c.scope, spend_limits.c.scope_id, spend_limits.c.period, spend_limits.c.micros
                ).where(
                    spend_limits.c.platform == channel.platform,
                    spend_limits.c.workspace_id == channel.workspace_id,
                    spend_limits.c.scope_id.in_([channel.channel_id, EACH]),
                )
            )
            found: StoredLimits = {}
            for scope, scope_id, period, micros in rows:
                if (scope == Scope.CHANNEL.value) == (scope_id != EACH):
                    found[(Scope(scope), scope_id)] = StoredLimit(Period(period), micros)
            return found

    async def set_limit(
        self, channel: ChannelKey, scope: Scope, limit: StoredLimit | None, actor_id: str, shown: str
    ) -> None:
        """Set a limit (None: back to the default), with an audit row saying `shown`."""
        scope_id = channel.channel_id if scope is Scope.CHANNEL else EACH
        key = (
            spend_limits.c.platform == channel.platform,
            spend_limits.c.workspace_id == channel.workspace_id,
            spend_limits.c.scope == scope.value,
            spend_limits.c.scope_id == scope_id,
        )
        moment = now()
        async with self._db.write() as conn:
            old = (await conn.execute(select(spend_limits.c.period, spend_limits.c.micros).where(*key))).first()
            await conn.execute(delete(spend_limits).where(*key))
            if limit is not None:
                await conn.execute(
                    spend_limits.insert().values(
                        platform=channel.platform,
                        workspace_id=channel.workspace_id,
                        scope=scope.value,
                        scope_id=scope_id,
                        period=limit.period.value,
                        micros=limit.micros,
                        updated_by=actor_id,
                        updated_at=moment,
                    )
                )
            before = None if old is None else f"{old.micros if old.micros is not None else 'off'}/{old.period}"
            await conn.execute(audit_entry(channel, actor_id, f"budget {scope.value}", before, shown))
        self._limits_cache.clear()  # after the commit; a workspace row affects every channel

    async def hold(
        self,
        place: SpendPlace,
        moment: datetime,
        rate_since: datetime,
        hold_until: datetime,
        choose: Callable[[SpendSnapshot], Choice[T]],
        *,
        spend: bool = True,
        rates: bool = True,
    ) -> tuple[T, int | None]:
        """Read `place`'s counts, let `choose` decide, and when it asks for a reservation,
        write it (and the turn's rate event), all under the workspace's lock. Returns the
        decision and the reservation's id. Without `spend` (no limit applies) spend and
        reservations are neither read nor written; without `rates`, rate events neither."""
        async with self._db.write() as conn:
            await self._lock(conn, place)
            snapshot = await self._snapshot(conn, place, moment, rate_since, spend=spend, rates=rates)
            decision, micros = choose(snapshot)
            if micros is None:
                return decision, None
            where = {
                "platform": place.platform,
                "workspace_id": place.workspace_id,
                "channel_id": place.channel_id,
                "user_id": place.user_id,
            }
            if rates:
                await conn.execute(rate_events.insert().values(**where, at=moment))
            if not spend:
                return decision, None
            inserted = spend_holds.insert().values(**where, micros=micros, expires_at=hold_until)
            hold_id = (await conn.execute(inserted.returning(spend_holds.c.id))).scalar_one()
            return decision, int(hold_id)

    async def _lock(self, conn: AsyncConnection, place: SpendPlace) -> None:
        """The workspace's spend lock, until the transaction ends (SQLite: the write lock already)."""
        if not self._db.is_sqlite:
            key = advisory_key(f"spend:{place.platform}:{place.workspace_id}")
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    async def _snapshot(
        self,
        conn: AsyncConnection,
        place: SpendPlace,
        moment: datetime,
        rate_since: datetime,
        *,
        spend: bool,
        rates: bool,
    ) -> SpendSnapshot:
        # Reservations past their expiry (their instance died) and events older than the rate
        # window no longer count; the pruning job deletes them (`forget_expired`).
        spent: dict[tuple[Scope, str], int] = {}
        held = (0, 0, 0)
        recent = (0, 0)
        if spend:
            keys = [(s.value, sid) for s, sid in place.scopes()]
            spent_rows = await conn.execute(
                select(spend_totals.c.scope, spend_totals.c.period_key, spend_totals.c.micros).where(
                    spend_totals.c.platform == place.platform,
                    spend_totals.c.workspace_id == place.workspace_id,
                    tuple_(spend_totals.c.scope, spend_totals.c.scope_id).in_(keys),
                    spend_totals.c.period_key.in_([period_key(p, moment) for p in Period]),
                )
            )
            spent = {(Scope(scope), key): int(micros) for scope, key, micros in spent_rows}
            held = tuple(
                (
                    await conn.execute(
                        select(
                            _sum_if(spend_holds.c.channel_id == place.channel_id, spend_holds.c.micros),
                            _sum_if(spend_holds.c.user_id == place.user_id, spend_holds.c.micros),
                            func.coalesce(func.sum(spend_holds.c.micros), 0),
                        ).where(
                            spend_holds.c.platform == place.platform,
                            spend_holds.c.workspace_id == place.workspace_id,
                            spend_holds.c.expires_at > moment,
                        )
                    )
                ).one()
            )
        if rates:
            recent = tuple(
                (
                    await conn.execute(
                        select(
                            _sum_if(rate_events.c.user_id == place.user_id, 1),
                            _sum_if(rate_events.c.channel_id == place.channel_id, 1),
                        ).where(
                            rate_events.c.platform == place.platform,
                            rate_events.c.workspace_id == place.workspace_id,
                            rate_events.c.at > rate_since,
                        )
                    )
                ).one()
            )
        return SpendSnapshot(
            spent,
            {Scope.CHANNEL: int(held[0]), Scope.USER: int(held[1]), Scope.WORKSPACE: int(held[2])},
            recent_by_user=int(recent[0]),
            recent_in_channel=int(recent[1]),
        )

    async def release(self, hold_id: int | None, place: SpendPlace, micros: int, moment: datetime) -> None:
        """A turn ended: drop its reservation and add what it cost, in one transaction (so its
        spend is never counted twice nor not at all)."""
        async with self._db.write() as conn:
            if hold_id is not None:
                # Under the same lock as `hold`: its reads (spend, then reservations) must never fall
                # between this transaction's commit, or a turn would see neither the spend nor the hold.
                await self._lock(conn, place)
                await conn.execute(delete(spend_holds).where(spend_holds.c.id == hold_id))
            if micros <= 0:
                return
            rows = [
                {
                    "platform": place.platform,
                    "workspace_id": place.workspace_id,
                    "scope": scope.value,
                    "scope_id": scope_id,
                    "period_key": period_key(period, moment),
                    "micros": micros,
                }
                for scope, scope_id in place.scopes()
                for period in Period
            ]
            await conn.execute(self._add_spend, rows)  # a list of rows: one cached statement, not `.values(rows)`

    async def spent(self, channel: ChannelKey, scope: Scope, period: Period, moment: datetime) -> int:
        """What a channel (or, with Scope.WORKSPACE, its workspace) spent in the period holding `moment`."""
        async with self._db.engine.connect() as conn:
            value = await conn.scalar(
                select(spend_totals.c.micros).where(
                    spend_totals.c.platform == channel.platform,
                    spend_totals.c.workspace_id == channel.workspace_id,
                    spend_totals.c.scope == scope.value,
                    spend_totals.c.scope_id == (channel.channel_id if scope is Scope.CHANNEL else EACH),
                    spend_totals.c.period_key == period_key(period, moment),
                )
            )
        return int(value or 0)

    async def claim_notice(self, key: str, until: datetime, moment: datetime) -> bool:
        """True the first time `key` is claimed, and again once `until` of the last claim has passed."""
        async with self._db.write() as conn:
            claimed = await conn.execute(
                self._db.insert(spend_notices)
                .values(key=key[:400], until=until)
                .on_conflict_do_update(
                    index_elements=["key"], set_={"until": until}, where=spend_notices.c.until <= moment
                )
                .returning(spend_notices.c.key)
            )
            return claimed.first() is not None

    async def forget_expired(self, moment: datetime, rate_since: datetime) -> None:
        """Drop what no longer counts anywhere: notices past their time, reservations past their
        expiry and rate events older than the rate window (for workspaces gone quiet)."""
        async with self._db.write() as conn:
            await conn.execute(delete(spend_notices).where(spend_notices.c.until <= moment))
            await conn.execute(delete(spend_holds).where(spend_holds.c.expires_at <= moment))
            await conn.execute(delete(rate_events).where(rate_events.c.at <= rate_since))


def _sum_if(condition: Any, value: Any) -> Any:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)
