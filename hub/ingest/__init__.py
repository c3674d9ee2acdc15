"""Ingest: a platform's raw request becomes a durable inbound event, then work for ``hub.orders``.

In: verified raw requests from ``hub.api.hooks``. ``store`` group-commits them (one durable commit
shared by concurrent requests, a Postgres notification wakes the workers); ``events`` lists,
shows and retries them. Out: ``inbound_events`` rows, claimed in batches by ``workers.ingest``.
Owns table: ``inbound_events``.
"""
