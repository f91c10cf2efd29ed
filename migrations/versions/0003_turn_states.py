"""Turn states and thread leases: a user turn is pending until answered or failed, with its
owner instance; a conversation records which instance is answering in it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Turns stored before this revision have no state: nothing will try to answer them again.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
    op.create_index("ix_messages_state", "messages", ["state", "created_at"])
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("answering_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("answering_since", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("answering_since")
        batch.drop_column("answering_by")
    op.drop_table("instances")
    op.drop_index("ix_messages_state", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("owner")
        batch.drop_column("attempts")
        batch.drop_column("state")
