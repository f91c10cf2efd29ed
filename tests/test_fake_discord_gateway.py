"""The fake Discord gateway speaks the protocol as Discord documents it: checked here with a
plain websocket client, and the gateway URL discovery with the real discord.py client."""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import discord
import pytest
from discord.gateway import DiscordWebSocket

from adapters.discord.gateway import DISCORD_GATEWAY, use_api_gateway
from fakes.discord_gateway import FakeGateway
from fakes.discord_server import FakeDiscord, guild_payload, text_channel, user_payload

TOKEN = "fake-gateway-token"


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with FakeDiscord(token=TOKEN) as rest, FakeGateway(rest) as served:
        owner = user_payload(None, "owner")
        guild_id = int(rest.bot_user["id"]) + 7
        rest.add_guild(
            guild_payload(guild_id, owner_id=owner["id"], channels=[text_channel(None, "general", guild_id=guild_id)])
        )
        yield served


class Client:
    """A bare websocket client: sends JSON, reads (zlib-stream) JSON."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, compressed: bool) -> None:
        self.socket = socket
        self.inflate = zlib.decompressobj() if compressed else None

    async def receive(self) -> dict[str, Any]:
        message = await self.socket.receive(timeout=10)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return {"closed": self.socket.close_code}
        if self.inflate is not None:
            assert message.type == aiohttp.WSMsgType.BINARY and message.data.endswith(b"\x00\x00\xff\xff")
            return dict(json.loads(self.inflate.decompress(message.data)))
        return dict(json.loads(message.data))

    async def send(self, op: int, data: Any) -> None:
        await self.socket.send_str(json.dumps({"op": op, "d": data}))


def identify(token: str = TOKEN, intents: int = 1 << 15 | 1 << 9 | 1) -> dict[str, Any]:
    return {"token": token, "intents": intents, "properties": {}}


async def connect(
    http: aiohttp.ClientSession, url: str, query: str = "?v=10&encoding=json&compress=zlib-stream"
) -> Client:
    socket = await http.ws_connect(url + query)
    client = Client(socket, "zlib-stream" in query)
    hello = await client.receive()
    assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
    return client


async def test_identify_gives_ready_and_guild_create_with_sequence_numbers_over_zlib(gateway: FakeGateway) -> None:
    async with aiohttp.ClientSession() as http:
        client = await connect(http, gateway.url)
        await client.send(1, None)
        assert (await client.receive())["op"] == 11, "heartbeat acknowledged"
        await client.send(2, identify())
        ready, guild = await client.receive(), await client.receive()
        assert (ready["t"], ready["s"], guild["t"], guild["s"]) == ("READY", 1, "GUILD_CREATE", 2)
        assert ready["d"]["resume_gateway_url"] == gateway.resume_url
        await gateway.dispatch("TYPING_START", {"channel_id": "1"})
        assert (await client.receive())["s"] == 3


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (identify(token="wrong"), 4004),
        (identify(intents=1 << 15), None),  # allowed by default
        (identify(intents=1 << 30), 4013),
    ],
)
async def test_identify_is_checked(gateway: FakeGateway, payload: dict[str, Any], code: int | None) -> None:
    async with aiohttp.ClientSession() as http:
        client = await connect(http, gateway.url, "?v=10&encoding=json")
        await client.send(2, payload)
        first = await client.receive()
        assert first.get("closed") == code if code is not None else first["t"] == "READY"


async def test_a_privileged_intent_the_application_may_not_use_closes_4014(gateway: FakeGateway) -> None:
    gateway.privileged_intents = 0
    async with aiohttp.ClientSession() as http:
        client = await connect(http, gateway.url, "?v=10&encoding=json")
        await client.send(2, identify())
        assert (await client.receive()) == {"closed": 4014}


async def test_a_wrong_version_closes_4012(gateway: FakeGateway) -> None:
    async with aiohttp.ClientSession() as http:
        socket = await http.ws_connect(gateway.url + "?v=6&encoding=json")
        message = await socket.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE and socket.close_code == 4012


async def test_resume_replays_what_was_missed_and_an_unknown_session_is_invalid(gateway: FakeGateway) -> None:
    async with aiohttp.ClientSession() as http:
        client = await connect(http, gateway.url, "?v=10&encoding=json")
        await client.send(2, identify())
        ready = await client.receive()
        await client.receive()  # GUILD_CREATE, s=2
        await gateway.reconnect()
        assert (await client.receive())["op"] == 7
        await client.socket.close()
        await gateway.dispatch("TYPING_START", {"channel_id": "1"})  # missed: s=3

        again = await connect(http, gateway.resume_url, "?v=10&encoding=json")
        await again.send(6, {"token": TOKEN, "session_id": ready["d"]["session_id"], "seq": 2})
        replayed, resumed = await again.receive(), await again.receive()
        assert (replayed["t"], replayed["s"], resumed["t"], resumed["s"]) == ("TYPING_START", 3, "RESUMED", 4)

        stranger = await connect(http, gateway.url, "?v=10&encoding=json")
        await stranger.send(6, {"token": TOKEN, "session_id": "nope", "seq": 1})
        assert await stranger.receive() == {"op": 9, "d": False}


@pytest.fixture
def default_gateway() -> Iterator[None]:
    before = DiscordWebSocket.DEFAULT_GATEWAY
    yield
    DiscordWebSocket.DEFAULT_GATEWAY = before


async def test_the_gateway_url_comes_from_the_api_else_discords_default(
    gateway: FakeGateway, default_gateway: None, caplog: pytest.LogCaptureFixture
) -> None:
    previous = discord.http.Route.BASE
    discord.http.Route.BASE = gateway.rest.api_base
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(TOKEN)
        assert str(await use_api_gateway(client)) == gateway.url
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == gateway.url, "what discord.py connects (and comes back) to"

        gateway.rest.fail_next("gateway_bot", 404, 0)
        assert await use_api_gateway(client) == DISCORD_GATEWAY
        assert "GET /gateway/bot failed" in caplog.text
    finally:
        await client.close()
        discord.http.Route.BASE = previous
