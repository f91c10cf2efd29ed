"""Data rights: `bot export` / `bot erase` as an operator runs them (real subprocesses),
RETENTION_DAYS through the prune job, and `/claude forget` through the core and
through Discord."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.app import Core
from bot.config import load_config
from bot.controls import Presser
from bot.domain import Actor, ChannelKey, CommandInvocation, StoredTurn, ThreadKey, now
from bot.errors import StartupError
from bot.scheduler import prune_once
from bot.schema import audit_log, messages
from fakes.anthropic_server import FakeAnthropic
from fakes.discord_server import interaction_payload
from fakes.recording import RecordingPlatform, message, person, thread
from tests.discord_harness import MANAGE_GUILD, discord_service
from tests.processes import conversation
from tests.test_cli import run_bot, scratch_env

ALICE = person("U1", "Alice")
BOB = person("U2", "Bob")
ADMIN = person("ADMIN", "Ada")


# --------------------------------------------------------------------------- helpers


async def said(core: Core, where: ThreadKey, text: str, who: Actor) -> StoredTurn:
    """Store a person's turn as it arrives."""
    sent = message(where, text, who=who)
    assert await core.store.turns.accept_message(sent)
    [turn] = [t for t in (await core.store.turns.load_history(where)).turns if t.message_id == sent.message_id]
    return turn


async def contents(core: Core) -> list[str]:
    async with core.store.engine.connect() as conn:
        return list((await conn.execute(select(messages.c.content).order_by(messages.c.id))).scalars())


async def audit_rows(core: Core, setting: str) -> list[Any]:
    async with core.store.engine.connect() as conn:
        result = await conn.execute(select(audit_log).where(audit_log.c.setting == setting).order_by(audit_log.c.id))
        return list(result.all())


async def seed_two_people(core: Core) -> None:
    """Alice and Bob in two threads:
    - solo: Alice asks (with quoted thread context), answered; Bob asks, answered;
      Alice asks again, answered.
    - mixed: Alice and Bob both speak before one answer (it answered both: it stays).
    """
    solo, mixed = thread("solo"), thread("mixed")
    first = await said(core, solo, "alice secret one", ALICE)
    assert first.message_id is not None
    assert await core.store.turns.add_thread_context(solo, first.message_id, "<quoted> earlier talk")
    await core.store.turns.append_answer(solo, "answer for alice one", after_order=first.order)
    bob = await said(core, solo, "bob question", BOB)
    await core.store.turns.append_answer(solo, "answer for bob", after_order=bob.order)
    second = await said(core, solo, "alice secret two", ALICE)
    await core.store.turns.append_answer(solo, "answer for alice two", after_order=second.order)
    await said(core, mixed, "alice in the mix", ALICE)
    last = await said(core, mixed, "bob in the mix", BOB)
    await core.store.turns.append_answer(mixed, "answer for both", after_order=last.order)


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str) -> tuple[dict[str, str], Path]:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    return scratch_env(workdir, DATABASE_URL=database_url, LOG_LEVEL="DEBUG"), workdir


# --------------------------------------------------------------------------- bot export / bot erase


async def test_export_writes_their_turns_and_the_answers_only_they_got_as_json_lines(
    core: Core, cli_env: tuple[dict[str, str], Path]
) -> None:
    env, workdir = cli_env
    await seed_two_people(core)

    result = await run_bot("export", "--user", "test:U1", env=env, cwd=workdir)

    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]  # stdout holds JSON lines only
    assert [(r["conversation"], r["role"], r["text"]) for r in rows] == [
        ("test:T1:C1:solo", "user", "alice secret one"),
        ("test:T1:C1:solo", "assistant", "answer for alice one"),
        ("test:T1:C1:solo", "user", "alice secret two"),
        ("test:T1:C1:solo", "assistant", "answer for alice two"),
        ("test:T1:C1:mixed", "user", "alice in the mix"),
    ], "neither Bob's turns, nor the quoted context, nor the answer that answered both"
    assert {r["author"] for r in rows if r["role"] == "user"} == {"Alice"}
    for row in rows:
        assert datetime.fromisoformat(row["time"]).tzinfo is not None
        assert set(row) == {"conversation", "time", "role", "author", "text"}


async def test_export_includes_their_feedback_votes_and_no_one_elses(
    core: Core, cli_env: tuple[dict[str, str], Path]
) -> None:
    env, workdir = cli_env
    await seed_two_people(core)
    async with core.store.engine.connect() as conn:
        answers = select(messages.c.content, messages.c.id).where(messages.c.role == "assistant")
        ids = dict((await conn.execute(answers)).all())

    async def no() -> bool:
        return False

    votes = [(ALICE, "answer for bob", True), (ALICE, "answer for alice one", False), (BOB, "answer for both", True)]
    for who, answer, positive in votes:
        assert (await core.service.controls.rate(ids[answer], Presser(who, no), positive=positive)).done

    result = await run_bot("export", "--user", "test:U1", env=env, cwd=workdir)

    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    feedback = [r for r in rows if r["role"] == "feedback"]
    assert [(r["conversation"], r["vote"], r["model"]) for r in feedback] == [
        ("test:T1:C1:solo", "up", None),
        ("test:T1:C1:solo", "down", None),
    ], "Alice's two votes (one on an answer to Bob), not Bob's"
    for row in feedback:
        assert set(row) == {"conversation", "time", "role", "vote", "model", "answer_time"}
        assert datetime.fromisoformat(row["time"]).tzinfo is not None
    assert len(rows) == 5 + 2, "her turns and answers as before, then her votes"


