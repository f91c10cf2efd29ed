"""Conversation controls: answers superseded by Regenerate, and feedback votes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "answer_feedback",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.BigInteger, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("positive", sa.Boolean, nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("message_id", "user_id", name="uq_answer_feedback_vote"),
    )
    op.create_index(
        "ix_answer_feedback_channel", "answer_feedback", ["platform", "workspace_id", "channel_id", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_answer_feedback_channel", "answer_feedback")
    op.drop_table("answer_feedback")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("superseded")
