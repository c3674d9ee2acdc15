"""Order statuses, the status transition table and the ``order.*`` events a change emits.

Only ``status`` follows the transition table, and only for changes asked for through the API; an
ingested order's status is applied as the source gives it. ``payment_status`` and
``fulfillment_status`` may be set to any listed value (DESIGN "Unified order").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

__all__ = [
    "BOOKKEEPING_FIELDS",
    "CONNECTION_EVENT_TYPES",
    "EVENT_TYPES",
    "FINAL",
    "FULFILLMENT_STATUSES",
    "PAYMENT_STATUSES",
    "STATUSES",
    "STATUS_ALIASES",
    "SUBSCRIBABLE_EVENT_TYPES",
    "TRANSITIONS",
    "InvalidTransition",
    "canonical_status",
    "check_transition",
    "events_for_change",
    "matches",
]

STATUSES: tuple[str, ...] = (
    "pending",
    "confirmed",
    "preparing",
    "ready",
    "shipped",
    "delivered",
    "cancelled",
    "returned",
)
PAYMENT_STATUSES: tuple[str, ...] = ("pending", "paid", "refunded", "partially_refunded", "failed")
FULFILLMENT_STATUSES: tuple[str, ...] = ("unfulfilled", "partial", "fulfilled", "returned")

#: Seed 000 calls "preparing" "processing"; it is accepted on input and stored as "preparing".
STATUS_ALIASES: Mapping[str, str] = MappingProxyType({"processing": "preparing"})

#: Allowed API transitions, exactly as DESIGN lists them.
TRANSITIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "pending": frozenset({"confirmed", "cancelled"}),
        "confirmed": frozenset({"preparing", "cancelled"}),
        "preparing": frozenset({"ready", "shipped", "cancelled"}),
        "ready": frozenset({"shipped", "delivered", "cancelled"}),
        "shipped": frozenset({"delivered", "returned"}),
        "delivered": frozenset({"returned"}),
        "cancelled": frozenset(),
        "returned": frozenset(),
    }
)

FINAL: frozenset[str] = frozenset({"cancelled", "returned"})

EVENT_TYPES: tuple[str, ...] = (
    "order.created",
    "order.updated",
    "order.status_changed",
    "order.cancelled",
    "order.delivered",
    "order.returned",
    "order.payment_updated",
    "order.deleted",
)

#: Events about a connection rather than an order (``connection.*``), e.g. a revoked platform token.
CONNECTION_EVENT_TYPES: tuple[str, ...] = ("connection.needs_attention",)
#: Everything an endpoint may subscribe to.
SUBSCRIBABLE_EVENT_TYPES: tuple[str, ...] = EVENT_TYPES + CONNECTION_EVENT_TYPES

#: Fields that change as a side effect of any write (timestamps, history, the source's clock), so a
#: difference in them alone is not an update a subscriber needs to hear about.
BOOKKEEPING_FIELDS: frozenset[str] = frozenset(
    {"updated", "updated_at", "status_history", "source_updated_at", "version"}
)

# The statuses that have an event of their own on top of order.status_changed.
_STATUS_EVENTS = {"cancelled": "order.cancelled", "delivered": "order.delivered", "returned": "order.returned"}


class InvalidTransition(ValueError):
    """A requested status change is not in :data:`TRANSITIONS` (the API answers 422)."""

    def __init__(self, current: str, new: str) -> None:
        super().__init__("Invalid status transition")
        self.from_status = current
        self.to_status = new
        self.allowed: tuple[str, ...] = tuple(s for s in STATUSES if s in TRANSITIONS.get(current, ()))

    @property
    def details(self) -> dict[str, str]:
        """The ``{field: why}`` mapping for the API's 422 ``details``."""
        allowed = ", ".join(self.allowed) if self.allowed else f"none, {self.from_status} is final"
        return {"status": f"cannot change from {self.from_status} to {self.to_status} (allowed: {allowed})"}


def canonical_status(s: str) -> str | None:
    """Return the canonical order status for ``s`` (alias resolved, case and spaces ignored), or None."""
    key = s.strip().lower()
    key = STATUS_ALIASES.get(key, key)
    return key if key in TRANSITIONS else None


def check_transition(current: str, new: str) -> None:
    """Raise :class:`InvalidTransition` unless the API may move an order from ``current`` to ``new``.

    Aliases are resolved first. Setting the status an order already has is a no-op, not an error (a
    merge-``PUT`` that echoes the order back must not fail). An unknown status on either side is an
    invalid transition.
    """
    old_status, new_status = canonical_status(current), canonical_status(new)
    if old_status is not None and old_status == new_status:
        return
    if old_status is None or new_status is None or new_status not in TRANSITIONS[old_status]:
        raise InvalidTransition(old_status or current, new_status or new)


def _status(order: Mapping[str, Any], field: str) -> object:
    value = order.get(field)
    if field == "status" and isinstance(value, str):
        return canonical_status(value) or value  # "processing" → "preparing" is not a change
    return value


def events_for_change(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    ignore: Collection[str] = BOOKKEEPING_FIELDS,
) -> list[str]:
    """Return the ``order.*`` event types one write of an order emits, in this order.

    * ``old is None`` (first time the hub stores the order) → ``["order.created"]`` only, whatever
      the order's status.
    * ``"order.updated"`` — some field other than ``status``, ``payment_status`` and the ``ignore``
      fields (default :data:`BOOKKEEPING_FIELDS`) differs. A key missing on one side counts as None.
      ``cancellation_reason`` changing together with ``status`` is part of the status change.
    * ``"order.status_changed"`` — ``status`` differs (after alias resolution), then
      ``"order.cancelled"`` / ``"order.delivered"`` / ``"order.returned"`` if the new status is that.
    * ``"order.payment_updated"`` — ``payment_status`` differs.

    Nothing changed → ``[]`` (a replayed event emits nothing). ``order.deleted`` is emitted by the
    delete path itself, never by this function.
    """
    if old is None:
        return ["order.created"]
    status_changed = _status(old, "status") != _status(new, "status")
    skip = {"status", "payment_status", *ignore}
    if status_changed:
        skip.add("cancellation_reason")
    events: list[str] = []
    if any(old.get(key) != new.get(key) for key in old.keys() | new.keys() if key not in skip):
        events.append("order.updated")
    if status_changed:
        events.append("order.status_changed")
        new_status = _status(new, "status")
        if isinstance(new_status, str) and new_status in _STATUS_EVENTS:
            events.append(_STATUS_EVENTS[new_status])
    if old.get("payment_status") != new.get("payment_status"):
        events.append("order.payment_updated")
    return events


def matches(event_type: str, patterns: Sequence[str]) -> bool:
    """True if a subscription with these event-type ``patterns`` receives ``event_type``.

    A pattern is an exact type (``order.created``), ``*`` (everything) or ``prefix.*`` (every type
    starting with ``prefix.``, e.g. ``order.*``). Matching is case-sensitive.
    """
    for pattern in patterns:
        if pattern in ("*", event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False
