"""Slack users: display names and admin flags from `users.info`, cached for a while."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ttl import TtlCache

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0
NAME_LOOKUP_SECONDS = 1.0  # Slack wants its ack within 3 s


class SlackUsers:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._cache: TtlCache[str, dict[str, Any] | None] = TtlCache(CACHE_SECONDS)

    async def display_name(self, user_id: str) -> str:
        user = await self._user(user_id)
        if not user:
            return user_id
        profile = user.get("profile") or {}
        names = (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name"))
        return str(next((name for name in names if name), user_id))

    async def name_quickly(self, user_id: str) -> str:
        """The display name, or the user id if Slack is slow to say (the ack must not wait)."""
        try:
            return await asyncio.wait_for(self.display_name(user_id), timeout=NAME_LOOKUP_SECONDS)
        except TimeoutError:
            log.warning("slack: users.info too slow; using the user id as the speaker's name")
            return user_id

    async def is_admin(self, user_id: str) -> bool:
        """A workspace admin or owner (never a guest or a deactivated account)."""
        user = await self._user(user_id)
        if not user or user.get("deleted") or user.get("is_restricted"):
            return False
        return any(user.get(flag) for flag in ("is_admin", "is_owner", "is_primary_owner"))

    async def _user(self, user_id: str) -> dict[str, Any] | None:
        """The profile (None where Slack would not say); a lookup outlives a caller that
        stopped waiting, so the name is there for the next message."""
        return await self._cache.get_or_load(user_id, lambda: self._fetch(user_id))

    async def _fetch(self, user_id: str) -> dict[str, Any] | None:
        try:
            user: dict[str, Any] | None = (await self._client.users_info(user=user_id)).get("user")
        except SlackApiError as exc:
            log.warning("slack: users.info failed for a user (%s)", exc.response.get("error"))
            return None
        return user
