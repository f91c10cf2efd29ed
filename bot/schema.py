"""Tables of the service (see DESIGN.md, Storage). Migrations in `migrations/` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware values")
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("workspace_id", String(64), nullable=False),
    Column("channel_id", String(64), nullable=False),
    Column("thread_id", String(64), nullable=False),
    # Turns before this message id are kept but no longer sent to Claude
    # (trimmed to the context window, or a fresh start with `/claude new`).
    Column("context_start_id", BigInteger, nullable=True),
    Column("trim_noticed", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_activity_at", UTCDateTime, nullable=False),
    # The instance answering in this thread right now (see bot/locks.py), and since when.
    Column("answering_by", String(64), nullable=True),
    Column("answering_since", UTCDateTime, nullable=True),
    # A mention that started the conversation: the thread's replies after it are still to be
    # read back (they may have overtaken its delivery); cleared once they were.
    Column("read_back_from", String(64), nullable=True),
    # The answer being written in this thread (a random id from the instance writing it), who
    # asked it, and who asked to stop it: a Stop reaches any instance (see bot/running.py).
    Column("running_answer", String(32), nullable=True),
    Column("running_asker", String(64), nullable=True),
    Column("stop_requested_by", String(64), nullable=True),
    UniqueConstraint("platform", "workspace_id", "channel_id", "thread_id", name="uq_conversations_thread"),
    Index("ix_conversations_last_activity_at", "last_activity_at"),
    Index("ix_conversations_channel", "platform", "workspace_id", "channel_id"),
)

# Threads where a person replied before the thread was a conversation (the reply was not
# taken then): the mention that starts the conversation reads its thread's replies back.
early_replies = Table(
    "early_replies",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("workspace_id", String(64), primary_key=True),
    Column("channel_id", String(64), primary_key=True),
    Column("thread_id", String(64), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
    Index("ix_early_replies_seen_at", "seen_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "conversation_id",
        BigInteger,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", String(16), nullable=False),
    # Where the turn stands in the conversation: its own id for a user turn, the id
    # of the last user turn it answers for an assistant turn (`rank` 1: right after
    # it), the id of the mention it precedes for thread context (`rank` -1). User
    # turns are stored the moment they arrive, so ids alone do not give the order.
    Column("position", BigInteger, nullable=True),  # None: the turn's own id
    Column("rank", Integer, nullable=False, default=0),
    Column("author", String(128), nullable=True),
    Column("author_id", String(64), nullable=True),
    Column("content", Text, nullable=False),
    Column("platform_message_id", String(64), nullable=True),
    Column("model", String(128), nullable=True),
    Column("stop_reason", String(64), nullable=True),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cache_read_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    # Server tool uses of the answer (priced per use; see bot/pricing.py).
    Column("web_searches", Integer, nullable=False, default=0),
    Column("web_fetches", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    # When the platform says a user turn was posted (None: unknown); orders the turns still
    # waiting for their answer (see policy.in_posting_order).
    Column("sent_at", UTCDateTime, nullable=True),
    # A user turn's answer: "pending" until it is answered or an error was shown ("failed");
    # None for answers and thread context (and for turns stored before revision 0003).
    Column("state", String(16), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),  # answers started for it
    Column("owner", String(64), nullable=True),  # the instance answering it (see `instances`)
    # An answer replaced by Regenerate: kept (it is still in the chat) but never resent to Claude.
    Column("superseded", Boolean, nullable=False, default=False, server_default=false()),
    # When Regenerate put an answered user turn back to pending (recovery times it from then).
    Column("requeued_at", UTCDateTime, nullable=True),
    Index("ix_messages_conversation_id", "conversation_id", "id"),
    Index("ix_messages_state", "state", "created_at"),
    Index("ix_messages_platform_message_id", "conversation_id", "platform_message_id"),
    Index("ix_messages_platform_message", "platform_message_id"),  # deletions and edits
    Index("ix_messages_created_at", "created_at"),  # RETENTION_DAYS
)

# The platform's ids of the messages an answer was shown in, where replying to one of them
# continues the conversation (Discord's reply mode, where the bot may not open threads).
# In the database, so the link survives restarts and holds on every instance and shard.
shown_messages = Table(
    "shown_messages",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("platform_message_id", String(64), primary_key=True),
    Column(
        "conversation_id",
        BigInteger,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # The stored answer shown (None: a note alone, e.g. an error); forgetting it forgets the link.
    Column("answer_id", BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # The platform channel of the message, and whether it carries its answer's buttons now
    # (Discord: the thread's latest answer; older ones lose theirs, on any instance).
    Column("channel_id", String(64), nullable=True),
    Column("has_controls", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_shown_messages_conversation_id", "conversation_id"),
    Index("ix_shown_messages_answer_id", "answer_id"),
)

channel_settings = Table(
    "channel_settings",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("workspace_id", String(64), primary_key=True),
    # '*' is the workspace-wide row.
    Column("channel_id", String(64), primary_key=True),
    Column("model", String(128), nullable=True),
    Column("system_prompt", Text, nullable=True),
    Column("max_tokens", Integer, nullable=True),
    # Claude's own tools and thinking (see bot/claude/request.py).
    Column("web", Boolean, nullable=True),
    Column("web_allowed_domains", Text, nullable=True),  # comma-separated
    Column("web_blocked_domains", Text, nullable=True),
    Column("effort", String(16), nullable=True),
    Column("fallback_model", String(128), nullable=True),
    Column("updated_by", String(128), nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
    Index("ix_processed_events_seen_at", "seen_at"),
)

# Each running instance says it is alive every few seconds; a pending turn whose owner
# has gone quiet was being answered by a process that died, and is answered again.
instances = Table(
    "instances",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("workspace_id", String(64), nullable=False),
    Column("channel_id", String(64), nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("setting", String(64), nullable=False),
    Column("old_value", Text, nullable=True),
    Column("new_value", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# Files attached to user turns: what was sent to Claude, never the bytes. A row whose turn
# (or conversation) was deleted keeps its `file_id` with `message_id` NULL until the upload
# is deleted at the Files API too (bot/files/service.py `sweep`).
attachments = Table(
    "attachments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", BigInteger, ForeignKey("messages.id", ondelete="SET NULL"), nullable=True),
    Column("conversation_id", BigInteger, ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True),
    Column("platform_file_id", String(128), nullable=False),
    Column("name", String(255), nullable=False),
    Column("source_url", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("file_id", String(128), nullable=True),  # the Files API's id; None: sent inline
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_attachments_message_id", "message_id"),
    Index("ix_attachments_conversation_sha", "conversation_id", "sha256"),
    Index("ix_attachments_file_id", "file_id"),
)

# One vote per person per answer (a second click changes it); the answer's model is kept so
# the counts survive the answer being erased.
answer_feedback = Table(
    "answer_feedback",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("workspace_id", String(64), nullable=False),
    Column("channel_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("positive", Boolean, nullable=False),
    Column("model", String(128), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("message_id", "user_id", name="uq_answer_feedback_vote"),
    Index("ix_answer_feedback_channel", "platform", "workspace_id", "channel_id", "updated_at"),
)


# Spend limits set with `/claude budget` (see bot/budgets.py): one row per scope; a channel's
# row has its channel id, the user and workspace rows '*'. micros None: "off".
spend_limits = Table(
    "spend_limits",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("workspace_id", String(64), primary_key=True),
    Column("scope", String(16), primary_key=True),  # channel, user, workspace
    Column("scope_id", String(64), primary_key=True),
    Column("period", String(8), nullable=False),  # day, month
    Column("micros", BigInteger, nullable=True),
    Column("updated_by", String(128), nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# What answers cost, per scope and period (`2026-11-30`, `2026-11`), in micro-dollars.
spend_totals = Table(
    "spend_totals",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("workspace_id", String(64), primary_key=True),
    Column("scope", String(16), primary_key=True),
    Column("scope_id", String(64), primary_key=True),
    Column("period_key", String(16), primary_key=True),
    Column("micros", BigInteger, nullable=False),
)

# Turns in flight: the most each may cost, counted against the limits until it ends (or,
# its instance dead, until it expires).
spend_holds = Table(
    "spend_holds",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("workspace_id", String(64), nullable=False),
    Column("channel_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("micros", BigInteger, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_spend_holds_workspace", "platform", "workspace_id", "expires_at"),
)

# One row per turn started, for the per-minute rate limits (rows older than a minute are dropped).
rate_events = Table(
    "rate_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("platform", String(32), nullable=False),
    Column("workspace_id", String(64), nullable=False),
    Column("channel_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_rate_events_workspace", "platform", "workspace_id", "at"),
)

# Notices said at most once per key until `until` (a limit's line per thread and period,
# the 80% note, "slow down").
spend_notices = Table(
    "spend_notices",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("until", UTCDateTime, nullable=False),
    Index("ix_spend_notices_until", "until"),
)


# Workspaces the app was removed from (Slack `app_uninstalled`), and when: their conversations
# are deleted after UNINSTALL_GRACE_DAYS unless the app is installed there again.
departed_workspaces = Table(
    "departed_workspaces",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("workspace_id", String(64), primary_key=True),
    Column("left_at", UTCDateTime, nullable=False),
)

# Slack OAuth installs (HTTP mode with SLACK_CLIENT_ID): slack-sdk's SQLAlchemy installation and
# state stores read and write these three tables with their own definitions; the columns are
# theirs (bot/ may not import slack_sdk), except that token columns are wide enough for the
# tokens' encryption (adapters/slack/oauth.py). Timestamps are naive UTC, as slack-sdk writes them.
_TOKEN = 1000


def _installation_columns(*, with_user: bool) -> list[Any]:
    columns: list[Any] = [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("client_id", String(32), nullable=False),
        Column("app_id", String(32), nullable=False),
        Column("enterprise_id", String(32)),
        Column("enterprise_name", String(200)),
    ]
    if with_user:
        columns.append(Column("enterprise_url", String(200)))
    columns += [
        Column("team_id", String(32)),
        Column("team_name", String(200)),
        Column("bot_token", String(_TOKEN)),
        Column("bot_id", String(32)),
        Column("bot_user_id", String(32)),
        Column("bot_scopes", String(1000)),
        Column("bot_refresh_token", String(_TOKEN)),
        Column("bot_token_expires_at", DateTime),
    ]
    if with_user:
        columns += [
            Column("user_id", String(32), nullable=False),
            Column("user_token", String(_TOKEN)),
            Column("user_scopes", String(1000)),
            Column("user_refresh_token", String(_TOKEN)),
            Column("user_token_expires_at", DateTime),
            Column("incoming_webhook_url", String(200)),
            Column("incoming_webhook_channel", String(200)),
            Column("incoming_webhook_channel_id", String(200)),
            Column("incoming_webhook_configuration_url", String(200)),
        ]
    columns.append(Column("is_enterprise_install", Boolean, default=False, nullable=False))
    if with_user:
        columns.append(Column("token_type", String(32)))
    columns.append(Column("installed_at", DateTime, nullable=False))
    return columns


slack_installations = Table(
    "slack_installations",
    metadata,
    *_installation_columns(with_user=True),
    Index("slack_installations_idx", "client_id", "enterprise_id", "team_id", "user_id", "installed_at"),
)

slack_bots = Table(
    "slack_bots",
    metadata,
    *_installation_columns(with_user=False),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

slack_oauth_states = Table(
    "slack_oauth_states",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)
