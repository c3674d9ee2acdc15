"""orders: ``hub_lock_orders(...)`` finds an ingest batch's orders by their unique key, whatever the statistics say

Measured in the bench (docs/benchmarks.md, 2026-12-06 "Performance"): after the orders table grew
from a few rows to a few thousand between two autovacuum runs, the planner estimated ~20 rows for the
organization and read *all* of its orders for every batch (a bitmap scan of the organization, then a
hash semi join): 5 ms of the Postgres backend per batch, half the Postgres CPU of an order. A batch
looks up at most ``HUB_BATCH_SIZE`` orders by ``(organization_id, source, external_id)``, which
``uq_orders_source_external`` answers in one probe each, so the function asks for exactly that:
one probe per key (a lateral subquery with its own ``FOR UPDATE`` is never merged into a join),
with sequential and bitmap scans off inside it, instead of trusting the row estimates.

It is PL/pgSQL now, so its two statements are planned once per session, not on every call. A
``VOLATILE`` PL/pgSQL function still takes a fresh snapshot for each statement: the rows are read
after the advisory locks are held, so an order another batch committed meanwhile is seen.

Revision ID: 0010_lock_orders_by_key
Revises: 0009_connection_sync
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_lock_orders_by_key"
down_revision: str | None = "0009_connection_sync"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# organization, advisory-lock keys (any order: locked in key order, so batches never deadlock), and the
# orders' (source, external_id) pairs.
LOCK_ORDERS_FUNCTION = """
CREATE OR REPLACE FUNCTION hub_lock_orders(organization text, lock_keys bigint[], sources text[], external_ids text[])
RETURNS SETOF orders LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off
AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(k) FROM (SELECT unnest(lock_keys) AS k ORDER BY 1) AS s;
    RETURN QUERY
        SELECT o.* FROM unnest(sources, external_ids) AS k(s, e)
        CROSS JOIN LATERAL (
            SELECT * FROM orders
            WHERE organization_id = organization AND source = k.s AND external_id = k.e
            FOR UPDATE
        ) AS o;
END
$fn$
"""

PREVIOUS_FUNCTION = """
CREATE OR REPLACE FUNCTION hub_lock_orders(organization text, lock_keys bigint[], sources text[], external_ids text[])
RETURNS SETOF orders LANGUAGE sql VOLATILE AS $fn$
    SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($2) AS k ORDER BY 1) AS s;
    SELECT * FROM orders
    WHERE organization_id = $1 AND (source, external_id) IN (SELECT * FROM unnest($3, $4))
    FOR UPDATE;
$fn$
"""


def upgrade() -> None:
    op.execute(LOCK_ORDERS_FUNCTION)  # replaced in place: a worker calling it meanwhile never misses it


def downgrade() -> None:
    op.execute(PREVIOUS_FUNCTION + ";\nALTER FUNCTION hub_lock_orders(text, bigint[], text[], text[]) RESET ALL")
