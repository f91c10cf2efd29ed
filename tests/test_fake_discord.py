"""Tests of the fake Discord REST API, driven through the real `discord.py` client.

There is no gateway: events are the raw payloads of `fakes.discord_server`
fed to discord.py's own parsers (``client._connection.parsers[...]``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import discord.http
import pytest
from discord import app_commands

from fakes.discord_server import (
    MANAGE_GUILD,
    MAX_CONTENT_CHARS,
    FakeDiscord,
    autocomplete_payload,
    dm_channel,
    guild_payload,
    interaction_payload,
    member_payload,
    message_payload,
    permission_overwrite,
    ready_payload,
    reply_reference,
    role_payload,
    snowflake,
    snowflake_time,
    text_channel,
    thread_channel,
    user_payload,
)

JsonDict = dict[str, Any]


@dataclass
class World:
    """A logged-in client that has seen READY and one guild with a text channel."""

    client: discord.Client
    fake: FakeDiscord
    guild_id: int
    channel: JsonDict
    human: JsonDict
    admin: JsonDict

    @property
    def state(self) -> Any:
        return self.client._connection

    def feed(self, event: str, payload: JsonDict) -> None:
        self.state.parsers[event](payload)

    async def message(self, payload: JsonDict) -> discord.Message:
        """Feed a MESSAGE_CREATE and wait for ``on_message``."""
        waiter = self.client.wait_for("message", timeout=2)
        self.feed("MESSAGE_CREATE", payload)
        message: discord.Message = await waiter
        return message


async def until(predicate: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
def api_base(fake: FakeDiscord) -> Iterator[str]:
    """Point every discord.py route (REST, interactions, webhooks) at the fake, and restore it."""
    previous = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    yield fake.api_base
    discord.http.Route.BASE = previous


def make_client() -> discord.Client:
    intents = discord.Intents.default()
    intents.message_content = True
    # A short guild_ready_timeout: on_ready fires 2 s after the last GUILD_CREATE by default.
    return discord.Client(intents=intents, guild_ready_timeout=0.05)


@pytest.fixture
async def client(fake: FakeDiscord, api_base: str) -> AsyncIterator[discord.Client]:
    bot = make_client()
    await bot.login("fake-token")
    yield bot
    await bot.close()


@pytest.fixture
async def world(fake: FakeDiscord, client: discord.Client) -> World:
    guild_id = snowflake()
    human = user_payload(None, "mel", global_name="Mel")
    admin = user_payload(None, "ada", global_name="Ada")
    channel = text_channel(
        None,
        "general",
        guild_id=guild_id,
        overwrites=[permission_overwrite(guild_id, allow=1 << 11), permission_overwrite(admin["id"], kind="member")],
    )
    guild = guild_payload(
        guild_id,
        "Test Guild",
        owner_id=admin["id"],
        channels=[channel],
        roles=[role_payload(snowflake(), "mods", permissions=MANAGE_GUILD)],
        members=[member_payload(human), member_payload(admin)],
        bot_user=fake.bot_user,
    )
    fake.add_guild(guild)
    state = client._connection
    state.parsers["READY"](ready_payload(fake.bot_user, fake.application_id, [guild_id]))
    state.parsers["GUILD_CREATE"](guild)
    await asyncio.wait_for(client.wait_until_ready(), 2)
    return World(client, fake, guild_id, channel, human, admin)


# --------------------------------------------------------------------------- wire format


async def test_json_content_type_is_exact_and_rate_limit_headers_are_present(fake: FakeDiscord) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake.api_base}/users/@me", headers={"Authorization": "Bot t"}) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        for name in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
            assert f"X-RateLimit-{name}" in response.headers
        assert response.headers["X-RateLimit-Remaining"] == str(fake.bucket_limit - 1)
        body = await response.json()
    assert body["id"] == str(fake.bot_user_id) and body["bot"] is True


async def test_unknown_route_and_missing_token(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.api_base}/guilds/1/audit-logs", headers={"Authorization": "Bot t"}) as answer:
            assert answer.status == 404
            assert answer.headers["Content-Type"] == "application/json"
            assert await answer.json() == {"message": "404: Not Found", "code": 0}
        async with session.delete(f"{fake.api_base}/users/@me", headers={"Authorization": "Bot t"}) as answer:
            assert answer.status == 405
        async with session.get(f"{fake.api_base}/users/@me") as answer:
            assert answer.status == 401
    assert [r.path for r in fake.unhandled] == ["/guilds/1/audit-logs", "/users/@me"]


async def test_429_shape(fake: FakeDiscord) -> None:
    fake.rate_limit("get_me", retry_after=0.25)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake.api_base}/users/@me", headers={"Authorization": "Bot t"}) as answer,
    ):
        assert answer.status == 429
        assert answer.headers["Via"]
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["X-RateLimit-Remaining"] == "0"
        assert await answer.json() == {"message": "You are being rate limited.", "retry_after": 0.25, "global": False}


def test_snowflakes_increase_and_encode_time() -> None:
    first, second = snowflake(), snowflake()
    assert second > first
    assert abs(snowflake_time(first) - time.time()) < 1
    assert abs(snowflake_time(snowflake(1_700_000_000.5)) - 1_700_000_000.5) < 0.002


# --------------------------------------------------------------------------- login & gateway parsing


async def test_login_fetches_bot_user_and_application(fake: FakeDiscord, client: discord.Client) -> None:
    assert client.user is not None and client.user.id == fake.bot_user_id and client.user.bot
    assert client.application_id == fake.application_id
    assert client.application is not None and client.application.owner.name == "owner"
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]
    assert all(r.token == "fake-token" for r in fake.requests)
    shards, url, limits = await client.http.get_bot_gateway()
    assert (shards, url) == (1, fake.gateway_url) and limits["max_concurrency"] == 1


async def test_wrong_token_is_a_login_failure(api_base: str) -> None:
    async with FakeDiscord(token="right") as strict:
        discord.http.Route.BASE = strict.api_base
        bot = make_client()
        with pytest.raises(discord.LoginFailure):
            await bot.login("wrong")
        await bot.close()


async def test_ready_and_guild_create_populate_the_cache(world: World) -> None:
    guild = world.client.get_guild(world.guild_id)
    assert guild is not None and guild.name == "Test Guild" and not guild.unavailable
    channel = guild.get_channel(int(world.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    assert guild.me is not None and guild.me.id == world.fake.bot_user_id
    assert channel.permissions_for(guild.me).send_messages
    assert channel.permissions_for(guild.me).create_public_threads
    assert guild.default_role.permissions.read_message_history
    assert guild.roles[0].is_default() and {r.name for r in guild.roles} == {"@everyone", "mods", "claude"}
    assert guild.me.guild_permissions.create_public_threads
    assert world.client.is_ready()


async def test_mention_in_a_channel_reaches_on_message(world: World) -> None:
    bot = world.fake.bot_user
    payload = message_payload(
        world.channel["id"], world.human, f"<@{bot['id']}> hello there", guild_id=world.guild_id, mentions=[bot]
    )
    message = await world.message(payload)
    assert isinstance(message, discord.Message)
    assert isinstance(message.channel, discord.TextChannel) and message.channel.id == int(world.channel["id"])
    assert world.client.user in message.mentions
    assert isinstance(message.author, discord.Member) and message.author.name == "mel"
    assert message.content == f"<@{bot['id']}> hello there"
    assert message.guild is not None and message.guild.id == world.guild_id


async def test_dm_message_has_a_dm_channel(world: World) -> None:
    dm = dm_channel(None, recipient=world.human)
    world.fake.add_channel(dm)
    message = await world.message(message_payload(dm["id"], world.human, "hi in private"))
    assert isinstance(message.channel, discord.DMChannel)
    assert message.guild is None and isinstance(message.author, discord.User)
    reply = await message.reply("hello!", mention_author=False)
    assert reply.content == "hello!" and reply.reference is not None
    [sent] = world.fake.sent(dm["id"])
    assert sent.allowed_mentions == {"parse": ["everyone", "users", "roles"], "replied_user": False}
    assert sent.type == 19 and sent.pinged_user_ids == []


# --------------------------------------------------------------------------- threads, sends, edits


async def test_thread_send_and_edit(world: World) -> None:
    fake = world.fake
    payload = message_payload(world.channel["id"], world.human, "question?", guild_id=world.guild_id)
    fake.seed_messages(world.channel["id"], [payload])
    message = await world.message(payload)

    thread = await message.create_thread(name="Claude: question?")
    assert isinstance(thread, discord.Thread)
    assert thread.id == message.id and thread.parent_id == message.channel.id
    assert thread.owner_id == fake.bot_user_id and thread.name == "Claude: question?"
    [record] = fake.threads
    assert (record.id, record.parent_id, record.message_id) == (message.id, message.channel.id, message.id)
    assert record.auto_archive_duration == 1440 and record.channel["type"] == 11

    sent = await thread.send(f"hi <@{world.human['id']}>", allowed_mentions=discord.AllowedMentions.none())
    assert isinstance(sent, discord.Message) and sent.channel.id == thread.id and sent.author.id == fake.bot_user_id
    [stored] = fake.sent(thread.id)
    assert stored.allowed_mentions == {"parse": []}
    assert stored.pinged_user_ids == []  # no ping under AllowedMentions.none()

    edited = await sent.edit(content="hi, the final answer")
    assert edited.content == "hi, the final answer" and edited.edited_at is not None
    [edit] = fake.edits(sent.id)
    assert edit.content == "hi, the final answer" and edit.time >= stored.time
    assert fake.texts(thread.id) == ["hi, the final answer"]
    assert stored.contents == [f"hi <@{world.human['id']}>", "hi, the final answer"]

    history = [m async for m in thread.history(limit=10)]
    assert [m.type for m in history] == [discord.MessageType.default, discord.MessageType.thread_starter_message]
    assert history[0].id == sent.id
    starter = history[1]
    assert starter.reference is not None and starter.reference.message_id == message.id
    assert isinstance(starter.reference.resolved, discord.Message)
    assert starter.reference.resolved.content == "question?"

    fetched = await thread.parent.fetch_message(message.id)  # type: ignore[union-attr]
    assert fetched.flags.has_thread and fetched.thread is not None and fetched.thread.id == thread.id


async def test_thread_create_payload_makes_messages_in_it_use_a_thread(world: World) -> None:
    payload = message_payload(world.channel["id"], world.human, "start", guild_id=world.guild_id)
    message = await world.message(payload)
    await message.create_thread(name="conversation")
    inside = message_payload(message.id, world.human, "follow-up", guild_id=world.guild_id)
    assert isinstance((await world.message(inside)).channel, discord.PartialMessageable)

    waiter = world.client.wait_for("thread_create", timeout=2)
    world.feed("THREAD_CREATE", world.fake.threads[0].thread_create_payload())
    thread = await waiter
    follow_up = await world.message(message_payload(message.id, world.human, "again", guild_id=world.guild_id))
    assert follow_up.channel is thread and isinstance(thread, discord.Thread)
    assert thread.parent is not None and thread.parent.id == int(world.channel["id"])


async def test_thread_channel_builder_feeds_thread_create(world: World) -> None:
    payload = thread_channel(
        None, "older thread", guild_id=world.guild_id, parent_id=world.channel["id"], owner_id=world.human["id"]
    )
    world.feed("THREAD_CREATE", payload)
    message = await world.message(message_payload(payload["id"], world.human, "hey", guild_id=world.guild_id))
    assert isinstance(message.channel, discord.Thread) and message.channel.owner_id == int(world.human["id"])


async def test_history_is_newest_first_and_pages(world: World) -> None:
    fake = world.fake
    cid = world.channel["id"]
    seeded = fake.seed_messages(cid, [{"author": world.human, "content": f"m{i}"} for i in range(5)])
    channel = world.client.get_channel(int(cid))
    assert isinstance(channel, discord.TextChannel)
    newest = [m.content async for m in channel.history(limit=3)]
    assert newest == ["m4", "m3", "m2"]
    older = [m.content async for m in channel.history(limit=10, before=discord.Object(seeded[2].id))]
    assert older == ["m1", "m0"]
    after = [m.content async for m in channel.history(limit=2, after=discord.Object(seeded[0].id))]
    assert after == ["m1", "m2"]


async def test_too_long_message_is_rejected(world: World) -> None:
    channel = world.client.get_channel(int(world.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as info:
        await channel.send("x" * (MAX_CONTENT_CHARS + 1))
    assert info.value.status == 400 and info.value.code == 50035
    assert "2000 or fewer" in info.value.text
    assert world.fake.sent(channel.id) == []
    message = await channel.send("x" * MAX_CONTENT_CHARS)
    with pytest.raises(discord.HTTPException):
        await message.edit(content="y" * (MAX_CONTENT_CHARS + 1))
    assert world.fake.texts(channel.id) == ["x" * MAX_CONTENT_CHARS]


async def test_empty_message_and_foreign_edit(world: World) -> None:
    fake = world.fake
    channel = world.client.get_channel(int(world.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as info:
        await channel.send("")
    assert info.value.code == 50006
    [theirs] = fake.seed_messages(channel.id, [{"author": world.human, "content": "mine"}])
    with pytest.raises(discord.Forbidden) as forbidden:
        await channel.get_partial_message(theirs.id).edit(content="hijacked")
    assert forbidden.value.code == 50005
    with pytest.raises(discord.NotFound):
        await channel.get_partial_message(snowflake()).edit(content="nope")


async def test_queued_429_is_waited_out(world: World) -> None:
    fake = world.fake
    channel = world.client.get_channel(int(world.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    fake.rate_limit("create_message", times=2, retry_after=0.2)
    started = time.monotonic()
    message = await channel.send("eventually")
    assert time.monotonic() - started >= 0.4
    assert message.content == "eventually" and fake.texts(channel.id) == ["eventually"]
    assert [r.status for r in fake.requests_to("create_message")] == [429, 429, 200]


async def test_five_429s_make_discord_py_give_up(world: World) -> None:
    channel = world.client.get_channel(int(world.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    world.fake.rate_limit("*", times=5, retry_after=0.01)
    with pytest.raises(discord.HTTPException) as info:
        await channel.send("never")
    assert info.value.status == 429
    assert world.fake.sent(channel.id) == []


async def test_bucket_headers_make_discord_py_wait_instead_of_hitting_429(api_base: str) -> None:
    async with FakeDiscord(bucket_limit=2, bucket_window=0.3) as fake:
        discord.http.Route.BASE = fake.api_base
        bot = make_client()
        try:
            await bot.login("t")
            cid = snowflake()
            channel = bot.get_partial_messageable(cid)
            started = time.monotonic()
            message = await channel.send("1")
            for n in range(2, 6):
                await message.edit(content=str(n))
            elapsed = time.monotonic() - started
        finally:
            await bot.close()
    statuses = [r.status for r in fake.requests if r.kind in ("create_message", "edit_message")]
    assert statuses == [200] * 5  # the limiter waited; no 429 was needed
    assert elapsed >= 0.25  # 1 create + 4 edits on a 2-per-0.3 s edit bucket: at least one full wait
    assert fake.message(message.id) is not None and fake.message(message.id).content == "5"  # type: ignore[union-attr]
    assert len(fake.edits(message.id)) == 4


async def test_refused_thread_and_send(world: World) -> None:
    fake = world.fake
    fake.refuse_threads_in(world.channel["id"])
    message = await world.message(message_payload(world.channel["id"], world.human, "q", guild_id=world.guild_id))
    with pytest.raises(discord.Forbidden) as info:
        await message.create_thread(name="nope")
    assert info.value.code == 50013 and fake.threads == []
    fake.refuse_messages_in(world.channel["id"], code=50001, message="Missing Access")
    with pytest.raises(discord.Forbidden):
        await message.channel.send("nope")


async def test_thread_rules(world: World) -> None:
    message = await world.message(message_payload(world.channel["id"], world.human, "q", guild_id=world.guild_id))
    with pytest.raises(discord.HTTPException) as bad_name:
        await message.create_thread(name="n" * 101)
    assert bad_name.value.code == 50035
    thread = await message.create_thread(name="ok")
    with pytest.raises(discord.HTTPException) as twice:
        await message.create_thread(name="again")
    assert twice.value.code == 160004
    world.fake.archive_thread(thread.id)
    await thread.send("revives it")
    assert world.fake.channels[thread.id]["thread_metadata"]["archived"] is False
    world.fake.archive_thread(thread.id, locked=True)
    with pytest.raises(discord.HTTPException) as locked:
        await thread.send("locked out")
    assert locked.value.code == 50083


async def test_reply_pings_and_nonce(world: World) -> None:
    fake = world.fake
    payload = message_payload(world.channel["id"], world.human, "ping me", guild_id=world.guild_id)
    fake.seed_messages(world.channel["id"], [payload])
    message = await world.message(payload)

    reply = await message.reply("answer")  # no allowed_mentions: Discord pings the replied-to author
    assert reply.reference is not None and reply.reference.message_id == message.id
    assert isinstance(reply.reference.resolved, discord.Message)
    stored = fake.message(reply.id)
    assert stored is not None and stored.type == 19 and stored.pinged_user_ids == [int(world.human["id"])]
    quiet = await message.reply("quiet", allowed_mentions=discord.AllowedMentions.none())
    assert fake.message(quiet.id).pinged_user_ids == []  # type: ignore[union-attr]
    everyone = await message.channel.send("@everyone look")
    assert fake.message(everyone.id).mention_everyone  # type: ignore[union-attr]

    first = await message.channel.send("once", nonce="abc-123")
    again = await message.channel.send("once", nonce="abc-123")
    assert first.id == again.id and fake.texts(message.channel.id).count("once") == 1
    assert fake.requests_to("create_message")[-1].json["enforce_nonce"] is True


async def test_user_reply_to_the_bot_resolves_the_reference(world: World) -> None:
    channel = world.client.get_channel(int(world.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    answer = await channel.send("an answer")
    stored = world.fake.message(answer.id)
    assert stored is not None
    reply = message_payload(
        channel.id,
        world.human,
        "and a follow-up question",
        guild_id=world.guild_id,
        message_reference=reply_reference(stored.data | {"guild_id": str(world.guild_id)}),
        referenced_message=stored.data,
        mentions=[world.fake.bot_user],  # a reply pings the replied-to author by default
    )
    message = await world.message(reply)
    assert message.type is discord.MessageType.reply
    assert message.reference is not None and message.reference.message_id == answer.id
    resolved = message.reference.resolved
    assert isinstance(resolved, discord.Message) and resolved.author == world.client.user
    assert resolved.content == "an answer"


async def test_typing_is_recorded(world: World) -> None:
    channel = world.client.get_channel(int(world.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    await channel.typing()
    async with channel.typing():
        await asyncio.sleep(0)
    assert len(world.fake.typing(channel.id)) >= 2


async def test_get_channel_and_unknown_channel(world: World) -> None:
    fetched = await world.client.fetch_channel(int(world.channel["id"]))
    assert isinstance(fetched, discord.TextChannel) and fetched.name == "general"
    with pytest.raises(discord.NotFound) as info:
        await world.client.fetch_channel(snowflake())
    assert info.value.code == 10003


async def test_files_are_uploaded_as_multipart(world: World) -> None:
    channel = world.client.get_channel(int(world.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    import io

    message = await channel.send("see attached", file=discord.File(io.BytesIO(b"hello"), filename="a.txt"))
    assert [a.filename for a in message.attachments] == ["a.txt"] and message.attachments[0].size == 5
    assert world.fake.requests_to("create_message")[-1].files == ["a.txt"]


# --------------------------------------------------------------------------- interactions


def claude_tree(client: discord.Client, seen: list[discord.Interaction]) -> app_commands.CommandTree[discord.Client]:
    """``/claude ask prompt [model]`` (with autocomplete) and ``/claude reset``."""
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    claude = app_commands.Group(name="claude", description="Talk to Claude")

    @claude.command(name="ask", description="Ask Claude something")
    async def ask(interaction: discord.Interaction, prompt: str, model: str | None = None) -> None:
        seen.append(interaction)
        await interaction.response.send_message(f"you asked: {prompt}", ephemeral=True)

    @ask.autocomplete("model")
    async def model_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = ["claude-opus", "claude-sonnet", "claude-haiku"]
        return [app_commands.Choice(name=n, value=n) for n in names if current in n]

    @claude.command(name="reset", description="Forget this conversation")
    async def reset(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="thinking done")
        await interaction.followup.send("and one more", ephemeral=True)

    admin = app_commands.Group(
        name="claude-admin", description="Administer Claude", default_permissions=discord.Permissions(manage_guild=True)
    )

    @admin.command(name="model", description="Set the default model")
    async def set_model(interaction: discord.Interaction, name: str) -> None:
        seen.append(interaction)
        await interaction.response.send_message(f"model: {name}")

    @claude.command(name="slow", description="Think, then answer in a followup")
    async def slow(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.defer()
        await interaction.followup.send("finally")

    tree.add_command(claude)
    tree.add_command(admin)
    return tree


async def test_slash_command_reaches_the_tree_and_answers_ephemerally(world: World) -> None:
    fake = world.fake
    seen: list[discord.Interaction] = []
    claude_tree(world.client, seen)
    payload = fake.register_interaction(
        interaction_payload(
            user=world.admin,
            application_id=fake.application_id,
            subcommand="ask",
            options={"prompt": "what is 2+2?"},
            guild_id=world.guild_id,
            channel=world.channel,
            permissions=MANAGE_GUILD,
        )
    )
    world.feed("INTERACTION_CREATE", payload)
    await until(lambda: bool(fake.interaction_responses(payload["id"])))
    [interaction] = seen
    assert interaction.command is not None and interaction.command.qualified_name == "claude ask"
    assert interaction.namespace.prompt == "what is 2+2?"
    assert isinstance(interaction.user, discord.Member) and interaction.user.id == int(world.admin["id"])
    assert interaction.permissions.manage_guild
    assert isinstance(interaction.channel, discord.TextChannel)
    [response] = fake.interaction_responses(payload["id"])
    assert (response.kind, response.type, response.flags, response.ephemeral) == ("callback", 4, 64, True)
    assert response.content == "you asked: what is 2+2?"
    assert fake.requests_to("interaction_callback")[0].query == {"with_response": "1"}
    assert fake.sent(world.channel["id"]) == []  # ephemeral: nobody else sees it


async def test_member_without_manage_guild(world: World) -> None:
    seen: list[discord.Interaction] = []
    claude_tree(world.client, seen)
    payload = interaction_payload(
        user=world.human,
        application_id=world.fake.application_id,
        options={"prompt": "hi"},
        guild_id=world.guild_id,
        channel=world.channel,
        permissions="0",
    )
    world.feed("INTERACTION_CREATE", payload)
    await until(lambda: bool(seen))
    assert not seen[0].permissions.manage_guild


async def test_deferred_response_edit_and_followup(world: World) -> None:
    fake = world.fake
    seen: list[discord.Interaction] = []
    claude_tree(world.client, seen)
    payload = fake.register_interaction(
        interaction_payload(
            user=world.human,
            application_id=fake.application_id,
            subcommand="reset",
            guild_id=world.guild_id,
            channel=world.channel,
        )
    )
    world.feed("INTERACTION_CREATE", payload)
    await until(lambda: len(fake.interaction_responses(payload["id"])) == 3)
    callback, edit, followup = fake.interaction_responses(payload["id"])
    assert (callback.type, callback.flags) == (5, 0)
    assert (edit.kind, edit.content) == ("edit_original", "thinking done")
    assert (followup.kind, followup.content, followup.ephemeral) == ("followup", "and one more", True)
    original = fake.original_response(payload["id"])
    assert original is not None and original.content == "thinking done" and not original.loading
    assert fake.texts(world.channel["id"]) == ["thinking done"]  # the followup was ephemeral


async def test_first_followup_after_defer_replaces_the_loading_message(world: World) -> None:
    fake = world.fake
    claude_tree(world.client, [])
    payload = fake.register_interaction(
        interaction_payload(
            user=world.human,
            application_id=fake.application_id,
            subcommand="slow",
            guild_id=world.guild_id,
            channel=world.channel,
        )
    )
    world.feed("INTERACTION_CREATE", payload)
    await until(lambda: len(fake.interaction_responses(payload["id"])) == 2)
    callback, followup = fake.interaction_responses(payload["id"])
    assert callback.type == 5 and followup.kind == "followup"
    assert followup.message_id == callback.message_id
    assert fake.texts(world.channel["id"]) == ["finally"]


async def test_interaction_protocol_errors(fake: FakeDiscord) -> None:
    user = user_payload(None, "mel")
    payload = fake.register_interaction(interaction_payload(user=user, application_id=fake.application_id))
    callback = f"{fake.api_base}/interactions/{payload['id']}/{payload['token']}/callback"
    original = f"{fake.api_base}/webhooks/{fake.application_id}/{payload['token']}/messages/@original"
    async with aiohttp.ClientSession() as session:
        async with session.patch(original, json={"content": "too early"}) as answer:
            assert (answer.status, (await answer.json())["code"]) == (404, 10015)
        async with session.post(callback, json={"type": 4, "data": {"content": "hi"}}) as answer:
            assert answer.status == 204  # no ?with_response
        async with session.post(callback, json={"type": 4, "data": {"content": "again"}}) as answer:
            assert (answer.status, (await answer.json())["code"]) == (400, 40060)
        async with session.patch(original, json={"content": "edited"}) as answer:
            assert answer.status == 200 and (await answer.json())["content"] == "edited"
    assert [r.kind for r in fake.interaction_responses(payload["id"])] == ["callback", "edit_original"]
    assert fake.texts(payload["channel_id"]) == ["edited"]


async def test_dm_interaction_and_late_acknowledgement(world: World) -> None:
    fake = world.fake
    seen: list[discord.Interaction] = []
    claude_tree(world.client, seen)
    errors: list[BaseException] = []
    tree = world.client._connection._command_tree
    assert tree is not None

    @tree.error
    async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        errors.append(error)

    payload = interaction_payload(user=world.human, application_id=fake.application_id, options={"prompt": "dm"})
    world.feed("INTERACTION_CREATE", payload)
    await until(lambda: bool(fake.interaction_responses(payload["id"])))
    assert isinstance(seen[0].channel, discord.DMChannel) and isinstance(seen[0].user, discord.User)

    late = interaction_payload(
        user=world.human,
        application_id=fake.application_id,
        options={"prompt": "too late"},
        interaction_id=snowflake(time.time() - 10),
    )
    world.feed("INTERACTION_CREATE", late)
    await until(lambda: bool(errors))
    original = getattr(errors[0], "original", errors[0])  # CommandInvokeError wraps the HTTP error
    assert isinstance(original, discord.NotFound) and original.code == 10062


async def test_autocomplete(world: World) -> None:
    fake = world.fake
    claude_tree(world.client, [])
    payload = autocomplete_payload(
        focused="model",
        user=world.human,
        application_id=fake.application_id,
        options={"prompt": "hi", "model": "son"},
        guild_id=world.guild_id,
        channel=world.channel,
    )
    world.feed("INTERACTION_CREATE", payload)
    await until(lambda: bool(fake.interaction_responses(payload["id"])))
    [response] = fake.interaction_responses(payload["id"])
    assert response.type == 8
    assert response.choices == [{"name": "claude-sonnet", "value": "claude-sonnet"}]


async def test_tree_sync_puts_the_commands(world: World) -> None:
    fake = world.fake
    tree = claude_tree(world.client, [])
    synced = await tree.sync()
    [sync] = fake.commands_synced
    assert sync.guild_id is None and sync.names == ["claude", "claude-admin"]
    admin = next(c for c in sync.payload if c["name"] == "claude-admin")
    assert admin["default_member_permissions"] == MANAGE_GUILD  # discord.py sends an int; Discord answers a string
    served_admin = next(c for c in fake.commands[None] if c["name"] == "claude-admin")
    assert served_admin["default_member_permissions"] == str(MANAGE_GUILD)
    assert next(c for c in synced if c.name == "claude-admin").default_member_permissions == discord.Permissions(32)
    assert [o["name"] for o in sync.payload[0]["options"]] == ["ask", "reset", "slow"]
    assert {c.name for c in synced} == {"claude", "claude-admin"}
    assert all(c.id == fake.command_id(c.name) for c in synced)
    again = await tree.sync()
    assert [c.id for c in again] == [c.id for c in synced]  # ids are kept per name

    guild = discord.Object(world.guild_id)
    tree.copy_global_to(guild=guild)
    guild_synced = await tree.sync(guild=guild)
    assert fake.commands_synced[-1].guild_id == world.guild_id and all(
        c.guild_id == world.guild_id for c in guild_synced
    )
    fetched = await tree.fetch_commands(guild=guild)
    assert {c.name for c in fetched} == {"claude", "claude-admin"}
    assert [r.method for r in fake.requests_to("sync_commands")] == ["PUT", "PUT", "PUT"]


async def test_invalid_command_payload_is_rejected(world: World) -> None:
    http = world.client.http
    app_id = world.fake.application_id
    for bad in (
        [{"name": "Bad Name", "description": "x"}],
        [{"name": "claude", "description": ""}],
        [{"name": "claude", "description": "x"}, {"name": "claude", "description": "y"}],
    ):
        with pytest.raises(discord.HTTPException) as info:
            await http.bulk_upsert_global_commands(app_id, payload=bad)
        assert (info.value.status, info.value.code) == (400, 50035)
    with pytest.raises(discord.Forbidden):
        await http.bulk_upsert_global_commands(snowflake(), payload=[])
    assert world.fake.commands_synced == []
