"""`/healthz`'s database check: a database that refuses is down at once; one that is only
slow to answer (a busy pool under a burst) within the grace after a good check is busy, not
down, so an orchestrator does not restart an instance for working hard. The ping is the
check's input here; the fake clock stands in for time."""

from __future__ import annotations

import asyncio

import pytest

from bot.health import DatabaseHealth


class Database:
    def __init__(self) -> None:
        self.state = "up"

    async def ping(self) -> None:
        if self.state == "down":
            raise ConnectionRefusedError
        if self.state == "slow":
            await asyncio.sleep(1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("since_good", "state", "healthy"),
    [
        (10.0, "slow", True),  # busy: it answered 10 s ago
        (31.0, "slow", False),  # slow for longer than the grace: down
        (None, "slow", False),  # never answered since start
        (1.0, "down", False),  # refusing is down at once, however recent the last good check
    ],
)
async def test_slow_is_busy_within_the_grace_but_refused_is_down(
    since_good: float | None, state: str, healthy: bool
) -> None:
    database, clock = Database(), Clock()
    health = DatabaseHealth(database.ping, ttl_seconds=0.5, timeout_seconds=0.05, busy_grace_seconds=30.0, clock=clock)
    if since_good is not None:
        assert await health.is_healthy()
        clock.now += since_good
    database.state = state
    assert await health.is_healthy() is healthy
