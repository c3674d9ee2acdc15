"""connections: platform pull sync state and the webhook subscriptions the hub made

``pull`` marks a connection whose settings hold platform credentials (subscribe, backfill, reconcile);
``sync`` is its state (``hub.platforms.sync_state``), ``subscriptions`` what the hub registered at
the platform, ``sync_next_at`` when the scheduler runs its next reconcile (indexed for that query).

Revision ID: 0009_connection_sync
Revises: 0008_order_version
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_connection_sync"
down_revision: str | None = "0008_order_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("connections", sa.Column("pull", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column(
        "connections", sa.Column("sync", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    op.add_column(
        "connections",
        sa.Column("subscriptions", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    op.add_column("connections", sa.Column("sync_next_at", sa.DateTime(timezone=True), nullable=True))
    # chat-agent connections with pull settings were pulled by their own cron before: now by the engine
    op.execute(
        "UPDATE connections SET pull = true WHERE source = 'chat_agent' AND deleted_at IS NULL "
        "AND settings ? 'base_url' AND settings ? 'api_key'"
    )
    op.create_index(
        "ix_connections_sync_due",
        "connections",
        ["sync_next_at"],
        postgresql_where=sa.text("pull AND deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_connections_sync_due", table_name="connections")
    for column in ("sync_next_at", "subscriptions", "sync", "pull"):
        op.drop_column("connections", column)
