"""The first schema: conversations, messages, channel settings, claimed events, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.schema import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("context_start_id", sa.BigInteger, nullable=True),
        sa.Column("trim_noticed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_activity_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("platform", "workspace_id", "channel_id", "thread_id", name="uq_conversations_thread"),
    )
    op.create_index("ix_conversations_last_activity_at", "conversations", ["last_activity_at"])
    op.create_index("ix_conversations_channel", "conversations", ["platform", "workspace_id", "channel_id"])

    op.create_table(
        "messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id",
            sa.BigInteger,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("author", sa.String(128), nullable=True),
        sa.Column("author_id", sa.String(64), nullable=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("platform_message_id", sa.String(64), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("stop_reason", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id", "id"])

    op.create_table(
        "channel_settings",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("channel_id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("system_prompt", sa.Text, nullable=True),
        sa.Column("max_tokens", sa.Integer, nullable=True),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )

    op.create_table(
        "processed_events",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("seen_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_processed_events_seen_at", "processed_events", ["seen_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("setting", sa.String(64), nullable=False),
        sa.Column("old_value", sa.Text, nullable=True),
        sa.Column("new_value", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_log", "processed_events", "channel_settings", "messages", "conversations"):
        op.drop_table(table)
