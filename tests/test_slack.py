"""Slack in HTTP mode, end to end: signed requests in, fake Slack Web API out."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from xml.etree import ElementTree

import pytest
from sqlalchemy import func, select

from bot.domain import ChannelKey
from bot.schema import conversations, early_replies, processed_events
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import event_body, sign_request
from tests.slack_harness import SIGNING_SECRET, SlackHarness, channel_message, dm, mention, next_ts

CHANNEL = ChannelKey("slack", "T1", "C1")


async def rows(harness: SlackHarness, table: object) -> int:
    async with harness.service.core.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_url_verification_is_answered(slack: SlackHarness) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "t"})
    headers = {"Content-Type": "application/json", **sign_request(SIGNING_SECRET, body)}
    async with slack.http.post(slack.url + "/slack/events", data=body, headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["challenge"] == "abc123"


async def test_a_mention_is_answered_in_its_thread_by_streaming(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    event = mention("what is 2+2?")
    response = await slack.send_event(event)
    assert response.status == 200
    await slack.settle()

    assert fake_anthropic.message_requests[0]["messages"] == [
        {"role": "user", "content": '<message from="mel">what is 2+2?</message>'}
    ]
    answer = slack.slack.bot_messages("C1", event["ts"])
    assert [m.text for m in answer] == ['You said: <message from="mel">what is 2+2?</message>']
    assert slack.slack.calls_to("chat.startStream"), "native streaming was used"
    assert slack.slack.calls_to("chat.startStream")[0].params["recipient_user_id"] == "U1"
    assert slack.slack.sessions[("C1", event["ts"])] == ["processing", "active"], "Slack's own status showed the work"
    assert not slack.slack.calls_to("reactions.add"), "so no :eyes: reaction besides it"


async def test_an_app_without_agent_sessions_shows_an_eyes_reaction_while_it_works(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.fail_next("agents.sessions.setStatus", "not_an_agent")
    event = mention("what is 2+2?")
    await slack.send_event(event)
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [
        'You said: <message from="mel">what is 2+2?</message>'
    ]
    assert slack.slack.calls_to("reactions.add") and slack.slack.calls_to("reactions.remove"), (
        "a progress cue came and went"
    )
    assert not slack.slack.reactions.get(("C1", event["ts"]))


async def test_a_follow_up_in_the_thread_needs_no_mention(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    root = mention("remember: blue")
    await slack.send_event(root)
    await slack.settle()
    await slack.send_event(channel_message("what colour?", thread_ts=root["ts"]))
    await slack.settle()
    assert len(fake_anthropic.message_requests) == 2
    assert [m["role"] for m in fake_anthropic.message_requests[1]["messages"]] == ["user", "assistant", "user"]
    assert len(slack.slack.bot_messages("C1", root["ts"])) == 2


def posted_now(seconds_ago: float = 0.0) -> str:
    """A Slack `ts` for a message posted `seconds_ago` (a thread's age is its first message's)."""
    return f"{time.time() - seconds_ago:.6f}"


async def test_chatter_outside_the_bots_threads_is_ignored_without_a_database_write(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    await slack.send_event(channel_message("lunch anyone?"))
    await slack.send_event(channel_message("in someone else's thread", thread_ts=posted_now(3600)))
    await slack.settle()
    assert fake_anthropic.message_requests == []
    assert slack.slack.calls_to("chat.postMessage") == [] and slack.slack.calls_to("chat.startStream") == []
    assert await rows(slack, conversations) == 0 and await rows(slack, processed_events) == 0
    assert await rows(slack, early_replies) == 0, "an hour-old thread can have no mention still on its way"


async def test_a_mention_starting_its_thread_reads_no_thread_back_when_no_reply_came_first(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    """Reading a thread is rate-limited (for some apps to one read a minute): a burst of
    mentions must not cost one read each when nobody replied before the answer."""
    root = mention("what is 2+2?", ts=posted_now())
    await slack.send_event(root)
    await slack.settle()
    assert len(slack.slack.bot_messages("C1", root["ts"])) == 1
    assert slack.slack.calls_to("conversations.replies") == []


async def test_replies_that_overtook_their_mention_are_read_back_once_and_answered_with_it(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    """Slack delivers a thread's reply without waiting for the mention's ack: the reply finds no
    conversation and is not taken, but it notes the thread, so the mention reads it back."""
    root_ts = posted_now(2)
    slack.slack.seed_message("C1", "<@UBOT> what is the capital of France?", ts=root_ts)
    reply = channel_message("and of Spain?", thread_ts=root_ts, ts=posted_now(1))
    slack.slack.seed_message("C1", "and of Spain?", ts=reply["ts"], thread_ts=root_ts)
    await slack.send_event(reply)
    await slack.settle()
    assert fake_anthropic.message_requests == [] and await rows(slack, early_replies) == 1

    await slack.send_event(mention("what is the capital of France?", ts=root_ts))
    await slack.settle()
    asked = json.dumps(fake_anthropic.message_requests[0]["messages"])
    assert "capital of France" in asked and "and of Spain?" in asked
    assert len(slack.slack.calls_to("conversations.replies")) == 1
    assert await rows(slack, early_replies) == 0, "read back: the note is gone"

    await slack.send_event(channel_message("thanks", thread_ts=root_ts, ts=posted_now()))
    await slack.settle()
    assert len(fake_anthropic.message_requests) == 2
    assert len(slack.slack.calls_to("conversations.replies")) == 1, "the thread is read back once only"
    asked_by_people = [m["content"] for m in fake_anthropic.message_requests[1]["messages"] if m["role"] == "user"]
    assert json.dumps(asked_by_people).count("and of Spain?") == 1


async def test_a_dm_is_answered_in_the_thread_of_that_message(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    event = dm("hello in private")
    await slack.send_event(event)
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("D1", event["ts"])] == [
        'You said: <message from="mel">hello in private</message>'
    ]
    assert slack.slack.statuses.get(("D1", event["ts"]), [])[:1] == ["is thinking…"]


async def test_a_post_delivered_as_mention_and_as_message_is_answered_once(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    ts = next_ts()
    await asyncio.gather(
        slack.send_event(mention("hi", ts=ts)),
        slack.send_event(channel_message("<@UBOT> hi", ts=ts)),
    )
    await slack.settle()
    assert len(fake_anthropic.message_requests) == 1
    assert len(slack.slack.bot_messages("C1", ts)) == 1


async def test_a_retry_arriving_while_the_first_is_answered_gives_one_reply(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 0.5
    event = mention("slow one")
    first = await slack.send_event(event, event_id="EvRetry")
    await asyncio.sleep(0.1)
    retried = await slack.send_event(event, event_id="EvRetry", retry=1)
    assert first.status == retried.status == 200
    await slack.settle()
    assert len(fake_anthropic.message_requests) == 1
    assert len(slack.slack.bot_messages("C1", event["ts"])) == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\xff\xfe not utf-8", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b'{"type": ', "application/json"),
        (b'{"event": "some_event_type"}', "application/json"),
        (b'{"type": "event_callback", "event": "app_mention"}', "application/json"),
        (b'{"type": "event_callback", "event": {"type": ["message"]}}', "application/json"),
        (b'{"type": "event_callback", "event": {"type": "message"}, "authorizations": "x"}', "application/json"),
        (b'{"type": "block_actions"}', "application/json"),
        (b'{"actions": null, "type": []}', "application/json"),
    ],
)
async def test_a_signed_but_malformed_body_gets_400_and_changes_nothing(
    slack: SlackHarness,
    fake_anthropic: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
) -> None:
    caplog.clear()
    response = await slack.post(body, content_type=content_type)
    assert response.status == 400
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], "one warning line, no error or traceback"
    async with slack.http.get(slack.url + "/healthz") as health:
        assert health.status == 200
    assert fake_anthropic.message_requests == []


async def test_a_bad_signature_or_a_stale_timestamp_gets_401_and_causes_nothing(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    body = json.dumps(event_body(mention("hi"), "EvBad"))
    assert (await slack.post(body, secret="wrong-secret")).status == 401
    assert (await slack.post(body, timestamp=int(time.time()) - 301)).status == 401
    await slack.settle()
    assert fake_anthropic.message_requests == []
    assert await rows(slack, processed_events) == 0


async def test_own_messages_other_bots_and_edits_are_ignored(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("start")
    await slack.send_event(root)
    await slack.settle()
    thread = {"thread_ts": root["ts"]}
    await slack.send_event(channel_message("echo", user="UBOT", bot_id="BBOT", **thread))
    await slack.send_event(channel_message("<@UBOT> loop?", user="UOTHER", bot_id="BOTHER", **thread))
    await slack.send_event({**channel_message("x", **thread), "subtype": "message_changed"})
    await slack.send_event({**channel_message("x", **thread), "subtype": "message_deleted"})
    await slack.settle()
    assert len(fake_anthropic.message_requests) == 1


async def test_claude_sees_the_text_without_the_bots_mention(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    await slack.send_event(mention("please <@UBOT> summarise"))
    await slack.settle()
    assert (
        fake_anthropic.message_requests[0]["messages"][0]["content"] == '<message from="mel">please summarise</message>'
    )


async def test_a_60000_character_answer_arrives_whole_in_order(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    answer = "".join(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 20 + "\n\n" for i in range(110))[:60_000]
    fake_anthropic.queue_reply(answer)
    await slack.service.core.store.channels.set_setting(CHANNEL, "max_tokens", 32_000, "test")
    event = mention("write a lot")
    await slack.send_event(event)
    await slack.settle()
    texts = [m.text for m in slack.slack.bot_messages("C1", event["ts"])]
    assert len(texts) >= 5 and all(len(t) <= 12_000 for t in texts)
    assert "".join(texts) == answer


async def test_a_channel_ping_from_the_model_is_neutralized(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.queue_reply("Hey <!here> and <!channel>, also <!subteam^S123|@devs>!")
    event = mention("ping everyone")
    await slack.send_event(event)
    await slack.settle()
    shown = slack.slack.bot_messages("C1", event["ts"])[0].text
    assert "<!" not in shown and "@\u2060here" in shown and "@\u2060devs" in shown


async def test_the_post_and_update_fallback_delivers_the_whole_text(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.streaming_supported = False
    answer = "line one\nline two\nline three"
    fake_anthropic.queue_reply(answer)
    event = mention("fallback please")
    await slack.send_event(event)
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [answer]
    assert slack.slack.calls_to("chat.postMessage")


async def test_a_stream_that_expires_midway_falls_back_without_losing_text(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.stop_streaming_after(1)
    fake_anthropic.chunk_delay = 0.05  # updates come about a second apart
    answer = "\n".join(f"line {i} of a long answer" for i in range(12))
    fake_anthropic.queue_reply(answer)
    event = mention("long")
    await slack.send_event(event)
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [answer]


async def test_a_slack_429_is_waited_out_and_the_reply_completes(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.rate_limit("chat.startStream", times=1, retry_after=1)
    event = mention("rate limited")
    await slack.send_event(event)
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [
        'You said: <message from="mel">rate limited</message>'
    ]


async def test_a_claude_outage_is_told_in_the_thread(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fail_always(529)
    event = mention("are you there?")
    await slack.send_event(event)
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [
        "Claude is overloaded right now. Please try again in a few minutes."
    ]


async def test_a_non_admin_cannot_change_the_system_prompt(slack: SlackHarness) -> None:
    response_id = await slack.send_command("system be rude", user_id="U1")
    await slack.settle()
    [answer] = slack.slack.responses_to(response_id)
    assert answer.response_type == "ephemeral" and answer.text.startswith("Only workspace admins")
    current = await slack.service.core.service.settings.for_channel(CHANNEL)
    assert current.system_prompt == slack.service.core.config.default_system_prompt


async def test_a_workspace_admin_sets_the_system_prompt_for_the_channel(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    response_id = await slack.send_command("system Answer in French.", user_id="UADMIN")
    await slack.settle()
    assert "system prompt is updated" in slack.slack.responses_to(response_id)[0].text
    await slack.send_event(mention("hello"))
    await slack.settle()
    assert fake_anthropic.message_requests[-1]["system"] == "Answer in French."


async def test_summoned_mid_thread_the_earlier_messages_come_along(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root_ts = next_ts()
    slack.slack.seed_thread(
        "C1",
        root_ts,
        [
            {"user": "U1", "text": "the build is red", "ts": root_ts},
            {"user": "UADMIN", "text": "since this morning", "ts": next_ts()},
        ],
    )
    await slack.send_event(mention("why?", thread_ts=root_ts))
    await slack.settle()
    first = fake_anthropic.message_requests[0]["messages"][0]["content"]
    assert (
        '<message from="mel">the build is red</message>' in first
        and "since this morning" in first
        and first.endswith('<message from="mel">why?</message>')
    )


async def test_the_assistant_pane_gets_prompts_status_and_a_title(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    thread_ts = next_ts()
    await slack.send_event(
        {
            "type": "assistant_thread_started",
            "assistant_thread": {"user_id": "U1", "channel_id": "D9", "thread_ts": thread_ts},
            "event_ts": thread_ts,
        }
    )
    await slack.settle()
    assert slack.slack.suggested_prompts.get(("D9", thread_ts))
    await slack.send_event(dm("plan my week", channel="D9", thread_ts=thread_ts))
    await slack.settle()
    assert slack.slack.titles[("D9", thread_ts)] == "plan my week"
    assert slack.slack.statuses[("D9", thread_ts)][0] == "is thinking…"
    assert [m.text for m in slack.slack.bot_messages("D9", thread_ts)] == [
        'You said: <message from="mel">plan my week</message>'
    ]


async def test_deliveries_are_acked_before_the_answer_is_worked_out(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 2.0
    event = mention("take your time")
    response = await slack.send_event(event)
    assert response.status == 200
    assert slack.slack.bot_messages("C1", event["ts"]) == [], "acked while Claude is still thinking"
    await slack.settle()
    assert [m.text for m in slack.slack.bot_messages("C1", event["ts"])] == [
        'You said: <message from="mel">take your time</message>'
    ]


async def test_slack_markup_reaches_claude_as_plain_text(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    await slack.send_event(mention("is a &lt; b &amp;&amp; c? ask <@UADMIN>, see <https://docs.example/x|the docs>"))
    await slack.settle()
    request = fake_anthropic.message_requests[0]["messages"][0]["content"]
    seen = ElementTree.fromstring(request).text or ""  # the text, with the prompt's own escaping undone
    assert "is a < b && c?" in seen
    assert "<@UADMIN>" not in seen and "@" in seen
    assert "the docs (https://docs.example/x)" in seen


async def test_a_user_ping_from_the_model_is_neutralized(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.queue_reply("Ask <@UADMIN> or <@U2|bob>.")
    event = mention("who knows?")
    await slack.send_event(event)
    await slack.settle()
    shown = slack.slack.bot_messages("C1", event["ts"])[0].text
    assert "<@" not in shown and "@\u2060bob" in shown


async def test_summoned_into_a_long_thread_it_reads_the_latest_messages_before_the_mention(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root_ts = next_ts()
    earlier = [{"user": "U1", "text": "root", "ts": root_ts}]
    earlier += [{"user": "UADMIN", "text": f"reply number {i}", "ts": next_ts()} for i in range(250)]
    slack.slack.seed_thread("C1", root_ts, earlier)
    await slack.send_event(mention("summarise please", thread_ts=root_ts))
    await slack.settle()
    first = fake_anthropic.message_requests[0]["messages"][0]["content"]
    assert "reply number 249" in first and "reply number 200" in first
    assert "reply number 199" not in first and "] root" not in first, "only the 50 messages before the mention"


@pytest.mark.parametrize(
    "signature",
    ["v0=" + "é" * 64, "v0=ẞ" + "0" * 63, "v0=\u202e" + "a" * 63, "\U0001f600"],
)
async def test_a_non_ascii_signature_with_a_current_timestamp_gets_401_without_an_error(
    slack: SlackHarness, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture, signature: str
) -> None:
    body = json.dumps(event_body(mention("hi"), "EvNonAscii"))
    response = await slack.post(body, headers={"X-Slack-Signature": signature})
    assert response.status == 401
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    await slack.settle()
    assert fake_anthropic.message_requests == []


FIVE_PEOPLE = "<@U2> <@U3> <@U4> <@U5> <@U6>"


async def test_names_slow_to_come_do_not_hold_the_ack_and_stand_as_ids(
    slack: SlackHarness, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    """Only verification, parsing and storage wait for the ack: every name of a message is
    looked up at once, within one small budget, and a name that does not come in time is the
    user's id. (The 20 s guard fails the test if the ack waited for `users.info`.)"""
    slack.slack.set_latency(30.0, "users.info")
    event = mention(f"ask {FIVE_PEOPLE} about it")
    response = await asyncio.wait_for(slack.send_event(event), timeout=20)
    assert response.status == 200
    await slack.settle()
    [reply] = [m.text for m in slack.slack.bot_messages("C1", event["ts"])]
    assert reply == 'You said: <message from="U1">ask @U2 @U3 @U4 @U5 @U6 about it</message>'
    waits = [r.getMessage() for r in caplog.records if "users.info too slow" in r.getMessage()]
    assert waits == ["slack: users.info too slow; using 6 user ids as names"], "one budget for all six names"


async def test_a_users_info_that_resets_the_connection_loses_nothing(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.drop_connections("users.info")
    event = mention(f"ask {FIVE_PEOPLE} about it")
    assert (await slack.send_event(event)).status == 200
    await slack.settle()
    [reply] = [m.text for m in slack.slack.bot_messages("C1", event["ts"])]
    assert reply == 'You said: <message from="U1">ask @U2 @U3 @U4 @U5 @U6 about it</message>', (
        "stored and answered, ids for names"
    )


async def test_a_bug_while_taking_an_event_answers_500_and_is_logged(
    slack: SlackHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only bad input gets a 4xx: our own failure is a 500 (Slack retries it), logged."""

    async def broken(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("a bug in the core")

    monkeypatch.setattr(slack.service.core.service, "submit", broken)
    assert (await slack.send_event(mention("hello"))).status == 500
    assert any(r.levelname == "ERROR" and "a listener failed" in r.getMessage() for r in caplog.records)
