"""webhooks: indexes for per-endpoint claims and the in-flight count

The delivery claim walks endpoints that have pending rows and takes each one's oldest due rows
(``ix_deliveries_endpoint_pending``), and counts each endpoint's unexpired leases to enforce the
per-endpoint concurrency cap (``ix_deliveries_leased``: only in-flight rows carry a lease, so it
stays tiny however long the ledger grows).

Revision ID: 0003
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_endpoint_pending",
        "deliveries",
        ["endpoint_id", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_deliveries_leased",
        "deliveries",
        ["endpoint_id"],
        unique=False,
        postgresql_where=sa.text("leased_until IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_leased", table_name="deliveries", postgresql_where=sa.text("leased_until IS NOT NULL"))
    op.drop_index(
        "ix_deliveries_endpoint_pending", table_name="deliveries", postgresql_where=sa.text("status = 'pending'")
    )
