"""indexes for the ops view and /metrics

Revision ID: 0004_ops
Revises: 0002

The ops page refreshes every 2 s and Prometheus scrapes every process; without these every refresh
would scan whole tables (1.4 GB of inbound events at a million rows). With them:

* windows ("last 5 minutes", "per minute over the last hour") are index range scans on time, and
  so is the "tail" of the lifetime counters (``hub/ops/counts.py`` recounts the history
  only every five minutes);
* "the latest failures" and "how many failed" read partial indexes holding only failed rows.

Time indexes are append-only at the right edge, so their cost on the ingest and delivery hot paths
is small; the partial ones are touched only when something fails.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_ops"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FAILED = sa.text("status = 'failed'")


def upgrade() -> None:
    op.create_index("ix_inbound_received_at", "inbound_events", ["received_at"])
    op.create_index("ix_inbound_failed", "inbound_events", ["processed_at"], postgresql_where=_FAILED)
    op.create_index("ix_deliveries_created", "deliveries", ["created"])
    op.create_index("ix_deliveries_failed", "deliveries", ["updated"], postgresql_where=_FAILED)
    op.create_index("ix_delivery_attempts_started", "delivery_attempts", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_started", table_name="delivery_attempts")
    op.drop_index("ix_deliveries_failed", table_name="deliveries")
    op.drop_index("ix_deliveries_created", table_name="deliveries")
    op.drop_index("ix_inbound_failed", table_name="inbound_events")
    op.drop_index("ix_inbound_received_at", table_name="inbound_events")
