"""Slack in Socket Mode, end to end: slack-sdk's real aiohttp Socket Mode client (what
Bolt's `AsyncSocketModeHandler` runs when `SLACK_APP_TOKEN` is set) connects to a
local websocket stand-in for Slack, which pushes envelopes and records the acks.

The protocol, as slack_sdk's `socket_mode.aiohttp.SocketModeClient` speaks it:
the client asks `apps.connections.open` (with the app-level token) for a `wss://`
URL, opens a websocket there and pings it; Slack greets with `{"type": "hello"}`,
then sends envelopes `{"envelope_id", "type", "payload", "accepts_response_payload",
"retry_attempt", "retry_reason"}` (`type`: `events_api`, `slash_commands`,
`interactive`); the app acks each one by sending `{"envelope_id": ...}` back
(plus a `payload` when it answers in the ack).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from pydantic import SecretStr

from bot.app import RunningService, running_service
from bot.config import Config
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import FakeSlack, event_body
from tests.slack_harness import mention

APP_TOKEN = "xapp-socket-canary-1-A1-0123"
WAIT_SECONDS = 20.0  # a failure guard, not a speed requirement
_envelopes = itertools.count(1)


class SocketModeStandIn:
    """Slack's Socket Mode endpoint on 127.0.0.1: greets each connection with `hello`,
    sends the envelopes a test gives it and records every message the app sends back."""

    def __init__(self) -> None:
        self.connections: list[web.WebSocketResponse] = []
        self.received: list[dict[str, Any]] = []  # every JSON text frame from the app, in order
        self.paths: list[str] = []  # the path and query each connection asked for
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/link/", self._connect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *_: object) -> None:
        for ws in self.connections:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=socket-ticket&app_id=A1"

    async def _connect(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings with pongs
        await ws.prepare(request)
        self.paths.append(request.path_qs)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.connections) + 1,
                "debug_info": {"host": "standin", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A1"},
            }
        )
        async with self._changed:
            self.connections.append(ws)
            self._changed.notify_all()
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                async with self._changed:
                    self.received.append(json.loads(frame.data))
                    self._changed.notify_all()
        return ws

    @property
    def open_connections(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self.connections if not ws.closed]

    async def wait_connected(self) -> web.WebSocketResponse:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: bool(self.open_connections)), WAIT_SECONDS)
        return self.open_connections[-1]

    async def send(self, envelope: dict[str, Any]) -> None:
        ws = await self.wait_connected()
        await ws.send_json(envelope)

    def acks_for(self, envelope_id: str) -> list[dict[str, Any]]:
        return [message for message in self.received if message.get("envelope_id") == envelope_id]

    async def wait_ack(self, envelope_id: str) -> dict[str, Any]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: bool(self.acks_for(envelope_id))), WAIT_SECONDS)
        return self.acks_for(envelope_id)[0]


def events_api_envelope(
    event: dict[str, Any], event_id: str, *, envelope_id: str | None = None, retry_attempt: int = 0
) -> dict[str, Any]:
    return {
        "envelope_id": envelope_id or f"env-{next(_envelopes)}",
        "type": "events_api",
        "payload": event_body(event, event_id),
        "accepts_response_payload": False,
        "retry_attempt": retry_attempt,
        "retry_reason": "timeout" if retry_attempt else "",
    }


def slash_command_envelope(
    text: str, response_url: str, *, user_id: str = "U1", channel_id: str = "C1"
) -> dict[str, Any]:
    """In Socket Mode a slash command's payload is a JSON object (over HTTP it is a form)."""
    return {
        "envelope_id": f"env-{next(_envelopes)}",
        "type": "slash_commands",
        "payload": {
            "token": "legacy-verification-token",
            "team_id": "T1",
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": "mel",
            "command": "/claude",
            "text": text,
            "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": "1.1.fake-trigger",
        },
        "accepts_response_payload": True,
    }


@dataclass
class SocketHarness:
    service: RunningService
    slack: FakeSlack
    socket: SocketModeStandIn

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    async def settle(self) -> None:
        """Wait until every delivery has been worked through."""
        deadline = time.monotonic() + WAIT_SECONDS
        await asyncio.sleep(0.05)
        await asyncio.wait_for(self.service.core.service.tasks.idle(), timeout=max(0.0, deadline - time.monotonic()))


@pytest.fixture
async def socket_standin() -> AsyncIterator[SocketModeStandIn]:
    async with SocketModeStandIn() as standin:
        yield standin


@pytest.fixture
async def fake_slack(socket_standin: SocketModeStandIn) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(app_token=APP_TOKEN, socket_mode_url=socket_standin.url) as fake:
        yield fake


@pytest.fixture
async def socket_mode(
    config: Config, fake_slack: FakeSlack, socket_standin: SocketModeStandIn
) -> AsyncIterator[SocketHarness]:
    configured = config.model_copy(
        update={
            "slack_bot_token": SecretStr(fake_slack.bot_token or "xoxb-test-token"),
            "slack_app_token": SecretStr(APP_TOKEN),
            "slack_signing_secret": None,
            "slack_api_url": fake_slack.api_url,
            "host": "127.0.0.1",
            "port": 0,
        }
    )
    async with running_service(configured) as service:
        yield SocketHarness(service, fake_slack, socket_standin)


