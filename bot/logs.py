"""Logging set-up, with a filter that keeps secrets out of every line."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable

# Slack tokens of every kind (bot, user, app-level, client and refresh tokens, rotated ones
# such as `xoxe.xoxp-1-...`), Anthropic keys, and Authorization header values.
_TOKEN_PATTERNS = re.compile(
    r"(xox[a-z](?:\.xox[a-z])?-[A-Za-z0-9%-]+|xapp-[A-Za-z0-9-]+|sk-ant-[A-Za-z0-9_-]+|"
    r"(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?:(?i:bearer|bot|basic)\s+)?[^\s\"',}]+)"
)
# A password inside a URL (`postgresql://user:password@host/db`, an ANTHROPIC_BASE_URL with
# credentials): the user and host stay readable.
_URL_PASSWORD = re.compile(r"(?P<start>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s]+@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secrets, known token shapes and URL passwords masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    text = _URL_PASSWORD.sub(r"\g<start>:[redacted]@", text)
    return _TOKEN_PATTERNS.sub("[redacted]", text)


class RedactingFilter(logging.Filter):
    """Masks known token shapes and the configured secrets in the formatted message."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(formatted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


SLACK_SDK_CLIENT_LOGGERS = ("slack_sdk.web.async_base_client", "slack_sdk.web.base_client")


def configure_logging(level: str, secrets: Iterable[str] = (), log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The HTTP clients log request lines (and at DEBUG, headers) of their own: the request
    # lines only at DEBUG (one INFO line per Claude request costs CPU in a burst), never headers.
    chosen = logging.getLevelName(level)
    for noisy in ("httpx2", "httpcore", "anthropic._base_client"):
        logging.getLogger(noisy).setLevel(logging.INFO if chosen <= logging.DEBUG else max(chosen, logging.WARNING))
    # slack_sdk formats its debug lines of every Web API call (headers, bodies) whenever its
    # logger's own level is unset, whatever the effective level: set above DEBUG, they cost
    # nothing; at DEBUG left unset, so the level its parents are given still decides.
    for formatted_eagerly in SLACK_SDK_CLIENT_LOGGERS:
        logging.getLogger(formatted_eagerly).setLevel(chosen if chosen > logging.DEBUG else logging.NOTSET)
