"""`/claude tools`, `/claude effort`, `/claude fallback`: parsed as a table, stored per channel,
audited, listed in `/claude show`, admins only to change."""

from __future__ import annotations

import pytest

from bot.app import Core
from bot.config import load_config
from bot.errors import StartupError
from bot.tool_commands import SettingChange, parse_domains, parse_effort, parse_tools
from fakes.recording import RecordingPlatform, command, thread
from tests.test_commands import ADMIN, MEMBER, audit_trail, run


@pytest.mark.parametrize(
    ("typed", "changes"),
    [
        ("web on", (("web", True),)),
        ("WEB OFF", (("web", False),)),
        ("web any", (("web_allowed_domains", None), ("web_blocked_domains", None))),
        ("web allow docs.python.org, example.com", (
            ("web_allowed_domains", "docs.python.org,example.com"), ("web_blocked_domains", None))),
        ("web block https://Example.com/ example.com", (
            ("web_blocked_domains", "example.com"), ("web_allowed_domains", None))),
    ],
)
def test_tool_settings_parse_to_what_is_stored(typed: str, changes: tuple[tuple[str, object], ...]) -> None:
    parsed = parse_tools(typed)
    assert isinstance(parsed, SettingChange)
    assert parsed.changes == changes


@pytest.mark.parametrize(
    "typed", ["web", "web maybe", "search on", "web on now", "web allow", "web allow not_a_domain"]
)
def test_bad_tool_settings_are_explained(typed: str) -> None:
    assert isinstance(parse_tools(typed), str)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("a.com b.org,a.com", ["a.com", "b.org"]), ("example.com/docs", ["example.com/docs"]), ("", str),
     ("<@U1>", str), ("javascript:alert(1)", str)],
)
def test_domains_are_checked(typed: str, expected: object) -> None:
    result = parse_domains(typed)
    assert isinstance(result, str) if expected is str else result == expected


@pytest.mark.parametrize(
    ("typed", "stored"), [("low", "low"), ("MAX", "max"), ("default", None), ("extreme", None), ("", None)]
)
def test_effort_levels(typed: str, stored: str | None) -> None:
    parsed = parse_effort(typed)
    if typed.lower() in ("low", "max", "default"):
        assert isinstance(parsed, SettingChange) and parsed.changes == (("effort", stored),)
    else:
        assert isinstance(parsed, str)


async def test_admins_turn_web_tools_on_per_channel_and_show_lists_everything(
    core: Core, adapter: RecordingPlatform
) -> None:
    here, elsewhere = thread("1.1", channel="C-WEB").channel, thread("2.2", channel="C-NONE").channel
    assert "off" in await run(core, adapter, command(here, "tools"))
    assert "now on" in await run(core, adapter, command(here, "tools web on", who=ADMIN))
    allow = command(here, "tools web allow docs.python.org", who=ADMIN)
    assert "only `docs.python.org`" in await run(core, adapter, allow)
    assert "`high`" in await run(core, adapter, command(here, "effort high", who=ADMIN))
    assert "`claude-opus-5-5`" in await run(core, adapter, command(here, "fallback claude-opus-5-5", who=ADMIN))

    shown = await run(core, adapter, command(here, "show", who=MEMBER))
    assert "*Web search and fetch:* on (only `docs.python.org`)" in shown
    assert "*Effort:* `high`" in shown
    assert "*Fallback model when Claude declines:* `claude-opus-5-5`" in shown
    assert "*Web search and fetch:* off" in await run(core, adapter, command(elsewhere, "show"))

    settings = await core.service.settings.for_channel(here)
    assert (settings.web, settings.web_allowed_domains, settings.effort, settings.fallback_model) == (
        True, "docs.python.org", "high", "claude-opus-5-5"
    )
    trail = await audit_trail(core, here)
    assert ("web", None, "True", "test:ADMIN") in trail
    assert [row[0] for row in trail].count("web_blocked_domains") == 0  # nothing to clear: no row
    assert ("effort", None, "high", "test:ADMIN") in trail
    assert ("fallback_model", None, "claude-opus-5-5", "test:ADMIN") in trail

    await run(core, adapter, command(here, "effort default", who=ADMIN))
    await run(core, adapter, command(here, "fallback off", who=ADMIN))
    await run(core, adapter, command(here, "tools web off", who=ADMIN))
    settings = await core.service.settings.for_channel(here)
    assert (settings.web, settings.effort, settings.fallback_model) == (False, None, None)
    assert ("effort", "high", None, "test:ADMIN") in await audit_trail(core, here)


async def test_members_see_but_cannot_change_tools_effort_or_fallback(core: Core, adapter: RecordingPlatform) -> None:
    channel = thread().channel
    for typed in ("tools web on", "effort max", "fallback claude-opus-5-5", "fallback off"):
        assert (await run(core, adapter, command(channel, typed, who=MEMBER))).startswith("Only workspace admins")
    for typed in ("tools", "effort", "fallback"):
        assert not (await run(core, adapter, command(channel, typed, who=MEMBER))).startswith("Only")
    assert await core.service.settings.for_channel(channel) == core.service.settings.defaults
    assert await audit_trail(core, channel) == []


async def test_an_unknown_fallback_model_is_refused(core: Core, adapter: RecordingPlatform) -> None:
    answer = await run(core, adapter, command(thread().channel, "fallback claude-nope", who=ADMIN))
    assert "not a model I know" in answer and "`claude-opus-5-5`" in answer
    assert await audit_trail(core, thread().channel) == []


def test_default_tools_config() -> None:
    assert load_config(default_tools="web").default_tools == frozenset({"web"})
    assert load_config(default_tools="").default_tools == frozenset()
    assert load_config().web_max_uses == 5
    with pytest.raises(StartupError, match="DEFAULT_TOOLS"):
        load_config(default_tools="web,shell")


def test_help_lists_the_new_commands() -> None:
    from bot.commands import help_text

    text = help_text()
    for usage in ("/claude tools", "/claude effort", "/claude fallback"):
        assert usage in text
