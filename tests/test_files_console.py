"""`/file PATH` in `bot chat`: the real command, a local file, the fake Files API."""

from __future__ import annotations

from pathlib import Path

from fakes import sample_files as samples
from fakes.anthropic_server import FakeAnthropic
from tests.test_cli import chat_env, run_bot, workdir  # noqa: F401 (fixtures)


async def test_chat_file_attaches_a_local_file_to_the_next_message_only(
    chat_env: dict[str, str], workdir: Path, fake_anthropic: FakeAnthropic  # noqa: F811
) -> None:
    screenshot = workdir / "error.png"
    screenshot.write_bytes(samples.png())
    stdin = f"/file {screenshot}\nwhat is this error?\nthanks\n/file {workdir}/missing.pdf\n"

    result = await run_bot("chat", env=chat_env, cwd=workdir, stdin=stdin)

    assert result.returncode == 0, result.stderr
    assert result.lines[0] == "(attached error.png; it goes with your next message)"
    assert result.lines[-1] == f"(no such file: {workdir}/missing.pdf)"
    [file_id] = fake_anthropic.files.uploads
    first, second = fake_anthropic.message_requests
    assert first["messages"][0]["content"][0] == {"type": "image", "source": {"type": "file", "file_id": file_id}}
    assert second["messages"][0] == first["messages"][0], "the next turn references the same file"
    assert isinstance(second["messages"][-1]["content"], str), "the second message carries no file of its own"
