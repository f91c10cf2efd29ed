"""Housekeeping on a timer: forget conversations idle for THREAD_TTL_DAYS, messages
older than RETENTION_DAYS (when set) and event claims older than two days (Slack
retries stop after minutes)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.domain import PruneResult, now
from bot.store import Store

log = logging.getLogger(__name__)

EVENT_CLAIM_TTL = timedelta(days=2)


async def prune_once(
    store: Store, thread_ttl_days: int, retention_days: int | None = None, uninstall_grace_days: int = 7
) -> PruneResult:
    """Prune, unless another instance on the same database is pruning right now."""
    async with store.db.exclusive("prune") as mine:
        if not mine:
            log.info("another instance is pruning; skipping this run")
            return PruneResult(0, 0, 0)
        moment = now()
        result = await store.housekeeping.prune(
            idle_before=moment - timedelta(days=thread_ttl_days), events_before=moment - EVENT_CLAIM_TTL
        )
        await store.spend.forget_expired(moment, rate_since=moment - timedelta(minutes=1))
        departed = await store.workspaces.forget_departed(moment - timedelta(days=uninstall_grace_days))
        if departed:
            log.info("deleted the conversations of %d workspaces the app left", departed)
        if retention_days is not None:
            expired = await store.housekeeping.expire(moment - timedelta(days=retention_days))
            result = PruneResult(result.conversations, result.messages, result.events, expired)
    log.info(
        "pruned %d conversations, %d messages, %d event claims; %d messages past retention",
        result.conversations, result.messages, result.events, result.expired,
    )
    return result


class BackgroundJobs:
    """The service's timers (APScheduler): each job runs every so often, never two runs
    of one job at once; a missed run is not made up twice."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler()

    def every(self, seconds: float, job: Callable[[], Awaitable[object]], name: str, *, now: bool = False) -> None:
        """Run `job` every `seconds` (and once at start when `now`)."""
        first_run = {"next_run_time": datetime.now(UTC)} if now else {}  # (None would pause the job)
        self._scheduler.add_job(
            job, "interval", seconds=seconds, id=name, max_instances=1, coalesce=True, misfire_grace_time=60,
            **first_run,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
