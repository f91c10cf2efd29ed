"""Housekeeping on a timer: forget conversations idle for THREAD_TTL_DAYS and
event claims older than two days (Slack retries stop after minutes)."""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.domain import PruneResult, now
from bot.store import Store

log = logging.getLogger(__name__)

EVENT_CLAIM_TTL = timedelta(days=2)


async def prune_once(store: Store, thread_ttl_days: int) -> PruneResult:
    """Prune, unless another instance on the same database is pruning right now."""
    async with store.db.exclusive("prune") as mine:
        if not mine:
            log.info("another instance is pruning; skipping this run")
            return PruneResult(0, 0, 0)
        moment = now()
        result = await store.housekeeping.prune(
            idle_before=moment - timedelta(days=thread_ttl_days), events_before=moment - EVENT_CLAIM_TTL
        )
    log.info(
        "pruned %d conversations, %d messages, %d event claims",
        result.conversations, result.messages, result.events,
    )
    return result


class Pruner:
    """Runs `prune_once` every `interval_minutes`; never two runs at once."""

    def __init__(self, store: Store, thread_ttl_days: int, interval_minutes: int) -> None:
        self._scheduler = AsyncIOScheduler()
        self._scheduler.add_job(
            prune_once,
            "interval",
            minutes=interval_minutes,
            args=(store, thread_ttl_days),
            id="prune",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=60,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
