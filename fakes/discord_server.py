"""A fake of the Discord REST API, plus builders of raw gateway payloads, for tests and benchmarks.

`FakeDiscord` is a small aiohttp server on 127.0.0.1 that answers enough of the
Discord HTTP API (v10) for the real ``discord.py`` 2.7 client to run against it.
Point the library at it by patching the class variable that every
``discord.http.Route`` (also the interaction/webhook ones) reads *when it is
constructed*::

    discord.http.Route.BASE = fake.api_base        # http://127.0.0.1:PORT/api/v10
    client = discord.Client(intents=..., guild_ready_timeout=0.05)
    await client.login("fake-token")               # GET /users/@me, GET /oauth2/applications/@me

There is no gateway: tests feed the ``d`` payloads built by the functions below
to discord.py's own parsers (``client._connection.parsers["MESSAGE_CREATE"](payload)``).
Attachments: `FakeDiscord.add_attachment` hosts a file on the fake CDN and returns the
payload to put in a message's ``attachments`` (see `fakes.discord_files`).

Wire format (as Discord, and as discord.py 2.7.1 needs it)
----------------------------------------------------------
* JSON answers have ``Content-Type: application/json`` *exactly*: discord.py's
  ``json_or_text`` compares the header with ``==``, so aiohttp's
  ``web.json_response`` (which adds ``; charset=utf-8``) would hand it a string.
* Every answer carries ``X-RateLimit-Limit/-Remaining/-Reset/-Reset-After/-Bucket``
  from a real per-bucket window (`FakeDiscord` ``bucket_limit`` requests per
  ``bucket_window`` seconds, per route and major parameter: channel, guild,
  or webhook/interaction id + token).  discord.py reads them and sleeps
  pre-emptively when ``Remaining`` reaches 0; a client that still exceeds the
  window gets a real 429.
* A 429 has a ``Via`` header, ``Retry-After``, ``X-RateLimit-Scope`` and the body
  ``{"message": "You are being rate limited.", "retry_after": s, "global": false}``
  (discord.py treats a 429 without ``Via``, or with a non-JSON body, as a
  Cloudflare ban and raises at once; it retries a real 429 at most 5 times).
* Errors use Discord's body ``{"message", "code"[, "errors"]}``, e.g.
  ``{"code": 50035, "message": "Invalid Form Body", "errors": {"content": {"_errors": [...]}}}``.
* Requests to ``/interactions/...`` and ``/webhooks/...`` need no token (discord.py
  sends none); every other route needs ``Authorization: Bot <token>`` (any token,
  unless ``token=`` was given: then a wrong one is a 401 and ``login`` raises
  ``LoginFailure``).

Routes (the *kind* names are what `FakeDiscord.rate_limit`, `FakeDiscord.fail_next`,
`FakeDiscord.set_latency` and `RequestRecord.kind` use)
----------------------------------------------------------------------------------
=========================  =====================================================================
``get_me``                 ``GET /users/@me`` -- the bot user
``application_info``       ``GET /oauth2/applications/@me``
``gateway_bot``            ``GET /gateway/bot`` (and ``gateway``: ``GET /gateway``) -- a ``ws://`` URL nothing serves
``get_channel``            ``GET /channels/{id}`` -- known channels (`add_guild`, `add_channel`, threads made here)
``create_message``         ``POST /channels/{id}/messages`` (JSON or multipart with ``payload_json``)
``history``                ``GET /channels/{id}/messages?limit&before&after&around`` -- newest first
``get_message``            ``GET /channels/{id}/messages/{mid}``
``edit_message``           ``PATCH /channels/{id}/messages/{mid}``
``delete_message``         ``DELETE /channels/{id}/messages/{mid}``
``start_thread``           ``POST /channels/{id}/messages/{mid}/threads``
``start_thread_bare``      ``POST /channels/{id}/threads`` (a thread without a starter message)
``typing``                 ``POST /channels/{id}/typing`` -- 204
``add_reaction``           ``PUT /channels/{id}/messages/{mid}/reactions/{emoji}/@me`` (``remove_reaction``: DELETE)
``interaction_callback``   ``POST /interactions/{iid}/{token}/callback``
``get_original``           ``GET /webhooks/{app}/{token}/messages/@original``
``edit_original``          ``PATCH /webhooks/{app}/{token}/messages/@original`` (``delete_original``: DELETE)
``followup``               ``POST /webhooks/{app}/{token}`` (``edit_followup``: PATCH ``.../messages/{mid}``)
``sync_commands``          ``PUT /applications/{app}/commands`` and ``PUT /applications/{app}/guilds/{gid}/commands``
``get_commands``           ``GET`` of the same two paths
=========================  =====================================================================

Anything else is a 404 ``{"message": "404: Not Found", "code": 0}`` (405 for a
known path with another method), recorded in `FakeDiscord.unhandled`.

Behaviour worth knowing
-----------------------
* Link previews: a link in a message the bot sends or edits without ``SUPPRESS_EMBEDS``
  (flag ``1 << 2``) is unfurled as Discord's crawler would (recorded in
  `FakeDiscord.link_previews`, added as a ``link`` embed); ``<https://...>`` is not.
* Messages: ``content`` over 2,000 characters, more than 10 embeds or embeds over
  6,000 characters -> 400/50035; nothing to show -> 400/50006 "Cannot send an
  empty message"; ``allowed_mentions`` with ``parse: ["users"]`` *and* a
  ``users`` list -> 400/50035.  A repeated ``nonce`` with ``enforce_nonce`` in the
  same channel returns the first message instead of a new one (as Discord).
  A reply (``message_reference``) is type 19.  Pings are modelled: the served
  ``mentions``/``mention_roles``/``mention_everyone`` are what the content would
  really ping under ``allowed_mentions`` (absent: everything, and the replied-to
  author); see `FakeMessage.pinged_user_ids`.
* Editing a message not written by the bot -> 403/50005; unknown -> 404/10008.
* Threads: a thread started from a message has the *message's id*; its first
  message is a system message of type 21 (THREAD_STARTER_MESSAGE) unless
  ``starter_messages=False``; a second thread on one message -> 400/160004; a
  thread from a message in a thread or DM -> 400/50024; a name outside 1..100
  characters or an ``auto_archive_duration`` not in 60/1440/4320/10080 -> 400/50035.
  Sending to an archived thread unarchives it, to a locked one -> 400/50083.
* Interactions: the callback must come within ``interaction_ack_timeout``
  seconds of the time encoded in the interaction's snowflake (else 404/10062
  "Unknown interaction"), once (else 400/40060).  discord.py asks for
  ``?with_response=1`` and gets ``{"interaction": {...}, "resource": {...}}``.
  A deferred response (type 5) is a loading message (flags 128); the first
  followup after a defer that was never edited replaces that loading message.
  Edits/followups before any callback -> 404/10015 "Unknown Webhook".
* Commands: a bulk overwrite is validated (names ``^[-_\\w]{1,32}$`` lower-case,
  descriptions 1..100, at most 25 options/choices, no duplicate names) -> else
  400/50035 (discord.py raises ``CommandSyncFailure``); ids are kept per name.
* Messages the bot *receives* (fed through the gateway parsers) are unknown to
  the fake until `FakeDiscord.seed_messages` stores them: do that when history,
  replies (``referenced_message``) or thread starters should see them.

Gateway payload builders
------------------------
`snowflake`, `user_payload`, `member_payload`, `role_payload`,
`permission_overwrite`, `text_channel`, `thread_channel`, `dm_channel`,
`guild_payload`, `ready_payload`, `message_payload`, `reply_reference`,
`interaction_payload` and `autocomplete_payload` build what Discord sends for
READY, GUILD_CREATE, THREAD_CREATE, MESSAGE_CREATE and INTERACTION_CREATE.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import monotonic
from typing import Any, Literal

from aiohttp import BodyPartReader, web

from fakes.base import LoopbackServer
from fakes.discord_files import FakeDiscordFiles

__all__ = [
    "ADMINISTRATOR",
    "API_VERSION",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "DISCORD_EPOCH_MS",
    "MANAGE_GUILD",
    "MAX_CONTENT_CHARS",
    "ROUTE_KINDS",
    "CommandSync",
    "DiscordError",
    "FakeDiscord",
    "FakeMessage",
    "InteractionResponse",
    "LinkPreview",
    "MessageEdit",
    "RequestRecord",
    "ThreadRecord",
    "autocomplete_payload",
    "component_payload",
    "dm_channel",
    "guild_payload",
    "interaction_payload",
    "iso_timestamp",
    "member_payload",
    "message_payload",
    "permission_overwrite",
    "ready_payload",
    "reply_reference",
    "role_payload",
    "snowflake",
    "snowflake_time",
    "text_channel",
    "thread_channel",
    "user_payload",
]

JsonDict = dict[str, Any]
Snowflake = int | str

API_VERSION = 10
DISCORD_EPOCH_MS = 1_420_070_400_000
"""Milliseconds since the Unix epoch of 2015-01-01, the zero of Discord snowflakes."""
MAX_CONTENT_CHARS = 2_000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL_CHARS = 6_000
MAX_CHOICES = 25
MAX_OPTIONS = 25
THREAD_ARCHIVE_DURATIONS = frozenset({60, 1440, 4320, 10080})
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
CONNECT = 1 << 20
SPEAK = 1 << 21
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38

DEFAULT_EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CONNECT
    | SPEAK
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | CREATE_PRIVATE_THREADS
    | SEND_MESSAGES_IN_THREADS
)
"""What @everyone gets in a new server (roughly)."""
DEFAULT_BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | CREATE_PUBLIC_THREADS
    | READ_MESSAGE_HISTORY
    | EMBED_LINKS
    | ATTACH_FILES
    | ADD_REACTIONS
    | USE_APPLICATION_COMMANDS
)
"""The permissions of a bot's managed role in `guild_payload` (``bot_permissions``)."""

# Message flags.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_HAS_THREAD = 1 << 5
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7

# Message types.
TYPE_DEFAULT = 0
TYPE_REPLY = 19
TYPE_CHAT_INPUT_COMMAND = 20
TYPE_THREAD_STARTER_MESSAGE = 21

# Channel types.
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = frozenset({10, PUBLIC_THREAD, PRIVATE_THREAD})

ROUTE_KINDS = (
    "get_me",
    "application_info",
    "gateway_bot",
    "gateway",
    "get_channel",
    "create_message",
    "history",
    "get_message",
    "edit_message",
    "delete_message",
    "start_thread",
    "start_thread_bare",
    "typing",
    "add_reaction",
    "remove_reaction",
    "interaction_callback",
    "get_original",
    "edit_original",
    "delete_original",
    "followup",
    "edit_followup",
    "sync_commands",
    "get_commands",
)
"""Every route kind the fake serves (see the module docstring)."""

# --------------------------------------------------------------------------- snowflakes & time


class _SnowflakeClock:
    """Increasing snowflakes: ``(ms since 2015) << 22 | worker 1 << 17 | process 1 << 12 | increment``."""

    def __init__(self) -> None:
        self.last = 0
        self.increment = itertools.count()

    def next(self, at: float | None) -> int:
        ms = int((time.time() if at is None else at) * 1000)
        value = ((ms - DISCORD_EPOCH_MS) << 22) | (1 << 17) | (1 << 12) | (next(self.increment) & 0xFFF)
        if at is None:
            value = max(value, self.last + 1)
            self.last = value
        return value