async def test_the_service_connects_with_the_app_token_and_serves_no_events_route(socket_mode: SocketHarness) -> None:
    await socket_mode.socket.wait_connected()
    [opened] = socket_mode.slack.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN and opened.ok
    assert socket_mode.socket.paths == ["/link/?ticket=socket-ticket&app_id=A1"]
    async with aiohttp.ClientSession() as http:
        async with http.post(socket_mode.url + "/slack/events", data=b"{}") as response:
            assert response.status == 404, "in Socket Mode nothing is served at POST /slack/events"
        async with http.get(socket_mode.url + "/healthz") as health:
            assert health.status == 200


async def test_a_mention_envelope_is_acked_and_answered_once_even_when_redelivered(
    socket_mode: SocketHarness, fake_anthropic: FakeAnthropic
) -> None:
    event = mention("what is 2+2?")
    envelope = events_api_envelope(event, "EvSocket1")

    await socket_mode.socket.send(envelope)
    ack = await socket_mode.socket.wait_ack(envelope["envelope_id"])
    assert ack == {"envelope_id": envelope["envelope_id"]}
    await socket_mode.settle()

    assert [m.text for m in socket_mode.slack.bot_messages("C1", event["ts"])] == [
        'You said: <message from="mel">what is 2+2?</message>'
    ]
    assert [r["messages"] for r in fake_anthropic.message_requests] == [
        [{"role": "user", "content": '<message from="mel">what is 2+2?</message>'}]
    ]

    # Slack redelivers an envelope it thinks was not acked in time: new envelope id, same event.
    retry = events_api_envelope(event, "EvSocket1", retry_attempt=1)
    await socket_mode.socket.send(retry)
    assert await socket_mode.socket.wait_ack(retry["envelope_id"]) == {"envelope_id": retry["envelope_id"]}
    await socket_mode.settle()

    assert len(socket_mode.slack.bot_messages("C1", event["ts"])) == 1, "the retry gave no second reply"
    assert len(fake_anthropic.message_requests) == 1
    assert len(socket_mode.socket.acks_for(envelope["envelope_id"])) == 1, "each envelope is acked exactly once"


async def test_a_retry_sent_while_the_first_delivery_is_being_answered_gives_one_reply(
    socket_mode: SocketHarness, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.latency = 2.0
    event = mention("slow one")
    first = events_api_envelope(event, "EvSocket2")
    retry = events_api_envelope(event, "EvSocket2", retry_attempt=1)

    await socket_mode.socket.send(first)
    await socket_mode.socket.wait_ack(first["envelope_id"])
    # Acked at once: Claude has not answered yet (Slack redelivers what is not acked within 3 s).
    assert socket_mode.slack.bot_messages("C1", event["ts"]) == []
    await socket_mode.socket.send(retry)
    await socket_mode.socket.wait_ack(retry["envelope_id"])
    await socket_mode.settle()

    assert len(fake_anthropic.message_requests) == 1
    assert len(socket_mode.slack.bot_messages("C1", event["ts"])) == 1


async def test_a_slash_command_envelope_is_acked_and_answered_at_its_response_url(
    socket_mode: SocketHarness, fake_anthropic: FakeAnthropic
) -> None:
    response_url = socket_mode.slack.response_url("show1")
    envelope = slash_command_envelope("show", response_url)

    await socket_mode.socket.send(envelope)
    ack = await socket_mode.socket.wait_ack(envelope["envelope_id"])
    assert ack["envelope_id"] == envelope["envelope_id"]
    assert not ack.get("payload"), "the ack carries no answer: the answer goes to the response URL"
    await socket_mode.settle()

    [answer] = socket_mode.slack.responses_to("show1")
    assert answer.response_type == "ephemeral"
    assert "claude-sonnet-5-5" in answer.text
    assert fake_anthropic.message_requests == [], "a command is not a message to Claude"


async def test_after_slack_asks_to_reconnect_the_new_connection_is_served(
    socket_mode: SocketHarness, fake_anthropic: FakeAnthropic
) -> None:
    """Slack refreshes Socket Mode connections now and then: it sends `disconnect`, and the
    client opens a new one through `apps.connections.open`."""
    first = await socket_mode.socket.wait_connected()
    await first.send_json({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "standin"}})
    deadline = time.monotonic() + WAIT_SECONDS
    while len(socket_mode.socket.connections) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(socket_mode.socket.connections) == 2, "the client reconnected"
    assert len(socket_mode.slack.calls_to("apps.connections.open")) == 2

    event = mention("still there?")
    envelope = events_api_envelope(event, "EvSocket3")
    await socket_mode.socket.send(envelope)  # over the newest open connection
    await socket_mode.socket.wait_ack(envelope["envelope_id"])
    await socket_mode.settle()
    assert [m.text for m in socket_mode.slack.bot_messages("C1", event["ts"])] == [
        'You said: <message from="mel">still there?</message>'
    ]


async def test_the_websocket_is_closed_when_the_service_stops(
    config: Config, fake_slack: FakeSlack, socket_standin: SocketModeStandIn
) -> None:
    configured = config.model_copy(
        update={
            "slack_bot_token": SecretStr(fake_slack.bot_token or "xoxb-test-token"),
            "slack_app_token": SecretStr(APP_TOKEN),
            "slack_api_url": fake_slack.api_url,
            "host": "127.0.0.1",
            "port": 0,
        }
    )
    async with running_service(configured):
        ws = await socket_standin.wait_connected()
    deadline = time.monotonic() + WAIT_SECONDS
    while not ws.closed and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert ws.closed, "stopping the service closes the Socket Mode connection"
    assert len(socket_standin.connections) == 1, "no reconnection attempt during shutdown"
