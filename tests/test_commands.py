"""`/claude ...` through the service: who may do what, and what changes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.app import Core
from bot.commands import Command, parse_command
from bot.domain import ChannelKey, CommandInvocation
from bot.schema import audit_log
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, command, message, person, thread

ADMIN = person("ADMIN", "Ada")
MEMBER = person("U2", "Bob")


async def run(core: Core, adapter: RecordingPlatform, invocation: CommandInvocation) -> str:
    return await adapter.run_command(core.service, invocation)


async def audit_trail(core: Core, channel: ChannelKey) -> list[tuple[str, str | None, str | None, str]]:
    """(setting, old value, new value, who) for each change in `channel`, oldest first."""
    async with core.store.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_log.c.setting, audit_log.c.old_value, audit_log.c.new_value, audit_log.c.actor_id)
            .where(audit_log.c.channel_id == channel.channel_id, audit_log.c.workspace_id == channel.workspace_id)
            .order_by(audit_log.c.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("", Command("", "")),
        ("  help ", Command("help", "")),
        ("MODEL claude-opus-5-5", Command("model", "claude-opus-5-5")),
        ("system You are terse.\nAlways cite.", Command("system", "You are terse.\nAlways cite.")),
        ("system\nline one\nline two", Command("system", "line one\nline two")),
    ],
)
def test_the_parser_splits_name_and_argument(typed: str, expected: Command) -> None:
    assert parse_command(typed) == expected


async def test_per_channel_model_and_system_prompt_apply_there_and_nowhere_else(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    tuned, other = thread("1.1", channel="C-TUNED"), thread("2.2", channel="C-OTHER")
    assert "now uses `claude-opus-5-5`" in await run(
        core, adapter, command(tuned.channel, "model claude-opus-5-5", who=ADMIN)
    )
    await run(core, adapter, command(tuned.channel, "system Answer like a pirate.", who=ADMIN))

    await adapter.deliver(core.service, message(tuned, "hi"))
    await adapter.deliver(core.service, message(other, "hi"))
    tuned_request, other_request = fake_anthropic.message_requests
    assert (tuned_request["model"], tuned_request["system"]) == ("claude-opus-5-5", "Answer like a pirate.")
    assert other_request["model"] == "claude-sonnet-5-5"
    assert other_request["system"] == core.config.default_system_prompt


async def test_a_non_admin_cannot_change_settings(core: Core, adapter: RecordingPlatform) -> None:
    channel = thread().channel
    for typed in ("model claude-opus-5-5", "system be rude", "reset", "usage"):
        answer = await run(core, adapter, command(channel, typed, who=MEMBER))
        assert answer.startswith("Only workspace admins"), typed
    assert await core.service.settings.for_channel(channel) == core.service.settings.defaults
    assert await audit_trail(core, channel) == []


async def test_admin_user_ids_grants_admin_without_the_platform(core: Core, adapter: RecordingPlatform) -> None:
    core.service.commands.admin_user_ids = frozenset({"test:U2"})
    answer = await run(core, adapter, command(thread().channel, "system be brief", who=MEMBER))
    assert "system prompt is updated" in answer


async def test_an_unknown_model_is_refused_with_the_known_ones(core: Core, adapter: RecordingPlatform) -> None:
    channel = thread().channel
    answer = await run(core, adapter, command(channel, "model claude-nonexistent", who=ADMIN))
    assert "`claude-nonexistent` is not a model I know" in answer
    assert "`claude-haiku-5-5`" in answer and "`claude-opus-5-5`" in answer
    assert (await core.service.settings.for_channel(channel)).model == "claude-sonnet-5-5"


async def test_the_model_list_falls_back_when_the_models_api_is_down(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.models_unavailable = True
    answer = await run(core, adapter, command(thread().channel, "model claude-nonexistent", who=ADMIN))
    assert "`claude-sonnet-4-6`" in answer, "the built-in list from the SDK"


async def test_every_change_is_audited_and_reset_restores_the_defaults(
    core: Core, adapter: RecordingPlatform
) -> None:
    channel = thread().channel
    await run(core, adapter, command(channel, "model claude-haiku-5-5", who=ADMIN))
    await run(core, adapter, command(channel, "system Be brief.", who=ADMIN))
    answer = await run(core, adapter, command(channel, "reset", who=ADMIN))
    assert "back to the defaults" in answer
    assert await core.service.settings.for_channel(channel) == core.service.settings.defaults
    assert await audit_trail(core, channel) == [
        ("model", None, "claude-haiku-5-5", "test:ADMIN"),
        ("system_prompt", None, "Be brief.", "test:ADMIN"),
        ("model", "claude-haiku-5-5", None, "test:ADMIN"),
        ("system_prompt", "Be brief.", None, "test:ADMIN"),
    ]


async def test_workspace_settings_apply_to_channels_without_their_own(core: Core) -> None:
    channel = thread().channel
    await core.store.channels.set_setting(channel.workspace, "model", "claude-haiku-5-5", "test:ADMIN")
    assert (await core.service.settings.for_channel(channel)).model == "claude-haiku-5-5"
    await core.store.channels.set_setting(channel, "model", "claude-opus-5-5", "test:ADMIN")
    assert (await core.service.settings.for_channel(channel)).model == "claude-opus-5-5"


async def test_show_and_help_are_for_everyone(core: Core, adapter: RecordingPlatform) -> None:
    channel = thread().channel
    assert "claude-sonnet-5-5" in await run(core, adapter, command(channel, "show", who=MEMBER))
    assert "/claude model" in await run(core, adapter, command(channel, "help", who=MEMBER))
    assert "I don't know `/claude dance`" in await run(core, adapter, command(channel, "dance", who=MEMBER))


async def test_usage_reports_the_channels_turns_tokens_and_cost(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await adapter.deliver(core.service, message(where, "hello"))
    await adapter.deliver(core.service, message(where, "again", mention=False))
    await adapter.deliver(core.service, message(thread("3.3", channel="C-ELSEWHERE"), "not counted"))
    answer = await run(core, adapter, command(where.channel, "usage", who=ADMIN))
    expected_output = sum(u["output_tokens"] for u in fake_anthropic.usages[:2])
    assert "`claude-sonnet-5-5`: 2 turns" in answer
    assert f"{expected_output:,} output" in answer
    assert "≈ $" in answer


async def test_new_in_a_dm_starts_fresh_and_keeps_the_old_turns(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    dm = thread("D1", channel="D1")
    await adapter.deliver(core.service, message(dm, "my name is Zed", direct=True, mention=False))
    invocation = CommandInvocation(dm.channel, MEMBER, "new", thread=dm, is_direct=True)
    assert "Starting fresh" in await run(core, adapter, invocation)
    await adapter.deliver(core.service, message(dm, "what is my name?", direct=True, mention=False))
    assert fake_anthropic.message_requests[-1]["messages"] == [
        {"role": "user", "content": '<message from="Alice">what is my name?</message>'}
    ]
    async with core.store.engine.connect() as conn:
        from sqlalchemy import func, select

        from bot.schema import messages

        assert (await conn.execute(select(func.count()).select_from(messages))).scalar() == 4


async def test_new_outside_a_dm_changes_nothing(core: Core, adapter: RecordingPlatform) -> None:
    answer = await run(core, adapter, command(thread().channel, "new", who=MEMBER))
    assert "every thread is already its own conversation" in answer
