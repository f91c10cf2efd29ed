"""A small in-memory cache whose entries expire, for values that are cheap to keep and
slow to fetch: the model list, per-channel settings, platform user profiles.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

Clock = Callable[[], float]
"""Seconds on a clock that never goes back (`time.monotonic`, or a fake in tests)."""

_MISSING = object()


class TtlCache(Generic[K, V]):
    """Values that expire `ttl` seconds after they were put, at most `max_entries` of them.

    When the cache is full, putting a new key evicts the entry put longest ago; with
    one TTL for every entry, that is the one closest to expiring anyway.
    `get_or_load` loads a missing or expired key once, however many callers ask for it
    while the load runs.
    """

    def __init__(self, ttl: float, *, max_entries: int = 10_000, clock: Clock = time.monotonic) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, not {ttl}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}  # key -> (expires at, value), oldest put first
        self._loading: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """Entries held, counting expired ones not yet dropped."""
        return len(self._entries)

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        """The value put for `key` if it has not expired, else `default`."""
        entry = self._entries.get(key)
        if entry is None:
            return default
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return default
        return value

    def put(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """Keep `value` for `ttl` seconds (the cache's own TTL unless given)."""
        self._entries.pop(key, None)  # a key put again becomes the newest
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock() + (self.ttl if ttl is None else ttl), value)

    def discard(self, key: K) -> None:
        """Forget `key`; a load of it already running will not store its result."""
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        """Forget everything; loads already running will not store their results."""
        self._entries.clear()
        self._loading.clear()

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value for `key`, calling `load()` and keeping its result when there is none.

        Callers that ask for `key` while it loads wait for that same load. If it raises,
        they all get the exception and nothing is kept. The load runs in a task of its
        own, so a caller that is cancelled does not cancel it for the others.
        """
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[return-value]  # only V is ever stored
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(load())
            self._loading[key] = loading
            # Added before any waiter's callback, so the value is kept before they resume.
            loading.add_done_callback(functools.partial(self._loaded, key))
        return await asyncio.shield(loading)

    def _loaded(self, key: K, loading: asyncio.Future[V]) -> None:
        failed = loading.cancelled() or loading.exception() is not None  # also marks an error as seen
        if self._loading.get(key) is not loading:
            return  # discarded or cleared while loading: the value may predate that
        del self._loading[key]
        if not failed:
            self.put(key, loading.result())