_CLOCK = _SnowflakeClock()


def snowflake(at: float | None = None) -> int:
    """A fresh Discord snowflake for ``at`` (Unix seconds; default now).  Without ``at`` ids strictly increase."""
    return _CLOCK.next(at)


def snowflake_time(value: Snowflake) -> float:
    """The Unix time (seconds) encoded in a snowflake."""
    return ((int(value) >> 22) + DISCORD_EPOCH_MS) / 1000


def iso_timestamp(at: float | None = None) -> str:
    """An ISO 8601 timestamp as Discord writes them, e.g. ``2024-05-01T12:00:00.123000+00:00``."""
    return datetime.fromtimestamp(time.time() if at is None else at, UTC).isoformat(timespec="microseconds")


def _sid(value: Snowflake | None) -> str | None:
    return None if value is None else str(int(value))


# --------------------------------------------------------------------------- gateway payload builders


def user_payload(
    user_id: Snowflake | None = None,
    username: str = "user",
    *,
    bot: bool = False,
    global_name: str | None = None,
    discriminator: str | None = None,
    avatar: str | None = None,
    system: bool = False,
) -> JsonDict:
    """A user object.  Humans have discriminator ``"0"`` (unique usernames); bots keep four digits."""
    data: JsonDict = {
        "id": str(int(user_id)) if user_id is not None else str(snowflake()),
        "username": username,
        "discriminator": discriminator if discriminator is not None else ("4242" if bot else "0"),
        "global_name": global_name,
        "avatar": avatar,
        "avatar_decoration_data": None,
        "banner": None,
        "accent_color": None,
        "public_flags": 0,
        "flags": 0,
        "collectibles": None,
        "primary_guild": None,
    }
    if bot:
        data["bot"] = True
    if system:
        data["system"] = True
    return data


def member_payload(
    user: Mapping[str, Any] | None,
    roles: Iterable[Snowflake] = (),
    *,
    permissions: int | str | None = None,
    nick: str | None = None,
    joined_at: str | None = None,
) -> JsonDict:
    """A guild member.  ``user=None`` gives the partial member of MESSAGE_CREATE (no ``user`` key);
    ``permissions`` (a bitfield, serialised as a string) is only present in interactions."""
    data: JsonDict = {
        "nick": nick,
        "avatar": None,
        "banner": None,
        "roles": [str(int(r)) for r in roles],
        "joined_at": joined_at or iso_timestamp(time.time() - 86_400),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
        "avatar_decoration_data": None,
    }
    if user is not None:
        data["user"] = dict(user)
    if permissions is not None:
        data["permissions"] = str(int(permissions))
    return data


def role_payload(
    role_id: Snowflake,
    name: str = "role",
    *,
    permissions: int | str = 0,
    position: int = 1,
    managed: bool = False,
    bot_id: Snowflake | None = None,
    mentionable: bool = False,
    hoist: bool = False,
    color: int = 0,
) -> JsonDict:
    """A role; ``bot_id`` makes it a bot's managed role (``tags.bot_id``).  The @everyone role has the guild's id."""
    data: JsonDict = {
        "id": str(int(role_id)),
        "name": name,
        "description": None,
        "color": color,
        "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
        "hoist": hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(int(permissions)),
        "managed": managed or bot_id is not None,
        "mentionable": mentionable,
        "flags": 0,
    }
    if bot_id is not None:
        data["tags"] = {"bot_id": str(int(bot_id))}
    return data


def permission_overwrite(
    target_id: Snowflake, *, kind: Literal["role", "member"] = "role", allow: int = 0, deny: int = 0
) -> JsonDict:
    """A channel permission overwrite for a role (the guild id is @everyone) or a member."""
    return {
        "id": str(int(target_id)),
        "type": 0 if kind == "role" else 1,
        "allow": str(int(allow)),
        "deny": str(int(deny)),
    }


def text_channel(
    channel_id: Snowflake | None = None,
    name: str = "general",
    *,
    guild_id: Snowflake,
    position: int = 0,
    topic: str | None = None,
    parent_id: Snowflake | None = None,
    overwrites: Iterable[Mapping[str, Any]] = (),
    nsfw: bool = False,
    rate_limit_per_user: int = 0,
    last_message_id: Snowflake | None = None,
    default_auto_archive_duration: int = 1440,
) -> JsonDict:
    """A guild text channel (type 0)."""
    return {
        "id": str(int(channel_id)) if channel_id is not None else str(snowflake()),
        "type": GUILD_TEXT,
        "guild_id": str(int(guild_id)),
        "name": name,
        "position": position,
        "parent_id": _sid(parent_id),
        "topic": topic,
        "nsfw": nsfw,
        "rate_limit_per_user": rate_limit_per_user,
        "last_message_id": _sid(last_message_id),
        "permission_overwrites": [dict(o) for o in overwrites],
        "default_auto_archive_duration": default_auto_archive_duration,
        "flags": 0,
        "icon_emoji": None,
        "theme_color": None,
    }


def thread_channel(
    thread_id: Snowflake | None = None,
    name: str = "thread",
    *,
    guild_id: Snowflake,
    parent_id: Snowflake,
    owner_id: Snowflake,
    type: int = PUBLIC_THREAD,
    archived: bool = False,
    locked: bool = False,
    auto_archive_duration: int = 1440,
    message_count: int = 0,
    member_count: int = 1,
    rate_limit_per_user: int = 0,
    last_message_id: Snowflake | None = None,
    created_at: float | None = None,
    newly_created: bool = True,
    member_user_id: Snowflake | None = None,
) -> JsonDict:
    """A thread channel (type 11 public, 12 private) as THREAD_CREATE sends it.

    ``newly_created`` marks a thread that was just made (discord.py then dispatches ``thread_create``
    rather than ``thread_join``); ``member_user_id`` adds the ``member`` of a user who joined it."""
    tid = str(int(thread_id)) if thread_id is not None else str(snowflake())
    created = created_at if created_at is not None else snowflake_time(tid)
    metadata: JsonDict = {
        "archived": archived,
        "auto_archive_duration": auto_archive_duration,
        "archive_timestamp": iso_timestamp(created),
        "locked": locked,
        "create_timestamp": iso_timestamp(created),
    }
    if type == PRIVATE_THREAD:
        metadata["invitable"] = True
    data: JsonDict = {
        "id": tid,
        "type": type,
        "guild_id": str(int(guild_id)),
        "parent_id": str(int(parent_id)),
        "owner_id": str(int(owner_id)),
        "name": name,
        "last_message_id": _sid(last_message_id),
        "rate_limit_per_user": rate_limit_per_user,
        "message_count": message_count,
        "member_count": member_count,
        "total_message_sent": message_count,
        "flags": 0,
        "thread_metadata": metadata,
    }
    if newly_created:
        data["newly_created"] = True
    if member_user_id is not None:
        data["member"] = {
            "id": tid,
            "user_id": str(int(member_user_id)),
            "join_timestamp": iso_timestamp(created),
            "flags": 1,
        }
    return data


def dm_channel(channel_id: Snowflake | None = None, *, recipient: Mapping[str, Any]) -> JsonDict:
    """A DM channel (type 1) with one recipient."""
    return {
        "id": str(int(channel_id)) if channel_id is not None else str(snowflake()),
        "type": DM,
        "last_message_id": None,
        "flags": 0,
        "recipients": [dict(recipient)],
    }


def guild_payload(
    guild_id: Snowflake | None = None,
    name: str = "Test Guild",
    *,
    owner_id: Snowflake,
    channels: Iterable[Mapping[str, Any]] = (),
    roles: Iterable[Mapping[str, Any]] = (),
    members: Iterable[Mapping[str, Any]] = (),
    threads: Iterable[Mapping[str, Any]] = (),
    everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
    bot_user: Mapping[str, Any] | None = None,
    bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
    member_count: int | None = None,
    features: Iterable[str] = (),
) -> JsonDict:
    """A GUILD_CREATE payload (``unavailable: false``, as sent after READY).

    An @everyone role (id = guild id) with ``everyone_permissions`` is added unless ``roles`` has one.
    ``bot_user`` adds the bot's managed role (``bot_permissions``) and its member -- include it so
    discord.py caches ``guild.me`` (other members are only cached with the members intent)."""
    gid = str(int(guild_id)) if guild_id is not None else str(snowflake())
    role_list = [dict(r) for r in roles]
    if not any(r["id"] == gid for r in role_list):
        role_list.insert(0, role_payload(gid, "@everyone", permissions=everyone_permissions, position=0))
    member_list = [dict(m) for m in members]
    if bot_user is not None:
        bot_role_id = snowflake()
        role_list.append(
            role_payload(
                bot_role_id, str(bot_user.get("username", "bot")), permissions=bot_permissions, bot_id=bot_user["id"]
            )
        )
        if not any(m.get("user", {}).get("id") == bot_user["id"] for m in member_list):
            member_list.append(member_payload(bot_user, [bot_role_id]))
    channel_list = []
    for channel in channels:
        item = dict(channel)
        item.pop("guild_id", None)  # GUILD_CREATE omits it inside "channels"
        channel_list.append(item)
    return {
        "id": gid,
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(int(owner_id)),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 1,
        "default_message_notifications": 1,
        "explicit_content_filter": 2,
        "features": list(features),
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": "en-US",
        "system_channel_id": channel_list[0]["id"] if channel_list else None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "application_id": None,
        "max_members": 500_000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "roles": role_list,
        "emojis": [],
        "stickers": [],
        "joined_at": iso_timestamp(time.time() - 3_600),
        "large": False,
        "unavailable": False,
        "lazy": True,
        "member_count": member_count if member_count is not None else max(len(member_list), 1),
        "voice_states": [],
        "members": member_list,
        "channels": channel_list,
        "threads": [dict(t) for t in threads],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "incidents_data": None,
    }


def ready_payload(
    bot_user: Mapping[str, Any],
    application_id: Snowflake,
    guilds: Iterable[Mapping[str, Any] | Snowflake] = (),
    *,
    session_id: str = "fake-session-id",
    resume_gateway_url: str = "ws://127.0.0.1:9/",
    shard: tuple[int, int] = (0, 1),
    application_flags: int = 1 << 19 | 1 << 23,
) -> JsonDict:
    """A READY payload; ``guilds`` (ids or guild payloads) are listed as unavailable, as Discord does --
    feed a GUILD_CREATE for each afterwards."""
    guild_ids = [str(int(g["id"])) if isinstance(g, Mapping) else str(int(g)) for g in guilds]
    return {
        "v": API_VERSION,
        "user": {**dict(bot_user), "verified": True, "mfa_enabled": False, "email": None, "bot": True},
        "user_settings": {},
        "guilds": [{"id": gid, "unavailable": True} for gid in guild_ids],
        "relationships": [],
        "private_channels": [],
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": ["rotterdam", "london"],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_gateway_url,
        "shard": list(shard),
        "application": {"id": str(int(application_id)), "flags": application_flags},
        "auth": {},
        "_trace": ['["gateway-prd-fake",{"micros":0}]'],
    }


