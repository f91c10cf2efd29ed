"""Regenerate, Continue and Stop together with the other features: files, spend limits and
Discord's reply-mode links. Recording platform -> service -> store -> real SDK -> fake Anthropic;
prices from a PRICES_FILE at $1,000 per million tokens, as in `test_spend.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import Core
from bot.config import Config
from bot.controls import Presser
from bot.domain import IncomingMessage
from fakes import sample_files as samples
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, person, thread
from tests.test_files import blocks_of, with_files

ALICE = person("U1", "Alice")


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."claude-sonnet-5-5"]\ninput = 1000\noutput = 1000\n')
    return config.model_copy(update={"prices_file": prices})


async def _anyone() -> bool:
    return False


async def cut_off_answer(
    core: Core, adapter: RecordingPlatform, fake: FakeAnthropic, incoming: IncomingMessage
) -> int:
    fake.queue_reply("the first half", stop_reason="max_tokens")
    await adapter.deliver(core.service, incoming)
    [answer] = [t for t in (await core.store.turns.load_history(incoming.thread)).turns if t.role == "assistant"]
    return answer.id


async def press_continue(core: Core, adapter: RecordingPlatform, answer_id: int) -> None:
    result = await core.service.controls.continue_answer(answer_id, Presser(ALICE, _anyone), adapter.surface)
    assert result.done, result.notice
    await core.service.tasks.idle()


async def test_continue_sends_the_files_of_the_conversation_as_every_other_request_does(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread("files.1")
    asked = with_files(adapter, message(where, "describe this"), ("shot.png", samples.png()))
    answer_id = await cut_off_answer(core, adapter, fake_anthropic, asked)
    [file_id] = fake_anthropic.files.uploads
    first = fake_anthropic.message_requests[-1]

    fake_anthropic.queue_reply("and the second half")
    await press_continue(core, adapter, answer_id)

    continued = fake_anthropic.message_requests[-1]
    assert continued is not first
    assert blocks_of(continued, "image") == [{"type": "image", "source": {"type": "file", "file_id": file_id}}]
    assert continued["messages"][0] == first["messages"][0], "the cached prefix is the same"
    last = [r for r in fake_anthropic.requests if r.path == "/v1/messages"][-1]
    assert "files-api-2025-04-14" in last.headers["anthropic-beta"]
    assert adapter.finals(where)[-1].startswith("and the second half")
