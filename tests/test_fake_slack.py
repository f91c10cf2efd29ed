"""Tests of the fake Slack Web API, driven through the real `slack_sdk` clients."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from fakes.slack_server import (
    MAX_MARKDOWN_CHARS,
    MAX_TEXT_CHARS,
    FakeSlack,
    blocks_text,
    event_body,
    sign_request,
    slash_command_body,
)

pytestmark = pytest.mark.asyncio

TOKEN = "xoxb-test-token"
CHANNEL = "C1"
STREAM_ARGS: dict[str, Any] = {"recipient_team_id": "T1", "recipient_user_id": "U1"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=fake.api_url)


async def api_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


def error_of(exc: SlackApiError) -> str:
    return str(exc.response["error"])


# --------------------------------------------------------------------------- auth & basics


async def test_auth_test(fake: FakeSlack, client: AsyncWebClient) -> None:
    answer = await client.auth_test()
    assert answer["ok"] is True
    assert (answer["user_id"], answer["bot_id"], answer["team_id"]) == ("UBOT", "BBOT", "T1")
    assert answer["team"] and answer["user"] and answer["url"]
    [call] = fake.calls
    assert (call.method, call.status, call.ok, call.token) == ("auth.test", 200, True, TOKEN)


async def test_wrong_missing_and_app_tokens(fake: FakeSlack) -> None:
    wrong = AsyncWebClient(token="xoxb-other", base_url=fake.api_url)
    assert error_of(await api_error(wrong.auth_test())) == "invalid_auth"
    anonymous = AsyncWebClient(base_url=fake.api_url)
    assert error_of(await api_error(anonymous.auth_test())) == "not_authed"
    app = AsyncWebClient(token="xapp-test", base_url=fake.api_url)
    assert error_of(await api_error(app.chat_postMessage(channel=CHANNEL, text="hi"))) == "not_allowed_token_type"
    assert fake.messages == []
    assert [c.ok for c in fake.calls] == [False, False, False]


async def test_token_as_form_argument(fake: FakeSlack) -> None:
    anonymous = AsyncWebClient(base_url=fake.api_url)
    answer = await anonymous.api_call("auth.test", data={"token": TOKEN})
    assert answer["user_id"] == "UBOT"
    assert "token" not in fake.calls[0].params


async def test_unknown_method(fake: FakeSlack, client: AsyncWebClient) -> None:
    exc = await api_error(client.api_call("conversations.nonsense"))
    assert error_of(exc) == "unknown_method"
    assert fake.calls_to("conversations.nonsense")[0].error == "unknown_method"


# --------------------------------------------------------------------------- chat.postMessage / update


async def test_post_message_stores_and_returns_ts(fake: FakeSlack, client: AsyncWebClient) -> None:
    first = await client.chat_postMessage(channel=CHANNEL, text="hello")
    second = await client.chat_postMessage(channel=CHANNEL, thread_ts=first["ts"], markdown_text="**reply**")
    assert first["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(first["ts"])
    assert first["channel"] == CHANNEL
    assert first["message"]["text"] == "hello"
    assert first["message"]["bot_id"] == "BBOT" and first["message"]["user"] == "UBOT"
    assert [m.text for m in fake.messages] == ["hello", "**reply**"]
    assert fake.messages[1].thread_ts == first["ts"]
    assert fake.messages[1].markdown_text == "**reply**"
    assert [m.ts for m in fake.thread(CHANNEL, first["ts"])] == [first["ts"], second["ts"]]
    assert fake.calls_to("chat.postMessage")[0].params == {"channel": CHANNEL, "text": "hello"}


async def test_form_encoded_post_message_with_json_blocks(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "from blocks"}}]
    answer = await client.api_call(
        "chat.postMessage", data={"channel": CHANNEL, "text": "fallback", "blocks": json.dumps(blocks)}
    )
    assert answer["ok"]
    [message] = fake.messages
    assert message.blocks == blocks
    assert message.text == "fallback"
    assert message.visible_text == "from blocks"


async def test_message_length_limits(fake: FakeSlack, client: AsyncWebClient) -> None:
    assert error_of(await api_error(client.chat_postMessage(channel=CHANNEL, text="x" * 40_001))) == "msg_too_long"
    exc = await api_error(client.chat_postMessage(channel=CHANNEL, markdown_text="x" * 12_001))
    assert error_of(exc) == "msg_too_long"
    blocks = [{"type": "markdown", "text": "y" * 6_001}, {"type": "markdown", "text": "y" * 6_000}]
    exc = await api_error(client.chat_postMessage(channel=CHANNEL, text="t", blocks=blocks))
    assert error_of(exc) == "msg_too_long"
    with pytest.warns(UserWarning, match="`text` argument is missing"):
        assert error_of(await api_error(client.chat_postMessage(channel=CHANNEL))) == "no_text"
    assert fake.messages == []
    assert [c.rejected for c in fake.calls_to("chat.postMessage")] == [True, True, True, True]
    assert fake.calls_to("chat.postMessage")[0].error == "msg_too_long"

    await client.chat_postMessage(channel=CHANNEL, text="x" * MAX_TEXT_CHARS)
    await client.chat_postMessage(channel=CHANNEL, markdown_text="x" * MAX_MARKDOWN_CHARS)
    assert [len(m.text) for m in fake.messages] == [MAX_TEXT_CHARS, MAX_MARKDOWN_CHARS]


async def test_update_replaces_text_and_checks_limits(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="thinking…")
    updated = await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="done")
    assert updated["ts"] == posted["ts"]
    [message] = fake.messages
    assert message.text == "done" and message.history == ["thinking…"]
    exc = await api_error(client.chat_update(channel=CHANNEL, ts=posted["ts"], markdown_text="z" * 12_001))
    assert error_of(exc) == "msg_too_long"
    assert message.text == "done"
    exc = await api_error(client.chat_update(channel=CHANNEL, ts="1.000001", text="nope"))
    assert error_of(exc) == "message_not_found"


async def test_visible_text_joins_bot_messages_of_a_thread(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.seed_thread(CHANNEL, "1600000000.000001", [{"user": "U1", "text": "question"}])
    await client.chat_postMessage(channel=CHANNEL, thread_ts="1600000000.000001", text="part one")
    await client.chat_postMessage(channel=CHANNEL, thread_ts="1600000000.000001", text="part two")
    await client.chat_postMessage(channel="C2", thread_ts="1600000000.000001", text="elsewhere")
    assert fake.visible_text(CHANNEL, "1600000000.000001") == "part one\npart two"
    assert fake.bot_texts(CHANNEL, "1600000000.000001") == ["part one", "part two"]
    assert [m.text for m in fake.thread(CHANNEL, "1600000000.000001")] == ["question", "part one", "part two"]


# --------------------------------------------------------------------------- rate limits


async def test_rate_limit_surfaces_as_429_without_retry_handler(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.rate_limit("chat.postMessage", times=1, retry_after=1)
    exc = await api_error(client.chat_postMessage(channel=CHANNEL, text="hi"))
    assert exc.response.status_code == 429
    assert exc.response["error"] == "ratelimited"
    assert exc.response.headers["Retry-After"] == "1"
    assert fake.messages == []
    await client.chat_postMessage(channel=CHANNEL, text="hi")  # only the next call was limited
    assert [c.status for c in fake.calls] == [429, 200]


async def test_rate_limit_retried_by_rate_limit_handler(fake: FakeSlack, client: AsyncWebClient) -> None:
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    fake.rate_limit("chat.postMessage", times=1, retry_after=0)
    answer = await client.chat_postMessage(channel=CHANNEL, text="delivered")
    assert answer["ok"]
    assert [(c.method, c.status) for c in fake.calls] == [("chat.postMessage", 429), ("chat.postMessage", 200)]
    assert [m.text for m in fake.messages] == ["delivered"]


async def test_rate_limit_fraction_is_seeded(fake: FakeSlack, client: AsyncWebClient) -> None:
    def pattern() -> list[int | None]:
        return [c.status for c in fake.calls]

    fake.rate_limit_fraction("auth.test", 0.5, retry_after=0, seed=7)
    for _ in range(20):
        try:
            await client.auth_test()
        except SlackApiError:
            pass
    first = pattern()
    assert first.count(429) not in (0, 20)
    fake.reset()
    fake.rate_limit_fraction("auth.test", 0.5, retry_after=0, seed=7)
    for _ in range(20):
        try:
            await client.auth_test()
        except SlackApiError:
            pass
    assert pattern() == first
    await client.users_info(user="U1")  # other methods are not limited


# --------------------------------------------------------------------------- streaming


async def test_chat_stream_gives_one_message_with_the_concatenation(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="question")
    stream = await client.chat_stream(channel=CHANNEL, thread_ts=parent["ts"], buffer_size=10, **STREAM_ARGS)
    pieces = ["Hello ", "world, ", "this is ", "a streamed ", "answer."]
    for piece in pieces:
        await stream.append(markdown_text=piece)
    await stream.stop()

    reply = fake.find_message(CHANNEL, str(stream.ts))
    assert reply is not None
    assert reply.text == "".join(pieces)
    assert reply.stream_state == "stopped"
    assert reply.thread_ts == parent["ts"]
    assert [m.ts for m in fake.messages] == [parent["ts"], stream.ts]
    assert len(fake.calls_to("chat.startStream")) == 1
    assert len(fake.calls_to("chat.appendStream")) >= 1
    assert len(fake.calls_to("chat.stopStream")) == 1
    assert fake.visible_text(CHANNEL, parent["ts"]) == "question\n" + "".join(pieces)


async def test_short_stream_flushed_only_by_stop(fake: FakeSlack, client: AsyncWebClient) -> None:
    stream = await client.chat_stream(channel="D1", thread_ts="1600000000.000001", buffer_size=256)
    await stream.append(markdown_text="short")
    await stream.stop(blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": "footer"}]}])
    [message] = fake.messages
    assert message.text == "short"
    assert message.visible_text == "short\nfooter"


async def test_start_stream_in_channel_needs_recipient(fake: FakeSlack, client: AsyncWebClient) -> None:
    exc = await api_error(client.chat_startStream(channel=CHANNEL, thread_ts="1.000001", markdown_text="hi"))
    assert error_of(exc) in {"missing_recipient_team_id", "missing_recipient_user_id"}
    exc = await api_error(
        client.chat_startStream(channel=CHANNEL, thread_ts="1.000001", markdown_text="hi", recipient_team_id="T1")
    )
    assert error_of(exc) == "missing_recipient_user_id"
    assert fake.messages == []
    answer = await client.chat_startStream(channel="D1", thread_ts="1.000001", markdown_text="hi")  # a DM is fine
    assert answer["ts"] == fake.messages[0].ts


async def test_stream_markdown_limit_per_call(fake: FakeSlack, client: AsyncWebClient) -> None:
    start = await client.chat_startStream(channel=CHANNEL, thread_ts="1.000001", markdown_text="a", **STREAM_ARGS)
    ts = start["ts"]
    exc = await api_error(client.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="b" * 12_001))
    assert error_of(exc) == "msg_too_long"
    await client.chat_appendStream(channel=CHANNEL, ts=ts, chunks=[{"type": "markdown_text", "text": "b" * 12_000}])
    await client.chat_stopStream(channel=CHANNEL, ts=ts, markdown_text="c")
    assert fake.messages[0].text == "a" + "b" * 12_000 + "c"
    exc = await api_error(client.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="late"))
    assert error_of(exc) == "message_not_in_streaming_state"


async def test_streaming_unsupported() -> None:
    async with FakeSlack(streaming_supported=False) as fake:
        client = AsyncWebClient(token=TOKEN, base_url=fake.api_url)
        exc = await api_error(client.chat_startStream(channel="D1", thread_ts="1.000001", markdown_text="hi"))
        assert error_of(exc) == "unknown_method"
        assert fake.messages == []


async def test_refuse_streaming_in_channel(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.refuse_streaming_in("C9")
    exc = await api_error(client.chat_startStream(channel="C9", thread_ts="1.000001", markdown_text="x", **STREAM_ARGS))
    assert error_of(exc) == "channel_type_not_supported"
    await client.chat_startStream(channel=CHANNEL, thread_ts="1.000001", markdown_text="x", **STREAM_ARGS)


async def test_stream_expiry_and_update_fallback(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.stop_streaming_after(2)
    start = await client.chat_startStream(channel=CHANNEL, thread_ts="1.000001", markdown_text="0", **STREAM_ARGS)
    ts = start["ts"]
    await client.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="1")
    await client.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="2")
    exc = await api_error(client.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="3"))
    assert error_of(exc) == "message_not_in_streaming_state"
    exc = await api_error(client.chat_stopStream(channel=CHANNEL, ts=ts))
    assert error_of(exc) == "message_not_in_streaming_state"
    [message] = fake.messages
    assert (message.text, message.stream_state) == ("012", "expired")
    await client.chat_update(channel=CHANNEL, ts=ts, markdown_text="0123")
    assert message.text == "0123"


# --------------------------------------------------------------------------- reading


async def test_conversations_replies_paginates(fake: FakeSlack, client: AsyncWebClient) -> None:
    thread_ts = "1600000000.000100"
    fake.seed_thread(
        CHANNEL,
        thread_ts,
        [
            {"user": "U1", "text": "parent", "ts": thread_ts},
            {"user": "UBOT", "bot_id": "BBOT", "text": "old answer", "ts": "1600000000.000200"},
            {"user": "U1", "text": "follow-up", "ts": "1600000000.000300"},
        ],
    )
    await client.chat_postMessage(channel=CHANNEL, thread_ts=thread_ts, text="new answer")
    fake.seed_message("C2", "other channel", ts="1600000000.000400", thread_ts=thread_ts)

    first = await client.conversations_replies(channel=CHANNEL, ts=thread_ts, limit=2)
    assert [m["text"] for m in first["messages"]] == ["parent", "old answer"]
    assert first["has_more"] is True
    assert first["messages"][0]["reply_count"] == 3
    assert first["messages"][1]["bot_id"] == "BBOT"
    cursor = first["response_metadata"]["next_cursor"]
    second = await client.conversations_replies(channel=CHANNEL, ts=thread_ts, limit=2, cursor=cursor)
    assert [m["text"] for m in second["messages"]] == ["follow-up", "new answer"]
    assert second["has_more"] is False and "response_metadata" not in second

    texts: list[str] = []
    async for page in await client.conversations_replies(channel=CHANNEL, ts=thread_ts, limit=1):
        texts.extend(m["text"] for m in page["messages"])
    assert texts == ["parent", "old answer", "follow-up", "new answer"]
    assert fake.calls_to("conversations.replies")[-1].http_method == "GET"

    exc = await api_error(client.conversations_replies(channel=CHANNEL, ts="1.000001"))
    assert error_of(exc) == "thread_not_found"


async def test_users_info(fake: FakeSlack, client: AsyncWebClient) -> None:
    admin = await client.users_info(user="UADMIN")
    assert admin["user"]["id"] == "UADMIN" and admin["user"]["is_admin"] is True
    member = await client.users_info(user="U1")
    assert member["user"]["is_admin"] is False and member["user"]["is_bot"] is False
    assert (await client.users_info(user="UBOT"))["user"]["is_bot"] is True
    assert error_of(await api_error(client.users_info(user="UNOBODY"))) == "user_not_found"
    fake.add_user("U9", name="nine", is_owner=True)
    assert (await client.users_info(user="U9"))["user"]["is_owner"] is True


# --------------------------------------------------------------------------- reactions, assistant, socket mode


async def test_reactions_and_assistant_methods(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.reactions_add(channel=CHANNEL, timestamp="1.000001", name="eyes")
    assert error_of(await api_error(client.reactions_add(channel=CHANNEL, timestamp="1.000001", name="eyes"))) == (
        "already_reacted"
    )
    await client.reactions_remove(channel=CHANNEL, timestamp="1.000001", name="eyes")
    assert fake.reactions[(CHANNEL, "1.000001")] == []
    assert fake.calls_to("reactions.add")[0].params == {"channel": CHANNEL, "timestamp": "1.000001", "name": "eyes"}

    await client.assistant_threads_setStatus(channel_id="D1", thread_ts="1.000001", status="is thinking…")
    await client.assistant_threads_setTitle(channel_id="D1", thread_ts="1.000001", title="Chat")
    await client.assistant_threads_setSuggestedPrompts(
        channel_id="D1", thread_ts="1.000001", prompts=[{"title": "Hi", "message": "Hello"}]
    )
    assert fake.status("D1", "1.000001") == "is thinking…"
    assert fake.titles[("D1", "1.000001")] == "Chat"
    assert fake.suggested_prompts[("D1", "1.000001")] == [{"title": "Hi", "message": "Hello"}]
    await client.chat_postMessage(channel="D1", thread_ts="1.000001", text="answer")
    assert fake.status("D1", "1.000001") == ""  # a reply clears the status


async def test_apps_connections_open(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.socket_mode_url = "ws://127.0.0.1:1/socket"
    answer = await client.apps_connections_open(app_token="xapp-test")
    assert answer["url"] == "ws://127.0.0.1:1/socket"
    assert fake.calls_to("apps.connections.open")[0].token == "xapp-test"
    exc = await api_error(client.apps_connections_open(app_token=TOKEN))
    assert error_of(exc) == "not_allowed_token_type"
    assert error_of(await api_error(client.apps_connections_open(app_token="xapp-wrong"))) == "invalid_auth"


async def test_latency_and_scripted_failure(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.set_latency(0.05, method="auth.test")
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.05
    fake.fail_next("chat.postMessage", "not_in_channel")
    assert error_of(await api_error(client.chat_postMessage(channel=CHANNEL, text="x"))) == "not_in_channel"
    await client.chat_postMessage(channel=CHANNEL, text="x")


async def test_reset(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="x")
    fake.seed_message(CHANNEL, "seeded")
    fake.rate_limit("chat.postMessage", times=5)
    fake.reset()
    assert (fake.calls, fake.messages, fake.seeded) == ([], [], [])
    again = await client.chat_postMessage(channel=CHANNEL, text="y")
    assert float(again["ts"]) > float(posted["ts"])


# --------------------------------------------------------------------------- inbound helpers


async def test_response_url_records_posts(fake: FakeSlack) -> None:
    url = fake.response_url("cmd-1")
    assert url == f"{fake.base_url}/response/cmd-1"
    webhook = AsyncWebhookClient(url)
    answer = await webhook.send(text="only you can see this", response_type="ephemeral")
    assert answer.status_code == 200
    await webhook.send(text="everyone", response_type="in_channel", replace_original=False)
    [first, second] = fake.responses_to("cmd-1")
    assert (first.text, first.response_type) == ("only you can see this", "ephemeral")
    assert (second.text, second.response_type) == ("everyone", "in_channel")
    assert fake.response_url() != fake.response_url()
    assert fake.calls == []  # response URLs are not Web API calls


async def test_sign_request_matches_signature_verifier() -> None:
    body = json.dumps(event_body({"type": "app_mention", "text": "hi", "user": "U1"}, "Ev1")).encode()
    headers = sign_request("shh-secret", body)
    verifier = SignatureVerifier("shh-secret")
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("other-secret").is_valid_request(body, headers)
    old = sign_request("shh-secret", body, timestamp=int(time.time()) - 3600)
    assert not verifier.is_valid_request(body, old)
    text_body = slash_command_body(text="hello")
    assert verifier.is_valid_request(text_body, sign_request("shh-secret", text_body))


async def test_event_and_slash_command_bodies(fake: FakeSlack) -> None:
    envelope = event_body({"type": "message", "channel": "D1", "user": "U1", "text": "hi", "ts": "1.1"}, "Ev9")
    assert envelope["type"] == "event_callback" and envelope["event_id"] == "Ev9"
    assert (envelope["team_id"], envelope["api_app_id"]) == ("T1", "A1")
    assert envelope["authorizations"][0]["user_id"] == "UBOT"
    form = parse_qs(
        slash_command_body(command="/claude", text="model opus", user_id="UADMIN", response_url=fake.response_url("r"))
    )
    assert form["command"] == ["/claude"] and form["text"] == ["model opus"] and form["user_id"] == ["UADMIN"]
    assert form["response_url"] == [f"{fake.base_url}/response/r"]
    assert {"user_name", "channel_id", "team_id", "trigger_id"} <= form.keys()


async def test_blocks_text() -> None:
    blocks = [
        {"type": "markdown", "text": "**md**"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "sec"}, "fields": [{"type": "mrkdwn", "text": "f"}]},
        {"type": "divider"},
        {
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ],
        },
    ]
    assert blocks_text(blocks) == "**md**\nsec\nf\nab"


async def test_raw_http_json_and_query(fake: FakeSlack) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            fake.api_url + "chat.postMessage", params={"channel": CHANNEL}, json={"text": "mixed"}, headers=headers
        ) as res:
            assert res.status == 200
            assert (await res.json())["ok"] is True
        async with session.post(
            fake.api_url + "chat.postMessage",
            data=b"{not json",
            headers={**headers, "Content-Type": "application/json"},
        ) as res:
            assert (await res.json())["error"] == "invalid_json"
    assert fake.messages[0].channel == CHANNEL and fake.messages[0].text == "mixed"


# --------------------------------------------------------------------------- link previews


async def test_links_slack_may_preview_flags_what_is_posted_without_both_flags_or_updated_or_streamed(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    link = "https://evil.example/p.png?d=secret"
    off = {"unfurl_links": False, "unfurl_media": False}
    safe = await client.chat_postMessage(channel=CHANNEL, markdown_text=f"see {link}", **off)  # type: ignore[arg-type]
    assert fake.links_slack_may_preview() == []
    await client.chat_postMessage(channel=CHANNEL, markdown_text=f"![x]({link})", unfurl_links=False)
    await client.chat_update(channel=CHANNEL, ts=safe["ts"], markdown_text=f"now <{link}|here>")
    stream = await client.chat_startStream(channel=CHANNEL, thread_ts=safe["ts"], markdown_text="a", **STREAM_ARGS)
    await client.chat_appendStream(channel=CHANNEL, ts=stream["ts"], markdown_text="www.evil.example/x")
    await AsyncWebhookClient(fake.response_url("r1")).send(text=f"answer {link}")
    await AsyncWebhookClient(fake.response_url("r2")).send(text=f"answer {link}", **off)  # type: ignore[arg-type]
    assert fake.links_slack_may_preview() == [
        ("chat.postMessage", link),
        ("chat.update", link),
        ("chat.appendStream", "www.evil.example/x"),
        ("response_url", link),
    ]
