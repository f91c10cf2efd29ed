"""Indexes for retention (messages by age) and for deletions and edits (a message by its
platform id), built without blocking writes.

On PostgreSQL `messages` is the large table: a plain CREATE INDEX locks out every write
(replies included) for as long as the build takes, so the indexes are built CONCURRENTLY,
which must run outside a transaction (Alembic's autocommit block; the revisions before
this one are committed first). A concurrent build that was interrupted leaves an invalid
index behind; it is dropped and built again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_messages_created_at": ["created_at"],
    "ix_messages_platform_message": ["platform_message_id"],
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, columns in INDEXES.items():
            op.create_index(name, "messages", columns)
        return
    with op.get_context().autocommit_block():
        for name, columns in INDEXES.items():
            if _is_invalid(name):
                op.drop_index(name, "messages", postgresql_concurrently=True)
            op.create_index(name, "messages", columns, postgresql_concurrently=True, if_not_exists=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name in INDEXES:
            op.drop_index(name, "messages")
        return
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.drop_index(name, "messages", postgresql_concurrently=True, if_exists=True)


def _is_invalid(name: str) -> bool:
    query = sa.text(
        "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :name AND pg_catalog.pg_table_is_visible(c.oid)"
    )
    return bool(op.get_bind().execute(query, {"name": name}).scalar())
