"""Turn positions: user turns are stored on arrival, answers placed after what they answer.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing turns were stored in order: a NULL position means "at its own id".
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("position", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("rank", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_messages_platform_message_id", "messages", ["conversation_id", "platform_message_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_platform_message_id", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("rank")
        batch.drop_column("position")
