"""Tenancy: organizations and their API keys (``sk_live_…`` / ``sk_test_…``, stored only as hashes).

In: a bearer key from the web middleware. Out: the ``Principal`` (organization) every query is scoped by.
Owns tables: ``organizations``, ``api_keys``.
"""
