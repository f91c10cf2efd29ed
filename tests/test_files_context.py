"""Attachments in the context fit: their tokens count, trimming drops whole turns with
their files, and no request goes over the window."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from bot.app import Core
from bot.domain import ChannelSettings, FileRef, IncomingMessage
from bot.schema import attachments
from fakes import sample_files as samples
from fakes.anthropic_server import FakeAnthropic, ModelSpec, count_input_tokens
from fakes.recording import RecordingPlatform, message, thread

WINDOW = 20_000


def attach(platform: RecordingPlatform, incoming: IncomingMessage, name: str, data: bytes) -> IncomingMessage:
    url = f"https://files.test/{incoming.message_id}/{name}"
    platform.files[url] = data
    return dataclasses.replace(incoming, files=(*incoming.files, FileRef(name, name, url, len(data))))


def file_blocks(body: dict) -> list[dict]:
    return [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] != "text"]


async def test_trimming_drops_the_turn_with_its_files_and_never_exceeds_the_window(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.models = [ModelSpec("claude-sonnet-5-5", "Small", WINDOW, 64_000)]
    core.service.settings.defaults = ChannelSettings("claude-sonnet-5-5", "Be helpful.", 500)
    where = thread()
    first = attach(adapter, message(where, "read these"), "spec.pdf", samples.pdf(3))
    first = attach(adapter, first, "shot.png", samples.png(1000, 1000))
    await adapter.deliver(core.service, first)
    for i in range(60):
        await adapter.deliver(core.service, message(where, f"turn {i}: " + "lorem ipsum " * 40, mention=False))

    bodies = fake_anthropic.message_requests
    assert all(count_input_tokens(b) + b["max_tokens"] <= WINDOW for b in bodies)
    assert all(r.status == 200 for r in fake_anthropic.requests if r.path == "/v1/messages")
    with_files = [bool(file_blocks(b)) for b in bodies]
    assert with_files[0] and not with_files[-1], "the files went with their turn"
    assert with_files == sorted(with_files, reverse=True), "once trimmed, the files never come back"
    assert not any("read these" in str(m["content"]) for m in bodies[-1]["messages"])


async def test_a_pdf_whose_pages_cannot_be_counted_is_measured_with_count_tokens(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    compressed = b"%PDF-1.7\n" + bytes(range(256)) * 120 + b"\n%%EOF\n"  # no visible page objects
    await adapter.deliver(core.service, attach(adapter, message(thread(), "what is it?"), "packed.pdf", compressed))

    counts = [r for r in fake_anthropic.requests if r.path == "/v1/messages/count_tokens"]
    assert len(counts) == 1
    async with core.store.engine.connect() as conn:
        [tokens] = (await conn.execute(select(attachments.c.tokens))).scalars()
    assert tokens == 1_500, "the API's count (one page at the fake's 1,500), not the 10-page size guess"
