"""Bursts against `bot serve` in its own process (`bench/service.py`), with the fake
Anthropic API answering after 1 s in its own process:

- Slack over HTTP: `count` mentions posted at once, each delivered as Slack delivers
  a mention in a channel: an `app_mention` and a `message` event (two event ids),
  each signed, on its own connection. Figures: the slowest ack and the p99 ack of
  those deliveries (Slack retries what is not acked within 3 s; every delivery here
  is a first delivery), seconds until the last answer is complete at the fake Slack,
  the peak number of Claude calls in flight, and the service's CPU per mention.
- Discord: `count` mentions sent at once through the fake gateway (MESSAGE_CREATE
  on the bot's websocket); seconds until the last answer is complete at the fake
  Discord REST API, and the service's CPU per message.

The service's CPU is counted from just before the burst until the last answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import ECHO_PREFIX, SIGNING_SECRET, bench_config, migrated, percentile
from bench.service import THINNEST, claude_peak, cpu_seconds, service_environment, service_process, until
from fakes.discord_gateway import FakeGateway
from fakes.discord_server import FakeDiscord, guild_payload, text_channel, user_payload
from fakes.slack_server import FakeSlack, event_body, sign_request
from tests.processes import ServeProcess

DISCORD_TOKEN = "bench-discord-token"


@contextlib.asynccontextmanager
async def _served(
    database_url: str, anthropic_url: str, settings: dict[str, str], *, thinnest: bool = False
) -> AsyncIterator[ServeProcess]:
    if not thinnest:
        await migrated(bench_config(database_url, anthropic_url))
    with tempfile.TemporaryDirectory() as home:
        env = service_environment(database_url, anthropic_url, Path(home), **settings)
        async with service_process(env, Path(home), THINNEST if thinnest else None) as service:
            yield service


# -- Slack ----------------------------------------------------------------------------------------


def _post(slack: FakeSlack, number: int) -> None:
    """The post is in the channel before Slack delivers it, as on Slack."""
    slack.seed_message("C1", f"<@UBOT> question {number}", user="U1", ts=_ts(number))


def _ts(number: int) -> str:
    return f"1900{number:06d}.000100"


def _deliveries(number: int) -> tuple[str, list[bytes]]:
    """A post that mentions the bot, as Slack delivers it: (its ts, the two signed event bodies)."""
    ts = _ts(number)
    text = f"<@UBOT> question {number}"
    mention = {"type": "app_mention", "user": "U1", "text": text, "ts": ts, "channel": "C1"}
    message = {"type": "message", "channel_type": "channel", "user": "U1", "text": text, "ts": ts, "channel": "C1"}
    bodies = [
        json.dumps(event_body(mention, f"EvBurstA{number}")).encode(),
        json.dumps(event_body(message, f"EvBurstM{number}")).encode(),
    ]
    return ts, bodies


async def _deliver(http: aiohttp.ClientSession, url: str, body: bytes) -> float:
    """Seconds until the service acked this delivery (HTTP 200)."""
    headers = {"Content-Type": "application/json", **sign_request(SIGNING_SECRET, body)}
    started = time.perf_counter()
    async with http.post(url, data=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"the service answered an event with HTTP {response.status}")
    return time.perf_counter() - started


def _answered_threads(slack: FakeSlack) -> set[str | None]:
    return {m.thread_ts for m in slack.messages if not m.is_streaming and m.text.startswith(ECHO_PREFIX)}


async def thinnest_burst(
    database_url: str, anthropic_url: str, count: int = 200
) -> tuple[float, float, float, float, float] | None:
    """`slack_burst` against `bench/thinnest.py` (SQLite only: None on another database)."""
    if not database_url.startswith("sqlite"):
        return None
    return await slack_burst(database_url, anthropic_url, count, thinnest=True)


async def slack_burst(
    database_url: str, anthropic_url: str, count: int = 200, *, thinnest: bool = False
) -> tuple[float, float, float, float, float]:
    """(slowest ack s, p99 ack s, last answer s, peak Claude calls, service CPU ms per mention)."""
    async with FakeSlack() as slack:
        settings = {
            "SLACK_BOT_TOKEN": slack.bot_token or "",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
        }
        connector = aiohttp.TCPConnector(limit=0)  # Slack opens a connection per delivery
        async with (
            _served(database_url, anthropic_url, settings, thinnest=thinnest) as service,
            aiohttp.ClientSession(connector=connector) as http,
        ):
            url = service.url + "/slack/events"
            warm_ts, warm = _deliveries(0)  # connections, the model list, the bot's own identity
            _post(slack, 0)
            await asyncio.gather(*(_deliver(http, url, body) for body in warm))
            await until(lambda: warm_ts in _answered_threads(slack), "the warm-up answer", service)
            await claude_peak(http, anthropic_url, reset=True)
            posts = [_deliveries(n) for n in range(1, count + 1)]
            for number in range(1, count + 1):
                _post(slack, number)
            cpu_before = cpu_seconds(service)
            started = time.perf_counter()
            try:
                acks = await asyncio.gather(*(_deliver(http, url, body) for _, bodies in posts for body in bodies))
            except RuntimeError as error:
                raise RuntimeError(f"{error}\n{service.output()}") from None
            expected: set[str | None] = {ts for ts, _ in posts}
            await until(lambda: expected <= _answered_threads(slack), f"{count} Slack answers", service, 0.01)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(service) - cpu_before
            peak = await claude_peak(http, anthropic_url)
    return max(acks), percentile(list(acks), 99), elapsed, float(peak), cpu / count * 1000


# -- Discord --------------------------------------------------------------------------------------


def _finished_answers(rest: FakeDiscord) -> int:
    """The bot's messages that hold a complete echoed answer."""
    return sum(1 for m in rest.all_sent() if m.content.startswith(ECHO_PREFIX) and m.content.endswith("</message>"))


async def discord_burst(database_url: str, anthropic_url: str, count: int = 200) -> tuple[float, float]:
    """(last answer s, service CPU ms per message)."""
    async with FakeDiscord(token=DISCORD_TOKEN, interaction_ack_timeout=None) as rest, FakeGateway(rest) as gateway:
        guild_id = int(rest.bot_user["id"]) + 1
        person = rest.add_user(user_payload(None, "alice", global_name="Alice"))
        channel = text_channel(None, "general", guild_id=guild_id)
        rest.add_guild(guild_payload(guild_id, owner_id=person["id"], channels=[channel], bot_user=rest.bot_user))
        settings = {"DISCORD_TOKEN": DISCORD_TOKEN, "DISCORD_API_URL": rest.api_base}

        async def mention(number: int) -> Any:
            text = f"<@{rest.bot_user['id']}> question {number}"
            return await gateway.post(channel["id"], person, text, guild_id=guild_id, mentions=[rest.bot_user])

        async with _served(database_url, anthropic_url, settings) as service:
            await mention(0)
            await until(lambda: _finished_answers(rest) >= 1, "the warm-up answer", service)
            cpu_before = cpu_seconds(service)
            started = time.perf_counter()
            await asyncio.gather(*(mention(n) for n in range(1, count + 1)))
            await until(lambda: _finished_answers(rest) >= count + 1, f"{count} Discord answers", service, 0.01)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(service) - cpu_before
    return elapsed, cpu / count * 1000
