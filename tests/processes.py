"""Helpers for tests (and benchmarks) that run the real `bot` command as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The `bot` command of this checkout, whichever checkout the virtualenv's editable install
# points at (a git worktree shares the main checkout's virtualenv).
BOT: list[str] = [
    sys.executable,
    "-c",
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bot.cli import main; sys.exit(main())",
]


LIMIT_SECONDS = 60.0  # a failure guard for each wait, not a speed requirement


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServeProcess:
    """One `bot serve` subprocess; both pipes are drained all along (a full pipe buffer would
    block the service)."""

    proc: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self, last: int = 80) -> str:
        return "\n".join(self.lines[-last:])

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace").rstrip())

    async def ready(self) -> None:
        await eventually(lambda: any("serving on" in line for line in self.lines), "`bot serve` to start", self)

    async def exited(self, within: float = LIMIT_SECONDS) -> int:
        code = await asyncio.wait_for(self.proc.wait(), within)
        await asyncio.wait_for(asyncio.gather(*self.readers), within)
        return code

    async def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        with contextlib.suppress(TimeoutError):
            await self.exited()

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or container dies."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.exited()
        assert self.proc.returncode == -signal.SIGKILL, (self.proc.returncode, self.output())


async def serve(env: Mapping[str, str], cwd: Path, command: Sequence[str] = (*BOT, "serve")) -> ServeProcess:
    """`bot serve` (or another server that says "serving on") started with exactly `env` (its
    PORT included); `ready()` waits for it."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    process = ServeProcess(proc, int(env["PORT"]))
    process.readers = [asyncio.create_task(process._drain(s)) for s in (proc.stdout, proc.stderr)]
    return process


async def eventually(
    condition: Callable[[], bool],
    what: str,
    process: ServeProcess | None = None,
    *,
    within: float = LIMIT_SECONDS,
    poll: float = 0.05,
) -> None:
    """Wait for `condition`, failing clearly if the process died or it never came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if process is not None and process.proc.returncode is not None:
            raise AssertionError(
                f"`bot serve` exited ({process.proc.returncode}) while waiting for {what}\n{process.output()}"
            )
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting ({within:.0f} s) for {what}\n{process.output() if process else ''}")
        await asyncio.sleep(poll)


def text_of(content: Any) -> str:
    """The text of a Messages API `content`: a string or a list of blocks."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def conversation(request: dict[str, Any]) -> list[tuple[str, str]]:
    """The (role, text) turns of one Messages request."""
    return [(m["role"], text_of(m["content"])) for m in request["messages"]]
