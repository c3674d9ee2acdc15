"""orders: ``hub_lock_orders(...)`` plans its statements as before inside generic-plan transactions

The ingest batch's transaction asks for generic plans (``hub.db.generic_plan_transaction``): on
PostgreSQL 15 its composed write was re-planned on every call. The lock function's own statements
are ten times slower on their generic plans (0.115 → 1.25 ms per batch, measured with
``pg_stat_statements``), so the function keeps the server's default, ``auto``, whatever its caller
set; a function's ``SET`` applies while it runs and is undone when it returns.

Revision ID: 0011_lock_orders_auto_plans
Revises: 0010_lock_orders_by_key
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_lock_orders_auto_plans"
down_revision: str | None = "0010_lock_orders_by_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "hub_lock_orders(text, bigint[], text[], text[])"


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {SIGNATURE} SET plan_cache_mode = auto")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {SIGNATURE} RESET plan_cache_mode")
