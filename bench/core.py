"""Core benchmarks: the conversation service driven through a recording platform
against the fake Anthropic API (in its own process, so its work does not share
our event loop).

- overhead per turn: wall time of one turn minus the time spent inside the
  Claude call, text callbacks included (p50 / p99 over sequential turns);
- concurrent conversations at 1 s Claude latency: wall time until every
  answer is stored and shown, and the CPU per turn;
- cached share of input tokens over a multi-turn thread (cache reads / all input).
"""

from __future__ import annotations

import asyncio
import time

from bench.harness import (
    ClaudeTimer,
    answered,
    bench_core,
    converse,
    percentile,
    recording_platform,
    require_answered,
)
from fakes.recording import message, thread

LONG_SYSTEM_PROMPT = " ".join(["You are a careful assistant for an engineering team."] * 80)


async def overhead_per_turn(database_url: str, anthropic_url: str, turns: int = 300) -> tuple[float, float]:
    """(p50, p99) in ms."""
    async with bench_core(database_url, anthropic_url) as core:
        platform = recording_platform()
        timer = ClaudeTimer(core)
        samples = []
        for i in range(turns):
            where = thread(f"o{i % 30}")  # 30 threads, 10 turns each: history grows as in real use
            claude_before = timer.seconds
            started = time.perf_counter()
            await converse(core, platform, message(where, f"question {i}"))
            samples.append(time.perf_counter() - started - (timer.seconds - claude_before))
        require_answered(platform, turns)
    return percentile(samples, 50) * 1000, percentile(samples, 99) * 1000


async def concurrent_conversations(
    database_url: str, anthropic_url: str, count: int = 1000
) -> tuple[float, float]:
    """(seconds until `count` new conversations, started at once, are all answered; CPU ms per turn).
    The CPU is this process's (the core and its database threads; the fake API runs elsewhere)."""
    async with bench_core(database_url, anthropic_url) as core:
        platform = recording_platform()
        await converse(core, platform, message(thread("warm-up"), "hello"))  # connections, model list
        cpu_before = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(converse(core, platform, message(thread(f"c{i}"), "hi")) for i in range(count)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        if answered(platform) != count + 1:
            raise RuntimeError(f"only {answered(platform) - 1} of {count} conversations were answered")
    return elapsed, cpu / count * 1000


async def cached_share(database_url: str, anthropic_url: str, turns: int = 12) -> float:
    """Cache reads over all input tokens, across the Claude calls of one `turns`-long thread."""
    async with bench_core(database_url, anthropic_url, default_system_prompt=LONG_SYSTEM_PROMPT) as core:
        platform = recording_platform()
        timer = ClaudeTimer(core)
        where = thread("cache")
        for i in range(turns):
            await converse(core, platform, message(where, f"Follow-up question number {i}: what next?"))
        require_answered(platform, turns)
    replies = timer.replies
    read = sum(r.usage.cache_read_tokens for r in replies)
    total = sum(r.usage.total_input_tokens for r in replies)
    return read / total
