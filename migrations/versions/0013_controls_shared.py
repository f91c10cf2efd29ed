"""Conversation controls shared by every instance: the answer being written in a thread and a
Stop requested for it (any instance may receive the click); which message carries a Discord
answer's buttons (so a restart or another instance takes them off); and when Regenerate put
an answered turn back to pending (so recovery answers it if the instance dies).

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:  # nullable: no table rewrite on PostgreSQL
        batch.add_column(sa.Column("running_answer", sa.String(32), nullable=True))
        batch.add_column(sa.Column("running_asker", sa.String(64), nullable=True))
        batch.add_column(sa.Column("stop_requested_by", sa.String(64), nullable=True))
    with op.batch_alter_table("shown_messages") as batch:
        batch.add_column(sa.Column("channel_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("has_controls", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("requeued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("requeued_at")
    with op.batch_alter_table("shown_messages") as batch:
        batch.drop_column("has_controls")
        batch.drop_column("channel_id")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("stop_requested_by")
        batch.drop_column("running_asker")
        batch.drop_column("running_answer")
