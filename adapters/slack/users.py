"""Slack users: display names and admin rights from `users.info`.

Names are cached for a while (a rename shows late, which harms no one). Admin rights
are not: a profile read to decide one is at most `ADMIN_CACHE_SECONDS` old, so a
demoted admin loses the right within a minute, and a failed lookup is never kept (it
refuses this time and asks Slack again the next). Only the flags of this workspace
count: a Slack Connect stranger who administers their own workspace is no admin here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ttl import Clock, TtlCache

log = logging.getLogger(__name__)

NAME_CACHE_SECONDS = 300.0
ADMIN_CACHE_SECONDS = 60.0
MAX_CACHED_USERS = 10_000
NAME_LOOKUP_SECONDS = 1.0  # for all the names of one message: Slack wants its ack within 3 s
_ADMIN_FLAGS = ("is_admin", "is_owner", "is_primary_owner")


class UserLookupFailed(Exception):
    """`users.info` gave no profile (the error is Slack's)."""


class SlackUsers:
    def __init__(self, client: AsyncWebClient, *, clock: Clock = time.monotonic) -> None:
        self._client = client
        # Who the app is installed for (auth.test), set by the adapter when it starts.
        self.team_id = ""
        self.enterprise_id = ""
        self._names: TtlCache[str, dict[str, Any]] = TtlCache(
            NAME_CACHE_SECONDS, max_entries=MAX_CACHED_USERS, clock=clock
        )
        self._admin_checks: TtlCache[str, dict[str, Any]] = TtlCache(
            ADMIN_CACHE_SECONDS, max_entries=MAX_CACHED_USERS, clock=clock
        )

    async def display_name(self, user_id: str) -> str:
        try:
            user = await self._names.get_or_load(user_id, lambda: self._fetch(user_id))
        except UserLookupFailed:
            return user_id
        profile = user.get("profile") or {}
        names = (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name"))
        return str(next((name for name in names if name), user_id))

    async def names_quickly(self, user_ids: set[str]) -> dict[str, str]:
        """Display names, looked up at once within one small budget (the ack waits for them);
        a name Slack is slow to give, or cannot give, is the user id this time. A lookup
        outlives the budget, so the name is there for the next message."""
        lookups = {user_id: asyncio.ensure_future(self.display_name(user_id)) for user_id in user_ids}
        if lookups:
            await asyncio.wait(lookups.values(), timeout=NAME_LOOKUP_SECONDS)
        late = [user_id for user_id, lookup in lookups.items() if not lookup.done()]
        if late:
            log.warning("slack: users.info too slow; using %d user ids as names", len(late))
        return {
            user_id: lookup.result() if lookup.done() and not lookup.exception() else user_id
            for user_id, lookup in lookups.items()
        }

    async def is_admin(self, user_id: str) -> bool:
        """An admin or owner of this workspace (or of the Enterprise Grid org it belongs to);
        never a guest, a bot, a deactivated account, or someone whose profile Slack would not give."""
        try:
            user = await self._admin_checks.get_or_load(user_id, lambda: self._fetch(user_id))
        except UserLookupFailed:
            return False
        if user.get("deleted") or user.get("is_restricted") or user.get("is_ultra_restricted") or user.get("is_bot"):
            return False
        if self.team_id and user.get("team_id") == self.team_id and _any(user):
            return True
        org = user.get("enterprise_user")
        return (
            isinstance(org, dict)
            and bool(self.enterprise_id)
            and org.get("enterprise_id") == self.enterprise_id
            and self.team_id in (org.get("teams") or [])
            and _any(org)
        )

    async def _fetch(self, user_id: str) -> dict[str, Any]:
        try:
            user = (await self._client.users_info(user=user_id)).get("user")
        except SlackApiError as exc:
            log.warning("slack: users.info failed for a user (%s)", exc.response.get("error"))
            raise UserLookupFailed(str(exc.response.get("error"))) from None
        except Exception as exc:  # a network fault: the id stands in for the name this time
            log.warning("slack: users.info could not be reached (%s)", type(exc).__name__)
            raise UserLookupFailed(type(exc).__name__) from None
        if not isinstance(user, dict):
            raise UserLookupFailed("no user in the answer")
        self._names.put(user_id, user)  # a fresh profile serves the names too
        return user


def _any(flags: dict[str, Any]) -> bool:
    """Whether `flags` (a user, or its `enterprise_user`) says admin or owner."""
    return any(flags.get(name) is True for name in _ADMIN_FLAGS)
