"""Platforms: connections to the stores, and the pull clients that talk to their APIs.

In: a connection's settings (credentials optional). ``connections`` validates and stores them;
the chat-agent pull (``chat_remote``, ``chat_client``, ``chat_sync``) pages through a remote order
list and upserts through ``hub.orders.upsert``. Out: normalized orders into the same path as a
webhook. Owns table: ``connections``.
"""
