"""`bot serve` as its own process, for the burst benchmarks: the figures are taken
from outside, as a platform sees the service (HTTP acks, answers at the fake
platform), and the service's CPU is read from the kernel for its process alone,
so the fakes and the load generator in this process are never counted.

The fake Anthropic API runs in its own process too (`fake_anthropic_process`);
its `/_fake/stats` gives the peak number of Claude calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.harness import API_KEY, NEVER_ANSWERED_SECONDS

ROOT = Path(__file__).resolve().parent.parent
# The `bot` command of this checkout (a git worktree shares the main checkout's virtualenv).
_RUN_BOT = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bot.cli import main; sys.exit(main())"
BOT = [sys.executable, "-c", _RUN_BOT]
STARTUP_SECONDS = 120.0  # a failure guard only


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted after ")"
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


@dataclass
class ServiceProcess:
    """One `bot serve`; both pipes are drained all along (a full pipe would block the service)."""

    proc: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace").rstrip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
async def service_process(env: Mapping[str, str], cwd: Path) -> AsyncIterator[ServiceProcess]:
    """`bot serve` running until it says "serving on"; SIGTERM on the way out."""
    proc = await asyncio.create_subprocess_exec(
        *BOT,
        "serve",
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    service = ServiceProcess(proc, int(env["PORT"]))
    service.readers = [asyncio.create_task(service._drain(s)) for s in (proc.stdout, proc.stderr)]
    try:
        await until(lambda: any("serving on" in line for line in service.lines), "`bot serve` to start", service)
        yield service
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await asyncio.gather(*service.readers)


async def until(condition: Callable[[], bool], what: str, service: ServiceProcess, poll: float = 0.005) -> None:
    """Wait for `condition` (polled), failing clearly if the service died or never got there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(STARTUP_SECONDS, NEVER_ANSWERED_SECONDS)
    while not condition():
        if service.proc.returncode is not None:
            raise RuntimeError(f"`bot serve` exited ({service.proc.returncode}) waiting for {what}\n{service.output()}")
        if loop.time() > deadline:
            raise RuntimeError(f"gave up waiting for {what}\n{service.output()}")
        await asyncio.sleep(poll)


async def claude_peak(http: aiohttp.ClientSession, anthropic_url: str, *, reset: bool = False) -> int:
    """The most Messages requests the fake Anthropic API had in flight (since the last reset)."""
    if reset:
        async with http.post(anthropic_url + "/_fake/reset") as response:
            response.raise_for_status()
        return 0
    async with http.get(anthropic_url + "/_fake/stats") as response:
        return int((await response.json())["max_in_flight"])
