"""Slack: Bolt's AsyncApp over HTTP (`POST /slack/events`) or Socket Mode.

Listeners run before the ack (`process_before_response`): each translates its
event and hands it to the core's inbox, which stores it before returning, so
nothing Slack was told we received can be lost; the answer runs in the core's
background work, through a surface bound to the event (see `surface`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
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

from adapters.slack import changes
from adapters.slack.agent import AgentHome, AgentSessions
from adapters.slack.assistant import DEFAULT_PROMPTS, AssistantPane
from adapters.slack.controls import register_controls
from adapters.slack.files import SLACK_FILE_HOSTS, SlackFileHost
from adapters.slack.ingress import LISTENER_FAILED, SlackIngress
from adapters.slack.oauth import (
    INSTALL_PATH,
    EncryptedInstallationStore,
    SlackOAuthConfig,
    oauth_routes,
    oauth_settings,
)
from adapters.slack.progress import StreamingSupport
from adapters.slack.surface import SlackCommandSurface, SlackMessageSurface, SlackWorkspace
from adapters.slack.translate import PLATFORM, SlackTranslator
from adapters.slack.users import SlackUsers
from bot.domain import IncomingMessage
from bot.errors import ServiceUnavailable, StartupError
from bot.files.download import with_api_host
from bot.ports import Inbox, MessageSurface

log = logging.getLogger(__name__)

HTTP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class SlackConfig:
    bot_token: str
    signing_secret: str | None = None
    app_token: str | None = None  # set: Socket Mode; unset: HTTP mode
    api_url: str = "https://slack.com/api/"
    command: str = "/claude"
    suggested_prompts: tuple[dict[str, str], ...] = DEFAULT_PROMPTS
    rate_limit_retries: int = 5
    file_hosts: tuple[str, ...] = SLACK_FILE_HOSTS  # the only hosts the bot token is sent to for files
    oauth: SlackOAuthConfig | None = None  # set: many workspaces, each with its token (no bot_token)


class SlackAdapter:
    name = PLATFORM

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
        self._installations: EncryptedInstallationStore | None = None
        settings = None
        if config.oauth is not None:
            settings, self._installations = oauth_settings(config.oauth)
        self.app = AsyncApp(
            client=self.client,
            signing_secret=config.signing_secret or "socket-mode",
            # SlackIngress verifies every request over its raw bytes before Bolt sees it.
            request_verification_enabled=False,
            process_before_response=True,
            logger=_bolt_logger(),
            oauth_settings=settings,
            # Given here too, so that Bolt's authorize (and its token rotation) calls Slack through
            # this client (SLACK_API_URL, the keep-alive session) rather than a default one.
            installation_store=self._installations,
            installation_store_bot_only=True if self._installations is not None else None,
        )
        self._workspaces: dict[str, SlackWorkspace] = {}  # OAuth mode: by team id
        users = SlackUsers(self.client)
        self._file_hosts = with_api_host(config.file_hosts, config.api_url, "slack.com")
        self.slack = SlackWorkspace(
            client=self.client,
            users=users,
            translator=SlackTranslator(users, bot_user_id="", team_id=""),
            pane=AssistantPane(self.client, config.suggested_prompts),
            streaming=StreamingSupport(),
            files=SlackFileHost(self.client, config.bot_token, self._file_hosts),
            sessions=AgentSessions(self.client),
            home=AgentHome(self.client, config.suggested_prompts),
        )
        self._ingress = SlackIngress(self.app, config.signing_secret or "")
        self._socket: AsyncSocketModeHandler | None = None
        self._inbox: Inbox | None = None
        self._register_listeners()

    # --- lifecycle --------------------------------------------------------

    async def start(self, inbox: Inbox) -> None:
        self._inbox = inbox
        # One keep-alive session for every Web API call (slack_sdk opens one per call otherwise).
        self.client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS))
        if self._installations is not None:  # no token of its own: each workspace's comes with its events
            self._installations.on_installed = partial(inbox.workspace_left, PLATFORM, left=False)
            log.info("slack: installs at GET %s; events at POST /slack/events", INSTALL_PATH)
            return
        try:
            identity = await self.client.auth_test()
        except SlackApiError as exc:
            await self.client.session.close()
            raise StartupError(
                f"SLACK_BOT_TOKEN was rejected by Slack ({exc.response.get('error', 'unknown error')})"
            ) from None
        except Exception as exc:
            await self.client.session.close()
            raise StartupError(f"cannot reach Slack at SLACK_API_URL ({type(exc).__name__})") from None
        self.slack.translator.bot_user_id = str(identity["user_id"])
        self.slack.translator.team_id = str(identity["team_id"])
        self.slack.users.team_id = str(identity["team_id"])
        self.slack.users.enterprise_id = str(identity.get("enterprise_id") or "")
        if self.config.app_token:
            self._socket = AsyncSocketModeHandler(self.app, app_token=self.config.app_token)
            await self._socket.connect_async()
            log.info("slack: connected in Socket Mode as %s", self.slack.translator.bot_user_id)
        else:
            log.info("slack: listening for events at POST /slack/events as %s", self.slack.translator.bot_user_id)

    async def stop_intake(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
        self._inbox = None

    async def close(self) -> None:
        if self.client.session is not None:
            await self.client.session.close()
        if self.config.oauth is not None:
            await self.config.oauth.engine.dispose()

    async def surface_for_stored(self, message: IncomingMessage) -> MessageSurface | None:
        """A stored message's surface: everything it needs is in the thread key and the
        message's ts (a channel id starting with D is a DM)."""
        stored = replace(message, is_direct=message.thread.channel_id.startswith("D"))
        slack = self.slack
        if self._installations is not None:  # that workspace's token, if it still has the app
            bot = await self._installations.find_bot_of_workspace(message.thread.workspace_id)
            if bot is None or not bot.bot_token:
                return None
            slack = self._workspace(message.thread.workspace_id, None, bot.bot_user_id, self._client(bot.bot_token))
        return SlackMessageSurface(slack, stored, event={}, after_a_crash=True)

    def routes(self) -> list[web.RouteDef]:
        if self.config.app_token:
            return []
        installs = oauth_routes(self.app.oauth_flow) if self.app.oauth_flow is not None else []
        return [web.post("/slack/events", self._ingress.handle), *installs]

    # --- many workspaces (OAuth) -------------------------------------------

    def _client(self, token: str) -> AsyncWebClient:
        return AsyncWebClient(
            token=token, base_url=self.client.base_url, session=self.client.session,
            retry_handlers=self.client.retry_handlers,
        )

    def _for(self, context: AsyncBoltContext) -> SlackWorkspace:
        """What the surfaces of this event share: the app's one workspace, or in OAuth mode that
        of the event's workspace, with its token (Bolt's authorize found it)."""
        if self._installations is None or context.client is None or not context.team_id:
            return self.slack
        return self._workspace(context.team_id, context.enterprise_id, context.bot_user_id, context.client)

    def _workspace(
        self, team_id: str, enterprise_id: str | None, bot_user_id: str | None, client: AsyncWebClient
    ) -> SlackWorkspace:
        known = self._workspaces.get(team_id)
        if known is not None and known.client.token == client.token:
            return known
        users = SlackUsers(client)
        users.team_id, users.enterprise_id = team_id, enterprise_id or ""
        made = SlackWorkspace(
            client=client,
            users=users,
            translator=SlackTranslator(users, bot_user_id=bot_user_id or "", team_id=team_id),
            pane=AssistantPane(client, self.config.suggested_prompts),
            streaming=self.slack.streaming,
            files=SlackFileHost(client, client.token or "", self._file_hosts),
            sessions=AgentSessions(client),
            home=AgentHome(client, self.config.suggested_prompts),
        )
        self._workspaces[team_id] = made
        return made

    async def _forget_workspace(self, context: AsyncBoltContext, event: dict[str, Any]) -> None:
        """`app_uninstalled` / `tokens_revoked`: that workspace's tokens are deleted at once."""
        if self._installations is None:
            return
        if event.get("type") == "app_uninstalled" or (event.get("tokens") or {}).get("bot"):
            await self._installations.async_delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)
            self._workspaces.pop(context.team_id or "", None)
            if self._inbox is not None and context.team_id:
                await self._inbox.workspace_left(PLATFORM, context.team_id)  # its conversations go later
            log.info("slack: the app left workspace %s; its tokens are deleted", context.team_id)

    # --- events in --------------------------------------------------------

    def _register_listeners(self) -> None:
        app = self.app

        @app.event("app_mention")
        async def on_mention(
            event: dict[str, Any], body: dict[str, Any], request: AsyncBoltRequest, context: AsyncBoltContext
        ) -> None:
            await self._on_message(event, body, self._for(context), mentioned=True, redelivered=_is_retry(request))

        @app.event("message")
        async def on_message(
            event: dict[str, Any], body: dict[str, Any], request: AsyncBoltRequest, context: AsyncBoltContext
        ) -> None:
            await self._on_message(event, body, self._for(context), mentioned=False, redelivered=_is_retry(request))

        @app.event("assistant_thread_started")
        async def on_assistant_thread(event: dict[str, Any], context: AsyncBoltContext) -> None:
            await self._for(context).pane.greet(event)  # before the ack, within a short bound

        @app.event("app_uninstalled")
        async def on_uninstalled(event: dict[str, Any], context: AsyncBoltContext) -> None:
            await self._forget_workspace(context, event)

        @app.event("tokens_revoked")
        async def on_tokens_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
            await self._forget_workspace(context, event)

        @app.event("assistant_thread_context_changed")
        async def on_context_changed() -> None:
            return None

        # The agent messaging experience (agent_view); the two above serve assistant_view installs.
        @app.event("app_home_opened")
        async def on_home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
            await self._for(context).home.opened(event)  # before the ack, within a short bound

        @app.event("app_context_changed")
        async def on_app_context_changed() -> None:
            return None  # what the person looks at; the bot takes its context from the thread

        register_controls(app, self._for, lambda: self._inbox)

        @app.error
        async def on_listener_error(error: Exception) -> BoltResponse:
            """What failed while handling a request: the core could not store it (503: Slack
            delivers it again later), our own code (500, logged), or Bolt on a request of a
            shape it cannot take (400: bad input). `SlackIngress` passes these through."""
            if isinstance(error, ServiceUnavailable):
                log.warning("slack: cannot take the event now; Slack will retry it (503)")
                return BoltResponse(status=503, body="service unavailable", headers={LISTENER_FAILED: "outage"})
            if isinstance(error, ListenerBug):
                log.error("slack: a listener failed", exc_info=error.__cause__)
                return BoltResponse(status=500, body="internal error", headers={LISTENER_FAILED: "bug"})
            log.warning("slack: could not handle a request's payload (%s)", type(error).__name__)
            return BoltResponse(status=400, body="unprocessable request", headers={LISTENER_FAILED: "input"})

        @app.command(self.config.command)
        async def on_command(ack: Any, command: dict[str, Any], context: AsyncBoltContext) -> None:
            await ack()
            await self._on_command(command, self._for(context))

        # Registered last: what no listener above takes is acked (Bolt would answer 404, which
        # Slack retries, and log a listener template for it).
        @app.event(re.compile(".*"))
        async def on_other_event(event: dict[str, Any]) -> None:
            log.debug("slack: ignored a %s event", event.get("type"))

        @app.command(re.compile(".*"))
        async def on_other_command(ack: Any, command: dict[str, Any]) -> None:
            await ack()
            log.warning(
                "slack: ignored the slash command %r (this app answers %s; see SLACK_COMMAND)",
                str(command.get("command"))[:40],
                self.config.command,
            )

    async def _on_message(
        self, event: dict[str, Any], body: dict[str, Any], slack: SlackWorkspace, *, mentioned: bool, redelivered: bool
    ) -> None:
        if event.get("subtype") in changes.CHANGE_SUBTYPES:
            await self._on_change(event, body, slack)
            return
        try:
            message = await slack.translator.message(event, body, mentioned=mentioned)
            if message is not None and redelivered:
                message = replace(message, redelivered=True)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("slack: dropped a malformed %s event (%s)", event.get("type"), type(exc).__name__)
            return
        if message is not None and self._inbox is not None:
            with _ours():
                await self._inbox.submit(message, SlackMessageSurface(slack, message, event))

    async def _on_change(self, event: dict[str, Any], body: dict[str, Any], slack: SlackWorkspace) -> None:
        """A person deleted or edited a message: the core forgets or updates its turn before
        the ack (an outage answers 503, so Slack delivers the change again)."""
        try:
            deleted = changes.deletion(event, body, slack.translator)
            edited = None if deleted is not None else await changes.edit(event, body, slack.translator)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("slack: dropped a malformed %s event (%s)", event.get("subtype"), type(exc).__name__)
            return
        if self._inbox is None:
            return
        with _ours():
            if deleted is not None:
                await self._inbox.message_deleted(deleted)
            elif edited is not None:
                await self._inbox.message_edited(*edited)

    async def _on_command(self, command: dict[str, Any], slack: SlackWorkspace) -> None:
        try:
            invocation = slack.translator.command(command)
        except ValueError:
            log.warning("slack: dropped a malformed slash command (no usable channel or team)")
            return
        surface = SlackCommandSurface(slack.users, invocation.actor.user_id, str(command.get("response_url", "")))
        if self._inbox is not None:
            with _ours():
                await self._inbox.submit_command(invocation, surface)


def _is_retry(request: AsyncBoltRequest) -> bool:
    """Slack says so when it delivers an event again (`X-Slack-Retry-Num`; Socket Mode: `retry_attempt`)."""
    retries = request.headers.get("x-slack-retry-num") or [str(request.body.get("retry_attempt") or "")]
    return any(value not in ("", "0") for value in retries)


class ListenerBug(Exception):
    """Our own code failed while handling a request (the cause is chained)."""


@contextlib.contextmanager
def _ours() -> Iterator[None]:
    """Tell our failures from Bolt's: anything but an outage raised here is our bug."""
    try:
        yield
    except ServiceUnavailable:
        raise
    except Exception as exc:
        raise ListenerBug(type(exc).__name__) from exc


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
