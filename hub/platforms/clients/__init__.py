"""One pull client per platform, each a :class:`hub.platforms.pull.PlatformClient`.

In: a connection's settings and an HTTP session. Out: pages of normalized orders and webhook
subscriptions, for the sync engine (``hub.platforms.sync``); ``hub.platforms.registry`` maps a
source to its client. Errors are ``hub.platforms.chat_remote``'s tree. Owns no table.
"""
