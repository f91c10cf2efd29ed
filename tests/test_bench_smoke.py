"""`make bench` still runs: every benchmark once with tiny counts, on the test database
(SQLite, or PostgreSQL when TEST_DATABASE_URL is set). Figures are checked for being
figures, never for being fast: timings on a shared CI machine mean nothing."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import MEASUREMENTS, Measurement, measure
from bench.core import overhead_per_turn
from bench.harness import API_KEY
from fakes.anthropic_server import FakeAnthropic, default_reply

ROOT = Path(__file__).resolve().parent.parent


def numbers_in(figure: Any) -> list[float]:
    values = list(figure) if isinstance(figure, tuple) else [figure]
    assert values and all(isinstance(v, float | int) and not isinstance(v, bool) for v in values), figure
    return [float(v) for v in values]


@pytest.mark.parametrize("measurement", MEASUREMENTS, ids=[m.name for m in MEASUREMENTS])
async def test_each_benchmark_produces_its_figure(measurement: Measurement, database_url: str) -> None:
    # The measurements raise when a turn goes unanswered, a Slack thread never completes,
    # ignored traffic writes rows, or pruning misses stale messages.
    figure = await measure(measurement, database_url, quick=True)
    if measurement.name.startswith("thinnest") and not database_url.startswith("sqlite"):
        assert figure is None and measurement.show(figure) == "n/a (SQLite only)"
        return

    values = numbers_in(figure)
    assert all(math.isfinite(v) and v >= 0 for v in values), figure
    if measurement.name in ("concurrent", "slack-concurrent", "slack-ignored", "memory"):
        assert all(v > 0 for v in values), figure
    if measurement.name.startswith(("slack-burst", "thinnest-burst")):
        slowest, p99, last_answer, peak_claude_calls, _cpu = values
        assert 0 < p99 <= slowest and last_answer > 0, figure
        assert peak_claude_calls >= 1, figure  # the fake API saw the burst's requests
    if measurement.name == "discord-burst":
        assert values[0] > 0, figure
    if measurement.name == "cached-share":
        assert 0 < values[0] < 1, figure  # the long system prompt is read from the cache after the first turn
    assert any(ch.isdigit() for ch in measurement.show(figure))


def echo_except_question_1(body: Mapping[str, Any]) -> str:
    answer = default_reply(body)
    return "Something else entirely." if answer.endswith(">question 1</message>") else answer


async def test_a_benchmark_refuses_figures_from_unanswered_turns(database_url: str) -> None:
    async with FakeAnthropic(api_key=API_KEY, reply=echo_except_question_1) as anthropic:
        with pytest.raises(RuntimeError, match="2 of 3 messages were answered"):
            await overhead_per_turn(database_url, anthropic.base_url, turns=3)


def test_make_bench_prints_the_table() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--database", "sqlite", "--only", "overhead"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if " | " in line]
    assert rows[0].split(" | ")[1].strip() == "SQLite"
    label, figure = (cell.strip() for cell in rows[1].split(" | "))
    assert label == "core: overhead per turn p50 / p99 (ms)"
    p50, p99 = (float(part) for part in figure.split(" / "))
    assert 0 <= p50 <= p99
