"""The whole service with Slack in HTTP mode: signed requests into `POST /slack/events`
through aiohttp and real Bolt, the fake Slack Web API and the fake Anthropic API."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from adapters.slack import SlackAdapter
from bot.app import RunningService, running_service
from bot.config import Config
from fakes.slack_server import FakeSlack, event_body, sign_request, slash_command_body

SIGNING_SECRET = "slack-signing-canary-7d1e2f"
_ts = itertools.count(1)


def next_ts() -> str:
    return f"1800000{next(_ts):03d}.000100"


@dataclass
class SlackHarness:
    service: RunningService
    slack: FakeSlack
    http: aiohttp.ClientSession

    @property
    def adapter(self) -> SlackAdapter:
        adapter = self.service.platforms[0]
        assert isinstance(adapter, SlackAdapter)
        return adapter

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    async def post(
        self,
        body: bytes | str,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
    ) -> aiohttp.ClientResponse:
        raw = body.encode() if isinstance(body, str) else body
        all_headers = {"Content-Type": content_type, **sign_request(secret, raw, timestamp), **(headers or {})}
        async with self.http.post(self.url + "/slack/events", data=raw, headers=all_headers) as response:
            await response.read()
            return response

    async def send_event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> aiohttp.ClientResponse:
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        body = event_body(event, event_id or f"Ev{next(_ts)}", bot_user_id=self.slack.bot_user_id)
        return await self.post(json.dumps(body), headers=headers)

    async def send_command(self, text: str, *, user_id: str = "U1", channel_id: str = "C1") -> str:
        """Runs `/claude <text>` and returns the response_url id its answer goes to."""
        response_id = f"cmd{next(_ts)}"
        body = slash_command_body(
            text=text, user_id=user_id, channel_id=channel_id, response_url=self.slack.response_url(response_id)
        )
        response = await self.post(body, content_type="application/x-www-form-urlencoded")
        assert response.status == 200
        return response_id

    async def settle(self, within: float = 20.0) -> None:
        """Wait until every delivery has been worked through."""
        deadline = time.monotonic() + within
        await asyncio.sleep(0.05)
        await asyncio.wait_for(self.service.core.service.tasks.idle(), timeout=max(0.0, deadline - time.monotonic()))


def mention(text: str, *, user: str = "U1", channel: str = "C1", ts: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": user,
        "text": f"<@UBOT> {text}",
        "ts": ts or next_ts(),
        "channel": channel,
        **extra,
    }


def channel_message(
    text: str, *, user: str = "U1", channel: str = "C1", ts: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "channel",
        "user": user,
        "text": text,
        "ts": ts or next_ts(),
        "channel": channel,
        **extra,
    }


def dm(text: str, *, user: str = "U1", channel: str = "D1", **extra: Any) -> dict[str, Any]:
    return channel_message(text, user=user, channel=channel, channel_type="im", **extra)


@asynccontextmanager
async def slack_service(config: Config, slack: FakeSlack) -> AsyncIterator[SlackHarness]:
    configured = config.model_copy(
        update={
            "slack_bot_token": SecretStr(slack.bot_token or "xoxb-test-token"),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": slack.api_url,
            "host": "127.0.0.1",
            "port": 0,
        }
    )
    async with running_service(configured) as service, aiohttp.ClientSession() as http:
        yield SlackHarness(service, slack, http)
