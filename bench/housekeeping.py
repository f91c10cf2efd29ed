"""Benchmarks of what surrounds the replies:

- ignored traffic: top-level channel messages (no mention) through the Slack HTTP
  path, per second, and a check that none of them wrote to the database;
- memory: resident set size after 1,000 turns, then again after 100,000 more
  conversations are stored and another 1,000 turns are answered (flat = nothing
  per conversation is kept in memory);
- pruning 1,000,000 stale messages, and the reply overhead p99 while it runs.
"""

from __future__ import annotations

import asyncio
import resource
import time
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import (
    ClaudeTimer,
    bench_core,
    converse,
    database_engine,
    percentile,
    post_slack_event,
    prune_stale,
    recording_platform,
    require_answered,
    slack_event,
    slack_stack,
)
from bot.schema import conversations, messages, processed_events
from fakes.recording import message, thread


async def ignored_per_second(database_url: str, anthropic_url: str, count: int = 3000) -> float:
    """Top-level channel messages the bot must ignore, handled per second (32 in flight)."""
    async with slack_stack(database_url, anthropic_url) as stack, aiohttp.ClientSession() as http:
        bodies = []
        for number in range(count):
            event = {
                "type": "message",
                "channel_type": "channel",
                "user": "U1",
                "text": f"chatter {number}",
                "ts": f"1900{number:06d}.000100",
                "channel": "C1",
            }
            bodies.append(slack_event(event, f"EvIgnored{number}"))
        slots = asyncio.Semaphore(32)

        async def post(body: bytes) -> None:
            async with slots:
                await post_slack_event(http, stack, body)

        started = time.perf_counter()
        await asyncio.gather(*(post(body) for body in bodies))
        elapsed = time.perf_counter() - started
        async with database_engine(stack.core).connect() as conn:
            for table in (conversations, messages, processed_events):
                written = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                if written:
                    raise RuntimeError(f"ignored traffic wrote {written} rows to {table.name}")
    return count / elapsed


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _bulk_conversations(engine: AsyncEngine, count: int, per_conversation: int, stale: bool) -> None:
    """Store `count` conversations of `per_conversation` turns each, straight into the tables."""
    moment = datetime.now(UTC) - (timedelta(days=60) if stale else timedelta(0))
    batch = 2000
    for start in range(0, count, batch):
        rows = [
            {
                "platform": "bench",
                "workspace_id": "W",
                "channel_id": "C",
                "thread_id": f"bulk{stale}{i}",
                "trim_noticed": False,
                "created_at": moment,
                "last_activity_at": moment,
            }
            for i in range(start, min(start + batch, count))
        ]
        async with engine.begin() as conn:
            result = await conn.execute(
                insert(conversations).returning(conversations.c.id, sort_by_parameter_order=True), rows
            )
            ids = [row.id for row in result]
            turns = [
                {
                    "conversation_id": i,
                    "role": "user" if n % 2 == 0 else "assistant",
                    "rank": 0,
                    "content": f"stored turn {n}",
                    "created_at": moment,
                }
                for i in ids
                for n in range(per_conversation)
            ]
            if turns:
                await conn.execute(insert(messages), turns)


async def memory_after_many_conversations(
    database_url: str, anthropic_url: str, turns: int = 1000, conversations: int = 100_000
) -> tuple[float, float]:
    """(RSS in MiB after `turns` turns, RSS after `conversations` more are stored and `turns` more answered)."""
    async with bench_core(database_url, anthropic_url) as core:
        platform = recording_platform()
        for i in range(turns):
            await converse(core, platform, message(thread(f"m{i % 200}"), f"turn {i}"))
        require_answered(platform, turns)
        platform.replies.clear()
        before = rss_mib()
        await _bulk_conversations(database_engine(core), conversations, 2, stale=False)
        for i in range(turns):
            await converse(core, platform, message(thread(f"n{i}"), f"turn {i}"))
        require_answered(platform, turns)
        platform.replies.clear()
        return before, rss_mib()


async def prune_million(
    database_url: str,
    anthropic_url: str,
    stale_conversations: int = 50_000,
    messages_each: int = 20,
    quiet_turns: int = 200,
) -> tuple[float, float, float]:
    """(seconds to prune `stale_conversations` x `messages_each` stale messages (1,000,000),
    reply overhead p99 in ms while it ran, p99 without)."""
    async with bench_core(database_url, anthropic_url) as core:
        platform = recording_platform()
        timer = ClaudeTimer(core)

        async def overheads(label: str, stop: asyncio.Event | None, turns: int) -> list[float]:
            samples = []
            for i in range(turns):
                if stop is not None and stop.is_set():
                    break
                before = timer.seconds
                started = time.perf_counter()
                await converse(core, platform, message(thread(f"{label}{i % 20}"), f"q{i}"))
                samples.append(time.perf_counter() - started - (timer.seconds - before))
            return samples

        quiet = await overheads("quiet", None, quiet_turns)
        await _bulk_conversations(database_engine(core), stale_conversations, messages_each, stale=True)
        done = asyncio.Event()
        stale_messages = stale_conversations * messages_each

        async def prune() -> float:
            started = time.perf_counter()
            try:
                result = await prune_stale(core, 30)
            finally:
                done.set()
            if result.messages < stale_messages:
                raise RuntimeError(f"pruned only {result.messages} of {stale_messages} messages")
            return time.perf_counter() - started

        pruning = asyncio.create_task(prune())
        busy: list[float] = []
        while not done.is_set():
            busy += await overheads("busy", done, turns=50)
        seconds = await pruning
        require_answered(platform, len(quiet) + len(busy))
        return seconds, percentile(busy, 99) * 1000, percentile(quiet, 99) * 1000
