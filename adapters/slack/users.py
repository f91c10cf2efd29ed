"""Slack users: display names and admin flags from `users.info`, cached for a while."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

CACHE_SECONDS = 300.0
NAME_LOOKUP_SECONDS = 1.0  # Slack wants its ack within 3 s


class SlackUsers:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

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
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            user = (await self._client.users_info(user=user_id)).get("user")
        except SlackApiError as exc:
            log.warning("slack: users.info failed for a user (%s)", exc.response.get("error"))
            user = None
        self._cache[user_id] = (time.monotonic() + CACHE_SECONDS, user)
        return user