def reply_reference(message: Mapping[str, Any], *, fail_if_not_exists: bool | None = None) -> JsonDict:
    """The ``message_reference`` of a reply to ``message`` (a message payload)."""
    ref: JsonDict = {"type": 0, "message_id": str(message["id"]), "channel_id": str(message["channel_id"])}
    if message.get("guild_id") is not None:
        ref["guild_id"] = str(message["guild_id"])
    if fail_if_not_exists is not None:
        ref["fail_if_not_exists"] = fail_if_not_exists
    return ref


def _mention_entry(item: Mapping[str, Any], guild: bool) -> JsonDict:
    if "user" in item:  # a member payload with its user
        member = {k: v for k, v in item.items() if k not in {"user", "permissions"}}
        user = dict(item["user"])
    else:
        user = {k: v for k, v in item.items() if k != "member"}
        member = item.get("member") or member_payload(None)
    if guild:
        user["member"] = dict(member)
    return user


def message_payload(
    channel_id: Snowflake,
    author: Mapping[str, Any],
    content: str = "",
    *,
    guild_id: Snowflake | None = None,
    member: Mapping[str, Any] | None = None,
    member_roles: Iterable[Snowflake] = (),
    mentions: Iterable[Mapping[str, Any]] = (),
    mention_roles: Iterable[Snowflake] = (),
    mention_everyone: bool = False,
    message_id: Snowflake | None = None,
    type: int | None = None,
    message_reference: Mapping[str, Any] | None = None,
    referenced_message: Mapping[str, Any] | None = None,
    webhook_id: Snowflake | None = None,
    application_id: Snowflake | None = None,
    attachments: Iterable[Mapping[str, Any]] = (),
    embeds: Iterable[Mapping[str, Any]] = (),
    components: Iterable[Mapping[str, Any]] = (),
    flags: int = 0,
    nonce: str | int | None = None,
    timestamp: str | None = None,
    edited_timestamp: str | None = None,
    thread: Mapping[str, Any] | None = None,
    position: int | None = None,
) -> JsonDict:
    """A MESSAGE_CREATE payload (also the shape of REST messages).

    In a guild (``guild_id`` given, no ``webhook_id``) the author's partial ``member`` is added
    (``member`` or one with ``member_roles``).  ``mentions`` are user payloads (or member payloads
    with ``user``); discord.py builds ``message.mentions`` from this list, not from ``<@id>`` in the
    content, so put both.  ``type`` defaults to 19 (reply) with a ``message_reference``, else 0."""
    mid = str(int(message_id)) if message_id is not None else str(snowflake())
    in_guild = guild_id is not None
    data: JsonDict = {
        "id": mid,
        "type": type if type is not None else (TYPE_REPLY if message_reference is not None else TYPE_DEFAULT),
        "channel_id": str(int(channel_id)),
        "author": dict(author),
        "content": content,
        "timestamp": timestamp or iso_timestamp(snowflake_time(mid)),
        "edited_timestamp": edited_timestamp,
        "tts": False,
        "mention_everyone": mention_everyone,
        "mentions": [_mention_entry(m, in_guild) for m in mentions],
        "mention_roles": [str(int(r)) for r in mention_roles],
        "attachments": [dict(a) for a in attachments],
        "embeds": [dict(e) for e in embeds],
        "components": [dict(c) for c in components],
        "pinned": False,
        "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = str(int(guild_id))
        if webhook_id is None:
            partial = dict(member) if member is not None else member_payload(None, member_roles)
            partial.pop("user", None)
            partial.pop("permissions", None)
            data["member"] = partial
    if webhook_id is not None:
        data["webhook_id"] = str(int(webhook_id))
    if application_id is not None:
        data["application_id"] = str(int(application_id))
    if nonce is not None:
        data["nonce"] = nonce
    if message_reference is not None:
        data["message_reference"] = dict(message_reference)
        if referenced_message is not None:
            data["referenced_message"] = dict(referenced_message)
    if thread is not None:
        data["thread"] = dict(thread)
    if position is not None:
        data["position"] = position
    return data


def _option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


def _options(options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, focused: str | None) -> list[JsonDict]:
    if options is None:
        return []
    if isinstance(options, Mapping):
        built = [{"name": k, "type": _option_type(v), "value": v} for k, v in options.items()]
    else:
        built = [dict(o) for o in options]
    for option in built:
        if option.get("name") == focused:
            option["focused"] = True
    return built


def interaction_payload(
    *,
    user: Mapping[str, Any],
    application_id: Snowflake,
    command: str = "claude",
    subcommand: str | None = "ask",
    options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    guild_id: Snowflake | None = None,
    channel: Mapping[str, Any] | None = None,
    channel_id: Snowflake | None = None,
    permissions: int | str = 0,
    roles: Iterable[Snowflake] = (),
    interaction_id: Snowflake | None = None,
    token: str | None = None,
    type: int = 2,
    focused: str | None = None,
    command_id: Snowflake | None = None,
    command_guild_id: Snowflake | None = None,
    resolved: Mapping[str, Any] | None = None,
    locale: str = "en-US",
    guild_locale: str = "en-US",
    app_permissions: int = DEFAULT_BOT_PERMISSIONS,
) -> JsonDict:
    """An INTERACTION_CREATE payload for a chat-input command (``type=2``) or its autocomplete (``type=4``).

    ``/claude ask prompt:...`` is ``command="claude", subcommand="ask", options={"prompt": "..."}``
    (``subcommand="group sub"`` nests a subcommand group; ``None`` puts the options on the command).
    ``options`` is a name->value mapping (type inferred: str 3, int 4, bool 5, float 10) or a list of
    raw option dicts; ``focused`` marks the option being autocompleted.  In a guild the invoker is
    ``member`` (with ``permissions``, a bitfield string such as ``str(1 << 5)`` for Manage Server) and
    ``context`` 0; without ``guild_id`` it is ``user`` in a DM (``context`` 1).  ``channel`` is the
    channel object Discord embeds (discord.py resolves the channel from it, not from ``channel_id``);
    a minimal text or DM channel is made when it is not given.  The id defaults to a snowflake of
    *now*: the fake rejects callbacks more than 3 seconds after that time."""
    iid = str(int(interaction_id)) if interaction_id is not None else str(snowflake())
    opts = _options(options, focused)
    if subcommand:
        names = subcommand.split()
        if len(names) == 2:
            opts = [{"name": names[0], "type": 2, "options": [{"name": names[1], "type": 1, "options": opts}]}]
        else:
            opts = [{"name": names[0], "type": 1, "options": opts}]
    data: JsonDict = {
        "id": str(int(command_id)) if command_id is not None else str(snowflake(1_600_000_000)),
        "name": command,
        "type": 1,
        "options": opts,
    }
    if command_guild_id is not None:
        data["guild_id"] = str(int(command_guild_id))
    if resolved is not None:
        data["resolved"] = dict(resolved)
    if channel is not None:
        channel_obj = dict(channel)
    elif guild_id is not None:
        channel_obj = text_channel(channel_id if channel_id is not None else snowflake(), guild_id=guild_id)
    else:
        channel_obj = dm_channel(channel_id, recipient=user)
    if guild_id is not None:
        channel_obj.setdefault("guild_id", str(int(guild_id)))
        channel_obj.setdefault("permissions", str(int(permissions)))
    payload: JsonDict = {
        "id": iid,
        "application_id": str(int(application_id)),
        "type": type,
        "data": data,
        "channel": channel_obj,
        "channel_id": channel_obj["id"],
        "token": token if token is not None else f"fake-interaction-token-{iid}",
        "version": 1,
        "app_permissions": str(int(app_permissions)),
        "locale": locale,
        "entitlements": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    if guild_id is not None:
        gid = str(int(guild_id))
        payload["guild_id"] = gid
        payload["guild"] = {"id": gid, "locale": guild_locale, "features": []}
        payload["guild_locale"] = guild_locale
        payload["member"] = member_payload(user, roles, permissions=permissions)
        payload["authorizing_integration_owners"] = {"0": gid}
        payload["context"] = 0
    else:
        payload["user"] = dict(user)
        payload["authorizing_integration_owners"] = {"0": "0"}
        payload["context"] = 1
    return payload


def component_payload(
    *, custom_id: str, message: Mapping[str, Any], component_type: int = 2, **kwargs: Any
) -> JsonDict:
    """An INTERACTION_CREATE for a click on a message component (``type=3``, MESSAGE_COMPONENT): a
    button (``component_type=2``) with `custom_id` on `message` (the message object, as Discord
    embeds it); the other arguments as for `interaction_payload`."""
    payload = interaction_payload(type=3, subcommand=None, **kwargs)
    payload["data"] = {"custom_id": custom_id, "component_type": component_type}
    payload["message"] = dict(message)
    return payload


def autocomplete_payload(*, focused: str, **kwargs: Any) -> JsonDict:
    """`interaction_payload` with ``type=4`` (APPLICATION_COMMAND_AUTOCOMPLETE) and ``focused`` set."""
    return interaction_payload(type=4, focused=focused, **kwargs)


# --------------------------------------------------------------------------- records


class DiscordError(Exception):
    """Raised inside a handler to answer ``{"message", "code"[, "errors"]}`` with an HTTP status."""

    def __init__(self, status: int, code: int, message: str, errors: JsonDict | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> JsonDict:
        data: JsonDict = {"message": self.message, "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


def _form_error(path: Sequence[str | int], code: str, message: str) -> DiscordError:
    """A 400/50035 "Invalid Form Body" error for the field at ``path``."""
    errors: JsonDict = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {str(key): errors}
    return DiscordError(400, 50035, "Invalid Form Body", errors)


@dataclass
class RequestRecord:
    """One HTTP request the fake received."""

    method: str
    path: str
    """The path below the API base, e.g. ``/channels/123/messages``."""
    query: dict[str, str]
    json: Any
    """The JSON body (``payload_json`` of a multipart body), ``None`` when there is none."""
    time: float
    """``time.monotonic()`` when the request arrived."""
    kind: str | None = None
    """The route kind (see `ROUTE_KINDS`), ``None`` for an unknown route."""
    token: str | None = None
    """The ``Authorization`` header without ``Bot ``."""
    files: list[str] = field(default_factory=list)
    """File names of a multipart body."""
    status: int | None = None
    response: Any = None


_LINK = re.compile(r"(?<!<)https?://[^\s<>]+")
"""A link Discord would unfurl (``<https://...>`` is never previewed)."""


@dataclass(frozen=True)
class LinkPreview:
    """A URL Discord's crawler would have fetched for a message."""

    message_id: int
    url: str


@dataclass
class MessageEdit:
    """One accepted edit of a message."""

    time: float
    content: str | None
    """The content the edit set (``None`` when the edit did not touch it)."""
    allowed_mentions: Any
    payload: JsonDict


@dataclass
class FakeMessage:
    """A message in the fake's store (sent by the bot, answered to an interaction, or seeded)."""

    data: JsonDict
    """The message object as served (kept up to date by edits)."""
    channel_id: int
    time: float
    """``time.monotonic()`` when it was created or seeded."""
    by_bot: bool = False
    seeded: bool = False
    request: JsonDict | None = None
    """The JSON body of the request that created it."""
    edits: list[MessageEdit] = field(default_factory=list)
    deleted: bool = False
    interaction_id: int | None = None
    """Set for an interaction response or followup."""

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def content(self) -> str:
        """The current (final, after every edit) content."""
        return str(self.data.get("content") or "")

    @property
    def type(self) -> int:
        return int(self.data.get("type", 0))

    @property
    def flags(self) -> int:
        return int(self.data.get("flags", 0))

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred interaction response not yet edited ("... is thinking")."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def author_id(self) -> int:
        return int(self.data["author"]["id"])

    @property
    def allowed_mentions(self) -> Any:
        """``allowed_mentions`` of the creating request (``None`` when absent)."""
        return None if self.request is None else self.request.get("allowed_mentions")

    @property
    def message_reference(self) -> JsonDict | None:
        ref = self.data.get("message_reference")
        return dict(ref) if isinstance(ref, Mapping) else None

    @property
    def nonce(self) -> Any:
        return self.data.get("nonce")

    @property
    def embeds(self) -> list[JsonDict]:
        return list(self.data.get("embeds") or [])

    @property
    def pinged_user_ids(self) -> list[int]:
        """Users this message pinged (``mentions`` as Discord computes them under ``allowed_mentions``)."""
        return [int(u["id"]) for u in self.data.get("mentions", [])]

    @property
    def pinged_role_ids(self) -> list[int]:
        return [int(r) for r in self.data.get("mention_roles", [])]

    @property
    def mention_everyone(self) -> bool:
        return bool(self.data.get("mention_everyone"))

    @property
    def contents(self) -> list[str]:
        """The content when created and after each edit that set one, in order."""
        first = self.request.get("content") if self.request is not None else self.content
        seen = [str(first or "")]
        seen.extend(str(e.content or "") for e in self.edits if e.content is not None)
        return seen


@dataclass
class ThreadRecord:
    """A thread the bot created."""

    channel: JsonDict
    """The thread channel object as served (also by ``GET /channels/{id}``)."""
    parent_id: int
    message_id: int | None
    """The starter message (the thread has the same id), ``None`` for a thread without one."""
    name: str
    auto_archive_duration: int
    payload: JsonDict
    time: float

    @property
    def id(self) -> int:
        return int(self.channel["id"])

    def thread_create_payload(self) -> JsonDict:
        """The THREAD_CREATE Discord sends the bot for this thread: feed it to
        ``client._connection.parsers["THREAD_CREATE"]`` so discord.py caches the thread (otherwise a
        message in it arrives with a ``PartialMessageable`` channel)."""
        return {**self.channel, "newly_created": True}


@dataclass
class InteractionResponse:
    """What the bot did with an interaction: its callback, edits of the original response, followups."""

    interaction_id: int
    kind: Literal["callback", "edit_original", "delete_original", "followup", "edit_followup"]
    payload: JsonDict
    """The JSON body sent (for a callback ``{"type", "data"}``)."""
    time: float
    message_id: int | None = None

    @property
    def type(self) -> int | None:
        """The callback type: 4 message, 5 deferred message, 6 deferred update, 7 update,
        8 autocomplete result, 9 modal (``None`` for edits and followups)."""
        return int(self.payload["type"]) if self.kind == "callback" else None

    @property
    def data(self) -> JsonDict:
        if self.kind == "callback":
            return dict(self.payload.get("data") or {})
        return dict(self.payload)

    @property
    def content(self) -> str | None:
        value = self.data.get("content")
        return None if value is None else str(value)

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def choices(self) -> list[JsonDict]:
        """The choices of an autocomplete result."""
        return list(self.data.get("choices") or [])


@dataclass
class CommandSync:
    """One bulk overwrite of application commands."""

    guild_id: int | None
    """``None`` for global commands."""
    payload: list[JsonDict]
    time: float

    @property
    def names(self) -> list[str]:
        return [str(c.get("name")) for c in self.payload]


@dataclass
class _Interaction:
    id: int
    token: str
    payload: JsonDict | None = None
    callback_type: int | None = None
    original_id: int | None = None
    original_edited: bool = False
    responses: list[InteractionResponse] = field(default_factory=list)

    @property
    def channel_id(self) -> int | None:
        if self.payload is None:
            return None
        raw = self.payload.get("channel_id") or (self.payload.get("channel") or {}).get("id")
        return None if raw is None else int(raw)


@dataclass
class _Fault:
    status: int
    code: int
    message: str


@dataclass
class _RateLimit:
    retry_after: float
    is_global: bool
    scope: str


@dataclass
class _Bucket:
    bucket_hash: str
    count: int = 0
    window_start: float | None = None


@dataclass
class _Call:
    request: web.Request
    params: dict[str, str]
    body: Any
    record: RequestRecord
    files: list[JsonDict]


Handler = Callable[[_Call], Awaitable[Any]]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    kind: str
    handler: Handler
    major: tuple[str, ...]
    auth: bool


_NO_CONTENT = object()
"""A handler answer meaning 204 No Content."""

_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")


def _json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly (no ``charset``, which discord.py rejects)."""
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json", headers=headers
    )


def _embed_chars(embed: Mapping[str, Any]) -> int:
    total = len(str(embed.get("title") or "")) + len(str(embed.get("description") or ""))
    for item in embed.get("fields") or []:
        total += len(str(item.get("name") or "")) + len(str(item.get("value") or ""))
    total += len(str((embed.get("footer") or {}).get("text") or ""))
    total += len(str((embed.get("author") or {}).get("name") or ""))
    return total


# --------------------------------------------------------------------------- the server


class FakeDiscord(LoopbackServer):
    """In-process fake of the Discord REST API (see the module docstring).

    Use as ``async with FakeDiscord() as fake:`` (or `start` / `stop`), then set
    ``discord.http.Route.BASE = fake.api_base``.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_user: Mapping[str, Any] | None = None,
        bot_name: str = "Claude",
        application_id: Snowflake | None = None,
        owner: Mapping[str, Any] | None = None,
        bucket_limit: int = 5,
        bucket_window: float = 0.5,
        latency: float = 0.0,
        interaction_ack_timeout: float | None = 3.0,
        starter_messages: bool = True,
        strict_references: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        """The accepted bot token (``None``: any)."""
        self.bot_user: JsonDict = (
            dict(bot_user)
            if bot_user is not None
            else user_payload(snowflake(), bot_name.lower(), bot=True, global_name=bot_name)
        )
        self.application_id = int(application_id) if application_id is not None else int(self.bot_user["id"])
        """The application id (by default the bot user's id, as for every bot made in the portal)."""
        self.owner: JsonDict = dict(owner) if owner is not None else user_payload(snowflake(), "owner")
        self.bucket_limit = bucket_limit
        """Requests per bucket window (Discord: 5 per ~5 s for messages in a channel)."""
        self.bucket_window = bucket_window
        """Seconds of a bucket window (Discord: about 5; short by default so tests stay fast)."""
        self.latency = latency
        """Seconds every request waits before being handled (see `set_latency`)."""
        self.kind_latency: dict[str, float] = {}
        self.interaction_ack_timeout = interaction_ack_timeout
        """Seconds after an interaction's creation (its snowflake) within which the callback must come."""
        self.starter_messages = starter_messages
        """Put a type-21 THREAD_STARTER_MESSAGE first in threads started from a message."""
        self.strict_references = strict_references
        """Refuse replies to messages the fake does not know (unless ``fail_if_not_exists`` is false)."""
        self.host = host
        self.port = port

        self.requests: list[RequestRecord] = []
        self.unhandled: list[RequestRecord] = []
        """Requests to routes the fake does not serve (answered 404/405)."""
        self.threads: list[ThreadRecord] = []
        self.commands_synced: list[CommandSync] = []
        self.commands: dict[int | None, list[JsonDict]] = {}
        """Current application commands (as served) per guild id (``None``: global)."""
        self.channels: dict[int, JsonDict] = {}
        self.guilds: dict[int, JsonDict] = {}
        self.users: dict[int, JsonDict] = {int(self.bot_user["id"]): self.bot_user}
        self.reactions: dict[int, list[str]] = {}
        """Message id -> emoji the bot currently has on it."""
        self.gateway_address: str | None = None
        """What ``GET /gateway/bot`` answers (a `FakeGateway` sets it); ``None``: a URL nothing serves."""
        self.gateway_listeners: list[Callable[[str, JsonDict], None]] = []
        """Called with what Discord would dispatch to the bot for the bot's own actions (its
        messages: MESSAGE_CREATE, MESSAGE_UPDATE; threads it starts: THREAD_CREATE)."""
        self.link_previews: list[LinkPreview] = []
        """URLs Discord's crawler would have fetched: a link in a message the bot sent or edited
        without ``SUPPRESS_EMBEDS`` (flag 1 << 2), outside ``<...>``."""

        self._messages: dict[int, FakeMessage] = {}
        self._by_channel: dict[int, list[int]] = {}
        self._typing: dict[int, list[float]] = {}
        self._interactions: dict[int, _Interaction] = {}
        self._interaction_tokens: dict[str, int] = {}
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self._nonces: dict[tuple[int, str], int] = {}
        self._rate_limits: dict[str, deque[_RateLimit]] = {}
        self._failures: dict[str, deque[_Fault]] = {}
        self._refused_threads: dict[int, _Fault] = {}
        self._refused_messages: dict[int, _Fault] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._runner: web.AppRunner | None = None
        self.cdn = FakeDiscordFiles()
        """Attachments served at their URLs (see `fakes.discord_files`); `add_attachment` hosts one."""
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:PORT/api/v10``: the value for ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """What ``GET /gateway/bot`` answers: `gateway_address`, else a URL nothing serves."""
        return self.gateway_address or f"ws://{self.host}:{self.port}/gateway"

    def _emit(self, event: str, data: Mapping[str, Any]) -> None:
        for listener in self.gateway_listeners:
            listener(event, dict(data))

    @property
    def bot_user_id(self) -> int:
        return int(self.bot_user["id"])

    # ------------------------------------------------------------------ world state

    def add_user(self, user: Mapping[str, Any]) -> JsonDict:
        """Make a user known (used to render pings); returns it."""
        data = dict(user)
        self.users[int(data["id"])] = data
        return data

    def add_channel(self, channel: Mapping[str, Any], guild_id: Snowflake | None = None) -> JsonDict:
        """Make a channel (or thread, or DM) known to ``GET /channels/{id}``; returns the stored object."""
        data = dict(channel)
        data.pop("newly_created", None)
        data.pop("member", None)
        if guild_id is not None and data.get("type") != DM:
            data.setdefault("guild_id", str(int(guild_id)))
        for user in data.get("recipients", []):
            self.add_user(user)
        self.channels[int(data["id"])] = data
        return data

    def add_guild(self, guild: Mapping[str, Any]) -> None:
        """Register a `guild_payload`: its channels, threads, members' users and roles."""
        gid = int(guild["id"])
        self.guilds[gid] = dict(guild)
        for channel in guild.get("channels", []):
            self.add_channel(channel, gid)
        for thread in guild.get("threads", []):
            self.add_channel(thread, gid)
        for member in guild.get("members", []):
            if "user" in member:
                self.add_user(member["user"])

    def register_interaction(self, payload: Mapping[str, Any]) -> JsonDict:
        """Tell the fake about an INTERACTION_CREATE (returns it, to feed it on): its channel then gets the
        non-ephemeral responses (`sent`, history), and its users become known."""
        data = dict(payload)
        state = self._interaction(int(data["id"]), str(data["token"]))
        state.payload = data
        user = data.get("user") or (data.get("member") or {}).get("user")
        if user:
            self.add_user(user)
        channel = data.get("channel")
        if isinstance(channel, Mapping) and int(channel["id"]) not in self.channels:
            self.add_channel(channel, data.get("guild_id"))
        return data

    def seed_messages(self, channel_id: Snowflake, messages: Iterable[Mapping[str, Any]]) -> list[FakeMessage]:
        """Store messages as if posted earlier (history, replies and thread starters see them).

        Each item is a message payload (see `message_payload`) or a short dict with ``author`` (a user
        payload; default a user ``"someone"``), ``content`` and any `message_payload` keyword."""
        cid = int(channel_id)
        out: list[FakeMessage] = []
        for item in messages:
            if "id" in item and "author" in item and "timestamp" in item:
                data = {**dict(item), "channel_id": str(cid)}
            else:
                args = dict(item)
                author = args.pop("author", None) or user_payload(None, "someone")
                content = str(args.pop("content", ""))
                if "id" in args:
                    args["message_id"] = args.pop("id")
                args.pop("channel_id", None)
                data = message_payload(cid, author, content, **args)
            self.add_user(data["author"])
            by_bot = int(data["author"]["id"]) == self.bot_user_id
            message = FakeMessage(data=data, channel_id=cid, time=monotonic(), seeded=True, by_bot=by_bot)
            self._store(message)
            out.append(message)
        return out

    def archive_thread(self, thread_id: Snowflake, *, locked: bool = False) -> None:
        """Archive (and maybe lock) a known thread."""
        thread = self.channels[int(thread_id)]
        thread["thread_metadata"]["archived"] = True
        thread["thread_metadata"]["locked"] = locked
        thread["thread_metadata"]["archive_timestamp"] = iso_timestamp()

    # ------------------------------------------------------------------ scripting

    def rate_limit(
        self, kind: str = "create_message", times: int = 1, retry_after: float = 0.05, *, is_global: bool = False
    ) -> None:
        """Answer the next ``times`` requests of route ``kind`` (``"*"``: any route) with 429 and ``retry_after``.

        discord.py sleeps ``retry_after`` and retries, at most 5 tries in all: ``times >= 5`` makes the call
        raise ``HTTPException`` (status 429).  ``is_global`` sets ``"global": true`` (discord.py then holds
        every request)."""
        self._check_kind(kind)
        spec = _RateLimit(float(retry_after), is_global, "global" if is_global else "user")
        self._rate_limits.setdefault(kind, deque()).extend([spec] * times)

    def fail_next(
        self, kind: str, status: int = 500, code: int = 0, message: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests of route ``kind`` (``"*"``: any) with an error.

        Note that discord.py retries 500/502/504/524 itself (sleeping 1, 3, 5... seconds), so prefer 4xx."""
        self._check_kind(kind)
        text = message if message is not None else f"{status}: {_REASONS.get(status, 'Error')}"
        self._failures.setdefault(kind, deque()).extend([_Fault(status, code, text)] * times)

    def refuse_threads_in(
        self, channel_id: Snowflake, code: int = 50013, message: str = "Missing Permissions", status: int = 403
    ) -> None:
        """Make starting a thread in ``channel_id`` fail (default 403/50013, discord.py raises ``Forbidden``)."""
        self._refused_threads[int(channel_id)] = _Fault(status, code, message)

    def refuse_messages_in(
        self, channel_id: Snowflake, code: int = 50013, message: str = "Missing Permissions", status: int = 403
    ) -> None:
        """Make sending (and editing) messages in ``channel_id`` fail (e.g. 403/50001 "Missing Access")."""
        self._refused_messages[int(channel_id)] = _Fault(status, code, message)

    def set_latency(self, seconds: float, kind: str | None = None) -> None:
        """Delay every request (``kind=None``) or those of one route kind."""
        if kind is None:
            self.latency = seconds
        else:
            self._check_kind(kind)
            self.kind_latency[kind] = seconds

    def clear_faults(self) -> None:
        """Drop queued 429s and failures, refusals and latency."""
        self._rate_limits.clear()
        self._failures.clear()
        self._refused_threads.clear()
        self._refused_messages.clear()
        self.latency = 0.0
        self.kind_latency.clear()

    def reset(self) -> None:
        """Forget requests, messages, threads, interactions, typing, commands and faults (not channels/users)."""
        self.requests.clear()
        self.unhandled.clear()
        self.threads.clear()
        self.commands_synced.clear()
        self.commands.clear()
        self.reactions.clear()
        self.link_previews.clear()
        self._messages.clear()
        self._by_channel.clear()
        self._typing.clear()
        self._interactions.clear()
        self._interaction_tokens.clear()
        self._nonces.clear()
        self._buckets.clear()
        self.clear_faults()

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind != "*" and kind not in ROUTE_KINDS:
            raise ValueError(f"unknown route kind {kind!r}; expected one of {ROUTE_KINDS}")

    # ------------------------------------------------------------------ inspection

    def requests_to(self, kind: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.kind == kind]

    def message(self, message_id: Snowflake) -> FakeMessage | None:
        return self._messages.get(int(message_id))

    def messages_in(self, channel_id: Snowflake) -> list[FakeMessage]:
        """Every live message the fake knows in a channel (seeded and sent), oldest first."""
        ids = sorted(self._by_channel.get(int(channel_id), []))
        return [m for m in (self._messages[i] for i in ids) if not m.deleted]

    def sent(self, channel_id: Snowflake) -> list[FakeMessage]:
        """The bot's messages in a channel, oldest first, with their final content -- what users see:
        messages it posted and non-ephemeral responses to registered interactions (not seeded ones)."""
        return [m for m in self.messages_in(channel_id) if m.by_bot and not m.seeded and not m.ephemeral]

    def texts(self, channel_id: Snowflake) -> list[str]:
        """The content of each of `sent`."""
        return [m.content for m in self.sent(channel_id)]

    def all_sent(self) -> list[FakeMessage]:
        """Every message the bot created, in any channel (also ephemeral ones and deleted ones), in order."""
        return sorted((m for m in self._messages.values() if m.by_bot and not m.seeded), key=lambda m: m.id)

    def edits(self, message_id: Snowflake) -> list[MessageEdit]:
        message = self._messages.get(int(message_id))
        return list(message.edits) if message is not None else []

    def typing(self, channel_id: Snowflake) -> list[float]:
        """``time.monotonic()`` of each typing indicator triggered in a channel."""
        return list(self._typing.get(int(channel_id), []))

    def interaction_responses(self, interaction_id: Snowflake) -> list[InteractionResponse]:
        """The callback, edits of the original response and followups of one interaction, in order."""
        state = self._interactions.get(int(interaction_id))
        return list(state.responses) if state is not None else []

    def original_response(self, interaction_id: Snowflake) -> FakeMessage | None:
        """The message a type 4/5 callback created (with its final content)."""
        state = self._interactions.get(int(interaction_id))
        if state is None or state.original_id is None:
            return None
        return self._messages.get(state.original_id)

    def thread(self, thread_id: Snowflake) -> ThreadRecord | None:
        for record in self.threads:
            if record.id == int(thread_id):
                return record
        return None

    def command_id(self, name: str, guild_id: Snowflake | None = None, type: int = 1) -> int | None:
        """The id given to a synced command (for ``interaction_payload(command_id=...)``)."""
        return self._command_ids.get((None if guild_id is None else int(guild_id), name, type))

    # ------------------------------------------------------------------ routing

    def _build_routes(self) -> list[_Route]:
        c = r"/channels/(?P<channel_id>\d+)"
        m = c + r"/messages/(?P<message_id>\d+)"
        w = r"/webhooks/(?P<application_id>\d+)/(?P<token>[^/]+)"
        table: list[tuple[str, str, str, Handler, tuple[str, ...], bool]] = [
            ("GET", r"/users/@me", "get_me", self._get_me, (), True),
            ("GET", r"/oauth2/applications/@me", "application_info", self._application_info, (), True),
            ("GET", r"/gateway/bot", "gateway_bot", self._gateway_bot, (), True),
            ("GET", r"/gateway", "gateway", self._gateway, (), False),
            ("GET", c, "get_channel", self._get_channel, ("channel_id",), True),
            ("POST", c + r"/messages", "create_message", self._create_message, ("channel_id",), True),
            ("GET", c + r"/messages", "history", self._history, ("channel_id",), True),
            ("GET", m, "get_message", self._get_message, ("channel_id",), True),
            ("PATCH", m, "edit_message", self._edit_message, ("channel_id",), True),
            ("DELETE", m, "delete_message", self._delete_message, ("channel_id",), True),
            ("POST", m + r"/threads", "start_thread", self._start_thread, ("channel_id",), True),
            ("POST", c + r"/threads", "start_thread_bare", self._start_thread_bare, ("channel_id",), True),
            ("POST", c + r"/typing", "typing", self._typing_route, ("channel_id",), True),
            ("PUT", m + r"/reactions/(?P<emoji>[^/]+)/@me", "add_reaction", self._add_reaction, ("channel_id",), True),
            (
                "DELETE",
                m + r"/reactions/(?P<emoji>[^/]+)/@me",
                "remove_reaction",
                self._remove_reaction,
                ("channel_id",),
                True,
            ),
            (
                "POST",
                r"/interactions/(?P<interaction_id>\d+)/(?P<token>[^/]+)/callback",
                "interaction_callback",
                self._interaction_callback,
                ("interaction_id", "token"),
                False,
            ),
            ("GET", w + r"/messages/@original", "get_original", self._get_original, ("application_id", "token"), False),
            (
                "PATCH",
                w + r"/messages/@original",
                "edit_original",
                self._edit_original,
                ("application_id", "token"),
                False,
            ),
            (
                "DELETE",
                w + r"/messages/@original",
                "delete_original",
                self._delete_original,
                ("application_id", "token"),
                False,
            ),
            ("POST", w, "followup", self._followup, ("application_id", "token"), False),
            (
                "PATCH",
                w + r"/messages/(?P<message_id>\d+)",
                "edit_followup",
                self._edit_followup,
                ("application_id", "token"),
                False,
            ),
            (
                "PUT",
                r"/applications/(?P<application_id>\d+)/commands",
                "sync_commands",
                self._sync_commands,
                ("application_id",),
                True,
            ),
            (
                "GET",
                r"/applications/(?P<application_id>\d+)/commands",
                "get_commands",
                self._get_commands,
                ("application_id",),
                True,
            ),
            (
                "PUT",
                r"/applications/(?P<application_id>\d+)/guilds/(?P<guild_id>\d+)/commands",
                "sync_commands",
                self._sync_commands,
                ("guild_id",),
                True,
            ),
            (
                "GET",
                r"/applications/(?P<application_id>\d+)/guilds/(?P<guild_id>\d+)/commands",
                "get_commands",
                self._get_commands,
                ("guild_id",),
                True,
            ),
        ]
        return [
            _Route(method, re.compile(f"^{pattern}$"), kind, handler, major, auth)
            for method, pattern, kind, handler, major, auth in table
        ]

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | Literal[False] | None:
        """The route and its parameters; ``None`` for an unknown path, ``False`` for a wrong method."""
        path_known = False
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            path_known = True
        return False if path_known else None

    async def _read_body(self, request: web.Request) -> tuple[Any, list[JsonDict]]:
        """The JSON body (``payload_json`` of a multipart body) and any uploaded files."""
        if request.content_type.startswith("multipart/"):
            body: Any = None
            files: list[JsonDict] = []
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                raw = await part.read()
                if part.name == "payload_json":
                    body = json.loads(raw)
                elif part.filename:
                    files.append({"field": part.name, "filename": part.filename, "size": len(raw)})
            return body, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DiscordError(400, 50109, "The request body contains invalid JSON.") from None

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        self.cdn.add_routes(app)  # before the catch-all
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    def add_attachment(self, channel_id: Any, filename: str, data: bytes, **extra: Any) -> JsonDict:
        """Host a file on the fake CDN; returns the attachment payload a message carries."""
        return self.cdn.add(self.base_url, channel_id, filename, data, **extra)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        prefix = f"/api/v{API_VERSION}"
        full_path = request.path
        path = full_path[len(prefix) :] if full_path.startswith(prefix + "/") else full_path
        auth = request.headers.get("Authorization", "")
        record = RequestRecord(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=None,
            time=monotonic(),
            token=auth[4:] if auth.startswith("Bot ") else (auth or None),
        )
        self.requests.append(record)
        try:
            record.json, files = await self._read_body(request)
        except DiscordError as error:
            return self._finish(record, error.status, error.body(), {})
        record.files = [f["filename"] for f in files]
        matched = self._match(request.method, path) if full_path.startswith(prefix + "/") else None
        if not matched:
            self.unhandled.append(record)
            if matched is False:
                return self._finish(record, 405, {"message": "405: Method Not Allowed", "code": 0}, {})
            return self._finish(record, 404, {"message": "404: Not Found", "code": 0}, {})
        route, params = matched
        record.kind = route.kind
        if route.auth and not self._authorized(record.token):
            return self._finish(record, 401, {"message": "401: Unauthorized", "code": 0}, {})

        delay = self.latency + self.kind_latency.get(route.kind, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)

        bucket_key = route.kind + ":" + "+".join(params.get(k, "") for k in route.major)
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            digest = hashlib.sha256(f"{route.method} {route.pattern.pattern}".encode()).hexdigest()[:32]
            bucket = self._buckets[bucket_key] = _Bucket(bucket_hash=digest)

        injected = self._take(self._rate_limits, route.kind)
        if injected is not None:
            return self._too_many(record, bucket, injected)
        now = monotonic()
        if bucket.window_start is None or now >= bucket.window_start + self.bucket_window:
            bucket.window_start, bucket.count = now, 0
        if bucket.count >= self.bucket_limit:
            retry = max(bucket.window_start + self.bucket_window - now, 0.001)
            return self._too_many(record, bucket, _RateLimit(retry, False, "user"))
        bucket.count += 1
        headers = self._rate_headers(bucket)

        fault = self._take(self._failures, route.kind)
        if fault is not None:
            return self._finish(record, fault.status, {"message": fault.message, "code": fault.code}, headers)
        call = _Call(request=request, params=params, body=record.json, record=record, files=files)
        try:
            answer = await route.handler(call)
        except DiscordError as error:
            return self._finish(record, error.status, error.body(), headers)
        if answer is _NO_CONTENT:
            record.status = 204
            return web.Response(status=204, headers=headers)
        return self._finish(record, 200, answer, headers)

    def _authorized(self, token: str | None) -> bool:
        if not token:
            return False
        return self.token is None or token == self.token

    @staticmethod
    def _take(queues: Mapping[str, deque[Any]], kind: str) -> Any:
        for key in (kind, "*"):
            queue = queues.get(key)
            if queue:
                return queue.popleft()
        return None

    def _rate_headers(self, bucket: _Bucket) -> dict[str, str]:
        start = bucket.window_start if bucket.window_start is not None else monotonic()
        reset_after = max(start + self.bucket_window - monotonic(), 0.0)
        return {
            "X-RateLimit-Limit": str(self.bucket_limit),
            "X-RateLimit-Remaining": str(max(self.bucket_limit - bucket.count, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket.bucket_hash,
        }

    def _too_many(self, record: RequestRecord, bucket: _Bucket, spec: _RateLimit) -> web.Response:
        headers = {
            "X-RateLimit-Limit": str(self.bucket_limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + spec.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{spec.retry_after:.3f}",
            "X-RateLimit-Bucket": bucket.bucket_hash,
            "X-RateLimit-Scope": spec.scope,
            "Retry-After": str(max(1, math.ceil(spec.retry_after))),
            "Via": "1.1 google",
        }
        if spec.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": spec.retry_after, "global": spec.is_global}
        return self._finish(record, 429, body, headers)

    @staticmethod
    def _finish(record: RequestRecord, status: int, body: Any, headers: Mapping[str, str]) -> web.Response:
        record.status, record.response = status, body
        return _json_response(body, status, headers)

    # ------------------------------------------------------------------ store helpers

    def _store(self, message: FakeMessage) -> None:
        mid = message.id
        if mid not in self._messages:
            self._by_channel.setdefault(message.channel_id, []).append(mid)
        self._messages[mid] = message

    def _guild_of(self, channel_id: int) -> int | None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.get("guild_id") is None:
            return None
        return int(channel["guild_id"])

    def _refusal(self, table: Mapping[int, _Fault], channel_id: int) -> None:
        fault = table.get(channel_id)
        if fault is not None:
            raise DiscordError(fault.status, fault.code, fault.message)

    def _own_message(self, channel_id: int, message_id: int) -> FakeMessage:
        message = self._messages.get(message_id)
        if message is None or message.deleted or message.channel_id != channel_id:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    def _body(self, call: _Call) -> JsonDict:
        if call.body is None:
            return {}
        if not isinstance(call.body, dict):
            raise _form_error([], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return call.body

    @staticmethod
    def _check_allowed_mentions(allowed: Any) -> None:
        if allowed is None:
            return
        if not isinstance(allowed, Mapping):
            raise _form_error(["allowed_mentions"], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        parse = allowed.get("parse") or []
        for key in ("users", "roles"):
            if key in parse and allowed.get(key):
                raise _form_error(
                    ["allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{key}"] and {key}: [ids...] are mutually exclusive.',
                )

    def _check_message(self, body: Mapping[str, Any], *, current: Mapping[str, Any] | None = None) -> None:
        """Discord's checks of a message body (``current``: the message being edited)."""
        content = body.get("content")
        if content is not None:
            if not isinstance(content, str):
                raise _form_error(["content"], "BASE_TYPE_STRING", "Must be a string.")
            if len(content) > MAX_CONTENT_CHARS:
                raise _form_error(
                    ["content"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT_CHARS} or fewer in length."
                )
        embeds = body.get("embeds")
        if embeds is not None:
            if not isinstance(embeds, list):
                raise _form_error(["embeds"], "BASE_TYPE_ARRAY", "Must be an array.")
            if len(embeds) > MAX_EMBEDS:
                raise _form_error(["embeds"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
            if sum(_embed_chars(e) for e in embeds if isinstance(e, Mapping)) > MAX_EMBED_TOTAL_CHARS:
                raise _form_error(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
            for index, embed in enumerate(embeds):
                if isinstance(embed, Mapping) and len(str(embed.get("description") or "")) > 4096:
                    raise _form_error(
                        ["embeds", index, "description"], "BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length."
                    )
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > 25:
            raise _form_error(["nonce"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        self._check_allowed_mentions(body.get("allowed_mentions"))

        def has(source: Mapping[str, Any], key: str) -> bool:
            return bool(source.get(key))

        merged = {**(current or {}), **body}
        visible = ("content", "embeds", "sticker_ids", "components", "attachments", "poll", "sticker_items")
        if not any(has(merged, key) for key in visible):
            raise DiscordError(400, 50006, "Cannot send an empty message")

    def _pings(self, content: str, allowed: Any, replied_author: int | None) -> tuple[list[JsonDict], list[str], bool]:
        """Users, roles and @everyone that ``content`` really pings under ``allowed_mentions``."""
        if isinstance(allowed, Mapping):
            parse = set(allowed.get("parse") or [])
            users = {int(u) for u in allowed.get("users") or []}
            roles = {int(r) for r in allowed.get("roles") or []}
            replied = bool(allowed.get("replied_user", False))
        else:
            parse, users, roles, replied = {"users", "roles", "everyone"}, set(), set(), True
        pinged: list[int] = []
        for raw in _USER_MENTION.findall(content):
            uid = int(raw)
            if ("users" in parse or uid in users) and uid not in pinged:
                pinged.append(uid)
        if replied and replied_author is not None and replied_author not in pinged:
            pinged.append(replied_author)
        role_ids = [r for r in dict.fromkeys(_ROLE_MENTION.findall(content)) if "roles" in parse or int(r) in roles]
        everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
        mentions = [dict(self.users.get(uid) or user_payload(uid, f"user{uid}")) for uid in pinged]
        return mentions, role_ids, everyone

    def _referenced(self, channel_id: int, ref: Any) -> tuple[JsonDict | None, JsonDict | None]:
        """The normalised ``message_reference`` and the referenced message (if known)."""
        if not isinstance(ref, Mapping):
            return None, None
        if ref.get("message_id") is None:
            raise _form_error(["message_reference", "message_id"], "BASE_TYPE_REQUIRED", "This field is required")
        target = self._messages.get(int(ref["message_id"]))
        if target is None or target.deleted:
            if self.strict_references and ref.get("fail_if_not_exists", True):
                raise _form_error(["message_reference"], "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
            channel = str(ref.get("channel_id", channel_id))
            return {"type": 0, "message_id": str(ref["message_id"]), "channel_id": channel}, None
        norm = {"type": 0, "message_id": str(target.id), "channel_id": str(target.channel_id)}
        guild_id = self._guild_of(target.channel_id)
        if guild_id is not None:
            norm["guild_id"] = str(guild_id)
        resolved = {k: v for k, v in target.data.items() if k != "referenced_message"}
        return norm, resolved

    def _bot_message(
        self,
        channel_id: int | None,
        body: Mapping[str, Any],
        *,
        files: Sequence[JsonDict] = (),
        interaction: _Interaction | None = None,
        extra_flags: int = 0,
    ) -> FakeMessage:
        """Create (and store) a message written by the bot; ``interaction`` makes it an interaction
        response or followup (type 20, ``webhook_id`` = application id, ``interaction_metadata``)."""
        cid = channel_id if channel_id is not None else 0
        ref, resolved = self._referenced(cid, body.get("message_reference"))
        replied_author = int(resolved["author"]["id"]) if resolved is not None else None
        content = str(body.get("content") or "")
        mentions, role_ids, everyone = self._pings(content, body.get("allowed_mentions"), replied_author)
        if files:
            attachments = [self._attachment(cid, index, upload) for index, upload in enumerate(files)]
        else:
            attachments = [dict(a) for a in body.get("attachments") or [] if isinstance(a, Mapping)]
        data = message_payload(
            cid,
            self.bot_user,
            content,
            embeds=body.get("embeds") or [],
            components=body.get("components") or [],
            attachments=attachments,
            flags=int(body.get("flags") or 0) | extra_flags,
            nonce=body.get("nonce"),
            message_reference=ref,
            referenced_message=resolved,
            webhook_id=self.application_id if interaction is not None else None,
            application_id=self.application_id if interaction is not None else None,
            type=TYPE_CHAT_INPUT_COMMAND if interaction is not None else None,
        )
        data["mentions"], data["mention_roles"], data["mention_everyone"] = mentions, role_ids, everyone
        if body.get("tts"):
            data["tts"] = True
        if interaction is not None and interaction.payload is not None:
            invoker = interaction.payload.get("user") or (interaction.payload.get("member") or {}).get("user")
            if invoker:
                data["interaction_metadata"] = {
                    "id": str(interaction.id),
                    "type": int(interaction.payload.get("type", 2)),
                    "user": dict(invoker),
                    "authorizing_integration_owners": dict(
                        interaction.payload.get("authorizing_integration_owners") or {}
                    ),
                    "name": (interaction.payload.get("data") or {}).get("name", ""),
                    "command_type": 1,
                }
        channel = self.channels.get(channel_id) if channel_id is not None else None
        if channel is not None:
            if channel.get("type") in THREAD_TYPES:
                data["position"] = int(channel.get("total_message_sent", 0))
                channel["message_count"] = int(channel.get("message_count", 0)) + 1
                channel["total_message_sent"] = int(channel.get("total_message_sent", 0)) + 1
            channel["last_message_id"] = data["id"]
        message = FakeMessage(
            data=data,
            channel_id=cid,
            time=monotonic(),
            by_bot=True,
            request=dict(body),
            interaction_id=interaction.id if interaction is not None else None,
        )
        if channel_id is not None:
            self._store(message)
        else:  # an interaction of unknown channel: reachable by id only
            self._messages[message.id] = message
        self._preview_links(message)
        if interaction is None and channel_id is not None:
            self._emit("MESSAGE_CREATE", message.data)
        return message

    def _preview_links(self, message: FakeMessage) -> None:
        """Discord unfurls every link of a message unless it suppresses embeds: its crawler
        fetches the URL (what a crafted URL would leak) and the message gets a link embed."""
        if message.flags & FLAG_SUPPRESS_EMBEDS:
            message.data["embeds"] = [e for e in message.data.get("embeds", []) if e.get("type") != "link"]
            return
        embeds = message.data.setdefault("embeds", [])
        for url in _LINK.findall(message.content):
            if not any(e.get("type") == "link" and e.get("url") == url for e in embeds):
                self.link_previews.append(LinkPreview(message.id, url))
                embeds.append({"type": "link", "url": url})

    def _attachment(self, channel_id: int, index: int, upload: Mapping[str, Any]) -> JsonDict:
        aid = snowflake()
        url = f"{self.base_url}/attachments/{channel_id}/{aid}/{upload['filename']}"
        return {
            "id": str(aid),
            "filename": upload["filename"],
            "size": upload["size"],
            "url": url,
            "proxy_url": url,
            "content_type": "application/octet-stream",
        }

    def _apply_edit(self, message: FakeMessage, body: Mapping[str, Any], *, files: Sequence[JsonDict] = ()) -> None:
        """Apply an edit (fields left out are kept, as in Discord) and record it."""
        self._check_message(body, current=message.data)
        data = message.data
        if "content" in body:
            data["content"] = str(body.get("content") or "")
        for key in ("embeds", "components"):
            if key in body:
                data[key] = list(body.get(key) or [])
        if "attachments" in body or files:
            keep = {str(a.get("id")) for a in body.get("attachments") or [] if isinstance(a, Mapping)}
            kept = [a for a in data.get("attachments", []) if str(a.get("id")) in keep]
            data["attachments"] = kept + [self._attachment(message.channel_id, i, f) for i, f in enumerate(files)]
        flags = int(data.get("flags", 0))
        if body.get("flags") is not None:
            flags = int(body["flags"]) | (flags & FLAG_EPHEMERAL)  # ephemeral can't be toggled by an edit
        data["flags"] = flags & ~FLAG_LOADING
        allowed = body.get("allowed_mentions", message.allowed_mentions)
        ref = data.get("referenced_message")
        replied_author = int(ref["author"]["id"]) if isinstance(ref, Mapping) else None
        data["mentions"], data["mention_roles"], data["mention_everyone"] = self._pings(
            data["content"], allowed, replied_author
        )
        data["edited_timestamp"] = iso_timestamp()
        self._preview_links(message)
        if message.interaction_id is None and not data.get("flags", 0) & FLAG_EPHEMERAL:
            self._emit("MESSAGE_UPDATE", data)
        message.edits.append(
            MessageEdit(
                time=monotonic(),
                content=str(body.get("content") or "") if "content" in body else None,
                allowed_mentions=body.get("allowed_mentions"),
                payload=dict(body),
            )
        )

    # ------------------------------------------------------------------ handlers: identity

    async def _get_me(self, call: _Call) -> JsonDict:
        return {
            **self.bot_user,
            "bot": True,
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
            "email": None,
            "bio": "",
        }

    async def _application_info(self, call: _Call) -> JsonDict:
        name = str(self.bot_user.get("global_name") or self.bot_user.get("username"))
        return {
            "id": str(self.application_id),
            "name": name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": hashlib.sha256(str(self.application_id).encode()).hexdigest(),
            "owner": dict(self.owner),
            "team": None,
            "flags": 1 << 19 | 1 << 23,
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,  # set, discord.py warns that app commands won't arrive
            "role_connections_verification_url": None,
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "integration_types_config": {"0": {}},
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": str(DEFAULT_BOT_PERMISSIONS)},
            "bot": dict(self.bot_user),
        }

    async def _gateway(self, call: _Call) -> JsonDict:
        return {"url": self.gateway_url}

    async def _gateway_bot(self, call: _Call) -> JsonDict:
        return {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1},
        }

    # ------------------------------------------------------------------ handlers: channels & messages

    async def _get_channel(self, call: _Call) -> JsonDict:
        channel = self.channels.get(int(call.params["channel_id"]))
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return dict(channel)

    async def _create_message(self, call: _Call) -> JsonDict:
        cid = int(call.params["channel_id"])
        self._refusal(self._refused_messages, cid)
        body = self._body(call)
        self._check_message({**body, "attachments": body.get("attachments") or call.files})
        if isinstance(body.get("flags"), int) and body["flags"] & FLAG_EPHEMERAL:
            raise _form_error(["flags"], "MESSAGE_FLAGS_INVALID", "Ephemeral messages are only for interactions.")
        self._check_thread_open(cid)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            previous = self._nonces.get((cid, str(nonce)))
            if previous is not None and previous in self._messages:
                return dict(self._messages[previous].data)
        message = self._bot_message(cid, body, files=call.files)
        if nonce is not None:
            self._nonces[(cid, str(nonce))] = message.id
        return dict(message.data)

    def _check_thread_open(self, channel_id: int) -> None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.get("type") not in THREAD_TYPES:
            return
        metadata = channel.setdefault("thread_metadata", {})
        if metadata.get("locked"):
            raise DiscordError(400, 50083, "Thread is archived")
        if metadata.get("archived"):
            metadata["archived"] = False  # sending unarchives an unlocked thread

    async def _history(self, call: _Call) -> list[JsonDict]:
        cid = int(call.params["channel_id"])
        query = call.record.query
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            raise _form_error(["limit"], "NUMBER_TYPE_COERCE", "Value is not int.") from None
        if not 1 <= limit <= 100:
            raise _form_error(["limit"], "NUMBER_TYPE_MAX", "int value should be between 1 and 100.")
        messages = [m.data for m in self.messages_in(cid) if not m.ephemeral]  # oldest first
        if "around" in query:
            around = int(query["around"])
            older = [m for m in messages if int(m["id"]) < around][-(limit // 2) :] if limit > 1 else []
            newer = [m for m in messages if int(m["id"]) >= around][: limit - len(older)]
            page = older + newer
        elif "after" in query:
            after = int(query["after"])
            page = [m for m in messages if int(m["id"]) > after][:limit]
        else:
            before = int(query["before"]) if "before" in query else None
            page = [m for m in messages if before is None or int(m["id"]) < before][-limit:]
        return [dict(m) for m in reversed(page)]

    async def _get_message(self, call: _Call) -> JsonDict:
        message = self._own_message(int(call.params["channel_id"]), int(call.params["message_id"]))
        return dict(message.data)

    async def _edit_message(self, call: _Call) -> JsonDict:
        cid = int(call.params["channel_id"])
        self._refusal(self._refused_messages, cid)
        message = self._own_message(cid, int(call.params["message_id"]))
        if not message.by_bot:
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        self._apply_edit(message, self._body(call), files=call.files)
        return dict(message.data)

    async def _delete_message(self, call: _Call) -> object:
        message = self._own_message(int(call.params["channel_id"]), int(call.params["message_id"]))
        message.deleted = True
        return _NO_CONTENT

    async def _typing_route(self, call: _Call) -> object:
        cid = int(call.params["channel_id"])
        self._refusal(self._refused_messages, cid)
        self._typing.setdefault(cid, []).append(monotonic())
        return _NO_CONTENT

    async def _add_reaction(self, call: _Call) -> object:
        message_id = int(call.params["message_id"])
        emoji = call.params["emoji"]
        names = self.reactions.setdefault(message_id, [])
        if emoji not in names:
            names.append(emoji)
        return _NO_CONTENT

    async def _remove_reaction(self, call: _Call) -> object:
        names = self.reactions.get(int(call.params["message_id"]), [])
        if call.params["emoji"] in names:
            names.remove(call.params["emoji"])
        return _NO_CONTENT

    # ------------------------------------------------------------------ handlers: threads

    def _check_thread_args(self, body: Mapping[str, Any]) -> tuple[str, int]:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise _form_error(["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        duration = body.get("auto_archive_duration")
        duration = 1440 if duration is None else duration
        if duration not in THREAD_ARCHIVE_DURATIONS:
            raise _form_error(
                ["auto_archive_duration"], "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}."
            )
        return name, int(duration)

    def _new_thread(
        self, parent_id: int, body: Mapping[str, Any], *, thread_id: int, type: int, call: _Call
    ) -> ThreadRecord:
        name, duration = self._check_thread_args(body)
        guild_id = self._guild_of(parent_id)
        channel = thread_channel(
            thread_id,
            name,
            guild_id=guild_id if guild_id is not None else 0,
            parent_id=parent_id,
            owner_id=self.bot_user_id,
            type=type,
            auto_archive_duration=duration,
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
            created_at=time.time(),
            newly_created=False,
        )
        if guild_id is None:
            channel.pop("guild_id")
        self.channels[thread_id] = channel
        record = ThreadRecord(
            channel=channel,
            parent_id=parent_id,
            message_id=thread_id if call.record.kind == "start_thread" else None,
            name=name,
            auto_archive_duration=duration,
            payload=dict(body),
            time=monotonic(),
        )
        self.threads.append(record)
        self._emit("THREAD_CREATE", record.thread_create_payload())
        return record

    def _check_thread_parent(self, channel_id: int) -> None:
        self._refusal(self._refused_threads, channel_id)
        parent = self.channels.get(channel_id)
        if parent is not None and parent.get("type") not in (GUILD_TEXT, 5, 15, 16):
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")

    async def _start_thread(self, call: _Call) -> JsonDict:
        cid = int(call.params["channel_id"])
        mid = int(call.params["message_id"])
        self._check_thread_parent(cid)
        if mid in self.channels:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        starter = self._messages.get(mid)
        if starter is not None and (starter.deleted or starter.channel_id != cid):
            raise DiscordError(404, 10008, "Unknown Message")
        record = self._new_thread(cid, self._body(call), thread_id=mid, type=PUBLIC_THREAD, call=call)
        if starter is not None:
            starter.data["thread"] = dict(record.channel)
            starter.data["flags"] = int(starter.data.get("flags", 0)) | FLAG_HAS_THREAD
        if self.starter_messages:
            guild_id = self._guild_of(cid)
            system = message_payload(
                mid,
                starter.data["author"] if starter is not None else user_payload(None, "someone"),
                "",
                type=TYPE_THREAD_STARTER_MESSAGE,
                message_reference={
                    "type": 0,
                    "channel_id": str(cid),
                    "message_id": str(mid),
                    **({"guild_id": str(guild_id)} if guild_id is not None else {}),
                },
                referenced_message=(
                    {k: v for k, v in starter.data.items() if k != "thread"} if starter is not None else None
                ),
                position=0,
            )
            self._store(FakeMessage(data=system, channel_id=mid, time=monotonic(), seeded=True))
        return dict(record.channel)

    async def _start_thread_bare(self, call: _Call) -> JsonDict:
        cid = int(call.params["channel_id"])
        self._check_thread_parent(cid)
        body = self._body(call)
        kind = int(body.get("type") or PRIVATE_THREAD)
        if kind not in (PUBLIC_THREAD, PRIVATE_THREAD):
            raise _form_error(["type"], "BASE_TYPE_CHOICES", "Value must be one of {11, 12}.")
        record = self._new_thread(cid, body, thread_id=snowflake(), type=kind, call=call)
        return dict(record.channel)

    # ------------------------------------------------------------------ handlers: interactions

    def _interaction(self, interaction_id: int, token: str) -> _Interaction:
        state = self._interactions.get(interaction_id)
        if state is None:
            state = self._interactions[interaction_id] = _Interaction(interaction_id, token)
            self._interaction_tokens[token] = interaction_id
        return state

    def _interaction_by_webhook(self, call: _Call) -> _Interaction:
        iid = self._interaction_tokens.get(call.params["token"])
        if int(call.params["application_id"]) != self.application_id or iid is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        state = self._interactions[iid]
        if state.callback_type is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        return state

    def _callback_answer(self, state: _Interaction, kind: int, message: FakeMessage | None) -> JsonDict:
        interaction: JsonDict = {"id": str(state.id), "type": int((state.payload or {}).get("type", 2))}
        answer: JsonDict = {"interaction": interaction}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
            interaction["response_message_loading"] = message.loading
            interaction["response_message_ephemeral"] = message.ephemeral
            answer["resource"] = {"type": kind, "message": dict(message.data)}
        elif kind in (6, 7, 9):
            answer["resource"] = {"type": kind}
        return answer

    async def _interaction_callback(self, call: _Call) -> Any:
        iid = int(call.params["interaction_id"])
        token = call.params["token"]
        known = self._interactions.get(iid)
        if known is not None and known.token != token:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        timeout = self.interaction_ack_timeout
        if timeout is not None and time.time() - snowflake_time(iid) > timeout:
            raise DiscordError(404, 10062, "Unknown interaction")
        state = self._interaction(iid, token)
        if state.callback_type is not None:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        body = self._body(call)
        kind = body.get("type")
        if kind not in (1, 4, 5, 6, 7, 8, 9, 10, 12):
            raise _form_error(["type"], "BASE_TYPE_CHOICES", "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}.")
        data = body.get("data") or {}
        message: FakeMessage | None = None
        if kind == 4:
            self._check_message({**data, "attachments": data.get("attachments") or call.files})
            message = self._bot_message(state.channel_id, data, files=call.files, interaction=state)
        elif kind == 5:
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            message = self._bot_message(state.channel_id, {}, interaction=state, extra_flags=flags)
        elif kind == 8:
            choices = data.get("choices")
            if not isinstance(choices, list):
                raise _form_error(["data", "choices"], "BASE_TYPE_REQUIRED", "This field is required")
            if len(choices) > MAX_CHOICES:
                raise _form_error(["data", "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        state.callback_type = int(kind)
        if message is not None:
            state.original_id = message.id
        state.responses.append(
            InteractionResponse(iid, "callback", dict(body), monotonic(), message.id if message is not None else None)
        )
        if call.record.query.get("with_response") in ("1", "true", "True"):
            return self._callback_answer(state, int(kind), message)
        return _NO_CONTENT

    def _original(self, state: _Interaction) -> FakeMessage:
        message = self._messages.get(state.original_id) if state.original_id is not None else None
        if message is None or message.deleted:
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _get_original(self, call: _Call) -> JsonDict:
        return dict(self._original(self._interaction_by_webhook(call)).data)

    async def _edit_original(self, call: _Call) -> JsonDict:
        state = self._interaction_by_webhook(call)
        message = self._original(state)
        body = self._body(call)
        self._apply_edit(message, body, files=call.files)
        state.original_edited = True
        state.responses.append(InteractionResponse(state.id, "edit_original", dict(body), monotonic(), message.id))
        return dict(message.data)

    async def _delete_original(self, call: _Call) -> object:
        state = self._interaction_by_webhook(call)
        message = self._original(state)
        message.deleted = True
        state.responses.append(InteractionResponse(state.id, "delete_original", {}, monotonic(), message.id))
        return _NO_CONTENT

    async def _followup(self, call: _Call) -> Any:
        state = self._interaction_by_webhook(call)
        body = self._body(call)
        original = self._messages.get(state.original_id) if state.original_id is not None else None
        if state.callback_type == 5 and original is not None and not state.original_edited and original.loading:
            # The first followup to a deferred response replaces the "thinking" message (whose
            # ephemerality the deferral chose; the followup's other flags apply).
            flags = int(body.get("flags") or 0) & ~FLAG_EPHEMERAL
            self._apply_edit(original, {**body, "flags": flags}, files=call.files)
            state.original_edited = True
            message = original
        else:
            self._check_message({**body, "attachments": body.get("attachments") or call.files})
            message = self._bot_message(state.channel_id, body, files=call.files, interaction=state)
        state.responses.append(InteractionResponse(state.id, "followup", dict(body), monotonic(), message.id))
        if call.record.query.get("wait") in ("1", "true", "True"):
            return dict(message.data)
        return _NO_CONTENT

    async def _edit_followup(self, call: _Call) -> JsonDict:
        state = self._interaction_by_webhook(call)
        message = self._messages.get(int(call.params["message_id"]))
        if message is None or message.deleted or message.interaction_id != state.id:
            raise DiscordError(404, 10008, "Unknown Message")
        body = self._body(call)
        self._apply_edit(message, body, files=call.files)
        if message.id == state.original_id:
            state.original_edited = True
        state.responses.append(InteractionResponse(state.id, "edit_followup", dict(body), monotonic(), message.id))
        return dict(message.data)

    # ------------------------------------------------------------------ handlers: application commands

    def _check_app(self, call: _Call) -> int | None:
        if int(call.params["application_id"]) != self.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        guild = call.params.get("guild_id")
        return None if guild is None else int(guild)

    @staticmethod
    def _check_command(path: list[str | int], item: Any, *, top: bool) -> None:
        if not isinstance(item, Mapping):
            raise _form_error(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        kind = int(item.get("type") or 1)
        name = item.get("name")
        chat_input = not top or kind == 1
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or (chat_input and name != name.lower()):
            code = "APPLICATION_COMMAND_INVALID_NAME"
            raise _form_error([*path, "name"], code, "Command name is invalid")
        description = item.get("description")
        if chat_input:
            if not isinstance(description, str) or not 1 <= len(description) <= 100:
                text = "Must be between 1 and 100 in length."
                raise _form_error([*path, "description"], "BASE_TYPE_BAD_LENGTH", text)
        elif description:
            raise _form_error([*path, "description"], "APPLICATION_COMMAND_INVALID_DESCRIPTION", "Must be empty.")
        options = item.get("options") or []
        if len(options) > MAX_OPTIONS:
            raise _form_error([*path, "options"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        seen: set[str] = set()
        for index, option in enumerate(options):
            FakeDiscord._check_command([*path, "options", index], option, top=False)
            if option["name"] in seen:
                raise _form_error(
                    [*path, "options"], "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique"
                )
            seen.add(option["name"])
            choices = option.get("choices") or []
            if len(choices) > MAX_CHOICES:
                raise _form_error(
                    [*path, "options", index, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )

    async def _sync_commands(self, call: _Call) -> list[JsonDict]:
        guild_id = self._check_app(call)
        payload = call.body
        if not isinstance(payload, list):
            raise _form_error([], "BASE_TYPE_ARRAY", "Must be an array.")
        if len(payload) > 100:
            raise _form_error([], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        seen: set[tuple[str, int]] = set()
        for index, item in enumerate(payload):
            self._check_command([index], item, top=True)
            key = (str(item["name"]), int(item.get("type") or 1))
            if key in seen:
                code = "APPLICATION_COMMANDS_DUPLICATE_NAME"
                raise _form_error([index, "name"], code, "Application command names must be unique")
            seen.add(key)
        self.commands_synced.append(CommandSync(guild_id, [dict(c) for c in payload], monotonic()))
        served: list[JsonDict] = []
        for item in payload:
            kind = int(item.get("type") or 1)
            perms = item.get("default_member_permissions")
            key3 = (guild_id, str(item["name"]), kind)
            cid = self._command_ids.get(key3) or snowflake()
            self._command_ids[key3] = cid
            command: JsonDict = {
                "id": str(cid),
                "application_id": str(self.application_id),
                "version": str(snowflake()),
                "type": kind,
                "name": item["name"],
                "name_localizations": item.get("name_localizations"),
                "description": item.get("description", ""),
                "description_localizations": item.get("description_localizations"),
                "options": list(item.get("options") or []),
                "default_member_permissions": None if perms is None else str(perms),
                "dm_permission": item.get("dm_permission", True),
                "contexts": item.get("contexts"),
                "integration_types": item.get("integration_types", [0]),
                "nsfw": bool(item.get("nsfw", False)),
            }
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            served.append(command)
        self.commands[guild_id] = served
        return [dict(c) for c in served]

    async def _get_commands(self, call: _Call) -> list[JsonDict]:
        guild_id = self._check_app(call)
        return [dict(c) for c in self.commands.get(guild_id, [])]


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
