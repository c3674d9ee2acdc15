"""orders: ``hub_lock_orders(...)``, an ingest batch's order locks and rows in one statement

An ingest batch serialises work on each order with transaction-level advisory locks (taken in key
order, so batches never deadlock), then loads the orders ``FOR UPDATE``. The load must see orders
another batch committed while this one waited for a lock, so it cannot share the locking
statement's snapshot; it ran as a second statement. A ``VOLATILE`` SQL function takes a fresh
snapshot for each of its statements, so this function does both in one round trip, inside the
batch's transaction (``hub/orders/upsert.py``). Its statements are also planned for each
call's arguments, not with a cached generic plan.

Revision ID: 0006_lock_orders
Revises: 0005_lease_owner
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006_lock_orders"
down_revision: str | None = "0005_lease_owner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# $1 organization, $2 advisory-lock keys (any order: locked in key order, so batches never deadlock),
# $3/$4 the orders' (source, external_id) pairs.
LOCK_ORDERS_FUNCTION = """
CREATE OR REPLACE FUNCTION hub_lock_orders(organization text, lock_keys bigint[], sources text[], external_ids text[])
RETURNS SETOF orders LANGUAGE sql VOLATILE AS $fn$
    SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($2) AS k ORDER BY 1) AS s;
    SELECT * FROM orders
    WHERE organization_id = $1 AND (source, external_id) IN (SELECT * FROM unnest($3, $4))
    FOR UPDATE;
$fn$
"""


def upgrade() -> None:
    op.execute(LOCK_ORDERS_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS hub_lock_orders(text, bigint[], text[], text[])")
