"""Spend limits, spend totals, turns in flight, rate events and once-only notices.

Revision ID: 0009
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.schema import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "spend_limits",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("micros", sa.BigInteger, nullable=True),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "spend_totals",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(64), primary_key=True),
        sa.Column("period_key", sa.String(16), primary_key=True),
        sa.Column("micros", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "spend_holds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("micros", sa.BigInteger, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_spend_holds_workspace", "spend_holds", ["platform", "workspace_id", "expires_at"])
    op.create_table(
        "rate_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_rate_events_workspace", "rate_events", ["platform", "workspace_id", "at"])
    op.create_table(
        "spend_notices",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("until", UTCDateTime, nullable=False),
    )
    op.create_index("ix_spend_notices_until", "spend_notices", ["until"])


def downgrade() -> None:
    op.drop_table("spend_notices")
    op.drop_table("rate_events")
    op.drop_table("spend_holds")
    op.drop_table("spend_totals")
    op.drop_table("spend_limits")
