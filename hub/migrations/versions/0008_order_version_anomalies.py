"""orders: ``version`` (1 on creation, +1 on every stored change) and ``anomalies`` (flags on the order)

``version`` lets a webhook receiver that gets two events out of order keep the higher one.
``anomalies`` lists what the hub noticed about a source's data without refusing it (a negative total
kept as the platform stated it, a source clock from the future capped at receipt + skew).

Revision ID: 0008_order_version
Revises: 0007_lease_index
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008_order_version"
down_revision: str | None = "0007_lease_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")))
    op.add_column("orders", sa.Column("anomalies", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")))


def downgrade() -> None:
    op.drop_column("orders", "anomalies")
    op.drop_column("orders", "version")
