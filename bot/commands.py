"""`/claude ...`: the admin commands, parsed once and run without any platform in sight."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.events import CommandInvocation
from bot.store import Store, now
from bot.usage import TokenUsage, estimated_cost_usd

if TYPE_CHECKING:
    from adapters.base import Adapter
    from bot.claude import ModelCatalog

MAX_SYSTEM_PROMPT_CHARS = 20_000
USAGE_WINDOW = timedelta(days=30)

HELP = """\
*/claude* commands:
• `/claude show`: this channel's model and system prompt
• `/claude model <id>`: choose the model for this channel (admins)
• `/claude system <text>`: set this channel's system prompt (admins)
• `/claude reset`: back to the default model and system prompt (admins)
• `/claude usage`: this channel's turns, tokens and estimated cost over 30 days (admins)
• `/claude new`: where a whole DM is one conversation, start a fresh one
• `/claude help`: this list"""

_EVERYONE = {"help", "show", "new"}
_ADMIN = {"model", "system", "reset", "usage"}


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # one of the command names, or "" when none was given
    argument: str


def parse_command(text: str) -> Command:
    """`model claude-x` -> Command("model", "claude-x"). The name is the first word, case-
    insensitive, ended by any whitespace; the argument keeps its inner whitespace and line
    breaks (system prompts)."""
    match = re.match(r"\s*(\S+)\s*(.*)", text, re.DOTALL)
    if match is None:
        return Command("", "")
    return Command(match.group(1).lower(), match.group(2).strip())


class CommandService:
    def __init__(self, store: Store, catalog: ModelCatalog, admin_user_ids: frozenset[str]) -> None:
        self.store = store
        self.catalog = catalog
        self.admin_user_ids = admin_user_ids

    async def run(self, adapter: Adapter, invocation: CommandInvocation) -> str:
        """Run a command and return the (ephemeral) answer."""
        command = parse_command(invocation.text)
        if command.name in ("", "help"):
            return HELP
        if command.name not in _EVERYONE | _ADMIN:
            return f"I don't know `/claude {command.name}`.\n\n{HELP}"
        if command.name in _ADMIN and not await self.is_admin(adapter, invocation):
            return f"Only workspace admins can use `/claude {command.name}`. Nothing was changed."
        handler = getattr(self, f"_{command.name}")
        answer: str = await handler(invocation, command.argument)
        return answer

    async def is_admin(self, adapter: Adapter, invocation: CommandInvocation) -> bool:
        if invocation.actor.qualified_id in self.admin_user_ids:
            return True
        return await adapter.is_admin(invocation.actor, invocation.channel)

    async def _show(self, invocation: CommandInvocation, _argument: str) -> str:
        current = await self.store.settings_for(invocation.channel)
        return (
            f"*Model:* `{current.model}`\n*Max tokens:* {current.max_tokens}\n"
            f"*System prompt:*\n>>> {current.system_prompt}"
        )

    async def _model(self, invocation: CommandInvocation, argument: str) -> str:
        known = sorted(await self.catalog.models())
        if not argument:
            current = await self.store.settings_for(invocation.channel)
            return f"This channel uses `{current.model}`. Known models: {_listing(known)}"
        if argument not in known:
            return f"`{argument}` is not a model I know. Known models: {_listing(known)}"
        await self.store.set_setting(invocation.channel, "model", argument, invocation.actor.qualified_id)
        return f"This channel now uses `{argument}`."

    async def _system(self, invocation: CommandInvocation, argument: str) -> str:
        if not argument:
            return "Give the new system prompt after `/claude system`, or use `/claude reset`."
        if len(argument) > MAX_SYSTEM_PROMPT_CHARS:
            return (
                f"That system prompt is too long ({len(argument):,} characters; "
                f"at most {MAX_SYSTEM_PROMPT_CHARS:,})."
            )
        await self.store.set_setting(invocation.channel, "system_prompt", argument, invocation.actor.qualified_id)
        return "This channel's system prompt is updated. It applies from the next message."

    async def _reset(self, invocation: CommandInvocation, _argument: str) -> str:
        for name in ("model", "system_prompt"):
            await self.store.set_setting(invocation.channel, name, None, invocation.actor.qualified_id)
        defaults = self.store.defaults
        return f"This channel is back to the defaults: `{defaults.model}` and the default system prompt."

    async def _usage(self, invocation: CommandInvocation, _argument: str) -> str:
        rows = await self.store.usage_summary(invocation.channel, now() - USAGE_WINDOW)
        if not rows:
            return "No Claude turns in this channel in the last 30 days."
        lines = ["*Last 30 days in this channel:*"]
        total_cost = 0.0
        all_priced = True
        for row in rows:
            cost = estimated_cost_usd(row.model, row.usage)
            if cost is None:
                all_priced = False
            total_cost += cost or 0.0
            lines.append(f"• `{row.model}`: {row.turns} turns, {_tokens(row.usage)}, {_money(cost)}")
        total = sum((row.usage for row in rows), TokenUsage())
        lines.append(
            f"*Total:* {sum(r.turns for r in rows)} turns, {_tokens(total)}, "
            f"≈ ${total_cost:,.2f}{'' if all_priced else ' (some models unpriced)'} (estimate)"
        )
        return "\n".join(lines)

    async def _new(self, invocation: CommandInvocation, _argument: str) -> str:
        if invocation.thread is None or not invocation.is_direct:
            return "Here every thread is already its own conversation: start a new thread to start fresh."
        await self.store.start_fresh(invocation.thread)
        return "Starting fresh: I won't use our earlier messages from here on."


def _listing(ids: list[str]) -> str:
    return ", ".join(f"`{model_id}`" for model_id in ids)


def _tokens(usage: TokenUsage) -> str:
    return (
        f"{usage.input_tokens:,} input / {usage.output_tokens:,} output / "
        f"{usage.cache_read_tokens:,} cache read / {usage.cache_write_tokens:,} cache write tokens"
    )


def _money(cost: float | None) -> str:
    return "cost unknown" if cost is None else f"≈ ${cost:,.2f}"
