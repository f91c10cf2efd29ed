"""The core's vocabulary: plain, platform-free values the adapters translate into.

Nothing here knows about Slack timestamps, Discord snowflakes or guilds; an
adapter maps those onto these fields and the core never sees a raw payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def _check_part(name: str, value: str) -> None:
    if not value or ":" in value:
        raise ValueError(f"{name} must be non-empty and contain no ':' (got {value!r})")


@dataclass(frozen=True, slots=True)
class ChannelKey:
    """Where settings live: a channel (for a Discord thread, its parent channel)."""

    platform: str
    workspace_id: str
    channel_id: str

    def __post_init__(self) -> None:
        _check_part("platform", self.platform)
        _check_part("workspace_id", self.workspace_id)
        _check_part("channel_id", self.channel_id)

    @property
    def workspace(self) -> ChannelKey:
        """The workspace-wide settings row: a channel id of '*'."""
        return ChannelKey(self.platform, self.workspace_id, "*")

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace_id}:{self.channel_id}"


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """The identity of one conversation; prints as `slack:T1:C1:1712345.678` and parses back."""

    platform: str
    workspace_id: str
    channel_id: str
    thread_id: str

    def __post_init__(self) -> None:
        _check_part("platform", self.platform)
        _check_part("workspace_id", self.workspace_id)
        _check_part("channel_id", self.channel_id)
        _check_part("thread_id", self.thread_id)

    @property
    def channel(self) -> ChannelKey:
        return ChannelKey(self.platform, self.workspace_id, self.channel_id)

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace_id}:{self.channel_id}:{self.thread_id}"

    @classmethod
    def parse(cls, text: str) -> ThreadKey:
        parts = text.split(":")
        if len(parts) != 4:
            raise ValueError(f"not a thread key: {text!r}")
        return cls(*parts)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who spoke or ran a command."""

    platform: str
    user_id: str
    display_name: str
    is_bot: bool = False

    @property
    def qualified_id(self) -> str:
        """`slack:U123`: the form ADMIN_USER_IDS lists."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message a person posted, already cleaned of the bot's own mention.

    `is_thread_reply` says it was posted inside an existing thread rather than
    starting one: only then can there be earlier messages the bot has not seen.
    Settings live at `thread.channel` (for a Discord thread, the adapter puts
    the parent channel there).
    """

    thread: ThreadKey
    event_id: str
    message_id: str
    actor: Actor
    text: str
    is_direct: bool = False
    mentions_bot: bool = False
    is_thread_reply: bool = False
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def channel(self) -> ChannelKey:
        return self.thread.channel


@dataclass(frozen=True, slots=True)
class AcceptedTurn:
    """A message the core has stored as a turn and will answer."""

    message: IncomingMessage
    needs_thread_context: bool = False  # summoned into a thread mid-way: bring its earlier messages


@dataclass(frozen=True, slots=True)
class CommandInvocation:
    """`/claude <name> <argument>` as typed, with who typed it and where.

    `thread` is set where a command acts on one conversation (`new` in a DM).
    """

    channel: ChannelKey
    actor: Actor
    text: str
    thread: ThreadKey | None = None
    is_direct: bool = False


@dataclass(frozen=True, slots=True)
class ContextMessage:
    """An earlier message of a thread the bot was summoned into mid-way."""

    author: str
    text: str
    is_bot: bool = False
