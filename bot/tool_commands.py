"""`/claude tools`, `/claude effort`, `/claude fallback`: Claude's own tools and thinking
per channel. The parsers are pure (table-tested in tests/test_tool_commands.py); the
handlers store through `store.channels.set_setting`, which writes the audit row."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.domain import ChannelSettings, CommandInvocation

if TYPE_CHECKING:
    from bot.claude import ModelInfo
    from bot.commands import CommandService

EFFORT_LEVELS = ("low", "medium", "high", "max")
MAX_DOMAINS = 50
# A host name as the web tools take it: labels of letters, digits and hyphens, optionally
# with a path prefix (the API accepts "example.com/docs"); no scheme.
_DOMAIN = re.compile(r"^(?=.{1,253}(/|$))([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(/[\w./-]*)?$")

TOOLS_USAGE = (
    "Use `/claude tools web on`, `/claude tools web off`, `/claude tools web allow <domains>`, "
    "`/claude tools web block <domains>` or `/claude tools web any` (domains separated by commas or spaces)."
)


@dataclass(frozen=True, slots=True)
class SettingChange:
    """What a command asks to store: (setting name, value) pairs, and what to answer."""

    changes: tuple[tuple[str, object], ...]
    answer: str


def parse_domains(text: str) -> list[str] | str:
    """`a.com, docs.b.org` -> the domains, lower-case and deduplicated; or a sentence saying what is wrong."""
    found: list[str] = []
    for raw in re.split(r"[\s,]+", text.strip().lower()):
        domain = raw.removeprefix("https://").removeprefix("http://").strip("/")
        if not domain:
            continue
        if not _DOMAIN.match(domain):
            return f"`{raw[:80]}` is not a domain (like `example.com` or `docs.example.com`). Nothing was changed."
        if domain not in found:
            found.append(domain)
    if not found:
        return "Give at least one domain, e.g. `example.com`. Nothing was changed."
    if len(found) > MAX_DOMAINS:
        return f"At most {MAX_DOMAINS} domains. Nothing was changed."
    return found


def parse_tools(argument: str) -> SettingChange | str:
    """The argument of `/claude tools` (not empty) -> what to store, or a sentence on what is wrong."""
    words = argument.split(None, 2)
    if not words or words[0].lower() != "web" or len(words) < 2:
        return f"I don't know that tool setting. {TOOLS_USAGE}"
    action, rest = words[1].lower(), (words[2] if len(words) > 2 else "")
    if action in ("on", "off") and not rest:
        on = action == "on"
        return SettingChange(
            (("web", on),),
            "Web search and web fetch are now "
            + ("on in this channel: Claude may look things up and will list its sources." if on else
               "off in this channel."),
        )
    if action == "any" and not rest:
        return SettingChange(
            (("web_allowed_domains", None), ("web_blocked_domains", None)),
            "Web search and fetch may now use any domain in this channel.",
        )
    if action in ("allow", "block"):
        domains = parse_domains(rest)
        if isinstance(domains, str):
            return domains
        listed = ", ".join(f"`{d}`" for d in domains)
        joined = ",".join(domains)
        if action == "allow":  # the API takes one list or the other, never both
            return SettingChange(
                (("web_allowed_domains", joined), ("web_blocked_domains", None)),
                f"Web search and fetch now use only {listed} in this channel.",
            )
        return SettingChange(
            (("web_blocked_domains", joined), ("web_allowed_domains", None)),
            f"Web search and fetch now never use {listed} in this channel.",
        )
    return f"I don't know `{action[:40]}` for web tools. {TOOLS_USAGE}"


def parse_effort(argument: str) -> SettingChange | str:
    level = argument.strip().lower()
    if level == "default":
        return SettingChange((("effort", None),), "This channel is back to the model's default effort.")
    if level not in EFFORT_LEVELS:
        return f"Effort is one of {', '.join(f'`{e}`' for e in EFFORT_LEVELS)} or `default`. Nothing was changed."
    return SettingChange(
        (("effort", level),),
        f"Claude now thinks with `{level}` effort in this channel (on models that support it).",
    )


def describe_tools(settings: ChannelSettings) -> str:
    """One line per tool setting, for `/claude tools` and `/claude show`."""
    if not settings.web:
        return "*Web search and fetch:* off"
    where = "any domain"
    if settings.web_allowed_domains:
        where = "only " + _listed(settings.web_allowed_domains)
    elif settings.web_blocked_domains:
        where = "any domain except " + _listed(settings.web_blocked_domains)
    return f"*Web search and fetch:* on ({where})"


def describe_effort(settings: ChannelSettings) -> str:
    return "*Effort:* " + (f"`{settings.effort}`" if settings.effort else "the model's default")


def describe_fallback(settings: ChannelSettings) -> str:
    return "*Fallback model when Claude declines:* " + (
        f"`{settings.fallback_model}`" if settings.fallback_model else "none"
    )


def describe_thinking(settings: ChannelSettings) -> str:
    return describe_effort(settings) + "\n" + describe_fallback(settings)


def model_flag(info: ModelInfo | None) -> str:
    """What `/claude show` adds after the channel's model: deprecated or retired, with the date."""
    if info is None or info.lifecycle == "active":
        return ""
    if info.lifecycle == "retired":
        return " ⚠️ retired: answers come from the default model. An admin can choose another with `/claude model`."
    when = f" (retires {info.retires_at:%Y-%m-%d})" if info.retires_at else ""
    return f" ⚠️ deprecated{when}: an admin should choose another with `/claude model`."


