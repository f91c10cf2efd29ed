"""Shown messages: the platform ids of the messages each answer was shown in, so a reply
to any of them continues its conversation after a restart and on any instance.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shown_messages",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("platform_message_id", sa.String(64), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.BigInteger,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("answer_id", sa.BigInteger, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_shown_messages_conversation_id", "shown_messages", ["conversation_id"])
    op.create_index("ix_shown_messages_answer_id", "shown_messages", ["answer_id"])


def downgrade() -> None:
    op.drop_index("ix_shown_messages_answer_id", "shown_messages")
    op.drop_index("ix_shown_messages_conversation_id", "shown_messages")
    op.drop_table("shown_messages")
