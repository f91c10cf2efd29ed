"""A database outage, as the service sees one: PostgreSQL reached through a proxy on
127.0.0.1 that the test cuts (every connection reset, new ones refused) and restores.
An event that cannot be stored gets 503, so Slack delivers it again; when the database
is back the retry is answered once; answers under way end in their answer or a clear
sentence; /healthz says so and recovers by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.config import Config
from bot.health import HEALTH_TTL_SECONDS
from fakes.anthropic_server import FakeAnthropic
from fakes.slack_server import FakeSlack
from fakes.tcp_proxy import CuttableProxy
from tests.conftest import POSTGRES_URL
from tests.slack_harness import SlackHarness, mention, slack_service
from tests.test_observability import FakeClock

pytestmark = pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL (TEST_DATABASE_URL)")


@pytest.fixture
async def slack_through_proxy(
    config: Config, fake_slack: FakeSlack, proxy: CuttableProxy
) -> AsyncIterator[SlackHarness]:
    url = make_url(config.database_url).set(port=proxy.port)
    proxied = config.model_copy(update={"database_url": url.render_as_string(hide_password=False)})
    async with slack_service(proxied, fake_slack) as harness:
        yield harness


def finished(slack: SlackHarness, event: dict[str, Any]) -> list[str]:
    return [m.text for m in slack.slack.bot_messages(event["channel"], event["ts"]) if not m.is_streaming]


async def health(slack: SlackHarness) -> int:
    async with slack.http.get(slack.url + "/healthz") as response:
        return response.status


async def test_an_event_arriving_during_an_outage_gets_503_and_its_retry_is_answered_once(
    slack_through_proxy: SlackHarness, proxy: CuttableProxy, fake_anthropic: FakeAnthropic
) -> None:
    slack = slack_through_proxy
    event = mention("are you there?")
    proxy.cut()
    assert (await slack.send_event(event, event_id="EvOutage")).status == 503, "try again later, said honestly"
    assert await health(slack) == 503

    proxy.restore()
    assert (await slack.send_event(event, event_id="EvOutage", retry=1)).status == 200
    await slack.settle()
    assert finished(slack, event) == ['You said: <message from="mel">are you there?</message>']
    assert len(fake_anthropic.message_requests) == 1
    assert await health(slack) == 200, "healthy again by itself"


@pytest.mark.xfail(
    strict=False,
    reason="known bug (stop 21): an intake whose COMMIT reached PostgreSQL but whose reply was cut by the "
    "restart is answered 503; Slack's retry then finds the claim and is dropped as a duplicate, and the stored "
    "turn, owned by this live instance, is never answered (recovery takes only dead instances' turns)",
)
async def test_a_database_restart_under_50_conversations_answers_each_once_or_says_what_happened(
    slack_through_proxy: SlackHarness, proxy: CuttableProxy, fake_anthropic: FakeAnthropic
) -> None:
    slack = slack_through_proxy
    fake_anthropic.latency = 0.5
    events = [mention(f"conversation {i}", channel=f"C{i % 5}") for i in range(50)]
    refused: list[int] = []

    async def deliver_as_slack_does(number: int, event: dict[str, Any]) -> None:
        await asyncio.sleep(number * 0.03)
        for attempt in range(20):  # Slack retries a failed delivery (here sooner than it would)
            response = await slack.send_event(event, event_id=f"EvRestart{number}", retry=attempt or None)
            if response.status == 200:
                return
            assert response.status == 503, response.status
            refused.append(number)
            await asyncio.sleep(0.25)
        raise AssertionError(f"conversation {number} was never taken")

    async def restart_the_database() -> None:
        await asyncio.sleep(0.6)
        proxy.cut()
        await asyncio.sleep(1.5)
        proxy.restore()

    await asyncio.gather(restart_the_database(), *(deliver_as_slack_does(i, e) for i, e in enumerate(events)))
    await slack.settle(within=60)
    assert refused, "some deliveries arrived while the database was down"

    for number, event in enumerate(events):
        replies = finished(slack, event)
        assert len(replies) == 1, f"conversation {number}: {replies}"
        assert replies[0] == f'You said: <message from="mel">conversation {number}</message>' or replies[0].endswith(
            "Please try again."
        ), f"conversation {number}: neither its answer nor a clear error: {replies[0]!r}"
    answered = sum(finished(slack, e)[0].startswith("You said") for e in events)
    assert answered >= 25, f"most conversations are simply answered ({answered} of 50)"
    for _ in range(100):
        if await health(slack) == 200:
            break
        await asyncio.sleep(0.1)
    assert await health(slack) == 200, "healthy again by itself"


async def test_healthz_keeps_a_healthy_answer_two_seconds_and_never_keeps_a_failure(
    slack_through_proxy: SlackHarness, proxy: CuttableProxy
) -> None:
    slack = slack_through_proxy
    clock = slack.service.health.clock = FakeClock()
    assert await health(slack) == 200
    proxy.cut()
    clock.now += HEALTH_TTL_SECONDS
    assert await health(slack) == 503, "honest once the kept answer is two seconds old"
    assert await health(slack) == 503
    proxy.restore()
    assert await health(slack) == 200, "a failure is not kept: back as soon as the database is"
