"""Core benchmarks: the conversation service driven through a recording adapter
against the fake Anthropic API, which runs in its own process so its work does
not share our event loop. Prints one table, SQLite and PostgreSQL side by side.

- overhead per turn: wall time of one turn minus the time spent inside the
  Claude call (p50 / p99 over sequential turns);
- 1,000 concurrent conversations at 1 s Claude latency: wall time until every
  answer is stored and shown;
- cached share of input tokens over a 12-turn thread (cache reads / all input).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg

from bot import migrate
from bot.app import Core, open_core
from bot.claude import ClaudeClient, ClaudeReply, ClaudeRequest, TextSink
from bot.config import load_config
from bot.store import create_engine
from fakes.recording import RecordingPlatform, message, thread

API_KEY = "bench-key"
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LONG_SYSTEM_PROMPT = " ".join(["You are a careful assistant for an engineering team."] * 80)


@contextlib.contextmanager
def fake_anthropic_process(latency: float, reply_words: int = 0) -> Iterator[str]:
    """The fake API as a child process; yields its base URL."""
    args = [sys.executable, "-m", "fakes.anthropic_server", "--port", "0", "--latency", str(latency)]
    args += ["--api-key", API_KEY]
    if reply_words:
        args += ["--reply-words", str(reply_words)]
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


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[str | None]:
    """A fresh database URL of `kind`, or None when it is not available here."""
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


class TimedClaude:
    """Wraps the Claude client's `stream` to add up the time spent inside it."""

    def __init__(self, client: ClaudeClient) -> None:
        self._stream = client.stream
        self.seconds = 0.0
        client.stream = self.stream  # type: ignore[method-assign]

    async def stream(self, request: ClaudeRequest, on_text: TextSink) -> ClaudeReply:
        started = time.perf_counter()
        try:
            return await self._stream(request, on_text)
        finally:
            self.seconds += time.perf_counter() - started


async def open_bench_core(database_url: str, base_url: str, **overrides: Any) -> Core:
    config = load_config(
        anthropic_api_key=API_KEY,
        anthropic_base_url=base_url,
        database_url=database_url,
        max_concurrent_claude_calls=2000,
        **overrides,
    )
    engine = create_engine(config.database_url)
    await migrate.upgrade(engine)  # the release phase's job, as on a deployment
    await engine.dispose()
    return await open_core(config)


async def overhead_per_turn(database_url: str, base_url: str, turns: int = 300) -> tuple[float, float]:
    core = await open_bench_core(database_url, base_url)
    adapter = RecordingPlatform()
    timer = TimedClaude(core.claude)
    samples = []
    try:
        for i in range(turns):
            where = thread(f"o{i % 30}")  # 30 threads, 10 turns each: history grows as in real use
            before_claude = timer.seconds
            started = time.perf_counter()
            await adapter.deliver(core.service, message(where, f"question {i}"))
            samples.append(time.perf_counter() - started - (timer.seconds - before_claude))
    finally:
        await core.close()
    return percentile(samples, 50) * 1000, percentile(samples, 99) * 1000


async def concurrent_conversations(database_url: str, base_url: str, count: int = 1000) -> float:
    core = await open_bench_core(database_url, base_url)
    adapter = RecordingPlatform()
    try:
        await adapter.deliver(core.service, message(thread("warm-up"), "hello"))  # connections, model list
        started = time.perf_counter()
        await asyncio.gather(*(adapter.deliver(core.service, message(thread(f"c{i}"), "hi")) for i in range(count)))
        elapsed = time.perf_counter() - started
        answered = sum(1 for r in adapter.replies if r.final and r.final.startswith("You said"))
        if answered != count + 1:
            raise RuntimeError(f"only {answered - 1} of {count} conversations were answered")
    finally:
        await core.close()
    return elapsed


async def cached_share(database_url: str, base_url: str, turns: int = 12) -> float:
    core = await open_bench_core(database_url, base_url, default_system_prompt=LONG_SYSTEM_PROMPT)
    adapter = RecordingPlatform()
    replies: list[ClaudeReply] = []
    original = core.claude.stream

    async def recording_stream(request: ClaudeRequest, on_text: TextSink) -> ClaudeReply:
        reply = await original(request, on_text)
        replies.append(reply)
        return reply

    core.claude.stream = recording_stream  # type: ignore[method-assign]
    try:
        where = thread("cache")
        for i in range(turns):
            await adapter.deliver(core.service, message(where, f"Follow-up question number {i}: what next?"))
    finally:
        await core.close()
    read = sum(r.usage.cache_read_tokens for r in replies)
    total = sum(r.usage.total_input_tokens for r in replies)
    return read / total


def percentile(samples: list[float], pct: float) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(pct) - 1]


def _ms(value: tuple[float, float]) -> str:
    return f"{value[0]:.1f} / {value[1]:.1f}"


async def run_column(kind: str) -> dict[str, str]:
    from bench.housekeeping import ignored_per_second, memory_after_many_conversations, prune_million
    from bench.slack import slack_concurrent, slack_overhead

    column: dict[str, str] = {}
    measurements: list[tuple[str, Callable[[str, str], Any], float, int, Callable[[Any], str]]] = [
        ("core: overhead per turn p50 / p99 (ms)", overhead_per_turn, 0.0, 0, _ms),
        ("core: 1,000 concurrent conversations, 1 s Claude (s)", concurrent_conversations, 1.0, 0, "{:.2f}".format),
        ("core: cached share of input, 12-turn thread", cached_share, 0.0, 250, "{:.1%}".format),
        ("slack: event in -> reply visible, p50 / p99 (ms)", slack_overhead, 0.0, 0, _ms),
        ("slack: 200 concurrent mentions, 1 s Claude (s)", slack_concurrent, 1.0, 0, "{:.2f}".format),
        ("slack: ignored channel messages per second", ignored_per_second, 0.0, 0, "{:,.0f}".format),
        (
            "memory: RSS after 1k turns -> +100k convs, 1k turns (MiB)",
            memory_after_many_conversations,
            0.0,
            0,
            lambda v: f"{v[0]:.0f} -> {v[1]:.0f}",
        ),
        (
            "prune 1M stale messages: s / reply p99 during (ms) / quiet",
            prune_million,
            0.0,
            0,
            lambda v: f"{v[0]:.1f} / {v[1]:.0f} / {v[2]:.0f}",
        ),
    ]
    for label, measure, latency, reply_words, show in measurements:
        async with database(kind) as url:
            if url is None:
                column[label] = "n/a (no server)"
                continue
            with fake_anthropic_process(latency, reply_words) as base_url:
                column[label] = show(await measure(url, base_url))
    return column


def main() -> None:
    results = {kind: asyncio.run(run_column(kind)) for kind in ("sqlite", "postgresql")}
    labels = list(results["sqlite"])
    width = max(len(label) for label in labels)
    print(f"{'benchmark':<{width}} | {'SQLite':>16} | {'PostgreSQL':>16}")
    print(f"{'-' * width}-|-{'-' * 16}-|-{'-' * 16}")
    for label in labels:
        print(f"{label:<{width}} | {results['sqlite'][label]:>16} | {results['postgresql'][label]:>16}")
