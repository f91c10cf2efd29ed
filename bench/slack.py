"""The Slack HTTP path: a signed event into `POST /slack/events` until the answer
is complete at the fake Slack Web API (in this process), with the fake Anthropic
API in its own process.

- overhead per reply: that wall time minus the time Claude itself took (the
  streaming call, less the time our own rendering spent inside it);
- concurrent mentions at 1 s Claude latency: wall time until every answer
  is complete at the fake Slack.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench.harness import (
    ClaudeTimer,
    SlackStack,
    percentile,
    post_slack_event,
    slack_answered,
    slack_event,
    slack_stack,
)


async def _mention(http: aiohttp.ClientSession, stack: SlackStack, number: int) -> str:
    """Post an `app_mention` that starts a thread; returns the thread's ts."""
    ts = f"1800{number:06d}.000100"
    event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> question {number}", "ts": ts, "channel": "C1"}
    await post_slack_event(http, stack, slack_event(event, f"EvBench{number}"))
    return ts


async def slack_overhead(database_url: str, anthropic_url: str, replies: int = 200) -> tuple[float, float]:
    """(p50, p99) in ms."""
    samples = []
    async with slack_stack(database_url, anthropic_url) as stack, aiohttp.ClientSession() as http:
        timer = ClaudeTimer(stack.core)
        await slack_answered(stack, await _mention(http, stack, 0))  # warm-up
        for number in range(1, replies + 1):
            claude_before = timer.waiting
            started = time.perf_counter()
            await slack_answered(stack, await _mention(http, stack, number))
            samples.append(time.perf_counter() - started - (timer.waiting - claude_before))
    return percentile(samples, 50) * 1000, percentile(samples, 99) * 1000


async def slack_concurrent(database_url: str, anthropic_url: str, count: int = 200) -> float:
    """Seconds until `count` mentions, posted at once, are all answered at the fake Slack."""
    async with slack_stack(database_url, anthropic_url) as stack, aiohttp.ClientSession() as http:
        await slack_answered(stack, await _mention(http, stack, 0))
        started = time.perf_counter()
        threads = await asyncio.gather(*(_mention(http, stack, n) for n in range(1, count + 1)))
        await slack_answered(stack, *threads)
        return time.perf_counter() - started
