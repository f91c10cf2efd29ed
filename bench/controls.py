"""Conversation controls: how long a Stop takes, from the core accepting it to the answer
closed (shown with its note) and stored, while Claude is mid-stream (a 2,000-word answer
at one word per 10 ms)."""

from __future__ import annotations

import asyncio
import time

from bench.harness import bench_core, converse, percentile, recording_platform
from bot.controls import Presser
from fakes.recording import message, person, thread


async def stop_latency(database_url: str, anthropic_url: str, stops: int = 50) -> tuple[float, float]:
    """(p50, p99) in ms."""

    async def not_admin() -> bool:
        return False

    async with bench_core(database_url, anthropic_url) as core:
        platform = recording_platform()
        samples = []
        for i in range(stops):
            where = thread(f"stop{i}")
            answering = asyncio.create_task(converse(core, platform, message(where, "write a lot")))
            for _ in range(10_000):  # until Claude's text is arriving
                last = platform.replies[-1] if platform.replies else None
                if last is not None and last.deltas and last.message.thread == where:
                    break
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            result = await core.service.controls.stop(where, Presser(person(), not_admin))
            await answering
            samples.append(time.perf_counter() - started)
            if not result.done or not (platform.replies[-1].final or "").endswith("_(stopped)_"):
                raise RuntimeError("a stop did not end its answer")
    return percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
