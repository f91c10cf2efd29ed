"""What an operator sees: /metrics, /healthz, and JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import aiohttp

from bot.app import running_service
from bot.config import Config
from bot.health import HEALTH_TTL_SECONDS
from bot.logs import configure_logging
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, thread


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_count_replies_tokens_duplicates_and_errors(
    config: Config, fake_anthropic: FakeAnthropic
) -> None:
    configured = config.model_copy(update={"host": "127.0.0.1", "port": 0, "metrics_port": 0})
    async with running_service(configured) as service, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{service.metrics_port}/metrics"
        async with http.get(url) as response:
            before = await response.text()
        adapter = RecordingPlatform()
        event = message(thread(), "hello")
        await adapter.deliver(service.core.service, event)
        await adapter.deliver(service.core.service, event)  # a second delivery
        fake_anthropic.fail_always(401)
        await adapter.deliver(service.core.service, message(thread("2.2"), "again"))
        async with http.get(url) as response:
            assert response.status == 200
            after = await response.text()

    def grew(name: str) -> float:
        return sample(after, name) - sample(before, name)

    assert grew('bot_replies_total{platform="test"}') == 1
    assert grew("bot_duplicates_dropped_total") == 1
    assert grew('bot_errors_total{kind="auth"}') == 1
    assert grew('bot_claude_tokens_total{kind="output"}') == fake_anthropic.usages[0]["output_tokens"]
    assert grew("bot_claude_seconds_count") == 2
    assert "bot_claude_calls_in_flight 0.0" in after


async def test_metrics_are_served_on_their_own_port_only(config: Config) -> None:
    configured = config.model_copy(update={"host": "127.0.0.1", "port": 0, "metrics_port": 0})
    async with running_service(configured) as service, aiohttp.ClientSession() as http:
        assert service.metrics_port not in (None, service.port)
        async with http.get(f"http://127.0.0.1:{service.port}/metrics") as response:
            assert response.status == 404, "not on the events port"
        async with http.get(f"http://127.0.0.1:{service.metrics_port}/metrics") as response:
            assert response.status == 200 and "bot_replies_total" in await response.text()
        async with http.get(f"http://127.0.0.1:{service.metrics_port}/healthz") as response:
            assert response.status == 404, "the metrics port serves metrics alone"


async def test_metrics_are_off_by_default(config: Config) -> None:
    assert config.metrics_port is None
    configured = config.model_copy(update={"host": "127.0.0.1", "port": 0})
    async with running_service(configured) as service, aiohttp.ClientSession() as http:
        assert service.metrics_port is None
        async with http.get(f"http://127.0.0.1:{service.port}/metrics") as response:
            assert response.status == 404


async def test_healthz_reports_the_database(config: Config) -> None:
    configured = config.model_copy(update={"host": "127.0.0.1", "port": 0})
    async with running_service(configured) as service, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{service.port}/healthz") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_healthz_asks_the_database_once_per_two_seconds_however_often_it_is_polled(config: Config) -> None:
    configured = config.model_copy(update={"host": "127.0.0.1", "port": 0})
    async with running_service(configured) as service, aiohttp.ClientSession() as http:
        clock = service.health.clock = FakeClock()

        async def status() -> int:
            async with http.get(f"http://127.0.0.1:{service.port}/healthz") as response:
                return response.status

        assert await status() == 200
        assert service.health.pings == 1
        assert await asyncio.gather(*(status() for _ in range(50))) == [200] * 50
        assert service.health.pings == 1, "fifty checks within two seconds: one database round trip"
        clock.now += HEALTH_TTL_SECONDS
        assert await status() == 200
        assert service.health.pings == 2, "then it asks again"


def test_json_logs_are_one_object_per_line_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", ["sk-ant-json-canary-42"], "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("bot.test").info("key %s in use", "sk-ant-json-canary-42")
    try:
        raise ValueError("sk-ant-json-canary-42")
    except ValueError:
        logging.getLogger("bot.test").exception("failed")
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one JSON object
    lines = [entry for entry in entries if entry["logger"] == "bot.test"]  # (not a straggler's thread)
    assert [entry["level"] for entry in lines] == ["INFO", "ERROR"]
    assert lines[0]["message"] == "key [redacted] in use" and lines[0]["logger"] == "bot.test"
    assert "sk-ant-json-canary-42" not in stream.getvalue() and "exception" in lines[1]
