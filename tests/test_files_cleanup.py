"""Uploaded files go with their turns: `/claude forget`, `bot erase` and pruning delete
them at the (fake) Files API; an upload another live turn still uses is kept."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bot.app import Core
from bot.domain import CommandInvocation, FileRef, IncomingMessage, PostedMessage, ThreadKey, now
from bot.schema import attachments, conversations
from fakes import sample_files as samples
from fakes.anthropic_server import FakeAnthropic
from fakes.recording import RecordingPlatform, message, person, thread
from tests.conftest import API_KEY
from tests.test_cli import run_bot, scratch_env

ALICE = person("U1", "Alice")
BOB = person("U2", "Bob")


def attach(platform: RecordingPlatform, incoming: IncomingMessage, name: str, data: bytes) -> IncomingMessage:
    url = f"https://files.test/{incoming.message_id}/{name}"
    platform.files[url] = data
    return dataclasses.replace(incoming, files=(FileRef(name, name, url, len(data)),))


async def rows(core: Core) -> int:
    async with core.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(attachments))).scalar_one())


def env_for(tmp_path: Path, database_url: str, fake: FakeAnthropic) -> tuple[dict[str, str], Path]:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = scratch_env(workdir, DATABASE_URL=database_url, ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=fake.base_url)
    return env, workdir


async def test_forget_in_a_dm_deletes_the_uploaded_files(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = ThreadKey("test", "@me", "D1", "D1")
    await adapter.deliver(core.service, attach(adapter, message(where, "read", direct=True), "a.pdf", samples.pdf()))
    [file_id] = fake_anthropic.files.uploads

    forget = CommandInvocation(where.channel, ALICE, "forget", thread=where, is_direct=True)
    answer = await adapter.run_command(core.service, forget)

    assert answer.startswith("Forgotten:")
    assert fake_anthropic.files.deleted == [file_id]
    assert await rows(core) == 0


async def test_bot_erase_deletes_a_persons_uploads_but_keeps_one_another_turn_still_uses(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic, tmp_path: Path, database_url: str
) -> None:
    shared, alone = thread("1.1"), thread("2.2")
    await adapter.deliver(core.service, attach(adapter, message(shared, "mine", who=ALICE), "s.pdf", samples.pdf()))
    bobs = attach(adapter, message(shared, "same file", who=BOB, mention=False), "copy.pdf", samples.pdf())
    await adapter.deliver(core.service, bobs)
    await adapter.deliver(core.service, attach(adapter, message(alone, "only me", who=ALICE), "p.png", samples.png()))
    shared_id, alone_id = fake_anthropic.files.uploads
    env, workdir = env_for(tmp_path, database_url, fake_anthropic)

    result = await run_bot("erase", "--user", "test:U1", env=env, cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "deleted 1 uploaded files at the Files API" in result.stdout
    assert fake_anthropic.files.deleted == [alone_id], "Bob's turn still uses the shared upload"
    assert shared_id in fake_anthropic.files.files

    again = await run_bot("erase", "--user", "test:U2", env=env, cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert fake_anthropic.files.deleted == [alone_id, shared_id]
    assert await rows(core) == 0


async def test_pruning_a_stale_conversation_deletes_its_uploads(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic, tmp_path: Path, database_url: str
) -> None:
    stale, fresh = thread("3.3"), thread("4.4")
    await adapter.deliver(core.service, attach(adapter, message(stale, "old"), "old.png", samples.png()))
    await adapter.deliver(core.service, attach(adapter, message(fresh, "new"), "new.png", samples.png(10, 10)))
    old_id, new_id = fake_anthropic.files.uploads
    async with core.store.db.write() as conn:
        await conn.execute(
            update(conversations)
            .where(conversations.c.thread_id == "3.3")
            .values(last_activity_at=now() - timedelta(days=90))
        )
    env, workdir = env_for(tmp_path, database_url, fake_anthropic)

    result = await run_bot("prune", env=env, cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "pruned 1 conversations" in result.stdout
    assert fake_anthropic.files.deleted == [old_id]
    assert new_id in fake_anthropic.files.files


async def test_the_services_own_sweep_retries_a_delete_that_failed(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = ThreadKey("test", "@me", "D2", "D2")
    await adapter.deliver(core.service, attach(adapter, message(where, "x", direct=True), "a.png", samples.png()))
    [file_id] = fake_anthropic.files.uploads
    fake_anthropic.files.failing = True  # the Files API is down while forgetting
    forget = CommandInvocation(where.channel, ALICE, "forget", thread=where, is_direct=True)
    assert (await adapter.run_command(core.service, forget)).startswith("Forgotten:")
    assert fake_anthropic.files.deleted == [] and await rows(core) == 1, "kept to be deleted later"

    fake_anthropic.files.failing = False
    assert await core.service.files.sweep() == 1
    assert fake_anthropic.files.deleted == [file_id] and await rows(core) == 0




async def test_a_deleted_message_has_its_uploaded_file_deleted_at_once(
    core: Core, adapter: RecordingPlatform, fake_anthropic: FakeAnthropic
) -> None:
    where = thread("5.5")
    posted = attach(adapter, message(where, "look", who=ALICE), "a.png", samples.png())
    await adapter.deliver(core.service, posted)
    [file_id] = fake_anthropic.files.uploads

    gone = PostedMessage("test", where.workspace_id, where.channel_id, posted.message_id, "Ev-delete")
    assert await core.service.message_deleted(gone)
    await core.service.tasks.idle()

    assert fake_anthropic.files.deleted == [file_id], "deleted means deleted, the upload too"
    assert await rows(core) == 0
