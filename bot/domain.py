"""The core's vocabulary: plain, platform-free values.

Adapters translate platform events into these (nothing here knows about Slack
timestamps, Discord snowflakes or guilds); the store persists and returns them;
the prompt and policy rules compute on them. A leaf module: it imports nothing
from the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime


def _check_key_parts(key: object) -> None:
    """Each part of a key is non-empty and free of ':', so the key prints and parses back."""
    for part in fields(key):  # type: ignore[arg-type]
        value = getattr(key, part.name)
        if not value or ":" in value:
            raise ValueError(f"{part.name} must be non-empty and contain no ':' (got {value!r})")


@dataclass(frozen=True, slots=True)
class ChannelKey:
    """Where settings live: a channel (for a Discord thread, its parent channel)."""

    platform: str
    workspace_id: str
    channel_id: str

    def __post_init__(self) -> None:
        _check_key_parts(self)

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
        _check_key_parts(self)

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
class FileRef:
    """A file on a message, as the platform describes it; its bytes are fetched through the
    event's surface when the turn is answered (and again if the Files API lost its copy)."""

    platform_file_id: str
    name: str
    url: str  # where the platform serves it (a local path for the console)
    size: int | None = None  # as declared by the platform; the download checks it again


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file stored with a turn: what Claude is sent instead of bytes (see bot/files/)."""

    source: FileRef
    kind: str  # "image", "pdf" or "text"
    media_type: str
    size: int
    sha256: str
    tokens: int  # its estimated share of the context window
    file_id: str | None  # the Files API's id; None where the endpoint has no Files API


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message a person posted, already cleaned of the bot's own mention.

    `is_thread_reply` says it was posted inside an existing thread rather than
    starting one: only then can there be earlier messages the bot has not seen.
    Config live at `thread.channel` (for a Discord thread, the adapter puts
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
    redelivered: bool = False  # the platform delivered it again (its first delivery failed)
    sent_at: datetime | None = None  # when the platform says it was posted
    thread_started_at: datetime | None = None  # when the thread's first message was (None: unknown)
    files: tuple[FileRef, ...] = ()
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def channel(self) -> ChannelKey:
        return self.thread.channel


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """A person's message as the platform names it when it is deleted or edited: enough to
    find its stored turn. `channel_id` is where it was posted (a channel, or on Discord a
    thread, which a conversation stores as its thread id); `event_id` is the id its delivery
    is claimed under, so a delivery arriving after the deletion is not taken."""

    platform: str
    workspace_id: str
    channel_id: str
    message_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class CommandInvocation:
    """`/claude <name> <argument>` as typed, with who typed it and where.

    `thread` is set where a command acts on one conversation (`new` in a DM, `forget`
    in a DM or a Discord thread); Slack's slash commands carry no thread.
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
    files: tuple[FileRef, ...] = ()


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """The effective settings of a channel (see `policy.effective_settings`)."""

    model: str
    system_prompt: str
    max_tokens: int
    web: bool = False  # web search and web fetch (Anthropic's server tools)
    web_allowed_domains: str | None = None  # comma-separated; only these (or never the blocked ones)
    web_blocked_domains: str | None = None
    effort: str | None = None  # low, medium, high, max; None: the model's default
    fallback_model: str | None = None  # answers once when the channel's model refuses


SETTING_NAMES = (
    "model", "system_prompt", "max_tokens",
    "web", "web_allowed_domains", "web_blocked_domains", "effort", "fallback_model",
)


@dataclass(frozen=True, slots=True)
class StoredTurn:
    id: int
    role: str  # "user" or "assistant"
    author: str | None
    content: str
    position: int | None = None  # see schema.messages; None: at its own id
    message_id: str | None = None  # the platform's id of a user turn
    stop_reason: str | None = None  # how an answer ended ("refusal": never resent)
    sent_at: datetime | None = None  # a user turn's time on the platform
    attachments: tuple[Attachment, ...] = ()

    @property
    def order(self) -> int:
        """Where the turn stands: turns sort by (order, rank, id)."""
        return self.id if self.position is None else self.position


@dataclass(frozen=True, slots=True)
class History:
    """The turns of a conversation that are still sent to Claude."""

    turns: list[StoredTurn]
    trim_noticed: bool  # the person was already told that older turns were left out
    read_back_from: str | None = None  # the mention whose later thread replies are still to be read
    replies_came_early: bool = False  # replies came before the thread was a conversation (not taken then)
    has_attachments: bool = True  # some turn has files (False: known to have none, nothing to look up)


@dataclass(frozen=True, slots=True)
class OrphanedTurn:
    """A user turn still waiting for its answer whose instance died while answering it."""

    id: int
    thread: ThreadKey
    message_id: str  # the platform's id of the message
    author: str
    author_id: str
    text: str
    created_at: datetime
    attempts: int  # answers started for it so far


@dataclass(frozen=True, slots=True)
class Progress:
    """What Claude is doing while no text comes: `thinking`, `searching` the web for
    `detail` (the query), `fetching` `detail` (a URL), or `found` results (`detail`: their
    titles, one per line). Shown by the platform, never stored."""

    kind: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    web_searches: int = 0  # server tool uses, priced per use
    web_fetches: int = 0

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.web_searches + other.web_searches,
            self.web_fetches + other.web_fetches,
        )


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """One model's share of a channel's usage over a period."""

    model: str
    turns: int
    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class PruneResult:
    conversations: int
    messages: int
    events: int
    expired: int = 0  # messages older than RETENTION_DAYS, deleted from threads still in use


def now() -> datetime:
    return datetime.now(UTC)
