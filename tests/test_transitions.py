"""Tests for hub.orders.transitions (status machine and order.* events)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.orders import transitions as t
from hub.orders.transitions import InvalidTransition

ALLOWED = {
    ("pending", "confirmed"),
    ("pending", "cancelled"),
    ("confirmed", "preparing"),
    ("confirmed", "cancelled"),
    ("preparing", "ready"),
    ("preparing", "shipped"),
    ("preparing", "cancelled"),
    ("ready", "shipped"),
    ("ready", "delivered"),
    ("ready", "cancelled"),
    ("shipped", "delivered"),
    ("shipped", "returned"),
    ("delivered", "returned"),
}


def test_constants() -> None:
    assert t.STATUSES == ("pending", "confirmed", "preparing", "ready", "shipped", "delivered", "cancelled", "returned")
    assert t.PAYMENT_STATUSES == ("pending", "paid", "refunded", "partially_refunded", "failed")
    assert t.FULFILLMENT_STATUSES == ("unfulfilled", "partial", "fulfilled", "returned")
    assert dict(t.STATUS_ALIASES) == {"processing": "preparing"}
    assert set(t.FINAL) == {"cancelled", "returned"}
    assert set(t.TRANSITIONS) == set(t.STATUSES)
    assert len(t.EVENT_TYPES) == 8
    assert t.CONNECTION_EVENT_TYPES == ("connection.needs_attention",)
    assert set(t.EVENT_TYPES) == {
        "order.created",
        "order.updated",
        "order.status_changed",
        "order.cancelled",
        "order.delivered",
        "order.returned",
        "order.payment_updated",
        "order.deleted",
    }


def test_table_is_exactly_the_design() -> None:
    table = {(src, dst) for src, targets in t.TRANSITIONS.items() for dst in targets}
    assert table == ALLOWED
    for final in t.FINAL:
        assert t.TRANSITIONS[final] == frozenset()


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        t.TRANSITIONS["cancelled"] = frozenset({"pending"})  # type: ignore[index]


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED))
def test_allowed_transitions(current: str, new: str) -> None:
    t.check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    sorted((a, b) for a in t.STATUSES for b in t.STATUSES if a != b and (a, b) not in ALLOWED),
)
def test_every_other_transition_is_refused(current: str, new: str) -> None:
    with pytest.raises(InvalidTransition) as info:
        t.check_transition(current, new)
    assert str(info.value) == "Invalid status transition"
    assert info.value.from_status == current
    assert info.value.to_status == new


@pytest.mark.parametrize("status", t.STATUSES)
def test_same_status_is_a_noop(status: str) -> None:
    t.check_transition(status, status)


def test_alias_in_transitions() -> None:
    t.check_transition("confirmed", "processing")
    t.check_transition("processing", "ready")
    t.check_transition("processing", "preparing")  # same status under two names
    with pytest.raises(InvalidTransition) as info:
        t.check_transition("pending", "processing")
    assert info.value.to_status == "preparing"


def test_unknown_statuses_are_invalid() -> None:
    with pytest.raises(InvalidTransition) as info:
        t.check_transition("pending", "teleported")
    assert (info.value.from_status, info.value.to_status) == ("pending", "teleported")
    with pytest.raises(InvalidTransition):
        t.check_transition("limbo", "pending")
    with pytest.raises(InvalidTransition):
        t.check_transition("limbo", "limbo")


def test_invalid_transition_details() -> None:
    with pytest.raises(InvalidTransition) as info:
        t.check_transition("pending", "shipped")
    assert info.value.allowed == ("confirmed", "cancelled")
    assert info.value.details == {"status": "cannot change from pending to shipped (allowed: confirmed, cancelled)"}
    with pytest.raises(InvalidTransition) as info:
        t.check_transition("cancelled", "pending")
    assert info.value.details == {
        "status": "cannot change from cancelled to pending (allowed: none, cancelled is final)"
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pending", "pending"),
        ("processing", "preparing"),
        ("Preparing", "preparing"),
        (" SHIPPED ", "shipped"),
        ("Processing", "preparing"),
        ("unknown", None),
        ("", None),
        ("paid", None),  # a payment status is not an order status
    ],
)
def test_canonical_status(value: str, expected: str | None) -> None:
    assert t.canonical_status(value) == expected


# --- events_for_change --------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "id": "ord_1",
    "status": "pending",
    "payment_status": "pending",
    "fulfillment_status": "unfulfilled",
    "customer_name": "Sara",
    "notes": None,
    "cancellation_reason": None,
    "updated": "2026-01-01T00:00:00Z",
    "status_history": [{"status": "pending"}],
}


def changed(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


def test_created() -> None:
    assert t.events_for_change(None, BASE) == ["order.created"]
    # Even an order first seen as delivered is just "created".
    assert t.events_for_change(None, changed(status="delivered", payment_status="paid")) == ["order.created"]


def test_nothing_changed() -> None:
    assert t.events_for_change(BASE, dict(BASE)) == []


def test_only_bookkeeping_changed() -> None:
    new = changed(updated="2026-01-02T00:00:00Z", status_history=[], source_updated_at="x", version=7)
    assert t.events_for_change(BASE, new) == []


def test_plain_field_update() -> None:
    assert t.events_for_change(BASE, changed(customer_name="Sarah")) == ["order.updated"]
    assert t.events_for_change(BASE, changed(fulfillment_status="fulfilled")) == ["order.updated"]


def test_missing_key_counts_as_none() -> None:
    old = {k: v for k, v in BASE.items() if k != "notes"}
    assert t.events_for_change(old, BASE) == []
    assert t.events_for_change(old, changed(notes="ring twice")) == ["order.updated"]


def test_status_change() -> None:
    assert t.events_for_change(BASE, changed(status="confirmed")) == ["order.status_changed"]


def test_alias_is_not_a_status_change() -> None:
    old = changed(status="processing")
    assert t.events_for_change(old, changed(status="preparing")) == []


@pytest.mark.parametrize("status", ["cancelled", "delivered", "returned"])
def test_status_with_its_own_event(status: str) -> None:
    assert t.events_for_change(BASE, changed(status=status)) == ["order.status_changed", f"order.{status}"]


def test_cancel_with_reason_is_not_an_update() -> None:
    new = changed(status="cancelled", cancellation_reason="customer asked")
    assert t.events_for_change(BASE, new) == ["order.status_changed", "order.cancelled"]


def test_reason_alone_is_an_update() -> None:
    old = changed(status="cancelled", cancellation_reason="a")
    assert t.events_for_change(old, changed(status="cancelled", cancellation_reason="b")) == ["order.updated"]


def test_payment_change() -> None:
    assert t.events_for_change(BASE, changed(payment_status="paid")) == ["order.payment_updated"]


def test_everything_at_once_in_documented_order() -> None:
    new = changed(status="delivered", payment_status="paid", notes="left at door")
    assert t.events_for_change(BASE, new) == [
        "order.updated",
        "order.status_changed",
        "order.delivered",
        "order.payment_updated",
    ]


def test_custom_ignore_set() -> None:
    new = changed(updated="later")
    assert t.events_for_change(BASE, new, ignore=()) == ["order.updated"]
    assert t.events_for_change(BASE, changed(notes="x"), ignore={"notes"}) == []


def test_all_emitted_types_are_known() -> None:
    new = changed(status="returned", payment_status="refunded", notes="x")
    assert set(t.events_for_change(BASE, new)) <= set(t.EVENT_TYPES)
    assert set(t.events_for_change(None, new)) <= set(t.EVENT_TYPES)


# --- matches ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "patterns", "expected"),
    [
        ("order.created", ["order.created"], True),
        ("order.created", ["order.updated"], False),
        ("order.created", ["order.updated", "order.created"], True),
        ("order.created", ["order.*"], True),
        ("order.payment_updated", ["order.*"], True),
        ("order.created", ["*"], True),
        ("order.created", [], False),
        ("order.created", ["order"], False),
        ("order.created", ["order."], False),
        ("order.created", ["orders.*"], False),
        ("orderx.created", ["order.*"], False),
        ("order.created", ["ORDER.CREATED"], False),
        ("order.created", ["order.c*"], False),  # only whole-segment wildcards
    ],
)
def test_matches(event_type: str, patterns: list[str], expected: bool) -> None:
    assert t.matches(event_type, patterns) is expected


@pytest.mark.parametrize("event_type", t.EVENT_TYPES)
def test_order_star_takes_all(event_type: str) -> None:
    assert t.matches(event_type, ["order.*"])
    assert t.matches(event_type, ["*"])
    assert t.matches(event_type, [event_type])
