"""Platforms: connections to the stores, and the pull clients that talk to their APIs.

In: a connection's settings (credentials optional). ``connections`` validates and stores them;
one pull client per platform (``clients/``: ``chat_agent``, ``shopify``, ``woocommerce``, ``salla``,
``zid``; ``registry`` maps them by source) is driven by one engine (``sync``), which pages through its
orders and upserts through ``hub.orders.upsert``. Out: normalized orders into the same path as a
webhook. Owns table: ``connections``.
"""
