"""Slack: Bolt's AsyncApp over HTTP (`POST /slack/events`) or Socket Mode.

Translates Slack events into the core's `IncomingMessage` / `CommandInvocation`
and renders answers back (see `slack_reply`). Every delivery is acked at once;
the work runs as a background task.

Message identity: the claim key is `channel:ts` of the posted message, not the
envelope's event id, because Slack delivers one post twice (as `app_mention`
and as `message`) under two event ids, and both must give one answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.base import AdapterLimits, BackgroundTasks, MessageSink, ReplyStream
from adapters.slack_reply import MARKDOWN_LIMIT, ReplyTarget, SlackReply
from bot.events import Actor, ChannelKey, CommandInvocation, ContextMessage, IncomingMessage, ThreadKey
from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)

PLATFORM = "slack"
# Subtypes that are a person speaking; edits, deletions, joins and the like are not.
_SPOKEN_SUBTYPES = {None, "file_share", "thread_broadcast"}
_CACHE_SECONDS = 300.0
_CONTEXT_MESSAGES = 50  # earlier messages of a thread sent when the bot is summoned mid-way
_CONTEXT_PAGES = 10  # of conversations.replies, 200 messages each
_NAME_LOOKUP_SECONDS = 1.0  # Slack wants its ack within 3 s
_SLACK_REFERENCE = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_USER_REFERENCE = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_DEFAULT_PROMPTS = (
    {"title": "Explain a concept", "message": "Explain this concept simply:"},
    {"title": "Draft a message", "message": "Help me draft a message to my team about"},
    {"title": "Review some code", "message": "Review this code and suggest improvements:"},
)


@dataclass(frozen=True)
class SlackConfig:
    bot_token: str
    signing_secret: str | None = None
    app_token: str | None = None
    api_url: str = "https://slack.com/api/"
    command: str = "/claude"
    suggested_prompts: tuple[dict[str, str], ...] = _DEFAULT_PROMPTS
    rate_limit_retries: int = 5


def slack_config(settings: Settings) -> SlackConfig:
    """The Slack part of the settings; HTTP mode needs the signing secret."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    if not app_token and not secret:
        raise SettingsError(
            "SLACK_SIGNING_SECRET is not set: HTTP mode needs it (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    prompts: tuple[dict[str, str], ...] = _DEFAULT_PROMPTS
    if settings.slack_suggested_prompts is not None:
        texts = [p.strip() for p in settings.slack_suggested_prompts.split("|") if p.strip()]
        prompts = tuple({"title": text[:75], "message": text} for text in texts)
    return SlackConfig(
        bot_token=token,
        signing_secret=secret,
        app_token=app_token,
        api_url=settings.slack_api_url,
        command=settings.slack_command,
        suggested_prompts=prompts,
    )


@dataclass
class _Cached:
    value: Any
    expires: float = field(default_factory=lambda: time.monotonic() + _CACHE_SECONDS)


class SlackAdapter:
    name = PLATFORM
    limits = AdapterLimits(max_message_chars=MARKDOWN_LIMIT, min_edit_interval=1.0)

    def __init__(self, config: SlackConfig) -> None:
        self.config = config
        self.client = AsyncWebClient(
            token=config.bot_token,
            base_url=config.api_url,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(),
                AsyncRateLimitErrorRetryHandler(max_retry_count=config.rate_limit_retries),
                AsyncServerErrorRetryHandler(max_retry_count=2),
            ],
        )
        self.app = AsyncApp(
            client=self.client,
            signing_secret=config.signing_secret or "socket-mode",
            # handle_http verifies every request over its raw bytes before Bolt sees it.
            request_verification_enabled=False,
            # Listeners run before the ack: they store the turn (quickly), so nothing Slack
            # was told we received can be lost; the answer itself runs in the background.
            process_before_response=True,
            logger=_bolt_logger(),
        )
        self._socket: AsyncSocketModeHandler | None = None
        self._sink: MessageSink | None = None
        self.tasks = BackgroundTasks()
        self.bot_user_id = ""
        self.team_id = ""
        self._users: dict[str, _Cached] = {}
        self._response_urls: dict[int, str] = {}
        self._assistant_threads_untitled: set[tuple[str, str]] = set()
        self._streaming_refused_everywhere = False
        self._streaming_refused_in: set[str] = set()
        self._register_listeners()

    # --- lifecycle --------------------------------------------------------

    async def start(self, sink: MessageSink) -> None:
        self._sink = sink
        # One keep-alive session for every Web API call (slack_sdk opens one per call otherwise).
        self.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            identity = await self.client.auth_test()
        except SlackApiError as exc:
            await self.client.session.close()
            raise SettingsError(
                f"SLACK_BOT_TOKEN was rejected by Slack ({exc.response.get('error', 'unknown error')})"
            ) from None
        except Exception as exc:
            await self.client.session.close()
            raise SettingsError(f"cannot reach Slack at SLACK_API_URL ({type(exc).__name__})") from None
        self.bot_user_id = str(identity["user_id"])
        self.team_id = str(identity["team_id"])
        if self.config.app_token:
            self._socket = AsyncSocketModeHandler(self.app, app_token=self.config.app_token)
            await self._socket.connect_async()
            log.info("slack: connected in Socket Mode as %s", self.bot_user_id)
        else:
            log.info("slack: listening for events at POST /slack/events as %s", self.bot_user_id)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
        await self.tasks.drain()
        if self.client.session is not None:
            await self.client.session.close()

    def routes(self) -> list[web.RouteDef]:
        return [] if self.config.app_token else [web.post("/slack/events", self.handle_http)]

    # --- HTTP mode --------------------------------------------------------

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        """Verify the signature, refuse what cannot be parsed (400, never 500), then let Bolt ack."""
        body = await request.read()
        headers = request.headers
        if not signature_ok(
            self.config.signing_secret or "",
            body,
            headers.get("X-Slack-Request-Timestamp"),
            headers.get("X-Slack-Signature"),
        ):
            return web.json_response({"error": "invalid request"}, status=401)
        problem = _unparseable(body, request.content_type)
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
            text = body.decode("utf-8")
            response = await self.app.async_dispatch(
                AsyncBoltRequest(body=text, query=request.query_string, headers=dict(headers))
            )
        except Exception as exc:  # a shape Bolt cannot parse
            response = BoltResponse(status=500, body=type(exc).__name__)
        if response.status >= 500:  # Bolt failed on this body's shape: refuse it, never a 500
            log.warning("slack: could not handle a signed request (%s)", response.body[:100])
            return web.json_response({"error": "unprocessable request"}, status=400)
        return await to_aiohttp_response(response)

    # --- events in --------------------------------------------------------

    def _register_listeners(self) -> None:
        app = self.app

        @app.event("app_mention")
        async def on_mention(event: dict[str, Any], body: dict[str, Any]) -> None:
            await self._on_event(event, body, mentioned=True)

        @app.event("message")
        async def on_message(event: dict[str, Any], body: dict[str, Any]) -> None:
            await self._on_event(event, body, mentioned=False)

        @app.event("assistant_thread_started")
        async def on_assistant_thread(event: dict[str, Any]) -> None:
            self.tasks.spawn(self._greet_assistant_thread(event))

        @app.event("assistant_thread_context_changed")
        async def on_context_changed() -> None:
            return None

        @app.command(self.config.command)
        async def on_command(ack: Any, command: dict[str, Any]) -> None:
            await ack()
            self.tasks.spawn(self._on_command(command))

    async def _on_event(self, event: dict[str, Any], body: dict[str, Any], *, mentioned: bool) -> None:
        """Before the ack: translate and let the core store the turn; the answer runs later."""
        try:
            message = await self.translate(event, body, mentioned=mentioned)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("slack: dropped a malformed %s event (%s)", event.get("type"), type(exc).__name__)
            return
        if message is None or self._sink is None:
            return
        turn = await self._sink.accept(self, message)
        if turn is not None:
            self.tasks.spawn(self._sink.answer(self, turn))

    async def translate(
        self, event: dict[str, Any], body: dict[str, Any], *, mentioned: bool
    ) -> IncomingMessage | None:
        """A Slack message event as the core's IncomingMessage (None: not a person speaking)."""
        if event.get("subtype") not in _SPOKEN_SUBTYPES or "user" not in event or "ts" not in event:
            return None
        # Lone surrogates (valid in JSON, not in UTF-8) would fail at the database.
        text = str(event.get("text") or "").encode("utf-8", "replace").decode("utf-8")
        own_mention = f"<@{self.bot_user_id}>"
        mentions_bot = mentioned or (bool(self.bot_user_id) and own_mention in text)
        ts = str(event["ts"])
        thread_ts = str(event.get("thread_ts") or ts)
        channel = str(event["channel"])
        is_direct = event.get("channel_type") == "im"
        is_thread_reply = thread_ts != ts
        user = str(event["user"])
        is_bot = bool(event.get("bot_id")) or event.get("subtype") == "bot_message"
        # A name lookup costs an API call: only for messages the core might answer
        # (top-level chatter without a mention never is).
        might_answer = mentions_bot or is_direct or is_thread_reply
        name, clean = user, text
        if might_answer and not is_bot:
            name = await self._name_before_ack(user)
            clean = await self._plain_text(re.sub(rf"\s*{re.escape(own_mention)}\s*", " ", text).strip())
        return IncomingMessage(
            thread=ThreadKey(PLATFORM, str(body.get("team_id") or self.team_id), channel, thread_ts),
            event_id=f"{channel}:{ts}",
            message_id=ts,
            actor=Actor(PLATFORM, user, name, is_bot=is_bot),
            text=clean,
            is_direct=is_direct,
            mentions_bot=mentions_bot,
            is_thread_reply=is_thread_reply,
        )

    async def _greet_assistant_thread(self, event: dict[str, Any]) -> None:
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
        if not channel or not thread_ts:
            return
        self._assistant_threads_untitled.add((channel, thread_ts))
        if self.config.suggested_prompts:
            await self._quietly(
                self.client.assistant_threads_setSuggestedPrompts(
                    channel_id=channel, thread_ts=thread_ts, prompts=list(self.config.suggested_prompts)
                )
            )

    async def _on_command(self, command: dict[str, Any]) -> None:
        channel_id = str(command.get("channel_id", ""))
        user_id = str(command.get("user_id", ""))
        try:
            invocation = CommandInvocation(
                channel=ChannelKey(PLATFORM, str(command.get("team_id") or self.team_id), channel_id),
                actor=Actor(PLATFORM, user_id, str(command.get("user_name") or user_id)),
                text=str(command.get("text") or ""),
                is_direct=channel_id.startswith("D"),
            )
        except ValueError:
            log.warning("slack: dropped a malformed slash command (no usable channel or team)")
            return
        self._response_urls[id(invocation)] = str(command.get("response_url", ""))
        if self._sink is not None:
            await self._sink.on_command(self, invocation)

    # --- answers out ------------------------------------------------------

    async def open_reply(self, message: IncomingMessage) -> ReplyStream:
        channel, thread_ts = message.thread.channel_id, message.thread.thread_id
        if (channel, thread_ts) in self._assistant_threads_untitled:
            self._assistant_threads_untitled.discard((channel, thread_ts))
            await self._quietly(
                self.client.assistant_threads_setTitle(channel_id=channel, thread_ts=thread_ts, title=message.text[:80])
            )
        target = ReplyTarget(channel, thread_ts, message.thread.workspace_id, message.actor.user_id)
        native = not self._streaming_refused_everywhere and channel not in self._streaming_refused_in
        reply = SlackReply(self.client, target, native_streaming=native)
        cue = _ProgressCue(self.client, message)
        await cue.show()
        return _CuedReply(reply, cue, self)

    def streaming_refused(self, channel: str, error: str) -> None:
        """Remember where native streaming is not to be had, so later answers skip the attempt."""
        if error in ("unknown_method", "not_allowed_token_type", "missing_scope"):
            self._streaming_refused_everywhere = True
        elif error == "channel_type_not_supported":
            self._streaming_refused_in.add(channel)

    async def answer_command(self, invocation: CommandInvocation, text: str) -> None:
        url = self._response_urls.pop(id(invocation), "")
        if not url:
            log.warning("slack: no response_url for a command answer")
            return
        await AsyncWebhookClient(url).send(text=text, response_type="ephemeral")

    async def is_admin(self, actor: Actor, channel: ChannelKey) -> bool:
        user = await self._user(actor.user_id)
        if not user or user.get("deleted") or user.get("is_restricted"):
            return False
        return any(user.get(flag) for flag in ("is_admin", "is_owner", "is_primary_owner"))

    async def fetch_thread_context(self, message: IncomingMessage) -> list[ContextMessage]:
        try:
            thread = message.thread
            earlier = await self._replies_before(thread.channel_id, thread.thread_id, message.message_id)
        except Exception as exc:  # the answer goes ahead without the context
            log.warning("slack: could not read the thread for context (%s)", type(exc).__name__)
            return []
        context = []
        for item in earlier[-_CONTEXT_MESSAGES:]:
            is_bot = bool(item.get("bot_id"))
            author = item.get("username") or "a bot" if is_bot else await self.display_name(str(item.get("user", "")))
            text = await self._plain_text(str(item.get("text", "")))
            context.append(ContextMessage(str(author), text, is_bot=is_bot))
        return context

    async def _replies_before(self, channel: str, thread_ts: str, before_ts: str) -> list[dict[str, Any]]:
        """The thread's messages older than `before_ts`, oldest first (every page: the ones
        just before the mention matter most, and Slack lists from the thread's start)."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_CONTEXT_PAGES):
            response = await self.client.conversations_replies(
                channel=channel, ts=thread_ts, latest=before_ts, inclusive=False, limit=200, cursor=cursor
            )
            page: list[dict[str, Any]] = response.get("messages", [])
            messages += [m for m in page if float(m.get("ts", 0)) < float(before_ts)]
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return messages

    # --- users ------------------------------------------------------------

    async def _plain_text(self, text: str) -> str:
        """Slack's message markup as a person reads it: `<@U1>` -> `@Name`, `<#C1|general>` ->
        `#general`, `<https://x|label>` -> `label (https://x)`, and &amp; &lt; &gt; unescaped."""
        names = {uid: await self._name_before_ack(uid) for uid in set(_USER_REFERENCE.findall(text))}

        def readable(match: re.Match[str]) -> str:
            target, label = match.group(1), match.group(2)
            if target.startswith("@"):
                return "@" + (label or names.get(target[1:], target[1:]))
            if target.startswith("#"):
                return "#" + (label or target[1:])
            if target.startswith("!"):
                return "@" + (label or target[1:].split("^")[0])
            return f"{label} ({target})" if label and label != target else target

        plain = _SLACK_REFERENCE.sub(readable, text)
        return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    async def _name_before_ack(self, user_id: str) -> str:
        """The display name, or the user id if Slack is slow to say (the ack must not wait)."""
        try:
            return await asyncio.wait_for(self.display_name(user_id), timeout=_NAME_LOOKUP_SECONDS)
        except TimeoutError:
            log.warning("slack: users.info too slow; using the user id as the speaker's name")
            return user_id

    async def display_name(self, user_id: str) -> str:
        user = await self._user(user_id)
        if not user:
            return user_id
        profile = user.get("profile") or {}
        names = (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name"))
        return str(next((name for name in names if name), user_id))

    async def _user(self, user_id: str) -> dict[str, Any] | None:
        cached = self._users.get(user_id)
        if cached is not None and cached.expires > time.monotonic():
            return cached.value
        try:
            user = (await self.client.users_info(user=user_id)).get("user")
        except SlackApiError as exc:
            log.warning("slack: users.info failed for a user (%s)", exc.response.get("error"))
            user = None
        self._users[user_id] = _Cached(user)
        return user

    async def _quietly(self, call: Any) -> None:
        """A cosmetic call (status, title, prompts) that must never break an answer."""
        try:
            await call
        except Exception as exc:
            log.debug("slack: cosmetic call failed (%s)", type(exc).__name__)


class _ProgressCue:
    """"Thinking…" while Claude works: the pane's status in DMs, an :eyes: reaction in channels."""

    def __init__(self, client: AsyncWebClient, message: IncomingMessage) -> None:
        self._client = client
        self._message = message
        self._shown = False

    async def show(self) -> None:
        self._shown = await self._set(True)

    async def clear(self) -> None:
        if self._shown:
            self._shown = False
            await self._set(False)

    async def _set(self, on: bool) -> bool:
        thread, message_ts = self._message.thread, self._message.message_id
        try:
            if self._message.is_direct:
                await self._client.assistant_threads_setStatus(
                    channel_id=thread.channel_id, thread_ts=thread.thread_id, status="is thinking…" if on else ""
                )
            elif on:
                await self._client.reactions_add(channel=thread.channel_id, timestamp=message_ts, name="eyes")
            else:
                await self._client.reactions_remove(channel=thread.channel_id, timestamp=message_ts, name="eyes")
        except Exception as exc:  # cosmetic: an answer never fails for it
            log.debug("slack: progress cue failed (%s)", type(exc).__name__)
            return False
        return True


