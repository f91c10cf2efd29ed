"""Spend limits, spend totals, turns in flight, rate events and once-only notices; Slack OAuth
installs (slack-sdk's installation and state store tables, token columns wide enough for
encrypted tokens).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.schema import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
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
    op.create_table(
        "departed_workspaces",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("left_at", UTCDateTime, nullable=False),
    )
    for name, with_user in (("slack_installations", True), ("slack_bots", False)):
        op.create_table(name, *_installation_columns(with_user=with_user))
    op.create_index(
        "slack_installations_idx", "slack_installations",
        ["client_id", "enterprise_id", "team_id", "user_id", "installed_at"],
    )
    op.create_index("slack_bots_idx", "slack_bots", ["client_id", "enterprise_id", "team_id", "installed_at"])
    op.create_table(
        "slack_oauth_states",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("expire_at", sa.DateTime, nullable=False),
    )


def _installation_columns(*, with_user: bool) -> list[sa.Column]:  # type: ignore[type-arg]
    token = 1000  # an encrypted token is longer than the token
    columns = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32)),
        sa.Column("enterprise_name", sa.String(200)),
    ]
    if with_user:
        columns.append(sa.Column("enterprise_url", sa.String(200)))
    columns += [
        sa.Column("team_id", sa.String(32)),
        sa.Column("team_name", sa.String(200)),
        sa.Column("bot_token", sa.String(token)),
        sa.Column("bot_id", sa.String(32)),
        sa.Column("bot_user_id", sa.String(32)),
        sa.Column("bot_scopes", sa.String(1000)),
        sa.Column("bot_refresh_token", sa.String(token)),
        sa.Column("bot_token_expires_at", sa.DateTime),
    ]
    if with_user:
        columns += [
            sa.Column("user_id", sa.String(32), nullable=False),
            sa.Column("user_token", sa.String(token)),
            sa.Column("user_scopes", sa.String(1000)),
            sa.Column("user_refresh_token", sa.String(token)),
            sa.Column("user_token_expires_at", sa.DateTime),
            sa.Column("incoming_webhook_url", sa.String(200)),
            sa.Column("incoming_webhook_channel", sa.String(200)),
            sa.Column("incoming_webhook_channel_id", sa.String(200)),
            sa.Column("incoming_webhook_configuration_url", sa.String(200)),
        ]
    columns.append(sa.Column("is_enterprise_install", sa.Boolean, nullable=False, server_default=sa.false()))
    if with_user:
        columns.append(sa.Column("token_type", sa.String(32)))
    columns.append(sa.Column("installed_at", sa.DateTime, nullable=False))
    return columns


def downgrade() -> None:
    op.drop_table("departed_workspaces")
    op.drop_table("slack_oauth_states")
    op.drop_table("slack_bots")
    op.drop_table("slack_installations")
    op.drop_table("spend_notices")
    op.drop_table("rate_events")
    op.drop_table("spend_holds")
    op.drop_table("spend_totals")
    op.drop_table("spend_limits")
