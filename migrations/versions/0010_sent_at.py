"""A user turn's time on the platform, so turns are ordered as people posted them even when
an earlier message's delivery was retried after a later one was stored; and the mention
whose thread replies are still to be read back (they may have overtaken its delivery).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:  # nullable: no table rewrite on PostgreSQL
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("read_back_from", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("read_back_from")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("sent_at")
