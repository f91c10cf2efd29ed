"""The `bot` command as an operator runs it: real subprocesses, an environment built
from scratch (so no real key or `.env` leaks in), a temp working directory, the
fake Anthropic API over HTTP and a real database (SQLite, or PostgreSQL when
TEST_DATABASE_URL is set).

Every run checks that the API key never shows on stdout or stderr; the runs use
LOG_LEVEL=DEBUG so that the most talkative logging is the one checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import load_config
from bot.schema import metadata
from fakes.anthropic_server import DEFAULT_MODELS, FakeAnthropic
from tests.conftest import API_KEY, POSTGRES_URL
from tests.processes import BOT, ROOT, free_port, text_of

LIMIT_SECONDS = 60.0  # a failure guard for one command, not a speed requirement
PYTHON_M_BOT = [sys.executable, "-m", "bot"]
FAKE_MODEL_IDS = sorted(str(m["id"]) for m in DEFAULT_MODELS)
needs_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="set TEST_DATABASE_URL to run PostgreSQL cases")


# --------------------------------------------------------------------------- helpers


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]

    def assert_one_line_error(self, *names: str) -> str:
        """Non-zero exit, nothing on stdout, one line on stderr naming each of `names`."""
        assert self.returncode != 0, self
        assert "Traceback" not in self.stderr, self.stderr
        error_lines = self.stderr.strip().splitlines()
        assert len(error_lines) == 1, f"expected one line on stderr, got:\n{self.stderr}"
        for name in names:
            assert name in error_lines[0], error_lines[0]
        assert self.stdout.strip() == "", self.stdout
        return error_lines[0]

    def assert_error(self, command: str, *names: str) -> str:
        """Non-zero exit, no traceback, and one `bot COMMAND: ...` line naming each of
        `names` (log lines may surround it at the configured level)."""
        assert self.returncode != 0, self
        assert "Traceback" not in self.stderr, self.stderr
        errors = [line for line in self.stderr.splitlines() if line.startswith(f"bot {command}: ")]
        assert len(errors) == 1, f"expected one `bot {command}:` line on stderr, got:\n{self.stderr}"
        for name in names:
            assert name in errors[0], errors[0]
        return errors[0]


def scratch_env(home: Path, **variables: str) -> dict[str, str]:
    """Only what a shell needs, plus the variables under test."""
    path = ":".join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", **variables}


URL_PASSWORD = "url-password-canary-4711"  # put into DATABASE_URL / ANTHROPIC_BASE_URL by some tests
OUTPUT_CANARIES = (API_KEY, URL_PASSWORD, "xoxe-1-refresh-canary-8080", "xoxp-1-user-canary-9090")


def assert_key_not_leaked(result: Result) -> None:
    """No key, token or password given to a command reaches its stdout or stderr (its logs)."""
    for canary in OUTPUT_CANARIES:
        assert canary not in result.stdout, f"{canary} was printed on stdout"
        assert canary not in result.stderr, f"{canary} was printed on stderr"


def with_password(url: str) -> str:
    """`url` with URL_PASSWORD as its password (the test PostgreSQL trusts any password)."""
    parsed = make_url(url)
    return parsed.set(username=parsed.username or "bot", password=URL_PASSWORD).render_as_string(hide_password=False)


async def run_bot(
    *args: str, env: Mapping[str, str], cwd: Path, stdin: str = "", command: Sequence[str] = BOT
) -> Result:
    """Run `bot ARGS` to completion while the event loop (and an in-process fake) keeps running."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), LIMIT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"`bot {' '.join(args)}` did not finish within {LIMIT_SECONDS} s") from None
    assert proc.returncode is not None
    result = Result(proc.returncode, out.decode(), err.decode())
    assert_key_not_leaked(result)
    return result


def run_bot_sync(*args: str, env: Mapping[str, str], cwd: Path, command: Sequence[str] = BOT) -> Result:
    """For commands that need nothing served by the test process."""
    done = subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=dict(env),
        input="",
        capture_output=True,
        text=True,
        timeout=LIMIT_SECONDS,
        check=False,
    )
    result = Result(done.returncode, done.stdout, done.stderr)
    assert_key_not_leaked(result)
    return result


