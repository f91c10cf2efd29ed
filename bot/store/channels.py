"""Per-channel settings rows and their audit trail. Which value applies is
`policy.effective_settings`; this module only stores and reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.domain import SETTING_NAMES, ChannelKey, now
from bot.schema import audit_log, channel_settings
from bot.store.db import Database, channel_filter
from bot.ttl import TtlCache

SettingsRows = dict[str, dict[str, Any]]  # channel id -> setting name -> stored value (None: not set)

# Settings are read on every turn and change rarely: each instance keeps a channel's
# rows this long (a change made on another instance shows up within this time).
SETTINGS_CACHE_SECONDS = 5.0


class ChannelStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._settings_cache: TtlCache[ChannelKey, SettingsRows] = TtlCache(SETTINGS_CACHE_SECONDS)

    async def settings_rows(self, channel: ChannelKey) -> SettingsRows:
        """The stored settings rows of a channel and of its workspace (channel id `*`), by
        channel id; which value wins is `policy.effective_settings`."""
        return await self._settings_cache.get_or_load(channel, lambda: self._read_rows(channel))

    async def _read_rows(self, channel: ChannelKey) -> SettingsRows:
        async with self._db.engine.connect() as conn:
            result = await conn.execute(
                select(*(channel_settings.c[name] for name in ("channel_id", *SETTING_NAMES))).where(
                    channel_settings.c.platform == channel.platform,
                    channel_settings.c.workspace_id == channel.workspace_id,
                    channel_settings.c.channel_id.in_([channel.channel_id, "*"]),
                )
            )
            return {row.channel_id: {name: getattr(row, name) for name in SETTING_NAMES} for row in result}

    async def set_setting(self, channel: ChannelKey, name: str, value: Any, actor_id: str) -> None:
        """Set (or with None, clear back to the default) one setting, with an audit row."""
        if name not in SETTING_NAMES:
            raise ValueError(f"unknown setting {name!r}")
        moment = now()
        async with self._db.write() as conn:
            old = (
                await conn.execute(
                    select(channel_settings.c[name]).where(*channel_filter(channel_settings, channel))
                )
            ).scalar()
            await conn.execute(
                self._db.insert(channel_settings)
                .values(
                    platform=channel.platform,
                    workspace_id=channel.workspace_id,
                    channel_id=channel.channel_id,
                    updated_by=actor_id,
                    updated_at=moment,
                    **{name: value},
                )
                .on_conflict_do_update(
                    index_elements=["platform", "workspace_id", "channel_id"],
                    set_={name: value, "updated_by": actor_id, "updated_at": moment},
                )
            )
            await conn.execute(
                audit_entry(
                    channel, actor_id, name, None if old is None else str(old), None if value is None else str(value)
                )
            )
        self._settings_cache.clear()  # after the commit; a workspace row affects every channel


def audit_entry(channel: ChannelKey, actor_id: str, what: str, old_value: str | None, new_value: str | None) -> Any:
    """One row of the audit trail: who changed what where (never a message's content)."""
    return audit_log.insert().values(
        platform=channel.platform,
        workspace_id=channel.workspace_id,
        channel_id=channel.channel_id,
        actor_id=actor_id,
        setting=what,
        old_value=old_value,
        new_value=new_value,
        created_at=now(),
    )
