"""Tests of the fake Anthropic server, driven through the real `anthropic` SDK."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
import pytest
from anthropic.types import MessageParam, TextBlockParam

from fakes.anthropic_server import (
    FakeAnthropic,
    count_input_tokens,
    estimate_tokens,
    split_into_deltas,
)

pytestmark = pytest.mark.asyncio

MODEL = "claude-sonnet-5-5"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


def make_client(fake: FakeAnthropic, *, api_key: str = "test-key", max_retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=fake.base_url, max_retries=max_retries)


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = make_client(fake)
    yield sdk
    await sdk.close()


def user(text: str) -> MessageParam:
    return {"role": "user", "content": text}


async def create(client: anthropic.AsyncAnthropic, text: str = "hello", **kwargs: Any) -> anthropic.types.Message:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 1000, "messages": [user(text)], **kwargs}
    message: anthropic.types.Message = await client.messages.create(**params)
    return message


def text_of(message: anthropic.types.Message) -> str:
    block = message.content[0]
    assert block.type == "text"
    return block.text


# --------------------------------------------------------------------------- happy paths


async def test_stream_yields_several_deltas_and_final_usage(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    text = "please tell me about the weather today"
    async with client.messages.stream(model=MODEL, max_tokens=1000, messages=[user(text)]) as stream:
        deltas = [delta async for delta in stream.text_stream]
        final = await stream.get_final_message()
        assert stream.request_id is not None and stream.request_id.startswith("req_fake_")
        assert stream.response.headers["content-type"].startswith("text/event-stream")

    assert len(deltas) > 3
    assert "".join(deltas) == f"You said: {text}"
    assert text_of(final) == f"You said: {text}"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == estimate_tokens(text)
    assert final.usage.cache_read_input_tokens == 0
    assert final.usage.cache_creation_input_tokens == 0
    assert final.usage.output_tokens == estimate_tokens(f"You said: {text}")
    assert fake.usages[-1]["output_tokens"] == final.usage.output_tokens


async def test_raw_stream_event_order(client: anthropic.AsyncAnthropic) -> None:
    raw = await client.messages.create(model=MODEL, max_tokens=100, messages=[user("a b c")], stream=True)
    types = [event.type async for event in raw]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[2:-3]) == {"content_block_delta"}


async def test_json_create_and_records(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    message = await create(client, "hi there", system="Be brief.")

    assert text_of(message) == "You said: hi there"
    assert message.stop_reason == "end_turn"
    assert message.model == MODEL
    assert message.usage.input_tokens == estimate_tokens("Be brief.") + estimate_tokens("hi there")
    assert message._request_id is not None and message._request_id.startswith("req_fake_")

    (record,) = fake.requests
    assert record.method == "POST" and record.path == "/v1/messages" and record.status == 200
    assert record.auth_ok
    assert record.headers["authorization"] == "<redacted>"
    assert "anthropic-version" in record.headers
    assert fake.message_requests == [record.body]
    assert record.body["system"] == "Be brief."


async def test_request_ids_are_unique(client: anthropic.AsyncAnthropic) -> None:
    first = await create(client)
    second = await create(client)
    assert first._request_id != second._request_id
    assert first.id != second.id


async def test_count_tokens_uses_the_same_estimator(client: anthropic.AsyncAnthropic) -> None:
    body: dict[str, Any] = {"model": MODEL, "system": "sys prompt", "messages": [user("count these words")]}
    result = await client.messages.count_tokens(**body)
    assert result.input_tokens == count_input_tokens(body)
    assert result.input_tokens == estimate_tokens("sys prompt") + estimate_tokens("count these words")


async def test_custom_reply_function_sync_and_async() -> None:
    async def shout(body: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return str(body["messages"][-1]["content"]).upper()

    async with FakeAnthropic(reply=shout) as server:
        sdk = make_client(server)
        assert text_of(await create(sdk, "quiet")) == "QUIET"
        server.reply = lambda body: "fixed"
        assert text_of(await create(sdk, "quiet")) == "fixed"
        await sdk.close()


async def test_queued_replies_are_fifo_and_carry_stop_reason(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.queue_reply("first")
    fake.queue_reply("I can't help with that.", stop_reason="refusal")
    first = await create(client)
    second = await create(client)
    third = await create(client, "default again")
    assert (text_of(first), first.stop_reason) == ("first", "end_turn")
    assert second.stop_reason == "refusal"
    assert text_of(third) == "You said: default again"


async def test_max_tokens_truncates_reply(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue_reply("word " * 100)
    message = await create(client, max_tokens=5)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens <= 5
    assert text_of(message) == ("word " * 100)[:20]

    fake.queue_reply("word " * 100)
    async with client.messages.stream(model=MODEL, max_tokens=3, messages=[user("x")]) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens <= 3


async def test_stop_sequences(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue_reply("alpha beta STOP gamma")
    message = await create(client, stop_sequences=["STOP"])
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "STOP"
    assert text_of(message) == "alpha beta "


async def test_split_into_deltas_round_trips() -> None:
    for text in ["", "one", "  lead and trail  ", "multi\nline text\n\nhere"]:
        assert "".join(split_into_deltas(text)) == text
    assert len(split_into_deltas("a b c d")) == 4


# --------------------------------------------------------------------------- errors


async def test_bad_api_key_is_authentication_error(fake: FakeAnthropic) -> None:
    sdk = make_client(fake, api_key="wrong")
    with pytest.raises(anthropic.AuthenticationError) as info:
        await create(sdk)
    await sdk.close()
    assert info.value.status_code == 401
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": info.value.request_id,
    }
    assert fake.requests[-1].auth_ok is False
    assert fake.message_requests  # recorded even when rejected


async def test_unknown_model_is_not_found(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await create(client, model="claude-nonexistent-1")
    assert info.value.api_message == "model: claude-nonexistent-1"
    assert info.value.type == "not_found_error"


async def test_malformed_json_is_invalid_request(fake: FakeAnthropic) -> None:
    headers = {"Authorization": "Bearer test-key", "content-type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}/v1/messages", data=b"{not json", headers=headers) as response,
    ):
        body = await response.json()
        assert response.status == 400
        assert response.headers["request-id"] == body["request_id"]
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"


async def test_missing_fields_are_bad_requests(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="maximum allowed number of output tokens"):
        async with client.messages.stream(model=MODEL, max_tokens=64_001, messages=[user("x")]) as stream:
            await stream.get_final_message()
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        await client.messages.create(model=MODEL, max_tokens=10, messages=[])


async def test_prompt_too_long(client: anthropic.AsyncAnthropic) -> None:
    async with FakeAnthropic(context_window=10) as small:
        sdk = make_client(small)
        with pytest.raises(anthropic.BadRequestError) as info:
            await create(sdk, "x" * 100)
        await sdk.close()
    assert info.value.api_message == "prompt is too long: 25 tokens > 10 maximum"
    assert info.value.type == "invalid_request_error"

    haiku_limit = 200_000
    with pytest.raises(anthropic.BadRequestError, match=f"tokens > {haiku_limit} maximum"):
        await create(client, "y" * (4 * haiku_limit + 4), model="claude-haiku-5-5")


async def test_queued_400_with_custom_message(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue_fault(400, message="prompt is too long: 300000 tokens > 200000 maximum")
    with pytest.raises(anthropic.BadRequestError) as info:
        await create(client)
    assert info.value.api_message == "prompt is too long: 300000 tokens > 200000 maximum"


async def test_rate_limit_surfaces_without_retries(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue_fault(429, retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as info:
        await create(client)
    assert info.value.type == "rate_limit_error"
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.request_id == fake.requests[-1].request_id


async def test_rate_limit_is_retried_by_the_sdk(fake: FakeAnthropic) -> None:
    fake.queue_fault(429, retry_after=0.01)
    sdk = make_client(fake, max_retries=1)
    message = await create(sdk, "retry me")
    await sdk.close()
    assert text_of(message) == "You said: retry me"
    assert [r.status for r in fake.requests] == [429, 200]
    assert fake.requests[1].headers["x-stainless-retry-count"] == "1"


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
    ],
)
async def test_queued_status_faults(
    fake: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    fake.queue_fault(status)
    with pytest.raises(error_class) as info:
        await create(client)
    assert info.value.status_code == status
    assert info.value.type == error_type
    await create(client)  # the fault was consumed


async def test_faults_also_hit_streams(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue_fault(529)
    with pytest.raises(anthropic.OverloadedError):
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=[user("x")]) as stream:
            await stream.get_final_message()


async def test_midstream_error_raises_during_iteration(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue_fault("midstream_error", after_deltas=2)
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=[user("one two three four")]) as stream:
            async for text in stream.text_stream:
                received.append(text)
    assert received == ["You ", "said: "]
    assert info.value.type == "overloaded_error"
    assert fake.usages == []  # the answer never completed


async def test_dropped_connection(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.queue_fault("drop")
    with pytest.raises(anthropic.APIConnectionError):
        await create(client)
    assert fake.requests[-1].status is None

    fake.queue_fault("drop", after_deltas=1)
    received: list[str] = []
    with pytest.raises((httpx2.TransportError, anthropic.APIConnectionError)):
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=[user("a b c")]) as stream:
            async for text in stream.text_stream:
                received.append(text)
    assert received == ["You "]
    assert text_of(await create(client, "fine")) == "You said: fine"


async def test_fail_always_until_cleared(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.fail_always(529)
    for _ in range(3):
        with pytest.raises(anthropic.OverloadedError):
            await create(client)
    fake.clear_faults()
    await create(client)


async def test_chaos_is_reproducible_with_a_seed() -> None:
    async def outcomes(seed: int) -> list[str]:
        async with FakeAnthropic(fault_rate=0.5, seed=seed, fault_choices=[500, 429]) as server:
            sdk = make_client(server)
            results = []
            for _ in range(12):
                try:
                    await create(sdk)
                    results.append("ok")
                except anthropic.APIStatusError as exc:
                    results.append(str(exc.status_code))
            await sdk.close()
            return results

    first, second = await outcomes(7), await outcomes(7)
    assert first == second
    assert "ok" in first
    assert set(first) & {"500", "429"}


# --------------------------------------------------------------------------- prompt caching


async def test_cache_read_on_extended_conversation(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    system = "You are a helpful bot. " * 20
    first_messages = [user("What is the capital of France? " * 5)]
    first = await client.messages.create(
        model=MODEL,
        max_tokens=500,
        system=system,
        messages=first_messages,
        cache_control={"type": "ephemeral"},
    )
    first_total = count_input_tokens({"system": system, "messages": first_messages})
    assert first.usage.cache_creation_input_tokens == first_total
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == 0

    second_messages: list[MessageParam] = [
        *first_messages,
        {"role": "assistant", "content": text_of(first)},
        user("And of Germany?"),
    ]
    second = await client.messages.create(
        model=MODEL,
        max_tokens=500,
        system=system,
        messages=second_messages,
        cache_control={"type": "ephemeral"},
    )
    second_total = count_input_tokens({"system": system, "messages": second_messages})
    usage = second.usage
    assert usage.cache_read_input_tokens == first_total
    assert usage.cache_creation_input_tokens == second_total - first_total
    assert usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens == second_total
    assert fake.total_usage()["cache_read_input_tokens"] == first_total


async def test_cache_with_block_breakpoints_and_tail(client: anthropic.AsyncAnthropic) -> None:
    system: list[TextBlockParam] = [{"type": "text", "text": "S" * 400, "cache_control": {"type": "ephemeral"}}]
    for question in ("first question", "a different question"):
        async with client.messages.stream(
            model=MODEL,
            max_tokens=100,
            system=system,
            messages=[user(question)],
        ) as stream:
            final = await stream.get_final_message()
        assert final.usage.input_tokens == estimate_tokens(question)
    assert final.usage.cache_read_input_tokens == 100
    assert final.usage.cache_creation_input_tokens == 0


async def test_cache_is_per_model_and_ignores_cache_control_keys(client: anthropic.AsyncAnthropic) -> None:
    blocks = [{"type": "text", "text": "shared prefix " * 10, "cache_control": {"type": "ephemeral"}}]
    await create(client, system=blocks, model="claude-opus-5-5")
    other_model = await create(client, system=blocks)
    assert other_model.usage.cache_read_input_tokens == 0

    ttl_changed = [{**blocks[0], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    same_model = await create(client, system=ttl_changed)
    assert same_model.usage.cache_read_input_tokens == estimate_tokens("shared prefix " * 10)


async def test_no_breakpoint_means_no_caching(client: anthropic.AsyncAnthropic) -> None:
    for _ in range(2):
        message = await create(client, "same prompt", system="same system")
        assert message.usage.cache_read_input_tokens == 0
        assert message.usage.cache_creation_input_tokens == 0


async def test_min_cacheable_tokens_and_clear_cache() -> None:
    async with FakeAnthropic(min_cacheable_tokens=50) as server:
        sdk = make_client(server)
        short = await create(sdk, "tiny", cache_control={"type": "ephemeral"})
        assert short.usage.cache_creation_input_tokens == 0
        assert short.usage.input_tokens == estimate_tokens("tiny")

        long_text = "z" * 400
        await create(sdk, long_text, cache_control={"type": "ephemeral"})
        assert (await create(sdk, long_text, cache_control={"type": "ephemeral"})).usage.cache_read_input_tokens == 100
        server.clear_cache()
        again = await create(sdk, long_text, cache_control={"type": "ephemeral"})
        assert again.usage.cache_read_input_tokens == 0
        assert again.usage.cache_creation_input_tokens == 100
        await sdk.close()


# --------------------------------------------------------------------------- models


async def test_models_list_returns_configured_models(client: anthropic.AsyncAnthropic) -> None:
    page = await client.models.list()
    ids = [model.id for model in page.data]
    assert ids == ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"]
    sonnet = page.data[0]
    assert sonnet.max_input_tokens == 1_000_000 and sonnet.max_tokens == 64_000
    assert sonnet.display_name == "Claude Sonnet 5.5"
    assert page.data[2].max_input_tokens == 200_000


async def test_models_pagination_and_retrieve(client: anthropic.AsyncAnthropic) -> None:
    first_page = await client.models.list(limit=2)
    assert [m.id for m in first_page.data] == ["claude-sonnet-5-5", "claude-opus-5-5"]
    assert first_page.has_more is True and first_page.last_id == "claude-opus-5-5"
    everything = [model.id async for model in await client.models.list(limit=1)]
    assert everything == ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5"]

    haiku = await client.models.retrieve("claude-haiku-5-5")
    assert haiku.type == "model" and haiku.max_input_tokens == 200_000
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-missing")


async def test_custom_models_and_unavailable_listing() -> None:
    models = [{"id": "claude-test-1", "display_name": "Test", "max_input_tokens": 1000, "max_tokens": 100}]
    async with FakeAnthropic(models=models) as server:
        sdk = make_client(server)
        assert [m.id async for m in sdk.models.list()] == ["claude-test-1"]
        with pytest.raises(anthropic.NotFoundError):
            await create(sdk)  # the default model is not configured here
        server.models_unavailable = True
        with pytest.raises(anthropic.InternalServerError):
            await sdk.models.list()
        with pytest.raises(anthropic.InternalServerError):
            await sdk.models.retrieve("claude-test-1")
        message = await create(sdk, model="claude-test-1", max_tokens=100)
        assert message.stop_reason == "end_turn"
        await sdk.close()


# --------------------------------------------------------------------------- concurrency, reset, process


async def test_in_flight_tracking() -> None:
    async with FakeAnthropic(latency=0.2) as server:
        sdk = make_client(server)
        await asyncio.gather(*(create(sdk, f"q{i}") for i in range(4)))
        assert server.max_in_flight == 4
        assert server.in_flight == 0
        await create(sdk)
        server.reset()
        assert server.max_in_flight == 0
        await create(sdk)
        assert server.max_in_flight == 1
        await sdk.close()


async def test_reset_clears_everything(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    await create(client, "x" * 100, cache_control={"type": "ephemeral"})
    fake.queue_reply("never used")
    fake.queue_fault(500)
    fake.reset()
    assert fake.requests == [] and fake.usages == [] and len(fake.cache) == 0
    message = await create(client, "x" * 100, cache_control={"type": "ephemeral"})
    assert text_of(message).startswith("You said:")
    assert message.usage.cache_read_input_tokens == 0


async def test_chunk_delay_spreads_deltas() -> None:
    async with FakeAnthropic(chunk_delay=0.05) as server:
        sdk = make_client(server)
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with sdk.messages.stream(model=MODEL, max_tokens=100, messages=[user("a b c")]) as stream:
            await stream.get_final_message()
        assert loop.time() - start >= 0.19  # "You said: a b c" is 5 deltas -> 4 delays
        await sdk.close()


async def test_standalone_process_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.anthropic_server",
        "--port",
        "0",
        "--api-key",
        "bench-key",
        "--latency",
        "0.01",
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        base_url = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        sdk = anthropic.AsyncAnthropic(api_key="bench-key", base_url=base_url, max_retries=0)
        message = await sdk.messages.create(model=MODEL, max_tokens=50, messages=[user("ping")])
        assert text_of(message) == "You said: ping"
        stats = await sdk.get("/_fake/stats", cast_to=object)
        assert isinstance(stats, dict) and stats["message_requests"] == 1
        await sdk.close()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(proc.wait(), timeout=20)
    assert returncode == 0


async def test_reply_function_errors_become_api_errors() -> None:
    def broken(body: dict[str, Any]) -> str:
        raise RuntimeError("boom")

    async with FakeAnthropic(reply=broken) as server:
        sdk = make_client(server)
        with pytest.raises(anthropic.InternalServerError, match="boom"):
            await create(sdk)
        await sdk.close()
