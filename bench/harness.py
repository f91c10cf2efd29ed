"""What every benchmark stands on: the fake Anthropic API in its own process, a
throwaway database, the core or the whole Slack service opened on them, one timer
around the Claude client, and `percentile`.

This is the only bench module that reaches into the core (`Core.service`,
`Core.store`, `Core.claude`, `RunningService`): the measurement modules go through
the functions here, so a change to the core's entry points is a change here only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import migrate
from bot.app import Core, open_core, running_service
from bot.claude import ClaudeClient, ClaudeReply, ClaudeRequest, OnText
from bot.claude.response import OnProgress
from bot.config import Config, load_config
from bot.domain import IncomingMessage, PruneResult
from bot.scheduler import prune_once
from bot.store import create_engine
from fakes.recording import RecordingPlatform
from fakes.slack_server import FakeSlack, event_body, sign_request

API_KEY = "bench-key"
SIGNING_SECRET = "bench-signing-secret"
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE_KINDS = ("sqlite", "postgresql")
ECHO_PREFIX = "You said"  # how the fake Anthropic API starts an echoed answer (no --reply-words)
NEVER_ANSWERED_SECONDS = 600.0  # so a broken path fails instead of hanging; far above any real run


# -- the fake Anthropic API ---------------------------------------------------------------------


@contextlib.contextmanager
def fake_anthropic_process(latency: float, reply_words: int = 0, chunk_delay: float = 0.0) -> Iterator[str]:
    """The fake API as a child process, so its work does not share our event loop; yields its base URL."""
    args = [sys.executable, "-m", "fakes.anthropic_server", "--port", "0", "--latency", str(latency)]
    args += ["--api-key", API_KEY]
    if reply_words:
        args += ["--reply-words", str(reply_words)]
    if chunk_delay:
        args += ["--chunk-delay", str(chunk_delay)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"fake Anthropic did not start: {base_url!r}")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- databases ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[str | None]:
    """A fresh database URL of `kind` ("sqlite" or "postgresql"), or None when it is not available here."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    except (OSError, asyncpg.PostgresError):
        yield None
        return
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def bench_config(database_url: str, anthropic_url: str, **overrides: Any) -> Config:
    """Operator configuration for a benchmark: the fake API, and a Claude semaphore that never queues."""
    return load_config(
        anthropic_api_key=API_KEY,
        anthropic_base_url=anthropic_url,
        database_url=database_url,
        max_concurrent_claude_calls=2000,
        # One benchmark person sends far more than a person would.
        **{"rate_user_per_minute": 0, "rate_channel_per_minute": 0, **overrides},
    )


async def migrated(config: Config) -> None:
    """The release phase's job, as on a deployment (PostgreSQL is never migrated by start-up)."""
    engine = create_engine(config.database_url)
    await migrate.upgrade(engine)
    await engine.dispose()


# -- the core, driven through a recording platform -----------------------------------------------


@contextlib.asynccontextmanager
async def bench_core(database_url: str, anthropic_url: str, **overrides: Any) -> AsyncIterator[Core]:
    """The conversation core on a migrated database; `overrides` are operator configuration values."""
    config = bench_config(database_url, anthropic_url, **overrides)
    await migrated(config)
    core = await open_core(config)
    try:
        yield core
    finally:
        await core.close()


def recording_platform() -> RecordingPlatform:
    """A platform with no wire that keeps every reply (`.replies`)."""
    return RecordingPlatform()


async def converse(core: Core, platform: RecordingPlatform, message: IncomingMessage) -> None:
    """One person's message through the core, until its answer is finished on `platform`."""
    await platform.deliver(core.service, message)


def answered(platform: RecordingPlatform) -> int:
    """How many replies on `platform` are finished answers from the fake API."""
    return sum(1 for reply in platform.replies if reply.final and reply.final.startswith(ECHO_PREFIX))


def require_answered(platform: RecordingPlatform, expected: int) -> None:
    """Figures from turns that were not answered would mean nothing."""
    got = answered(platform)
    if got != expected:
        raise RuntimeError(f"{got} of {expected} messages were answered")


