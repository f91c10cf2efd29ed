"""A channel's effective settings: its stored rows, resolved by `policy.effective_settings`
against the operator's defaults. Shared by the conversation and `/claude`."""

from __future__ import annotations

from dataclasses import replace

from bot.claude.catalog import ModelCatalog
from bot.domain import ChannelKey, ChannelSettings
from bot.policy import RETIRED_MODEL_NOTE, effective_settings
from bot.store.channels import ChannelStore

RETIRED_MODEL_ACTOR = "service:retired-model"  # who the audit trail says cleared a retired model


class ChannelSettingsResolver:
    def __init__(self, channels: ChannelStore, defaults: ChannelSettings) -> None:
        self.channels = channels
        self.defaults = defaults

    async def for_channel(self, channel: ChannelKey) -> ChannelSettings:
        return effective_settings(await self.channels.settings_rows(channel), channel.channel_id, self.defaults)

    async def unretired(
        self, channel: ChannelKey, settings: ChannelSettings, catalog: ModelCatalog
    ) -> tuple[ChannelSettings, str | None]:
        """A channel pinned to a model the models API calls retired answers with the default
        model, and says so once: the retired choice is cleared (audited) where it was made."""
        info = await catalog.get(settings.model)
        default = await catalog.get(self.defaults.model)
        if info is None or info.lifecycle != "retired" or (default is not None and default.lifecycle == "retired"):
            return settings, None
        retired = settings.model
        for channel_id, row in (await self.channels.settings_rows(channel)).items():
            if row.get("model") == retired:
                where = ChannelKey(channel.platform, channel.workspace_id, channel_id)
                await self.channels.set_setting(where, "model", None, RETIRED_MODEL_ACTOR)
        return replace(settings, model=self.defaults.model), RETIRED_MODEL_NOTE.format(
            retired=retired, default=self.defaults.model
        )
