"""Features that meet: Regenerate, Continue, Stop, the read-back of replies, with files, spend limits and
Discord's reply-mode links. Recording platform -> service -> store -> real SDK -> fake Anthropic;
prices from a PRICES_FILE at $1,000 per million tokens, as in `test_spend.py`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from bot.app import Core
from bot.budgets import Period, Scope
from bot.config import Config
from bot.controls import Presser
from bot.domain import IncomingMessage, now
from fakes import anthropic_tools as blocks
from fakes import sample_files as samples
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, command, message, person, thread
from tests.test_files import blocks_of, with_files
from tests.test_spend import cost

ALICE = person("U1", "Alice")
ADMIN = person("ADMIN", "Ada")


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[models."claude-sonnet-5-5"]\ninput = 1000\noutput = 1000\n'
        '[models."claude-haiku-5-5"]\ninput = 1\noutput = 1\n'
    )
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


async def test_continue_is_counted_in_the_spend_and_stopped_at_a_limit(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread("spend.1")
    answer_id = await cut_off_answer(core, adapter, fake_anthropic, message(where, "write an essay"))
    fake_anthropic.queue_reply("and the second half", stop_reason="max_tokens")
    await press_continue(core, adapter, answer_id)
    assert len(fake_anthropic.usages) == 2
    expected = sum(cost(usage) for usage in fake_anthropic.usages)
    assert await core.store.spend.spent(where.channel, Scope.CHANNEL, Period.DAY, now()) == expected

    # A limit the channel has already passed: the next Continue makes no request.
    await adapter.run_command(core.service, command(where.channel, "budget channel 0.01/day", who=ADMIN))
    requests = len(fake_anthropic.message_requests)
    await press_continue(core, adapter, answer_id)
    assert len(fake_anthropic.message_requests) == requests, "no request past the limit"
    assert "spending limit has been reached" in adapter.finals(where)[-1]


async def test_a_stopped_answer_is_counted_in_the_spend(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    """Claude bills a stopped request (its input at least) though its usage never arrives: the
    answer counts an estimate, so asking and stopping again and again does not spend unseen."""
    where = thread("stop.1")
    fake_anthropic.queue_reply(" ".join(f"w{i}" for i in range(300)))
    fake_anthropic.chunk_delay = 0.02
    answering = asyncio.create_task(adapter.deliver(core.service, message(where, "write a lot " * 50)))
    while not (adapter.replies and adapter.replies[0].deltas):
        await asyncio.sleep(0.01)
    assert (await core.service.controls.stop(where, Presser(ALICE, _anyone))).done
    await answering
    fake_anthropic.chunk_delay = 0.0
    assert adapter.finals(where)[-1].endswith("_(stopped)_")

    spent = await core.store.spend.spent(where.channel, Scope.CHANNEL, Period.DAY, now())
    assert spent >= 1000 * 150, "at least the question's tokens (about 150) at $1,000/Mtok"


async def test_a_refused_request_is_priced_at_the_refusing_models_price_when_a_fallback_answers(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    where = thread("refusal.1")
    await adapter.run_command(core.service, command(where.channel, "fallback claude-haiku-5-5", who=ADMIN))
    fake_anthropic.queue_blocks(stop_reason="refusal", stop_details={"type": "refusal", "category": "cyber"})
    fake_anthropic.queue_reply("Here is a careful answer.")
    await adapter.deliver(core.service, message(where, "a borderline question " * 20))
    refused, answered = fake_anthropic.usages
    assert [r["model"] for r in fake_anthropic.message_requests] == ["claude-sonnet-5-5", "claude-haiku-5-5"]

    spent = await core.store.spend.spent(where.channel, Scope.CHANNEL, Period.DAY, now())
    # Haiku costs $1/Mtok here (the config below); Sonnet $1,000/Mtok.
    assert spent == cost(refused) + -(-cost(answered) // 1000)


async def test_a_reply_read_back_after_its_mention_brings_its_files(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    """A reply with a screenshot overtook the mention that starts the conversation (acked, not
    taken); read back when the mention is answered, its file goes to Claude like any other."""
    where = thread("readback.1")
    mention = message(where, "what is wrong here?")
    overtaking = with_files(adapter, message(where, "here is the screen", mention=False), ("s.png", samples.png()))
    assert await core.service.accept(overtaking) is None  # no conversation yet: acked, not taken
    adapter.later_messages[where] = [overtaking]

    await adapter.deliver(core.service, mention)

    [file_id] = fake_anthropic.files.uploads
    [request] = fake_anthropic.message_requests
    assert blocks_of(request, "image") == [{"type": "image", "source": {"type": "file", "file_id": file_id}}]
    assert "here is the screen" in json.dumps(request["messages"])


async def test_regenerate_stopped_at_a_spend_limit_keeps_the_earlier_answer(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    """No new answer was made (a limit's line instead): the earlier one still stands, is resent
    to Claude and may be regenerated again later."""
    where = thread("regen.1")
    await adapter.deliver(core.service, message(where, "tell me a joke"))
    [answer] = [t for t in (await core.store.turns.load_history(where)).turns if t.role == "assistant"]
    await adapter.run_command(core.service, command(where.channel, "budget channel 0.01/day", who=ADMIN))

    result = await core.service.controls.regenerate(answer.id, Presser(ALICE, _anyone), adapter.surface)
    assert result.done
    await core.service.tasks.idle()
    assert "spending limit has been reached" in adapter.finals(where)[-1]
    assert len(fake_anthropic.message_requests) == 1

    stored = await core.store.answers.get(answer.id)
    assert stored is not None and not stored.superseded and stored.is_latest
    assert [t.id for t in (await core.store.turns.load_history(where)).turns if t.role == "assistant"] == [answer.id]


async def test_turns_with_web_tools_reserve_what_their_continued_requests_may_cost(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    """With the web tools on, one answer may take several requests (pause_turn continued): what
    a turn in flight reserves counts them, so two concurrent answers cannot both start under a
    limit that one of them alone passes (a limit is passed by at most one answer)."""
    channel = thread().channel
    await adapter.run_command(core.service, command(channel, "tools web on", who=ADMIN))
    await adapter.run_command(core.service, command(channel, "budget channel 10/day", who=ADMIN))
    long_text = "word " * 3000  # about 3,750 output tokens: about $3.75 a request here
    for _ in range(2):
        for _ in range(3):
            fake_anthropic.queue_blocks(blocks.text(long_text), stop_reason="pause_turn")
        fake_anthropic.queue_blocks(blocks.text(long_text))
    fake_anthropic.latency = 0.05  # the two answers overlap
    burst = [message(thread(f"{n}.web"), "look it up") for n in range(2)]
    for sent in burst:
        assert await core.service.submit(sent, adapter.surface(sent))
    await core.service.tasks.idle()

    answered = [m for m in burst if "spending limit has been reached" not in adapter.finals(m.thread)[-1]]
    assert len(answered) == 1, "the second turn did not start: the first alone could pass the limit"


async def test_a_fallback_model_that_cannot_read_the_files_is_not_asked(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    """The refused request carried an image; the fallback model cannot read images (the models
    API says so): it is not sent a request it would refuse with 400; the refusal's note stands."""
    fake_anthropic.models.append(
        dataclasses.replace(fake_anthropic.models[0], id="claude-textonly-1", image_input=False, pdf_input=False)
    )
    where = thread("fallback.files")
    await adapter.run_command(core.service, command(where.channel, "fallback claude-textonly-1", who=ADMIN))
    fake_anthropic.queue_blocks(stop_reason="refusal", stop_details={"type": "refusal", "category": "cyber"})
    await adapter.deliver(core.service, with_files(adapter, message(where, "what is it?"), ("x.png", samples.png())))

    assert all(r.status == 200 for r in fake_anthropic.requests if r.path == "/v1/messages")
    assert len(fake_anthropic.message_requests) == 1
    assert "declined to answer" in adapter.finals(where)[-1]
