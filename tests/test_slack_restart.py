"""Crash safety with a real process: `bot serve` (Slack in HTTP mode) killed with
SIGKILL and started again on the same database keeps each thread's history, loses
no user turn and gives no duplicate reply.

The service runs as a subprocess with an environment built from scratch (as in
tests/test_cli.py); the fake Anthropic and fake Slack APIs run in this test's event
loop, so the test can watch what the service asks Claude and what it posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import FakeSlack, event_body, sign_request
from tests.conftest import API_KEY
from tests.processes import ServeProcess, conversation, eventually, free_port, serve

SIGNING_SECRET = "slack-restart-signing-canary-41c9"
LIMIT_SECONDS = 30.0  # a failure guard for each wait, not a speed requirement
_ts = itertools.count(1)
_event_ids = itertools.count(1)


def next_ts() -> str:
    return f"1810000{next(_ts):03d}.000200"


@dataclass
class Deployment:
    """What an operator has: an environment, a working directory and a database that
    outlive any one process."""

    env: dict[str, str]
    cwd: Path
    slack: FakeSlack
    http: aiohttp.ClientSession
    processes: list[ServeProcess] = field(default_factory=list)

    async def start(self) -> ServeProcess:
        process = await serve({**self.env, "PORT": str(free_port())}, self.cwd)
        self.processes.append(process)
        await process.ready()
        async with self.http.get(process.url + "/healthz") as health:
            assert health.status == 200, process.output()
        return process

    async def send_event(
        self, process: ServeProcess, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> None:
        body = json.dumps(
            event_body(event, event_id or f"EvRestart{next(_event_ids)}", bot_user_id=self.slack.bot_user_id)
        ).encode()
        headers = {"Content-Type": "application/json", **sign_request(SIGNING_SECRET, body)}
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        async with self.http.post(process.url + "/slack/events", data=body, headers=headers) as response:
            assert response.status == 200, f"{response.status}: {await response.text()}\n{process.output()}"

    def finished_replies(self, channel: str, thread_ts: str) -> list[str]:
        """The bot's replies in a thread that are complete (not still streaming)."""
        return [m.text for m in self.slack.bot_messages(channel, thread_ts) if not m.is_streaming]

    async def wait_replies(self, process: ServeProcess, channel: str, thread_ts: str, count: int) -> list[str]:
        await eventually(
            lambda: (
                len(self.finished_replies(channel, thread_ts)) >= count
                and len(self.slack.bot_messages(channel, thread_ts)) == len(self.finished_replies(channel, thread_ts))
            ),
            f"{count} finished replies in {channel}/{thread_ts}",
            process,
        )
        return self.finished_replies(channel, thread_ts)