async def test_erase_deletes_them_everywhere_keeps_others_and_audits_without_content(
    core: Core, cli_env: tuple[dict[str, str], Path], fake_anthropic: FakeAnthropic
) -> None:
    env, workdir = cli_env
    await seed_two_people(core)

    result = await run_bot("erase", "--user", "test:U1", env=env, cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "erased test:U1: 6 rows (3 turns, 2 answers, 1 thread context) in 2 conversations" in result.stdout
    assert await contents(core) == ["bob question", "answer for bob", "bob in the mix", "answer for both"]
    [entry] = await audit_rows(core, "erase")
    assert entry.actor_id.startswith("local:")
    assert entry.platform == "test" and "test:U1" in entry.new_value and "6 rows" in entry.new_value
    assert "secret" not in f"{tuple(entry)}", "the audit row holds no content"
    assert "secret" not in result.stdout + result.stderr

    again = await run_bot("export", "--user", "test:U1", env=env, cwd=workdir)
    assert again.returncode == 0 and again.stdout == "", "nothing of theirs is left"

    # the thread goes on with what is left, in order
    adapter = RecordingPlatform()
    await adapter.deliver(core.service, message(thread("solo"), "and now?", who=BOB))
    turns = conversation(fake_anthropic.message_requests[-1])
    assert "secret" not in json.dumps(turns)
    assert [role for role, _ in turns] == ["user", "assistant", "user"]


async def test_erase_of_someone_unknown_erases_nothing_and_still_records_the_request(
    core: Core, cli_env: tuple[dict[str, str], Path]
) -> None:
    env, workdir = cli_env
    await seed_two_people(core)
    result = await run_bot("erase", "--user", "test:NOBODY", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "0 rows" in result.stdout
    assert len(await contents(core)) == 10
    [entry] = await audit_rows(core, "erase")
    assert "test:NOBODY: 0 rows" in entry.new_value


@pytest.mark.parametrize("command", ["export", "erase"])
async def test_a_user_without_a_platform_is_refused_in_one_line(
    command: str, cli_env: tuple[dict[str, str], Path]
) -> None:
    env, workdir = cli_env
    result = await run_bot(command, "--user", "U123", env=env, cwd=workdir)
    result.assert_error(command, "--user", "PLATFORM:ID")
    assert result.returncode == 2


# --------------------------------------------------------------------------- RETENTION_DAYS


async def make_old(core: Core, contents_: list[str], days: int) -> None:
    async with core.store.engine.begin() as conn:
        await conn.execute(
            update(messages).where(messages.c.content.in_(contents_)).values(created_at=now() - timedelta(days=days))
        )


async def test_retention_deletes_old_messages_even_in_an_active_thread(core: Core) -> None:
    active = thread("active")
    old = await said(core, active, "said long ago", ALICE)
    await core.store.turns.append_answer(active, "answered long ago", after_order=old.order)
    await make_old(core, ["said long ago", "answered long ago"], days=10)
    await said(core, active, "said today", ALICE)

    kept = await prune_once(core.store, thread_ttl_days=30)  # RETENTION_DAYS off: nothing expires
    assert kept.expired == 0 and len(await contents(core)) == 3

    result = await prune_once(core.store, thread_ttl_days=30, retention_days=7)

    assert (result.conversations, result.expired) == (0, 2)
    assert await contents(core) == ["said today"]
    assert await core.store.turns.conversation_exists(active)


async def test_retention_works_in_batches(core: Core) -> None:
    texts = [f"old {i}" for i in range(11)]
    for text in texts:
        await said(core, thread(text.replace(" ", "-")), text, ALICE)
    await make_old(core, texts, days=3)
    await said(core, thread("new"), "new", ALICE)
    assert await core.store.housekeeping.expire(now() - timedelta(days=2), batch_size=4) == 11
    assert await contents(core) == ["new"]


async def test_bot_prune_applies_retention_days_from_the_environment(
    core: Core, cli_env: tuple[dict[str, str], Path]
) -> None:
    env, workdir = cli_env
    await said(core, thread(), "ancient", ALICE)
    await said(core, thread(), "recent", ALICE)
    await make_old(core, ["ancient"], days=8)
    result = await run_bot("prune", env={**env, "RETENTION_DAYS": "7"}, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "1 messages past RETENTION_DAYS" in result.stdout
    assert await contents(core) == ["recent"]


def test_retention_days_is_off_by_default_blank_or_a_positive_number() -> None:
    assert load_config().retention_days is None
    assert load_config(retention_days="").retention_days is None
    assert load_config(retention_days="90").retention_days == 90
    with pytest.raises(StartupError, match="RETENTION_DAYS"):
        load_config(retention_days="0")


# --------------------------------------------------------------------------- /claude forget


def invocation(
    where: ChannelKey, who: Actor, *, in_thread: ThreadKey | None = None, direct: bool = False
) -> CommandInvocation:
    return CommandInvocation(where, who, "forget", thread=in_thread, is_direct=direct)


async def test_in_a_dm_anyone_forgets_that_dm_and_only_that(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    dm, elsewhere = thread("dm", channel="D-ALICE"), thread("1.1", channel="C1")
    await adapter.deliver(core.service, message(dm, "my pin is 4321", who=ALICE, direct=True))
    await adapter.deliver(core.service, message(elsewhere, "hello all", who=ALICE))

    answer = await adapter.run_command(core.service, invocation(dm.channel, ALICE, in_thread=dm, direct=True))

    assert answer.startswith("Forgotten") and "2 messages" in answer
    assert (await core.store.turns.load_history(dm)).turns == []
    assert len((await core.store.turns.load_history(elsewhere)).turns) == 2
    [entry] = await audit_rows(core, "forget")
    assert (entry.channel_id, entry.actor_id) == ("D-ALICE", "test:U1")
    assert "4321" not in f"{tuple(entry)}"

    await adapter.deliver(core.service, message(dm, "what is my pin?", who=ALICE, direct=True))
    assert conversation(fake_anthropic.message_requests[-1]) == [
        ("user", '<message from="Alice">what is my pin?</message>')
    ]


async def test_in_a_thread_only_an_admin_forgets_and_only_that_thread(
    core: Core, adapter: RecordingPlatform
) -> None:
    target, neighbour = thread("1.1"), thread("2.2")
    for where in (target, neighbour):
        await adapter.deliver(core.service, message(where, "plans", who=BOB))

    refused = await adapter.run_command(core.service, invocation(target.channel, BOB, in_thread=target))
    assert refused.startswith("Only workspace admins")
    assert len((await core.store.turns.load_history(target)).turns) == 2
    assert await audit_rows(core, "forget") == []

    answer = await adapter.run_command(core.service, invocation(target.channel, ADMIN, in_thread=target))
    assert answer.startswith("Forgotten") and "this thread" in answer
    assert (await core.store.turns.load_history(target)).turns == []
    assert len((await core.store.turns.load_history(neighbour)).turns) == 2
    [entry] = await audit_rows(core, "forget")
    assert entry.actor_id == "test:ADMIN" and "thread 1.1: 2 messages" in entry.new_value


async def test_without_a_thread_outside_a_dm_nothing_is_forgotten(core: Core, adapter: RecordingPlatform) -> None:
    where = thread("1.1")
    await adapter.deliver(core.service, message(where, "plans", who=BOB))
    answer = await adapter.run_command(core.service, invocation(where.channel, ADMIN))  # a Slack slash command
    assert "Nothing was changed" in answer and "bot erase" in answer
    assert len((await core.store.turns.load_history(where)).turns) == 2


async def test_forget_is_in_the_help(core: Core, adapter: RecordingPlatform) -> None:
    answer = await adapter.run_command(core.service, CommandInvocation(thread().channel, BOB, "help"))
    assert "`/claude forget`" in answer


async def test_on_discord_an_admin_forgets_the_thread_the_command_runs_in(
    core: Core, fake_anthropic: FakeAnthropic
) -> None:
    async with discord_service(core) as bot:
        bot.say("remember the code 9876", mention=True)
        await bot.settle()
        [made] = bot.fake.threads
        opened = bot.open_thread_event(made.id)
        key = ThreadKey("discord", str(bot.guild_id), str(bot.channel["id"]), str(made.id))
        assert len((await core.store.turns.load_history(key)).turns) == 2

        async def forget(permissions: int) -> str:
            payload = interaction_payload(
                user=bot.alice, application_id=bot.fake.application_id, subcommand="forget",
                guild_id=bot.guild_id, channel=opened, permissions=permissions,
            )
            bot.fake.register_interaction(payload)
            bot.feed("INTERACTION_CREATE", payload)
            answer = await bot.answer_to(payload["id"])
            response = bot.fake.original_response(payload["id"])
            assert response is not None and response.ephemeral
            return answer

        assert (await forget(0)).startswith("Only workspace admins")
        assert len((await core.store.turns.load_history(key)).turns) == 2
        assert (await forget(MANAGE_GUILD)).startswith("Forgotten")
        assert (await core.store.turns.load_history(key)).turns == []

        bot.say("what was the code?", channel_id=made.id)
        await bot.settle()
        assert conversation(fake_anthropic.message_requests[-1]) == [
            ("user", '<message from="Alice">what was the code?</message>')
        ]

