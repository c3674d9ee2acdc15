"""Business logic. Never imports aiohttp: handlers and workers call these functions."""
