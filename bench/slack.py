"""The Slack HTTP path: a signed event into `POST /slack/events` until the answer
is complete at the fake Slack Web API (in this process), with the fake Anthropic
API in its own process.

- overhead per reply: that wall time minus the time Claude itself took (the
  streaming call, less the time our own rendering spent inside it);
- 200 concurrent mentions at 1 s Claude latency: wall time until every answer
  is complete at the fake Slack.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from pydantic import SecretStr

from bench.core import API_KEY, percentile
from bot import migrate
from bot.app import RunningService, running_service
from bot.claude import ClaudeReply, ClaudeRequest, TextSink
from bot.config import load_config
from bot.store import create_engine
from fakes.slack_server import FakeSlack, event_body, sign_request

SIGNING_SECRET = "bench-signing-secret"


class ClaudeClock:
    """Adds up the time spent waiting for Claude: the streaming call minus the time
    its text callbacks (our Slack rendering) took."""

    def __init__(self, service: RunningService) -> None:
        self.seconds = 0.0
        self._stream = service.core.claude.stream
        service.core.claude.stream = self.stream  # type: ignore[method-assign]

    async def stream(self, request: ClaudeRequest, on_text: TextSink) -> ClaudeReply:
        rendering = 0.0

        async def timed(delta: str) -> None:
            nonlocal rendering
            started = time.perf_counter()
            await on_text(delta)
            rendering += time.perf_counter() - started

        started = time.perf_counter()
        try:
            return await self._stream(request, timed)
        finally:
            self.seconds += time.perf_counter() - started - rendering


@asynccontextmanager
async def slack_stack(database_url: str, anthropic_url: str) -> AsyncIterator[tuple[RunningService, FakeSlack]]:
    async with FakeSlack() as slack:
        config = load_config(
            anthropic_api_key=API_KEY,
            anthropic_base_url=anthropic_url,
            database_url=database_url,
            slack_bot_token=SecretStr(slack.bot_token or ""),
            slack_signing_secret=SecretStr(SIGNING_SECRET),
            slack_api_url=slack.api_url,
            host="127.0.0.1",
            port=0,
            max_concurrent_claude_calls=2000,
        )
        engine = create_engine(config.database_url)
        await migrate.upgrade(engine)
        await engine.dispose()
        async with running_service(config) as service:
            yield service, slack


async def _mention(http: aiohttp.ClientSession, port: int, number: int) -> str:
    ts = f"1800{number:06d}.000100"
    event = {"type": "app_mention", "user": "U1", "text": f"<@UBOT> question {number}", "ts": ts, "channel": "C1"}
    body = json.dumps(event_body(event, f"EvBench{number}")).encode()
    headers = {"Content-Type": "application/json", **sign_request(SIGNING_SECRET, body)}
    async with http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as response:
        assert response.status == 200, response.status
    return ts


async def _answered(slack: FakeSlack, *threads: str) -> None:
    """Until every thread has its complete answer (one pass over the fake's store per poll,
    so waiting on many threads does not eat the CPU being measured)."""
    pending = set(threads)
    while pending:
        complete = {
            m.thread_ts for m in slack.messages if not m.is_streaming and m.text.startswith("You said")
        }
        pending -= complete
        if pending:
            await asyncio.sleep(0.0005 if len(pending) == 1 else 0.005)


async def slack_overhead(database_url: str, anthropic_url: str, replies: int = 200) -> tuple[float, float]:
    samples = []
    async with slack_stack(database_url, anthropic_url) as (service, slack), aiohttp.ClientSession() as http:
        clock = ClaudeClock(service)
        await _answered(slack, await _mention(http, service.port, 0))  # warm-up
        for number in range(1, replies + 1):
            claude_before = clock.seconds
            started = time.perf_counter()
            await _answered(slack, await _mention(http, service.port, number))
            samples.append(time.perf_counter() - started - (clock.seconds - claude_before))
    return percentile(samples, 50) * 1000, percentile(samples, 99) * 1000


async def slack_concurrent(database_url: str, anthropic_url: str, count: int = 200) -> float:
    async with slack_stack(database_url, anthropic_url) as (service, slack), aiohttp.ClientSession() as http:
        await _answered(slack, await _mention(http, service.port, 0))
        started = time.perf_counter()
        threads = await asyncio.gather(*(_mention(http, service.port, n) for n in range(1, count + 1)))
        await _answered(slack, *threads)
        return time.perf_counter() - started