class _CuedReply:
    """The reply, clearing the progress cue when the answer starts and telling the
    adapter when Slack refused native streaming."""

    def __init__(self, reply: SlackReply, cue: _ProgressCue, adapter: SlackAdapter) -> None:
        self._reply = reply
        self._cue = cue
        self._adapter = adapter

    async def append(self, delta: str) -> None:
        await self._cue.clear()
        await self._reply.append(delta)
        self._note_refusal()

    async def finish(self, text: str) -> None:
        await self._cue.clear()
        await self._reply.finish(text)
        self._note_refusal()

    def _note_refusal(self) -> None:
        if self._reply.streaming_refused:
            self._adapter.streaming_refused(self._reply.channel, self._reply.streaming_refused)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.text


def _bolt_logger() -> logging.Logger:
    """Bolt's logger, without the warning it gives whenever SLACK_BOT_TOKEN is in the
    environment while a client is passed (which is how this adapter sets its base URL)."""
    logger = logging.getLogger("slack_bolt.app")
    noise = warning_client_prioritized_and_token_skipped()
    if not any(isinstance(f, _DropMessage) and f.text == noise for f in logger.filters):
        logger.addFilter(_DropMessage(noise))
    return logger


def signature_ok(secret: str, body: bytes, timestamp: str | None, signature: str | None) -> bool:
    """Slack's v0 request signature, over the raw bytes (slack_sdk's verifier decodes the
    body first, which fails on a body that is not UTF-8), within 5 minutes of now."""
    if not secret or not timestamp or not signature:
        return False
    try:
        if abs(time.time() - int(timestamp)) > 300:
            return False
    except ValueError:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _unparseable(body: bytes, content_type: str) -> str | None:
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
        return None if isinstance(parsed, dict) else "body is not a JSON object"
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
