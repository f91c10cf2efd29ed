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
import json
import resource
import time
from datetime import timedelta

import aiohttp
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.core import TimedClaude, open_bench_core, percentile
from bench.slack import SIGNING_SECRET, slack_stack
from bot.scheduler import prune_once
from bot.schema import conversations, messages, processed_events
from bot.store import now
from fakes.recording import RecordingPlatform, message, thread
from fakes.slack_server import event_body, sign_request


async def ignored_per_second(database_url: str, anthropic_url: str, count: int = 3000) -> float:
    async with slack_stack(database_url, anthropic_url) as (service, _slack), aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{service.port}/slack/events"
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
            bodies.append(json.dumps(event_body(event, f"EvIgnored{number}")).encode())
        slots = asyncio.Semaphore(32)

        async def post(body: bytes) -> None:
            async with slots:
                headers = {"Content-Type": "application/json", **sign_request(SIGNING_SECRET, body)}
                async with http.post(url, data=body, headers=headers) as response:
                    assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(post(body) for body in bodies))
        elapsed = time.perf_counter() - started
        async with service.core.store.engine.connect() as conn:
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
    moment = now() - (timedelta(days=60) if stale else timedelta(0))
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


async def memory_after_many_conversations(database_url: str, anthropic_url: str) -> tuple[float, float]:
    core = await open_bench_core(database_url, anthropic_url)
    adapter = RecordingPlatform()
    try:
        for i in range(1000):
            await adapter.deliver(core.service, message(thread(f"m{i % 200}"), f"turn {i}"))
        adapter.replies.clear()
        before = rss_mib()
        await _bulk_conversations(core.store.engine, 100_000, 2, stale=False)
        for i in range(1000):
            await adapter.deliver(core.service, message(thread(f"n{i}"), f"turn {i}"))
        adapter.replies.clear()
        return before, rss_mib()
    finally:
        await core.close()


async def prune_million(database_url: str, anthropic_url: str) -> tuple[float, float, float]:
    """(seconds to prune 1,000,000 stale messages, reply overhead p99 in ms while it ran, p99 without)."""
    core = await open_bench_core(database_url, anthropic_url)
    adapter = RecordingPlatform()
    timer = TimedClaude(core.claude)

    async def overheads(label: str, stop: asyncio.Event | None, turns: int = 200) -> list[float]:
        samples = []
        for i in range(turns):
            if stop is not None and stop.is_set():
                break
            before = timer.seconds
            started = time.perf_counter()
            await adapter.deliver(core.service, message(thread(f"{label}{i % 20}"), f"q{i}"))
            samples.append(time.perf_counter() - started - (timer.seconds - before))
        return samples

    try:
        quiet = await overheads("quiet", None)
        await _bulk_conversations(core.store.engine, 50_000, 20, stale=True)
        done = asyncio.Event()

        async def prune() -> float:
            started = time.perf_counter()
            try:
                result = await prune_once(core.store, 30)
            finally:
                done.set()
            if result.messages < 1_000_000:
                raise RuntimeError(f"pruned only {result.messages} messages")
            return time.perf_counter() - started

        pruning = asyncio.create_task(prune())
        busy: list[float] = []
        while not done.is_set():
            busy += await overheads("busy", done, turns=50)
        seconds = await pruning
        return seconds, percentile(busy, 99) * 1000, percentile(quiet, 99) * 1000
    finally:
        await core.close()
