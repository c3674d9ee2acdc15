"""deliveries: which worker process holds a row's lease

A worker process now claims an endpoint's due rows ahead of sending them (its own queue, drained at
most ``webhook_endpoint_concurrency`` at a time), so a live lease no longer means "in flight". The
per-endpoint cap holds across processes by ownership instead: an endpoint whose live leases belong
to another process is not claimable (``hub/delivery/claims.py``). ``lease_owner`` names
the process; it means nothing once ``leased_until`` has passed.

Revision ID: 0005_lease_owner
Revises: 0004_ops
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_lease_owner"
down_revision: str | None = "0004_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("lease_owner", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "lease_owner")
