"""`/claude` as a Discord app-command group, generated from the core's `COMMANDS` table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from bot.commands import COMMANDS, CommandSpec

RunCommand = Callable[[discord.Interaction, str, str], Awaitable[None]]  # (interaction, name, argument)
ModelChoices = Callable[[], Awaitable[list[str]]]
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
ADMIN_NOTE = " (Manage Server)"


def claude_group(run: RunCommand, model_choices: ModelChoices) -> app_commands.Group:
    group = app_commands.Group(name="claude", description="Claude in this server")
    for spec in COMMANDS:
        group.add_command(_subcommand(spec, run, model_choices))
    return group


def _subcommand(
    spec: CommandSpec, run: RunCommand, model_choices: ModelChoices
) -> app_commands.Command[Any, Any, None]:
    description = spec.description + (ADMIN_NOTE if spec.admin_only else "")
    if spec.argument is None:

        async def without_argument(interaction: discord.Interaction) -> None:
            await run(interaction, spec.name, "")

        return app_commands.Command(name=spec.name, description=description, callback=without_argument)

    async def with_argument(interaction: discord.Interaction, value: str) -> None:
        await run(interaction, spec.name, value)

    async def with_optional_argument(interaction: discord.Interaction, value: str = "") -> None:
        await run(interaction, spec.name, value)

    callback = with_optional_argument if spec.argument.optional else with_argument
    app_commands.rename(value=spec.argument.name)(callback)
    app_commands.describe(value=spec.argument.description)(callback)
    command: app_commands.Command[Any, Any, None] = app_commands.Command(
        name=spec.name, description=description, callback=callback
    )
    if spec.argument.model_id:

        @command.autocomplete("value")
        async def suggest(_interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
            matching = [m for m in await model_choices() if typed.lower() in m.lower()]
            return [app_commands.Choice(name=m, value=m) for m in matching[:MAX_CHOICES]]

    return command
