"""TtlCache on a fake clock: expiry, the entry cap, and loads shared between callers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from bot.ttl import TtlCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Put:
    key: str
    value: int
    ttl: float | None = None


@dataclass(frozen=True)
class Tick:
    seconds: float


@dataclass(frozen=True)
class Get:
    key: str
    expected: int | None


@dataclass(frozen=True)
class Discard:
    key: str


class Clear:
    pass


Step = Put | Tick | Get | Discard | Clear

FULL: list[Step] = [Put("a", 1), Put("b", 2)]  # fills a cache of two

# (name, ttl, max_entries, steps)
SCENARIOS: list[tuple[str, float, int, list[Step]]] = [
    ("nothing put", 5, 10, [Get("a", None)]),
    ("fresh until the ttl", 5, 10, [Put("a", 1), Tick(4.999), Get("a", 1)]),
    ("expired at the ttl", 5, 10, [Put("a", 1), Tick(5), Get("a", None)]),
    ("a ttl of its own", 3600, 10, [Put("a", 1, ttl=60), Tick(59), Get("a", 1), Tick(1), Get("a", None)]),
    ("putting again restarts the ttl", 5, 10, [Put("a", 1), Tick(4), Put("a", 2), Tick(4), Get("a", 2)]),
    ("keys expire apart", 5, 10, [Put("a", 1), Tick(3), Put("b", 2), Tick(3), Get("a", None), Get("b", 2)]),
    ("full: the oldest goes", 300, 2, [*FULL, Put("c", 3), Get("a", None), Get("b", 2), Get("c", 3)]),
    ("full: a key put again is the newest", 300, 2, [*FULL, Put("a", 9), Put("c", 3), Get("a", 9), Get("b", None)]),
    ("full: replacing a key evicts nothing", 300, 2, [*FULL, Put("b", 3), Get("a", 1), Get("b", 3)]),
    ("discard", 5, 10, [Put("a", 1), Put("b", 2), Discard("a"), Get("a", None), Get("b", 2)]),
    ("discard of a missing key", 5, 10, [Discard("a"), Get("a", None)]),
    ("clear", 5, 10, [Put("a", 1), Put("b", 2), Clear(), Get("a", None), Get("b", None)]),
]


@pytest.mark.parametrize(("ttl", "max_entries", "steps"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_get_put_and_expiry(ttl: float, max_entries: int, steps: list[Step]) -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(ttl, max_entries=max_entries, clock=clock)
    for number, step in enumerate(steps):
        match step:
            case Put(key, value, entry_ttl):
                cache.put(key, value, ttl=entry_ttl)
            case Tick(seconds):
                clock.now += seconds
            case Get(key, expected):
                assert cache.get(key) == expected, f"step {number}: {step}"
            case Discard(key):
                cache.discard(key)
            case Clear():
                cache.clear()
        assert len(cache) <= max_entries


def test_get_tells_a_stored_none_from_a_missing_key_with_a_default() -> None:
    cache: TtlCache[str, int | None] = TtlCache(300, clock=FakeClock())
    missing = object()
    cache.put("U1", None)  # e.g. a user the platform would not describe
    assert cache.get("U1", missing) is None
    assert cache.get("U2", missing) is missing


@pytest.mark.parametrize(("ttl", "max_entries"), [(0, 10), (-1, 10), (5, 0)])
def test_nonsense_limits_are_refused(ttl: float, max_entries: int) -> None:
    with pytest.raises(ValueError):
        TtlCache(ttl, max_entries=max_entries)


class Loader:
    """Counts its loads; each waits for `release` (already set unless `held`)."""

    def __init__(self, *, held: bool = False, error: Exception | None = None) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.error = error
        if not held:
            self.release.set()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.calls


async def test_get_or_load_loads_once_then_serves_from_the_cache_until_expiry() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(5, clock=clock)
    load = Loader()
    assert await cache.get_or_load("a", load) == 1
    clock.now += 4
    assert await cache.get_or_load("a", load) == 1
    assert load.calls == 1
    clock.now += 1
    assert await cache.get_or_load("a", load) == 2
    assert cache.get("a") == 2


async def test_callers_asking_while_a_key_loads_share_that_one_load() -> None:
    cache: TtlCache[str, int] = TtlCache(5, clock=FakeClock())
    load = Loader(held=True)
    callers = [asyncio.create_task(cache.get_or_load("a", load)) for _ in range(10)]
    await asyncio.sleep(0)
    load.release.set()
    assert await asyncio.gather(*callers) == [1] * 10
    assert load.calls == 1


async def test_different_keys_load_apart() -> None:
    cache: TtlCache[str, int] = TtlCache(5, clock=FakeClock())
    load = Loader()
    assert [await cache.get_or_load(key, load) for key in ("a", "b", "a")] == [1, 2, 1]


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(5, clock=FakeClock())
    load = Loader(held=True, error=ConnectionError("down"))
    callers = [asyncio.create_task(cache.get_or_load("a", load)) for _ in range(3)]
    await asyncio.sleep(0)
    load.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError] * 3
    assert load.calls == 1 and cache.get("a") is None
    load.error = None
    assert await cache.get_or_load("a", load) == 2, "the next caller loads again"


async def test_a_cancelled_caller_does_not_cancel_the_load_for_the_others() -> None:
    cache: TtlCache[str, int] = TtlCache(5, clock=FakeClock())
    load = Loader(held=True)
    first = asyncio.create_task(cache.get_or_load("a", load))
    second = asyncio.create_task(cache.get_or_load("a", load))
    await asyncio.sleep(0)
    first.cancel()
    load.release.set()
    assert await second == 1
    assert first.cancelled()
    assert cache.get("a") == 1 and load.calls == 1


@pytest.mark.parametrize("forget", ["discard", "clear"])
async def test_a_load_running_when_its_key_is_forgotten_is_not_kept(forget: str) -> None:
    """A change written while an old value was being read must not be hidden by that old value."""
    cache: TtlCache[str, int] = TtlCache(5, clock=FakeClock())
    stale = Loader(held=True)
    waiting = asyncio.create_task(cache.get_or_load("a", stale))
    await asyncio.sleep(0)
    cache.discard("a") if forget == "discard" else cache.clear()
    fresh = Loader()
    fresh.calls = 10
    assert await cache.get_or_load("a", fresh) == 11, "a caller after the change does not join the old load"
    stale.release.set()
    assert await waiting == 1, "the old load's own caller still gets its answer"
    assert cache.get("a") == 11
