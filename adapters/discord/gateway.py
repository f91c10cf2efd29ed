"""Which gateway discord.py connects to, and what a failed connection tells the operator.

Discord asks bots to fetch the gateway URL from `GET /gateway/bot`, cache it and
fall back to the default when that fails. discord.py's plain client never asks (it
connects to `DiscordWebSocket.DEFAULT_GATEWAY`), the sharded one asks only when it
chooses the shard count, and both go back to `DEFAULT_GATEWAY` after an
INVALID_SESSION. So the fetched URL replaces that class attribute (as `Route.BASE`
holds the REST URL: the service talks to one Discord); resumes still go to READY's
`resume_gateway_url`, which discord.py takes by itself.
"""

from __future__ import annotations

import logging

import discord
import yarl
from discord.gateway import DiscordWebSocket

log = logging.getLogger(__name__)

DISCORD_GATEWAY = yarl.URL("wss://gateway.discord.gg/")
BAD_TOKEN = 4004
DISALLOWED_INTENTS = 4014
INTENT_REFUSED = (
    "discord refused the Message Content intent: enable it in the Developer Portal "
    "(your application -> Bot -> Privileged Gateway Intents -> MESSAGE CONTENT INTENT)"
)
TOKEN_REFUSED = "DISCORD_TOKEN was rejected by Discord's gateway"


async def use_api_gateway(client: discord.Client) -> yarl.URL:
    """Fetch the gateway URL from the logged-in client's API and make it the one discord.py
    connects to (and comes back to); Discord's default when the API does not say."""
    try:
        _shards, url, _limits = await client.http.get_bot_gateway()
        gateway = yarl.URL(url)
        if gateway.scheme not in ("ws", "wss") or not gateway.host:
            raise ValueError("not a websocket URL")
    except (discord.DiscordException, KeyError, TypeError, ValueError) as exc:
        log.warning("discord: GET /gateway/bot failed (%s); using %s", type(exc).__name__, DISCORD_GATEWAY)
        gateway = DISCORD_GATEWAY
    DiscordWebSocket.DEFAULT_GATEWAY = gateway
    log.info("discord: gateway %s", gateway.with_query(None))
    return gateway


def why_the_gateway_stopped(exc: BaseException) -> str:
    """One line for the operator about a gateway connection that ended for good."""
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return INTENT_REFUSED
    if isinstance(exc, discord.ConnectionClosed):
        if exc.code == BAD_TOKEN:
            return TOKEN_REFUSED
        if exc.code == DISALLOWED_INTENTS:
            return INTENT_REFUSED
        return f"discord gateway closed the connection (code {exc.code})"
    return f"discord gateway stopped: {type(exc).__name__}"