async def poll_healthz(proc: asyncio.subprocess.Process, port: int) -> tuple[int, Any] | None:
    """The first 200 answer of `GET /healthz` as (status, json), or None if the
    process exits or 30 s pass first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while proc.returncode is None and loop.time() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return response.status, await response.json()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    return None


def is_postgres(url: str) -> bool:
    return not url.startswith("sqlite")


@contextlib.asynccontextmanager
async def scratch_postgres_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the TEST_DATABASE_URL server, dropped afterwards."""
    name = f"bot_cli_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(load_config(database_url=server_url).database_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The working directory of every command: empty, so no `.env` is read."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture
def chat_env(workdir: Path, database_url: str, fake_anthropic: FakeAnthropic) -> dict[str, str]:
    return scratch_env(
        workdir,
        ANTHROPIC_API_KEY=API_KEY,
        ANTHROPIC_BASE_URL=fake_anthropic.base_url,
        DATABASE_URL=database_url,
        LOG_LEVEL="DEBUG",
    )


# --------------------------------------------------------------------------- bot chat


async def test_chat_holds_a_two_turn_conversation_from_a_pipe(
    chat_env: dict[str, str], workdir: Path, fake_anthropic: FakeAnthropic
) -> None:
    def recall(body: dict[str, Any]) -> str:
        users = [m for m in body["messages"] if m["role"] == "user"]
        return f"Turn {len(users)}. Your first message was: {text_of(users[0]['content'])}"

    fake_anthropic.reply = recall

    result = await run_bot("chat", env=chat_env, cwd=workdir, stdin="hi\nwhat did I say first?\n")

    assert result.returncode == 0, result.stderr
    assert len(result.lines) == 2, result.stdout
    first, second = result.lines
    assert first.startswith("Turn 1.") and first.endswith("hi</message>")
    assert second.startswith("Turn 2.") and second.endswith("hi</message>"), "the second answer knows the first turn"

    requests = fake_anthropic.message_requests
    assert len(requests) == 2
    history = [(m["role"], text_of(m["content"])) for m in requests[1]["messages"]]
    assert [role for role, _ in history] == ["user", "assistant", "user"]
    assert history[0][1].endswith("hi</message>")
    assert history[1][1] == first, "the first answer is sent back as the assistant turn"
    assert history[2][1].endswith("what did I say first?</message>")


async def test_chat_claude_show_prints_the_model(
    chat_env: dict[str, str], workdir: Path, fake_anthropic: FakeAnthropic
) -> None:
    result = await run_bot("chat", env=chat_env, cwd=workdir, stdin="/claude show\n")
    assert result.returncode == 0, result.stderr
    assert "claude-sonnet-5-5" in result.stdout
    assert any("Model" in line and "claude-sonnet-5-5" in line for line in result.lines), result.stdout
    assert fake_anthropic.message_requests == [], "a command is not a message to Claude"


async def test_chat_claude_show_reflects_default_model_from_the_environment(
    chat_env: dict[str, str], workdir: Path
) -> None:
    env = {**chat_env, "DEFAULT_MODEL": "claude-opus-5-5"}
    result = await run_bot("chat", env=env, cwd=workdir, stdin="/claude show\n")
    assert result.returncode == 0, result.stderr
    assert any("Model" in line and "claude-opus-5-5" in line for line in result.lines), result.stdout


async def test_chat_refuses_an_unknown_model_and_lists_the_known_ones(
    chat_env: dict[str, str], workdir: Path, fake_anthropic: FakeAnthropic
) -> None:
    result = await run_bot("chat", env=chat_env, cwd=workdir, stdin="/claude model no-such-model\nhello\n")
    assert result.returncode == 0, result.stderr
    refusal = next(line for line in result.lines if "no-such-model" in line)
    assert "not a model I know" in refusal
    for model_id in FAKE_MODEL_IDS:  # the catalogue comes from the fake's models API
        assert model_id in refusal
    [request] = fake_anthropic.message_requests
    assert request["model"] == "claude-sonnet-5-5", "a refused model does not change the channel"