def database_engine(core: Core) -> AsyncEngine:
    """The core's database, for writing benchmark data straight into the tables."""
    return core.store.engine


async def prune_stale(core: Core, thread_ttl_days: int) -> PruneResult:
    """One run of the housekeeping job, as the scheduler runs it."""
    return await prune_once(core.store, thread_ttl_days)


# -- the one Claude timer ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaudeCall:
    """One call of `ClaudeClient.stream`, timed."""

    seconds: float  # wall time inside the call
    rendering: float  # of which inside its text callbacks: our own work of showing the deltas
    reply: ClaudeReply | None  # None when the call raised

    @property
    def waiting(self) -> float:
        """Time spent waiting for Claude alone."""
        return self.seconds - self.rendering


class ClaudeTimer:
    """Wraps the core's `ClaudeClient.stream` and records every call (`calls`), with running
    totals: `seconds` (all time inside the call) and `waiting` (less our text callbacks)."""

    def __init__(self, core: Core) -> None:
        client: ClaudeClient = core.claude
        self._stream = client.stream
        self.calls: list[ClaudeCall] = []
        self.seconds = 0.0
        self.waiting = 0.0
        client.stream = self.stream  # type: ignore[method-assign]

    @property
    def replies(self) -> list[ClaudeReply]:
        return [call.reply for call in self.calls if call.reply is not None]

    async def stream(
        self, request: ClaudeRequest, on_text: OnText, on_progress: OnProgress | None = None
    ) -> ClaudeReply:
        rendering = 0.0

        async def timed(delta: str) -> None:
            nonlocal rendering
            started = time.perf_counter()
            try:
                await on_text(delta)
            finally:
                rendering += time.perf_counter() - started

        reply: ClaudeReply | None = None
        started = time.perf_counter()
        try:
            reply = await self._stream(request, timed, on_progress)
            return reply
        finally:
            call = ClaudeCall(time.perf_counter() - started, rendering, reply)
            self.calls.append(call)
            self.seconds += call.seconds
            self.waiting += call.waiting


# -- the Slack service over HTTP -----------------------------------------------------------------


@dataclass
class SlackStack:
    """`bot serve` with Slack over HTTP, talking to a fake Slack Web API in this process."""

    core: Core
    slack: FakeSlack
    port: int

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"


@contextlib.asynccontextmanager
async def slack_stack(database_url: str, anthropic_url: str) -> AsyncIterator[SlackStack]:
    async with FakeSlack() as slack:
        config = bench_config(
            database_url,
            anthropic_url,
            slack_bot_token=SecretStr(slack.bot_token or ""),
            slack_signing_secret=SecretStr(SIGNING_SECRET),
            slack_api_url=slack.api_url,
            host="127.0.0.1",
            port=0,
        )
        await migrated(config)
        async with running_service(config) as service:
            yield SlackStack(service.core, slack, service.port)


def slack_event(event: dict[str, Any], event_id: str) -> bytes:
    """The body of an Events API callback carrying `event`."""
    return json.dumps(event_body(event, event_id)).encode()


async def post_slack_event(http: aiohttp.ClientSession, stack: SlackStack, body: bytes) -> None:
    """Sign `body` as Slack would and post it to the service; Slack expects a 200."""
    headers = {"Content-Type": "application/json", **sign_request(SIGNING_SECRET, body)}
    async with http.post(stack.events_url, data=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"the service answered an event with HTTP {response.status}")


async def slack_answered(stack: SlackStack, *threads: str) -> None:
    """Until every thread has its complete answer at the fake Slack (one pass over the fake's
    store per poll, so waiting on many threads does not eat the CPU being measured)."""
    pending = set(threads)
    try:
        async with asyncio.timeout(NEVER_ANSWERED_SECONDS):
            while pending:
                complete = {
                    m.thread_ts
                    for m in stack.slack.messages
                    if not m.is_streaming and m.text.startswith(ECHO_PREFIX)
                }
                pending -= complete
                if pending:
                    await asyncio.sleep(0.0005 if len(pending) == 1 else 0.005)
    except TimeoutError:
        raise RuntimeError(f"{len(pending)} of {len(threads)} Slack threads were never answered") from None


# -- statistics -----------------------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(pct) - 1]