@pytest.fixture
async def deployment(
    tmp_path: Path, database_url: str, fake_anthropic: FakeAnthropic, fake_slack: FakeSlack
) -> AsyncIterator[Deployment]:
    """The fixture's database is migrated already (SQLite: `bot serve` would migrate it; PostgreSQL:
    the session fixture ran the migrations)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    path = ":".join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    env = {
        "PATH": path,
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "SLACK_BOT_TOKEN": fake_slack.bot_token or "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "RATE_USER_PER_MINUTE": "0",  # one person sends the whole storm
        "RATE_CHANNEL_PER_MINUTE": "0",
        "LOG_LEVEL": "DEBUG",
    }
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=LIMIT_SECONDS)) as http:
        deployed = Deployment(env, cwd, fake_slack, http)
        try:
            yield deployed
        finally:
            for process in deployed.processes:
                with contextlib.suppress(ProcessLookupError):
                    await process.kill()
    for process in deployed.processes:
        output = "\n".join(process.lines)
        assert API_KEY not in output, "the API key was logged"
        assert SIGNING_SECRET not in output, "the signing secret was logged"


def mention(text: str, *, ts: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@UBOT> {text}",
        "ts": ts or next_ts(),
        "channel": "C1",
        **extra,
    }


def thread_reply(text: str, thread_ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "channel",
        "user": "U1",
        "text": text,
        "ts": next_ts(),
        "channel": "C1",
        "thread_ts": thread_ts,
    }


async def test_a_thread_keeps_its_history_across_a_sigkill(
    deployment: Deployment, fake_anthropic: FakeAnthropic
) -> None:
    first = await deployment.start()
    root = mention("remember the word: heliotrope")
    await deployment.send_event(first, root)
    [answer] = await deployment.wait_replies(first, "C1", root["ts"], 1)
    assert answer == 'You said: <message from="mel">remember the word: heliotrope</message>'

    await first.kill()
    second = await deployment.start()
    await deployment.send_event(second, thread_reply("which word was it?", root["ts"]))
    replies = await deployment.wait_replies(second, "C1", root["ts"], 2)

    assert replies == [answer, 'You said: <message from="mel">which word was it?</message>'], (
        "answered in the thread, no mention needed"
    )
    assert len(fake_anthropic.message_requests) == 2
    assert conversation(fake_anthropic.message_requests[-1]) == [
        ("user", '<message from="mel">remember the word: heliotrope</message>'),
        ("assistant", answer),
        ("user", '<message from="mel">which word was it?</message>'),
    ], "the first turn and its answer survived the kill"


async def test_a_turn_killed_while_claude_answers_is_not_lost_and_not_answered_twice(
    deployment: Deployment, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 3.0
    first = await deployment.start()
    root = mention("first question, asked before the crash")
    await deployment.send_event(first, root, event_id="EvKilled")
    await eventually(lambda: fake_anthropic.in_flight == 1, "the question to reach Claude", first)
    assert deployment.slack.bot_messages("C1", root["ts"]) == [], "nothing was shown before the kill"
    await first.kill()

    fake_anthropic.latency = 0.0
    second = await deployment.start()
    await deployment.send_event(second, thread_reply("second question, after the restart", root["ts"]))
    [reply] = await deployment.wait_replies(second, "C1", root["ts"], 1)

    assert len(fake_anthropic.message_requests) == 2
    assert conversation(fake_anthropic.message_requests[-1]) == [
        (
            "user",
            '<message from="mel">first question, asked before the crash</message>\n\n'
            '<message from="mel">second question, after the restart</message>',
        ),
    ], "the unanswered turn was kept and merged with the next one"
    assert reply == (
        'You said: <message from="mel">first question, asked before the crash</message>\n\n'
        '<message from="mel">second question, after the restart</message>'
    )

    # A late redelivery of the killed turn's event is not answered again, and the
    # thread goes on with one reply per answered turn.
    await deployment.send_event(second, root, event_id="EvKilled", retry=1)
    await eventually(
        lambda: any("duplicate delivery dropped" in line for line in second.lines),
        "the redelivery to be dropped",
        second,
    )
    await deployment.send_event(second, thread_reply("third question", root["ts"]))
    replies = await deployment.wait_replies(second, "C1", root["ts"], 2)
    assert len(replies) == 2 and len(deployment.slack.bot_messages("C1", root["ts"])) == 2, replies
    assert len(fake_anthropic.message_requests) == 3
    assert [role for role, _ in conversation(fake_anthropic.message_requests[-1])] == ["user", "assistant", "user"]


async def test_a_turn_killed_mid_answer_is_answered_after_the_restart_with_nothing_else_sent(
    deployment: Deployment, fake_anthropic: FakeAnthropic
) -> None:
    """SIGKILL while Claude streams the answer, start again -> the answer arrives, once, and
    the dead process's :eyes: is cleared; Slack's retry of that (stored) event is not
    answered a second time, and nothing else needs to be sent."""
    deployment.env |= {"RECOVERY_INTERVAL_SECONDS": "0.5", "INSTANCE_DEAD_AFTER_SECONDS": "2"}
    # The first process has no agent sessions, so it shows :eyes:; the second has them (it
    # would show no reaction of its own) and must still clear the one left behind.
    deployment.slack.fail_next("agents.sessions.setStatus", "not_an_agent")
    fake_anthropic.latency = 5.0
    first = await deployment.start()
    root = mention("a question the first process never finished answering")
    await deployment.send_event(first, root, event_id="EvNeverAcked")
    await eventually(lambda: fake_anthropic.in_flight == 1, "the question to reach Claude", first)
    assert deployment.slack.reactions.get(("C1", root["ts"])) == ["eyes"]
    await first.kill()

    fake_anthropic.latency = 0.0
    second = await deployment.start()
    # Slack never got its 200 for the first delivery, say: its retry reaches the new process.
    await deployment.send_event(second, root, event_id="EvNeverAcked", retry=1)
    [reply] = await deployment.wait_replies(second, "C1", root["ts"], 1)

    assert reply == 'You said: <message from="mel">a question the first process never finished answering</message>'
    assert len(fake_anthropic.message_requests) == 2, "asked once by the dead process, once after the restart"
    await asyncio.sleep(2.0)  # several more recovery rounds: nothing is answered again
    assert len(deployment.finished_replies("C1", root["ts"])) == 1
    assert len(fake_anthropic.message_requests) == 2
    assert not deployment.slack.reactions.get(("C1", root["ts"])), "the progress cue left by the dead process is gone"
