"""Secrets never reach the log, whatever the level and however they are logged."""

from __future__ import annotations

import io
import logging

import anthropic
import pytest

from bot.logs import SLACK_SDK_CLIENT_LOGGERS, RedactingFilter, configure_logging
from fakes.anthropic_server import FakeAnthropic
from tests.conftest import API_KEY

CANARIES = {
    "anthropic": "sk-ant-api03-canary-0123456789abcdef",
    "slack bot": "xoxb-1111-2222-canarycanary",
    "slack app": "xapp-1-A111-canary-333",
    "slack user": "xoxp-1111-2222-usercanary",
    "slack refresh": "xoxe-1-My0xLTIyMjI-refreshcanary",
    "database password": "db-password-canary-77",
    "signing secret": "8f14e45fceea167a5a36dedd4bea2543",
    "discord": "MTAxNjM4.canary.discord-token-value",
}


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", CANARIES.values())
    root = logging.getLogger()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


@pytest.mark.parametrize("logger", ["bot.test", "", "slack_sdk.web", "aiohttp.server"])  # "": the root logger
@pytest.mark.parametrize("name", sorted(CANARIES))
def test_a_configured_secret_is_masked_in_messages_arguments_and_tracebacks(
    captured: io.StringIO, name: str, logger: str
) -> None:
    secret = CANARIES[name]
    log = logging.getLogger(logger)
    log.debug("token is %s", secret)
    log.info(f"inline {secret}")
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        log.exception("boom")
    output = captured.getvalue()
    assert secret not in output
    assert output.count("[redacted]") >= 3


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer sk-ant-unknown-key-999",
        "headers={'Authorization': 'Bearer abc.def.ghi'}",
        "posting with xoxb-9999-8888-notconfigured",
        "socket xapp-1-A9-notconfigured",
        "authorization=Bot MTAxNjM4.other.token",
        "user token xoxp-9999-8888-notconfigured",
        "client token xoxc-9999-8888-notconfigured",
        "refresh token xoxe-1-notconfigured-9999",
        "rotated token xoxe.xoxp-1-notconfigured-9999",
        "cookie xoxd-notconfigured%2F9999",
        "Authorization: Basic bm90Y29uZmlndXJlZA==",
    ],
)
def test_token_shapes_are_masked_even_when_not_configured(line: str) -> None:
    redacted = RedactingFilter().redact(line)
    assert "[redacted]" in redacted
    for fragment in ("sk-ant-unknown", "abc.def.ghi", "xoxb-9999", "xapp-1-A9", "MTAxNjM4.other", "notconfigured"):
        assert fragment not in redacted


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("connecting to postgresql+asyncpg://bot:pass-word@db.internal:5432/chat", "postgresql+asyncpg://bot:[redacted]@db.internal:5432/chat"),
        ("HTTP Request: POST http://proxy-user:pa%40ss@127.0.0.1:9/v1/messages", "http://proxy-user:[redacted]@127.0.0.1:9/v1/messages"),
        ("DATABASE_URL=postgres://:only-a-password@db/x", "postgres://:[redacted]@db/x"),
    ],
)
def test_a_password_inside_a_url_is_masked_and_the_rest_stays_readable(line: str, shown: str) -> None:
    redacted = RedactingFilter().redact(line)
    assert shown in redacted
    assert "pass-word" not in redacted and "pa%40ss" not in redacted and "only-a-password" not in redacted


@pytest.mark.parametrize("line", ["http://host:8000/path", "sqlite:///./data/bot.db", "see https://example.com/a:b"])
def test_urls_without_a_password_are_left_alone(line: str) -> None:
    assert RedactingFilter().redact(line) == line


@pytest.mark.parametrize("logger", ["bot.test", "", "asyncpg", "aiohttp.client"])  # "": the root logger
def test_a_url_password_nobody_configured_is_masked_on_every_logger(captured: io.StringIO, logger: str) -> None:
    url = "postgresql://bot:unconfigured-pw-31@db.internal:5432/chat"
    logging.getLogger(logger).warning("cannot reach %s", url)
    try:
        raise ConnectionError(f"connect to {url} failed")
    except ConnectionError:
        logging.getLogger(logger).exception("database")
    output = captured.getvalue()
    assert "unconfigured-pw-31" not in output
    assert output.count("postgresql://bot:[redacted]@db.internal:5432/chat") == 2


@pytest.mark.parametrize(("level", "logged"), [("INFO", False), ("WARNING", False), ("DEBUG", True)])
async def test_the_http_clients_request_lines_are_logged_only_at_debug(
    fake_anthropic: FakeAnthropic, level: str, logged: bool
) -> None:
    # One INFO line per Claude request is CPU spent in a burst for a line nobody reads in production.
    stream = io.StringIO()
    configure_logging(level)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        async with anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake_anthropic.base_url) as client:
            await client.models.list()
    finally:
        configure_logging("DEBUG")
    assert ("HTTP Request: GET" in stream.getvalue()) is logged, stream.getvalue()


@pytest.mark.parametrize(("level", "formatted"), [("INFO", False), ("WARNING", False), ("DEBUG", True)])
def test_the_slack_sdk_formats_its_per_call_debug_lines_only_at_debug(level: str, formatted: bool) -> None:
    # slack_sdk decides with `logger.level <= DEBUG` (an unset level is 0), not with the
    # effective level: every Web API call would format its headers and body for nothing.
    configure_logging(level)
    try:
        for name in SLACK_SDK_CLIENT_LOGGERS:
            assert (logging.getLogger(name).level <= logging.DEBUG) is formatted
    finally:
        configure_logging("DEBUG")