def _listed(domains: str) -> str:
    return ", ".join(f"`{d}`" for d in domains.split(",") if d)


async def run_tools(service: CommandService, invocation: CommandInvocation, argument: str) -> str:
    if not argument:
        current = await service.settings.for_channel(invocation.channel)
        info = await service.catalog.get(current.model)
        lacking = ""
        if current.web and info is not None and not info.web_search:
            lacking = f"\n⚠️ This channel's model `{current.model}` has no web search: it answers without the web."
        return describe_tools(current) + lacking + "\n" + TOOLS_USAGE
    return await _store(service, invocation, parse_tools(argument))


async def run_effort(service: CommandService, invocation: CommandInvocation, argument: str) -> str:
    if not argument:
        current = await service.settings.for_channel(invocation.channel)
        levels = "|".join(EFFORT_LEVELS)
        return describe_effort(current) + f"\nChoose with `/claude effort {levels}|default`."
    return await _store(service, invocation, parse_effort(argument))


async def run_fallback(service: CommandService, invocation: CommandInvocation, argument: str) -> str:
    if not argument:
        current = await service.settings.for_channel(invocation.channel)
        return describe_fallback(current) + "\nChoose with `/claude fallback <model>` or `off`."
    if argument.lower() == "off":
        change = SettingChange((("fallback_model", None),), "This channel no longer has a fallback model.")
    else:
        known = sorted(await service.catalog.models())
        if argument not in known:
            return f"`{argument[:80]}` is not a model I know. Known models: " + ", ".join(f"`{m}`" for m in known)
        change = SettingChange(
            (("fallback_model", argument),),
            f"When Claude declines a request here, `{argument}` now answers it once (and the answer says so).",
        )
    return await _store(service, invocation, change)


async def _store(service: CommandService, invocation: CommandInvocation, change: SettingChange | str) -> str:
    if isinstance(change, str):
        return change
    own = (await service.store.channels.settings_rows(invocation.channel)).get(invocation.channel.channel_id, {})
    for name, value in change.changes:
        if value is None and own.get(name) is None:
            continue  # nothing to clear: no audit row for a change that changes nothing
        await service.store.channels.set_setting(invocation.channel, name, value, invocation.actor.qualified_id)
    return change.answer
