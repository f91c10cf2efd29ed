"""Threads where a reply came before the mention that starts the conversation: only their
mention's answer reads the thread back (before, every mention starting a conversation did).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "early_replies",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("channel_id", sa.String(64), primary_key=True),
        sa.Column("thread_id", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_early_replies_seen_at", "early_replies", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_early_replies_seen_at", "early_replies")
    op.drop_table("early_replies")
