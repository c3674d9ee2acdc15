"""A pulled order kept as a failed inbound event is written as its platform's webhook: the connector
parses it back into the same order, so retrying it after a fix works like retrying a webhook."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import connectors
from connectors.base import RawRequest
from hub.platforms import registry
from tests.fakes import chat_agent_server, salla_store, shopify_store, woocommerce_store, zid_store

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

ORDERS: dict[str, Any] = {
    "shopify": lambda: shopify_store.make_order(450789469),
    "woocommerce": lambda: woocommerce_store.make_order(727),
    "salla": lambda: {**salla_store.make_order(1001, at=AT), "_hub_fetched_at": AT.isoformat()},
    "zid": lambda: zid_store.make_order(2002, at=AT),
    "chat_agent": lambda: chat_agent_server.make_order(7, created=AT),
}


@pytest.mark.parametrize("source", sorted(ORDERS))
def test_the_inbound_form_parses_back_into_the_same_order(source: str) -> None:
    order = ORDERS[source]()
    form = registry.inbound_form(source, order)
    connector = connectors.get_connector(source)
    assert connector is not None
    [event] = connector.parse(RawRequest(body=form.body, headers=form.headers, query=form.query, received_at=AT))
    assert event.order is not None, event.ignored_reason
    assert event.order.external_id == str(order["id"])
