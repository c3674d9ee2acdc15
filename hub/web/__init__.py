"""Web: what every HTTP request passes through: middleware (errors, auth, rate limits), responses, and
the runner (``server``) that answers even requests aiohttp cannot parse in DESIGN's error shape.

In: aiohttp requests. Out: DESIGN's envelope (``{"success": …}``) and error shape, 429s with
``Retry-After``. The only package besides ``hub.api`` that imports ``aiohttp.web``.
"""
