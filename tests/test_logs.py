"""Secrets never reach the log, whatever the level and however they are logged."""

from __future__ import annotations

import io
import logging

import pytest

from bot.logs import RedactingFilter, configure_logging

CANARIES = {
    "anthropic": "sk-ant-api03-canary-0123456789abcdef",
    "slack bot": "xoxb-1111-2222-canarycanary",
    "slack app": "xapp-1-A111-canary-333",
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


@pytest.mark.parametrize("name", sorted(CANARIES))
def test_a_configured_secret_is_masked_in_messages_arguments_and_tracebacks(captured: io.StringIO, name: str) -> None:
    secret = CANARIES[name]
    log = logging.getLogger("bot.test")
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
    ],
)
def test_token_shapes_are_masked_even_when_not_configured(line: str) -> None:
    redacted = RedactingFilter().redact(line)
    assert "[redacted]" in redacted
    for fragment in ("sk-ant-unknown", "abc.def.ghi", "xoxb-9999", "xapp-1-A9", "MTAxNjM4.other"):
        assert fragment not in redacted


def test_ordinary_text_is_left_alone() -> None:
    assert RedactingFilter(["secret-value-1"]).redact("turn: thread=slack:T1:C1:1.2 tokens=42") == (
        "turn: thread=slack:T1:C1:1.2 tokens=42"
    )
