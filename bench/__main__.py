"""`make bench`: figures, not tests. One table, SQLite and PostgreSQL side by side.

    python -m bench                         every benchmark, both databases (minutes)
    python -m bench --only slack-overhead   one benchmark (repeat --only for more)
    python -m bench --quick                 tiny counts: shows that each benchmark runs, in seconds
    python -m bench --database sqlite       one column
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bench.burst import discord_burst, slack_burst, thinnest_burst
from bench.controls import stop_latency
from bench.core import cached_share, concurrent_conversations, overhead_per_turn
from bench.files import file_request_bytes
from bench.harness import DATABASE_KINDS, database, fake_anthropic_process
from bench.housekeeping import ignored_per_second, memory_after_many_conversations, prune_million
from bench.slack import slack_concurrent, slack_overhead
from bot.cli import event_loop_factory


@dataclass(frozen=True)
class Measurement:
    name: str  # for --only
    label: str  # the row of the table
    run: Callable[..., Awaitable[Any]]  # (database_url, anthropic_url, **counts) -> the figure
    show: Callable[[Any], str]
    latency: float = 0.0  # seconds the fake Anthropic API waits before each answer
    reply_words: int = 0  # 0: the fake echoes the question
    quick: dict[str, int] = field(default_factory=dict)  # counts for --quick
    chunk_delay: float = 0.0  # seconds the fake Anthropic API waits between text deltas


def _ms(value: tuple[float, float]) -> str:
    return f"{value[0]:.1f} / {value[1]:.1f}"


BURST_FIGURES = "ack max / p99 (s), last answer (s), peak Claude calls, CPU/mention (ms)"


def _burst(value: tuple[float, float, float, float, float]) -> str:
    slowest, p99, last, peak, cpu = value
    return f"{slowest:.2f} / {p99:.2f}, {last:.2f}, {peak:.0f}, {cpu:.1f}"


MEASUREMENTS = [
    Measurement(
        "overhead", "core: overhead per turn p50 / p99 (ms)", overhead_per_turn, _ms, quick={"turns": 3}
    ),
    Measurement(
        "concurrent",
        "core: 1,000 concurrent conversations, 1 s Claude: s / CPU per turn (ms)",
        concurrent_conversations,
        lambda v: f"{v[0]:.2f} / {v[1]:.1f}",
        latency=1.0,
        quick={"count": 5},
    ),
    Measurement(
        "cached-share",
        "core: cached share of input, 12-turn thread",
        cached_share,
        "{:.1%}".format,
        reply_words=250,
        quick={"turns": 3},
    ),
    Measurement(
        "file-bytes",
        "files: MB sent, 10 turns after a 2 MB PDF: file_id / inline (x)",
        file_request_bytes,
        lambda v: f"{v[0]:.1f} / {v[1]:.1f} ({v[2]:.1f}x)",
        quick={"turns": 2, "pdf_kb": 100},
    ),
    Measurement(
        "stop",
        "core: Stop -> answer closed and stored, p50 / p99 (ms)",
        stop_latency,
        _ms,
        reply_words=2000,
        chunk_delay=0.01,
        quick={"stops": 3},
    ),
    Measurement(
        "slack-overhead",
        "slack: event in -> reply visible, p50 / p99 (ms)",
        slack_overhead,
        _ms,
        quick={"replies": 3},
    ),
    Measurement(
        "slack-concurrent",
        "slack: 200 concurrent mentions, 1 s Claude (s)",
        slack_concurrent,
        "{:.2f}".format,
        latency=1.0,
        quick={"count": 5},
    ),
    Measurement(
        "slack-burst-200",
        "slack burst 200 (x2 deliveries), 1 s Claude: " + BURST_FIGURES,
        slack_burst,
        _burst,
        latency=1.0,
        quick={"count": 3},
    ),
    Measurement(
        "thinnest-burst-200",
        "  the same against the thinnest implementation (bench/thinnest.py): " + BURST_FIGURES,
        thinnest_burst,
        lambda v: "n/a (SQLite only)" if v is None else _burst(v),
        latency=1.0,
        quick={"count": 3},
    ),
    Measurement(
        "slack-burst-1000",
        "slack burst 1,000 (x2 deliveries), 1 s Claude: " + BURST_FIGURES,
        partial(slack_burst, count=1000),
        _burst,
        latency=1.0,
        quick={"count": 4},
    ),
    Measurement(
        "thinnest-burst-1000",
        "  the same 1,000 against the thinnest implementation: " + BURST_FIGURES,
        partial(thinnest_burst, count=1000),
        lambda v: "n/a (SQLite only)" if v is None else _burst(v),
        latency=1.0,
        quick={"count": 4},
    ),
    Measurement(
        "discord-burst",
        "discord burst 200 via the gateway, 1 s Claude: last answer (s) / CPU/message (ms)",
        discord_burst,
        lambda v: f"{v[0]:.2f} / {v[1]:.1f}",
        latency=1.0,
        quick={"count": 3},
    ),
    Measurement(
        "slack-ignored",
        "slack: ignored channel messages per second",
        ignored_per_second,
        "{:,.0f}".format,
        quick={"count": 20},
    ),
    Measurement(
        "memory",
        "memory: RSS after 1k turns -> +100k convs, 1k turns (MiB)",
        memory_after_many_conversations,
        lambda v: f"{v[0]:.0f} -> {v[1]:.0f}",
        quick={"turns": 5, "conversations": 50},
    ),
    Measurement(
        "prune",
        "prune 1M stale messages: s / reply p99 during (ms) / quiet",
        prune_million,
        lambda v: f"{v[0]:.1f} / {v[1]:.0f} / {v[2]:.0f}",
        quick={"stale_conversations": 50, "messages_each": 4, "quiet_turns": 3},
    ),
]


async def measure(measurement: Measurement, database_url: str, *, quick: bool = False) -> Any:
    """One measurement on `database_url`, against its own fake Anthropic process."""
    counts = measurement.quick if quick else {}
    with fake_anthropic_process(measurement.latency, measurement.reply_words, measurement.chunk_delay) as anthropic_url:
        return await measurement.run(database_url, anthropic_url, **counts)


async def run_column(kind: str, measurements: Sequence[Measurement], *, quick: bool) -> dict[str, str]:
    """Every measurement on a fresh database of `kind`: name -> the figure as printed."""
    column: dict[str, str] = {}
    for measurement in measurements:
        print(f"[{kind}] {measurement.name}: {measurement.label} ...", file=sys.stderr, flush=True)
        async with database(kind) as url:
            if url is None:
                column[measurement.name] = "n/a (no server)"
                continue
            column[measurement.name] = measurement.show(await measure(measurement, url, quick=quick))
    return column


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks: prints one table.")
    parser.add_argument(
        "--only",
        action="append",
        choices=[m.name for m in MEASUREMENTS],
        metavar="NAME",
        help="run only this benchmark (repeatable): " + ", ".join(m.name for m in MEASUREMENTS),
    )
    parser.add_argument(
        "--database", action="append", choices=DATABASE_KINDS, help="run on this database only (repeatable)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts: a smoke run in seconds; the figures mean nothing"
    )
    return parser.parse_args(argv)


HEADINGS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    measurements = [m for m in MEASUREMENTS if args.only is None or m.name in args.only]
    kinds = [kind for kind in DATABASE_KINDS if args.database is None or kind in args.database]
    results = {}
    for kind in kinds:  # on the event loop `bot serve` runs on (uvloop where installed)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            results[kind] = runner.run(run_column(kind, measurements, quick=args.quick))
    width = max(len(m.label) for m in measurements)
    if args.quick:
        print("quick run: tiny counts, so the figures only show that each benchmark runs\n")
    print(f"{'benchmark':<{width}}" + "".join(f" | {HEADINGS[kind]:>16}" for kind in kinds))
    print("-" * width + "".join(f"-|-{'-' * 16}" for _ in kinds))
    for m in measurements:
        print(f"{m.label:<{width}}" + "".join(f" | {results[kind][m.name]:>16}" for kind in kinds))


if __name__ == "__main__":
    main()
