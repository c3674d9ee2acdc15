"""deliveries: the live-lease index carries the lease's end

A claim checks that no other worker process holds live leases on an endpoint
(``leased_until > now()``). With only ``endpoint_id`` in ``ix_deliveries_leased``, right after a
burst (statistics not yet updated) the planner preferred scanning every row of the endpoint through
another index: 5–10 ms per claim with 20,000 rows queued. With ``leased_until`` in the key the whole
test is an index condition on an index that holds only leased rows.

Revision ID: 0007_lease_index
Revises: 0006_lock_orders
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_lease_index"
down_revision: str | None = "0006_lock_orders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEASED = sa.text("leased_until IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_deliveries_leased", table_name="deliveries", postgresql_where=_LEASED)
    op.create_index("ix_deliveries_leased", "deliveries", ["endpoint_id", "leased_until"], postgresql_where=_LEASED)


def downgrade() -> None:
    op.drop_index("ix_deliveries_leased", table_name="deliveries", postgresql_where=_LEASED)
    op.create_index("ix_deliveries_leased", "deliveries", ["endpoint_id"], postgresql_where=_LEASED)
