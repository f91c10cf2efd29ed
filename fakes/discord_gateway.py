"""A fake Discord gateway: a real websocket on 127.0.0.1 speaking gateway v10 as Discord
documents it and discord.py 2.7 uses it, in front of a `FakeDiscord` (the REST fake).

    async with FakeDiscord(token=TOKEN) as rest, FakeGateway(rest) as gateway:
        ...  # GET /gateway/bot of `rest` now answers `gateway.url`
        gateway.post(channel_id, alice, "hello")       # a person's message: stored in `rest`, dispatched

Protocol (https://discord.com/developers/docs/events/gateway)
-------------------------------------------------------------
* ``?v=10&encoding=json`` (another version: close 4012; another encoding: 4002), optionally
  ``&compress=zlib-stream``: then every frame is binary, one zlib stream per connection, each
  payload ending with a ``Z_SYNC_FLUSH`` (``00 00 ff ff``). Another compression: 4000.
* HELLO (op 10, ``heartbeat_interval``) on connect; every HEARTBEAT (op 1) gets a HEARTBEAT_ACK
  (op 11); a HEARTBEAT sent by the gateway (`request_heartbeat`) is answered by the client.
* IDENTIFY (op 2): a wrong token closes 4004; a privileged intent (members, presences, message
  content) the application may not use closes 4014; any other unknown intent bit 4013; a shard
  outside ``[0, count)`` 4010; a second IDENTIFY on one connection 4005; a payload before
  IDENTIFY 4003. Then READY (``resume_gateway_url`` = `resume_url`, guilds unavailable) and a
  GUILD_CREATE for each guild of `FakeDiscord.guilds` on that shard.
* Dispatches (op 0) carry a sequence number per session; the session keeps them all, so a
  RESUME (op 6, token + session id + last sequence seen) replays what came after, then RESUMED.
  A RESUME of an unknown session gets INVALID_SESSION (op 9, ``d: false``).
* `reconnect` sends RECONNECT (op 7): events dispatched until the client resumes are kept and
  replayed. `invalidate` sends INVALID_SESSION (op 9, ``d: false``): the session ends, events until
  a new IDENTIFY are lost (as on Discord). `drop` closes the socket (4000) without RECONNECT:
  the client resumes by itself.
* Guild events go to the session of the shard ``(guild_id >> 22) % shard_count``; DMs to shard 0.
* The bot's own REST actions come back as Discord sends them: MESSAGE_CREATE / MESSAGE_UPDATE for
  its messages, THREAD_CREATE for threads it starts (through `FakeDiscord.gateway_listeners`).

Not reproduced: ETF encoding, zstd-stream, identify rate limits (``max_concurrency``) and the
session start limit, heartbeat timeouts (a silent client is never closed with 4009), presence
updates, guild member chunking (op 8 is ignored), voice, gateway rate limits (120 events / 60 s),
large_threshold and ``unavailable`` guilds becoming available later.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from fakes.base import LoopbackServer
from fakes.discord_server import FakeDiscord, JsonDict, message_payload, ready_payload

HELLO, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HEARTBEAT_ACK = 10, 1, 2, 6, 7, 9, 11
GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT = 1 << 1, 1 << 8, 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
KNOWN_INTENTS = (1 << 26) - 1 | (1 << 24) | (1 << 25)


@dataclass
class GatewaySession:
    """One identified session: its dispatches (for replay) and the connection it is on."""

    session_id: str
    shard: tuple[int, int]
    intents: int
    dispatches: list[JsonDict] = field(default_factory=list)
    connection: _Connection | None = None
    holding: bool = False
    """RECONNECT was sent: dispatch nothing more on this connection (the client resumes for them)."""

    @property
    def sequence(self) -> int:
        return len(self.dispatches)


@dataclass
class _Connection:
    socket: web.WebSocketResponse
    path: str
    compressor: Any = None  # zlib.compressobj when zlib-stream was asked for
    session: GatewaySession | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, payload: JsonDict) -> None:
        text = json.dumps(payload)
        async with self.lock:  # one zlib stream: frames must leave in the order they were compressed
            if self.socket.closed:
                return
            try:
                if self.compressor is None:
                    await self.socket.send_str(text)
                else:
                    data = self.compressor.compress(text.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.socket.send_bytes(data)
            except ConnectionError:  # closing under us: a RESUME replays what it missed
                pass


@dataclass
class ConnectionRecord:
    """One websocket connection the gateway accepted."""

    path: str
    query: dict[str, str]
    identify: JsonDict | None = None
    resume: JsonDict | None = None
    close_code: int | None = None
    heartbeats: int = 0


class FakeGateway(LoopbackServer):
    def __init__(
        self,
        rest: FakeDiscord,
        *,
        privileged_intents: int = PRIVILEGED_INTENTS,
        heartbeat_interval_ms: int = 41_250,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.rest = rest
        self.privileged_intents = privileged_intents
        """The privileged intents the application may use (the Developer Portal's switches)."""
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.token = token
        """The token IDENTIFY and RESUME must carry (``None``: the REST fake's `FakeDiscord.token`;
        set it to model a token revoked after the REST login)."""
        self.host = host
        self.port = port
        self.connections: list[ConnectionRecord] = []
        self.sessions: dict[str, GatewaySession] = {}
        self._session_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sockets: set[web.WebSocketResponse] = set()
        rest.gateway_listeners.append(self._from_rest)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """What ``GET /gateway/bot`` answers."""
        return f"ws://{self.host}:{self.port}/"

    @property
    def resume_url(self) -> str:
        """READY's ``resume_gateway_url`` (another path, so a test sees where a client resumed)."""
        return f"ws://{self.host}:{self.port}/resume"

    async def start(self) -> FakeGateway:
        await super().start()
        self.rest.gateway_address = self.url
        return self

    async def stop(self) -> None:
        for socket in list(self._sockets):
            with contextlib.suppress(Exception):
                await socket.close(code=1001)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._handle)
        app.router.add_get("/resume", self._handle)
        return app

    # ------------------------------------------------------------------ what a test drives

    @property
    def identifies(self) -> list[JsonDict]:
        return [c.identify for c in self.connections if c.identify is not None]

    @property
    def resumes(self) -> list[JsonDict]:
        return [c.resume for c in self.connections if c.resume is not None]

    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.connection is not None and not s.holding]

    async def dispatch(self, event: str, data: JsonDict, *, guild_id: int | str | None = None) -> None:
        """Send a dispatch to the session of the shard that owns `guild_id` (DMs: shard 0)."""
        for session in list(self.sessions.values()):
            count = session.shard[1]
            shard = (int(guild_id) >> 22) % count if guild_id is not None else 0
            if session.shard[0] != shard:
                continue
            payload = {"op": 0, "t": event, "s": session.sequence + 1, "d": data}
            session.dispatches.append(payload)
            if session.connection is not None and not session.holding:
                await session.connection.send(payload)

    async def post(
        self,
        channel_id: int | str,
        author: JsonDict,
        content: str,
        *,
        guild_id: int | str | None = None,
        mentions: list[JsonDict] | None = None,
        **extra: Any,
    ) -> JsonDict:
        """A person posts a message: the REST fake stores it, the gateway dispatches MESSAGE_CREATE."""
        payload = message_payload(channel_id, author, content, guild_id=guild_id, mentions=mentions or [], **extra)
        self.rest.seed_messages(channel_id, [payload])
        await self.dispatch("MESSAGE_CREATE", payload, guild_id=guild_id)
        return payload

    async def interact(self, payload: JsonDict) -> None:
        """A person uses an application command: the REST fake knows it, the gateway dispatches it."""
        self.rest.register_interaction(payload)
        await self.dispatch("INTERACTION_CREATE", payload, guild_id=payload.get("guild_id"))

    async def reconnect(self) -> None:
        """RECONNECT (op 7) to every connected session; later dispatches wait for its RESUME."""
        for session in self.live_sessions():
            session.holding = True
            assert session.connection is not None
            await session.connection.send({"op": RECONNECT, "d": None})

    async def invalidate(self) -> None:
        """INVALID_SESSION (op 9, not resumable) to every connected session: each must IDENTIFY anew."""
        for session in self.live_sessions():
            connection = session.connection
            del self.sessions[session.session_id]
            session.connection = None
            assert connection is not None
            connection.session = None
            await connection.send({"op": INVALID_SESSION, "d": False})

    async def drop(self) -> None:
        """Close every connection without a word (the client should RESUME)."""
        for session in self.live_sessions():
            assert session.connection is not None
            connection, session.connection = session.connection, None
            await connection.socket.close(code=4000, message=b"dropped")

    async def request_heartbeat(self) -> None:
        for session in self.live_sessions():
            assert session.connection is not None
            await session.connection.send({"op": HEARTBEAT, "d": None})

    def _from_rest(self, event: str, data: JsonDict) -> None:
        guild_id = data.get("guild_id")
        if guild_id is None and data.get("channel_id") is not None:
            channel = self.rest.channels.get(int(data["channel_id"]))
            guild_id = channel.get("guild_id") if channel is not None else None
            if guild_id is not None:
                data["guild_id"] = guild_id  # as Discord sends a guild's messages
        task = asyncio.get_running_loop().create_task(self.dispatch(event, data, guild_id=guild_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the websocket

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(autoping=True, max_msg_size=4096 * 1024)
        await socket.prepare(request)
        record = ConnectionRecord(request.path, dict(request.query))
        self.connections.append(record)
        compress = request.query.get("compress")
        connection = _Connection(socket, request.path, zlib.compressobj() if compress == "zlib-stream" else None)
        self._sockets.add(socket)
        try:
            if request.query.get("v") != "10":
                return await self._close(record, socket, 4012, "Invalid API version")
            if request.query.get("encoding", "json") != "json":
                return await self._close(record, socket, 4002, "Decode error")
            if compress not in (None, "zlib-stream"):
                return await self._close(record, socket, 4000, "Unknown compression")
            await connection.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    return await self._close(record, socket, 4002, "Decode error")
                try:
                    payload = json.loads(message.data)
                except json.JSONDecodeError:
                    return await self._close(record, socket, 4002, "Decode error")
                code = await self._receive(record, connection, payload)
                if code is not None:
                    return await self._close(record, socket, *code)
            record.close_code = socket.close_code
            return socket
        finally:
            self._sockets.discard(socket)
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None

    async def _close(self, record: ConnectionRecord, socket: web.WebSocketResponse, code: int, why: str) -> Any:
        record.close_code = code
        await socket.close(code=code, message=why.encode())
        return socket

    async def _receive(
        self, record: ConnectionRecord, connection: _Connection, payload: JsonDict
    ) -> tuple[int, str] | None:
        op, data = payload.get("op"), payload.get("d")
        if op == HEARTBEAT:
            record.heartbeats += 1
            await connection.send({"op": HEARTBEAT_ACK})
            return None
        if op == IDENTIFY:
            return await self._identify(record, connection, data or {})
        if op == RESUME:
            return await self._resume(record, connection, data or {})
        if connection.session is None:
            return 4003, "Not authenticated"
        if op in (3, 4, 8):  # presence, voice state, request guild members: accepted, not modelled
            return None
        return 4001, "Unknown opcode"

    def _token_ok(self, token: Any) -> bool:
        wanted = self.token if self.token is not None else self.rest.token
        return isinstance(token, str) and bool(token) and (wanted is None or token == wanted)

    async def _identify(
        self, record: ConnectionRecord, connection: _Connection, data: JsonDict
    ) -> tuple[int, str] | None:
        record.identify = data
        if connection.session is not None:
            return 4005, "Already authenticated"
        if not self._token_ok(data.get("token")):
            return 4004, "Authentication failed"
        intents = int(data.get("intents", 0))
        if intents & ~KNOWN_INTENTS:
            return 4013, "Invalid intent(s)"
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            return 4014, "Disallowed intent(s)"
        shard_id, shard_count = data.get("shard") or (0, 1)
        if not 0 <= int(shard_id) < int(shard_count):
            return 4010, "Invalid shard"
        session = GatewaySession(f"fake-session-{next(self._session_ids)}", (int(shard_id), int(shard_count)), intents)
        self.sessions[session.session_id] = session
        session.connection, connection.session = connection, session
        rest = self.rest
        guilds = [g for gid, g in rest.guilds.items() if (gid >> 22) % session.shard[1] == session.shard[0]]
        ready = ready_payload(
            rest.bot_user,
            rest.application_id,
            [int(g["id"]) for g in guilds],
            session_id=session.session_id,
            resume_gateway_url=self.resume_url,
            shard=session.shard,
        )
        await self._dispatch_to(session, "READY", ready)
        for guild in guilds:
            await self._dispatch_to(session, "GUILD_CREATE", guild)
        return None

    async def _dispatch_to(self, session: GatewaySession, event: str, data: JsonDict) -> None:
        payload = {"op": 0, "t": event, "s": session.sequence + 1, "d": data}
        session.dispatches.append(payload)
        if session.connection is not None:
            await session.connection.send(payload)

    async def _resume(
        self, record: ConnectionRecord, connection: _Connection, data: JsonDict
    ) -> tuple[int, str] | None:
        record.resume = data
        if not self._token_ok(data.get("token")):
            return 4004, "Authentication failed"
        session = self.sessions.get(str(data.get("session_id")))
        if session is None:
            await connection.send({"op": INVALID_SESSION, "d": False})
            return None
        seen = int(data.get("seq") or 0)
        if session.connection is not None and session.connection is not connection:
            with contextlib.suppress(Exception):
                await session.connection.socket.close(code=4000)
        session.connection, connection.session, session.holding = connection, session, False
        for payload in session.dispatches[seen:]:
            await connection.send(payload)
        await self._dispatch_to(session, "RESUMED", {})
        return None
