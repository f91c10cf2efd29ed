"""`/claude ...` through the service: who may do what, and what changes."""

from __future__ import annotations

import pytest

from bot.app import Core
from bot.commands import Command, parse_command
from bot.events import CommandInvocation
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingAdapter, command, message, person, thread

ADMIN = person("ADMIN", "Ada")
MEMBER = person("U2", "Bob")


async def run(core: Core, adapter: RecordingAdapter, invocation: CommandInvocation) -> str:
    await core.service.on_command(adapter, invocation)
    return adapter.command_answers[-1][1]


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
    core: Core, adapter: RecordingAdapter, fake_anthropic: FakeAnthropic
) -> None:
    tuned, other = thread("1.1", channel="C-TUNED"), thread("2.2", channel="C-OTHER")
    assert "now uses `claude-opus-5-5`" in await run(
        core, adapter, command(tuned.channel, "model claude-opus-5-5", who=ADMIN)
    )
    await run(core, adapter, command(tuned.channel, "system Answer like a pirate.", who=ADMIN))

    await core.service.handle(adapter, message(tuned, "hi"))
    await core.service.handle(adapter, message(other, "hi"))
    tuned_request, other_request = fake_anthropic.message_requests
    assert (tuned_request["model"], tuned_request["system"]) == ("claude-opus-5-5", "Answer like a pirate.")
    assert other_request["model"] == "claude-sonnet-5-5"
    assert other_request["system"] == core.settings.default_system_prompt


async def test_a_non_admin_cannot_change_settings(core: Core, adapter: RecordingAdapter) -> None:
    channel = thread().channel
    for typed in ("model claude-opus-5-5", "system be rude", "reset", "usage"):
        answer = await run(core, adapter, command(channel, typed, who=MEMBER))
        assert answer.startswith("Only workspace admins"), typed
    assert await core.store.settings_for(channel) == core.store.defaults
    assert await core.store.audit_entries(channel) == []


async def test_admin_user_ids_grants_admin_without_the_platform(core: Core, adapter: RecordingAdapter) -> None:
    core.service.commands.admin_user_ids = frozenset({"test:U2"})
    answer = await run(core, adapter, command(thread().channel, "system be brief", who=MEMBER))
    assert "system prompt is updated" in answer


async def test_an_unknown_model_is_refused_with_the_known_ones(core: Core, adapter: RecordingAdapter) -> None:
    channel = thread().channel
    answer = await run(core, adapter, command(channel, "model claude-nonexistent", who=ADMIN))
    assert "`claude-nonexistent` is not a model I know" in answer
    assert "`claude-haiku-5-5`" in answer and "`claude-opus-5-5`" in answer
    assert (await core.store.settings_for(channel)).model == "claude-sonnet-5-5"


async def test_the_model_list_falls_back_when_the_models_api_is_down(
    core: Core, adapter: RecordingAdapter, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.models_unavailable = True
    answer = await run(core, adapter, command(thread().channel, "model claude-nonexistent", who=ADMIN))
    assert "`claude-sonnet-4-6`" in answer, "the built-in list from the SDK"


async def test_every_change_is_audited_and_reset_restores_the_defaults(
    core: Core, adapter: RecordingAdapter
) -> None:
    channel = thread().channel
    await run(core, adapter, command(channel, "model claude-haiku-5-5", who=ADMIN))
    await run(core, adapter, command(channel, "system Be brief.", who=ADMIN))
    answer = await run(core, adapter, command(channel, "reset", who=ADMIN))
    assert "back to the defaults" in answer
    assert await core.store.settings_for(channel) == core.store.defaults
    entries = await core.store.audit_entries(channel)
    trail = [(e["setting"], e["old_value"], e["new_value"], e["actor_id"]) for e in entries]
    assert trail == [
        ("model", None, "claude-haiku-5-5", "test:ADMIN"),
        ("system_prompt", None, "Be brief.", "test:ADMIN"),
        ("model", "claude-haiku-5-5", None, "test:ADMIN"),
        ("system_prompt", "Be brief.", None, "test:ADMIN"),
    ]


async def test_workspace_settings_apply_to_channels_without_their_own(core: Core) -> None:
    channel = thread().channel
    await core.store.set_setting(channel.workspace, "model", "claude-haiku-5-5", "test:ADMIN")
    assert (await core.store.settings_for(channel)).model == "claude-haiku-5-5"
    await core.store.set_setting(channel, "model", "claude-opus-5-5", "test:ADMIN")
    assert (await core.store.settings_for(channel)).model == "claude-opus-5-5"


async def test_show_and_help_are_for_everyone(core: Core, adapter: RecordingAdapter) -> None:
    channel = thread().channel
    assert "claude-sonnet-5-5" in await run(core, adapter, command(channel, "show", who=MEMBER))
    assert "/claude model" in await run(core, adapter, command(channel, "help", who=MEMBER))
    assert "I don't know `/claude dance`" in await run(core, adapter, command(channel, "dance", who=MEMBER))


async def test_usage_reports_the_channels_turns_tokens_and_cost(
    core: Core, adapter: RecordingAdapter, fake_anthropic: FakeAnthropic
) -> None:
    where = thread()
    await core.service.handle(adapter, message(where, "hello"))
    await core.service.handle(adapter, message(where, "again", mention=False))
    await core.service.handle(adapter, message(thread("3.3", channel="C-ELSEWHERE"), "not counted"))
    answer = await run(core, adapter, command(where.channel, "usage", who=ADMIN))
    expected_output = sum(u["output_tokens"] for u in fake_anthropic.usages[:2])
    assert "`claude-sonnet-5-5`: 2 turns" in answer
    assert f"{expected_output:,} output" in answer
    assert "≈ $" in answer


async def test_new_in_a_dm_starts_fresh_and_keeps_the_old_turns(
    core: Core, adapter: RecordingAdapter, fake_anthropic: FakeAnthropic
) -> None:
    dm = thread("D1", channel="D1")
    await core.service.handle(adapter, message(dm, "my name is Zed", direct=True, mention=False))
    invocation = CommandInvocation(dm.channel, MEMBER, "new", thread=dm, is_direct=True)
    assert "Starting fresh" in await run(core, adapter, invocation)
    await core.service.handle(adapter, message(dm, "what is my name?", direct=True, mention=False))
    assert fake_anthropic.message_requests[-1]["messages"] == [
        {"role": "user", "content": "[Alice] what is my name?"}
    ]
    async with core.store.engine.connect() as conn:
        from sqlalchemy import func, select

        from bot.schema import messages

        assert (await conn.execute(select(func.count()).select_from(messages))).scalar() == 4


async def test_new_outside_a_dm_changes_nothing(core: Core, adapter: RecordingAdapter) -> None:
    answer = await run(core, adapter, command(thread().channel, "new", who=MEMBER))
    assert "every thread is already its own conversation" in answer
