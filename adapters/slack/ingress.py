"""`POST /slack/events`: verify the signature over the raw bytes, refuse what cannot be
parsed (400, never 500), then let Bolt dispatch and ack."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)

SIGNATURE_MAX_AGE_SECONDS = 300
LISTENER_FAILED = "x-listener-failed"  # set on Bolt's response by the adapter's error handler


class SlackIngress:
    def __init__(self, app: AsyncApp, signing_secret: str) -> None:
        self._app = app
        self._secret = signing_secret

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = request.headers
        if not signature_ok(
            self._secret, body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
        ):
            return web.json_response({"error": "invalid request"}, status=401)
        problem = unparseable(body, request.content_type)
        if problem is not None:
            log.warning("slack: rejected a signed but malformed request: %s", problem)
            return web.json_response({"error": problem}, status=400)
        if b"payload" in body and request.content_type != "application/json" and "payload" not in parse_qs(
            body.decode("utf-8")
        ):
            # Bolt takes any form body containing the word "payload" for an interactive payload
            # (a slash command whose text says "payload" would be lost); %61 decodes back to "a".
            body = body.replace(b"payload", b"p%61yload")
        try:
            response = await self._app.async_dispatch(
                AsyncBoltRequest(body=body.decode("utf-8"), query=request.query_string, headers=dict(headers))
            )
        except Exception as exc:  # a shape Bolt cannot parse
            response = BoltResponse(status=500, body=type(exc).__name__)
        if LISTENER_FAILED in response.headers:  # our listener's 503 (outage) or 500 (bug): as is
            del response.headers[LISTENER_FAILED]
        elif response.status >= 500:  # Bolt itself failed on this body's shape: bad input
            log.warning("slack: could not handle a signed request (%s)", response.body[:100])
            return web.json_response({"error": "unprocessable request"}, status=400)
        return await to_aiohttp_response(response)


def signature_ok(secret: str, body: bytes, timestamp: str | None, signature: str | None) -> bool:
    """Slack's v0 request signature, over the raw bytes (slack_sdk's verifier decodes the
    body first, which fails on a body that is not UTF-8), within 5 minutes of now."""
    if not secret or not timestamp or not signature:
        return False
    # ASCII digits only: int() would also take other scripts' digits, signs and underscores.
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(time.time() - int(timestamp)) > SIGNATURE_MAX_AGE_SECONDS:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = b"v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest().encode()
    # Compared as bytes: compare_digest raises on a str that is not ASCII. An unencodable
    # character becomes "?", which a hex digest never contains.
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def unparseable(body: bytes, content_type: str) -> str | None:
    """Why a signed request body cannot be handled, or None when it can."""
    if not body.strip():
        return "empty body"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if content_type == "application/json" or text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return "body is not valid JSON"
        return events_api_problem(parsed) if isinstance(parsed, dict) else "body is not a JSON object"
    form = parse_qs(text, keep_blank_values=True)
    if "payload" in form:
        try:
            payload = json.loads(form["payload"][0])
        except (ValueError, RecursionError):
            return "payload is not valid JSON"
        return None if isinstance(payload, dict) else "payload is not a JSON object"
    if "command" in form or "ssl_check" in form:
        return None
    return "unrecognised body"


EVENTS_API_TYPES = frozenset({"url_verification", "event_callback", "app_rate_limited"})


def events_api_problem(body: dict[str, Any]) -> str | None:
    """Why a JSON body is not an Events API request Bolt can take, or None when it is.

    Slack posts JSON only for the Events API; Bolt reads an envelope's `event` and
    `authorizations` without checking their types, and would fail (with a traceback)
    on a body where they are something else."""
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in EVENTS_API_TYPES:
        return f"not an Events API request (type {str(kind)[:40]!r})"
    if kind != "event_callback":
        return None
    event = body.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return "event_callback without an event object that has a type"
    authorizations = body.get("authorizations")
    if authorizations is not None and not (
        isinstance(authorizations, list) and all(isinstance(a, dict) for a in authorizations)
    ):
        return "authorizations is not a list of objects"
    return None
