"""A channel's effective settings: its stored rows, resolved by `policy.effective_settings`
against the operator's defaults. Shared by the conversation and `/claude`."""

from __future__ import annotations

from bot.domain import ChannelKey, ChannelSettings
from bot.policy import effective_settings
from bot.store.channels import ChannelStore


class ChannelSettingsResolver:
    def __init__(self, channels: ChannelStore, defaults: ChannelSettings) -> None:
        self.channels = channels
        self.defaults = defaults

    async def for_channel(self, channel: ChannelKey) -> ChannelSettings:
        return effective_settings(await self.channels.settings_rows(channel), channel.channel_id, self.defaults)
