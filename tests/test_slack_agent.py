"""Slack's agent messaging experience and the conversation controls, end to end: signed
events and interactive payloads into `POST /slack/events`, the fake Slack Web API out."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from bot.schema import answer_feedback, messages
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import SlackMessage, block_actions_body
from tests.slack_harness import SlackHarness, channel_message, dm, mention, next_ts


def home_opened(channel: str = "D1", user: str = "U1", tab: str = "messages") -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": next_ts()}


async def click(harness: SlackHarness, action: dict[str, Any], message: SlackMessage, user: str = "U1") -> None:
    body = block_actions_body(
        action, user_id=user, channel_id=message.channel, message_ts=message.ts, thread_ts=message.thread_ts
    )
    response = await harness.post(body, content_type="application/x-www-form-urlencoded")
    assert response.status == 200


def controls_of(message: SlackMessage) -> dict[str, dict[str, Any]]:
    """action_id -> element, for the controls under a message."""
    found = {}
    for block in message.blocks or []:
        for element in block.get("elements", []):
            if "action_id" in element:
                found[element["action_id"]] = element
    return found


def feedback(message: SlackMessage, positive: bool) -> dict[str, Any]:
    buttons = controls_of(message)["claude_feedback"]
    value = buttons["positive_button" if positive else "negative_button"]["value"]
    return {"type": "feedback_buttons", "action_id": "claude_feedback", "block_id": "b", "value": value}


def button(message: SlackMessage, action_id: str) -> dict[str, Any]:
    value = controls_of(message)[action_id]["value"]
    return {"type": "button", "action_id": action_id, "block_id": "b", "value": value}


async def stored(harness: SlackHarness, table: Any, *columns: Any) -> list[Any]:
    async with harness.service.core.store.engine.connect() as conn:
        return list((await conn.execute(select(*columns).select_from(table).order_by(table.c.id))).all())


# --------------------------------------------------------------------------- the agent view


async def test_opening_the_dm_in_the_agent_view_greets_once_and_offers_the_prompts(slack: SlackHarness) -> None:
    await slack.send_event(home_opened())
    await slack.send_event(home_opened())
    await slack.send_event(home_opened(tab="home"))
    await slack.settle()
    greetings = [m for m in slack.slack.messages if m.channel == "D1"]
    assert len(greetings) == 1 and "Claude" in greetings[0].text
    assert greetings[0].params["unfurl_links"] is False
    assert slack.slack.suggested_prompts[("D1", None)], "prompts offered for the DM (no thread_ts in the agent view)"


async def test_each_top_level_dm_message_is_its_own_thread_and_conversation(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    first, second = dm("remember: blue"), dm("what colour?")
    await slack.send_event(first)
    await slack.settle()
    await slack.send_event(second)
    await slack.settle()
    assert len(slack.slack.bot_messages("D1", first["ts"])) == 1
    assert len(slack.slack.bot_messages("D1", second["ts"])) == 1
    assert len(fake_anthropic.message_requests[1]["messages"]) == 1, "the second thread starts afresh"


async def test_an_answer_runs_inside_its_agent_session_titled_once(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("plan the offsite\nwith details")
    await slack.send_event(root)
    await slack.settle()
    key = ("C1", root["ts"])
    assert slack.slack.sessions[key] == ["processing", "active"]
    assert slack.slack.session_titles[key] == "plan the offsite"
    await slack.send_event(channel_message("and the budget?", thread_ts=root["ts"]))
    await slack.settle()
    assert slack.slack.sessions[key] == ["processing", "active", "processing", "active"]
    calls = slack.slack.calls_to("agents.sessions.setStatus")
    assert [c.params.get("title") for c in calls if c.params["status"] == "processing"] == ["plan the offsite", None]


async def test_a_failed_answer_also_leaves_the_session_active(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.fail_always(400)
    event = mention("hello")
    await slack.send_event(event)
    await slack.settle()
    assert slack.slack.session_status("C1", event["ts"]) == "active"
    assert slack.slack.bot_messages("C1", event["ts"]), "the person was told"


async def test_an_app_without_agent_sessions_answers_all_the_same_and_stops_asking(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.fail_next("agents.sessions.setStatus", "unknown_method")
    for _ in range(2):
        event = mention("hi")
        await slack.send_event(event)
        await slack.settle()
        assert slack.slack.bot_messages("C1", event["ts"])
    assert len(slack.slack.calls_to("agents.sessions.setStatus")) == 1


# --------------------------------------------------------------------------- stop


async def test_a_stop_click_mid_stream_ends_the_answer_keeps_it_and_frees_the_thread(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    words = "".join(f"word{i}\n" for i in range(400)).strip()
    fake_anthropic.queue_reply(words)
    fake_anthropic.chunk_delay = 0.02
    root = mention("write a lot")
    await slack.send_event(root)
    for _ in range(500):
        if slack.slack.calls_to("chat.appendStream"):
            break
        await asyncio.sleep(0.02)
    await slack.send_event(slack.slack.click_stop("C1", root["ts"]))
    await slack.settle()
    fake_anthropic.chunk_delay = 0.0

    [answer] = slack.slack.bot_messages("C1", root["ts"])
    assert answer.text.startswith("word0\n") and answer.text.endswith("_(stopped)_")
    assert "word399" not in answer.text, "Claude's stream was cut"
    [(content, stop_reason)] = (await stored(slack, messages, messages.c.content, messages.c.stop_reason))[1:]
    assert stop_reason == "stopped" and content == answer.text
    assert slack.slack.session_status("C1", root["ts"]) == "active"

    await slack.send_event(channel_message("go on", thread_ts=root["ts"]))
    await slack.settle()
    later = slack.slack.bot_messages("C1", root["ts"])
    assert len(later) == 2 and later[1].text.startswith("You said:"), "the next message is answered normally"


async def test_only_the_asker_or_an_admin_may_stop(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.queue_reply("".join(f"w{i}\n" for i in range(200)).strip())
    fake_anthropic.chunk_delay = 0.02
    root = mention("go")
    await slack.send_event(root)
    for _ in range(500):
        if slack.slack.calls_to("chat.appendStream"):
            break
        await asyncio.sleep(0.02)
    await slack.send_event(slack.slack.click_stop("C1", root["ts"], user="U2"))
    await slack.settle()
    [notice] = slack.slack.ephemeral
    assert notice["user"] == "U2" and notice["text"].startswith("Only the person who asked")
    assert "w199" in slack.slack.bot_messages("C1", root["ts"])[0].text, "the answer went on"


# --------------------------------------------------------------------------- feedback


async def test_feedback_is_stored_once_per_person_and_changed_by_a_second_click(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("rate me")
    await slack.send_event(root)
    await slack.settle()
    [answer] = slack.slack.bot_messages("C1", root["ts"])
    await click(slack, feedback(answer, True), answer)
    await click(slack, feedback(answer, True), answer, user="U2")
    await slack.settle()
    votes = await stored(slack, answer_feedback, answer_feedback.c.user_id, answer_feedback.c.positive,
                         answer_feedback.c.model)
    assert sorted(votes) == [("U1", True, "claude-sonnet-5-5"), ("U2", True, "claude-sonnet-5-5")]
    await click(slack, feedback(answer, False), answer)
    votes = await stored(slack, answer_feedback, answer_feedback.c.user_id, answer_feedback.c.positive)
    assert sorted(votes) == [("U1", False), ("U2", True)]

    response_id = await slack.send_command("usage", user_id="UADMIN")
    await slack.settle()
    assert "feedback 1 up / 1 down" in slack.slack.responses_to(response_id)[0].text


async def test_the_final_message_carries_the_controls_when_not_streaming(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    slack.slack.refuse_streaming_in("C1")
    root = mention("hello")
    await slack.send_event(root)
    await slack.settle()
    [answer] = slack.slack.bot_messages("C1", root["ts"])
    assert {"claude_feedback", "claude_regenerate"} <= set(controls_of(answer))
    assert answer.visible_text.startswith("You said:")


# --------------------------------------------------------------------------- regenerate and continue


async def test_regenerate_by_the_asker_answers_again_without_resending_the_old_answer(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("tell me a joke")
    await slack.send_event(root)
    await slack.settle()
    [first] = slack.slack.bot_messages("C1", root["ts"])
    fake_anthropic.queue_reply("a better joke")
    await click(slack, button(first, "claude_regenerate"), first)
    await slack.settle()
    answers = slack.slack.bot_messages("C1", root["ts"])
    assert [m.text for m in answers][1] == "a better joke"
    assert [m["role"] for m in fake_anthropic.message_requests[-1]["messages"]] == ["user"]
    rows = await stored(slack, messages, messages.c.id, messages.c.role, messages.c.superseded)
    assert [(r.role, r.superseded) for r in rows] == [("user", False), ("assistant", True), ("assistant", False)]

    await slack.send_event(channel_message("another", thread_ts=root["ts"]))
    await slack.settle()
    sent = fake_anthropic.message_requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"] and "better" in str(sent[1]["content"])


async def test_regenerate_by_someone_else_is_refused(slack: SlackHarness, fake_anthropic: FakeAnthropic) -> None:
    root = mention("tell me a joke")
    await slack.send_event(root)
    await slack.settle()
    [first] = slack.slack.bot_messages("C1", root["ts"])
    await click(slack, button(first, "claude_regenerate"), first, user="U2")
    await slack.settle()
    assert len(slack.slack.bot_messages("C1", root["ts"])) == 1
    assert slack.slack.ephemeral[-1]["text"] == "Only the person who asked, or an admin, can regenerate this answer."
    await click(slack, button(first, "claude_regenerate"), first, user="UADMIN")
    await slack.settle()
    assert len(slack.slack.bot_messages("C1", root["ts"])) == 2, "an admin may"


async def test_continue_after_a_cut_off_shows_the_continuation_as_the_next_message(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.queue_reply("the first half", stop_reason="max_tokens")
    root = mention("write an essay")
    await slack.send_event(root)
    await slack.settle()
    [cut] = slack.slack.bot_messages("C1", root["ts"])
    assert "claude_continue" in controls_of(cut)
    fake_anthropic.queue_reply("and the second half")
    await click(slack, button(cut, "claude_continue"), cut, user="U2")  # anyone may
    await slack.settle()
    answers = slack.slack.bot_messages("C1", root["ts"])
    assert [m.text for m in answers][1] == "and the second half"
    sent = fake_anthropic.message_requests[-1]["messages"]
    assert sent[-2]["role"] == "assistant" and "first half" in str(sent[-2]["content"])
    [(content,)] = (await stored(slack, messages, messages.c.content))[1:]
    assert content == "the first half\n\nand the second half"


async def test_a_slow_slack_does_not_hold_the_ack_of_a_feedback_click(
    slack: SlackHarness, fake_anthropic: FakeAnthropic
) -> None:
    root = mention("rate me")
    await slack.send_event(root)
    await slack.settle()
    [answer] = slack.slack.bot_messages("C1", root["ts"])
    slack.slack.set_latency(30.0, "chat.postEphemeral")
    await click(slack, feedback(answer, True), answer)  # answered (200) ...
    [notice] = slack.slack.calls_to("chat.postEphemeral")
    assert notice.status is None, "... while the thank-you note was still on its way"
    assert await stored(slack, answer_feedback, answer_feedback.c.user_id) == [("U1",)]
    slack.slack.set_latency(0.0, "chat.postEphemeral")
