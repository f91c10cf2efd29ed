"""Claude's own tools per channel: web tools on or off, their domains, the thinking effort
and the fallback model; each answer's server tool uses (searches, fetches) for pricing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel_settings") as batch:
        batch.add_column(sa.Column("web", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("web_allowed_domains", sa.Text, nullable=True))
        batch.add_column(sa.Column("web_blocked_domains", sa.Text, nullable=True))
        batch.add_column(sa.Column("effort", sa.String(16), nullable=True))
        batch.add_column(sa.Column("fallback_model", sa.String(128), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("web_searches", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("web_fetches", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("web_fetches")
        batch.drop_column("web_searches")
    with op.batch_alter_table("channel_settings") as batch:
        for name in ("fallback_model", "effort", "web_blocked_domains", "web_allowed_domains", "web"):
            batch.drop_column(name)
