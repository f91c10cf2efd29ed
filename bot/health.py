"""`GET /healthz`'s database check, cheap however often it is asked and still honest.

A load balancer, an orchestrator and a monitor may each poll every second, on every
instance: one database round trip per request adds up, and a slow database would pile
the checks up. A healthy answer is kept `ttl_seconds` (2 s), and checks that arrive while
one is running wait for that one. A failure is never kept: while the database is down,
each check tries again (one at a time), so the first check after it is back says so.
A check that only times out (the connection pool busy under a burst, a slow disk) within
`busy_grace_seconds` of a good one is "busy", not "down": an orchestrator must not
restart an instance for being busy. A refused or reset connection is "down" at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.ttl import Clock, TtlCache

log = logging.getLogger(__name__)

HEALTH_TTL_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 5.0
BUSY_GRACE_SECONDS = 30.0


class DatabaseHealth:
    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        *,
        ttl_seconds: float = HEALTH_TTL_SECONDS,
        timeout_seconds: float = PING_TIMEOUT_SECONDS,
        busy_grace_seconds: float = BUSY_GRACE_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._ping = ping
        self._timeout = timeout_seconds
        self._busy_grace = busy_grace_seconds
        self._last_good: float | None = None
        self.clock = clock  # (a fake in tests)
        self._healthy: TtlCache[str, bool] = TtlCache(ttl_seconds, max_entries=1, clock=lambda: self.clock())
        self.pings = 0  # round trips made, for tests and benchmarks

    async def is_healthy(self) -> bool:
        try:
            return await self._healthy.get_or_load("database", self._check)
        except TimeoutError:
            busy = self._last_good is not None and self.clock() - self._last_good <= self._busy_grace
            log.warning("health check: the database is slow to answer (%s)", "busy" if busy else "down")
            return busy
        except Exception as exc:  # any other failure means "not healthy", said without details
            log.warning("health check failed: %s", type(exc).__name__)
            return False

    async def _check(self) -> bool:
        self.pings += 1
        await asyncio.wait_for(self._ping(), timeout=self._timeout)
        self._last_good = self.clock()
        return True
