"""What a user in the thread sees when Claude misbehaves, and that the service goes on."""

from __future__ import annotations

import asyncio
import logging

import anthropic
import pytest

from bot.app import Core, open_core
from bot.claude import FALLBACK_MODELS, ModelCatalog
from bot.config import Config
from bot.policy import CUT_OFF_NOTE, EMPTY_NOTE, FAILED_NOTE, REFUSAL_NOTE
from fakes.anthropic_server import FakeAnthropic, Fault
from fakes.recording import RecordingPlatform, message, thread
from tests.conftest import API_KEY


async def test_a_429_then_ok_delivers_the_answer(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault(429, retry_after=0.05)
    outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is None
    assert adapter.finals() == ['You said: <message from="Alice">hello</message>']
    assert len(fake_anthropic.message_requests) == 2


async def test_persistent_overload_gives_a_friendly_error_and_the_service_keeps_working(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    fake_anthropic.fail_always(529)
    where = thread()
    with caplog.at_level(logging.INFO):
        outcome = await adapter.deliver(core.service, message(where, "hello"))
    assert outcome.error is not None and outcome.error.kind == "overloaded"
    assert adapter.finals() == ["Claude is overloaded right now. Please try again in a few minutes."]
    assert len(fake_anthropic.message_requests) == 3, "two retries, then give up"
    assert "request_id=req_" in caplog.text and "status=529" in caplog.text

    fake_anthropic.clear_faults()
    await adapter.deliver(core.service, message(where, "again", mention=False))
    assert (
        adapter.finals()[-1]
        == 'You said: <message from="Alice">hello</message>\n\n<message from="Alice">again</message>'
    )


async def test_a_long_retry_after_is_not_waited_out(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault(429, retry_after=600)
    outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is not None and outcome.error.kind == "rate_limited"
    assert len(fake_anthropic.message_requests) == 1
    assert "try again in a minute" in adapter.finals()[0]


async def test_a_bad_api_key_is_reported_without_the_key(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    fake_anthropic.api_key = "a-different-key"
    with caplog.at_level(logging.DEBUG):
        outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is not None and outcome.error.kind == "auth"
    assert "API key was rejected" in adapter.finals()[0]
    assert len(fake_anthropic.message_requests) == 1, "a 401 is not retried"
    assert API_KEY not in caplog.text and API_KEY not in adapter.finals()[0]


async def test_an_unknown_model_in_the_channel_settings_is_explained(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await core.store.channels.set_setting(where.channel, "model", "claude-retired-1", "test:ADMIN")
    outcome = await adapter.deliver(core.service, message(where, "hello"))
    assert outcome.error is not None and outcome.error.kind == "unknown_model"
    assert "`claude-retired-1` is not available" in adapter.finals()[0]


async def test_an_error_mid_stream_before_any_text_is_retried(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault("midstream_error", after_deltas=0)
    await adapter.deliver(core.service, message(thread(), "hello"))
    assert adapter.finals() == ['You said: <message from="Alice">hello</message>']


async def test_an_error_after_text_was_shown_is_not_retried_and_keeps_the_text(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault("midstream_error", after_deltas=2)
    where = thread()
    await adapter.deliver(core.service, message(where, "hello there friend"))
    reply = adapter.replies[0]
    assert len(fake_anthropic.message_requests) == 1
    assert reply.final is not None
    received, note = reply.final.split("\n\n", 1)
    assert note == "Claude is overloaded right now. Please try again in a few minutes."
    assert received and 'You said: <message from="Alice">hello there friend</message>'.startswith(received), (
        "the text received is kept"
    )
    assert received.startswith("".join(reply.deltas)), "and extends what was shown"
    history = await core.store.turns.load_history(where)
    assert [t.role for t in history.turns] == ["user"], "a broken answer is not stored as a turn"


async def test_a_dropped_connection_mid_stream_gives_an_error_in_the_thread(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault("drop", after_deltas=1)
    outcome = await adapter.deliver(core.service, message(thread(), "hello there friend"))
    assert outcome.error is not None and outcome.error.kind == "connection"
    assert adapter.finals()[0].endswith("I couldn't reach Claude just now. Please try again in a moment.")


async def test_a_max_tokens_stop_shows_the_cut_off_note(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_reply("a long answer that stops", stop_reason="max_tokens")
    where = thread()
    await adapter.deliver(core.service, message(where, "hello"))
    assert adapter.finals() == ["a long answer that stops\n\n" + CUT_OFF_NOTE]
    history = await core.store.turns.load_history(where)
    assert history.turns[-1].content == "a long answer that stops", "the note is shown, not stored"


async def test_a_refusal_is_stated_clearly(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_reply("", stop_reason="refusal")
    where = thread()
    await adapter.deliver(core.service, message(where, "something bad"))
    assert adapter.finals() == [REFUSAL_NOTE]
    await adapter.deliver(core.service, message(where, "something else", mention=False))
    assert fake_anthropic.message_requests[-1]["messages"] == [
        {"role": "user", "content": '<message from="Alice">something else</message>'}
    ], "the refused exchange is not sent again"


async def test_the_assistant_turn_is_stored_before_its_final_text_is_shown(
    core: Core, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    seen_at_finish: list[list[str]] = []

    class CheckingAdapter(RecordingPlatform):
        async def open_reply(self, msg):  # type: ignore[no-untyped-def]
            reply = await super().open_reply(msg)
            finish = reply.finish

            async def finish_after_checking(text: str) -> None:
                history = await core.store.turns.load_history(where)
                seen_at_finish.append([t.role for t in history.turns])
                await finish(text)

            reply.finish = finish_after_checking  # type: ignore[method-assign]
            return reply

    await CheckingAdapter().deliver(core.service, message(where, "hello"))
    assert seen_at_finish == [["user", "assistant"]]


async def test_a_platform_failure_mid_answer_still_stores_the_answer(
    core: Core, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    where = thread()

    class FlakyPlatform(RecordingPlatform):
        async def open_reply(self, msg):  # type: ignore[no-untyped-def]
            reply = await super().open_reply(msg)

            async def broken_append(delta: str) -> None:
                raise ConnectionError("platform down")

            reply.append = broken_append  # type: ignore[method-assign]
            return reply

    adapter = FlakyPlatform()
    outcome = await adapter.deliver(core.service, message(where, "hello"))
    assert outcome.reply is not None
    assert adapter.finals() == ['You said: <message from="Alice">hello</message>'], "the final text is still delivered"
    assert [t.role for t in (await core.store.turns.load_history(where)).turns] == ["user", "assistant"]
    assert "showing the answer failed mid-stream" in caplog.text


async def test_an_unexpected_failure_still_closes_the_answer_with_a_sentence(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    async def broken_store(*args: object, **kwargs: object) -> int:
        raise RuntimeError("database went away")

    core.store.turns.append_answer = broken_store  # type: ignore[method-assign]
    outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.answered and outcome.reply is None
    assert adapter.finals()[0].endswith(FAILED_NOTE)


async def test_an_empty_answer_is_said_so_rather_than_left_blank(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_reply("")
    await adapter.deliver(core.service, message(thread(), "hello"))
    assert adapter.finals() == [EMPTY_NOTE]


async def test_max_tokens_never_exceeds_what_the_model_can_write(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await core.store.channels.set_setting(where.channel, "max_tokens", 100_000, "test:ADMIN")
    await adapter.deliver(core.service, message(where, "hello"))
    assert fake_anthropic.message_requests[0]["max_tokens"] == 64_000, "claude-sonnet-5-5 writes at most 64k"


async def test_a_command_that_fails_inside_still_gets_an_answer(core: Core, adapter: RecordingPlatform) -> None:
    from fakes.recording import command, person

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    core.store.channels.set_setting = broken  # type: ignore[method-assign]
    await adapter.run_command(core.service, command(thread().channel, "system be brief", who=person("ADMIN")))
    assert adapter.command_answers[-1][1].startswith("Something went wrong on my side; nothing was changed")


# --- retries: what the SDK does not do for us (see bot/claude/client.py) -------------------


async def test_a_retry_after_just_over_the_cap_fails_at_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault(429, retry_after=3)  # the tests' cap is 2 s
    async with asyncio.timeout(2):
        outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is not None and outcome.error.kind == "rate_limited"
    assert len(fake_anthropic.message_requests) == 1


async def test_errors_mid_stream_before_any_text_give_up_after_three_requests(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.fail_always(Fault(kind="midstream_error", status=529, after_deltas=0))
    outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is not None and outcome.error.kind == "overloaded"
    assert len(fake_anthropic.message_requests) == 3
    assert adapter.replies[0].deltas == []
    assert adapter.finals() == ["Claude is overloaded right now. Please try again in a few minutes."]


async def test_the_sdks_retries_and_ours_share_three_requests(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault(529)  # retried by the SDK
    fake_anthropic.queue_fault("midstream_error", after_deltas=0)  # retried by us
    fake_anthropic.queue_fault("midstream_error", after_deltas=0)  # no request left for a retry
    outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is not None and outcome.error.kind == "overloaded"
    assert len(fake_anthropic.message_requests) == 3


async def test_a_status_error_then_an_error_mid_stream_then_the_answer(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault(503)
    fake_anthropic.queue_fault("midstream_error", after_deltas=0)
    outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is None
    assert adapter.finals() == ['You said: <message from="Alice">hello</message>']
    assert len(fake_anthropic.message_requests) == 3


async def test_a_connection_dropped_before_any_text_is_retried(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault("drop", after_deltas=0)
    outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is None
    assert adapter.finals() == ['You said: <message from="Alice">hello</message>']
    assert len(fake_anthropic.message_requests) == 2


async def test_an_invalid_request_error_mid_stream_is_not_retried(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_fault(
        Fault(kind="midstream_error", status=400, error_type="invalid_request_error", after_deltas=0)
    )
    outcome = await adapter.deliver(core.service, message(thread(), "hello"))
    assert outcome.error is not None
    assert len(fake_anthropic.message_requests) == 1


async def test_the_model_list_is_asked_for_again_a_minute_after_the_models_api_failed(
    fake_anthropic: FakeAnthropic,
) -> None:
    now = [0.0]
    sdk = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake_anthropic.base_url, max_retries=0)
    catalog = ModelCatalog(sdk, retry_seconds=60, clock=lambda: now[0])

    def list_requests() -> int:
        return sum(1 for r in fake_anthropic.requests if r.path == "/v1/models")

    fake_anthropic.models_unavailable = True
    assert set(await catalog.models()) == {m.id for m in FALLBACK_MODELS}
    fake_anthropic.models_unavailable = False
    now[0] += 59
    assert set(await catalog.models()) == {m.id for m in FALLBACK_MODELS}
    assert list_requests() == 1, "not asked again within the minute"
    now[0] += 1
    assert "claude-sonnet-5-5" in await catalog.models()
    assert list_requests() == 2
    now[0] += 3599
    await catalog.models()
    assert list_requests() == 2, "a good list is kept for an hour"
    await sdk.close()


async def test_a_stream_that_only_pings_ends_with_the_timeout_note_and_frees_the_thread(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    """`CLAUDE_TIMEOUT_SECONDS` bounds silence: pings keep the connection busy, but no text
    arrives, so the person is told and the thread takes the next message."""
    core = await open_core(config.model_copy(update={"claude_timeout_seconds": 0.5}))
    platform = RecordingPlatform()
    try:
        fake_anthropic.chunk_delay, fake_anthropic.ping_interval = 3.0, 0.1
        where = thread()
        outcome = await platform.deliver(core.service, message(where, "hello"))
        assert outcome.error is not None and outcome.error.kind == "timeout"
        first_delta = platform.replies[0].deltas[0]
        assert platform.finals() == [f"{first_delta}\n\nClaude took too long to answer. Please try again."]

        fake_anthropic.chunk_delay = 0.0
        again = await platform.deliver(core.service, message(where, "again", mention=False))
        assert again.reply is not None, "the thread and the Claude slot were freed"
    finally:
        await core.close()


async def test_an_answer_trickling_past_max_turn_seconds_ends_with_the_timeout_note(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    """`MAX_TURN_SECONDS` bounds the whole answer: text keeps coming, just too slowly to finish."""
    core = await open_core(config.model_copy(update={"max_turn_seconds": 1.0}))
    platform = RecordingPlatform()
    try:
        fake_anthropic.chunk_delay = 0.2
        fake_anthropic.queue_reply(" ".join(f"word{i}" for i in range(200)))
        outcome = await platform.deliver(core.service, message(thread(), "tell me a long story"))
        assert outcome.error is not None and outcome.error.kind == "timeout"
        final = platform.finals()[0]
        assert final.endswith("Claude took too long to answer. Please try again.")
        assert "word199" not in final and len(platform.replies[0].deltas) >= 2, "cut off mid-answer"
    finally:
        await core.close()
