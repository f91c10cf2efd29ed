"""`/claude ...`: the admin commands, parsed once and run without any platform in sight.

`COMMANDS` is the one catalogue: the help text, the dispatch and each platform's
command UI (the Discord app-command group) are generated from it, so adding a
subcommand is one entry here (plus the Slack manifests' usage hint).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.domain import CommandInvocation, TokenUsage, now
from bot.pricing import estimated_cost_usd
from bot.tool_commands import describe_thinking, describe_tools, model_flag, run_effort, run_fallback, run_tools

if TYPE_CHECKING:
    from bot.channel_settings import ChannelSettingsResolver
    from bot.claude import ModelCatalog
    from bot.ports import CommandSurface
    from bot.spend import SpendGuard
    from bot.store import Store

log = logging.getLogger(__name__)

MAX_SYSTEM_PROMPT_CHARS = 20_000
USAGE_WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CommandArgument:
    name: str  # as a platform's form field calls it (Discord option name)
    placeholder: str  # as the help text shows it
    description: str
    model_id: bool = False  # offer the known model ids (autocomplete)
    optional: bool = False  # the command also runs without it


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    description: str
    admin_only: bool
    run: Callable[[CommandService, CommandInvocation, str], Awaitable[str]]
    argument: CommandArgument | None = None
    admin_outside_dms: bool = False  # anyone may run it in a DM, only admins elsewhere
    admin_to_change: bool = False  # anyone may run it bare (to see), only admins with an argument

    def needs_admin(self, invocation: CommandInvocation, argument: str = "") -> bool:
        return (
            self.admin_only
            or (self.admin_outside_dms and not invocation.is_direct)
            or (self.admin_to_change and bool(argument) and argument.lower() != "show")
        )

    @property
    def usage(self) -> str:
        return f"/claude {self.name}" + (f" {self.argument.placeholder}" if self.argument else "")


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
    def __init__(
        self,
        store: Store,
        settings: ChannelSettingsResolver,
        catalog: ModelCatalog,
        admin_user_ids: frozenset[str],
        *,
        spend: SpendGuard | None = None,
        after_forget: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        self.spend = spend
        self.settings = settings
        self.catalog = catalog
        self.admin_user_ids = admin_user_ids
        self.after_forget = after_forget  # deletes what the forgotten turns left elsewhere (uploaded files)

    async def run(self, invocation: CommandInvocation, surface: CommandSurface) -> str:
        """Run a command and return the (ephemeral) answer."""
        command = parse_command(invocation.text)
        if command.name in ("", "help"):
            return help_text()
        spec = BY_NAME.get(command.name)
        if spec is None:
            return f"I don't know `/claude {command.name}`.\n\n{help_text()}"
        if spec.needs_admin(invocation, command.argument) and not await self.is_admin(invocation, surface):
            # Who tried what where; never the argument (a system prompt may be private).
            log.warning(
                "commands: refused /claude %s to %s in %s (not an admin)",
                spec.name,
                invocation.actor.qualified_id,
                invocation.channel,
            )
            return f"Only workspace admins can use `/claude {command.name}`. Nothing was changed."
        return await spec.run(self, invocation, command.argument)

    async def is_admin(self, invocation: CommandInvocation, surface: CommandSurface) -> bool:
        if invocation.actor.qualified_id in self.admin_user_ids:
            return True
        return await surface.actor_is_admin()

    async def _show(self, invocation: CommandInvocation, _argument: str) -> str:
        current = await self.settings.for_channel(invocation.channel)
        flag = model_flag(await self.catalog.get(current.model))
        return (
            f"*Model:* `{current.model}`{flag}\n*Max tokens:* {current.max_tokens}\n"
            f"{describe_tools(current)}\n{describe_thinking(current)}\n"
            f"*System prompt:*\n>>> {current.system_prompt}"
        )

    async def _model(self, invocation: CommandInvocation, argument: str) -> str:
        known = sorted(await self.catalog.models())
        if not argument:
            current = await self.settings.for_channel(invocation.channel)
            return f"This channel uses `{current.model}`. Known models: {_listing(known)}"
        if argument not in known:
            return f"`{argument}` is not a model I know. Known models: {_listing(known)}"
        await self.store.channels.set_setting(invocation.channel, "model", argument, invocation.actor.qualified_id)
        return f"This channel now uses `{argument}`."

    async def _system(self, invocation: CommandInvocation, argument: str) -> str:
        if not argument:
            return "Give the new system prompt after `/claude system`, or use `/claude reset`."
        if len(argument) > MAX_SYSTEM_PROMPT_CHARS:
            return (
                f"That system prompt is too long ({len(argument):,} characters; "
                f"at most {MAX_SYSTEM_PROMPT_CHARS:,})."
            )
        await self.store.channels.set_setting(
            invocation.channel, "system_prompt", argument, invocation.actor.qualified_id
        )
        return "This channel's system prompt is updated. It applies from the next message."

    async def _reset(self, invocation: CommandInvocation, _argument: str) -> str:
        for name in ("model", "system_prompt"):
            await self.store.channels.set_setting(invocation.channel, name, None, invocation.actor.qualified_id)
        return f"This channel is back to the defaults: `{self.settings.defaults.model}` and the default system prompt."

    async def _usage(self, invocation: CommandInvocation, _argument: str) -> str:
        rows = await self.store.housekeeping.usage_summary(invocation.channel, now() - USAGE_WINDOW)
        if not rows:
            return "No Claude turns in this channel in the last 30 days."
        lines = ["*Last 30 days in this channel:*"]
        votes = {f.model: f for f in await self.store.answers.feedback_counts(invocation.channel, now() - USAGE_WINDOW)}
        total_cost = 0.0
        all_priced = True
        for row in rows:
            cost = estimated_cost_usd(row.model, row.usage)
            if cost is None:
                all_priced = False
            total_cost += cost or 0.0
            vote = votes.get(row.model)
            feedback = f", feedback {vote.up} up / {vote.down} down" if vote else ""
            lines.append(f"• `{row.model}`: {row.turns} turns, {_tokens(row.usage)}, {_money(cost)}{feedback}")
        total = sum((row.usage for row in rows), TokenUsage())
        lines.append(
            f"*Total:* {sum(r.turns for r in rows)} turns, {_tokens(total)}, "
            f"≈ ${total_cost:,.2f}{'' if all_priced else ' (some models unpriced)'} (estimate)"
        )
        return "\n".join(lines)

    async def _new(self, invocation: CommandInvocation, _argument: str) -> str:
        if invocation.thread is None or not invocation.is_direct:
            return "Here every thread is already its own conversation: start a new thread to start fresh."
        await self.store.turns.start_fresh(invocation.thread)
        return "Starting fresh: I won't use our earlier messages from here on."

    async def _forget(self, invocation: CommandInvocation, _argument: str) -> str:
        """In a DM, its whole stored history (each DM is one person's); elsewhere (admins
        only, see `needs_admin`), the stored history of the thread the command was run in."""
        actor = invocation.actor.qualified_id
        if invocation.is_direct:
            deleted = await self.store.people.forget(invocation.channel, actor_id=actor)
            await self._forgotten()
            log.info("commands: %s forgot their DM %s (%d messages)", actor, invocation.channel, deleted)
            return (
                f"Forgotten: I deleted everything I had stored of this DM ({_count(deleted)}). "
                "Messages still shown in the chat stay there; I won't use them again."
            )
        if invocation.thread is None:
            return (
                "I can't tell which thread to forget: on Discord, run `/claude forget` inside the thread. "
                "Slack doesn't tell apps which thread a command was typed in, so there the service's operator "
                "can delete a person's messages with `bot erase`. Nothing was changed."
            )
        deleted = await self.store.people.forget(invocation.thread, actor_id=actor)
        await self._forgotten()
        log.info("commands: %s forgot thread %s (%d messages)", actor, invocation.thread, deleted)
        return (
            f"Forgotten: I deleted what I had stored of this thread ({_count(deleted)}). "
            "Messages still shown in the thread stay there; I won't use them again."
        )

    async def _forgotten(self) -> None:
        if self.after_forget is None:
            return
        try:
            await self.after_forget()
        except Exception:  # the turns are gone; the next pruning run deletes what is left
            log.exception("commands: cleaning up after forget failed")


async def _budget(service: CommandService, invocation: CommandInvocation, argument: str) -> str:
    if service.spend is None:
        return "Spend limits are not available here."
    return await service.spend.budget_command(invocation, argument)


async def _help(_service: CommandService, _invocation: CommandInvocation, _argument: str) -> str:
    return help_text()


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("show", "This channel's model, tools, effort and system prompt", False, CommandService._show),
    CommandSpec(
        "model", "Choose this channel's model", True, CommandService._model,
        CommandArgument("model_id", "<id>", "a model id, e.g. claude-sonnet-5-5", model_id=True),
    ),
    CommandSpec(
        "system", "Set this channel's system prompt", True, CommandService._system,
        CommandArgument("prompt", "<text>", "the system prompt"),
    ),
    CommandSpec(
        "tools", "Show or choose Claude's tools here (web search and fetch)", False, run_tools,
        CommandArgument("setting", "[web on|off|allow <domains>|block <domains>|any]", "e.g. web on", optional=True),
        admin_to_change=True,
    ),
    CommandSpec(
        "effort", "Show or choose how hard Claude thinks here", False, run_effort,
        CommandArgument("level", "[low|medium|high|max|default]", "low, medium, high, max or default", optional=True),
        admin_to_change=True,
    ),
    CommandSpec(
        "fallback", "Show or choose the model that answers when Claude declines", False, run_fallback,
        CommandArgument("model_id", "[<model>|off]", "a model id, or off", model_id=True, optional=True),
        admin_to_change=True,
    ),
    CommandSpec("reset", "Back to the default model and system prompt", True, CommandService._reset),
    CommandSpec("usage", "This channel's turns, tokens and estimated cost, last 30 days", True, CommandService._usage),
    CommandSpec("new", "Where a whole DM is one conversation, start a fresh one", False, CommandService._new),
    CommandSpec(
        "forget", "Delete the stored history of this DM, or of this thread (admins)", False,
        CommandService._forget, admin_outside_dms=True,
    ),
    CommandSpec(
        "budget", "Spending limits and spend here; admins change them", False, _budget,
        CommandArgument("limit", "[channel|user|workspace <amount>/day|<amount>/month|off]",
                        "e.g. channel 5/day, user 2/day, workspace 300/month, channel off", optional=True),
        admin_to_change=True,
    ),
    CommandSpec("help", "What /claude can do", False, _help),
)
BY_NAME = {spec.name: spec for spec in COMMANDS}


def help_text() -> str:
    lines = ["*/claude* commands:"]
    for spec in COMMANDS:
        lines.append(f"• `{spec.usage}`: {spec.description[0].lower()}{spec.description[1:]}"
                     + (" (admins)" if spec.admin_only else " (admins change it)" if spec.admin_to_change else ""))
    return "\n".join(lines)


def _listing(ids: list[str]) -> str:
    return ", ".join(f"`{model_id}`" for model_id in ids)


def _tokens(usage: TokenUsage) -> str:
    tools = ""
    if usage.web_searches or usage.web_fetches:
        tools = f", {_several(usage.web_searches, 'web search', 'web searches')}, " + _several(
            usage.web_fetches, "web fetch", "web fetches"
        )
    return (
        f"{usage.input_tokens:,} input / {usage.output_tokens:,} output / "
        f"{usage.cache_read_tokens:,} cache read / {usage.cache_write_tokens:,} cache write tokens{tools}"
    )


def _several(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _count(messages: int) -> str:
    return "1 message" if messages == 1 else f"{messages:,} messages"


def _money(cost: float | None) -> str:
    return "cost unknown" if cost is None else f"≈ ${cost:,.2f}"
