"""Platforms: connections to the stores, and the pull clients that talk to their APIs.

In: a connection's settings (credentials optional). ``connections`` validates and stores them;
the chat-agent pull (``chat_remote``, ``chat_client``, ``chat_sync``) pages through a remote order
list and upserts through ``hub.orders.upsert``; ``clients/`` holds one pull client per platform,
which ``registry`` maps by source and the ``sync`` engine drives. Out: normalized orders into the
same path as a webhook. Owns table: ``connections``.
"""
