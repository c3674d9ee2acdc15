"""Orders: the one writer of the ``orders`` table and of the order events it causes.

In: validated API input (``hub.schemas``) and connector-normalized orders (``connectors``).
Out: order rows, ``order_events`` and, in the same transaction, delivery rows through
``hub.delivery.outbox``. ``rows`` holds the column list and the insert; ``create``/``changes``/
``bulk`` serve the REST API, ``upsert`` serves ingest and platform pulls (same staleness rule),
``transitions`` the status table and which events a change emits, ``listing``/``query``/``export``
the reads. Owns tables: ``orders``, ``order_events``, ``idempotency_keys``.
"""
