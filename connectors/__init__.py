"""Source connectors, one module per source, all speaking :class:`connectors.base.Connector`.

``REGISTRY`` maps a source name (as in ``/hooks/{source}/{connection_id}``) to its connector.
"""

from __future__ import annotations

from connectors import chat_agent, generic, salla, shopify, woocommerce, zid
from connectors.base import Connector

REGISTRY: dict[str, Connector] = {
    module.connector.source: module.connector for module in (salla, zid, shopify, woocommerce, chat_agent, generic)
}


def get_connector(source: str) -> Connector | None:
    """The connector for ``source``, or None when the hub has none."""
    return REGISTRY.get(source)
