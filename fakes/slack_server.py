"""A fake of the Slack Web API (and response URLs) for tests and benchmarks.

`FakeSlack` is a small aiohttp server on 127.0.0.1 that answers enough of the
Web API for the real ``slack_sdk`` / ``slack_bolt`` clients to be pointed at it
with ``AsyncWebClient(token=..., base_url=fake.api_url)``.

Wire format (as the real API, and as ``slack_sdk`` 3.47 sends it)
-----------------------------------------------------------------
* Every method lives at ``/api/<method>`` and takes GET or POST.  Arguments are
  merged from the query string (the SDK sends ``params=`` there, even for POST)
  and the body, which may be JSON (``json=``, used for ``chat.*`` and
  ``assistant.threads.setStatus``) or form-encoded (``data=``); in a form body
  the fields ``blocks``, ``attachments``, ``chunks``, ``metadata``, ``prompts``
  and ``loading_messages`` may be JSON strings and are decoded.
* The token comes from ``Authorization: Bearer <token>`` or a ``token``
  argument.  None -> ``not_authed``; the app-level token on a bot method, or
  the bot token on ``apps.connections.open`` -> ``not_allowed_token_type``;
  anything else -> ``invalid_auth``.
* Answers are HTTP 200 JSON with ``ok`` (``{"ok": false, "error": ...}`` on a
  failure), except rate limiting: HTTP 429, ``Retry-After: <whole seconds>``
  and ``{"ok": false, "error": "ratelimited"}`` (what
  ``AsyncRateLimitErrorRetryHandler`` reads: it sleeps ``int(Retry-After) +
  random()`` seconds).

Methods
-------
``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.delete``,
``chat.postEphemeral``, ``chat.startStream``, ``chat.appendStream``,
``chat.stopStream``, ``conversations.replies``, ``users.info``,
``reactions.add``, ``reactions.remove``, ``assistant.threads.setStatus``,
``assistant.threads.setSuggestedPrompts``, ``assistant.threads.setTitle``,
``apps.connections.open``, ``conversations.history`` and the agent sessions'
``agents.sessions.setStatus`` / ``agents.sessions.rename`` (recorded in
`FakeSlack.sessions` and `FakeSlack.session_titles`; a title is kept only from the
call that created the session, as Slack documents).  Anything else answers ``unknown_method``.
Files: `FakeSlack.add_file` hosts one at ``url_private_download`` (``GET /files-pri/...``,
bot token required, each download recorded: see `fakes.slack_files`).

Limits: ``text`` over 40,000 characters, ``markdown_text`` over 12,000, or
``markdown`` blocks whose texts add up to more than 12,000 -> ``msg_too_long``;
no ``text``/``markdown_text``/``blocks``/``attachments`` -> ``no_text``; more
than 50 blocks, or a block without a ``type`` -> ``invalid_blocks``.  For the
streaming methods the 12,000 limit applies per call, to ``markdown_text`` plus
the texts of the ``markdown_text`` chunks.

Streaming: outside a DM (a channel id not starting with ``D``)
``chat.startStream`` needs ``recipient_team_id`` (else
``missing_recipient_team_id``) and ``recipient_user_id`` (else
``missing_recipient_user_id``).  A stream is ``streaming`` until
``chat.stopStream`` (``stopped``) or until it expires (``expired``, see
`FakeSlack.stop_streaming_after`); appending to or stopping a stream that is not
streaming answers ``message_not_in_streaming_state``.  ``chat.update`` works on
a stream in any state (the SDK's documented fallback for an expired stream).

Messages posted through the API are `SlackMessage` objects in
`FakeSlack.messages`; messages a test puts there beforehand (`seed_thread`,
`seed_message`) are in `FakeSlack.seeded`.  Both are served by
``conversations.replies`` and by `FakeSlack.thread`.  Texts are stored exactly
as sent (no trimming, no mrkdwn processing).

Link previews: every call's arguments are kept (`CallRecord.params`, with
``unfurl_links``/``unfurl_media`` as sent), and `FakeSlack.links_slack_may_preview`
lists each link Slack might fetch for a preview, assuming the worst where Slack
documents nothing (text set by ``chat.update`` or a streaming method).

Also here: `sign_request` (the ``X-Slack-Signature`` headers of a request from
Slack), `event_body` (an Events API ``event_callback`` envelope) and
`slash_command_body` (a slash command's form body); ``POST /response/<id>``
(see `FakeSlack.response_url`) records what an app posts to a response URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import hashlib
import hmac
import itertools
import json
import random
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from time import monotonic
from time import time as wall_time
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web

from fakes.base import LoopbackServer
from fakes.slack_files import FakeSlackFiles

__all__ = [
    "DEFAULT_USERS",
    "MAX_BLOCKS",
    "MAX_MARKDOWN_CHARS",
    "MAX_TEXT_CHARS",
    "CallRecord",
    "FakeSlack",
    "ResponsePost",
    "SlackApiFailure",
    "SlackMessage",
    "block_actions_body",
    "blocks_text",
    "event_body",
    "previewable_links",
    "sign_request",
    "slash_command_body",
]

JsonDict = dict[str, Any]
StreamState = Literal["streaming", "stopped", "expired"]

MAX_TEXT_CHARS = 40_000
"""Longest ``text`` accepted by ``chat.postMessage``/``chat.update``."""
MAX_MARKDOWN_CHARS = 12_000
"""Longest ``markdown_text`` (per call), and the cumulative limit of ``markdown`` blocks."""
MAX_BLOCKS = 50
"""Most blocks in one message."""

FIRST_TS = 1_700_000_000_000_100
"""The first generated ``ts`` in microseconds: ``"1700000000.000100"``."""
TS_STEP = 100
"""Microseconds between consecutive generated timestamps."""
DEFAULT_REPLIES_LIMIT = 1_000

DEFAULT_USERS: Mapping[str, Mapping[str, Any]] = {
    "UADMIN": {
        "name": "ada",
        "real_name": "Ada Admin",
        "is_admin": True,
        "is_owner": False,
        "is_primary_owner": False,
        "is_bot": False,
    },
    "U1": {
        "name": "mel",
        "real_name": "Mel Member",
        "is_admin": False,
        "is_owner": False,
        "is_primary_owner": False,
        "is_bot": False,
    },
    "U2": {
        "name": "sam",
        "real_name": "Sam Second",
        "is_admin": False,
        "is_owner": False,
        "is_primary_owner": False,
        "is_bot": False,
    },
}

AGENT_SESSION_STATUSES = frozenset({"active", "processing", "suspended", "closed"})
MAX_SESSION_TITLE = 200

JSON_FIELDS = frozenset({"blocks", "attachments", "chunks", "metadata", "prompts", "loading_messages"})
"""Arguments that are JSON when sent in a form-encoded body."""

# --------------------------------------------------------------------------- helpers


def sign_request(signing_secret: str, body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` headers Slack would send with `body`.

    The signature is ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed by the signing
    secret; `timestamp` defaults to now (verifiers reject anything more than 5 minutes off).
    """
    raw = body.encode() if isinstance(body, str) else body
    ts = int(wall_time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(ts).encode() + b":" + raw
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def event_body(
    event: Mapping[str, Any],
    event_id: str,
    team_id: str = "T1",
    api_app_id: str = "A1",
    *,
    bot_user_id: str = "UBOT",
    event_time: int | None = None,
) -> JsonDict:
    """An Events API ``event_callback`` envelope around `event` (serialise it with ``json.dumps``)."""
    return {
        "token": "fake-verification-token",
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(wall_time()) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-fake-{event_id}",
    }


def slash_command_body(
    command: str = "/claude",
    text: str = "",
    user_id: str = "U1",
    user_name: str = "mel",
    channel_id: str = "C1",
    team_id: str = "T1",
    response_url: str = "https://hooks.slack.com/commands/T1/1/fake",
    trigger_id: str = "1.1.fake-trigger",
    *,
    channel_name: str = "general",
    team_domain: str = "fake",
    api_app_id: str = "A1",
) -> str:
    """The form-encoded body Slack POSTs for a slash command (sign it with `sign_request`)."""
    return urlencode(
        {
            "token": "fake-verification-token",
            "team_id": team_id,
            "team_domain": team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def block_actions_body(
    action: Mapping[str, Any],
    *,
    user_id: str = "U1",
    channel_id: str = "C1",
    message_ts: str = "",
    thread_ts: str | None = None,
    team_id: str = "T1",
    response_url: str = "https://hooks.slack.com/actions/T1/1/fake",
) -> str:
    """The form-encoded body Slack POSTs when someone clicks an interactive element in a
    message (``payload`` = a ``block_actions`` JSON; sign it with `sign_request`)."""
    message: JsonDict = {"type": "message", "ts": message_ts}
    if thread_ts:
        message["thread_ts"] = thread_ts
    payload = {
        "type": "block_actions",
        "team": {"id": team_id, "domain": "fake"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "api_app_id": "A1",
        "token": "fake-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": "1.1.fake-trigger",
        "channel": {"id": channel_id, "name": "general"},
        "message": message,
        "response_url": response_url,
        "actions": [{"action_ts": str(wall_time()), **action}],
    }
    return urlencode({"payload": json.dumps(payload)})


def blocks_text(blocks: Iterable[Any]) -> str:
    """The readable text of Block Kit blocks, one block per line (``markdown``, ``section``, ``header``,
    ``context`` and ``rich_text`` blocks; others contribute nothing)."""
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "markdown":
            text = block.get("text")
            pieces = [text] if isinstance(text, str) else []
        elif block.get("type") not in _READABLE_BLOCKS:  # buttons and other controls are not text
            continue
        else:
            pieces = _texts_in(block)
        if pieces:
            lines.append("".join(pieces) if block.get("type") == "rich_text" else "\n".join(pieces))
    return "\n".join(lines)


_READABLE_BLOCKS = frozenset({"section", "header", "context", "rich_text"})


def _texts_in(node: Any) -> list[str]:
    """Every text in a block: ``text`` strings and ``{"text": "..."}`` objects, depth first."""
    out: list[str] = []
    if isinstance(node, Mapping):
        text = node.get("text")
        if isinstance(text, str) and node.get("type") not in {"button", "image"}:
            out.append(text)
        elif isinstance(text, Mapping):
            out.extend(_texts_in(text))
        for key in ("fields", "elements"):
            children = node.get(key)
            if isinstance(children, list):
                for child in children:
                    out.extend(_texts_in(child))
    return out


def _ts_micros(ts: str) -> int | None:
    seconds, _, fraction = ts.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        return None
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


def _ts_key(ts: str) -> tuple[int, str]:
    micros = _ts_micros(ts)
    return (micros if micros is not None else -1, ts)


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


_PREVIEWABLE = re.compile(
    r"(?P<link>[a-z][a-z0-9+.-]*://[^\s<>|()\[\]]+|\bwww\.[^\s<>|()]+)|\]\(\s*(?P<target>[^)\s]+)", re.IGNORECASE
)
UNFURL_FLAGS = ("unfurl_links", "unfurl_media")
"""The arguments that, both false, keep Slack from fetching a posted message's links."""
POSTING_METHODS = frozenset({"chat.postMessage", "chat.postEphemeral"})
"""Methods that take `UNFURL_FLAGS` (as do response URL posts)."""
UNFLAGGED_METHODS = frozenset({"chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream"})
"""Methods that set message text but take no unfurl flags."""


def previewable_links(text: str) -> list[str]:
    """The links in `text` that Slack could fetch to preview: URLs with a scheme, markdown link
    targets and ``www.`` hosts (a bare domain Slack links by itself has itself as its label, and
    Slack never unfurls such a link)."""
    return [match["link"] or match["target"] for match in _PREVIEWABLE.finditer(text)]


def _unfurls_off(args: Mapping[str, Any]) -> bool:
    return all(flag in args and not _truthy(args[flag]) for flag in UNFURL_FLAGS)


def _message_texts(args: Mapping[str, Any]) -> str:
    parts = [args.get("text"), args.get("markdown_text"), _markdown_chunk_text(args.get("chunks"))]
    blocks = args.get("blocks")
    if isinstance(blocks, list):
        parts.append(blocks_text(blocks))
    return "\n".join(p for p in parts if isinstance(p, str) and p)


def _markdown_chunk_text(chunks: Any) -> str:
    if not isinstance(chunks, list):
        return ""
    return "".join(
        str(c.get("text", "")) for c in chunks if isinstance(c, Mapping) and c.get("type") == "markdown_text"
    )


# --------------------------------------------------------------------------- records


class SlackApiFailure(Exception):
    """Raised inside a handler to answer ``{"ok": false, "error": error, **extra}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class CallRecord:
    """One Web API call the fake received."""

    method: str
    """The API method, e.g. ``"chat.postMessage"``."""
    params: JsonDict
    """Arguments merged from the query string and the body (JSON fields decoded; ``token`` removed)."""
    http_method: str
    token: str | None
    time: float
    """``time.monotonic()`` when the request arrived."""
    status: int | None = None
    """HTTP status answered (``None`` while in progress)."""
    ok: bool | None = None
    error: str | None = None
    response: JsonDict | None = None

    @property
    def rejected(self) -> bool:
        return self.ok is False


@dataclass
class ResponsePost:
    """One POST to a response URL (``/response/<id>``)."""

    id: str
    body: Any
    """The JSON body (a dict), a decoded ``payload`` form field, or the raw text."""
    time: float

    @property
    def text(self) -> str:
        return str(self.body.get("text", "")) if isinstance(self.body, dict) else str(self.body)

    @property
    def response_type(self) -> str:
        """``"ephemeral"`` (Slack's default) or ``"in_channel"``."""
        return str(self.body.get("response_type", "ephemeral")) if isinstance(self.body, dict) else "ephemeral"


@dataclass
class SlackMessage:
    """A message in the fake's store."""

    channel: str
    ts: str
    thread_ts: str | None = None
    user: str | None = None
    bot_id: str | None = None
    text_arg: str | None = None
    """The ``text`` argument (a fallback when there are blocks)."""
    markdown_text: str | None = None
    """The ``markdown_text`` argument; for a stream, everything streamed so far."""
    blocks: list[Any] | None = None
    params: JsonDict = field(default_factory=dict)
    """The arguments of the call that created (or last updated) the message."""
    seeded: bool = False
    stream_state: StreamState | None = None
    """``None`` for an ordinary message."""
    stream_appends: int = 0
    """Successful ``chat.appendStream`` calls."""
    chunks: list[Any] = field(default_factory=list)
    """Every chunk streamed into the message, in order, of any type."""
    history: list[str] = field(default_factory=list)
    """The text before each ``chat.update``."""
    extra: JsonDict = field(default_factory=dict)
    """Further fields of a seeded message, served as they are."""

    @property
    def text(self) -> str:
        """The message's text: ``markdown_text`` (all of a stream), else ``text``, else the blocks' text."""
        if self.markdown_text is not None:
            return self.markdown_text
        if self.text_arg is not None:
            return self.text_arg
        return blocks_text(self.blocks or [])

    @property
    def visible_text(self) -> str:
        """What a reader sees: markdown, then blocks (a stream's final blocks go below its text); ``text`` only
        when there is neither (with blocks it is just the notification fallback)."""
        if self.markdown_text is None and not self.blocks:
            return self.text_arg or ""
        return "\n".join(p for p in (self.markdown_text, blocks_text(self.blocks or [])) if p)

    @property
    def is_streaming(self) -> bool:
        return self.stream_state == "streaming"

    def to_api(self, reply_count: int = 0) -> JsonDict:
        """The message as the Web API shows it (``conversations.replies``, ``message`` of an answer)."""
        data: JsonDict = {"type": "message", "ts": self.ts, "text": self.text}
        if self.user is not None:
            data["user"] = self.user
        if self.bot_id is not None:
            data["bot_id"] = self.bot_id
        if self.blocks:
            data["blocks"] = self.blocks
        if self.thread_ts is not None:
            data["thread_ts"] = self.thread_ts
        if reply_count:
            data["thread_ts"] = self.ts
            data["reply_count"] = reply_count
        data.update(self.extra)
        return data


# --------------------------------------------------------------------------- the server


Handler = Callable[[JsonDict, str], JsonDict]


class FakeSlack(LoopbackServer):
    """In-process fake of the Slack Web API (see the module docstring).

    Use as ``async with FakeSlack() as fake:`` (or `start` / `stop`), then
    ``AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)``.
    """

    def __init__(
        self,
        *,
        bot_token: str | None = "xoxb-test-token",
        app_token: str | None = "xapp-test",
        team_id: str = "T1",
        team_name: str = "Fake Team",
        enterprise_id: str | None = None,
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        bot_name: str = "claude",
        app_id: str = "A1",
        users: Mapping[str, Mapping[str, Any]] | None = None,
        streaming_supported: bool = True,
        socket_mode_url: str | None = None,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.bot_token = bot_token
        """The accepted bot token (``None``: any token but the app token)."""
        self.app_token = app_token
        """The accepted app-level token for ``apps.connections.open`` (``None``: any ``xapp-`` token)."""
        self.team_id = team_id
        self.team_name = team_name
        self.enterprise_id = enterprise_id
        """The Enterprise Grid org of the workspace (``auth.test`` says it when set)."""
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        self.users: dict[str, JsonDict] = {
            uid: dict(info) for uid, info in (users if users is not None else DEFAULT_USERS).items()
        }
        self.users.setdefault(
            bot_user_id,
            {"name": bot_name, "real_name": bot_name, "is_bot": True, "is_admin": False, "is_owner": False},
        )
        self.streaming_supported = streaming_supported
        self.socket_mode_url = socket_mode_url
        """Answer of ``apps.connections.open`` (``None``: a ``ws://`` URL on this server that nothing serves)."""
        self.latency = latency
        """Seconds every Web API call waits before being handled."""
        self.method_latency: dict[str, float] = {}
        self.dropping: set[str] = set()
        """Methods whose calls get their connection reset (see `drop_connections`)."""
        """Extra seconds per method (see `set_latency`)."""
        self.host = host
        self.port = port

        self.calls: list[CallRecord] = []
        self.messages: list[SlackMessage] = []
        """Messages created through the API (``chat.postMessage``, ``chat.startStream``), in ts order."""
        self.seeded: list[SlackMessage] = []
        """Messages put in the store by `seed_thread` / `seed_message`."""
        self.deleted: list[SlackMessage] = []
        self.ephemeral: list[JsonDict] = []
        """Arguments of each accepted ``chat.postEphemeral`` (plus ``message_ts``)."""
        self.responses: list[ResponsePost] = []
        self.reactions: dict[tuple[str, str], list[str]] = {}
        """``(channel, ts)`` -> the names of the bot's current reactions."""
        self.statuses: dict[tuple[str, str], list[str]] = {}
        """``(channel_id, thread_ts)`` -> every assistant status set, in order (``""`` clears)."""
        self.titles: dict[tuple[str, str], str] = {}
        self.suggested_prompts: dict[tuple[str, str | None], list[Any]] = {}
        self.sessions: dict[tuple[str, str], list[str]] = {}
        """``(channel_id, thread_ts)`` -> every agent session status set, in order (agents.sessions.setStatus)."""
        self.session_titles: dict[tuple[str, str], str] = {}
        """A session's title: the one given when it was created, or by agents.sessions.rename."""
        self.session_renames: list[tuple[str, str, str]] = []

        self._next_ts = FIRST_TS
        self._rate_limits: dict[str, deque[int]] = {}
        self._rate_fractions: dict[str, tuple[float, int, random.Random]] = {}
        self._failures: dict[str, deque[str]] = {}
        self._refused_streaming: dict[str, str] = {}
        self._stream_expiry: tuple[int, str] | None = None
        self._response_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.file_host = FakeSlackFiles(team_id)
        """Files served at ``url_private_download`` (see `fakes.slack_files`); `add_file` hosts one."""
        self.file_host.accepted_token = bot_token
        # OAuth installs (`authorize_install`, then ``oauth.v2.access``): each workspace's bot token.
        self.client_id = "1111.2222"
        self.client_secret = "slack-client-secret-canary"
        self.installed_tokens: dict[str, JsonDict] = {}
        """Bot token issued by ``oauth.v2.access`` -> its workspace (``team_id``, ``bot_user_id``, ...)."""
        self._oauth_codes: dict[str, JsonDict] = {}
        self._handlers: dict[str, Handler] = {
            "oauth.v2.access": self._oauth_v2_access,
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "assistant.threads.setStatus": self._assistant_set_status,
            "assistant.threads.setSuggestedPrompts": self._assistant_set_prompts,
            "assistant.threads.setTitle": self._assistant_set_title,
            "apps.connections.open": self._apps_connections_open,
            "conversations.history": self._conversations_history,
            "agents.sessions.setStatus": self._agents_sessions_set_status,
            "agents.sessions.rename": self._agents_sessions_rename,
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: the ``base_url`` for ``AsyncWebClient``."""
        return f"{self.base_url}/api/"

    def response_url(self, id: str | int | None = None) -> str:
        """A response URL served by this fake (a fresh id when none is given); posts land in `responses`."""
        rid = str(next(self._response_ids)) if id is None else str(id)
        return f"{self.base_url}/response/{rid}"

    # ------------------------------------------------------------------ scripting

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` (``"*"``: any method) with HTTP 429."""
        self._rate_limits.setdefault(method, deque()).extend([int(retry_after)] * times)

    def rate_limit_fraction(self, method: str, fraction: float, retry_after: int = 1, seed: int | None = None) -> None:
        """Answer each call of `method` (``"*"``: any) with HTTP 429 with probability `fraction` (0 turns it off)."""
        if fraction <= 0:
            self._rate_fractions.pop(method, None)
        else:
            self._rate_fractions[method] = (fraction, int(retry_after), random.Random(seed))

    def fail_next(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with ``{"ok": false, "error": error}`` (after auth)."""
        self._failures.setdefault(method, deque()).extend([error] * times)

    def refuse_streaming_in(self, channel_id: str, error: str = "channel_type_not_supported") -> None:
        """Make ``chat.startStream`` in `channel_id` fail with `error`."""
        self._refused_streaming[channel_id] = error

    def stop_streaming_after(self, n_appends: int, error: str = "message_not_in_streaming_state") -> None:
        """Expire every stream at its ``n_appends + 1``-th ``chat.appendStream``: that append and everything
        after it (appends, ``chat.stopStream``) fail with `error`; what was streamed so far stays."""
        self._stream_expiry = (n_appends, error)

    def drop_connections(self, method: str) -> None:
        """Reset the connection of every call of `method` (a network fault, not an API error)."""
        self.dropping.add(method)

    def set_latency(self, seconds: float, method: str | None = None) -> None:
        """Delay every call (``method=None``) or the calls of one method."""
        if method is None:
            self.latency = seconds
        else:
            self.method_latency[method] = seconds

    def clear_faults(self) -> None:
        """Drop rate limits, scripted failures, streaming refusals/expiry and latency."""
        self._rate_limits.clear()
        self._rate_fractions.clear()
        self._failures.clear()
        self._refused_streaming.clear()
        self._stream_expiry = None
        self.latency = 0.0
        self.method_latency.clear()
        self.dropping.clear()

    def reset(self) -> None:
        """Forget calls, messages (also seeded), posts to response URLs, reactions, statuses and faults.

        Timestamps keep increasing, so a ts is never handed out twice."""
        self.calls.clear()
        self.messages.clear()
        self.seeded.clear()
        self.deleted.clear()
        self.ephemeral.clear()
        self.responses.clear()
        self.reactions.clear()
        self.statuses.clear()
        self.titles.clear()
        self.suggested_prompts.clear()
        self.sessions.clear()
        self.session_titles.clear()
        self.session_renames.clear()
        self.clear_faults()

    def add_user(self, user_id: str, **info: Any) -> None:
        """Add (or replace) a user served by ``users.info``."""
        self.users[user_id] = dict(info)

    def seed_message(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = "U1",
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
        **extra: Any,
    ) -> SlackMessage:
        """Put a message (by default from user ``U1``) in the store, as if posted before; returns it."""
        stamp = ts if ts is not None else self._new_ts()
        self._observe_ts(stamp)
        message = SlackMessage(
            channel=channel,
            ts=stamp,
            thread_ts=thread_ts if thread_ts != stamp else None,
            user=user,
            bot_id=bot_id,
            text_arg=text,
            seeded=True,
            extra=dict(extra),
        )
        bisect.insort(self.seeded, message, key=lambda m: _ts_key(m.ts))  # stays in ts order
        return message

    def seed_thread(self, channel: str, thread_ts: str, messages: Sequence[Mapping[str, Any]]) -> list[SlackMessage]:
        """Seed a thread: ``messages`` are dicts with ``user``, ``text``, ``ts`` and optional ``bot_id``
        (further keys are served as they are).  The one whose ``ts`` is `thread_ts` is the parent; when
        none is, the first message without a ``ts`` gets `thread_ts`.  Missing ``ts`` are generated."""
        has_parent = any(m.get("ts") == thread_ts for m in messages)
        self._observe_ts(thread_ts)
        out: list[SlackMessage] = []
        for item in messages:
            data = dict(item)
            ts = data.pop("ts", None)
            if ts is None and not has_parent:
                ts, has_parent = thread_ts, True
            out.append(
                self.seed_message(
                    channel,
                    str(data.pop("text", "")),
                    user=data.pop("user", None),
                    ts=None if ts is None else str(ts),
                    thread_ts=thread_ts,
                    bot_id=data.pop("bot_id", None),
                    **data,
                )
            )
        return out

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[CallRecord]:
        return [c for c in self.calls if c.method == method]

    def find_message(self, channel: str, ts: str) -> SlackMessage | None:
        for message in itertools.chain(self.messages, self.seeded):
            if message.channel == channel and message.ts == ts:
                return message
        return None

    def thread(self, channel: str, thread_ts: str) -> list[SlackMessage]:
        """The parent and replies of a thread (API-posted and seeded), in ts order."""
        found = [
            m
            for m in itertools.chain(self.messages, self.seeded)
            if m.channel == channel and (m.ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(found, key=lambda m: _ts_key(m.ts))

    def is_bot_message(self, message: SlackMessage) -> bool:
        return message.bot_id == self.bot_id or message.user == self.bot_user_id

    def bot_messages(self, channel: str, thread_ts: str) -> list[SlackMessage]:
        return [m for m in self.thread(channel, thread_ts) if self.is_bot_message(m)]

    def bot_texts(self, channel: str, thread_ts: str) -> list[str]:
        """The visible text of each of the bot's messages in a thread, in order."""
        return [m.visible_text for m in self.bot_messages(channel, thread_ts)]

    def visible_text(self, channel: str, thread_ts: str, sep: str = "\n") -> str:
        """The bot's messages in a thread joined by `sep`: what a user reads there."""
        return sep.join(self.bot_texts(channel, thread_ts))

    def responses_to(self, id: str | int) -> list[ResponsePost]:
        return [r for r in self.responses if r.id == str(id)]

    def links_slack_may_preview(self) -> list[tuple[str, str]]:
        """``(where, link)`` for each link the app sent that Slack might fetch for a preview
        (an "unfurl"), assuming the worst where Slack documents nothing: a link in a
        ``chat.postMessage``/``chat.postEphemeral`` or a response URL post that does not set
        both `UNFURL_FLAGS` false, and any link in text set by ``chat.update`` or a streaming
        method (they take no unfurl flags). ``where`` is the method or ``response_url``."""
        found: list[tuple[str, str]] = []
        for call in self.calls:
            if call.method in UNFLAGGED_METHODS or (call.method in POSTING_METHODS and not _unfurls_off(call.params)):
                found += [(call.method, link) for link in previewable_links(_message_texts(call.params))]
        for post in self.responses:
            body = post.body if isinstance(post.body, dict) else {"text": str(post.body)}
            if not _unfurls_off(body):
                found += [("response_url", link) for link in previewable_links(_message_texts(body))]
        return found

    def status(self, channel_id: str, thread_ts: str) -> str:
        """The current assistant status of a thread (``""`` when none, or cleared by a reply)."""
        history = self.statuses.get((channel_id, thread_ts))
        return history[-1] if history else ""

    def click_stop(self, channel: str, thread_ts: str, user: str = "U1") -> JsonDict:
        """A person clicks the stop button of a thread's agent session: Slack stops the app's
        streams in that thread itself and delivers this `agent_session_stopped` event (the
        session's status is the app's to change)."""
        stopped = [m.ts for m in self.thread(channel, thread_ts) if m.is_streaming]
        for ts in stopped:
            message = self.find_message(channel, ts)
            if message is not None:
                message.stream_state = "stopped"
        return {
            "type": "agent_session_stopped",
            "channel": channel,
            "thread_ts": thread_ts,
            "user": user,
            "streaming_message_ts": stopped,
            "event_ts": self._new_ts(),
        }

    def session_status(self, channel_id: str, thread_ts: str) -> str:
        """A thread's agent session status (``""`` when it has no session)."""
        history = self.sessions.get((channel_id, thread_ts))
        return history[-1] if history else ""

    # ------------------------------------------------------------------ app

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{id}", self._handle_response_url)
        self.file_host.add_routes(app)
        return app

    def add_file(self, name: str, data: bytes, **options: Any) -> JsonDict:
        """Host a file; returns the file object a message event carries in its `files`."""
        return self.file_host.add(self.base_url, name, data, **options)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        raw = await request.text()
        body: Any = raw
        if request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            payload = form.get("payload")
            body = dict(form) if not isinstance(payload, str) else payload
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except json.JSONDecodeError:
                pass
        self.responses.append(ResponsePost(id=request.match_info["id"], body=body, time=monotonic()))
        return web.json_response({"ok": True})

    async def _read_params(self, request: web.Request) -> tuple[JsonDict, bool]:
        """Query and body arguments merged; the flag says whether the body was readable."""
        params: JsonDict = dict(request.query)
        if request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else getattr(value, "filename", "")
        elif request.content_type == "application/json" or request.can_read_body:
            raw = await request.read()
            if not raw:
                return params, True
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return params, False
            if not isinstance(body, dict):
                return params, False
            params.update(body)
            return params, True
        for key in JSON_FIELDS & params.keys():
            value = params[key]
            if isinstance(value, str) and value[:1] in {"[", "{"}:
                try:
                    params[key] = json.loads(value)
                except json.JSONDecodeError:
                    pass
        return params, True

    def _take_rate_limit(self, method: str) -> int | None:
        for key in (method, "*"):
            queue = self._rate_limits.get(key)
            if queue:
                return queue.popleft()
        for key in (method, "*"):
            chaos = self._rate_fractions.get(key)
            if chaos is not None and chaos[2].random() < chaos[0]:
                return chaos[1]
        return None

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, readable = await self._read_params(request)
        auth = request.headers.get("Authorization", "")
        token: str | None = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        body_token = params.pop("token", None)
        if token is None and isinstance(body_token, str):
            token = body_token
        record = CallRecord(method=method, params=params, http_method=request.method, token=token, time=monotonic())
        if auth.startswith("Basic "):  # oauth.v2.access: the app's client id and secret (kept out of the record)
            client_id, _, client_secret = base64.b64decode(auth[len("Basic ") :]).decode().partition(":")
            params = {**params, "client_id": client_id, "client_secret": client_secret}
        self.calls.append(record)
        delay = self.latency + self.method_latency.get(method, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if method in self.dropping and request.transport is not None:
            request.transport.abort()  # the client sees its connection reset
            return web.Response(status=500)
        headers: dict[str, str] = {}
        retry_after = self._take_rate_limit(method)
        answer: JsonDict
        if retry_after is not None:
            status, answer = 429, {"ok": False, "error": "ratelimited"}
            headers["Retry-After"] = str(retry_after)
        else:
            status = 200
            try:
                answer = self._call(method, params, token, readable)
            except SlackApiFailure as failure:
                answer = {"ok": False, "error": failure.error, **failure.extra}
        record.status, record.ok, record.response = status, bool(answer.get("ok")), answer
        record.error = answer.get("error") if not answer.get("ok") else None
        return web.json_response(answer, status=status, headers=headers)

    def _call(self, method: str, params: JsonDict, token: str | None, readable: bool) -> JsonDict:
        handler = self._handlers.get(method)
        if handler is None or (method == "chat.startStream" and not self.streaming_supported):
            raise SlackApiFailure("unknown_method", req_method=method)
        if not readable:
            raise SlackApiFailure("invalid_json")
        if method != "oauth.v2.access":  # authenticated by the client id and secret instead
            self._check_token(method, token)
        failures = self._failures.get(method)
        if failures:
            raise SlackApiFailure(failures.popleft())
        return handler(params, token or "")

    def _check_token(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackApiFailure("not_authed")
        is_app_token = token.startswith("xapp-") or token == self.app_token
        if method == "apps.connections.open":
            if token == self.app_token or (self.app_token is None and token.startswith("xapp-")):
                return
            raise SlackApiFailure("not_allowed_token_type" if token == self.bot_token else "invalid_auth")
        if is_app_token:
            raise SlackApiFailure("not_allowed_token_type")
        if token.startswith("xoxb-oauth-"):  # issued by oauth.v2.access: valid until revoked
            if token not in self.installed_tokens:
                raise SlackApiFailure("token_revoked")
            return
        if self.bot_token is not None and token != self.bot_token:
            raise SlackApiFailure("invalid_auth")

    # ------------------------------------------------------------------ store internals

    def _new_ts(self) -> str:
        stamp = _format_ts(self._next_ts)
        self._next_ts += TS_STEP
        return stamp

    def _observe_ts(self, ts: str) -> None:
        """Keep generated timestamps after every seeded one."""
        micros = _ts_micros(ts)
        if micros is not None and micros >= self._next_ts:
            self._next_ts = micros + TS_STEP

    def _reply_count(self, message: SlackMessage) -> int:
        if message.thread_ts is not None and message.thread_ts != message.ts:
            return 0
        return sum(
            1
            for m in itertools.chain(self.messages, self.seeded)
            if m.channel == message.channel and m.thread_ts == message.ts and m.ts != message.ts
        )

    def _bot_message(self, params: JsonDict, **fields: Any) -> SlackMessage:
        channel = str(params["channel"])
        thread_ts = params.get("thread_ts")
        message = SlackMessage(
            channel=channel,
            ts=self._new_ts(),
            thread_ts=str(thread_ts) if thread_ts else None,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            params=dict(params),
            **fields,
        )
        self.messages.append(message)
        if message.thread_ts is not None and self.statuses.get((channel, message.thread_ts), [""])[-1]:
            self.statuses[(channel, message.thread_ts)].append("")  # a reply clears the status, as in Slack
        return message

    def _message_json(self, message: SlackMessage) -> JsonDict:
        data = message.to_api()
        data.update({"app_id": self.app_id, "team": self.team_id})
        return data

    def _own_message(self, params: JsonDict, *, ts_key: str = "ts") -> SlackMessage:
        channel, ts = params.get("channel"), params.get(ts_key)
        if not channel:
            raise SlackApiFailure("channel_not_found")
        if not ts:
            raise SlackApiFailure("invalid_arguments")
        message = self.find_message(str(channel), str(ts))
        if message is None:
            raise SlackApiFailure("message_not_found")
        return message

    @staticmethod
    def _require(params: JsonDict, *names: str) -> None:
        for name in names:
            if params.get(name) in (None, ""):
                if name in {"channel", "channel_id"}:
                    raise SlackApiFailure("channel_not_found")
                raise SlackApiFailure("invalid_arguments", response_metadata={"messages": [f"missing {name}"]})

    @staticmethod
    def _check_content(params: JsonDict) -> None:
        """``no_text`` / ``invalid_blocks`` / ``msg_too_long`` checks of a message's content."""
        text, markdown, blocks = params.get("text"), params.get("markdown_text"), params.get("blocks")
        if not text and not markdown and not blocks and not params.get("attachments"):
            raise SlackApiFailure("no_text")
        if blocks is not None:
            if isinstance(blocks, str):
                raise SlackApiFailure("invalid_blocks_format")
            if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
                raise SlackApiFailure("invalid_blocks")
            if any(not isinstance(b, Mapping) or not b.get("type") for b in blocks):
                raise SlackApiFailure("invalid_blocks")
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            raise SlackApiFailure("msg_too_long")
        if isinstance(markdown, str) and len(markdown) > MAX_MARKDOWN_CHARS:
            raise SlackApiFailure("msg_too_long")
        if isinstance(blocks, list):
            total = sum(
                len(str(b.get("text", ""))) for b in blocks if isinstance(b, Mapping) and b.get("type") == "markdown"
            )
            if total > MAX_MARKDOWN_CHARS:
                raise SlackApiFailure("msg_too_long")

    @staticmethod
    def _stream_piece(params: JsonDict) -> tuple[str, list[Any]]:
        """The markdown a streaming call adds (``markdown_text`` then markdown chunks) and its chunks."""
        markdown = params.get("markdown_text")
        chunks = params.get("chunks")
        if chunks is not None and not isinstance(chunks, list):
            raise SlackApiFailure("invalid_chunks")
        chunk_list: list[Any] = list(chunks or [])
        if any(not isinstance(c, Mapping) or not c.get("type") for c in chunk_list):
            raise SlackApiFailure("invalid_chunks")
        piece = (str(markdown) if markdown is not None else "") + _markdown_chunk_text(chunk_list)
        if len(piece) > MAX_MARKDOWN_CHARS:
            raise SlackApiFailure("msg_too_long")
        return piece, chunk_list

    # ------------------------------------------------------------------ handlers

    # ------------------------------------------------------------------ OAuth installs

    def authorize_install(self, team_id: str, team_name: str = "", *, installer: str = "UADMIN") -> str:
        """A person approved the app for `team_id` on Slack's consent page: the code Slack sends
        to the app's redirect URL (good for one ``oauth.v2.access``)."""
        code = f"code-{team_id}-{len(self._oauth_codes) + 1}"
        self._oauth_codes[code] = {"team_id": team_id, "team_name": team_name or team_id, "installer": installer}
        return code

    def tokens_of(self, team_id: str) -> list[str]:
        return [token for token, team in self.installed_tokens.items() if team["team_id"] == team_id]

    def revoke(self, team_id: str) -> None:
        """The workspace uninstalled the app: its tokens stop working."""
        for token in self.tokens_of(team_id):
            del self.installed_tokens[token]

    def _oauth_v2_access(self, params: JsonDict, token: str) -> JsonDict:
        if params.get("client_id") != self.client_id:
            raise SlackApiFailure("invalid_client_id")
        if params.get("client_secret") != self.client_secret:
            raise SlackApiFailure("bad_client_secret")
        grant = self._oauth_codes.pop(str(params.get("code")), None)
        if grant is None:
            raise SlackApiFailure("invalid_code")
        team = grant["team_id"]
        issued = f"xoxb-oauth-{team}-{secrets.token_hex(8)}"
        self.installed_tokens[issued] = {**grant, "bot_user_id": f"UBOT{team}", "bot_id": f"BBOT{team}"}
        return {
            "ok": True,
            "app_id": self.app_id,
            "authed_user": {"id": grant["installer"]},
            "scope": "app_mentions:read,chat:write,im:history,users:read",
            "token_type": "bot",
            "access_token": issued,
            "bot_user_id": f"UBOT{team}",
            "team": {"id": team, "name": grant["team_name"]},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _auth_test(self, params: JsonDict, token: str) -> JsonDict:
        installed = self.installed_tokens.get(token)
        if installed is not None:
            return {
                "ok": True, "url": "https://fake.slack.com/", "team": installed["team_name"], "user": self.bot_name,
                "team_id": installed["team_id"], "user_id": installed["bot_user_id"], "bot_id": installed["bot_id"],
                "is_enterprise_install": False,
            }
        org = {"enterprise_id": self.enterprise_id} if self.enterprise_id else {}
        return {
            **org,
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel")
        self._check_content(params)
        message = self._bot_message(
            params,
            text_arg=params.get("text"),
            markdown_text=params.get("markdown_text"),
            blocks=params.get("blocks"),
        )
        return {"ok": True, "channel": message.channel, "ts": message.ts, "message": self._message_json(message)}

    def _chat_update(self, params: JsonDict, token: str) -> JsonDict:
        message = self._own_message(params)
        if not self.is_bot_message(message):
            raise SlackApiFailure("cant_update_message")
        self._check_content(params)
        message.history.append(message.text)
        if "markdown_text" in params:
            message.markdown_text = params["markdown_text"]
            message.text_arg = params.get("text")
        elif "text" in params:
            message.text_arg = params["text"]
            message.markdown_text = None
        if "blocks" in params:  # as in Slack: blocks left out are kept, [] removes them
            message.blocks = params["blocks"] or None
        message.params = dict(params)
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._message_json(message),
        }

    def _chat_delete(self, params: JsonDict, token: str) -> JsonDict:
        message = self._own_message(params)
        if not self.is_bot_message(message):
            raise SlackApiFailure("cant_delete_message")
        (self.seeded if message.seeded else self.messages).remove(message)
        self.deleted.append(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_post_ephemeral(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel", "user")
        self._check_content(params)
        message_ts = self._new_ts()
        self.ephemeral.append({**params, "message_ts": message_ts})
        return {"ok": True, "message_ts": message_ts}

    def _chat_start_stream(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel", "thread_ts")
        channel = str(params["channel"])
        refused = self._refused_streaming.get(channel)
        if refused is not None:
            raise SlackApiFailure(refused)
        if not channel.startswith("D"):
            if not params.get("recipient_team_id"):
                raise SlackApiFailure("missing_recipient_team_id")
            if not params.get("recipient_user_id"):
                raise SlackApiFailure("missing_recipient_user_id")
        piece, chunks = self._stream_piece(params)
        message = self._bot_message(params, markdown_text=piece, stream_state="streaming", chunks=chunks)
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _streaming_message(self, params: JsonDict) -> SlackMessage:
        if not self.streaming_supported:
            raise SlackApiFailure("unknown_method")
        message = self._own_message(params)
        if message.stream_state is None:
            raise SlackApiFailure("message_not_in_streaming_state")
        if message.stream_state == "expired" and self._stream_expiry is not None:
            raise SlackApiFailure(self._stream_expiry[1])
        if message.stream_state != "streaming":
            raise SlackApiFailure("message_not_in_streaming_state")
        return message

    def _chat_append_stream(self, params: JsonDict, token: str) -> JsonDict:
        message = self._streaming_message(params)
        piece, chunks = self._stream_piece(params)
        if not piece and not chunks:
            raise SlackApiFailure("no_text")
        if self._stream_expiry is not None and message.stream_appends >= self._stream_expiry[0]:
            message.stream_state = "expired"
            raise SlackApiFailure(self._stream_expiry[1])
        message.markdown_text = (message.markdown_text or "") + piece
        message.chunks.extend(chunks)
        message.stream_appends += 1
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_stop_stream(self, params: JsonDict, token: str) -> JsonDict:
        message = self._streaming_message(params)
        piece, chunks = self._stream_piece(params)
        blocks = params.get("blocks")
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS):
            raise SlackApiFailure("invalid_blocks")
        message.markdown_text = (message.markdown_text or "") + piece
        message.chunks.extend(chunks)
        if blocks:
            message.blocks = blocks
        message.stream_state = "stopped"
        return {"ok": True, "channel": message.channel, "ts": message.ts, "message": self._message_json(message)}

    def _conversations_replies(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel", "ts")
        channel, ts = str(params["channel"]), str(params["ts"])
        try:
            limit = int(params.get("limit") or DEFAULT_REPLIES_LIMIT)
        except (TypeError, ValueError):
            raise SlackApiFailure("invalid_limit") from None
        limit = max(1, min(limit, DEFAULT_REPLIES_LIMIT))
        start = 0
        cursor = params.get("cursor")
        if cursor:
            try:
                prefix, _, number = base64.b64decode(str(cursor), validate=True).decode().partition(":")
                start = int(number)
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise SlackApiFailure("invalid_cursor") from None
            if prefix != "offset" or start < 0:
                raise SlackApiFailure("invalid_cursor")
        thread = self.thread(channel, ts)
        if not thread:
            raise SlackApiFailure("thread_not_found")
        oldest, latest = params.get("oldest"), params.get("latest")
        inclusive = _truthy(params.get("inclusive", False))

        def in_range(m: SlackMessage) -> bool:
            key = _ts_key(m.ts)
            if m.ts == ts:
                return True
            if oldest and (key < _ts_key(str(oldest)) or (not inclusive and m.ts == str(oldest))):
                return False
            return not (latest and (key > _ts_key(str(latest)) or (not inclusive and m.ts == str(latest))))

        thread = [m for m in thread if in_range(m)]
        page = thread[start : start + limit]
        has_more = start + limit < len(thread)
        answer: JsonDict = {
            "ok": True,
            "messages": [m.to_api(self._reply_count(m)) for m in page],
            "has_more": has_more,
        }
        if has_more:
            next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": next_cursor}
        return answer

    def _users_info(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "user")
        user_id = str(params["user"])
        info = self.users.get(user_id)
        if info is None:
            raise SlackApiFailure("user_not_found")
        name = str(info.get("name", user_id.lower()))
        real_name = str(info.get("real_name", name))
        user: JsonDict = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "tz": "Europe/London",
            "profile": {"real_name": real_name, "display_name": info.get("display_name", name), "team": self.team_id},
        }
        user.update(info)
        return {"ok": True, "user": user}

    def _reactions_add(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel", "timestamp", "name")
        names = self.reactions.setdefault((str(params["channel"]), str(params["timestamp"])), [])
        if params["name"] in names:
            raise SlackApiFailure("already_reacted")
        names.append(str(params["name"]))
        return {"ok": True}

    def _reactions_remove(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel", "timestamp", "name")
        names = self.reactions.get((str(params["channel"]), str(params["timestamp"])), [])
        if params["name"] not in names:
            raise SlackApiFailure("no_reaction")
        names.remove(str(params["name"]))
        return {"ok": True}

    def _assistant_set_status(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel_id", "thread_ts")
        if params.get("status") is None:
            raise SlackApiFailure("invalid_arguments")
        key = (str(params["channel_id"]), str(params["thread_ts"]))
        self.statuses.setdefault(key, []).append(str(params["status"]))
        return {"ok": True}

    def _assistant_set_prompts(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel_id", "prompts")
        thread_ts = params.get("thread_ts")
        prompts = params["prompts"]
        self.suggested_prompts[(str(params["channel_id"]), None if thread_ts is None else str(thread_ts))] = (
            list(prompts) if isinstance(prompts, list) else [prompts]
        )
        return {"ok": True}

    def _assistant_set_title(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel_id", "thread_ts", "title")
        self.titles[(str(params["channel_id"]), str(params["thread_ts"]))] = str(params["title"])
        return {"ok": True}

    def _conversations_history(self, params: JsonDict, token: str) -> JsonDict:
        """Top-level messages of a conversation, newest first (one page of `limit`)."""
        self._require(params, "channel")
        channel = str(params["channel"])
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        top = [
            m
            for m in itertools.chain(self.messages, self.seeded)
            if m.channel == channel and (m.thread_ts is None or m.thread_ts == m.ts)
        ]
        top.sort(key=lambda m: _ts_key(m.ts), reverse=True)
        page = [m.to_api(self._reply_count(m)) for m in top[:limit]]
        return {"ok": True, "messages": page, "has_more": len(top) > limit}

    def _agents_sessions_set_status(self, params: JsonDict, token: str) -> JsonDict:
        """As documented: creates the session when new (its `title` is used only then, at most
        200 characters), else updates its status; thread-based sessions need `thread_ts`."""
        self._require(params, "channel_id", "thread_ts", "status")
        status = str(params["status"])
        if status not in AGENT_SESSION_STATUSES:
            raise SlackApiFailure("invalid_status")
        title = params.get("title")
        if title is not None and len(str(title)) > MAX_SESSION_TITLE:
            raise SlackApiFailure("invalid_title")
        key = (str(params["channel_id"]), str(params["thread_ts"]))
        if key not in self.sessions and title:
            self.session_titles[key] = str(title)
        self.sessions.setdefault(key, []).append(status)
        return {"ok": True, "status": status, "title": self.session_titles.get(key, "")}

    def _agents_sessions_rename(self, params: JsonDict, token: str) -> JsonDict:
        self._require(params, "channel_id", "thread_ts", "title")
        key = (str(params["channel_id"]), str(params["thread_ts"]))
        title = str(params["title"])
        if key not in self.sessions:
            raise SlackApiFailure("session_not_found")
        if not 1 <= len(title) <= MAX_SESSION_TITLE:
            raise SlackApiFailure("invalid_title")
        self.session_titles[key] = title
        self.session_renames.append((key[0], key[1], title))
        return {"ok": True, "title": title}

    def _apps_connections_open(self, params: JsonDict, token: str) -> JsonDict:
        url = self.socket_mode_url or f"ws://{self.host}:{self.port}/link/?ticket=fake-ticket"
        return {"ok": True, "url": url}
