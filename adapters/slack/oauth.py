"""Many Slack workspaces: Slack's OAuth install flow (Bolt's), the installs kept by slack-sdk's
async SQLAlchemy installation and state stores in the service's own database, each workspace's
tokens encrypted at rest with Fernet (the `cryptography` package) under ENCRYPTION_KEY.

`GET /slack/install` is the "Add to Slack" page; Slack sends the person back to
`GET /slack/oauth_redirect` with a code that `oauth.v2.access` turns into that workspace's bot
token. Bolt's authorize then finds the token of the workspace each event comes from.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
# The bot scopes the service uses (as in the Slack manifests).
BOT_SCOPES = (
    "app_mentions:read", "assistant:write", "channels:history", "chat:write", "commands", "groups:history",
    "im:history", "mpim:history", "reactions:write", "users:read",
)
_SEALED = "fernet:"  # marks a stored value as encrypted, so sealing twice is harmless


@dataclass(frozen=True)
class SlackOAuthConfig:
    client_id: str
    client_secret: str
    state_secret: str
    encryption_key: str
    engine: AsyncEngine  # the service's database (the tables come from its migrations)
    scopes: tuple[str, ...] = BOT_SCOPES


class TokenCipher:
    """Fernet with the operator's key: a stored token is unreadable without ENCRYPTION_KEY."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, value: str | None) -> str | None:
        if value is None or value.startswith(_SEALED):
            return value
        return _SEALED + self._fernet.encrypt(value.encode()).decode()

    def open(self, value: str | None) -> str | None:
        if value is None or not value.startswith(_SEALED):
            return value
        try:
            return self._fernet.decrypt(value[len(_SEALED) :].encode()).decode()
        except InvalidToken:
            log.error("slack: a stored token cannot be decrypted with ENCRYPTION_KEY (was the key changed?)")
            return None


_TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")


def _with_tokens(record: Any, change: Callable[[str | None], str | None]) -> Any:
    changed = copy.copy(record)
    for name in _TOKEN_FIELDS:
        if hasattr(changed, name):
            setattr(changed, name, change(getattr(changed, name)))
    return changed


class EncryptedInstallationStore(AsyncSQLAlchemyInstallationStore):
    """slack-sdk's store, with every token sealed before it is written and opened when read."""

    def __init__(self, client_id: str, engine: AsyncEngine, cipher: TokenCipher) -> None:
        super().__init__(client_id=client_id, engine=engine, logger=log)
        self._cipher = cipher
        self.on_installed: Callable[[str], Awaitable[None]] | None = None  # told the team id of each install

    async def async_save(self, installation: Installation) -> None:
        await super().async_save(_with_tokens(installation, self._cipher.seal))
        if self.on_installed is not None and installation.team_id:
            await self.on_installed(installation.team_id)

    async def async_save_bot(self, bot: Bot) -> None:
        await super().async_save_bot(_with_tokens(bot, self._cipher.seal))

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        found = await super().async_find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return None if found is None else _with_tokens(found, self._cipher.open)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await super().async_find_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, is_enterprise_install=is_enterprise_install
        )
        return None if found is None else _with_tokens(found, self._cipher.open)


class SignedStateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack-sdk's state store (each state used once, for a limited time), with states signed
    by SLACK_STATE_SECRET, so a state that did not come from this service is refused unread."""

    def __init__(self, engine: AsyncEngine, secret: str, expiration_seconds: int = 600) -> None:
        super().__init__(expiration_seconds=expiration_seconds, engine=engine, logger=log)
        self._secret = secret.encode()

    def _sign(self, state: str) -> str:
        return hmac.new(self._secret, state.encode(), hashlib.sha256).hexdigest()[:32]

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = await super().async_issue(*args, **kwargs)
        return f"{state}.{self._sign(state)}"

    async def async_consume(self, state: str) -> bool:
        raw, _, signature = state.rpartition(".")
        if not raw or not hmac.compare_digest(signature, self._sign(raw)):
            log.warning("slack: an OAuth redirect came with a state this service did not sign")
            return False
        return bool(await super().async_consume(raw))


def oauth_settings(config: SlackOAuthConfig) -> tuple[AsyncOAuthSettings, EncryptedInstallationStore]:
    store = EncryptedInstallationStore(config.client_id, config.engine, TokenCipher(config.encryption_key))
    settings = AsyncOAuthSettings(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scopes=list(config.scopes),
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=store,
        installation_store_bot_only=True,
        state_store=SignedStateStore(config.engine, config.state_secret),
        logger=log,
    )
    return settings, store


def oauth_routes(flow: AsyncOAuthFlow) -> list[web.RouteDef]:
    """`GET /slack/install` and `GET /slack/oauth_redirect`, served by Bolt's OAuth flow."""

    async def install(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

    async def redirect(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

    return [web.get(INSTALL_PATH, install), web.get(REDIRECT_PATH, redirect)]


def check_encryption_key(key: str) -> str | None:
    """Why `key` is no Fernet key, or None when it is one."""
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return "ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes)"
    return None
