"""Discord, by concern: `adapter` (client lifecycle and events in), `translate` (messages
to the core's values), `surface` (the core's handle on one message or interaction),
`commands` (the `/claude` group generated from the core's command table)."""

from adapters.discord.adapter import DiscordAdapter, DiscordConfig, make_client

__all__ = ["DiscordAdapter", "DiscordConfig", "make_client"]
