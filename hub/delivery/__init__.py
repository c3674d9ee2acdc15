"""Delivery: the outbox and everything that gets a signed webhook to a merchant's endpoint.

In: order events written by ``hub.orders`` (``outbox.record_events`` writes one delivery row per
matching endpoint in the writer's transaction). A worker's ``engine`` (built in its start-up hook)
runs the ``pipeline``: ``claims`` (lease due rows, ``SKIP LOCKED``) → ``sender`` (SSRF-pinned POST,
``signing``) → ``records`` (attempt rows, retry schedule from ``policy``). ``endpoints`` manages
subscriptions, ``ledger`` reads deliveries and attempts and retries them (REST and ops alike).
Owns tables: ``webhook_endpoints``, ``deliveries``, ``delivery_attempts``.
"""
