"""`bot serve` as its own process, for the burst benchmarks: the figures are taken
from outside, as a platform sees the service (HTTP acks, answers at the fake
platform), and the service's CPU is read from the kernel for its process alone,
so the fakes and the load generator in this process are never counted.

The fake Anthropic API runs in its own process too (`fake_anthropic_process`);
its `/_fake/stats` gives the peak number of Claude calls in flight.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

import aiohttp

from bench.harness import API_KEY, NEVER_ANSWERED_SECONDS
from tests.processes import ServeProcess, eventually, free_port, serve

STARTUP_SECONDS = 120.0  # a failure guard only
ROOT = Path(__file__).resolve().parent.parent
# bench/thinnest.py as its own process (this checkout's, as for `bot`)
THINNEST = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.thinnest import main; main()",
]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted after ")"
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(service: ServeProcess) -> float:
    return process_cpu_seconds(service.proc.pid)


def service_environment(database_url: str, anthropic_url: str, home: Path, **settings: str) -> dict[str, str]:
    """An environment built from scratch, as an operator's: production defaults (INFO logs, the
    default Claude semaphore) except the rate limits, since one benchmark person sends the burst."""
    path = ":".join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        "PATH": path,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": anthropic_url,
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "RATE_USER_PER_MINUTE": "0",
        "RATE_CHANNEL_PER_MINUTE": "0",
        **settings,
    }


@contextlib.asynccontextmanager
async def service_process(
    env: Mapping[str, str], cwd: Path, command: Sequence[str] | None = None
) -> AsyncIterator[ServeProcess]:
    """`bot serve` (or `command`) running until it says "serving on"; SIGTERM on the way out."""
    service = await (serve(env, cwd) if command is None else serve(env, cwd, command))
    try:
        await until(lambda: any("serving on" in line for line in service.lines), "`bot serve` to start", service)
        yield service
    finally:
        await service.stop(signal.SIGTERM)
        if service.proc.returncode is None:
            await service.stop(signal.SIGKILL)


async def until(condition: Callable[[], bool], what: str, service: ServeProcess, poll: float = 0.005) -> None:
    """Wait for `condition` (polled), failing clearly if the service died or never got there."""
    await eventually(condition, what, service, within=max(STARTUP_SECONDS, NEVER_ANSWERED_SECONDS), poll=poll)


async def claude_peak(http: aiohttp.ClientSession, anthropic_url: str, *, reset: bool = False) -> int:
    """The most Messages requests the fake Anthropic API had in flight (since the last reset)."""
    if reset:
        async with http.post(anthropic_url + "/_fake/reset") as response:
            response.raise_for_status()
        return 0
    async with http.get(anthropic_url + "/_fake/stats") as response:
        return int((await response.json())["max_in_flight"])