async def test_chat_model_command_switches_the_model_sent_to_claude(
    chat_env: dict[str, str], workdir: Path, fake_anthropic: FakeAnthropic
) -> None:
    stdin = "/claude model claude-haiku-5-5\nhello\n/claude show\n"
    result = await run_bot("chat", env=chat_env, cwd=workdir, stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert any("claude-haiku-5-5" in line and "now uses" in line for line in result.lines), result.stdout
    [request] = fake_anthropic.message_requests
    assert request["model"] == "claude-haiku-5-5"
    assert any("Model" in line and "claude-haiku-5-5" in line for line in result.lines), result.stdout


async def test_chat_with_a_rejected_key_says_so_without_echoing_the_key(
    chat_env: dict[str, str], workdir: Path
) -> None:
    wrong_key = "sk-ant-wrong-canary-5f5f5f5f"
    env = {**chat_env, "ANTHROPIC_API_KEY": wrong_key, "ANTHROPIC_LOG": "debug"}
    result = await run_bot("chat", env=env, cwd=workdir, stdin="hello\n")
    assert result.returncode == 0, result.stderr
    assert "API key was rejected" in result.stdout
    assert wrong_key not in result.stdout and wrong_key not in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- bot migrate


def test_migrate_creates_the_schema_on_an_empty_sqlite_path_and_is_idempotent(tmp_path: Path, workdir: Path) -> None:
    db = tmp_path / "fresh" / "sub" / "bot.db"  # neither the file nor its directory exist yet
    env = scratch_env(workdir, DATABASE_URL=f"sqlite:///{db}", LOG_LEVEL="DEBUG")

    first = run_bot_sync("migrate", env=env, cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "up to date" in first.stdout
    with contextlib.closing(sqlite3.connect(db)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {table.name for table in metadata.sorted_tables} <= tables
    assert revision

    # `python -m bot` works the same (this checkout's, as `BOT` runs)
    second = run_bot_sync("migrate", env={**env, "PYTHONPATH": str(ROOT)}, cwd=workdir, command=PYTHON_M_BOT)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(revision,)]


async def test_migrate_twice_on_the_test_database_exits_zero(database_url: str, workdir: Path) -> None:
    env = scratch_env(workdir, DATABASE_URL=database_url, LOG_LEVEL="DEBUG")
    if is_postgres(database_url):  # a password in the URL, logged at DEBUG nowhere
        env["DATABASE_URL"] = with_password(database_url)
    for _ in range(2):
        result = await run_bot("migrate", env=env, cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout


@needs_postgres
async def test_on_postgresql_chat_and_serve_refuse_an_unmigrated_schema_until_bot_migrate(
    fake_anthropic: FakeAnthropic, workdir: Path
) -> None:
    assert POSTGRES_URL is not None
    async with scratch_postgres_database(POSTGRES_URL) as url:
        env = scratch_env(
            workdir,
            ANTHROPIC_API_KEY=API_KEY,
            ANTHROPIC_BASE_URL=fake_anthropic.base_url,
            DATABASE_URL=url,
            LOG_LEVEL="DEBUG",
            HOST="127.0.0.1",
            PORT=str(free_port()),
        )
        for command in ("chat", "serve"):
            refused = await run_bot(command, env=env, cwd=workdir, stdin="hi\n")
            refused.assert_error(command, "run `bot migrate`")
        assert fake_anthropic.message_requests == []

        migrated = await run_bot("migrate", env=env, cwd=workdir)
        assert migrated.returncode == 0, migrated.stderr

        chat = await run_bot("chat", env=env, cwd=workdir, stdin="hi\n")
        assert chat.returncode == 0, chat.stderr
        assert len(chat.lines) == 1
        assert len(fake_anthropic.message_requests) == 1


# --------------------------------------------------------------------------- configuration errors


@pytest.mark.parametrize("command", ["chat", "serve"])
def test_without_an_api_key_the_command_exits_with_one_line_naming_it(
    command: str, tmp_path: Path, workdir: Path
) -> None:
    # At the default log level: with LOG_LEVEL=DEBUG, `bot serve` logs asyncio's
    # "Using selector" line before it checks the key.
    env = scratch_env(workdir, DATABASE_URL=f"sqlite:///{tmp_path}/bot.db", HOST="127.0.0.1", PORT=str(free_port()))
    result = run_bot_sync(command, env=env, cwd=workdir)
    line = result.assert_one_line_error("ANTHROPIC_API_KEY")
    assert line.startswith(f"bot {command}:")


@pytest.mark.parametrize("command", ["chat", "serve", "migrate"])
@pytest.mark.parametrize("url", ["mysql://user@db/chat", "not a url"])
def test_a_malformed_database_url_exits_with_one_line_naming_it(command: str, url: str, workdir: Path) -> None:
    env = scratch_env(
        workdir, ANTHROPIC_API_KEY=API_KEY, DATABASE_URL=url, LOG_LEVEL="DEBUG", HOST="127.0.0.1", PORT=str(free_port())
    )
    run_bot_sync(command, env=env, cwd=workdir).assert_one_line_error("DATABASE_URL")


def test_a_database_url_with_a_bad_port_exits_with_one_line_naming_it(workdir: Path) -> None:
    env = scratch_env(workdir, ANTHROPIC_API_KEY=API_KEY, DATABASE_URL="postgresql://app@127.0.0.1:notaport/chat")
    run_bot_sync("migrate", env=env, cwd=workdir).assert_one_line_error("DATABASE_URL")


@needs_postgres
async def test_a_postgres_url_with_sslmode_as_platforms_give_it_is_accepted(workdir: Path) -> None:
    assert POSTGRES_URL is not None
    async with scratch_postgres_database(POSTGRES_URL) as url:
        env = scratch_env(workdir, DATABASE_URL=url + "?sslmode=disable")
        result = await run_bot("migrate", env=env, cwd=workdir)
        assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- bot serve


async def test_serve_without_platform_credentials_serves_healthz_and_stops_on_sigterm(
    database_url: str, fake_anthropic: FakeAnthropic, workdir: Path
) -> None:
    port = free_port()
    env = scratch_env(
        workdir,
        ANTHROPIC_API_KEY=API_KEY,
        ANTHROPIC_BASE_URL=fake_anthropic.base_url,
        DATABASE_URL=with_password(database_url) if is_postgres(database_url) else database_url,
        LOG_LEVEL="DEBUG",
        HOST="127.0.0.1",
        PORT=str(port),
    )
    if is_postgres(database_url):  # PostgreSQL is migrated by the release phase, not by `bot serve`
        migrated = await run_bot("migrate", env=env, cwd=workdir)
        assert migrated.returncode == 0, migrated.stderr

    proc = await asyncio.create_subprocess_exec(
        *BOT,
        "serve",
        cwd=workdir,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    # Drain both pipes all along: DEBUG logging would fill a pipe buffer and block the service.
    readers = [asyncio.create_task(stream.read()) for stream in (proc.stdout, proc.stderr)]
    health: tuple[int, Any] | None = None
    returncode: int | None = None
    try:
        health = await poll_healthz(proc, port)
        if health is not None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                returncode = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        out, err = await asyncio.wait_for(asyncio.gather(*readers), 30)
    assert proc.returncode is not None
    result = Result(proc.returncode, out.decode(), err.decode())
    assert_key_not_leaked(result)

    assert health == (200, {"status": "ok"}), f"/healthz answered {health}; stderr:\n{result.stderr}"
    assert returncode == 0, f"exit status after SIGTERM: {returncode} (None: still running after 30 s)\n{result.stderr}"
    assert "Traceback" not in result.stderr
    credentials_line = next(line for line in result.stderr.splitlines() if "no platform credentials" in line)
    for variable in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN", "`bot chat` works without them"):
        assert variable in credentials_line
    assert f"127.0.0.1:{port}" in result.stderr
    assert fake_anthropic.message_requests == []


DEAD_DATABASE = f"postgresql://bot:{URL_PASSWORD}@127.0.0.1:{{port}}/chat"  # nothing listens there
DEAD_PROXY = f"http://proxy:{URL_PASSWORD}@127.0.0.1:{{port}}"


@pytest.mark.parametrize(
    "variables",
    [
        {"DATABASE_URL": DEAD_DATABASE},
        {"DATABASE_URL": DEAD_DATABASE, "SLACK_BOT_TOKEN": OUTPUT_CANARIES[2]},
        {"ANTHROPIC_BASE_URL": DEAD_PROXY, "SLACK_APP_TOKEN": OUTPUT_CANARIES[3]},
    ],
)
def test_a_failing_command_prints_no_secret_even_inside_a_url(variables: dict[str, str], workdir: Path) -> None:
    port = str(free_port())
    env = scratch_env(
        workdir,
        ANTHROPIC_API_KEY=API_KEY,
        LOG_LEVEL="DEBUG",
        **{"DATABASE_URL": f"sqlite:///{workdir}/bot.db", **{k: v.format(port=port) for k, v in variables.items()}},
    )
    result = run_bot_sync("migrate", env=env, cwd=workdir)  # asserts that no canary was printed
    if "DATABASE_URL" in variables:
        result.assert_error("migrate", "cannot")
